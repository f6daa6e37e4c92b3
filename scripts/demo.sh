#!/usr/bin/env bash
# `make demo`: the whole loop that exists so far, locally, on the embedded defaults.
# State goes to $FLYWHEEL_HOME (default .flywheel/demo); each run starts clean.
set -euo pipefail
cd "$(dirname "$0")/.."
export FLYWHEEL_HOME="${FLYWHEEL_HOME:-.flywheel/demo}"
export MLFLOW_DISABLE_TELEMETRY=true
FW=".venv/bin/flywheel"
rm -rf "$FLYWHEEL_HOME"
mkdir -p "$FLYWHEEL_HOME"

step() { printf '\n\033[1;36m== %s\033[0m\n' "$*"; }

step "1/2 simulate a day of platform traffic into the local event log"
$FW simulate --days 1

step "2/2 look at the log"
$FW log offsets events

printf '\nDemo state is in %s\n' "$FLYWHEEL_HOME"
