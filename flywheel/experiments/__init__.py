"""The experimentation platform: deterministic assignment, per-unit metrics, trustworthy analysis.

Modules, one concept each:

- :mod:`.catalogue` - the metrics an experiment may name (pure definitions).
- :mod:`.config` - experiment, layer and holdout definitions (strict pydantic, validated).
- :mod:`.assignment` - SHA-256 bucketing: layers, holdout, sticky ramp-ups.
- :mod:`.metrics` - per-unit metrics from an event frame (pandas).
- :mod:`.stats` - Welch, proportions, CUPED, winsorization, stratification, power.
- :mod:`.sequential` - the mixture SPRT (always-valid p-values and confidence sequences).
- :mod:`.multiple` - Benjamini-Hochberg and Bonferroni.
- :mod:`.guardrails` - thresholds that pause an experiment.
- :mod:`.analysis` - orchestrates the above into an :class:`ExperimentAnalysis`.
- :mod:`.report` - the HTML report and the JSON summary.
- :mod:`.source` - reading the events of the log without moving any consumer group.

Importing the package is cheap (nothing is imported eagerly); :mod:`.config` needs only pydantic.
"""
