"""Monitoring rules: windows, drift and data-quality decisions, training-serving skew and the
retrain trigger's guards. Pure functions over frames and records; the jobs that read the logs,
run Evidently and export metrics live in ``monitoring/``."""
