#!/usr/bin/env bash
# Regenerate the golden files after changing a pipeline, a component or the chart: the compiled
# pipeline YAML (tests/golden/pipelines/), the chart rendered per scenario (tests/golden/chart/)
# and the plain manifests (manifests/, the chart's defaults). Review the diff before committing.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PY:-.venv/bin/python}"
"$PY" -m flywheel.cli.main pipeline compile --golden
scripts/sync-chart-files.sh
PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" "$PY" -m tests.support.chart
