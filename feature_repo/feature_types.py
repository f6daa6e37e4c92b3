"""Feast types of the feature kinds used by flywheel.features.formulas (one place for names)."""

from feast import Field
from feast.types import Array, Float64, Int64, String

_TYPES = {
    "float": Float64,
    "int": Int64,
    "string": String,
    "float_list": Array(Float64),
    "string_list": Array(String),
}


def fields(spec: tuple[tuple[str, str], ...]) -> list[Field]:
    """Feast fields of ``(name, kind)`` pairs."""
    return [Field(name=name, dtype=_TYPES[kind]) for name, kind in spec]
