"""Read-only SQL over the table views: DuckDB with file, network and extension access off.

Each query gets a fresh in-memory connection holding only the latest snapshot of
each table, registered as a view; external access is then switched off (it
cannot be switched back on), only one read statement is accepted (checked on the
parsed statement type, since DDL like DROP VIEW would still run), and a timer
interrupts a query that runs past its limit.
"""

from __future__ import annotations

import threading

import duckdb
import pyarrow as pa
from runlake.errors import DeadlineExceeded, InvalidArgument

from runlake_services.tables.reader import DeltaTableReader
from runlake_services.tables.schema import TABLES

__all__ = ["SqlEngine"]

_READ_TYPES = {duckdb.StatementType.SELECT, duckdb.StatementType.EXPLAIN}


class SqlEngine:
    def __init__(self, reader: DeltaTableReader) -> None:
        self._reader = reader

    def execute(
        self, query: str, *, timeout_s: float = 30.0, max_rows: int = 1_000_000
    ) -> pa.Table:
        """Run one read statement; more than ``max_rows`` rows is an error naming max_rows."""
        con = duckdb.connect(":memory:")
        try:
            for name in TABLES:
                con.register(name, self._reader.dataset(name))
            con.execute("SET enable_external_access = false")
            con.execute("SET lock_configuration = true")
            try:
                statements = con.extract_statements(query)
            except duckdb.Error as exc:
                raise InvalidArgument(str(exc).splitlines()[0], field="query") from None
            if len(statements) != 1:
                raise InvalidArgument(
                    f"exactly one statement, got {len(statements)}", field="query"
                )
            if statements[0].type not in _READ_TYPES:
                raise InvalidArgument(
                    f"only read statements (SELECT, WITH, EXPLAIN) are accepted, "
                    f"not {statements[0].type.name}",
                    field="query",
                )
            timer = threading.Timer(timeout_s, con.interrupt)
            timer.start()
            try:
                reader: pa.RecordBatchReader = con.sql(query).to_arrow_reader(65_536)
                batches = []
                rows = 0
                for batch in reader:
                    rows += batch.num_rows
                    if rows > max_rows:
                        raise InvalidArgument(
                            f"the result has more than {max_rows} rows; add a LIMIT",
                            field="max_rows",
                        )
                    batches.append(batch)
                return pa.Table.from_batches(batches, schema=reader.schema)
            except duckdb.InterruptException:
                raise DeadlineExceeded(
                    f"query ran longer than {timeout_s:g} s", field="query"
                ) from None
            except duckdb.Error as exc:
                if not timer.is_alive() and "interrupt" in str(exc).lower():
                    raise DeadlineExceeded(
                        f"query ran longer than {timeout_s:g} s", field="query"
                    ) from None
                raise InvalidArgument(str(exc).splitlines()[0], field="query") from None
            finally:
                timer.cancel()
        finally:
            con.close()
