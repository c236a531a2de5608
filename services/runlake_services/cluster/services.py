"""Kafka and MinIO on 127.0.0.1, started and stopped through scripts/kafka.sh and minio.sh.

Each service keeps everything in its data dir: configuration, data, log, the PID of the
process the script started (``stop`` signals only that PID) and the ports it was started
with. ``start`` installs what is missing first (idempotent; a second run is instant), so a
fresh clone needs nothing but Java, Maven and Go.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Literal, Self

from runlake_services.cluster.scripts import ServiceError, run_script, runlake_dir

if TYPE_CHECKING:
    from minio import Minio

__all__ = [
    "DEFAULT_TOPICS",
    "KafkaService",
    "MinioService",
    "S3Settings",
    "ServiceStatus",
    "install_kafka",
    "install_minio",
    "install_spark_jars",
]

DEFAULT_TOPICS: tuple[str, ...] = ("runlake.events", "runlake.registry")

# First installs download ~750 MB of jars and compile MinIO (minutes on 2 cores).
_INSTALL_TIMEOUT_S = 1800.0
_STATUS_LINE = re.compile(r"^(running|stopped|unhealthy)(?: pid=(\d+))?", re.MULTILINE)
_EXIT_STATE: dict[int, Literal["running", "stopped", "unhealthy"]] = {
    0: "running",
    1: "unhealthy",
    3: "stopped",
}


def install_kafka() -> None:
    """Resolve the Kafka broker jars into .runlake/jars/kafka (no-op when present)."""
    run_script("install_kafka.sh", [], timeout_s=_INSTALL_TIMEOUT_S)


def install_minio() -> None:
    """Build the pinned MinIO server into .runlake/bin/minio (no-op when present)."""
    run_script("install_minio.sh", [], timeout_s=_INSTALL_TIMEOUT_S)


def install_spark_jars() -> None:
    """Resolve the Spark connector jars into .runlake/jars/spark (no-op when present)."""
    run_script("install_spark_jars.sh", [], timeout_s=_INSTALL_TIMEOUT_S)


@dataclass(frozen=True)
class ServiceStatus:
    """What ``<script> status`` said: running (and healthy), stopped, or unhealthy."""

    state: Literal["running", "stopped", "unhealthy"]
    pid: int | None
    detail: str

    @property
    def running(self) -> bool:
        return self.state == "running"


@dataclass(frozen=True)
class S3Settings:
    """Where and how to reach an S3 API (MinIO here): for Spark's s3a://, minio, delta-rs."""

    endpoint: str  # http://127.0.0.1:9000
    access_key: str
    secret_key: str = field(repr=False)
    bucket: str = "runlake"
    region: str = "us-east-1"

    @property
    def secure(self) -> bool:
        return self.endpoint.startswith("https://")

    @property
    def host_port(self) -> str:
        return self.endpoint.split("://", 1)[-1].rstrip("/")

    def s3a_uri(self, *parts: str) -> str:
        """``s3a://<bucket>/<parts...>`` for Spark."""
        return "/".join([f"s3a://{self.bucket}", *(p.strip("/") for p in parts)])

    def client(self) -> Minio:
        """A python minio client for this endpoint."""
        from minio import Minio

        return Minio(
            self.host_port,
            access_key=self.access_key,
            secret_key=self.secret_key,
            secure=self.secure,
            region=self.region,
        )


class _ScriptService:
    """Common start/stop/status over one scripts/<name>.sh."""

    _script: str
    data_dir: Path
    start_timeout_s: float
    stop_timeout_s: float
    pid: int | None

    def _flags(self) -> list[str]:
        raise NotImplementedError

    def _env(self) -> dict[str, str]:
        return {}

    def start(self) -> Self:
        """Install if needed, start, wait until healthy; raises ServiceError with the log tail."""
        result = run_script(
            self._script,
            ["start", *self._flags()],
            # the script bounds its own health wait; installs may add minutes on a fresh machine
            timeout_s=self.start_timeout_s + _INSTALL_TIMEOUT_S,
            env=self._env(),
        )
        m = _STATUS_LINE.search(result.stdout)
        if not m or m.group(1) != "running" or not m.group(2):
            raise ServiceError(f"scripts/{self._script} start said: {result.stdout!r}")
        self.pid = int(m.group(2))
        return self

    def status(self) -> ServiceStatus:
        result = run_script(
            self._script,
            ["status", *self._flags()],
            timeout_s=30,
            env=self._env(),
            ok_codes=tuple(_EXIT_STATE),
            echo_stderr=False,
        )
        m = _STATUS_LINE.search(result.stdout)
        pid = int(m.group(2)) if m and m.group(2) else None
        return ServiceStatus(_EXIT_STATE[result.returncode], pid, result.stdout.strip())

    def stop(self) -> None:
        """SIGTERM the PID recorded in the data dir, SIGKILL past ``stop_timeout_s``."""
        run_script(
            self._script,
            ["stop", *self._flags()],
            timeout_s=self.stop_timeout_s + 30,
            env=self._env(),
        )

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


@dataclass
class KafkaService(_ScriptService):
    """A single-node Kafka (KRaft) on 127.0.0.1 through scripts/kafka.sh."""

    data_dir: Path = field(default_factory=lambda: runlake_dir() / "kafka")
    port: int = 9092
    controller_port: int = 9093
    topics: tuple[str, ...] = DEFAULT_TOPICS
    partitions: int = 4
    heap: str = "512m"
    start_timeout_s: float = 120.0
    stop_timeout_s: float = 30.0
    pid: int | None = field(default=None, init=False)
    _script = "kafka.sh"

    @property
    def bootstrap_servers(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _flags(self) -> list[str]:
        return [
            "--data-dir", str(self.data_dir), "--port", str(self.port),
            "--controller-port", str(self.controller_port), "--topics", ",".join(self.topics),
            "--partitions", str(self.partitions), "--heap", self.heap,
            "--timeout", str(int(self.start_timeout_s)),
            "--stop-timeout", str(int(self.stop_timeout_s)),
        ]  # fmt: skip

    def create_topics(self, names: tuple[str, ...] | list[str], partitions: int) -> None:
        """Create topics on the running broker (existing ones are left as they are)."""
        flags = self._flags()
        flags[flags.index("--topics") + 1] = ",".join(names)
        flags[flags.index("--partitions") + 1] = str(partitions)
        run_script(self._script, ["topics", *flags], timeout_s=120, env=self._env())


@dataclass
class MinioService(_ScriptService):
    """A single-drive MinIO (S3 API) on 127.0.0.1 through scripts/minio.sh.

    Credentials: ``access_key``/``secret_key`` if given, else RUNLAKE_S3_ACCESS_KEY /
    RUNLAKE_S3_SECRET_KEY from the environment, else the dev-only pair the script generates
    into ``<data_dir>/credentials.env``. They reach the script through its environment.
    """

    data_dir: Path = field(default_factory=lambda: runlake_dir() / "minio")
    port: int = 9000
    bucket: str = "runlake"
    access_key: str | None = None
    secret_key: str | None = field(default=None, repr=False)
    start_timeout_s: float = 60.0
    stop_timeout_s: float = 20.0
    pid: int | None = field(default=None, init=False)
    _script = "minio.sh"

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _flags(self) -> list[str]:
        return [
            "--data-dir", str(self.data_dir), "--port", str(self.port),
            "--bucket", self.bucket, "--timeout", str(int(self.start_timeout_s)),
            "--stop-timeout", str(int(self.stop_timeout_s)),
        ]  # fmt: skip

    def _env(self) -> dict[str, str]:
        if self.access_key and self.secret_key:
            return {
                "RUNLAKE_S3_ACCESS_KEY": self.access_key,
                "RUNLAKE_S3_SECRET_KEY": self.secret_key,
            }
        return {}

    def credentials(self) -> tuple[str, str]:
        """(access key, secret key) the server was started with."""
        if self.access_key and self.secret_key:
            return self.access_key, self.secret_key
        env_key = os.environ.get("RUNLAKE_S3_ACCESS_KEY")
        env_secret = os.environ.get("RUNLAKE_S3_SECRET_KEY")
        if env_key and env_secret:
            return env_key, env_secret
        path = self.data_dir / "credentials.env"
        try:
            pairs = dict(
                line.split("=", 1) for line in path.read_text().splitlines() if "=" in line
            )
            return pairs["RUNLAKE_S3_ACCESS_KEY"], pairs["RUNLAKE_S3_SECRET_KEY"]
        except (OSError, KeyError) as e:
            raise ServiceError(f"no MinIO credentials: none given and none in {path}") from e

    @property
    def s3_settings(self) -> S3Settings:
        key, secret = self.credentials()
        return S3Settings(self.endpoint, key, secret, bucket=self.bucket)

    def client(self) -> Minio:
        return self.s3_settings.client()
