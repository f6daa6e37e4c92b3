"""Flywheel: the MLOps loop of a streaming platform's recommender."""

__version__ = "0.1.0"
