"""A local SparkSession wired for runlake's scale-out tables: Delta, S3A on MinIO, Kafka.

The connector jars come from .runlake/jars/spark (scripts/install_spark_jars.sh, run here
when missing) and go on the driver's class path (``spark.driver.extraClassPath``) rather
than ``spark.jars``: in local mode the executor shares the driver's JVM, and ``spark.jars``
would make it copy every jar (the AWS SDK bundle is ~690 MB) into a scratch dir at each
start. The pom excludes everything the pyspark wheel already ships, so each class has one
source. pyspark is imported only when a session is built.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from runlake_services.cluster import class_data
from runlake_services.cluster.scripts import ServiceError, runlake_dir
from runlake_services.cluster.services import S3Settings, install_spark_jars

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

log = logging.getLogger(__name__)

__all__ = ["build_session", "is_local", "spark_conf", "spark_jars", "spark_session"]

# Jar groups by artifact name; anything not named here (Delta and its deps) is always used.
_KAFKA_JARS = (
    "spark-sql-kafka-0-10_",
    "spark-token-provider-kafka-0-10_",
    "kafka-clients-",
    "commons-pool2-",
)
_S3A_JARS = ("hadoop-aws-", "bundle-", "analyticsaccelerator-s3-", "wildfly-openssl-")


def spark_jars(*, kafka: bool, s3: bool, jars_dir: Path | None = None) -> list[Path]:
    """The connector jars a session needs: Delta always, Kafka and S3A on request."""
    folder = jars_dir or runlake_dir() / "jars" / "spark"
    jars = sorted(folder.glob("*.jar"))
    if not any(j.name.startswith("delta-spark_") for j in jars):
        raise ServiceError(f"no Delta jar in {folder}: run scripts/install_spark_jars.sh")
    chosen = []
    for jar in jars:
        if jar.name.startswith(_KAFKA_JARS) and not kafka:
            continue
        if jar.name.startswith(_S3A_JARS) and not s3:
            continue
        chosen.append(jar)
    return chosen


def spark_conf(
    app_name: str,
    jars: list[Path],
    *,
    s3: S3Settings | None = None,
    master: str = "local[2]",
    shuffle_partitions: int = 2,
    driver_memory: str = "1g",
    warehouse_dir: Path | None = None,
    extra_conf: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The Spark configuration :func:`spark_session` uses (pure; no JVM)."""
    class_path = os.pathsep.join(str(j.resolve()) for j in jars)
    conf = {
        "spark.master": master,
        "spark.app.name": app_name,
        "spark.driver.extraClassPath": class_path,
        "spark.driver.memory": driver_memory,
        # no web UI, no progress bars in test output
        "spark.ui.enabled": "false",
        "spark.ui.showConsoleProgress": "false",
        "spark.log.level": "WARN",
        # a small machine: few partitions everywhere (Delta's snapshot state defaults to 50)
        "spark.sql.shuffle.partitions": str(shuffle_partitions),
        "spark.default.parallelism": str(shuffle_partitions),
        "spark.databricks.delta.snapshotPartitions": str(shuffle_partitions),
        "spark.sql.session.timeZone": "UTC",
        "spark.sql.catalogImplementation": "in-memory",
        "spark.sql.warehouse.dir": str(warehouse_dir or runlake_dir() / "spark" / "warehouse"),
        # Python workers run in this interpreter's environment
        "spark.pyspark.python": sys.executable,
        "spark.pyspark.driver.python": sys.executable,
        # Delta Lake
        "spark.sql.extensions": "io.delta.sql.DeltaSparkSessionExtension",
        "spark.sql.catalog.spark_catalog": "org.apache.spark.sql.delta.catalog.DeltaCatalog",
    }
    if is_local(master):
        # one JVM: the executor shares the driver's class path; loopback only
        conf["spark.executor.extraClassPath"] = class_path
        conf["spark.driver.host"] = "127.0.0.1"
        conf["spark.driver.bindAddress"] = "127.0.0.1"
    else:
        # executors elsewhere: Spark ships the jars to them; the driver must be reachable
        # at its own address (spark.driver.host through ``extra_conf`` where that is not
        # what the machine resolves itself to)
        conf["spark.jars"] = ",".join(str(j.resolve()) for j in jars)
    if s3 is not None:
        conf.update(_s3a_conf(s3))
    conf.update(extra_conf or {})
    return conf


def is_local(master: str) -> bool:
    """Whether ``master`` runs everything in this JVM (``local``, ``local[N]``, ``local[*]``)."""
    return master == "local" or master.startswith("local[")


def _s3a_conf(s3: S3Settings) -> dict[str, str]:
    # No keys here: the launch conf becomes the JVM's command line, which any local user
    # can read; the keys are set on the running session's Hadoop configuration instead.
    return {
        "spark.hadoop.fs.s3a.impl": "org.apache.hadoop.fs.s3a.S3AFileSystem",
        "spark.hadoop.fs.s3a.endpoint": s3.endpoint,
        "spark.hadoop.fs.s3a.endpoint.region": s3.region,
        "spark.hadoop.fs.s3a.path.style.access": "true",
        "spark.hadoop.fs.s3a.connection.ssl.enabled": str(s3.secure).lower(),
        "spark.hadoop.fs.s3a.aws.credentials.provider":
            "org.apache.hadoop.fs.s3a.SimpleAWSCredentialsProvider",
    }  # fmt: skip


def _set_s3a_keys(session: SparkSession, s3: S3Settings) -> None:
    hadoop = session.sparkContext._jsc.hadoopConfiguration()
    hadoop.set("fs.s3a.access.key", s3.access_key)
    hadoop.set("fs.s3a.secret.key", s3.secret_key)


def spark_session(
    app_name: str,
    *,
    s3: S3Settings | None = None,
    kafka: bool = False,
    master: str = "local[2]",
    shuffle_partitions: int = 2,
    driver_memory: str = "1g",
    extra_conf: Mapping[str, str] | None = None,
) -> SparkSession:
    """A SparkSession with Delta, plus S3A on ``s3`` and the Kafka source if asked.

    ``master`` is local by default (tests, one machine); any other master URL (a standalone
    cluster, ``yarn``, ``k8s://…``) gets the jars shipped to its executors and no loopback
    binding; its own settings (a container image, executor counts) come in ``extra_conf``.

    One JVM per Python process, and its class path is fixed when the first session launches
    it: a later call whose jars that JVM lacks raises ServiceError. A later call while a
    session is active returns that session, with the S3 settings applied to it (and, when
    they name another endpoint than before, Hadoop's per-bucket S3A cache turned off).
    """
    install_spark_jars()
    jars = spark_jars(kafka=kafka, s3=s3 is not None)
    conf = spark_conf(
        app_name, jars, s3=s3, master=master, shuffle_partitions=shuffle_partitions,
        driver_memory=driver_memory, extra_conf=extra_conf,
    )  # fmt: skip

    from pyspark.sql import SparkSession

    _check_jvm_class_path(jars)
    active = SparkSession.getActiveSession()
    if active is not None:
        session = active
        hadoop = session.sparkContext._jsc.hadoopConfiguration()
        endpoint = hadoop.get("fs.s3a.endpoint")
        for key, value in conf.items():
            if key.startswith("spark.hadoop."):
                hadoop.set(key.removeprefix("spark.hadoop."), value)
        if endpoint not in (None, hadoop.get("fs.s3a.endpoint")):
            # Hadoop caches one S3AFileSystem per bucket, built with the settings of its
            # first use: without this, s3a://<bucket> would keep reaching the old endpoint.
            hadoop.set("fs.s3a.impl.disable.cache", "true")
    else:
        if is_local(master):
            # Spark's own address lookup would pick a non-loopback interface and warn.
            os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
        # PySpark starts its Python workers with $PYSPARK_PYTHON (default: python3 on the
        # PATH), not spark.pyspark.python: without this, UDFs would run outside this venv.
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
        session = build_session(conf)
    if s3 is not None:
        _set_s3a_keys(session, s3)
    return session


def build_session(conf: Mapping[str, str]) -> SparkSession:
    """Launch a session from ``conf``, its driver JVM mapping a class-data archive.

    The archive (``class_data``, decision 0020) is recorded by the first session of a java
    and class path and mapped by the later ones; ``RUNLAKE_SPARK_CLASS_DATA`` moves it or
    turns it off. Every session runlake launches goes through here (the sweeps' default one
    too).
    """
    from pyspark.sql import SparkSession

    conf = dict(conf)
    partial = _add_class_data(conf)
    builder = SparkSession.builder
    for key, value in conf.items():
        builder = builder.config(key, value)
    session = builder.getOrCreate()
    if partial is not None:  # the check of the recording needs the JVM's pid and class path
        jvm = session.sparkContext._jvm
        assert jvm is not None
        class_data.note_recording(
            partial, int(jvm.java.lang.ProcessHandle.current().pid()),
            str(jvm.java.lang.System.getProperty("java.class.path")),
        )  # fmt: skip
    return session


def _add_class_data(conf: dict[str, str]) -> Path | None:
    """Add the archive's options to the driver's; the partial archive it records, if any."""
    import pyspark

    where = class_data.folder(runlake_dir() / "spark" / "class-data")
    java = class_data.java_binary()
    if where is None or java is None:
        return None
    key = class_data.archive_key(
        java, conf.get("spark.driver.extraClassPath", ""), Path(pyspark.__file__).parent / "jars"
    )
    user = conf.get("spark.driver.extraJavaOptions", "")
    try:
        options, partial = class_data.archive_options(where, key, user)
    except OSError as exc:  # a read-only checkout, a full disk, a file in the way
        log.warning("class-data archive in %s: %s; the Spark JVM starts without it", where, exc)
        return None
    if options:
        conf["spark.driver.extraJavaOptions"] = f"{options} {user}".strip()  # the user's last
    return partial


def _check_jvm_class_path(jars: list[Path]) -> None:
    """The JVM's class path is fixed at its launch: a JVM already running must have ``jars``."""
    from pyspark import SparkContext

    jvm = SparkContext._jvm
    if SparkContext._gateway is None or jvm is None:
        return  # no JVM yet: this session launches it with the jars
    have = set(str(jvm.java.lang.System.getProperty("java.class.path")).split(os.pathsep))
    missing = [j.name for j in jars if str(j.resolve()) not in have]
    if missing:
        raise ServiceError(
            "this Python process already runs a Spark JVM without "
            f"{', '.join(missing)}; ask for every connector in the first spark_session() call"
        )
