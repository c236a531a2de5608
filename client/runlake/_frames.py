"""Runs as a pandas DataFrame shaped like MLflow's ``search_runs`` output."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from runlake.entities import Run

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["BASE_COLUMNS", "runs_frame"]

BASE_COLUMNS = ("run_id", "experiment_id", "status", "artifact_uri", "start_time", "end_time")


def runs_frame(runs: Sequence[Run]) -> pd.DataFrame:
    """One row a run: attributes, then ``metrics.*``, ``params.*``, ``tags.*`` columns.

    Times become timezone-aware datetimes (UTC) as in MLflow; a missing end time is NaT.
    """
    import pandas as pd

    rows: list[dict[str, Any]] = []
    metric_cols: dict[str, None] = {}
    param_cols: dict[str, None] = {}
    tag_cols: dict[str, None] = {}
    for r in runs:
        row: dict[str, Any] = {
            "run_id": r.info.run_id,
            "experiment_id": r.info.experiment_id,
            "status": r.info.status,
            "artifact_uri": r.info.artifact_uri,
            "start_time": r.info.start_time,
            "end_time": r.info.end_time,
        }
        for prefix, values, cols in (
            ("metrics.", r.data.metrics, metric_cols),
            ("params.", r.data.params, param_cols),
            ("tags.", r.data.tags, tag_cols),
        ):
            for k, v in values.items():
                name = prefix + k
                cols[name] = None
                row[name] = v
        rows.append(row)
    columns = [*BASE_COLUMNS, *sorted(metric_cols), *sorted(param_cols), *sorted(tag_cols)]
    df = pd.DataFrame(rows, columns=columns)
    for col in ("start_time", "end_time"):
        df[col] = pd.to_datetime(df[col], unit="ms", utc=True)
    return df
