"""Recommender models: contract, encoding, two-tower retrieval, multi-task ranker, bundles."""
