"""Serving: the recommend path (features, retrieval, ranking, rules), routing and the prediction log.

The KServe model server in ``serving/`` only wires these modules.
"""
