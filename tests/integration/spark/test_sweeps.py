"""Sweeps on a real local Spark against a real embedded server: pruning, failures, grid, resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

import cloudpickle
import pytest
import runlake
from runlake.entities import Run
from runlake.errors import Conflict
from runlake.sweeps import Median, Trial, choice, uniform

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(900)]

# The objectives below run in Spark's Python workers, which cannot import this test module.
cloudpickle.register_pickle_by_value(sys.modules[__name__])

STEPS = 40  # 6 s a trial: a pruned one is killed long before its last step
#: loss level of each trial by number: 0, 1 and 4 good, 2, 3 and 5 clearly worse
LEVELS = [0.1, 0.2, 0.9, 0.95, 0.15, 0.92]


def _children(client: runlake.RunlakeClient, sweep_run: str) -> list[Run]:
    client.sync()
    exp = client.get_run(sweep_run).info.experiment_id
    return list(client.search_runs([exp], f"tags.`runlake.sweep.id` = '{sweep_run}'"))


def _number(run: Run) -> int:
    return int(run.data.tags["runlake.sweep.trial"])


def slow_learner(params: dict[str, Any], trial: Trial) -> float:
    """Its loss falls towards its level; logs each step through the plain SDK call."""
    level = LEVELS[trial.number]
    loss = 0.0
    for step in range(STEPS):
        loss = level + 0.5 / (step + 1)
        runlake.log_metric("loss", loss, step=step)
        time.sleep(0.15)
    return loss


def test_median_rule_stops_bad_trials_and_cancels_their_jobs(
    local_spark: SparkSession, tracking: str
) -> None:
    runlake.set_experiment(f"sweep-prune-{uuid.uuid4().hex[:8]}")
    result = runlake.sweep(
        slow_learner, {"x": uniform(0, 1)}, metric="loss", mode="min", algo="random",
        max_trials=len(LEVELS), parallelism=2, spark=local_spark, seed=0,
        early_stopping=Median(n_startup_trials=2, n_warmup_steps=2), progress=False,
    )  # fmt: skip
    client = runlake.RunlakeClient()
    runs = {_number(r): r for r in _children(client, result.sweep_run_id)}
    assert sorted(runs) == list(range(len(LEVELS)))
    pruned = {n for n, r in runs.items() if r.data.tags["runlake.sweep.state"] == "pruned"}
    assert pruned, f"no trial was stopped early: {result.trials.to_dict('records')}"
    assert pruned <= {2, 3, 5}, f"a good trial was pruned: {pruned}"
    for n in pruned:
        run = runs[n]
        assert run.info.status == "KILLED"
        # its job was cancelled: it never logged its last steps nor ended itself
        steps = [m.step for m in client.get_metric_history(run.info.run_id, "loss")]
        assert max(steps) < STEPS - 1
        tracker = local_spark.sparkContext.statusTracker()
        group = f"runlake-sweep-{result.sweep_run_id}-{n}"
        jobs = [tracker.getJobInfo(j) for j in tracker.getJobIdsForGroup(group)]
        assert jobs and all(j is not None and j.status == "FAILED" for j in jobs)
    for n in {0, 1, 4}:
        assert runs[n].info.status == "FINISHED"
        assert runs[n].data.tags["runlake.sweep.state"] == "complete"
    assert result.best_run_id == runs[0].info.run_id
    assert result.best_value == pytest.approx(LEVELS[0] + 0.5 / STEPS)
    assert result.n_pruned == len(pruned) and result.n_complete + result.n_pruned == 6

    parent = client.get_run(result.sweep_run_id)
    assert parent.info.status == "FINISHED"
    assert parent.data.tags["runlake.sweep.best_run_id"] == result.best_run_id
    assert parent.data.metrics["loss"] == pytest.approx(result.best_value)
    assert all(r.data.tags["mlflow.parentRunId"] == result.sweep_run_id for r in runs.values())
    files = {f.path for f in client.list_artifacts(result.sweep_run_id, "sweep")}
    assert files == {"sweep/config.json", "sweep/trials.csv", "sweep/parallel_coordinates.html"}
    got = Path(client.download_artifacts(result.sweep_run_id, "sweep/parallel_coordinates.html"))
    html = got.read_text()
    assert "plotly" in html and "parcoords" in html


def picky(params: dict[str, Any], trial: Trial) -> float:
    if params["kind"] == "bad":
        raise ValueError(f"bad kind at x={params['x']:.3f}")
    for step in range(3):
        trial.report((params["x"] - 0.4) ** 2 + 0.1 / (step + 1), step=step)
    return (params["x"] - 0.4) ** 2


def test_a_failing_trial_is_recorded_and_the_sweep_goes_on(
    local_spark: SparkSession, tracking: str
) -> None:
    runlake.set_experiment(f"sweep-fail-{uuid.uuid4().hex[:8]}")
    space = {"x": uniform(0, 1), "kind": choice(["ok", "bad"])}
    result = runlake.sweep(picky, space, metric="loss", algo="tpe", max_trials=6, parallelism=2,
                           spark=local_spark, seed=3, progress=False)  # fmt: skip
    client = runlake.RunlakeClient()
    runs = _children(client, result.sweep_run_id)
    assert len(runs) == 6
    bad = [r for r in runs if r.data.params["kind"] == "bad"]
    good = [r for r in runs if r.data.params["kind"] == "ok"]
    assert bad and good, "the seed should sample both kinds"
    for r in bad:
        assert r.info.status == "FAILED" and r.data.tags["runlake.sweep.state"] == "failed"
        assert "ValueError: bad kind at x=" in r.data.tags["runlake.sweep.error"]
        tb = Path(client.download_artifacts(r.info.run_id, "traceback.txt")).read_text()
        assert "Traceback (most recent call last)" in tb and "in picky" in tb
    for r in good:
        assert r.info.status == "FINISHED"
        history = client.get_metric_history(r.info.run_id, "loss")
        # reported through the trial handle, then the returned value as the latest point
        assert [m.step for m in history] == [0, 1, 2, 3]
        assert history[-1].value == float(r.data.tags["runlake.sweep.value"])
        assert r.data.metrics["loss"] == history[-1].value
    best = min(good, key=lambda r: float(r.data.tags["runlake.sweep.value"]))
    assert result.best_run_id == best.info.run_id
    assert result.best_params == {"x": float(best.data.params["x"]), "kind": "ok"}
    assert result.n_failed == len(bad)
    table = result.trials
    assert set(table.loc[table["state"] == "failed", "run_id"]) == {r.info.run_id for r in bad}


def quick(params: dict[str, Any]) -> float:
    runlake.log_metric("score", params["a"] * (2 if params["b"] == "y" else 1))
    return float(params["a"] * (2 if params["b"] == "y" else 1))


def test_grid_runs_every_combination_once_and_resume_checks_the_config(
    local_spark: SparkSession, tracking: str
) -> None:
    runlake.set_experiment(f"sweep-grid-{uuid.uuid4().hex[:8]}")
    space = {"a": choice([1, 2, 3]), "b": choice(["x", "y"])}
    result = runlake.sweep(quick, space, metric="score", mode="max", algo="grid",
                           parallelism=2, spark=local_spark, progress=False)  # fmt: skip
    client = runlake.RunlakeClient()
    runs = _children(client, result.sweep_run_id)
    combos = sorted((r.data.params["a"], r.data.params["b"]) for r in runs)
    assert combos == [(a, b) for a in ("1", "2", "3") for b in ("x", "y")]
    assert result.best_params == {"a": 3, "b": "y"} and result.best_value == 6.0
    with pytest.raises(Conflict, match=r"^algo: is 'random' but sweep .* ran with 'grid'"):
        runlake.sweep(quick, space, metric="score", mode="max", algo="random", max_trials=2,
                      spark=local_spark, resume=result.sweep_run_id, progress=False)  # fmt: skip
    # resuming a finished grid runs nothing more
    resume = result.sweep_run_id
    again = runlake.sweep(quick, space, metric="score", mode="max", algo="grid",
                          spark=local_spark, resume=resume, progress=False)  # fmt: skip
    assert again.best_run_id == result.best_run_id
    assert len(_children(client, result.sweep_run_id)) == 6


SCRIPT = """
import time
import runlake

def objective(params):
    for step in range(4):
        runlake.log_metric("loss", params["x"] + 1.0 / (step + 1), step=step)
        time.sleep(0.4)
    return params["x"]
"""


def _cli(uri: str, *args: str) -> list[str]:
    exe = str(Path(sys.executable).with_name("runlake"))
    return [exe, "--tracking-uri", uri, "sweep", *args]


def test_a_sweep_whose_driver_dies_is_resumed_from_runlake(tmp_path: Path, tracking: str) -> None:
    script = tmp_path / "train.py"
    script.write_text(SCRIPT)
    space = tmp_path / "space.yaml"
    space.write_text("x: {uniform: [0, 1]}\n")
    name = f"resumable-{uuid.uuid4().hex[:8]}"
    exp = f"sweep-resume-{uuid.uuid4().hex[:8]}"
    common = [str(script), "-s", str(space), "-m", "loss", "-n", "6", "-p", "2",
              "--algo", "random", "--seed", "11", "-e", exp, "-o", "json"]  # fmt: skip
    driver = subprocess.Popen(
        _cli(tracking, *common, "--run-name", name),
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    client = runlake.RunlakeClient()
    sweep_id = ""
    done_before: set[str] = set()
    try:
        deadline = time.monotonic() + 240
        while len(done_before) < 2:
            assert driver.poll() is None, "the driver ended before it could be killed"
            assert time.monotonic() < deadline, "no trial completed in time"
            time.sleep(0.5)
            client.sync()
            found = client.get_experiment_by_name(exp)
            if found is None:
                continue
            runs = list(client.search_runs([found.experiment_id], ""))
            sweep_id = next((r.info.run_id for r in runs if r.info.run_name == name), "")
            done_before = {
                r.info.run_id for r in runs if r.data.tags.get("runlake.sweep.state") == "complete"
            }
    finally:
        os.killpg(driver.pid, signal.SIGKILL)  # the driver, its JVM and its Python workers
        driver.wait(30)
    assert sweep_id
    time.sleep(1.0)  # let the last acknowledged writes of the dead trials fold
    before = {r.info.run_id: r for r in _children(client, sweep_id)}
    running = {i for i, r in before.items() if r.info.status == "RUNNING"}
    assert len(before) < 6 or running, "the driver died too late to test anything"

    resumed = subprocess.run(
        _cli(tracking, *common, "--resume", sweep_id), capture_output=True, text=True, timeout=420
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    summary = json.loads(resumed.stdout)[0]
    assert summary["sweep_run_id"] == sweep_id and summary["n_complete"] == 6

    after = _children(client, sweep_id)
    complete = [r for r in after if r.data.tags.get("runlake.sweep.state") == "complete"]
    assert len(complete) == 6
    assert done_before <= {r.info.run_id for r in complete}, "a completed trial ran again"
    numbers = [_number(r) for r in complete]
    assert len(set(numbers)) == len(numbers)
    for run_id in running - {r.info.run_id for r in complete}:
        orphan = next(r for r in after if r.info.run_id == run_id)
        assert orphan.info.status == "KILLED"
        assert orphan.data.tags["runlake.sweep.state"] == "abandoned"
    xs = sorted(r.data.params["x"] for r in complete)
    assert len(set(xs)) == len(xs), f"the resumed driver drew a point again: {xs}"
    best = min(complete, key=lambda r: float(r.data.params["x"]))
    assert summary["best_run_id"] == best.info.run_id
    assert client.get_run(sweep_id).info.status == "FINISHED"
