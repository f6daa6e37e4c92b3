"""Bytewax dataflows: thin wiring of :mod:`flywheel.stream` between the event log and Feast.

Run locally with ``flywheel stream`` or ``python -m bytewax.run "streaming.dataflow:flow_from_env()"``;
on a cluster as a StatefulSet, one worker per pod.
"""
