"""Content-level features: written by the Spark backfill, updated by the stream through a push source.

Paths are relative to the store's data folder (``features.data_dir``).
"""

from datetime import timedelta

from entities import content
from feast import FeatureView, FileSource, PushSource
from feature_types import fields

from flywheel.features.formulas import CONTENT_FEATURES

content_features_source = FileSource(
    name="content_features_source",
    path="offline/content_features.parquet",
    timestamp_field="event_timestamp",
    description="Daily snapshots of the content features (the Spark backfill).",
)

content_features_push = PushSource(
    name="content_features_push",
    batch_source=content_features_source,
    description="Rows the streaming job pushes as the title's windows move.",
)

content_features = FeatureView(
    name="content_features",
    entities=[content],
    ttl=timedelta(days=400),
    schema=fields(CONTENT_FEATURES),
    source=content_features_push,
    online=True,
    tags={"owner": "feature-platform", "updated_by": "spark-backfill,stream"},
)
