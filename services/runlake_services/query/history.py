"""Full metric history of one run and key, read from the Delta ``metrics`` table."""

from __future__ import annotations

from collections.abc import Iterator

import duckdb
import numpy as np
from runlake.v1 import query_pb2

from runlake_services.tables.reader import DeltaTableReader

__all__ = ["MetricHistory"]


class MetricHistory:
    """DuckDB over the table's Arrow dataset, so the run/key filter prunes Parquet row groups."""

    def __init__(self, reader: DeltaTableReader) -> None:
        self._reader = reader

    def chunks(
        self, run_id: str, key: str, max_points_per_chunk: int = 100_000
    ) -> Iterator[query_pb2.MetricHistoryChunk]:
        con = duckdb.connect()
        try:
            con.register("metrics", self._reader.dataset("metrics"))
            # An exact duplicate point (logged twice) counts once, as in MLflow.
            table = con.sql(
                "SELECT DISTINCT step, timestamp, value FROM metrics "
                "WHERE run_id = $1 AND key = $2 ORDER BY step, timestamp, value",
                params=[run_id, key],
            ).to_arrow_table()
        finally:
            con.close()
        n = table.num_rows
        steps = table.column("step").to_numpy().astype("<i8")
        stamps = table.column("timestamp").to_numpy().astype("<i8")
        values = table.column("value").to_numpy(zero_copy_only=False).astype("<f8")
        for start in range(0, max(n, 1), max_points_per_chunk):
            end = min(n, start + max_points_per_chunk)
            yield query_pb2.MetricHistoryChunk(
                key=key,
                values=np.ascontiguousarray(values[start:end]).tobytes(),
                timestamps=np.ascontiguousarray(stamps[start:end]).tobytes(),
                steps=np.ascontiguousarray(steps[start:end]).tobytes(),
            )
