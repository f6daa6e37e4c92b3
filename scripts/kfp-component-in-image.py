"""Run one compiled KFP component (fetch-window of the training pipeline) inside the project image,
the way a KFP launcher runs it on a cluster: the compiled command and args, an executor input with
local artifact paths. Part of the image proof (scripts/image-proof.sh), not of `make test`.

    python scripts/kfp-component-in-image.py flywheel:0.1.0 /tmp/fwimg/component
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
PIPELINE = ROOT / "tests" / "golden" / "pipelines" / "training.yaml"
EXECUTOR = "exec-fetch-window"
MAKE_INPUT = """
import pandas as pd
frame = pd.DataFrame({
    "event_timestamp": pd.to_datetime(
        ["2026-01-05T10:00Z", "2026-01-06T10:00Z", "2026-01-07T10:00Z", "2026-01-08T10:00Z"]
    ),
    "user_id": ["u1", "u2", "u3", "u4"], "content_id": ["c1", "c2", "c3", "c4"], "label_click": [1, 0, 1, 0],
})
frame.to_parquet("/work/in/window.parquet")
print("input rows:", len(frame))
"""


def executor_input(work: str) -> dict[str, object]:
    """KFP's executor input for fetch-window: a window file, bounds, the output artifact and parameter."""
    return {
        "inputs": {
            "parameterValues": {
                "window_uri": f"{work}/in/window.parquet",
                "platform_config_json": "",
                "window_start": "2026-01-06T00:00:00Z",
                "window_end": "2026-01-08T00:00:00Z",
            }
        },
        "outputs": {
            "artifacts": {
                "window": {
                    "artifacts": [
                        {
                            "name": "window",
                            "type": {"schemaTitle": "system.Dataset", "schemaVersion": "0.0.1"},
                            "uri": f"{work}/out/window",
                            "metadata": {},
                        }
                    ]
                }
            },
            "parameters": {"Output": {"outputFile": f"{work}/out/Output"}},
            "outputFile": f"{work}/out/executor_output.json",
        },
    }


def main() -> None:
    """Run the component in the image and print what it wrote."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("image")
    parser.add_argument("workdir", type=Path)
    args = parser.parse_args()
    work: Path = args.workdir
    for sub in ("in", "out"):
        (work / sub).mkdir(parents=True, exist_ok=True)
        os.chmod(work / sub, 0o777)  # the image runs as uid 10001
    docker = ["docker", "run", "--rm", "--network", "host", "-v", f"{work}:/work"]
    subprocess.run([*docker, "--entrypoint", "python3", args.image, "-c", MAKE_INPUT], check=True)

    spec = next(iter(yaml.safe_load_all(PIPELINE.read_text(encoding="utf-8"))))
    container = spec["deploymentSpec"]["executors"][EXECUTOR]["container"]
    assert container["image"] == args.image, f"the compiled pipeline uses {container['image']}"
    command, component_args = container["command"], container["args"]
    payload = json.dumps(executor_input("/work"))
    component_args = [payload if arg == "{{$}}" else arg for arg in component_args]
    print("$ docker run", args.image, command[0], command[1], "<program> <component source>", *component_args[::2])
    subprocess.run([*docker, "--entrypoint", command[0], args.image, *command[1:], *component_args], check=True)

    output = json.loads((work / "out" / "executor_output.json").read_text())
    print("executor output:", json.dumps(output, indent=1)[:1500])
    result = subprocess.run(
        [
            *docker,
            "--entrypoint",
            "python3",
            args.image,
            "-c",
            "import pandas as pd; f = pd.read_parquet('/work/out/window'); print('window rows:', len(f));"
            " print(f.event_timestamp.min(), '..', f.event_timestamp.max())",
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    print(result.stdout.strip())


if __name__ == "__main__":
    main()
