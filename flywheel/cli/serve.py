"""`flywheel serve` (the KServe model server of the recommender) and `flywheel recommend` (a tritonclient client)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from flywheel.cli.common import ConfigOption, console, fail, load


def serve_command(
    config: ConfigOption = None,
    triton: Annotated[
        bool, typer.Option("--triton", help="Start a local tritonserver and rank the candidates on it.")
    ] = False,
    http_port: Annotated[
        int | None, typer.Option("--http-port", help="HTTP port (default: serving.http_port).")
    ] = None,
    grpc_port: Annotated[
        int | None, typer.Option("--grpc-port", help="gRPC port, 0 disables gRPC (default: serving.grpc_port).")
    ] = None,
    host: Annotated[str | None, typer.Option("--host", help="Bind address (default: serving.host).")] = None,
    bundle: Annotated[
        Path | None,
        typer.Option(
            "--bundle", help="Serve this model bundle folder instead of the registry's champion.", file_okay=False
        ),
    ] = None,
    features: Annotated[
        str | None, typer.Option("--features", help="online (the Feast online store) or none (default features).")
    ] = None,
) -> None:
    """Serve the recommender (Open Inference Protocol v2 over REST and gRPC, /metrics) until Ctrl-C."""
    cfg = load(config)
    updates: dict[str, object] = {}
    for key, value in (("http_port", http_port), ("grpc_port", grpc_port), ("host", host), ("bundle_dir", bundle)):
        if value is not None:
            updates[key] = value
    if features is not None:
        if features not in ("online", "none"):
            fail(f"--features must be online or none, got {features!r}")
        updates["feature_source"] = features
    if bundle is not None and not (bundle / "spec.json").exists():
        fail(f"{bundle}: not a model bundle (no spec.json)")
    serving_cfg = cfg.serving.model_validate({**cfg.serving.model_dump(), **updates})
    cfg = cfg.model_copy(update={"serving": serving_cfg})
    sys.argv = sys.argv[:1]  # KServe parses the command line when imported: keep flywheel's options from it
    from serving.server import build_server, run_model_server

    with console.status("loading the model (and starting Triton)" if triton else "loading the model"):
        try:
            parts = build_server(cfg, triton=triton)
        except (LookupError, FileNotFoundError, RuntimeError) as exc:
            fail(str(exc))
    deployment = parts.router.deployment
    console.print(
        f"serving [bold]{serving_cfg.model_name}[/] {deployment.versions()} on http://{serving_cfg.host}:"
        f"{serving_cfg.http_port}"
        + (f" and grpc {serving_cfg.host}:{serving_cfg.grpc_port}" if serving_cfg.grpc_port else "")
        + (f"; ranker on Triton {parts.triton.http_url}" if parts.triton else "")
    )
    try:
        run_model_server(
            parts.model,
            host=serving_cfg.host,
            http_port=serving_cfg.http_port,
            grpc_port=serving_cfg.grpc_port,
            access_log=serving_cfg.access_log,
            gil_switch_interval_ms=serving_cfg.gil_switch_interval_ms,
        )
    finally:
        parts.close()


def recommend_command(
    user: Annotated[str, typer.Argument(help="The user id.")],
    k: Annotated[int, typer.Option("--k", help="Titles to return.")] = 10,
    url: Annotated[str, typer.Option("--url", help="host:port of the model server (HTTP, or gRPC with --grpc).")] = (
        "127.0.0.1:8080"
    ),
    grpc: Annotated[bool, typer.Option("--grpc", help="Call the gRPC endpoint instead of HTTP.")] = False,
    exclude: Annotated[
        list[str] | None, typer.Option("--exclude", help="A title already watched (repeatable).")
    ] = None,
    model: Annotated[str, typer.Option("--model", help="Model name on the server.")] = "recommender",
) -> None:
    """Ask the model server for USER's recommendations (a tritonclient call) and print them."""
    from flywheel.serving.client import RecommendClientError, recommend

    try:
        result = recommend(url, user, k=k, exclude=exclude or [], grpc=grpc, model=model)
    except RecommendClientError as exc:
        fail(str(exc))
    table = Table(title=f"{user}: {result.variant} model v{result.model_version} (request {result.request_id})")
    table.add_column("rank", justify="right")
    table.add_column("content_id")
    table.add_column("score", justify="right")
    for rank, (item, score) in enumerate(zip(result.items, result.scores, strict=True), start=1):
        table.add_row(str(rank), item, f"{score:.4f}")
    console.print(table)


def register(app: typer.Typer) -> None:
    """Add the commands of this module to the root app."""
    app.command("serve")(serve_command)
    app.command("recommend")(recommend_command)
