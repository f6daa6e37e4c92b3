"""Reports of an analysis: a self-contained HTML file (plots as base64 PNGs) and a JSON summary."""

from __future__ import annotations

import base64
import dataclasses
import html
import io
import json
import math
from pathlib import Path

from flywheel.experiments.analysis import ExperimentAnalysis, MetricResult
from flywheel.experiments.stats import Effect

_CSS = """
body{font-family:system-ui,sans-serif;margin:2em;color:#222;max-width:1100px}
table{border-collapse:collapse;margin:1em 0}th,td{border:1px solid #ccc;padding:4px 8px;text-align:right}
th{background:#f3f3f3}td.l,th.l{text-align:left}.bad{color:#b00;font-weight:bold}.good{color:#070}
.note{background:#fff6d5;padding:.6em 1em;border-left:4px solid #e0b400}
"""


def _fmt(x: float | None, spec: str = ".4g") -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "—"
    return format(x, spec)


def _interval(e: Effect, relative: bool) -> str:
    if relative:
        return f"{e.relative:+.2%} [{e.relative_ci_low:+.2%}, {e.relative_ci_high:+.2%}]"
    return f"{e.difference:+.4g} [{e.ci_low:+.4g}, {e.ci_high:+.4g}]"


def _png(fig: object) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90, bbox_inches="tight")  # type: ignore[attr-defined]
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _plots(analysis: ExperimentAnalysis) -> list[tuple[str, str]]:
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    out: list[tuple[str, str]] = []
    ok = [r for r in analysis.results if r.status == "ok" and r.effect is not None]
    if ok:
        fig, ax = plt.subplots(figsize=(7, 0.5 + 0.45 * len(ok)))
        for i, r in enumerate(ok):
            e = r.effect
            assert e is not None
            color = "tab:green" if r.significant else "tab:gray"
            ax.errorbar(
                e.relative * 100,
                i,
                xerr=[[(e.relative - e.relative_ci_low) * 100], [(e.relative_ci_high - e.relative) * 100]],
                fmt="o",
                color=color,
                capsize=3,
            )
        ax.axvline(0, color="black", lw=0.8)
        ax.set_yticks(range(len(ok)), [f"{r.metric} ({r.variant})" for r in ok])
        ax.set_xlabel(f"relative change vs {analysis.control}, % ({1 - analysis.alpha:.0%} CI)")
        ax.invert_yaxis()
        out.append(("Effects and confidence intervals", _png(fig)))
        plt.close(fig)
        fig, ax = plt.subplots(figsize=(7, 3))
        for r in ok:
            if r.sequential is not None:
                ax.plot(r.sequential.look_units, r.sequential.p_path, label=f"{r.metric} ({r.variant})")
        ax.axhline(analysis.alpha, color="red", ls="--", lw=0.8, label="alpha")
        ax.set_yscale("log")
        ax.set_xlabel("units exposed")
        ax.set_ylabel("always-valid p-value")
        ax.legend(fontsize=7)
        out.append(("Sequential test (mSPRT) over the exposures", _png(fig)))
        plt.close(fig)
    fig, ax = plt.subplots(figsize=(5, 2.5))
    names = list(analysis.units)
    total = max(1, sum(analysis.units.values()))
    ax.bar(names, [analysis.units[n] / total for n in names], label="observed")
    ax.scatter(names, [analysis.srm.expected_shares[n] for n in names], color="red", zorder=3, label="expected")
    ax.set_ylabel("share of units")
    ax.legend(fontsize=7)
    out.append((f"Sample ratio (chi-square p = {analysis.srm.p_value:.3g})", _png(fig)))
    plt.close(fig)
    return out


def _row(r: MetricResult) -> str:
    cells = [
        f"<td class=l>{html.escape(r.metric)}</td><td class=l>{r.role}</td><td class=l>{html.escape(r.variant)}</td>"
    ]
    if r.status != "ok" or r.effect is None:
        cells.append(f"<td class='l bad' colspan=10>{html.escape(r.message)}</td>")
        return "<tr>" + "".join(cells) + "</tr>"
    e, s = r.effect, r.sequential
    cls = "good" if r.significant else ""
    cells += [
        f"<td>{e.n_control:,}/{e.n_treatment:,}</td>",
        f"<td>{_fmt(e.control_mean)}</td><td>{_fmt(e.treatment_mean)}</td>",
        f"<td>{_interval(e, relative=False)}</td>",
        f"<td class='{cls}'>{_interval(e, relative=True)}</td>",
        f"<td>{_fmt(e.p_value, '.3g')}</td><td class='{cls}'>{_fmt(r.p_adjusted, '.3g')}</td>",
        f"<td>{_fmt(s.p_value if s else None, '.3g')}</td>",
        f"<td>{_fmt(r.cuped_variance_reduction, '.1%')}</td>",
        f"<td>{_interval(r.stratified, relative=True) if r.stratified else '—'}</td>",
        f"<td>{e.method}</td>",
    ]
    return "<tr>" + "".join(cells) + "</tr>"


def render_html(analysis: ExperimentAnalysis) -> str:
    """The report as an HTML document."""
    a = analysis
    notes = f"<p class=note>{html.escape(a.message)}</p>" if a.message != "ok" else ""
    srm = "<span class=bad>MISMATCH</span>" if a.srm.mismatch else "ok"
    pause = "<span class=bad>PAUSE</span>" if a.guardrails.pause else "continue"
    header = (
        "<tr><th class=l>metric</th><th class=l>role</th><th class=l>variant</th><th>units c/t</th>"
        "<th>control</th><th>treatment</th><th>difference [CI]</th><th>relative [CI]</th>"
        f"<th>p</th><th>p adj. ({a.correction})</th><th>always-valid p</th><th>CUPED var. red.</th>"
        "<th>stratified relative [CI]</th><th>method</th></tr>"
    )
    rows = "".join(_row(r) for r in a.results)
    checks = "".join(f"<li>{html.escape(c.reason)}</li>" for c in a.guardrails.checks) or "<li>none</li>"
    plots = "".join(
        f"<h3>{html.escape(title)}</h3><img alt='{html.escape(title)}' src='data:image/png;base64,{png}'>"
        for title, png in _plots(a)
    )
    units = ", ".join(f"{k}: {v:,}" for k, v in a.units.items())
    return (
        f"<!doctype html><html><head><meta charset=utf-8><title>Experiment {html.escape(a.experiment_id)}</title>"
        f"<style>{_CSS}</style></head><body><h1>Experiment {html.escape(a.experiment_id)}</h1>{notes}"
        f"<p>Units: {units} (left out for conflicting variants: {a.conflicting_units}). "
        f"Sample ratio: {srm} (chi-square {a.srm.chi2:.3g}, p = {a.srm.p_value:.3g}). "
        f"Guardrails: {pause}. alpha = {a.alpha:g}, {1 - a.alpha:.0%} intervals.</p>"
        f"<table>{header}{rows}</table><h2>Guardrails</h2><ul>{checks}</ul><h2>Plots</h2>{plots}"
        "<p><small>Welch's t-test (mean and ratio metrics; ratios linearized by the delta method), "
        "difference of proportions (day-N activity), CUPED with the pre-exposure value of the same metric, "
        "relative intervals by the delta method, mixture SPRT for the always-valid p-value.</small></p>"
        "</body></html>"
    )


def write_report(analysis: ExperimentAnalysis, folder: Path) -> Path:
    """Write ``<folder>/<experiment id>.html`` and return its path."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{analysis.experiment_id}.html"
    path.write_text(render_html(analysis), encoding="utf-8")
    return path


def summary(analysis: ExperimentAnalysis) -> dict[str, object]:
    """The analysis as plain JSON-ready data (NaN kept as NaN; sequential paths left out)."""
    data = dataclasses.asdict(analysis)
    for result in data["results"]:
        if result["sequential"] is not None:
            result["sequential"].pop("p_path")
            result["sequential"].pop("look_units")
    data["guardrails"]["reasons"] = analysis.guardrails.reasons
    return data


def write_summary(analysis: ExperimentAnalysis, folder: Path) -> Path:
    """Write ``<folder>/<experiment id>.json`` (machine-readable, for automation) and return it."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{analysis.experiment_id}.json"
    path.write_text(json.dumps(summary(analysis), indent=2), encoding="utf-8")
    return path
