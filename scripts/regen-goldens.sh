#!/usr/bin/env bash
# Regenerate the golden pipeline YAML files (tests/golden/pipelines/*.yaml) after changing a
# pipeline or a component; review the diff before committing.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PY:-.venv/bin/python}"
"$PY" -m flywheel.cli.main pipeline compile --golden
