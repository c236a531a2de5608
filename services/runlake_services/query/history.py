"""Full metric history of one run and key, read from the Delta ``metrics`` table.

The history is not kept in the index (it is the one unbounded table): DuckDB
reads the table's Arrow dataset with the run/key filter pushed down, so Parquet
row groups of other runs are skipped by their statistics. An exact duplicate
point (same step, timestamp and value, e.g. a retried batch) counts once, as
MLflow's primary key makes it. Columns leave as packed little-endian arrays, so
a million points never become Python objects.
"""

from __future__ import annotations

from collections.abc import Iterator

import duckdb
import numpy as np
import pyarrow as pa
from runlake.v1 import query_pb2

from runlake_services.tables.reader import DeltaTableReader

__all__ = ["MetricHistory"]

_SQL = (
    "SELECT DISTINCT step, timestamp, value FROM metrics "
    "WHERE run_id = $run_id AND key = $key ORDER BY step, timestamp, value"
)


def _packed(column: pa.ChunkedArray, dtype: str) -> bytes:
    array = column.to_numpy() if column.num_chunks else np.empty(0)
    return np.ascontiguousarray(array, dtype=np.dtype(dtype)).tobytes()


class MetricHistory:
    def __init__(self, reader: DeltaTableReader) -> None:
        self._reader = reader

    def points(self, run_id: str, key: str) -> pa.Table:
        """(step, timestamp, value) of every distinct point, by step then timestamp."""
        con = duckdb.connect(":memory:")
        try:
            con.register("metrics", self._reader.dataset("metrics"))
            table: pa.Table = con.sql(_SQL, params={"run_id": run_id, "key": key}).to_arrow_table()
            return table
        finally:
            con.close()

    def chunks(
        self, run_id: str, key: str, max_points_per_chunk: int = 100_000
    ) -> Iterator[query_pb2.MetricHistoryChunk]:
        """The history in chunks of at most ``max_points_per_chunk``; none for an unknown key."""
        if max_points_per_chunk < 1:
            raise ValueError("max_points_per_chunk must be positive")
        table = self.points(run_id, key)
        for start in range(0, table.num_rows, max_points_per_chunk):
            part = table.slice(start, max_points_per_chunk)
            yield query_pb2.MetricHistoryChunk(
                key=key,
                values=_packed(part.column("value"), "<f8"),
                timestamps=_packed(part.column("timestamp"), "<i8"),
                steps=_packed(part.column("step"), "<i8"),
            )
