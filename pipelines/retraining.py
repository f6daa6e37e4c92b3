"""The retraining pipeline: the training steps on a new window; the result becomes `challenger`
only if it beats the champion by the configured margins and passes the guardrails."""

from kfp import dsl

from components.data import fetch_window, validate_data
from components.register import halt
from pipelines._train import train_evaluate_register


@dsl.pipeline(name="flywheel-retraining", description="Retrain on a new window; register a challenger if it wins.")
def retraining(
    window_uri: str,
    catalog_uri: str,
    oracle_uri: str = "",
    config_json: str = "",
    platform_config_json: str = "",
    window_end: str = "",
) -> str:
    """Returns the outcome as JSON: registered (version, alias challenger) or stopped (stage, reason)."""
    window = fetch_window(window_uri=window_uri, platform_config_json=platform_config_json)
    quality = validate_data(
        window=window.outputs["window"], catalog_uri=catalog_uri, config_json=config_json, window_end=window_end
    )
    with dsl.If(quality.outputs["passed"] == True, name="data-ok"):  # noqa: E712 - KFP condition
        trained = train_evaluate_register(
            window=window.outputs["window"],
            catalog_uri=catalog_uri,
            oracle_uri=oracle_uri,
            config_json=config_json,
            bootstrap_champion=False,
            quality_report=quality.outputs["report"],
        )
    with dsl.Else(name="data-bad"):
        stopped = halt(stage="data-quality", reason=quality.outputs["summary"])
    return dsl.OneOf(trained.output, stopped.output)
