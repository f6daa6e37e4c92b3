"""The serving section of the configuration."""

import pytest

from flywheel.config import ConfigError, load_config
from flywheel.config.serving import ServingConfig, TritonConfig


def test_each_variant_has_its_predictor_or_the_champions() -> None:
    env = {"FLYWHEEL_TRITON_URL": "ranker-champion-predictor:80", "FLYWHEEL_TRITON_URL_CANARY": "ranker-canary:80"}
    triton = load_config(env=env).serving.triton
    assert triton.url_for("champion") == "ranker-champion-predictor:80"
    assert triton.url_for("canary") == "ranker-canary:80"
    assert triton.url_for("shadow") == "ranker-champion-predictor:80"


def test_empty_environment_values_mean_none() -> None:
    serving = load_config(env={}).serving
    assert serving.triton.url is None and serving.bundle_dir is None
    assert TritonConfig(url="").url_for("canary") is None


def test_default_k_above_max_k_is_refused() -> None:
    with pytest.raises(ValueError, match="default_k"):
        ServingConfig(default_k=50, max_k=10)


def test_unknown_serving_keys_name_the_field(tmp_path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("serving: {http_prot: 1}\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="serving.http_prot"):
        load_config(path)


def test_requests_run_on_the_event_loop_but_a_triton_call_on_threads_unless_threads_are_set() -> None:
    serving = load_config(env={}).serving
    assert serving.request_threads is None
    assert serving.steps_on_threads(local_triton=False) == (0, False)
    assert serving.steps_on_threads(local_triton=True) == (2, False)
    canary_on_triton = ServingConfig(triton=TritonConfig(canary_url="ranker-canary:80"))
    assert canary_on_triton.steps_on_threads(local_triton=False) == (2, False)
    only_the_shadow = ServingConfig(triton=TritonConfig(shadow_url="ranker-shadow:80"))
    assert only_the_shadow.steps_on_threads(local_triton=False) == (0, False)  # the shadow has its own threads
    assert ServingConfig(request_threads=3).steps_on_threads(local_triton=True) == (3, True)
    assert ServingConfig(request_threads=0).steps_on_threads(local_triton=True) == (0, True)
