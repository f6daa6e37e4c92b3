"""The feature platform.

* :mod:`~flywheel.features.formulas` — pure feature formulas: per-entity, per-day mergeable state,
  ``*_event_delta`` / ``merge_*`` / ``finalize_*`` (shared by the stream and the batch job);
* :mod:`~flywheel.features.sessions` — sessionization with an inactivity gap;
* :mod:`~flywheel.features.aggregates` — the feature tables computed in Python (the reference);
* :mod:`~flywheel.features.sources` — validated events from the log, the catalog, the users;
* :mod:`~flywheel.features.spark_job` — the PySpark backfill (same numbers as the formulas);
* :mod:`~flywheel.features.backfill` — log → Spark → offline store;
* :mod:`~flywheel.features.store` — Feast from the configuration: apply, materialize;
* :mod:`~flywheel.features.training_set` — labelled impressions, point-in-time features;
* :mod:`~flywheel.features.cross` — cross features of a (user, title) pair;
* :mod:`~flywheel.features.online` — the fast online read path of a ranking request;
* :mod:`~flywheel.features.freshness` — the age of each view's newest data.
"""
