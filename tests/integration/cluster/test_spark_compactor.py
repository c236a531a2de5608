"""The Spark compactor folds a Kafka log into the same tables as the embedded one, once.

One recorded event stream (built through the embedded Ingestor, so it is exactly what a
gateway logs) is folded by the embedded compactor (delta-rs, local dir) and, produced to
Kafka, by the Structured Streaming job (delta-spark, MinIO). The tables must be equal row
for row; the only engine-specific column is ``position`` (a SQLite sequence number vs. an
encoded Kafka position), which is translated, not ignored.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from runlake.v1 import events_pb2 as E
from runlake.v1 import gateway_pb2 as G
from runlake_services.cluster import KafkaService, MinioService
from runlake_services.compactor import EmbeddedCompactor
from runlake_services.eventlog import StateChanges, open_event_log
from runlake_services.gateway import Backlog, Ingestor
from runlake_services.progress import Progress
from runlake_services.tables.delta_sink import DeltaTableSink
from runlake_services.tables.reader import DeltaTableReader
from runlake_services.tables.schema import TABLES

from spark_jobs.compactor import (
    CompactorConfig,
    SparkCompactor,
    encode_position,
    read_progress,
)
from spark_jobs.writers import WriterKind
from tests.conftest import Pipeline
from tests.events import (
    created,
    deleted,
    finished,
    metrics,
    params,
    request,
    restored,
    run_id,
    tags,
)

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(1800)]  # first run installs

PARTITIONS = 3
_SUFFIX = uuid.uuid4().hex[:8]
_NAMES = (
    "conformance-delta-rs", "conformance-spark", "crash", "replay-delta-rs", "replay-spark",
    "kill", "standalone",
)  # fmt: skip
_POSITION_TABLES = ("events", "metrics", "artifacts")


def _topics(name: str) -> tuple[str, str]:
    return f"spk.{name}.{_SUFFIX}.events", f"spk.{name}.{_SUFFIX}.registry"


@pytest.fixture(scope="module")
def topics(kafka: KafkaService) -> None:
    """Every topic of this module in one TopicCommand run (each run costs a JVM start)."""
    kafka.create_topics([t for n in _NAMES for t in _topics(n)], PARTITIONS)


# -- the recorded stream ----------------------------------------------------------------


def _registry(batch_id: str, **body: Any) -> G.WriteRequest:
    return request(batch_id, E.Event(**body))


def _record_stream(p: Pipeline) -> None:
    """A bit of everything the fold knows, written through the gateway's validation."""
    ing = p.ingestor
    user = "alice"
    exp = ing.create_experiment(
        G.CreateExperimentRequest(name="conformance", tags=[E.KeyValue(key="team", value="ml")]),
        user=user,
    ).experiment_id
    runs = [run_id() for _ in range(4)]
    for i, rid in enumerate(runs):
        ing.write(request(f"c{i}", created(rid, exp, name=f"run-{i}")), user=user)
        ing.write(request(f"p{i}", params(rid, lr=str(0.1 * (i + 1)), depth=str(i))), user=user)
        ing.write(request(f"t{i}", tags(rid, owner="alice", stage="dev")), user=user)
    for step in range(6):
        for i, rid in enumerate(runs):
            pts = [("loss", 1.0 / (step + 1 + i), 1_700_000_000_000 + step, step)]
            pts += [("acc", 0.1 * step, 1_700_000_000_000 + step, step), ("acc", 0.05, 1, step)]
            ing.write(request(f"m{i}-{step}", metrics(rid, pts)), user=user)
    # an out-of-order point: not the latest, though written last
    ing.write(request("late", metrics(runs[0], [("loss", 9.0, 1, 0)])), user=user)
    ing.write(request("tag2", tags(runs[1], stage="prod")), user=user)
    del_tag = E.Event(tag_deleted=E.TagDeleted(run_id=runs[2], key="owner"))
    ing.write(request("tagdel", del_tag), user=user)
    rename = E.Event(run_updated=E.RunUpdated(run_id=runs[3], run_name="renamed"))
    ing.write(request("rename", rename), user=user)
    for i, rid in enumerate(runs[:3]):
        ing.write(request(f"f{i}", finished(rid, E.FAILED if i == 2 else E.FINISHED)), user=user)
    ing.write(request("del", deleted(runs[2])), user=user)
    ing.write(request("del3", deleted(runs[3])), user=user)
    ing.write(request("res3", restored(runs[3])), user=user)
    ing.record_artifact(runs[0], "model/MLmodel", 120, "aa" * 32, user=user)
    ing.record_artifact(runs[0], "model/model.pkl", 4096, "bb" * 32, user=user)
    ing.record_artifact(runs[0], "model/MLmodel", 130, "cc" * 32, user=user)  # re-upload
    etag = E.Event(
        experiment_tag_set=E.ExperimentTagSet(
            experiment_id=exp, tag=E.KeyValue(key="team", value="platform")
        )
    )
    ing.write(request("etag", etag), user=user)
    # the registry: a model, versions, stages, aliases, tags, rename
    ing.write(
        _registry(
            "rm",
            registered_model_created=E.RegisteredModelCreated(
                name="churn", tags=[E.KeyValue(key="k", value="v")]
            ),
        ),
        user=user,
    )
    for v in range(3):
        ing.create_model_version(
            G.CreateModelVersionRequest(
                name="churn", source=f"runs:/{runs[v]}/model", run_id=runs[v], batch_id=f"mv{v}"
            ),
            user=user,
        )
    writes = [
        E.Event(model_version_stage_set=E.ModelVersionStageSet(name="churn", version=1,
                                                               stage="Production")),
        E.Event(model_version_stage_set=E.ModelVersionStageSet(
            name="churn", version=2, stage="Production", archive_existing_versions=True)),
        E.Event(model_alias_set=E.ModelAliasSet(name="churn", alias="champion", version=1)),
        E.Event(model_alias_set=E.ModelAliasSet(name="churn", alias="champion", version=2)),
        E.Event(model_alias_set=E.ModelAliasSet(name="churn", alias="old", version=1)),
        E.Event(model_alias_deleted=E.ModelAliasDeleted(name="churn", alias="old")),
        E.Event(registered_model_tag_set=E.RegisteredModelTagSet(
            name="churn", tag=E.KeyValue(key="owner", value="bob"))),
        E.Event(registered_model_tag_deleted=E.RegisteredModelTagDeleted(name="churn", key="k")),
        E.Event(model_version_tag_set=E.ModelVersionTagSet(
            name="churn", version=2, tag=E.KeyValue(key="validated", value="yes"))),
        E.Event(model_version_updated=E.ModelVersionUpdated(
            name="churn", version=3, description="candidate")),
        E.Event(model_version_deleted=E.ModelVersionDeleted(name="churn", version=3)),
        E.Event(registered_model_renamed=E.RegisteredModelRenamed(
            name="churn", new_name="churn-v2")),
    ]  # fmt: skip
    for i, ev in enumerate(writes):
        ing.write(request(f"reg{i}", ev), user=user)
    # a newer event schema: an event type this fold does not know, appended as a gateway
    # of a later release would (validation would refuse it here)
    p.log.append("future", _future_batch("future"), StateChanges())


def _future_batch(batch_id: str) -> bytes:
    """A LoggedBatch of schema version 2 holding one event of an unknown type (field 99)."""
    unknown = E.Event.FromString(b"\x9a\x06\x05hello")  # field 99, length-delimited
    meta = E.BatchMeta(batch_id=batch_id, user="future", received_at_ms=1, schema_version=2)
    return E.LoggedBatch(meta=meta, events=[unknown]).SerializeToString()


# -- producing the log's records to Kafka, as the Kafka event log keys them -------------


def _route(payload: bytes, events_topic: str, registry_topic: str) -> tuple[str, str]:
    """(topic, key) like eventlog/kafka.py: registry by model id, else by the first run."""
    batch = E.LoggedBatch.FromString(payload)
    for ev in batch.events:
        which = ev.WhichOneof("body")
        if which is None:
            continue
        body = getattr(ev, which)
        if which.startswith(("registered_model_", "model_")):
            return registry_topic, body.model_id
        rid = getattr(body, "run_id", "") or getattr(body, "experiment_id", "")
        if rid:
            return events_topic, rid
    return events_topic, batch.meta.batch_id


@dataclass
class Produced:
    """Where each log record landed: embedded position -> encoded Kafka position."""

    positions: dict[int, int] = field(default_factory=dict)


def _produce(bootstrap: str, records: list[tuple[int, bytes]], topics: tuple[str, str]) -> Produced:
    from confluent_kafka import KafkaError, Message, Producer

    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "acks": "all"})
    out = Produced()
    errors: list[KafkaError] = []
    slots = {t: i for i, t in enumerate(topics)}

    def report(position: int) -> Callable[[KafkaError | None, Message], None]:
        def done(err: KafkaError | None, msg: Message) -> None:
            if err is not None:
                errors.append(err)
                return
            topic = msg.topic() or ""
            out.positions[position] = encode_position(
                slots[topic], int(msg.partition() or 0), int(msg.offset() or 0)
            )

        return done

    for position, payload in records:
        topic, key = _route(payload, *topics)
        producer.produce(topic, key=key, value=payload, on_delivery=report(position))
        producer.poll(0)
    assert producer.flush(30) == 0
    assert errors == []
    return out


# -- running the job ----------------------------------------------------------------------


def _config(
    kafka: KafkaService, minio: MinioService, name: str, root: str, **kw: Any
) -> CompactorConfig:
    s3 = minio.s3_settings
    env = {
        "RUNLAKE_S3_ENDPOINT_URL": s3.endpoint,
        "RUNLAKE_S3_ACCESS_KEY": s3.access_key,
        "RUNLAKE_S3_SECRET_KEY": s3.secret_key,
    }
    return CompactorConfig(
        bootstrap_servers=kafka.bootstrap_servers,
        tables_uri=s3.s3a_uri(root, "tables"),
        checkpoint_uri=s3.s3a_uri(root, "checkpoint"),
        topics=_topics(name),
        available_now=True,
        storage_env=env,
        **kw,
    )


def _run_to_end(spark: SparkSession, config: CompactorConfig) -> SparkCompactor:
    compactor = SparkCompactor(spark, config)
    query = compactor.start()
    try:
        query.awaitTermination(600)
    finally:
        query.stop()
    assert query.exception() is None, query.exception()
    return compactor


def _spark_rows(spark: SparkSession, config: CompactorConfig, name: str) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = (
        spark.read.format("delta").load(config.table_uri(name)).toArrow().to_pylist()
    )
    return rows


def _txn_version(spark: SparkSession, config: CompactorConfig, name: str) -> int:
    """The last micro-batch ``name`` committed: its Delta app-transaction version."""
    from pyspark.sql import functions as F

    log = spark.read.json(f"{config.table_uri(name)}/_delta_log/*.json")
    txn = log.where("txn is not null").where(f"txn.appId = '{config.app_id(name)}'")
    return int(txn.select(F.max("txn.version")).collect()[0][0])


def _canon(rows: list[dict[str, Any]]) -> list[str]:
    return sorted(json.dumps(r, sort_keys=True) for r in rows)


@pytest.fixture(scope="module")
def recorded(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[Pipeline, list[tuple[int, bytes]]]]:
    """The stream, recorded once per module and folded by the embedded compactor."""
    root = tmp_path_factory.mktemp("embedded")
    log = open_event_log(f"sqlite:///{root / 'log.db'}")
    backlog = Backlog(1 << 30)
    ingestor = Ingestor(log, artifact_root=(root / "artifacts").as_uri(), backlog=backlog)
    ingestor.ensure_default_experiment()
    sink = DeltaTableSink(str(root / "tables"))
    sink.ensure_tables()
    progress = Progress()
    compactor = EmbeddedCompactor(log, sink, progress, on_bytes_folded=backlog.folded)
    p = Pipeline(
        root, log, ingestor, sink, DeltaTableReader(str(root / "tables")), progress,
        compactor, backlog,
    )  # fmt: skip
    _record_stream(p)
    raw = log.read(0, max_records=100_000, max_bytes=1 << 30)
    while compactor.run_once():
        pass
    yield p, [(r.position, r.payload) for r in raw]
    log.close()


# -- the tests ------------------------------------------------------------------------------


@pytest.mark.parametrize("writer", ["delta-rs", "spark"])
def test_spark_and_embedded_compactors_fold_to_identical_tables(
    spark: SparkSession,
    kafka: KafkaService,
    minio: MinioService,
    topics: None,
    recorded: tuple[Pipeline, list[tuple[int, bytes]]],
    writer: WriterKind,
) -> None:
    """Either writer of the Spark job gives the embedded compactor's tables."""
    p, records = recorded
    # Two batches logged twice, the copies at the end of the log, many micro-batches after
    # the originals (an ambiguous producer timeout, then the SDK's retry): folded once.
    metric_batches = [
        r for r in records if E.LoggedBatch.FromString(r[1]).events[0].HasField("metrics_logged")
    ]
    copies = [(-position, payload) for position, payload in metric_batches[:2]]
    name = f"conformance-{writer}"
    produced = _produce(kafka.bootstrap_servers, records + copies, _topics(name))
    # small micro-batches: merges across batches are exercised, not just one fold
    config = _config(
        kafka, minio, name, f"tests/spark-compactor-{uuid.uuid4().hex}",
        max_offsets_per_trigger=25, optimize_every=3, writer=writer,
    )  # fmt: skip
    compactor = _run_to_end(spark, config)
    assert compactor.batches > 2

    back = {k: v for v, k in produced.positions.items()}  # kafka position -> embedded
    for name in TABLES:
        expected = p.table(name)
        got = _spark_rows(spark, config, name)
        if name in _POSITION_TABLES:
            for row in got:
                row["position"] = back[row["position"]]
        assert _canon(got) == _canon(expected), f"table {name} differs"
        if name not in ("experiment_tags", "registered_model_tags", "model_version_tags"):
            assert expected, f"the stream left {name} empty: it covers too little"

    # the unknown event of schema version 2 is in the audit trail, and only there
    events = _spark_rows(spark, config, "events")
    future = [e for e in events if e["batch_id"] == "future"]
    assert [(e["event_type"], e["user"]) for e in future] == [("unknown", "future")]
    # progress: each partition folded to its last offset, carried by the last events commit
    folded = read_progress(spark, config)
    assert sum(o + 1 for o in folded.values()) == len(records) + len(copies)
    from deltalake import DeltaTable
    from runlake.positions import parse_vector
    from runlake_services.tables.folded import latest_folded

    uri = config.table_uri("events").replace("s3a://", "s3://", 1)
    last = latest_folded(DeltaTable(uri, storage_options=_delta_options(minio)).history(limit=50))
    assert last is not None and parse_vector(last.token) == folded  # what delta-rs readers see
    assert abs(last.timestamp_ms - time.time() * 1000) < 3_600_000


class _CrashAfter(SparkCompactor):
    """Dies in micro-batch ``crash_batch`` after some tables committed, before ``events``."""

    crash_batch = 2

    def _commit(self, name: str, rows: Any, batch_id: int, metadata: str | None) -> None:
        if batch_id == self.crash_batch and name == "events":
            raise RuntimeError("simulated crash before the events commit")
        super()._commit(name, rows, batch_id, metadata)


def test_a_crash_mid_batch_then_restart_loses_and_doubles_nothing(
    spark: SparkSession,
    kafka: KafkaService,
    minio: MinioService,
    topics: None,
    recorded: tuple[Pipeline, list[tuple[int, bytes]]],
) -> None:
    p, records = recorded
    _produce(kafka.bootstrap_servers, records, _topics("crash"))
    config = _config(
        kafka, minio, "crash", f"tests/spark-crash-{uuid.uuid4().hex}", max_offsets_per_trigger=20
    )
    crashing = _CrashAfter(spark, config)
    query = crashing.start()
    with pytest.raises(Exception, match="simulated crash"):
        query.awaitTermination(600)
    query.stop()
    # the crash came between the tables: metrics hold micro-batch 2, events only 1
    assert _txn_version(spark, config, "metrics") == _CrashAfter.crash_batch
    assert _txn_version(spark, config, "events") == _CrashAfter.crash_batch - 1
    # restart from the checkpoint: batch 2 runs again, metrics skip it, events take it
    _run_to_end(spark, config)
    for name in ("metrics", "events", "params", "latest_metrics", "runs"):
        got = _spark_rows(spark, config, name)
        if name in _POSITION_TABLES:
            for row in got:
                row["position"] = 0
        expected = p.table(name)
        if name in _POSITION_TABLES:
            expected = [{**r, "position": 0} for r in expected]
        assert _canon(got) == _canon(expected), f"{name}: lost or doubled rows after restart"


@pytest.mark.parametrize("writer", ["delta-rs", "spark"])
def test_a_replayed_micro_batch_commits_nothing(
    spark: SparkSession,
    kafka: KafkaService,
    minio: MinioService,
    topics: None,
    recorded: tuple[Pipeline, list[tuple[int, bytes]]],
    writer: WriterKind,
) -> None:
    """Delta's app transaction skips every table's second commit, MERGE included.

    The replays run in compactors that remember no batch ids (``dedupe_window_s=0``), so
    they fold the same rows again and only the app transactions stand in the way, as after
    a crash before the events commit.
    """
    from dataclasses import replace

    from delta.tables import DeltaTable

    _, records = recorded
    events_topic, registry_topic = _topics(f"replay-{writer}")
    _produce(kafka.bootstrap_servers, records, (events_topic, registry_topic))
    config = _config(
        kafka, minio, f"replay-{writer}", f"tests/spark-replay-{uuid.uuid4().hex}", writer=writer
    )
    batch = (
        spark.read.format("kafka")
        .option("kafka.bootstrap.servers", kafka.bootstrap_servers)
        .option("subscribe", f"{events_topic},{registry_topic}")
        .option("startingOffsets", "earliest")
        .load()
    )
    compactor = SparkCompactor(spark, config)
    compactor.writer.ensure_tables()
    compactor.process_batch(batch, 7)
    merged = {"runs", "tags", "latest_metrics", "model_versions", "model_aliases"}
    assert merged <= set(compactor.last.tables_committed)

    def versions() -> dict[str, int]:
        return {
            name: DeltaTable.forPath(spark, config.table_uri(name))
            .history(1)
            .collect()[0]["version"]
            for name in TABLES
        }

    before = versions()
    forgetful = SparkCompactor(spark, replace(config, dedupe_window_s=0))
    forgetful.process_batch(batch, 7)
    assert forgetful.last.records == compactor.last.records  # folded again in full
    assert versions() == before
    SparkCompactor(spark, replace(config, dedupe_window_s=0)).process_batch(batch, 5)
    # an older batch id: skipped as well
    assert versions() == before


def _cli(config: CompactorConfig, minio: MinioService, *flags: str) -> subprocess.Popen[bytes]:
    """``runlake compactor`` in its own process group (its JVM is a child of it)."""
    s3 = minio.s3_settings
    env = {
        **os.environ,
        "RUNLAKE_S3_ENDPOINT_URL": s3.endpoint,
        "RUNLAKE_S3_ACCESS_KEY": s3.access_key,
        "RUNLAKE_S3_SECRET_KEY": s3.secret_key,
    }
    args = [
        sys.executable, "-c", "from runlake.cli.compactor_cmd import main; main()",
        "--kafka", config.bootstrap_servers, "--tables", config.tables_uri,
        "--checkpoint", config.checkpoint_uri, "--topics", ",".join(config.topics),
        "--master", "local[1]", *flags,
    ]  # fmt: skip
    return subprocess.Popen(
        args, cwd=str(Path(__file__).parents[3]), env=env, start_new_session=True,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip


def test_sigkill_mid_stream_then_restart_loses_and_doubles_nothing(
    spark: SparkSession,
    kafka: KafkaService,
    minio: MinioService,
    topics: None,
    recorded: tuple[Pipeline, list[tuple[int, bytes]]],
) -> None:
    """A compactor process killed with SIGKILL mid-stream; the next one completes exactly."""
    p, records = recorded
    _produce(kafka.bootstrap_servers, records, _topics("kill"))
    config = _config(kafka, minio, "kill", f"tests/spark-kill-{uuid.uuid4().hex}")
    first = _cli(config, minio, "--trigger", "100ms", "--max-offsets", "3")
    try:
        deadline = time.monotonic() + 300
        while True:  # kill it once a few micro-batches are in, well before the end
            assert first.poll() is None, (first.stdout.read() if first.stdout else b"")[-3000:]
            assert time.monotonic() < deadline, "no micro-batch committed in 300 s"
            try:
                if _txn_version(spark, config, "events") >= 2:
                    break
            except Exception:  # the table or its first commit does not exist yet
                pass
            time.sleep(0.5)
    finally:
        os.killpg(first.pid, signal.SIGKILL)
        first.wait(30)
    killed_at = _txn_version(spark, config, "events")
    assert sum(o + 1 for o in read_progress(spark, config).values()) < len(records)

    second = _cli(config, minio, "--once", "--max-offsets", "50")
    try:
        out, _ = second.communicate(timeout=420)
    finally:
        if second.poll() is None:
            os.killpg(second.pid, signal.SIGKILL)
            second.wait(30)
    assert second.returncode == 0, out[-3000:]
    assert _txn_version(spark, config, "events") > killed_at
    for name in ("metrics", "events"):
        got = [{**r, "position": 0} for r in _spark_rows(spark, config, name)]
        expected = [{**r, "position": 0} for r in p.table(name)]
        assert _canon(got) == _canon(expected), f"{name}: lost or doubled rows after SIGKILL"


def _spark_class(home: str, log: Path, *args: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "SPARK_HOME": home, "SPARK_LOCAL_IP": "127.0.0.1"}
    with open(log, "wb") as out:
        return subprocess.Popen(
            [f"{home}/bin/spark-class", *args], env=env, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip


def test_the_job_runs_on_a_standalone_spark_cluster(
    kafka: KafkaService,
    minio: MinioService,
    topics: None,
    recorded: tuple[Pipeline, list[tuple[int, bytes]]],
    tmp_path: Path,
) -> None:
    """``--master spark://…``: executors in their own JVMs get the connector jars shipped."""
    import urllib.request

    from pyspark.find_spark_home import _find_spark_home
    from runlake_services.embedded.process import free_port

    from tests.integration.cluster.conftest import wait_for

    home = _find_spark_home()
    port, ui = free_port(), free_port()
    master = _spark_class(
        home, tmp_path / "master.log", "org.apache.spark.deploy.master.Master",
        "--host", "127.0.0.1", "--port", str(port), "--webui-port", str(ui),
    )  # fmt: skip
    worker = _spark_class(
        home, tmp_path / "worker.log", "org.apache.spark.deploy.worker.Worker",
        f"spark://127.0.0.1:{port}", "--host", "127.0.0.1", "--cores", "1", "--memory", "1g",
        "--webui-port", str(free_port()), "--work-dir", str(tmp_path / "work"),
    )  # fmt: skip
    try:

        def alive_workers() -> int:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{ui}/json", timeout=2) as resp:
                    return int(json.load(resp).get("aliveworkers", 0))
            except OSError:
                return 0

        wait_for(lambda: alive_workers() == 1, 180, "a standalone worker to register")
        p, records = recorded
        _produce(kafka.bootstrap_servers, records, _topics("standalone"))
        config = _config(kafka, minio, "standalone", f"tests/spark-standalone-{uuid.uuid4().hex}")
        job = _cli(
            config, minio, "--once", "--max-offsets", "100",
            "--master", f"spark://127.0.0.1:{port}", "--conf", "spark.driver.host=127.0.0.1",
            "--conf", "spark.executor.memory=512m", "--conf", "spark.cores.max=1",
        )  # fmt: skip
        try:
            out, _ = job.communicate(timeout=900)
        finally:
            if job.poll() is None:
                os.killpg(job.pid, signal.SIGKILL)
                job.wait(30)
        assert job.returncode == 0, out[-3000:]
        ran_on = list((tmp_path / "work").glob("app-*/*/stderr"))
        assert ran_on, "no executor ran on the standalone worker"
        for name in ("metrics", "events", "runs", "latest_metrics"):
            spark_rows = _delta_rows(minio, config, name)
            expected = p.table(name)
            if name in _POSITION_TABLES:
                spark_rows = [{**r, "position": 0} for r in spark_rows]
                expected = [{**r, "position": 0} for r in expected]
            assert _canon(spark_rows) == _canon(expected), f"{name} differs"
    finally:
        for proc in (worker, master):
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(30)


def _delta_options(minio: MinioService) -> dict[str, str]:
    """delta-rs's options for the test MinIO, through the product's own env mapping."""
    from runlake_services.tables.storage import open_table_store

    s3 = minio.s3_settings
    env = {
        "RUNLAKE_S3_ENDPOINT_URL": s3.endpoint,
        "RUNLAKE_S3_ACCESS_KEY": s3.access_key,
        "RUNLAKE_S3_SECRET_KEY": s3.secret_key,
    }
    return open_table_store(f"s3://{s3.bucket}", env).storage_options


def _delta_rows(minio: MinioService, config: CompactorConfig, name: str) -> list[dict[str, Any]]:
    """A table read with delta-rs (no Spark session needed here)."""
    from deltalake import DeltaTable

    uri = config.table_uri(name).replace("s3a://", "s3://", 1)
    table = DeltaTable(uri, storage_options=_delta_options(minio)).to_pyarrow_table()
    rows: list[dict[str, Any]] = table.to_pylist()
    return rows


def test_positions_round_trip_and_repeated_batch_ids_fold_once() -> None:
    """No Spark needed: the encoding and the in-micro-batch dedupe of fold_kafka_records."""
    import pyarrow as pa

    from spark_jobs.compactor import decode_position, fold_kafka_records

    for slot, part, off in [(0, 0, 0), (1, 4095, (1 << 40) - 1), (3, 7, 123_456)]:
        assert decode_position(encode_position(slot, part, off)) == (slot, part, off)
    assert encode_position(0, 1, 0) > encode_position(0, 0, (1 << 40) - 1)
    rid = run_id()

    def value(batch_id: str, step: int) -> bytes:
        meta = E.BatchMeta(batch_id=batch_id, user="u", received_at_ms=5, schema_version=1)
        ev = metrics(rid, [("loss", 0.5, 10, step)])
        return E.LoggedBatch(meta=meta, events=[ev]).SerializeToString()

    # offsets out of order, and batch "b1" logged twice (an ambiguous producer timeout)
    rows = pa.table(
        {
            "topic": ["t.events"] * 3,
            "partition": pa.array([1, 1, 1], pa.int32()),
            "offset": [12, 10, 11],
            "value": [value("b1", 1), value("b1", 1), value("b2", 2)],
        }
    )
    folded = fold_kafka_records(rows, ("t.events", "t.registry"))
    assert folded.records == 2 and folded.duplicates == 1
    assert folded.offsets == {("t.events", 1): 12}
    assert folded.result is not None
    events = folded.result.tables["events"].to_pylist()
    assert [(decode_position(e["position"])[2], e["batch_id"]) for e in events] == [
        (10, "b1"),
        (11, "b2"),
    ]
    assert folded.result.tables["metrics"].num_rows == 2
    assert folded.batch_ids == ["b1", "b2"]

    # the same batch id again in a LATER micro-batch is dropped too (a retry that landed
    # after the first copy was folded), and the window forgets ids once they are old
    from spark_jobs.compactor import RecentBatchIds

    recent = RecentBatchIds(window_s=60)
    recent.add(folded.batch_ids, received_ms=1_000_000)
    later = pa.table(
        {
            "topic": ["t.events"] * 2,
            "partition": pa.array([1, 1], pa.int32()),
            "offset": [13, 14],
            "value": [value("b2", 2), value("b3", 3)],
        }
    )
    again = fold_kafka_records(later, ("t.events", "t.registry"), recent)
    assert (again.records, again.duplicates, again.batch_ids) == (1, 1, ["b3"])
    assert again.offsets == {("t.events", 1): 14}  # the duplicate's offset still counts
    recent.add(again.batch_ids, received_ms=1_000_000 + 61_000)
    assert "b1" not in recent and "b3" in recent and len(recent) == 1
