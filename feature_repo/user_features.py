"""User-level features: written by the Spark backfill, updated by the stream through a push source.

Paths are relative to the store's data folder (``features.data_dir``).
"""

from datetime import timedelta

from entities import user
from feast import FeatureView, FileSource, PushSource
from feature_types import fields

from flywheel.features.formulas import USER_FEATURES

user_features_source = FileSource(
    name="user_features_source",
    path="offline/user_features.parquet",
    timestamp_field="event_timestamp",
    description="Daily snapshots of the user features (the Spark backfill).",
)

user_features_push = PushSource(
    name="user_features_push",
    batch_source=user_features_source,
    description="Rows the streaming job pushes as the user's windows move.",
)

user_features = FeatureView(
    name="user_features",
    entities=[user],
    ttl=timedelta(days=400),
    schema=fields(USER_FEATURES),
    source=user_features_push,
    online=True,
    tags={"owner": "feature-platform", "updated_by": "spark-backfill,stream"},
)
