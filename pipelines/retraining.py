"""The retraining pipeline: the training steps on a new window; the result becomes `challenger`
only if it beats the champion by the configured margins and passes the guardrails."""

from kfp import dsl

from pipelines._train import gated_training


@dsl.pipeline(name="flywheel-retraining", description="Retrain on a new window; register a challenger if it wins.")
def retraining(
    window_uri: str,
    catalog_uri: str,
    oracle_uri: str = "",
    config_json: str = "",
    platform_config_json: str = "",
    window_start: str = "",
    window_end: str = "",
) -> str:
    """Returns the outcome as JSON: registered (version, alias challenger) or stopped (stage, reason)."""
    return gated_training(
        window_uri=window_uri,
        catalog_uri=catalog_uri,
        oracle_uri=oracle_uri,
        config_json=config_json,
        platform_config_json=platform_config_json,
        window_start=window_start,
        window_end=window_end,
        bootstrap_champion=False,
    )
