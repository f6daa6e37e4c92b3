#!/usr/bin/env bash
# `make demo`: the whole loop locally, in one process (flywheel monitor loop): simulate (tastes
# shift late) -> batch features (online store as of the shift) -> train and register the champion
# -> serve it to simulated users -> the stream catches up on the days after the shift -> serve
# again -> drift detected (prediction log and event stream) -> alert -> one guarded retraining ->
# the challenger canaried -> promoted or rolled back, with the reason. Ends with a summary table (stage times, peak memory, online CTR)
# and an HTML report with plots ($FLYWHEEL_HOME/reports/loop/loop.html).
# State goes to $FLYWHEEL_HOME (default .flywheel/demo); each run starts clean.
# DEMO_USERS sets the simulated population (default 1000), DEMO_DAYS the days (default 5), DEMO_WARM_DAYS
# the days of history the users arrive with (default 7, simulated first, never trained on), DEMO_SEED
# the simulator's seed (default: the configured one). The loop's simulated users come back about twice a
# day and know what they like (flywheel monitor loop --sessions 2.0 --taste-scale 10, its defaults).
set -euo pipefail
cd "$(dirname "$0")/.."
export FLYWHEEL_HOME="${FLYWHEEL_HOME:-.flywheel/demo}"
export MLFLOW_DISABLE_TELEMETRY=true
FW=".venv/bin/flywheel"
USERS="${DEMO_USERS:-1000}"
DAYS="${DEMO_DAYS:-5}"
WARM_DAYS="${DEMO_WARM_DAYS:-7}"
SEED_OPTION=()
if [[ -n "${DEMO_SEED:-}" ]]; then SEED_OPTION=(--seed "$DEMO_SEED"); fi
rm -rf "$FLYWHEEL_HOME"
mkdir -p "$FLYWHEEL_HOME"

step() { printf '\n\033[1;36m== %s\033[0m\n' "$*"; }

step "the closed loop ($USERS users with $WARM_DAYS days of history, $DAYS days, tastes shift on day $((DAYS - 2)))"
$FW monitor loop --users "$USERS" --days "$DAYS" --shift-day "$((DAYS - 2))" --warm-days "$WARM_DAYS" "${SEED_OPTION[@]}"

step "the retrain trigger's decisions"
$FW monitor decisions

step "compile the pipelines to KFP YAML for a cluster"
$FW pipeline compile --out "$FLYWHEEL_HOME/pipelines/compiled"

step "analyze the A/B experiment the simulator planted (+8% clicks for treatment)"
$FW experiments analyze home_row_ranker_v2

printf '\nDemo state is in %s (the loop report: %s/reports/loop/loop.html)\n' "$FLYWHEEL_HOME" "$FLYWHEEL_HOME"
