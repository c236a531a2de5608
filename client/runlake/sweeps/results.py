"""The sweep's outcome: one record per trial, the results table, the best trial, the plot."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    import optuna
    import pandas as pd

__all__ = ["SweepResult", "TrialRecord", "best_of", "parallel_coordinates", "results_table"]

TrialState = Literal["running", "complete", "pruned", "failed", "abandoned"]


@dataclass
class TrialRecord:
    """What the driver knows about one trial (also rebuilt from runlake on resume)."""

    number: int
    run_id: str
    params: dict[str, Any]
    state: TrialState = "running"
    value: float | None = None
    #: intermediate values of the sweep's metric the driver has seen, by step
    intermediate: dict[int, float] = field(default_factory=dict)
    duration_s: float | None = None
    error: str | None = None
    resumed: bool = False


@dataclass(frozen=True)
class SweepResult:
    """What ``runlake.sweep`` returns; ``trials`` is the results table (one row per trial)."""

    sweep_run_id: str
    best_params: dict[str, Any]
    best_value: float | None
    best_run_id: str | None
    trials: pd.DataFrame
    metric: str
    mode: str

    @property
    def n_complete(self) -> int:
        return int((self.trials["state"] == "complete").sum())

    @property
    def n_pruned(self) -> int:
        return int((self.trials["state"] == "pruned").sum())

    @property
    def n_failed(self) -> int:
        return int((self.trials["state"] == "failed").sum())


def best_of(records: list[TrialRecord], mode: str) -> TrialRecord | None:
    """The completed trial with the best value (the earliest on a tie), or None."""
    done = [r for r in records if r.state == "complete" and r.value is not None]
    if not done:
        return None
    sign = 1.0 if mode == "min" else -1.0
    return min(done, key=lambda r: (sign * float(r.value or 0.0), r.number))


def results_table(records: list[TrialRecord], param_names: list[str], metric: str) -> pd.DataFrame:
    """number, run_id, state, <metric>, steps, duration_s, then one column per parameter."""
    import pandas as pd

    rows = []
    for r in sorted(records, key=lambda r: r.number):
        row: dict[str, Any] = {
            "number": r.number,
            "run_id": r.run_id,
            "state": r.state,
            metric: math.nan if r.value is None else r.value,
            "steps": len(r.intermediate),
            "duration_s": math.nan if r.duration_s is None else round(r.duration_s, 3),
        }
        row.update({f"params.{n}": r.params.get(n) for n in param_names})
        rows.append(row)
    cols = ["number", "run_id", "state", metric, "steps", "duration_s"]
    cols += [f"params.{n}" for n in param_names]
    return pd.DataFrame(rows, columns=cols)


def parallel_coordinates(study: optuna.Study, metric: str) -> Any:
    """Optuna's plotly parallel-coordinates figure of the completed trials."""
    import optuna

    return optuna.visualization.plot_parallel_coordinate(study, target_name=metric)
