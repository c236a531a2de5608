"""The results table, the best trial, and reading trials back from their runs (resume)."""

from __future__ import annotations

import math
from typing import Any

import pytest
from runlake.entities import Run, RunData, RunInfo
from runlake.sweeps import choice, randint, uniform
from runlake.sweeps.results import TrialRecord, best_of, results_table
from runlake.sweeps.resume import NUMBER_TAG, remaining_grid, trial_from_run
from runlake.sweeps.space import grid_points
from runlake.sweeps.trial import STATE_TAG, VALUE_TAG

SPACE = {"lr": uniform(0.0, 1.0), "depth": randint(1, 5), "opt": choice(["adam", "sgd"])}


def _run(
    tags: dict[str, str],
    params: dict[str, str] | None = None,
    status: str = "FINISHED",
    metrics: dict[str, float] | None = None,
) -> Run:
    info = RunInfo(
        run_id="r" * 32, run_name="trial-0", experiment_id="0", user_id="u", status=status,
        start_time=1_000, end_time=3_500 if status != "RUNNING" else None,
        lifecycle_stage="active", artifact_uri="",
    )  # fmt: skip
    return Run(info, RunData(metrics=metrics or {}, params=params or {}, tags=tags))


PARAMS = {"lr": "0.25", "depth": "3", "opt": "sgd"}


def test_a_completed_trial_reads_back_typed() -> None:
    run = _run({NUMBER_TAG: "4", STATE_TAG: "complete", VALUE_TAG: "0.125"}, PARAMS)
    rec = trial_from_run(run, SPACE, "loss")
    assert isinstance(rec, TrialRecord)
    assert (rec.number, rec.state, rec.value, rec.resumed) == (4, "complete", 0.125, True)
    assert rec.params == {"lr": 0.25, "depth": 3, "opt": "sgd"}
    assert rec.duration_s == 2.5


def test_the_value_tag_beats_the_latest_metric() -> None:
    """The objective may log the metric after returning another value: the return wins."""
    run = _run({NUMBER_TAG: "0", STATE_TAG: "complete", VALUE_TAG: "0.5"}, PARAMS,
               metrics={"loss": 0.9})  # fmt: skip
    rec = trial_from_run(run, SPACE, "loss")
    assert isinstance(rec, TrialRecord) and rec.value == 0.5


@pytest.mark.parametrize("state", ["pruned", "failed"])
def test_pruned_and_failed_trials_count_without_a_value(state: str) -> None:
    rec = trial_from_run(_run({NUMBER_TAG: "2", STATE_TAG: state}, PARAMS, status="KILLED"),
                         SPACE, "loss")  # fmt: skip
    assert isinstance(rec, TrialRecord) and rec.state == state and rec.value is None


@pytest.mark.parametrize(
    ("tags", "params", "status"),
    [
        ({NUMBER_TAG: "1"}, PARAMS, "RUNNING"),  # its driver died while it ran
        ({NUMBER_TAG: "1"}, PARAMS, "FINISHED"),  # ended without its state: never told
        ({NUMBER_TAG: "1", STATE_TAG: "complete"}, PARAMS, "FINISHED"),  # no value anywhere
        ({NUMBER_TAG: "1", STATE_TAG: "complete", VALUE_TAG: "1"}, {"lr": "0.1"}, "FINISHED"),
    ],
)
def test_unfinished_trials_are_abandoned(
    tags: dict[str, str], params: dict[str, str], status: str
) -> None:
    assert trial_from_run(_run(tags, params, status), SPACE, "loss") == "abandoned"


def test_runs_that_are_not_trials_are_skipped() -> None:
    assert trial_from_run(_run({}, PARAMS), SPACE, "loss") is None
    assert trial_from_run(_run({NUMBER_TAG: "x"}, PARAMS), SPACE, "loss") is None
    # abandoned by an earlier resume: its point was already sampled again
    assert trial_from_run(_run({NUMBER_TAG: "1", STATE_TAG: "abandoned"}, PARAMS, "KILLED"),
                          SPACE, "loss") is None  # fmt: skip


def test_remaining_grid_skips_finished_points_only() -> None:
    space = {"k": randint(0, 3), "opt": choice(["adam", "sgd"])}
    grid = grid_points(space)
    done = [TrialRecord(0, "a", {"k": 1, "opt": "sgd"}, "complete", 0.1),
            TrialRecord(1, "b", {"k": 2, "opt": "adam"}, "failed")]  # fmt: skip
    left = remaining_grid(grid, done)
    assert len(left) == len(grid) - 2
    assert {"k": 1, "opt": "sgd"} not in left and {"k": 2, "opt": "adam"} not in left
    assert [p for p in grid if p in left] == left  # order kept


def _records() -> list[TrialRecord]:
    return [
        TrialRecord(0, "a", {"lr": 0.1, "opt": "adam"}, "complete", 0.30, {0: 0.5}, 1.0),
        TrialRecord(1, "b", {"lr": 0.2, "opt": "sgd"}, "pruned", None, {0: 0.9}, 0.4),
        TrialRecord(2, "c", {"lr": 0.3, "opt": "sgd"}, "complete", 0.10, {0: 0.2, 1: 0.1}, 2.0),
        TrialRecord(3, "d", {"lr": 0.4, "opt": "adam"}, "failed", None, {}, 0.1, "boom"),
        TrialRecord(4, "e", {"lr": 0.5, "opt": "adam"}, "complete", 0.10, {}, 1.5),
    ]


def test_best_of_by_mode_earliest_on_a_tie() -> None:
    recs = _records()
    best_min = best_of(recs, "min")
    assert best_min is not None and best_min.run_id == "c"  # c and e tie: c came first
    best_max = best_of(recs, "max")
    assert best_max is not None and best_max.run_id == "a"
    assert best_of([r for r in recs if r.state != "complete"], "min") is None


def test_results_table_has_one_row_per_trial_with_params() -> None:
    table = results_table(list(reversed(_records())), ["lr", "opt"], "loss")
    assert list(table.columns) == [
        "number", "run_id", "state", "loss", "steps", "duration_s", "params.lr", "params.opt",
    ]  # fmt: skip
    assert table["number"].tolist() == [0, 1, 2, 3, 4]
    assert table["state"].tolist() == ["complete", "pruned", "complete", "failed", "complete"]
    assert table["steps"].tolist() == [1, 1, 2, 0, 0]
    assert math.isnan(table.loc[1, "loss"]) and table.loc[2, "loss"] == 0.10
    row: dict[str, Any] = table.iloc[2].to_dict()
    assert row["params.lr"] == 0.3 and row["params.opt"] == "sgd"
