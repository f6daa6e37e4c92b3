"""The training pipeline: validate data -> training set -> train retrieval -> train ranker ->
evaluate -> gate -> register -> export. The first model becomes `champion`, later ones
`challenger` when they pass the gate."""

from kfp import dsl

from pipelines._train import gated_training


@dsl.pipeline(name="flywheel-training", description="Train, evaluate, gate, register and export the recommender.")
def training(
    window_uri: str,
    catalog_uri: str,
    oracle_uri: str = "",
    config_json: str = "",
    platform_config_json: str = "",
    window_start: str = "",
    window_end: str = "",
) -> str:
    """Returns the outcome as JSON: registered (version, alias) or stopped (stage, reason)."""
    return gated_training(
        window_uri=window_uri,
        catalog_uri=catalog_uri,
        oracle_uri=oracle_uri,
        config_json=config_json,
        platform_config_json=platform_config_json,
        window_start=window_start,
        window_end=window_end,
        bootstrap_champion=True,
    )
