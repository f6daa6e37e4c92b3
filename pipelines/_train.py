"""The steps shared by the pipelines: the checked window (all three), train-evaluate-register (training, retraining)."""

from kfp import dsl
from kfp.dsl import Dataset, Input, Markdown

from components.data import build_training_set, fetch_window, validate_data
from components.evaluate import evaluate_candidate, gate_candidate
from components.register import export_model, halt, register_model
from components.train import train_ranker, train_retrieval


@dsl.pipeline(name="train-evaluate-register")
def train_evaluate_register(
    window: Input[Dataset],
    catalog_uri: str,
    oracle_uri: str,
    config_json: str,
    bootstrap_champion: bool,
    quality_report: Input[Markdown],
) -> str:
    """Training set -> retrieval + ranker -> evaluate -> gate -> register + export, or stop."""
    data = build_training_set(window=window, catalog_uri=catalog_uri, config_json=config_json)
    retrieval = train_retrieval(
        train=data.outputs["train"], spec=data.outputs["spec"], catalog_uri=catalog_uri, config_json=config_json
    ).set_display_name("train retrieval (two-tower)")
    ranker = train_ranker(
        train=data.outputs["train"],
        spec=data.outputs["spec"],
        retrieval=retrieval.outputs["model"],
        catalog_uri=catalog_uri,
        config_json=config_json,
    ).set_display_name("train ranker (multi-task)")
    evaluation = evaluate_candidate(
        train=data.outputs["train"],
        holdout=data.outputs["holdout"],
        spec=data.outputs["spec"],
        retrieval=retrieval.outputs["model"],
        ranker=ranker.outputs["model"],
        quality_report=quality_report,
        catalog_uri=catalog_uri,
        oracle_uri=oracle_uri,
        window_json=data.outputs["Output"],
        config_json=config_json,
    )
    decision = gate_candidate(
        evaluation=evaluation.outputs["evaluation"], config_json=config_json, bootstrap_champion=bootstrap_champion
    )
    with dsl.If(decision.outputs["passed"] == True, name="gate-passed"):  # noqa: E712 - KFP condition
        registered = register_model(
            run_id=decision.outputs["run_id"],
            alias=decision.outputs["alias"],
            reason=decision.outputs["reason"],
            config_json=config_json,
        )
        exported = export_model(
            bundle=evaluation.outputs["bundle"], registration=registered.output, config_json=config_json
        )
    with dsl.Else(name="gate-failed"):
        stopped = halt(stage="promotion", reason=decision.outputs["reason"], run_id=decision.outputs["run_id"])
    return dsl.OneOf(exported.outputs["Output"], stopped.output)


def checked_window(
    *,
    window_uri: str,
    platform_config_json: str,
    catalog_uri: str,
    config_json: str,
    window_start: str,
    window_end: str,
    purpose: str = "training",
) -> tuple[dsl.PipelineTask, dsl.PipelineTask]:
    """The fetch-window and data-quality-gate tasks every pipeline starts with (``purpose``:
    ``retraining`` makes drift against the champion's window a warning, not a stop)."""
    window = fetch_window(
        window_uri=window_uri,
        platform_config_json=platform_config_json,
        window_start=window_start,
        window_end=window_end,
    )
    quality = validate_data(
        window=window.outputs["window"],
        catalog_uri=catalog_uri,
        config_json=config_json,
        window_end=window_end,
        window_info=window.outputs["Output"],
        purpose=purpose,
    )
    return window, quality


def gated_training(
    *,
    window_uri: str,
    catalog_uri: str,
    oracle_uri: str,
    config_json: str,
    platform_config_json: str,
    window_start: str,
    window_end: str,
    bootstrap_champion: bool,
) -> dsl.OneOf:
    """Fetch the window, run the data-quality gate, then train-evaluate-register or stop.

    Called inside a pipeline function (it adds tasks to the pipeline being defined); returns
    the outcome JSON of whichever branch ran.
    """
    window, quality = checked_window(
        window_uri=window_uri,
        platform_config_json=platform_config_json,
        catalog_uri=catalog_uri,
        config_json=config_json,
        window_start=window_start,
        window_end=window_end,
        purpose="training" if bootstrap_champion else "retraining",
    )
    with dsl.If(quality.outputs["passed"] == True, name="data-ok"):  # noqa: E712 - KFP condition
        trained = train_evaluate_register(
            window=window.outputs["window"],
            catalog_uri=catalog_uri,
            oracle_uri=oracle_uri,
            config_json=config_json,
            bootstrap_champion=bootstrap_champion,
            quality_report=quality.outputs["report"],
        )
    with dsl.Else(name="data-bad"):
        stopped = halt(stage="data-quality", reason=quality.outputs["summary"])
    return dsl.OneOf(trained.output, stopped.output)
