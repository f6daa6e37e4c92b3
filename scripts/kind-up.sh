#!/usr/bin/env bash
# Create the kind cluster and install the stack's prerequisites, each pinned (scripts/kind-lib.sh):
# cert-manager; KServe in Standard (raw Deployment) mode, no Knative, no Istio; Kubeflow Pipelines
# standalone (its SeaweedFS is also the S3 store of MLflow and the models); kube-prometheus-stack
# with Grafana's dashboard sidecar; Strimzi with a single-node KRaft Kafka (kafka.strimzi.io/v1).
# Then the namespace and the Secrets the chart references. Idempotent: rerun after a failure.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/kind-lib.sh
require docker kind kubectl helm git
docker info > /dev/null 2>&1 || { echo "error: the Docker engine is not running (start Docker first)" >&2; exit 1; }

step "kind cluster '$CLUSTER'"
if kind get clusters 2> /dev/null | grep -qx "$CLUSTER"; then
  echo "already exists"
else
  kind create cluster --name "$CLUSTER" --config kind-config.yaml --wait 120s
fi
kubectl config use-context "kind-$CLUSTER" > /dev/null

step "cert-manager $CERT_MANAGER_VERSION"
kubectl apply --server-side -f "https://github.com/cert-manager/cert-manager/releases/download/$CERT_MANAGER_VERSION/cert-manager.yaml"
kubectl -n cert-manager rollout status deployment/cert-manager-webhook --timeout=180s

step "KServe $KSERVE_VERSION (Standard mode: Deployments + Services, no Knative, no Istio)"
helm upgrade --install kserve-crd oci://ghcr.io/kserve/charts/kserve-crd --version "$KSERVE_VERSION" \
  --namespace kserve --create-namespace --wait
helm upgrade --install kserve oci://ghcr.io/kserve/charts/kserve --version "$KSERVE_VERSION" \
  --namespace kserve --wait \
  --set kserve.controller.deploymentMode=Standard \
  --set kserve.controller.gateway.disableIngressCreation=true \
  --set kserve.controller.gateway.disableIstioVirtualHost=true

step "Kubeflow Pipelines $KFP_VERSION (standalone, SeaweedFS object store)"
kubectl apply -k "github.com/kubeflow/pipelines/manifests/kustomize/cluster-scoped-resources?ref=$KFP_VERSION"
kubectl wait --for condition=established --timeout=120s crd/applications.app.k8s.io
kubectl apply -k "github.com/kubeflow/pipelines/manifests/kustomize/env/platform-agnostic?ref=$KFP_VERSION"
kubectl -n kubeflow wait --for=condition=Available deployment --all --timeout=900s

step "kube-prometheus-stack $KUBE_PROMETHEUS_STACK_VERSION (Grafana dashboard sidecar on)"
helm repo add prometheus-community https://prometheus-community.github.io/helm-charts > /dev/null 2>&1 || true
helm repo update prometheus-community > /dev/null
helm upgrade --install kube-prometheus-stack prometheus-community/kube-prometheus-stack \
  --version "$KUBE_PROMETHEUS_STACK_VERSION" --namespace monitoring --create-namespace --wait --timeout 10m \
  --set grafana.sidecar.dashboards.enabled=true \
  --set grafana.sidecar.dashboards.label=grafana_dashboard \
  --set grafana.sidecar.dashboards.searchNamespace=ALL \
  --set grafana.resources.requests.cpu=100m --set grafana.resources.requests.memory=256Mi \
  --set prometheus.prometheusSpec.retention=2d \
  --set prometheus.prometheusSpec.resources.requests.cpu=200m \
  --set prometheus.prometheusSpec.resources.requests.memory=1Gi \
  --set alertmanager.alertmanagerSpec.resources.requests.memory=64Mi

step "Strimzi $STRIMZI_VERSION + a single-node KRaft Kafka (namespace kafka)"
helm upgrade --install strimzi oci://quay.io/strimzi-helm/strimzi-kafka-operator --version "$STRIMZI_VERSION" \
  --namespace kafka --create-namespace --wait \
  --set resources.requests.memory=384Mi --set resources.limits.memory=384Mi
kubectl apply -n kafka -f - << 'YAML'
apiVersion: kafka.strimzi.io/v1
kind: KafkaNodePool
metadata:
  name: single
  labels:
    strimzi.io/cluster: flywheel-kafka
spec:
  replicas: 1
  roles: [controller, broker]
  storage:
    type: persistent-claim
    size: 5Gi
    deleteClaim: true
  resources:
    requests: {cpu: 250m, memory: 1Gi}
    limits: {memory: 1Gi}
---
apiVersion: kafka.strimzi.io/v1
kind: Kafka
metadata:
  name: flywheel-kafka
spec:
  kafka:
    listeners:
      - name: plain
        port: 9092
        type: internal
        tls: false
    config:
      offsets.topic.replication.factor: 1
      transaction.state.log.replication.factor: 1
      transaction.state.log.min.isr: 1
      default.replication.factor: 1
      min.insync.replicas: 1
      auto.create.topics.enable: false
  entityOperator:
    topicOperator: {}
---
apiVersion: kafka.strimzi.io/v1
kind: KafkaTopic
metadata:
  name: events
  labels: {strimzi.io/cluster: flywheel-kafka}
spec: {partitions: 8, replicas: 1}
---
apiVersion: kafka.strimzi.io/v1
kind: KafkaTopic
metadata:
  name: events.dlq
  labels: {strimzi.io/cluster: flywheel-kafka}
spec: {partitions: 8, replicas: 1}
---
apiVersion: kafka.strimzi.io/v1
kind: KafkaTopic
metadata:
  name: events.late
  labels: {strimzi.io/cluster: flywheel-kafka}
spec: {partitions: 8, replicas: 1}
---
apiVersion: kafka.strimzi.io/v1
kind: KafkaTopic
metadata:
  name: predictions
  labels: {strimzi.io/cluster: flywheel-kafka}
spec: {partitions: 8, replicas: 1}
YAML
kubectl -n kafka wait kafka/flywheel-kafka --for=condition=Ready --timeout=600s

step "namespace $NAMESPACE and the Secrets the chart references"
kubectl create namespace "$NAMESPACE" --dry-run=client -o yaml | kubectl apply -f -
# S3 (SeaweedFS) credentials: KFP's own, re-keyed for MLflow/boto3, annotated for KServe's storage initializer
access_key="$(kubectl -n kubeflow get secret mlpipeline-minio-artifact -o jsonpath='{.data.accesskey}' | base64 -d)"
secret_key="$(kubectl -n kubeflow get secret mlpipeline-minio-artifact -o jsonpath='{.data.secretkey}' | base64 -d)"
kubectl -n "$NAMESPACE" create secret generic flywheel-s3 \
  --from-literal=AWS_ACCESS_KEY_ID="$access_key" --from-literal=AWS_SECRET_ACCESS_KEY="$secret_key" \
  --dry-run=client -o yaml | kubectl apply -f -
kubectl -n "$NAMESPACE" annotate --overwrite secret flywheel-s3 \
  serving.kserve.io/s3-endpoint=seaweedfs.kubeflow:8333 serving.kserve.io/s3-usehttps=0 \
  serving.kserve.io/s3-verifyssl=0 serving.kserve.io/s3-region=us-east-1
if ! kubectl -n "$NAMESPACE" get secret flywheel-postgresql > /dev/null 2>&1; then
  kubectl -n "$NAMESPACE" create secret generic flywheel-postgresql \
    --from-literal=POSTGRES_USER=mlflow --from-literal=POSTGRES_PASSWORD="$(head -c 24 /dev/urandom | base64 | tr -d '/+=')"
fi

step "ready"
kubectl get nodes
echo "next: make deploy   (builds nothing; run make image first)"
