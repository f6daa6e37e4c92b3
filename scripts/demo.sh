#!/usr/bin/env bash
# `make demo`: the whole loop that exists so far, locally, on the embedded defaults.
# State goes to $FLYWHEEL_HOME (default .flywheel/demo); each run starts clean.
# DEMO_USERS sets the simulated population (default 2000: the demo takes a few minutes).
set -euo pipefail
cd "$(dirname "$0")/.."
export FLYWHEEL_HOME="${FLYWHEEL_HOME:-.flywheel/demo}"
export MLFLOW_DISABLE_TELEMETRY=true
FW=".venv/bin/flywheel"
USERS="${DEMO_USERS:-2000}"
rm -rf "$FLYWHEEL_HOME"
mkdir -p "$FLYWHEEL_HOME"

step() { printf '\n\033[1;36m== %s\033[0m\n' "$*"; }

step "simulate a week of platform traffic ($USERS users) into the local event log"
$FW simulate --users "$USERS"
$FW log offsets events

step "batch features with PySpark into the Feast offline store"
$FW features backfill

step "apply the Feast repo and materialize the online store"
$FW features materialize

step "streaming features with Bytewax: validate -> DLQ, dedup, sessionize, push to Feast"
$FW stream

step "point-in-time training set from impressions"
$FW features training-set

step "training pipeline on KFP (kfp.local): data gate -> train two-tower + ranker -> evaluate -> gate -> register in MLflow -> export"
# exit 3 means a gate stopped the pipeline on purpose (the champion stays): an outcome, not a crash
$FW pipeline run training || [ $? -eq 3 ]

step "compile the pipelines to KFP YAML for a cluster"
$FW pipeline compile --out "$FLYWHEEL_HOME/pipelines/compiled"

step "feature freshness"
$FW features freshness || true   # simulated data is old by design: stale views exit 1

step "analyze the A/B experiment the simulator planted (+8% clicks for treatment)"
$FW experiments analyze home_row_ranker_v2

printf '\nDemo state is in %s (reports under %s/reports)\n' "$FLYWHEEL_HOME" "$FLYWHEEL_HOME"
