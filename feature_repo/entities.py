"""The entities of Flywheel's features."""

from feast import Entity, ValueType

user = Entity(
    name="user",
    join_keys=["user_id"],
    value_type=ValueType.STRING,
    description="An account of the streaming platform (ids like u000001).",
)

content = Entity(
    name="content",
    join_keys=["content_id"],
    value_type=ValueType.STRING,
    description="A title, track or episode of the catalog (ids like c000001).",
)
