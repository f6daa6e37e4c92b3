"""Components of the last steps: register the version, export it, or stop with the reason."""

from kfp import dsl
from kfp.dsl import Input, Model, Output

from components.image import PROJECT_IMAGE


@dsl.component(base_image=PROJECT_IMAGE, install_kfp_package=False)
def register_model(run_id: str, alias: str, reason: str, config_json: str) -> str:
    """Register the run's model in MLflow and point the alias at it; returns the version as JSON."""
    import json

    from flywheel.config.training import parse_training_config
    from flywheel.registry.steps import register_candidate

    return json.dumps(register_candidate(run_id, alias, parse_training_config(config_json), reason=reason))


@dsl.component(base_image=PROJECT_IMAGE, install_kfp_package=False)
def export_model(bundle: Input[Model], registration: str, config_json: str, serving: Output[Model]) -> str:
    """TorchScript + Triton repository of the registered version; returns the pipeline outcome."""
    import json

    from flywheel.config.training import parse_training_config
    from flywheel.registry.steps import export_for_serving

    info = json.loads(registration)
    export_for_serving(bundle.path, serving.path, parse_training_config(config_json), run_id=info["run_id"])
    serving.metadata.update({"model_name": info["model_name"], "version": info["version"]})
    return json.dumps({"status": "registered", **info, "serving": serving.path})


@dsl.component(base_image=PROJECT_IMAGE, install_kfp_package=False)
def halt(stage: str, reason: str, run_id: str = "") -> str:
    """Stop the pipeline at a gate; the champion is left unchanged. Returns the outcome as JSON."""
    import json

    print(f"stopped at the {stage} gate: {reason}")
    outcome = {"status": "stopped", "stage": stage, "reason": reason}
    if run_id:
        outcome["run_id"] = run_id  # the evaluated (unregistered) run, for its metrics
    return json.dumps(outcome)
