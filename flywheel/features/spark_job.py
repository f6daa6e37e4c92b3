"""The batch feature job (PySpark): sessions, day-bucket aggregates, windowed snapshots.

The same job runs on ``local[*]`` here and on Spark on Kubernetes (only the master URL and the
paths change). Every expression mirrors a pure function of :mod:`flywheel.features.formulas`; a
test pins the two on the same events.

Input: a parquet of validated, flattened events (see :data:`EVENT_COLUMNS`), the catalog
(``content_id, genres, creator_id, release_ts_ms``) and the users (``user_id, tier,
signup_ts_ms``). Output: one row per entity and snapshot day, stamped ``event_timestamp``.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from flywheel.features import formulas as f
from flywheel.features.aggregates import WindowSpec
from flywheel.processes import wait_or_kill

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame, SparkSession

#: The flattened event columns the job reads.
EVENT_COLUMNS = (
    "event_id",
    "event_type",
    "timestamp_ms",
    "user_id",
    "content_id",
    "device_type",
    "watch_seconds",
    "position_seconds",
    "rating",
)


#: The local driver JVM: the quick JIT tier only and the serial collector (a short-lived, small job).
LOCAL_JAVA_OPTIONS = ("-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC")
#: Local SQL settings: no whole-stage code generation, no adaptive re-planning (small data, cold JVM).
LOCAL_SQL_SETTINGS = {"spark.sql.codegen.wholeStage": "false", "spark.sql.adaptive.enabled": "false"}


@dataclass(frozen=True, slots=True)
class JobInputs:
    """Where the job reads from."""

    events: Path
    catalog: Path
    users: Path


def spark_session(
    master: str = "local[*]", *, shuffle_partitions: int = 4, app_name: str = "flywheel-features"
) -> SparkSession:
    """A SparkSession set up for the batch job (UTC, no UI, loopback when local).

    Locally the job is small and the JVM lives for one job: compiling dominates (the cold job took
    38 s, the same job warm 19 s). So there the JIT stops at its quick tier (C1), the serial
    collector runs, whole-stage code generation (a Java compile per stage of a very wide plan) and
    adaptive re-planning are off: the cold job then took 18 s, the session start 5 s instead of 9 s
    (the demo's 73k events, load about 6). A cluster keeps Spark's defaults.
    """
    from pyspark.sql import SparkSession

    java_options = "-Duser.timezone=UTC"
    local = master.startswith("local")
    if local:
        java_options += " " + " ".join(LOCAL_JAVA_OPTIONS)
    builder = (
        SparkSession.builder.master(master)
        .appName(app_name)
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.shuffle.partitions", str(shuffle_partitions))
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.sql.parquet.outputTimestampType", "TIMESTAMP_MICROS")
        .config("spark.driver.extraJavaOptions", java_options)
    )
    if local:
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
        builder = builder.config("spark.driver.bindAddress", "127.0.0.1").config("spark.driver.host", "127.0.0.1")
        for key, value in LOCAL_SQL_SETTINGS.items():
            builder = builder.config(key, value)
    return builder.getOrCreate()


def stop_local_jvm() -> bool:
    """Stop the JVM that pyspark started for this process once no session is running; True if stopped.

    ``SparkSession.stop()`` leaves the driver JVM (about 600 MB, and its housekeeping threads) alive
    until the Python process exits; a long process that ran its one batch job (the loop) ends it
    here. The JVM exits when its stdin closes; a later session starts a new one.
    """
    from pyspark import SparkContext

    gateway = SparkContext._gateway
    if gateway is None or SparkContext._active_spark_context is not None:
        return False
    proc = getattr(gateway, "proc", None)
    gateway.shutdown()
    SparkContext._gateway = None
    SparkContext._jvm = None
    if proc is not None:
        if proc.stdin is not None:
            proc.stdin.close()
        wait_or_kill(proc, 30)
    return True


def _genre_slots(genres: Column, vocab: f.GenreVocabulary) -> list[Column]:
    """How many of a title's genres fall into each slot of the genre vector."""
    from pyspark.sql import functions as F

    known = F.array(*[F.lit(g) for g in vocab.genres])

    def count_of(name: str) -> Column:
        # a one-argument lambda: Spark reads a two-argument one as (element, index)
        return F.size(F.filter(genres, lambda g: g == F.lit(name)))

    slots = [count_of(name) for name in vocab.genres]
    slots.append(F.size(F.filter(genres, lambda g: ~F.array_contains(known, g))))
    return slots


def user_buckets(events: DataFrame, catalog: DataFrame, vocab: f.GenreVocabulary, spec: WindowSpec) -> DataFrame:
    """Per (user_id, bucket): the sums of :class:`~flywheel.features.formulas.UserState`."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    e = events.join(catalog.select("content_id", "genres", "creator_id"), "content_id", "left")
    started = F.col("event_type") == f.PLAY_START
    watch = F.when(F.col("event_type").isin(*f.WATCH_EVENTS), F.coalesce("watch_seconds", F.lit(0.0))).otherwise(0.0)
    n_genres = F.coalesce(F.size("genres"), F.lit(0))
    genres = F.coalesce(F.col("genres"), F.array().cast("array<string>"))
    slot = F.expr(f"((timestamp_ms % {f.DAY_MS}) div {f.HOUR_MS}) div {24 // f.TIME_OF_DAY_SLOTS}")
    device_idx = F.when(F.col("device_type").isin(*f.DEVICE_TYPES), F.col("device_type")).otherwise("other")
    position = F.coalesce("position_seconds", "watch_seconds", F.lit(0.0))
    cols = [
        F.col("user_id"),
        F.expr(f"timestamp_ms div {f.DAY_MS}").alias("bucket"),
        watch.alias("watch"),
        F.when(started & F.col("creator_id").isNotNull() & (F.col("creator_id") != ""), F.array("creator_id"))
        .otherwise(F.array().cast("array<string>"))
        .alias("creator_arr"),
        started.cast("long").alias("plays"),
        (F.col("event_type") == f.PLAY_COMPLETE).cast("long").alias("completions"),
        F.col("event_type").isin(*f.PLAY_END_EVENTS).cast("long").alias("play_ends"),
        ((F.col("event_type") == f.PLAY_STOP) & (position < spec.skip_threshold_seconds)).cast("long").alias("skips"),
        (F.col("event_type") == "search").cast("long").alias("searches"),
    ]
    for i, count in enumerate(_genre_slots(genres, vocab)):
        cols.append(F.when(n_genres > 0, watch / n_genres * count).otherwise(0.0).alias(f"g{i}"))
    for i in range(f.TIME_OF_DAY_SLOTS):
        cols.append((started & (slot == i)).cast("long").alias(f"tod{i}"))
    for i, name in enumerate(f.DEVICE_TYPES):
        cols.append((started & (device_idx == name)).cast("long").alias(f"dev{i}"))
    deltas = e.select(*cols)
    sums = [c for c in deltas.columns if c not in ("user_id", "bucket", "creator_arr")]
    per_bucket = deltas.groupBy("user_id", "bucket").agg(
        *[F.sum(c).alias(c) for c in sums],
        F.array_distinct(F.flatten(F.collect_list("creator_arr"))).alias("creators"),
    )
    # sessions: a new one when the gap to the previous event exceeds the inactivity gap
    w = Window.partitionBy("user_id").orderBy("timestamp_ms")
    gap = F.col("timestamp_ms") - F.lag("timestamp_ms").over(w)
    marked = events.select("user_id", "timestamp_ms").withColumn(
        "new_session", F.when(gap.isNull() | (gap > spec.session_gap_ms), 1).otherwise(0)
    )
    numbered = marked.withColumn(
        "session_no", F.sum("new_session").over(w.rowsBetween(Window.unboundedPreceding, Window.currentRow))
    )
    sessions = (
        numbered.groupBy("user_id", "session_no")
        .agg(F.min("timestamp_ms").alias("start_ms"), F.max("timestamp_ms").alias("end_ms"))
        .select(
            "user_id",
            F.expr(f"end_ms div {f.DAY_MS}").alias("bucket"),
            ((F.col("end_ms") - F.col("start_ms")) / 1000.0).alias("seconds"),
        )
        .groupBy("user_id", "bucket")
        .agg(F.count("*").alias("sessions"), F.sum("seconds").alias("session_seconds"))
    )
    return per_bucket.join(sessions, ["user_id", "bucket"], "full_outer")


def content_buckets(events: DataFrame) -> DataFrame:
    """Per (content_id, bucket): the sums of :class:`~flywheel.features.formulas.ContentState`."""
    from pyspark.sql import functions as F

    kind = F.col("event_type")
    return (
        events.where(F.col("content_id").isNotNull() & (F.col("content_id") != ""))
        .select(
            "content_id",
            F.expr(f"timestamp_ms div {f.DAY_MS}").alias("bucket"),
            (kind == f.PLAY_START).cast("long").alias("plays"),
            (kind == f.PLAY_COMPLETE).cast("long").alias("completions"),
            (kind == "impression").cast("long").alias("impressions"),
            F.coalesce(F.col("rating"), F.lit(0.0)).alias("rating_sum"),
            F.col("rating").isNotNull().cast("long").alias("rating_count"),
        )
        .groupBy("content_id", "bucket")
        .agg(*[F.sum(c).alias(c) for c in ("plays", "completions", "impressions", "rating_sum", "rating_count")])
    )


def _snapshot_grid(
    buckets: DataFrame, key: str, known: DataFrame, origin_bucket: int, cutoff_ms: int, long_days: int
) -> DataFrame:
    """(key, d) for every snapshot day of every entity (see ``formulas.entity_snapshot_buckets``)."""
    from pyspark.sql import functions as F

    last = f.bucket_of(cutoff_ms - 1)
    spans = buckets.select(key).distinct()
    active = buckets.select(key, "bucket").distinct()
    grid = active.select(
        key, F.explode(F.sequence("bucket", F.least(F.col("bucket") + long_days, F.lit(last)))).alias("d")
    ).distinct()
    known_keys = known.select(key).distinct()
    seeds = known_keys.select(key, F.lit(origin_bucket - 1).cast("long").alias("d"))
    idle = known_keys.join(spans.select(key), key, "left_anti").select(key, F.lit(last).cast("long").alias("d"))
    return grid.unionByName(seeds).unionByName(idle)


def origin_bucket(events: DataFrame, cutoff_ms: int) -> int:
    """Day bucket of the first event (of the cutoff when there is none)."""
    from pyspark.sql import functions as F

    row = events.agg(F.min("timestamp_ms")).first()
    first = row[0] if row is not None else None
    return f.bucket_of(cutoff_ms - 1 if first is None else int(first))


def _windowed(key: str, sums: list[str], days: int, suffix: str) -> list[Column]:
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    w = Window.partitionBy(key).orderBy("d").rangeBetween(-(days - 1), 0)
    return [F.sum(F.coalesce(F.col(c), F.lit(0))).over(w).alias(f"{c}_{suffix}") for c in sums]


def _held(frame: DataFrame, held: list[DataFrame] | None) -> DataFrame:
    """``frame`` cached and added to ``held`` (the caller unpersists it), or as it is when ``held`` is None."""
    if held is None:
        return frame
    frame = frame.cache()
    held.append(frame)
    return frame


def user_features(
    events: DataFrame,
    catalog: DataFrame,
    users: DataFrame,
    vocab: f.GenreVocabulary,
    spec: WindowSpec,
    cutoff_ms: int,
    *,
    held: list[DataFrame] | None = None,
) -> DataFrame:
    """The user feature table, one row per user and snapshot day.

    With ``held``, the day buckets (read three times: the grid twice and the join) are cached once
    and added to ``held`` for the caller to unpersist after the write.
    """
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    buckets = _held(user_buckets(events, catalog, vocab, spec), held)
    grid = _snapshot_grid(buckets, "user_id", users, origin_bucket(events, cutoff_ms), cutoff_ms, spec.long_days)
    joined = grid.join(buckets.withColumnRenamed("bucket", "d"), ["user_id", "d"], "left")
    g = [f"g{i}" for i in range(vocab.size)]
    tod = [f"tod{i}" for i in range(f.TIME_OF_DAY_SLOTS)]
    dev = [f"dev{i}" for i in range(len(f.DEVICE_TYPES))]
    short_cols = ["watch", "skips", "play_ends", "searches", "plays", *g]
    long_cols = ["plays", "completions", "sessions", "session_seconds", *g, *tod, *dev]
    w_long = Window.partitionBy("user_id").orderBy("d").rangeBetween(-(spec.long_days - 1), 0)
    creators = F.array_distinct(
        F.flatten(F.collect_list(F.coalesce("creators", F.array().cast("array<string>"))).over(w_long))
    )
    win = joined.select(
        "user_id",
        "d",
        *_windowed("user_id", short_cols, spec.short_days, "s"),
        *_windowed("user_id", long_cols, spec.long_days, "l"),
        creators.alias("creators_l"),
    )
    win = win.join(users.select("user_id", "tier", "signup_ts_ms"), "user_id", "left")
    as_of = F.least((F.col("d") + 1) * f.DAY_MS, F.lit(cutoff_ms))

    def normalized(names: list[str]) -> Column:
        total = sum((F.col(n) for n in names[1:]), F.col(names[0]))
        return F.array(*[F.when(total != 0, F.col(n) / total).otherwise(0.0).cast("double") for n in names])

    def ratio(num: str, den: str) -> Column:
        return F.when(F.col(den) != 0, F.col(num) / F.col(den)).otherwise(0.0)

    dev_l = [f"{c}_l" for c in dev]
    top = F.greatest(*[F.col(c) for c in dev_l])
    preference = F.lit(f.UNKNOWN)
    for c, name in reversed(list(zip(dev_l, f.DEVICE_TYPES, strict=True))):
        preference = F.when((top > 0) & (F.col(c) == top), F.lit(name)).otherwise(preference)
    return win.select(
        "user_id",
        F.timestamp_millis(as_of).alias("event_timestamp"),
        (F.col("watch_s") / 3600.0).alias("user_total_watch_hours_7d"),
        normalized([f"{c}_l" for c in g]).alias("user_genre_affinity_vector"),
        F.array(*[(F.col(f"{c}_s") / 3600.0).cast("double") for c in g]).alias("user_genre_watch_hours_7d"),
        ratio("session_seconds_l", "sessions_l").alias("user_avg_session_length_30d"),
        ratio("skips_s", "play_ends_s").alias("user_skip_rate_7d"),
        (F.col("searches_s") / F.greatest(F.col("plays_s"), F.lit(1))).alias("user_search_to_play_ratio_7d"),
        normalized([f"{c}_l" for c in tod]).alias("user_time_of_day_distribution"),
        preference.alias("user_device_preference"),
        F.least(F.lit(1.0), ratio("completions_l", "plays_l")).alias("user_content_completion_rate_30d"),
        F.array_sort("creators_l").alias("user_creators_watched_30d"),
        F.when(F.col("signup_ts_ms").isNotNull(), (as_of - F.col("signup_ts_ms")) / f.DAY_MS)
        .otherwise(-1.0)
        .alias("user_days_since_signup"),
        F.coalesce(F.col("tier"), F.lit(f.UNKNOWN)).alias("user_subscription_tier"),
    )


def content_features(
    events: DataFrame,
    catalog: DataFrame,
    vocab: f.GenreVocabulary,
    spec: WindowSpec,
    cutoff_ms: int,
    *,
    held: list[DataFrame] | None = None,
) -> DataFrame:
    """The content feature table, one row per title and snapshot day (``held``: as for :func:`user_features`)."""
    from pyspark.sql import functions as F

    buckets = _held(content_buckets(events), held)
    grid = _snapshot_grid(buckets, "content_id", catalog, origin_bucket(events, cutoff_ms), cutoff_ms, spec.long_days)
    joined = grid.join(buckets.withColumnRenamed("bucket", "d"), ["content_id", "d"], "left")
    win = joined.select(
        "content_id",
        "d",
        *_windowed("content_id", ["plays", "impressions"], spec.short_days, "s"),
        *_windowed("content_id", ["plays", "completions", "rating_sum", "rating_count"], spec.long_days, "l"),
    ).join(catalog.select("content_id", "genres", "creator_id", "release_ts_ms"), "content_id", "left")
    as_of = F.least((F.col("d") + 1) * f.DAY_MS, F.lit(cutoff_ms))
    genres = F.coalesce(F.col("genres"), F.array().cast("array<string>"))
    multi_hot = F.array(*[F.when(c > 0, 1.0).otherwise(0.0) for c in _genre_slots(genres, vocab)])
    return win.select(
        "content_id",
        F.timestamp_millis(as_of).alias("event_timestamp"),
        F.col("plays_s").cast("long").alias("content_total_plays_7d"),
        F.least(
            F.lit(1.0), F.when(F.col("plays_l") != 0, F.col("completions_l") / F.col("plays_l")).otherwise(0.0)
        ).alias("content_avg_completion_rate"),
        genres.alias("content_genre_tags"),
        multi_hot.alias("content_genre_vector"),
        F.coalesce(F.col("creator_id"), F.lit("")).alias("content_creator_id"),
        F.when(F.col("release_ts_ms").isNotNull(), (as_of - F.col("release_ts_ms")) / f.DAY_MS)
        .otherwise(-1.0)
        .alias("content_release_recency_days"),
        F.when(F.col("rating_count_l") != 0, F.col("rating_sum_l") / F.col("rating_count_l"))
        .otherwise(0.0)
        .alias("content_avg_rating"),
        (F.col("plays_s") / F.greatest(F.col("impressions_s"), F.lit(1))).alias("content_play_to_impression_ratio"),
    )


def read_inputs(spark: SparkSession, inputs: JobInputs, cutoff_ms: int) -> tuple[DataFrame, DataFrame, DataFrame]:
    """Events (deduplicated on event_id, before the cutoff), catalog and users as DataFrames."""
    from pyspark.sql import functions as F

    events = (
        spark.read.parquet(str(inputs.events)).where(F.col("timestamp_ms") < cutoff_ms).dropDuplicates(["event_id"])
    )
    return events, spark.read.parquet(str(inputs.catalog)), spark.read.parquet(str(inputs.users))


def write_single_parquet(frame: DataFrame, target: Path, sort_keys: list[str]) -> int:
    """Write ``frame`` as one parquet file at ``target`` (the Feast batch source); returns rows.

    On a cluster the job writes a folder of parts to object storage; here the single part is
    rewritten with the list naming Feast reads (see ``store.feast_compatible``).
    """
    staging = target.with_name(target.name + ".spark")
    shutil.rmtree(staging, ignore_errors=True)
    frame.coalesce(1).sortWithinPartitions(*sort_keys).write.mode("overwrite").parquet(str(staging))
    import pyarrow.parquet as pq

    from flywheel.features.store import write_offline_table

    parts = sorted(staging.glob("part-*.parquet"))
    rows = write_offline_table(pq.read_table(parts[0]), target) if parts else 0
    shutil.rmtree(staging, ignore_errors=True)
    return rows


def run_job(
    spark: SparkSession,
    inputs: JobInputs,
    output_dir: Path,
    vocab: f.GenreVocabulary,
    spec: WindowSpec,
    cutoff_ms: int,
) -> dict[str, int]:
    """Compute both feature tables and write ``user_features.parquet`` and ``content_features.parquet``.

    Returns:
        Rows written per table.
    """
    events, catalog, users = read_inputs(spark, inputs, cutoff_ms)
    held = [events.cache()]
    events = held[0]
    try:
        user_rows = write_single_parquet(
            user_features(events, catalog, users, vocab, spec, cutoff_ms, held=held),
            output_dir / "user_features.parquet",
            ["user_id", "event_timestamp"],
        )
        content_rows = write_single_parquet(
            content_features(events, catalog, vocab, spec, cutoff_ms, held=held),
            output_dir / "content_features.parquet",
            ["content_id", "event_timestamp"],
        )
    finally:
        for frame in held:
            frame.unpersist()
    return {"user_features": user_rows, "content_features": content_rows}
