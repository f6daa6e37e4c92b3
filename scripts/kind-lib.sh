# Shared by scripts/kind-up.sh, deploy.sh and kind-down.sh (sourced, not run).
# Pinned versions of everything kind-up installs; override any of them from the environment.
CLUSTER="${FLYWHEEL_KIND_CLUSTER:-flywheel}"
NAMESPACE="${FLYWHEEL_NAMESPACE:-flywheel}"
CERT_MANAGER_VERSION="${CERT_MANAGER_VERSION:-v1.17.2}"
KSERVE_VERSION="${KSERVE_VERSION:-v0.21.0}"          # the kserve SDK pinned in pyproject.toml (0.21.x)
KFP_VERSION="${KFP_VERSION:-2.15.0}"                 # KFP standalone with SeaweedFS as its object store
KUBE_PROMETHEUS_STACK_VERSION="${KUBE_PROMETHEUS_STACK_VERSION:-75.15.1}"
STRIMZI_VERSION="${STRIMZI_VERSION:-0.49.0}"         # the first Strimzi serving kafka.strimzi.io/v1

# require TOOL...: print every missing tool with where to get it, then exit 1.
require() {
  local missing=() tool
  for tool in "$@"; do
    command -v "$tool" > /dev/null 2>&1 || missing+=("$tool")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    echo "error: missing tools: ${missing[*]}" >&2
    for tool in "${missing[@]}"; do
      case "$tool" in
        docker) echo "  docker: install Docker Engine or Docker Desktop (https://docs.docker.com/engine/install/)" >&2 ;;
        kind) echo "  kind: https://kind.sigs.k8s.io/docs/user/quick-start/#installation (v0.29 or later)" >&2 ;;
        kubectl) echo "  kubectl: https://kubernetes.io/docs/tasks/tools/ (v1.33)" >&2 ;;
        helm) echo "  helm: https://helm.sh/docs/intro/install/ (v3.15 or later)" >&2 ;;
        git) echo "  git: your OS package manager (kubectl fetches KFP's kustomize manifests with it)" >&2 ;;
        *) echo "  $tool" >&2 ;;
      esac
    done
    exit 1
  fi
}

step() { printf '\n== %s\n' "$*"; }
