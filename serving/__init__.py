"""The KServe model server of the recommender: thin wiring over :mod:`flywheel.serving`."""
