"""Start, status and stop as a user (or `runlake dev-cluster`) runs them."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from runlake_services.cluster import KafkaService, MinioService, ServiceError
from runlake_services.embedded.process import free_port

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(1800)]  # first run installs


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie is gone for every purpose but the process table
    stat = Path(f"/proc/{pid}/stat")
    return not stat.exists() or stat.read_text().split()[2] != "Z"


@pytest.mark.parametrize("kind", ["minio", "kafka"])
def test_stop_ends_the_recorded_process_and_status_says_so(
    kind: str, cluster_installed: None, tmp_path: Path
) -> None:
    service: KafkaService | MinioService
    if kind == "kafka":
        service = KafkaService(
            tmp_path / "kafka", port=free_port(), controller_port=free_port(), topics=()
        )
    else:
        service = MinioService(tmp_path / "minio", port=free_port())
    try:
        service.start()
        pid = service.pid
        assert pid is not None and _alive(pid)
        assert (service.data_dir / f"{kind}.pid").read_text().strip() == str(pid)
        status = service.status()
        assert status.running and status.pid == pid

        again = service.start()  # a second start finds it running: same process
        assert again.pid == pid
    finally:
        service.stop()

    assert not _alive(pid)
    assert not (service.data_dir / f"{kind}.pid").exists()
    status = service.status()
    assert status.state == "stopped" and status.pid is None
    service.stop()  # stopping a stopped service is fine


def test_port_in_use_fails_clearly(minio: MinioService, tmp_path: Path) -> None:
    clash = MinioService(tmp_path / "clash", port=minio.port)
    with pytest.raises(ServiceError, match="already in use"):
        clash.start()
    assert minio.status().running  # the one that owns the port is untouched


def test_a_broker_that_cannot_start_fails_with_its_log(
    cluster_installed: None, tmp_path: Path
) -> None:
    broken = KafkaService(
        tmp_path / "kafka", port=free_port(), controller_port=free_port(), topics=(), heap="1k"
    )
    with pytest.raises(ServiceError) as e:
        broken.start()
    message = str(e.value)
    assert "Kafka exited during start-up" in message
    assert "heap" in message.lower()  # the JVM's own complaint, from the log tail
    assert broken.status().state == "stopped"
