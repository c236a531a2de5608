"""One real embedded server per test session (plus per-test ones where a test kills it)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from runlake_services.embedded.process import ServerProcess


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    proc = ServerProcess(tmp_path_factory.mktemp("server") / "data").start()
    yield proc
    proc.stop()


@pytest.fixture
def server_factory(tmp_path: Path) -> Iterator[Callable[..., ServerProcess]]:
    made: list[ServerProcess] = []

    def make(**kwargs: object) -> ServerProcess:
        proc = ServerProcess(tmp_path / f"data{len(made)}", **kwargs)  # type: ignore[arg-type]
        made.append(proc)
        return proc.start()

    yield make
    for proc in made:
        proc.kill()


@pytest.fixture
def client(server: ServerProcess):  # type: ignore[no-untyped-def]
    import runlake

    return runlake.RunlakeClient(server.uri)
