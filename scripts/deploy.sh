#!/usr/bin/env bash
# Load the project image into the kind cluster, create the S3 bucket, and helm install the chart
# (release flywheel, namespace flywheel, the chart's default values plus any VALUES file given).
#   scripts/deploy.sh [extra helm args, e.g. -f my-values.yaml]
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/kind-lib.sh
require docker kind kubectl helm
IMAGE="${IMAGE:-flywheel:0.1.0}"
docker image inspect "$IMAGE" > /dev/null 2>&1 || { echo "error: image $IMAGE not found: run make image first" >&2; exit 1; }
kubectl config use-context "kind-$CLUSTER" > /dev/null

step "load $IMAGE into kind"
kind load docker-image "$IMAGE" --name "$CLUSTER"

step "S3 bucket 'flywheel' on SeaweedFS"
kubectl -n "$NAMESPACE" delete pod flywheel-make-bucket --ignore-not-found > /dev/null
kubectl -n "$NAMESPACE" run flywheel-make-bucket --image "$IMAGE" --restart=Never --rm -i --quiet \
  --overrides='{"spec":{"containers":[{"name":"flywheel-make-bucket","image":"'"$IMAGE"'","command":["python3","-c","import boto3,os; s3=boto3.client(\"s3\",endpoint_url=\"http://seaweedfs.kubeflow:8333\"); names=[b[\"Name\"] for b in s3.list_buckets()[\"Buckets\"]]; \"flywheel\" in names or s3.create_bucket(Bucket=\"flywheel\"); print(\"bucket flywheel ready\")"],"envFrom":[{"secretRef":{"name":"flywheel-s3"}}]}]}}'

step "helm install flywheel (namespace $NAMESPACE)"
helm upgrade --install flywheel charts/flywheel --namespace "$NAMESPACE" \
  --set image.tag="${IMAGE##*:}" --set image.repository="${IMAGE%:*}" --timeout 15m "$@"
# the platform parts come up now; the router and the rankers wait for a champion model (docs/cluster.md)
for workload in statefulset/flywheel-redis statefulset/flywheel-postgresql deployment/flywheel-mlflow \
  deployment/flywheel-feature-server; do
  kubectl -n "$NAMESPACE" rollout status "$workload" --timeout=600s
done
kubectl -n "$NAMESPACE" get pods,inferenceservices
echo "next: train and register a champion (docs/cluster.md, step 4), then: helm test flywheel -n $NAMESPACE"
