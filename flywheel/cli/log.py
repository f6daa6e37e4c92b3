"""`flywheel log ...`: look at the event log (topics, offsets, records)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from flywheel.cli.common import ConfigOption, console, fail, load
from flywheel.events.log import open_event_log

app = typer.Typer(help="Inspect the event log: topics, offsets, records.", no_args_is_help=True)


@app.command("offsets")
def offsets(
    topic: Annotated[str, typer.Argument(help="Topic name, e.g. events")] = "events",
    group: Annotated[str | None, typer.Option(help="Show this consumer group's lag too")] = None,
    config: ConfigOption = None,
) -> None:
    """Print the end offset (and a group's lag) of every partition of a topic."""
    cfg = load(config)
    log = open_event_log(cfg.event_log)
    try:
        ends = log.end_offsets(topic)
        lags = log.consumer(topic, group).lag() if group else {}
    except Exception as exc:  # noqa: BLE001 - shown to people
        fail(str(exc))
    finally:
        log.close()
    table = Table(title=f"topic {topic}")
    table.add_column("partition", justify="right")
    table.add_column("end offset", justify="right")
    if group:
        table.add_column(f"lag of {group}", justify="right")
    for p in sorted(ends):
        row = [str(p), f"{ends[p]:,}"] + ([f"{lags.get(p, 0):,}"] if group else [])
        table.add_row(*row)
    table.add_row("total", f"{sum(ends.values()):,}", *([f"{sum(lags.values()):,}"] if group else []))
    console.print(table)


@app.command("tail")
def tail(
    topic: Annotated[str, typer.Argument(help="Topic name")] = "events",
    partition: Annotated[int, typer.Option(help="Partition to read")] = 0,
    count: Annotated[int, typer.Option("-n", help="How many records")] = 5,
    config: ConfigOption = None,
) -> None:
    """Print the last records of one partition."""
    cfg = load(config)
    log = open_event_log(cfg.event_log)
    try:
        end = log.end_offsets(topic)[partition]
        consumer = log.consumer(topic, "flywheel-cli-tail", [partition])
        consumer.seek(partition, max(0, end - count))
        records = consumer.poll(count, timeout_s=2.0)
    except Exception as exc:  # noqa: BLE001 - shown to people
        fail(str(exc))
    finally:
        log.close()
    for record in records:
        console.print(
            f"[dim]{record.partition}:{record.offset}[/] {record.value.decode(errors='replace')}", highlight=False
        )
