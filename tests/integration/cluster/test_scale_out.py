"""The scale-out deployment end to end, started the way a user starts it.

``runlake dev-cluster up`` brings up Kafka, MinIO, the Spark compactor, a query service and
two gateways (the second forwards registry writes to the first, the coordinator); the SDK
then uses the printed tracking URI exactly as it would use ``runlake server``. The fault
tests restart the real broker, the real MinIO and a real gateway process under load and
check that every acknowledged point is in the tables exactly once.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from runlake_services.cluster import KafkaService, MinioService
from runlake_services.cluster.dev import ClusterState
from runlake_services.embedded.process import free_port

from tests.integration.cluster.conftest import wait_for

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(1800)]

_URI = re.compile(r"tracking URI (grpc://\S+)")


def _cli(*args: str, timeout_s: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", "from runlake.cli import main; main()", *args],
        capture_output=True, text=True, timeout=timeout_s, check=False,
    )  # fmt: skip


@dataclass
class Cluster:
    dir: Path
    uri: str
    kafka_port: int
    controller_port: int
    minio_port: int

    @property
    def state(self) -> ClusterState:
        return ClusterState.load(self.dir / "cluster.json")

    def gateway(self, i: int) -> str:
        return next(p.grpc for p in self.state.parts if p.name == f"gateway-{i}")

    def kafka(self) -> KafkaService:
        return KafkaService(
            self.dir / "kafka", port=self.kafka_port, controller_port=self.controller_port,
            topics=("runlake.events", "runlake.registry"), partitions=3,
        )  # fmt: skip

    def minio(self) -> MinioService:
        return MinioService(self.dir / "minio", port=self.minio_port)


@pytest.fixture(scope="module", autouse=True)
def patient_reads() -> Iterator[None]:
    """Reads wait for the compactor's micro-batches: on a loaded 2-core machine a Spark
    micro-batch can take tens of seconds, and these tests check what is read, not when."""
    import os

    before = os.environ.get("RUNLAKE_READ_WAIT_MS")
    os.environ["RUNLAKE_READ_WAIT_MS"] = "110000"  # under the SDK's 120 s call deadline
    yield
    if before is None:
        os.environ.pop("RUNLAKE_READ_WAIT_MS")
    else:
        os.environ["RUNLAKE_READ_WAIT_MS"] = before


@pytest.fixture(scope="module")
def cluster(cluster_installed: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    directory = tmp_path_factory.mktemp("dev-cluster")
    ports = [free_port() for _ in range(3)]
    up = _cli(
        "dev-cluster", "up", "--dir", str(directory), "--gateways", "2", "--port", "0",
        "--query-port", "0", "--kafka-port", str(ports[0]),
        "--kafka-controller-port", str(ports[1]), "--minio-port", str(ports[2]),
    )  # fmt: skip
    try:
        assert up.returncode == 0, up.stdout + up.stderr
        m = _URI.search(up.stdout)
        assert m, up.stdout
        yield Cluster(directory, m.group(1), *ports)
    finally:
        down = _cli("dev-cluster", "down", "--dir", str(directory))
        assert down.returncode == 0, down.stdout + down.stderr


def test_status_shows_every_part_up_and_the_uri_is_the_first_gateway(cluster: Cluster) -> None:
    out = _cli("dev-cluster", "status", "--dir", str(cluster.dir), "--output", "json")
    assert out.returncode == 0, out.stdout + out.stderr
    report = json.loads(out.stdout)
    assert report["running"] is True
    assert set(report["parts"]) == {
        "kafka", "minio", "compactor", "query", "gateway-0", "gateway-1"
    }  # fmt: skip
    assert all(p["up"] for p in report["parts"].values())
    assert report["tracking_uri"] == cluster.uri == cluster.gateway(0)


def test_the_sdk_works_against_the_cluster_as_against_runlake_server(cluster: Cluster) -> None:
    import runlake

    runlake.set_tracking_uri(cluster.uri)
    try:
        name = f"scale-{uuid.uuid4().hex[:8]}"
        runlake.set_experiment(name)
        with runlake.start_run(run_name="baseline") as run:
            runlake.log_params({"lr": 0.01, "layers": 3})
            for step in range(100):
                runlake.log_metric("loss", 1 / (step + 1), step=step)
            runlake.set_tag("team", "vision")
        best = runlake.search_runs(
            filter_string="metrics.loss < 0.05 AND params.lr = '0.01'",
            order_by=["metrics.loss ASC"],
        )
        assert list(best["run_id"]) == [run.info.run_id]
        assert best["metrics.loss"].iloc[0] == pytest.approx(0.01)
        assert best["tags.team"].iloc[0] == "vision"
        client = runlake.RunlakeClient()
        got = client.get_run(run.info.run_id)
        assert got.info.status == "FINISHED" and got.data.params == {"lr": "0.01", "layers": "3"}
        history = client.get_metric_history(run.info.run_id, "loss")
        assert [m.step for m in history] == list(range(100))
        counts = runlake.sql(
            f"SELECT count(*) AS n FROM metrics WHERE run_id = '{run.info.run_id}'"
        )
        assert int(counts["n"].iloc[0]) == 100
    finally:
        runlake.set_tracking_uri(None)

    # the CLI, too, only needs the URI
    out = _cli("--tracking-uri", cluster.uri, "runs", "get", run.info.run_id)
    assert out.returncode == 0 and run.info.run_id in out.stdout, out.stdout + out.stderr


def test_each_gateway_reads_what_the_other_wrote_and_registry_writes_forward(
    cluster: Cluster,
) -> None:
    from runlake import RunlakeClient

    a, b = RunlakeClient(cluster.gateway(0)), RunlakeClient(cluster.gateway(1))
    exp = b.create_experiment(f"two-gw-{uuid.uuid4().hex[:8]}")  # forwarded to gateway 0
    run = b.create_run(exp)  # b's own catalog has seen the forwarded experiment
    b.log_metric(run.info.run_id, "acc", 0.9, step=1)
    b.flush()
    # at once, through the other gateway: it catches up with the log before refusing
    a.log_metric(run.info.run_id, "loss", 0.1, step=1)
    a.flush()
    a.sync()  # a's next reads wait for everything the gateways acknowledged
    assert a.get_run(run.info.run_id).data.metrics == {"acc": 0.9, "loss": 0.1}

    model = f"churn-{uuid.uuid4().hex[:8]}"
    b.create_registered_model(model)
    versions: list[int] = []
    errors: list[BaseException] = []

    def register(client: RunlakeClient) -> None:
        try:
            mv = client.create_model_version(
                model, f"runs:/{run.info.run_id}/model", run.info.run_id
            )
            versions.append(int(mv.version))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=register, args=((a, b)[i % 2],)) for i in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert sorted(versions) == list(range(1, 13))  # no gap, no duplicate, through both
    a.set_registered_model_alias(model, "champion", 7)
    # another client sees it once its gateway has tailed the write and `sync` covers it
    from runlake.errors import NotFound

    def b_sees_alias() -> bool:
        b.sync()
        try:
            return int(b.get_model_version_by_alias(model, "champion").version) == 7
        except NotFound:
            return False

    wait_for(b_sees_alias, 60, "the alias through the other gateway")


def test_artifacts_go_to_minio_through_one_gateway_and_come_back_through_the_other(
    cluster: Cluster, tmp_path: Path
) -> None:
    from runlake import RunlakeClient

    a, b = RunlakeClient(cluster.gateway(0)), RunlakeClient(cluster.gateway(1))
    run = b.create_run("0")
    src = tmp_path / "weights.bin"
    src.write_bytes(bytes(range(256)) * 4096)
    b.log_artifact(run.info.run_id, str(src), artifact_path="model")
    b.flush()
    a.sync()
    out = Path(a.download_artifacts(run.info.run_id, "model/weights.bin", str(tmp_path / "back")))
    assert out.read_bytes() == src.read_bytes()
    objects = list(cluster.minio().client().list_objects("runlake", recursive=True))
    assert any(o.object_name.endswith("model/weights.bin") for o in objects)


class _Logger:
    """A client logging points in a thread, counting the ones the gateway acknowledged."""

    def __init__(self, uri: str, points: int, pause_s: float = 0.01) -> None:
        from runlake import RunlakeClient

        self.client = RunlakeClient(uri)
        self.run_id = self.client.create_run("0").info.run_id
        self.client.flush()
        self.points, self.pause_s = points, pause_s
        self.acked = 0
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._go, daemon=True)
        self.thread.start()

    def _go(self) -> None:
        try:
            for start in range(0, self.points, 100):
                for step in range(start, start + 100):
                    self.client.log_metric(self.run_id, "x", float(step), step=step)
                self.client.flush()  # retries through the outage, returns once durable
                self.acked = start + 100
                time.sleep(self.pause_s)
        except BaseException as exc:
            self.error = exc

    def wait(self, timeout_s: float) -> None:
        self.thread.join(timeout_s)
        assert not self.thread.is_alive(), f"still logging after {timeout_s}s ({self.acked})"
        assert self.error is None, self.error

    def stored(self) -> list[Any]:
        self.client.sync()
        rows = self.client.sql(
            f"SELECT step, count(*) AS n FROM metrics WHERE run_id = '{self.run_id}' "
            "GROUP BY step ORDER BY step"
        )
        return [(int(s), int(n)) for s, n in zip(rows["step"], rows["n"], strict=True)]


def _exactly_once(logger: _Logger) -> None:
    assert logger.stored() == [(step, 1) for step in range(logger.points)]


def test_kafka_broker_restart_while_clients_log_loses_nothing_acknowledged(
    cluster: Cluster,
) -> None:
    loggers = [_Logger(cluster.gateway(i), 3_000, pause_s=0.02) for i in (0, 1)]
    wait_for(lambda: all(lg.acked >= 300 for lg in loggers), 120, "logging to start")
    broker = cluster.kafka()
    broker.stop()
    time.sleep(3)  # clients keep logging into the outage: their flushes retry
    broker.start()
    for lg in loggers:
        lg.wait(300)
        _exactly_once(lg)


def test_minio_restart_while_the_job_runs_and_the_job_recovers(cluster: Cluster) -> None:
    logger = _Logger(cluster.gateway(0), 1_500, pause_s=0.05)
    wait_for(lambda: logger.acked >= 300, 120, "logging to start")
    store = cluster.minio()
    store.stop()
    time.sleep(5)  # the compactor's commits fail meanwhile; Kafka keeps what is logged
    store.start()
    logger.wait(300)
    _exactly_once(logger)
    status = json.loads(
        _cli("dev-cluster", "status", "--dir", str(cluster.dir), "--output", "json").stdout
    )
    assert status["parts"]["compactor"]["up"], "the compactor did not survive the outage"


def test_a_gateway_killed_and_restarted_loses_nothing_acknowledged(cluster: Cluster) -> None:
    logger = _Logger(cluster.gateway(1), 2_000, pause_s=0.02)
    wait_for(lambda: logger.acked >= 300, 120, "logging to start")
    out = _cli("dev-cluster", "restart", "gateway-1", "--kill", "--dir", str(cluster.dir))
    assert out.returncode == 0, out.stdout + out.stderr
    assert cluster.gateway(1).endswith(logger.client.tracking_uri.rsplit(":", 1)[1])
    logger.wait(300)
    _exactly_once(logger)
