"""The driver JVM that pyspark leaves running after ``stop()`` is ended by ``stop_local_jvm``."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from typing import TYPE_CHECKING

from flywheel.features.spark_job import stop_local_jvm

if TYPE_CHECKING:
    from pyspark.sql import SparkSession


def test_a_running_session_keeps_its_jvm(spark: SparkSession) -> None:
    assert stop_local_jvm() is False
    assert spark.range(3).count() == 3


def test_the_jvm_ends_after_the_session_and_a_new_session_starts_another() -> None:
    # its own interpreter: the test session's shared SparkSession must keep its JVM
    script = textwrap.dedent(
        """
        from pyspark import SparkContext
        from flywheel.features.spark_job import spark_session, stop_local_jvm

        session = spark_session("local[1]", shuffle_partitions=1)
        assert session.range(5).count() == 5
        proc = SparkContext._gateway.proc
        session.stop()
        assert proc.poll() is None, "pyspark keeps the JVM after stop()"
        assert stop_local_jvm() is True
        assert proc.poll() is not None, "the JVM still runs"
        again = spark_session("local[1]", shuffle_partitions=1)
        assert again.range(7).count() == 7
        again.stop()
        assert stop_local_jvm() is True
        print("ok")
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().endswith("ok")
