"""Read-only SQL over the table views: DuckDB with file, network and extension access off.

Each query gets a fresh in-memory connection holding only the latest snapshot of
each table, registered as an Arrow dataset; external access and Python
replacement scans are then switched off and the configuration locked, so no
statement can switch them back on. A statement is accepted only if its *parsed*
type is a read (text checks miss comments and casing, and DDL like DROP VIEW
needs no file access at all); EXPLAIN is checked on the statement it explains,
since EXPLAIN ANALYZE runs it. A timer interrupts a query past its time limit.

A result over ``max_rows`` is an error naming ``max_rows``, never silently cut:
a truncated answer to an aggregate-free query looks complete and is not.
"""

from __future__ import annotations

import re
import threading

import duckdb
import pyarrow as pa
from runlake.errors import DeadlineExceeded, InvalidArgument

from runlake_services.tables.reader import DeltaTableReader
from runlake_services.tables.schema import TABLES

__all__ = ["SqlEngine"]

_EXPLAIN = re.compile(r"\s*EXPLAIN\s+(?:ANALYZE\s+)?", re.IGNORECASE)
_BATCH_ROWS = 65_536


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


class SqlEngine:
    def __init__(self, reader: DeltaTableReader) -> None:
        self._reader = reader

    def execute(
        self, query: str, *, timeout_s: float = 30.0, max_rows: int = 1_000_000
    ) -> pa.Table:
        """Run one read statement over the latest snapshot of every table."""
        if max_rows < 1:
            raise InvalidArgument(f"{max_rows} is not a positive row limit", field="max_rows")
        if timeout_s <= 0:
            raise InvalidArgument(f"{timeout_s} is not a positive time limit", field="timeout_ms")
        con = duckdb.connect(":memory:")
        try:
            for name in TABLES:
                con.register(name, self._reader.dataset(name))
            con.execute("SET enable_external_access = false")
            con.execute("SET python_enable_replacements = false")
            con.execute("SET lock_configuration = true")
            _check_read_only(con, query)
            return _run(con, query, timeout_s, max_rows)
        finally:
            con.close()


def _check_read_only(con: duckdb.DuckDBPyConnection, query: str) -> None:
    try:
        statements = con.extract_statements(query)
    except duckdb.Error as exc:
        raise InvalidArgument(_first_line(exc), field="query") from None
    if len(statements) != 1:
        raise InvalidArgument(f"expected one statement, got {len(statements)}", field="query")
    kind = statements[0].type
    if kind is duckdb.StatementType.EXPLAIN:
        m = _EXPLAIN.match(query)
        try:
            inner = con.extract_statements(query[m.end() :]) if m else []
        except duckdb.Error:
            inner = []
        if len(inner) != 1 or inner[0].type is not duckdb.StatementType.SELECT:
            raise InvalidArgument("EXPLAIN is accepted only of a SELECT", field="query")
    elif kind is not duckdb.StatementType.SELECT:
        raise InvalidArgument(
            "only read statements (SELECT, WITH, DESCRIBE, SHOW, EXPLAIN) are accepted, "
            f"not {kind.name}",
            field="query",
        )


def _run(con: duckdb.DuckDBPyConnection, query: str, timeout_s: float, max_rows: int) -> pa.Table:
    expired = threading.Event()

    def interrupt() -> None:
        expired.set()
        con.interrupt()

    timer = threading.Timer(timeout_s, interrupt)
    timer.daemon = True
    timer.start()
    try:
        reader: pa.RecordBatchReader = con.sql(query).to_arrow_reader(_BATCH_ROWS)
        batches = []
        rows = 0
        for batch in reader:
            rows += batch.num_rows
            if rows > max_rows:
                raise InvalidArgument(
                    f"the result has more than {max_rows} rows; add a LIMIT or raise max_rows",
                    field="max_rows",
                )
            batches.append(batch)
        return pa.Table.from_batches(batches, schema=reader.schema)
    except (duckdb.Error, pa.ArrowException) as exc:
        if expired.is_set():
            raise DeadlineExceeded(f"ran longer than {timeout_s:g} s", field="query") from None
        raise InvalidArgument(_first_line(exc), field="query") from None
    finally:
        timer.cancel()
