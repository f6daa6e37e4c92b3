"""Monitoring: every Prometheus metric of Flywheel (in :mod:`monitoring.metrics`), drift and
quality jobs, alert rules, dashboards and the retrain trigger."""
