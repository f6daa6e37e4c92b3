#!/usr/bin/env bash
# Delete the kind cluster: every prerequisite, the release and their volumes go with it.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/kind-lib.sh
require kind
if kind get clusters 2> /dev/null | grep -qx "$CLUSTER"; then
  kind delete cluster --name "$CLUSTER"
else
  echo "no kind cluster named $CLUSTER"
fi
