"""Experiment, layer and holdout definitions: strict pydantic models, validated as a whole.

A layer divides the unit space into :data:`BUCKETS` buckets by ``SHA-256(layer salt : unit)``.
An experiment occupies the bucket range ``[offset, offset + allocation)`` of its layer, so the
experiments of one layer are mutually exclusive, and those of different layers (different
salts) are orthogonal. A ramp-up that only raises ``allocation_percent`` keeps every unit that
was in the experiment in it, with the same variant (the variant hash is salted by the
experiment id, not by the bucket). A global holdout (its own salt) is taken out of every layer.

Everything a registry can get wrong is rejected with the reason: ranges that overlap or run
past 100 %, allocations that add up to more than 100 % in a layer, unknown layers, unknown
metrics, non-positive variant weights, a control that is not one of the variants.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from flywheel.experiments.catalogue import is_known_metric, metric_names

BUCKETS = 10_000
"""Buckets per layer: allocations have a resolution of 0.01 %."""
DEFAULT_LAYER = "default"
_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$"


class Section(BaseModel):
    """Strict, frozen and documented like ``flywheel.config.base.Section``.

    Defined here rather than imported because ``flywheel.config`` imports this module (the
    registry is part of the configuration): importing back would be circular.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)


Name = Annotated[str, Field(pattern=_NAME, max_length=100)]


def _check_metric(name: str) -> str:
    if not is_known_metric(name):
        raise ValueError(f"unknown metric {name!r} (known: {', '.join(metric_names())})")
    return name


def _to_buckets(percent: float, what: str) -> int:
    buckets = percent * BUCKETS / 100.0
    if abs(buckets - round(buckets)) > 1e-6:
        raise ValueError(f"{what} {percent}% is not a multiple of {100 / BUCKETS}%")
    return round(buckets)


class VariantSpec(Section):
    """One arm of an experiment."""

    name: Name
    """Variant name, as events carry it in ``context.variant``."""
    weight: float
    """Relative share of the experiment's units (any positive scale: 50/50 or 1/1)."""

    @field_validator("weight")
    @classmethod
    def _positive(cls, weight: float) -> float:
        if not weight > 0:
            raise ValueError(f"variant weight must be positive, got {weight}")
        return weight


class GuardrailSpec(Section):
    """A metric that may not get worse than a threshold; a breach pauses the experiment."""

    metric: str
    """Metric of the catalogue."""
    max_relative_degradation: float = Field(default=0.02, gt=0, lt=1)
    """Largest tolerated relative change in the harmful direction (0.02 = 2 %)."""

    @field_validator("metric")
    @classmethod
    def _metric_known(cls, name: str) -> str:
        return _check_metric(name)


class ExperimentSpec(Section):
    """One experiment: where it sits in its layer, its arms and its metrics."""

    id: Name
    """Experiment id, as events carry it in ``context.experiment_id``; also the variant salt."""
    layer: Name = DEFAULT_LAYER
    """The layer the experiment belongs to (mutually exclusive with the layer's others)."""
    offset_percent: float = Field(default=0.0, ge=0)
    """Start of the experiment's bucket range in its layer, in percent."""
    allocation_percent: float = Field(default=100.0, gt=0)
    """Share of the layer's units in the experiment, in percent (ramp up by raising it)."""
    variants: tuple[VariantSpec, ...] = (
        VariantSpec(name="control", weight=50),
        VariantSpec(name="treatment", weight=50),
    )
    """The arms and their weights."""
    control: Name = "control"
    """The variant every other variant is compared with."""
    primary_metric: str = "ctr"
    """The decision metric."""
    metrics: tuple[str, ...] = ()
    """Secondary metrics (corrected for multiplicity together with the primary)."""
    guardrails: tuple[GuardrailSpec, ...] = ()
    """Guardrails of this experiment, on top of the global ones."""
    stratify_by: str | None = "device_type"
    """Unit attribute for the post-stratified estimate (None: none)."""
    cuped: bool = True
    """Adjust with the unit's pre-exposure value of the same metric."""
    paused: bool = False
    """A paused experiment assigns nobody; units get the default experience."""

    @field_validator("primary_metric")
    @classmethod
    def _primary_known(cls, name: str) -> str:
        return _check_metric(name)

    @field_validator("metrics")
    @classmethod
    def _metrics_known(cls, names: tuple[str, ...]) -> tuple[str, ...]:
        for name in names:
            _check_metric(name)
        return names

    @model_validator(mode="after")
    def _consistent(self) -> ExperimentSpec:
        names = [v.name for v in self.variants]
        if len(names) < 2:
            raise ValueError(f"experiment {self.id!r} needs at least two variants")
        if len(set(names)) != len(names):
            raise ValueError(f"experiment {self.id!r} repeats a variant name: {names}")
        if self.control not in names:
            raise ValueError(f"experiment {self.id!r}: control {self.control!r} is not a variant {names}")
        end = self.offset_percent + self.allocation_percent
        if end > 100 + 1e-9:
            raise ValueError(
                f"experiment {self.id!r}: range [{self.offset_percent:g}%, {end:g}%) exceeds 100% of its layer"
            )
        _to_buckets(self.offset_percent, f"experiment {self.id!r}: offset")
        _to_buckets(self.allocation_percent, f"experiment {self.id!r}: allocation")
        return self

    @property
    def bucket_range(self) -> tuple[int, int]:
        """``[start, end)`` in the layer's buckets."""
        start = round(self.offset_percent * BUCKETS / 100)
        return start, start + round(self.allocation_percent * BUCKETS / 100)

    @property
    def all_metrics(self) -> tuple[str, ...]:
        """The primary metric, then the secondary ones (no repeats)."""
        return tuple(dict.fromkeys((self.primary_metric, *self.metrics)))

    @property
    def weights(self) -> dict[str, float]:
        """Variant name -> share of the experiment (sums to 1)."""
        total = sum(v.weight for v in self.variants)
        return {v.name: v.weight / total for v in self.variants}


class LayerSpec(Section):
    """A layer: experiments inside it are mutually exclusive, across layers orthogonal."""

    name: Name
    """Layer name."""
    salt: str | None = None
    """Hash salt of the layer's buckets (default: the name). Change it to reshuffle the layer."""

    @property
    def hash_salt(self) -> str:
        """The salt actually used."""
        return self.salt or self.name


class HoldoutSpec(Section):
    """Units kept out of every experiment, to measure the sum of all launches."""

    percent: float = Field(default=0.0, ge=0, lt=100)
    """Share of all units held out, in percent."""
    salt: str = "flywheel-global-holdout"
    """Hash salt of the holdout (independent of every layer)."""


class ExperimentRegistry(Section):
    """Every layer and experiment, validated together."""

    holdout: HoldoutSpec = HoldoutSpec()
    """The global holdout."""
    layers: tuple[LayerSpec, ...] = ()
    """Declared layers; the layer ``default`` exists without being declared."""
    experiments: tuple[ExperimentSpec, ...] = ()
    """The experiments."""

    @model_validator(mode="after")
    def _valid_layout(self) -> ExperimentRegistry:
        layer_names = [layer.name for layer in self.layers]
        if len(set(layer_names)) != len(layer_names):
            raise ValueError(f"layer names repeat: {layer_names}")
        salts = [layer.hash_salt for layer in self.layers]
        if len(set(salts)) != len(salts):
            raise ValueError(f"two layers share a salt (they would not be orthogonal): {salts}")
        ids = [e.id for e in self.experiments]
        if len(set(ids)) != len(ids):
            raise ValueError(f"experiment ids repeat: {ids}")
        known = {*layer_names, DEFAULT_LAYER}
        for exp in self.experiments:
            if exp.layer not in known:
                raise ValueError(f"experiment {exp.id!r} names unknown layer {exp.layer!r}")
        for layer in sorted(known):
            members = sorted((e for e in self.experiments if e.layer == layer), key=lambda e: e.bucket_range)
            total = sum(e.allocation_percent for e in members)
            if total > 100 + 1e-9:
                raise ValueError(
                    f"layer {layer!r}: allocations add up to {total:g}% (more than 100%): "
                    + ", ".join(f"{e.id} {e.allocation_percent:g}%" for e in members)
                )
            for first, second in zip(members, members[1:], strict=False):
                if second.bucket_range[0] < first.bucket_range[1]:
                    raise ValueError(
                        f"layer {layer!r}: experiments {first.id!r} "
                        f"[{first.offset_percent:g}%, "
                        f"{first.offset_percent + first.allocation_percent:g}%) and "
                        f"{second.id!r} [{second.offset_percent:g}%, "
                        f"{second.offset_percent + second.allocation_percent:g}%) overlap"
                    )
        return self

    def layer(self, name: str) -> LayerSpec:
        """The layer called ``name`` (``default`` exists implicitly)."""
        for layer in self.layers:
            if layer.name == name:
                return layer
        if name == DEFAULT_LAYER:
            return LayerSpec(name=DEFAULT_LAYER)
        raise KeyError(f"unknown layer {name!r}")

    def experiment(self, experiment_id: str) -> ExperimentSpec:
        """The experiment with this id.

        Raises:
            KeyError: No such experiment; the message lists the known ids.
        """
        for exp in self.experiments:
            if exp.id == experiment_id:
                return exp
        known = ", ".join(e.id for e in self.experiments) or "none"
        raise KeyError(f"unknown experiment {experiment_id!r} (known: {known})")


def load_registry_file(path: Path) -> ExperimentRegistry:
    """Read and validate a registry YAML file (``holdout``, ``layers``, ``experiments``).

    Raises:
        ValueError: The file cannot be read, is not YAML, or is invalid; the message names the
            file and every field at fault with its reason.
    """
    import yaml
    from pydantic import ValidationError

    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except OSError as exc:
        raise ValueError(f"{path}: cannot read the experiment registry: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        raise ValueError(f"{path}: not valid YAML: {exc}") from exc
    try:
        return ExperimentRegistry.model_validate(raw)
    except ValidationError as exc:
        lines = [f"{path}: invalid experiment registry"]
        for item in exc.errors():
            field = ".".join(str(part) for part in item["loc"]) or "<root>"
            lines.append(f"  field '{field}': {item['msg']}")
        raise ValueError("\n".join(lines)) from exc
