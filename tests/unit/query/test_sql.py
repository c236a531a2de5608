"""The SQL endpoint reads the table views and nothing else."""

from __future__ import annotations

from pathlib import Path

import pytest
from runlake.errors import DeadlineExceeded, InvalidArgument
from runlake_services.query import SqlEngine
from runlake_services.tables.reader import DeltaTableReader
from runlake_services.tables.schema import TABLES

from tests.unit.query.builders import T0, kv, metric, run, write_delta


@pytest.fixture
def tables(tmp_path: Path) -> Path:
    write_delta(tmp_path, "runs", [run("r1"), run("r2", status="FINISHED")])
    write_delta(tmp_path, "params", [kv("r1", "lr", "0.1")])
    write_delta(
        tmp_path,
        "metrics",
        [{**metric("r1", "a", 1.0), "position": 1}, {**metric("r2", "a", 3.0), "position": 1}],
    )
    return tmp_path


@pytest.fixture
def engine(tables: Path) -> SqlEngine:
    return SqlEngine(DeltaTableReader(str(tables)))


def test_every_table_is_a_view_with_its_schema(engine: SqlEngine) -> None:
    for name, spec in TABLES.items():
        out = engine.execute(f"SELECT * FROM {name}")
        assert out.schema.names == spec.schema.names
    assert engine.execute("SELECT count(*) AS n FROM events").to_pylist() == [{"n": 0}]


def test_answers_joins_and_aggregates(engine: SqlEngine) -> None:
    out = engine.execute(
        "WITH m AS (SELECT run_id, avg(value) AS v FROM metrics GROUP BY run_id) "
        "SELECT r.run_id, r.status, m.v, p.value AS lr FROM runs r JOIN m USING (run_id) "
        "LEFT JOIN params p ON p.run_id = r.run_id AND p.key = 'lr' ORDER BY r.run_id"
    )
    assert out.to_pylist() == [
        {"run_id": "r1", "status": "RUNNING", "v": 1.0, "lr": "0.1"},
        {"run_id": "r2", "status": "FINISHED", "v": 3.0, "lr": None},
    ]


@pytest.mark.parametrize("query", ["EXPLAIN SELECT * FROM runs", "DESCRIBE runs", "SHOW TABLES"])
def test_accepts_other_reads(engine: SqlEngine, query: str) -> None:
    assert engine.execute(query).num_rows > 0


def test_sees_commits_made_after_it_was_created(engine: SqlEngine, tables: Path) -> None:
    write_delta(tables, "runs", [run("r3", start_time=T0 + 1)])
    assert engine.execute("SELECT count(*) AS n FROM runs").to_pylist() == [{"n": 3}]


@pytest.mark.parametrize(
    "query",
    [
        "SELECT * FROM read_csv('/etc/passwd')",
        "SELECT * FROM '/etc/passwd'",
        "SELECT * FROM read_text('/etc/hostname')",
        "SELECT * FROM glob('/*')",
        "COPY runs TO 'out.csv'",
        "COPY (SELECT 1) TO 'out.parquet' (FORMAT parquet)",
        "ATTACH 'x.db'",
        "DETACH memory",
        "INSTALL httpfs",
        "LOAD httpfs",
        "CREATE TABLE t AS SELECT 1",
        "CREATE VIEW v AS SELECT 1",
        "DROP VIEW runs",
        "INSERT INTO runs SELECT * FROM runs",
        "DELETE FROM runs",
        "UPDATE runs SET status = 'x'",
        "SET enable_external_access = true",
        "RESET lock_configuration",
        "PRAGMA version",
        "CALL pragma_version()",
        "EXPORT DATABASE 'out'",
        "EXPLAIN ANALYZE CREATE TABLE t AS SELECT 1",
        "EXPLAIN COPY runs TO 'out.csv'",
        "SELECT * FROM query('DROP VIEW runs')",
        "SELECT 1; SELECT 2",
        "SELECT 1; DROP VIEW runs",
        "SELEC 1",
        "",
    ],
)
def test_refuses_everything_but_reads(engine: SqlEngine, query: str, tmp_path: Path) -> None:
    with pytest.raises(InvalidArgument) as info:
        engine.execute(query)
    assert info.value.field == "query"
    assert engine.execute("SELECT count(*) AS n FROM runs").to_pylist() == [{"n": 2}]
    assert not (Path.cwd() / "out.csv").exists() and not (Path.cwd() / "x.db").exists()


def test_cannot_read_the_table_files_directly(engine: SqlEngine, tables: Path) -> None:
    for query in (
        f"SELECT * FROM read_parquet('{tables}/runs/*.parquet')",
        f"SELECT * FROM delta_scan('{tables}/runs')",
    ):
        with pytest.raises(InvalidArgument, match=r"^query: "):
            engine.execute(query)


def test_time_limit(engine: SqlEngine) -> None:
    with pytest.raises(DeadlineExceeded) as info:
        engine.execute("SELECT count(*) FROM range(1000000000000) a, range(1000) b", timeout_s=0.3)
    assert info.value.field == "query"
    assert engine.execute("SELECT 1 AS one", timeout_s=0.3).to_pylist() == [{"one": 1}]


def test_row_cap_is_an_error_naming_max_rows(engine: SqlEngine) -> None:
    assert engine.execute("SELECT * FROM range(10)", max_rows=10).num_rows == 10
    with pytest.raises(InvalidArgument, match=r"^max_rows: "):
        engine.execute("SELECT * FROM range(11)", max_rows=10)
    with pytest.raises(InvalidArgument, match=r"^max_rows: "):
        engine.execute("SELECT * FROM range(200000)", max_rows=100_000)
    with pytest.raises(InvalidArgument, match=r"^max_rows: "):
        engine.execute("SELECT 1", max_rows=0)


def test_runtime_errors_are_invalid_argument(engine: SqlEngine) -> None:
    with pytest.raises(InvalidArgument, match=r"^query: "):
        engine.execute("SELECT nope FROM runs")
    with pytest.raises(InvalidArgument, match=r"^query: "):
        engine.execute("SELECT CAST('x' AS INTEGER)")
