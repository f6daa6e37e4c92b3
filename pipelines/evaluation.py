"""The evaluation pipeline: score any registered version (number or alias) on a fresh window."""

from kfp import dsl

from components.data import build_training_set
from components.evaluate import evaluate_version
from components.register import halt
from pipelines._train import checked_window


@dsl.pipeline(name="flywheel-evaluation", description="Score a registered version on a fresh window.")
def evaluation(
    window_uri: str,
    catalog_uri: str,
    model_ref: str = "champion",
    oracle_uri: str = "",
    config_json: str = "",
    platform_config_json: str = "",
    window_start: str = "",
    window_end: str = "",
) -> str:
    """Returns the outcome as JSON: evaluated (version, key metrics) or stopped (stage, reason)."""
    window, quality = checked_window(
        window_uri=window_uri,
        platform_config_json=platform_config_json,
        catalog_uri=catalog_uri,
        config_json=config_json,
        window_start=window_start,
        window_end=window_end,
    )
    with dsl.If(quality.outputs["passed"] == True, name="data-ok"):  # noqa: E712 - KFP condition
        data = build_training_set(window=window.outputs["window"], catalog_uri=catalog_uri, config_json=config_json)
        scored = evaluate_version(
            model_ref=model_ref,
            train=data.outputs["train"],
            holdout=data.outputs["holdout"],
            catalog_uri=catalog_uri,
            oracle_uri=oracle_uri,
            window_json=data.outputs["Output"],
            config_json=config_json,
        )
    with dsl.Else(name="data-bad"):
        stopped = halt(stage="data-quality", reason=quality.outputs["summary"])
    return dsl.OneOf(scored.outputs["Output"], stopped.output)
