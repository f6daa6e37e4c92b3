"""`flywheel stream`: run the streaming features dataflow (owned by the streaming work)."""

from __future__ import annotations

import json
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from flywheel.cli.common import ConfigOption, console, fail, load

if TYPE_CHECKING:
    from flywheel.config.models import FlywheelConfig
    from flywheel.config.streaming import StreamingConfig


def _opt(flag: str, help_text: str, **kwargs: Any) -> Any:
    return typer.Option(*flag.split(" "), help=help_text, **kwargs)


def _overrides(**values: Any) -> dict[str, Any]:
    return {name: value for name, value in values.items() if value is not None}


def _simulate(config: FlywheelConfig, days: int) -> int:
    from flywheel.simulator.engine import simulate

    simulator = config.simulator.model_copy(update={"days": days})
    summary = simulate(config.model_copy(update={"simulator": simulator}), ground_truth=False)
    console.print(
        f"simulated {summary.days} day(s): {summary.events_written} records to '{summary.topic}' "
        f"in {summary.seconds:.1f} s"
    )
    return summary.end_ms


def _feast_sinks(config: FlywheelConfig) -> tuple[Any, ...]:
    from streaming.feast_sink import FeastPushSink
    from streaming.settings import features_section

    features = features_section(config)
    if not (Path(features.repo_path) / "feature_store.yaml").exists():
        console.print(f"[yellow]no Feast repo at {features.repo_path}: features go to the local table only[/]")
        return ()
    from flywheel.features.store import open_store

    try:
        store = open_store(features)
        for source in ("user_features_push", "content_features_push"):
            store.get_data_source(source)
    except Exception as exc:  # noqa: BLE001 - Feast raises many kinds; the message says what is missing
        console.print(f"[yellow]Feast push disabled ({exc}); apply the feature repo first[/]", highlight=False)
        return ()
    return (FeastPushSink(features),)


def _check_source(config: FlywheelConfig) -> None:
    """Fail clearly when the events topic cannot be read (Bytewax's Kafka source would hang)."""
    log_config = config.event_log
    topic = log_config.topics.events
    if log_config.backend == "kafka":
        from streaming.sources import check_kafka

        try:
            check_kafka(log_config.kafka.bootstrap_servers, topic)
        except RuntimeError as exc:
            fail(str(exc))
        return
    from flywheel.events.local_log import LocalEventLog

    if topic not in LocalEventLog(log_config.local.path).topics():
        fail(f"topic {topic!r} does not exist under {log_config.local.path}: simulate or import events first")


def prepare_run(config: FlywheelConfig, streaming: StreamingConfig, *, fresh: bool) -> StreamingConfig:
    """Check the source, set the paths, forget earlier progress if asked, create the recovery folder.

    Args:
        config: The Flywheel configuration.
        streaming: The streaming section (with the command line's overrides).
        fresh: Delete the recovery folder, the report and the feature table first.

    Returns:
        The section with absolute paths.
    """
    from bytewax.recovery import init_db_dir

    from streaming.settings import absolute_paths

    _check_source(config)
    streaming = absolute_paths(streaming, config.home)
    assert streaming.recovery_dir and streaming.report_path and streaming.features_table
    if fresh:
        shutil.rmtree(streaming.recovery_dir, ignore_errors=True)
        streaming.report_path.unlink(missing_ok=True)
        streaming.features_table.unlink(missing_ok=True)
    if streaming.recovery and not streaming.recovery_dir.exists():
        streaming.recovery_dir.mkdir(parents=True)
        init_db_dir(streaming.recovery_dir, 1)
    return streaming


def run_stream(
    config: FlywheelConfig,
    streaming: StreamingConfig,
    *,
    until_end: bool,
    as_of_end_ms: int | None,
    process_id: int | None = None,
    addresses: list[str] | None = None,
) -> dict[str, Any]:
    """Run the dataflow in this process (alone, or as one process of a cluster).

    Args:
        config: The Flywheel configuration.
        streaming: The streaming section, prepared by :func:`prepare_run`.
        until_end: Stop at the end of the topic (else follow it).
        as_of_end_ms: Stamp the final rows with this time.
        process_id: This process's index in the cluster (None: a single process).
        addresses: Every process's host:port (with ``process_id``).

    Returns:
        The reconciliation report (as written by whichever process wrote it).
    """
    from datetime import timedelta

    from bytewax.recovery import RecoveryConfig
    from bytewax.run import cli_main

    from streaming.dataflow import build_flow
    from streaming.settings import settings_from_config

    assert streaming.recovery_dir and streaming.report_path
    recovery = RecoveryConfig(streaming.recovery_dir) if streaming.recovery else None
    if streaming.metrics_port:
        from monitoring.metrics import start_metrics_server

        start_metrics_server(streaming.metrics_port + (process_id or 0))
    sinks = _feast_sinks(config) if streaming.push_to_feast else ()
    try:
        settings = settings_from_config(
            config, streaming=streaming, until_end=until_end, as_of_end_ms=as_of_end_ms, feature_sinks=sinks
        )
    except ValueError as exc:
        fail(str(exc))
    cli_main(
        build_flow(settings),
        workers_per_process=streaming.workers,
        process_id=process_id,
        addresses=addresses,
        epoch_interval=timedelta(seconds=streaming.snapshot_interval_seconds),
        recovery_config=recovery,
    )
    report_path = streaming.report_path
    return json.loads(report_path.read_text()) if report_path.exists() else {}


def _run_cluster(processes: int, as_of_end_ms: int | None) -> None:
    """Run this same command as ``processes`` processes of one cluster (each given its id)."""
    from streaming.cluster import run_local_cluster

    argv = [arg for arg in sys.argv[1:] if arg != "--fresh"]  # the parent already did the fresh start

    def command_for(i: int, addresses: Sequence[str]) -> list[str]:
        extra = ["--process-id", str(i), "--addresses", ",".join(addresses)]
        if as_of_end_ms is not None:
            extra += ["--as-of-end", str(as_of_end_ms)]
        return [sys.executable, "-m", "flywheel.cli.main", *argv, *extra]

    code = run_local_cluster(command_for, processes)
    if code:
        fail(f"a stream process exited with status {code}", code=1)


def register(app: typer.Typer) -> None:
    """Add the commands of this module to the root app."""

    @app.command()
    def stream(
        config_path: ConfigOption = None,
        follow: Annotated[bool, _opt("--follow/--until-end", "Keep reading new events, or stop at the end.")] = False,
        simulate_days: Annotated[int | None, _opt("--simulate-days", "First simulate this many days.", min=1)] = None,
        workers: Annotated[int | None, _opt("--workers", "Worker threads per process.", min=1)] = None,
        batch_size: Annotated[int | None, _opt("--batch-size", "Records per read.", min=1)] = None,
        recovery_dir: Annotated[Path | None, _opt("--recovery-dir", "Bytewax recovery folder.")] = None,
        no_recovery: Annotated[bool, _opt("--no-recovery", "Run without recovery.")] = False,
        snapshot_interval: Annotated[float | None, _opt("--snapshot-interval", "Seconds per epoch.", min=0.001)] = None,
        emit_interval: Annotated[float | None, _opt("--emit-interval", "Seconds between pushes.", min=0.001)] = None,
        report: Annotated[Path | None, _opt("--report", "Where to write the reconciliation report.")] = None,
        features_table: Annotated[Path | None, _opt("--features-table", "SQLite table of the latest features.")] = None,
        as_of_end: Annotated[int | None, _opt("--as-of-end", "Stamp the final rows with this time (ms).")] = None,
        metrics_port: Annotated[int | None, _opt("--metrics-port", "Serve Prometheus metrics on this port.")] = None,
        feast: Annotated[bool | None, _opt("--feast/--no-feast", "Push the features to Feast.")] = None,
        fresh: Annotated[bool, _opt("--fresh", "Forget earlier progress (recovery, report, table).")] = False,
        processes: Annotated[int, _opt("--processes", "Dataflow processes on this machine (one cluster).", min=1)] = 1,
        process_id: Annotated[
            int | None, _opt("--process-id", "This process's index in a cluster (with --addresses).", min=0)
        ] = None,
        addresses: Annotated[
            str | None, _opt("--addresses", "host:port of every process of the cluster, comma-separated.")
        ] = None,
    ) -> None:
        """Run the streaming features dataflow: events -> DLQ / late topic / features (Feast)."""
        from flywheel.config.streaming import StreamingConfig
        from streaming.settings import streaming_section

        config = load(config_path)
        base = streaming_section(config)
        try:
            streaming = StreamingConfig.model_validate(
                {
                    **base.model_dump(),
                    **_overrides(
                        workers=workers,
                        batch_size=batch_size,
                        recovery_dir=recovery_dir,
                        snapshot_interval_seconds=snapshot_interval,
                        emit_interval_seconds=emit_interval,
                        report_path=report,
                        features_table=features_table,
                        metrics_port=metrics_port,
                        push_to_feast=feast,
                    ),
                    **({"recovery": False} if no_recovery else {}),
                }
            )
        except ValueError as exc:
            fail(str(exc))
        if process_id is not None:  # one process of a cluster started by the command below
            from streaming.settings import absolute_paths

            if not addresses:
                fail("--process-id needs --addresses")
            streaming = absolute_paths(streaming, config.home)
            if streaming.recovery and not (streaming.recovery_dir and streaming.recovery_dir.exists()):
                fail(
                    f"recovery folder {streaming.recovery_dir} does not exist: create it first (`python -m "
                    "bytewax.recovery DIR 1`) or run `flywheel stream --processes N`, which does"
                )
            run_stream(
                config,
                streaming,
                until_end=not follow,
                as_of_end_ms=as_of_end,
                process_id=process_id,
                addresses=addresses.split(","),
            )
            return
        if simulate_days:
            end_ms = _simulate(config, simulate_days)
            as_of_end = as_of_end if as_of_end is not None else end_ms + 1
        streaming = prepare_run(config, streaming, fresh=fresh)
        if processes > 1:
            _run_cluster(processes, as_of_end)
            assert streaming.report_path is not None
            result = json.loads(streaming.report_path.read_text()) if streaming.report_path.exists() else {}
        else:
            result = run_stream(config, streaming, until_end=not follow, as_of_end_ms=as_of_end)
        if result:
            console.print(result.get("run_summary", result["summary"]), highlight=False, soft_wrap=True)
            if not result["balanced"]:
                raise typer.Exit(1)
