"""The SQL endpoint reads the table views and nothing else."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from runlake.errors import DeadlineExceeded, InvalidArgument
from runlake_services.query import SqlEngine

from tests import events as ev
from tests.conftest import Pipeline


@pytest.fixture
def engine(pipeline_factory: Callable[..., Pipeline]) -> SqlEngine:
    p = pipeline_factory()
    rid = ev.run_id()
    p.ingestor.write(
        ev.request("c:1", ev.created(rid), ev.metrics(rid, [("a", 1.0, 1, 0)])), user="t"
    )
    p.compactor.run_once()
    return SqlEngine(p.reader)


def test_reads_every_view(engine: SqlEngine) -> None:
    for view in (
        "runs",
        "params",
        "metrics",
        "tags",
        "experiments",
        "experiment_tags",
        "latest_metrics",
        "events",
    ):
        engine.execute(f"SELECT * FROM {view}")
    out = engine.execute("SELECT key, value FROM metrics").to_pylist()
    assert out == [{"key": "a", "value": 1.0}]


@pytest.mark.parametrize(
    "query",
    [
        "SELECT * FROM read_csv('/etc/passwd')",
        "SELECT * FROM read_parquet('**/*.parquet')",
        "COPY runs TO 'out.csv'",
        "ATTACH 'x.db'",
        "INSTALL httpfs",
        "LOAD httpfs",
        "CREATE TABLE t AS SELECT 1",
        "DROP VIEW runs",
        "INSERT INTO runs SELECT * FROM runs",
        "SET enable_external_access = true",
        "PRAGMA version",
        "SELECT 1; SELECT 2",
        "SELEC 1",
    ],
)
def test_refuses_everything_but_reads(engine: SqlEngine, query: str) -> None:
    with pytest.raises(InvalidArgument, match=r"^query"):
        engine.execute(query)
    assert engine.execute("SELECT count(*) AS n FROM runs").to_pylist() == [{"n": 1}]


def test_time_limit_and_row_cap(engine: SqlEngine) -> None:
    with pytest.raises(DeadlineExceeded, match=r"^query"):
        engine.execute("SELECT count(*) FROM range(1000000000) a, range(1000) b", timeout_s=0.5)
    with pytest.raises(InvalidArgument, match=r"^max_rows"):
        engine.execute("SELECT * FROM range(100)", max_rows=10)
