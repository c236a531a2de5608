"""``runlake dev-cluster``: the whole scale-out deployment on one machine, on loopback.

Kafka (KRaft) and MinIO through their scripts, then the Spark compactor, a query service
and one or more gateways as ``runlake`` child processes in their own sessions, so they
outlive the command that started them. Everything lives under one directory:

    <dir>/kafka, <dir>/minio     the services' data, logs and PIDs (scripts/*.sh)
    <dir>/logs/<part>.log        each runlake process's output
    <dir>/cluster.json           what runs where: PIDs, ports, URIs (no secrets)

``down`` stops what ``cluster.json`` names, by the PIDs recorded there, in reverse
order (gateways first, so nothing new is acknowledged while the rest stops). The tracking
URI is the first gateway's: gateways serve the Query service too (``--query-upstream``),
and the others forward registry writes to the first, the coordinator.
"""

from __future__ import annotations

import json
import signal
import time
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from runlake_services.cluster.scripts import ServiceError, runlake_dir
from runlake_services.cluster.services import (
    KafkaService,
    MinioService,
    S3Settings,
    install_kafka,
    install_minio,
    install_spark_jars,
)
from runlake_services.launcher import RunlakeProcess, pid_alive, stop_pid

__all__ = ["ClusterState", "DevCluster", "DevClusterConfig", "Part"]

STATE_FILE = "cluster.json"
#: Parts in start order; ``down`` walks it backwards.
ORDER = ("compactor", "query", "gateway")


@dataclass(frozen=True)
class DevClusterConfig:
    """Where the cluster lives and listens. Port 0: any free port (tests)."""

    dir: Path = field(default_factory=lambda: runlake_dir() / "dev-cluster")
    kafka_port: int = 9092
    kafka_controller_port: int = 9093
    minio_port: int = 9000
    gateway_port: int = 5055
    query_port: int = 5057
    gateways: int = 1
    partitions: int = 3
    events_topic: str = "runlake.events"
    registry_topic: str = "runlake.registry"
    bucket: str = "runlake"
    #: Key prefix of everything in the bucket (tables, checkpoint, artifacts).
    prefix: str = ""
    trigger: str = "1s"
    compactor_memory: str = "1g"
    start_timeout_s: float = 300.0

    def s3a(self, *parts: str) -> str:
        return "/".join(p.strip("/") for p in (f"s3a://{self.bucket}", self.prefix, *parts) if p)


@dataclass
class Part:
    """One runlake process of the cluster, as recorded in cluster.json."""

    name: str
    pid: int
    grpc: str = ""
    http: str = ""
    log: str = ""
    #: its ``runlake`` arguments, ports fixed (no secrets: those come from the environment)
    args: list[str] = field(default_factory=list)


@dataclass
class ClusterState:
    """cluster.json: enough for ``status`` and ``down`` in another process."""

    tracking_uri: str
    kafka: str
    s3_endpoint: str
    tables: str
    parts: list[Part]
    kafka_dir: str
    minio_dir: str
    started_at: float = 0.0
    #: the DevClusterConfig it was started with (ports, topics), for status/down/restart
    config: dict[str, Any] = field(default_factory=dict)

    def save(self, path: Path) -> None:
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(self), indent=2))
        tmp.replace(path)

    @classmethod
    def load(cls, path: Path) -> ClusterState:
        data = json.loads(path.read_text())
        data["parts"] = [Part(**p) for p in data["parts"]]
        return cls(**data)


def _fixed_ports(proc: RunlakeProcess) -> list[str]:
    """The process's arguments with the ports it got: a restart comes back on the same ones."""
    args = list(proc.args)
    for flag, port in (("--port", proc.port), ("--http-port", proc.http_port)):
        if flag in args and port:
            args[args.index(flag) + 1] = str(port)
    return args


def _recorded(proc: RunlakeProcess) -> Part:
    return Part(
        proc.name,
        proc.pid,
        grpc=proc.uri if proc.port else "",
        http=f"http://127.0.0.1:{proc.http_port}" if proc.http_port else "",
        log=str(proc.log_path or ""),
        args=_fixed_ports(proc),
    )


def _health(url: str, timeout_s: float = 2.0) -> bool:
    try:
        with urllib.request.urlopen(url + "/health", timeout=timeout_s) as resp:
            return bool(resp.status == 200)
    except OSError:
        return False


class DevCluster:
    """Starts, inspects and stops the local cluster of :class:`DevClusterConfig`.

    ``kafka``/``minio`` may be services already running (the test suite shares one of
    each per run); they are then neither started nor stopped here.
    """

    def __init__(
        self,
        config: DevClusterConfig,
        *,
        kafka: KafkaService | None = None,
        minio: MinioService | None = None,
        on_step: Callable[[str], None] | None = None,
    ) -> None:
        self.config = config
        self._own_services = kafka is None and minio is None
        c = config
        self.kafka = kafka or KafkaService(
            c.dir / "kafka",
            port=c.kafka_port,
            controller_port=c.kafka_controller_port,
            topics=(c.events_topic, c.registry_topic),
            partitions=c.partitions,
        )
        self.minio = minio or MinioService(c.dir / "minio", port=c.minio_port, bucket=c.bucket)
        self.processes: dict[str, list[RunlakeProcess]] = {}
        self._step = on_step or (lambda _msg: None)

    @classmethod
    def open(cls, directory: Path, **kw: Any) -> DevCluster:
        """The cluster started from ``directory``, with the settings it was started with."""
        path = directory / STATE_FILE
        if not path.exists():
            return cls(DevClusterConfig(dir=directory), **kw)
        saved = dict(ClusterState.load(path).config)
        saved["dir"] = directory
        return cls(DevClusterConfig(**saved), **kw)

    @property
    def state_path(self) -> Path:
        return self.config.dir / STATE_FILE

    # -- up --

    def _s3_env(self, s3: S3Settings) -> dict[str, str]:
        return {
            "RUNLAKE_S3_ENDPOINT_URL": s3.endpoint,
            "RUNLAKE_S3_ACCESS_KEY": s3.access_key,
            "RUNLAKE_S3_SECRET_KEY": s3.secret_key,
            "RUNLAKE_S3_REGION": s3.region,
        }

    def _spawn(self, name: str, args: list[str], env: dict[str, str]) -> RunlakeProcess:
        proc = RunlakeProcess(
            args, name=name, env=env, log_path=self.config.dir / "logs" / f"{name}.log"
        )
        self.processes.setdefault(name.split("-")[0], []).append(proc)
        proc.start(self.config.start_timeout_s)
        return proc

    def up(self) -> ClusterState:
        """Start every part, wait until each answers, record and return where they are."""
        c = self.config
        if self.state_path.exists() and self.running():
            raise ServiceError(f"a dev cluster already runs from {c.dir}; `down` it first")
        c.dir.mkdir(parents=True, exist_ok=True)
        try:
            if self._own_services:
                self._step("installing Kafka, MinIO and the Spark jars (first run: minutes)")
                with ThreadPoolExecutor(3) as pool:
                    for f in [
                        pool.submit(i) for i in (install_minio, install_kafka, install_spark_jars)
                    ]:
                        f.result()
                self._step(
                    f"starting Kafka on 127.0.0.1:{c.kafka_port} and MinIO on :{c.minio_port}"
                )
                with ThreadPoolExecutor(2) as pool:
                    for started in [pool.submit(s.start) for s in (self.kafka, self.minio)]:
                        started.result()
            return self._start_runlake()
        except BaseException:
            self.down()
            raise

    def _start_runlake(self) -> ClusterState:
        c = self.config
        s3 = self.minio.s3_settings
        env = self._s3_env(s3)
        bootstrap = self.kafka.bootstrap_servers
        self._step("starting the Spark compactor (a JVM: tens of seconds)")
        self._spawn(
            "compactor",
            [
                "compactor", "--kafka", bootstrap, "--tables", c.s3a("tables"),
                "--checkpoint", c.s3a("checkpoints", "compactor"),
                "--topics", f"{c.events_topic},{c.registry_topic}", "--trigger", c.trigger,
                "--driver-memory", c.compactor_memory,
            ],
            env,
        )  # fmt: skip
        self._step("starting the query service")
        query = self._spawn(
            "query",
            [
                "query", "--store", c.s3a("tables"), "--port", str(c.query_port),
                "--http-port", "0",
            ],
            env,
        )  # fmt: skip
        log_uri = f"kafka://{bootstrap}/{c.events_topic}?registry_topic={c.registry_topic}"
        artifacts = c.s3a("artifacts").replace("s3a://", "s3://", 1)
        gateways: list[RunlakeProcess] = []
        for i in range(c.gateways):
            self._step(f"starting gateway {i + 1} of {c.gateways}")
            args = [
                "gateway", "--log", log_uri, "--artifacts-destination", artifacts,
                "--port", str(c.gateway_port if i == 0 else 0),
                "--http-port", "0", "--query-upstream", query.uri,
                "--catalog", str(c.dir / f"gateway-{i}.catalog.db"),
            ]  # fmt: skip
            if i:
                args += ["--no-coordinator", "--coordinator-upstream", gateways[0].uri]
            gateways.append(self._spawn(f"gateway-{i}", args, env))
        parts = [_recorded(p) for name in ORDER for p in self.processes.get(name, [])]
        state = ClusterState(
            tracking_uri=gateways[0].uri,
            kafka=bootstrap,
            s3_endpoint=s3.endpoint,
            tables=c.s3a("tables"),
            parts=parts,
            kafka_dir=str(self.kafka.data_dir),
            minio_dir=str(self.minio.data_dir),
            started_at=time.time(),
            config={**asdict(c), "dir": str(c.dir)},
        )
        state.save(self.state_path)
        return state

    # -- restart (faults, on purpose) --

    def restart(self, name: str, *, kill: bool = False) -> Part:
        """Stop one part (SIGTERM, or SIGKILL with ``kill``) and start it again, same ports."""
        state = self.state()
        if state is None:
            raise ServiceError(f"no dev cluster runs from {self.config.dir}")
        index = next((i for i, p in enumerate(state.parts) if p.name == name), None)
        if index is None:
            names = ", ".join(p.name for p in state.parts)
            raise ServiceError(f"no part {name!r} in this cluster; parts: {names}")
        old = state.parts[index]
        if kill:
            stop_pid(old.pid, 0.0, signal.SIGKILL)
        else:
            stop_pid(old.pid, 60.0)
        proc = self._spawn(old.name, list(old.args), self._s3_env(self.minio.s3_settings))
        state.parts[index] = _recorded(proc)
        state.save(self.state_path)
        return state.parts[index]

    # -- status / down --

    def state(self) -> ClusterState | None:
        return ClusterState.load(self.state_path) if self.state_path.exists() else None

    def running(self) -> bool:
        state = self.state()
        return state is not None and any(pid_alive(p.pid) for p in state.parts)

    def status(self) -> dict[str, Any]:
        """Each part: up (PID alive, and /health answers where it has one) or down."""
        state = self.state()
        if state is None:
            return {"running": False, "parts": {}}
        parts: dict[str, dict[str, Any]] = {}
        for p in state.parts:
            alive = pid_alive(p.pid)
            healthy = alive and (not p.http or _health(p.http))
            parts[p.name] = {"up": healthy, "pid": p.pid, "grpc": p.grpc, "http": p.http}
        for name, service in (("kafka", self.kafka), ("minio", self.minio)):
            st = service.status()
            parts[name] = {"up": st.running, "pid": st.pid, "detail": st.detail}
        return {
            "running": all(p["up"] for p in parts.values()),
            "tracking_uri": state.tracking_uri,
            "parts": parts,
        }

    def down(self) -> list[str]:
        """Stop every recorded part (gateways first), then Kafka and MinIO; what stopped."""
        stopped: list[str] = []
        state = self.state()
        recorded = list(reversed(state.parts)) if state else []
        known = {p.pid for p in recorded}
        # processes started by this object but not yet recorded (a failed `up`)
        extra = [
            Part(p.name, p.pid)
            for name in reversed(ORDER)
            for p in self.processes.get(name, [])
            if p.proc is not None and p.pid not in known
        ]
        for part in extra + recorded:
            if pid_alive(part.pid):
                # the compactor's clean stop ends its streaming query; give it time
                stop_pid(part.pid, 60.0 if part.name == "compactor" else 20.0)
                stopped.append(part.name)
        for proc in (p for procs in self.processes.values() for p in procs):
            if proc.proc is not None and proc.proc.poll() is None:
                proc.proc.wait(1)
        if self._own_services:
            for name, service in (("kafka", self.kafka), ("minio", self.minio)):
                if service.status().state != "stopped":
                    service.stop()
                    stopped.append(name)
        if self.state_path.exists():
            self.state_path.unlink()
        return stopped
