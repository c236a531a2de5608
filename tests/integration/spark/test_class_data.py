"""The driver JVM's class-data archive: the first session records it, the next ones map it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

SESSION = """
import sys
from runlake_services.cluster import spark_session
log, table = sys.argv[1], sys.argv[2]
spark = spark_session("class-data-test", extra_conf={
    "spark.driver.extraJavaOptions": f"-Xlog:class+load=info:file={log}"})
spark.range(5).write.format("delta").mode("overwrite").save(table)
assert spark.read.format("delta").load(table).count() == 5
spark.stop()
"""


def _session(tmp_path: Path, name: str) -> str:
    """Run one session in its own process (one JVM each); what its JVM logged of class loads."""
    log = tmp_path / f"{name}.log"
    env = {**os.environ, "RUNLAKE_SPARK_CLASS_DATA": str(tmp_path / "cds")}
    cmd = [sys.executable, "-c", SESSION, str(log), str(tmp_path / "t")]
    proc = subprocess.run(cmd, env=env, check=True, timeout=300, capture_output=True, text=True)
    # the JVM logs CDS warnings to stdout while it writes an archive: none may reach a
    # command's own output (``runlake sweep -o json``)
    assert proc.stdout == "", proc.stdout[:2000]
    return log.read_text()


def _from_archive(log: str) -> list[str]:
    """The Delta classes the JVM mapped from the dynamic (runlake's) archive."""
    top = "shared objects file (top)"
    return [
        line for line in log.splitlines() if "org.apache.spark.sql.delta." in line and top in line
    ]


def test_the_second_session_maps_the_classes_the_first_one_recorded(tmp_path: Path) -> None:
    first = _session(tmp_path, "first")
    assert _from_archive(first) == []  # nothing to map yet: this one records
    second = _session(tmp_path, "second")
    mapped = _from_archive(second)
    assert len(mapped) > 100, second[-2000:]
    archives = list((tmp_path / "cds").glob("*.jsa"))
    assert len(archives) == 1 and list((tmp_path / "cds").glob("*.partial*")) == []


SWEEP_SESSION = """
from runlake.sweeps.executor import default_spark
spark = default_spark(2)
assert spark.sparkContext.parallelize(range(4), 2).map(lambda x: x * 2).sum() == 12
spark.stop()
"""


def test_the_sweeps_default_session_maps_it_too(tmp_path: Path) -> None:
    """``runlake.sweep`` without an active session builds its own: the same archive protocol."""
    mapped = []
    for name in ("first", "second"):
        # every JVM of the process (the launcher's too) logs to a file of its own
        logs = f"-Xlog:class+load=info:file={tmp_path}/{name}-%p.log"
        env = {**os.environ, "RUNLAKE_SPARK_CLASS_DATA": str(tmp_path / "cds"),
               "JAVA_TOOL_OPTIONS": logs}  # fmt: skip
        proc = subprocess.run([sys.executable, "-c", SWEEP_SESSION], env=env, check=True,
                              timeout=300, capture_output=True, text=True)  # fmt: skip
        assert proc.stdout == "", proc.stdout[:2000]
        lines = "\n".join(p.read_text() for p in tmp_path.glob(f"{name}-*.log")).splitlines()
        top = "shared objects file (top)"
        mapped.append([ln for ln in lines if "org.apache.spark." in ln and top in ln])
    assert mapped[0] == [] and len(mapped[1]) > 100
