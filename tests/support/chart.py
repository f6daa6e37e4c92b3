"""Render the Helm chart with the real Helm engine (helm-python-sdk) for the chart tests and goldens.

`python -m tests.support.chart` rewrites the golden renderings (tests/golden/chart/) and the plain
manifests (manifests/); scripts/regen-goldens.sh calls it.
"""

from __future__ import annotations

import argparse
import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART_DIR = ROOT / "charts" / "flywheel"
GOLDEN_DIR = ROOT / "tests" / "golden" / "chart"
MANIFESTS_DIR = ROOT / "manifests"
RELEASE = "flywheel"
NAMESPACE = "flywheel"
MANIFESTS_SCENARIO = "default"
"""manifests/ holds the chart's defaults (values.yaml alone): what `make deploy` installs."""

MANIFEST_HEADER = (
    "# Generated from charts/flywheel with its default values (release {release}, namespace {namespace})\n"
    "# by scripts/regen-goldens.sh: do not edit. Source: {source}\n"
)


def scenarios() -> dict[str, Path | None]:
    """The chart's value scenarios: the defaults, then every ci/*-values.yaml file."""
    found: dict[str, Path | None] = {"default": None}
    for path in sorted((CHART_DIR / "ci").glob("*-values.yaml")):
        found[path.name.removesuffix("-values.yaml")] = path
    return found


def load_values(path: Path | None) -> dict[str, Any]:
    """The values of a scenario file ({} for the defaults)."""
    if path is None:
        return {}
    loaded = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    if not isinstance(loaded, dict):
        raise ValueError(f"{path}: the values must be a mapping")
    return loaded


def render(values: dict[str, Any], *, release: str = RELEASE, namespace: str = NAMESPACE) -> dict[str, str]:
    """Render the chart offline (no cluster): template path -> manifest text, NOTES.txt left out.

    Raises:
        helm_python.HelmValuesError: The values break values.schema.json (the message names the key).
        helm_python.HelmRenderError: A template failed (e.g. a `required` value is missing).
    """
    import helm_python

    chart = helm_python.Chart.load(CHART_DIR)
    rendered = chart.render(values, name=release, namespace=namespace, is_install=True)
    return {path: text for path, text in rendered.items() if not path.endswith("NOTES.txt") and text.strip()}


@dataclass(frozen=True)
class Rendered:
    """One scenario rendered: the text per template and the parsed objects."""

    name: str
    templates: dict[str, str]
    objects: list[dict[str, Any]]

    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        """The objects of one kind."""
        return [obj for obj in self.objects if obj.get("kind") == kind]


@functools.cache
def render_scenario(name: str) -> Rendered:
    """Render one named scenario (cached for the test session)."""
    templates = render(load_values(scenarios()[name]))
    objects: list[dict[str, Any]] = []
    for path in sorted(templates):
        for obj in yaml.safe_load_all(templates[path]):
            if obj:
                objects.append(obj)
    return Rendered(name=name, templates=templates, objects=objects)


def golden_text(rendered: Rendered) -> str:
    """The golden file of a scenario: every template in path order, each headed by its source."""
    parts = [f"# Source: {path}\n{rendered.templates[path].strip()}\n" for path in sorted(rendered.templates)]
    return "---\n".join(parts)


def is_test_hook(text: str) -> bool:
    """Whether a rendered template is a `helm test` hook (kept out of manifests/; other hooks stay)."""
    return any(
        isinstance(obj, dict) and (obj.get("metadata", {}).get("annotations") or {}).get("helm.sh/hook") == "test"
        for obj in yaml.safe_load_all(text)
    )


def manifest_files(rendered: Rendered) -> dict[str, str]:
    """manifests/<template path relative to templates/> -> text, the `helm test` hook left out."""
    files: dict[str, str] = {}
    for path in sorted(rendered.templates):
        text = rendered.templates[path]
        if is_test_hook(text):
            continue
        relative = path.split("/templates/", 1)[1]
        header = MANIFEST_HEADER.format(release=RELEASE, namespace=NAMESPACE, source=f"charts/{path}")
        files[relative] = header + text.strip() + "\n"
    return files


def write_all() -> list[Path]:
    """Rewrite the golden renderings and the plain manifests; returns the files written."""
    written: list[Path] = []
    GOLDEN_DIR.mkdir(parents=True, exist_ok=True)
    for stale in GOLDEN_DIR.glob("*.yaml"):
        stale.unlink()
    for name in scenarios():
        target = GOLDEN_DIR / f"{name}.yaml"
        target.write_text(golden_text(render_scenario(name)), encoding="utf-8")
        written.append(target)
    for stale in MANIFESTS_DIR.rglob("*.yaml"):
        stale.unlink()
    for relative, text in manifest_files(render_scenario(MANIFESTS_SCENARIO)).items():
        target = MANIFESTS_DIR / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
        written.append(target)
    return written


def main() -> None:
    """Regenerate the chart goldens and manifests/."""
    argparse.ArgumentParser(description=__doc__).parse_args()
    for path in write_all():
        print(path.relative_to(ROOT))


if __name__ == "__main__":
    main()
