#!/usr/bin/env bash
# Prove the Dockerfile without any registry: debootstrap a Debian bookworm root with python3.11,
# import it as the base image, build the project image on it (torch 2.13.0 CPU from a local
# wheel served on 127.0.0.1), then run `flywheel --help` and one KFP component inside.
# Needs root, debootstrap, a running dockerd, a Debian mirror and PyPI. Not part of `make test`.
#
#   scripts/image-proof.sh /path/to/wheel-folder-with-torch-2.13.0+cpu   [work dir, default /tmp/fwimg]
set -euo pipefail
cd "$(dirname "$0")/.."
WHEELS="${1:?usage: scripts/image-proof.sh WHEEL_DIR [WORK_DIR]}"
WORK="${2:-/tmp/fwimg}"
BASE="flywheel-base:bookworm-local"
IMAGE="${IMAGE:-flywheel:0.1.0}"
MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
for tool in docker debootstrap python3; do
  command -v "$tool" > /dev/null || { echo "missing: $tool" >&2; exit 1; }
done
mkdir -p "$WORK"

if ! docker image inspect "$BASE" > /dev/null 2>&1; then
  echo "== debootstrap bookworm (python3.11, venv, pip) -> $BASE"
  debootstrap --variant=minbase --include=python3,python3-venv,python3-pip,ca-certificates \
    bookworm "$WORK/rootfs" "$MIRROR"
  rm -rf "$WORK"/rootfs/var/cache/apt/archives/*.deb
  # the base trusts what this machine trusts (e.g. an egress proxy's CA), as a site base image would
  if compgen -G "/usr/local/share/ca-certificates/*.crt" > /dev/null; then
    cp /usr/local/share/ca-certificates/*.crt "$WORK/rootfs/usr/local/share/ca-certificates/"
    chroot "$WORK/rootfs" update-ca-certificates
  fi
  tar -C "$WORK/rootfs" -c . | docker import -c 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    -c 'CMD ["/bin/bash"]' - "$BASE"
fi

echo "== serving $WHEELS on 127.0.0.1 for the torch wheel"
# a fixed port (WHEEL_PORT) keeps the build argument, hence Docker's cached torch layer, the same across runs;
# the server lives only as long as this script
PORT="${WHEEL_PORT:-18765}"
python3 -c "import socket; socket.create_server(('127.0.0.1', $PORT)).close()" \
  || { echo "port $PORT is busy: set WHEEL_PORT" >&2; exit 1; }
python3 -m http.server "$PORT" --bind 127.0.0.1 --directory "$WHEELS" > "$WORK/wheel-server.log" 2>&1 &
SERVER=$!
trap 'kill "$SERVER" 2> /dev/null || true' EXIT

echo "== docker build (base $BASE)"
start=$(date +%s)
docker build --network host --build-arg BASE_IMAGE="$BASE" \
  --build-arg TORCH_PIP_ARGS="--find-links http://127.0.0.1:$PORT/" \
  -t "$IMAGE" . 2>&1 | tee "$WORK/build.log"
echo "build time: $(( $(date +%s) - start )) s"
docker image inspect "$IMAGE" --format 'image size: {{.Size}} bytes'
docker images "$IMAGE"

echo "== flywheel --help inside (user $(docker run --rm --entrypoint id "$IMAGE" -u))"
docker run --rm --network host "$IMAGE" --help

echo "== one KFP component inside, as KFP's launcher calls it"
"${PY:-python3}" scripts/kfp-component-in-image.py "$IMAGE" "$WORK/component"
