#!/usr/bin/env bash
# Copy the alert rule files and Grafana dashboards into the chart (Helm reads files only from inside
# the chart). monitoring/rules/*.yaml and monitoring/dashboards/*.json are the originals; the chart's
# files/ copies are kept identical (tests/chart/test_chart_files.py fails when they differ).
set -euo pipefail
cd "$(dirname "$0")/.."
for kind in rules:yaml dashboards:json; do
  folder="${kind%%:*}" ext="${kind##*:}"
  target="charts/flywheel/files/$folder"
  rm -rf "$target"
  mkdir -p "$target"
  shopt -s nullglob
  for file in monitoring/"$folder"/*."$ext"; do
    cp "$file" "$target/"
  done
  shopt -u nullglob
  echo "$target: $(find "$target" -type f | wc -l) file(s)"
done
