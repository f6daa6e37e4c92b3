"""Every pipeline compiles to the YAML checked in as its golden file."""

from pathlib import Path

import pytest
import yaml

from pipelines.compile import PIPELINE_NAMES, compile_pipeline

pytestmark = pytest.mark.integration

GOLDEN = Path(__file__).resolve().parents[2] / "golden" / "pipelines"


@pytest.mark.parametrize("name", PIPELINE_NAMES)
def test_compiled_yaml_matches_golden(name: str, tmp_path: Path) -> None:
    compiled = compile_pipeline(name, tmp_path).read_text()
    golden = (GOLDEN / f"{name}.yaml").read_text()
    assert compiled == golden, f"{name}.yaml differs from its golden file: run scripts/regen-goldens.sh"


def test_components_run_in_the_project_image() -> None:
    spec = yaml.safe_load((GOLDEN / "training.yaml").read_text())
    images = {e["container"]["image"] for e in spec["deploymentSpec"]["executors"].values()}
    assert images == {"flywheel:0.1.0"}
    assert "pip install" not in (GOLDEN / "training.yaml").read_text()
