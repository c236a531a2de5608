"""``runlake.sweep``: the driver that samples trials, runs them on Spark and stops them early.

The driver owns an Optuna study (in memory: runlake is the durable record, see
:mod:`runlake.sweeps.resume`) and keeps ``parallelism`` trials in flight. For each trial it
asks the sampler for a point, creates the trial's run (a child of the sweep's run) with its
params, flushes (so the gateway knows the run before the executor logs to it) and submits
the trial's Spark job. While trials run it reads each running trial's metric history back
from runlake every ``poll_interval_s`` (only when early stopping is on), reports the new
points to the study's pruner, and cancels the job group of a trial the pruner stops.
Decision record 0014 says why it reads from runlake rather than a side channel.
"""

from __future__ import annotations

import contextlib
import json
import logging
import random
import re
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, wait
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from runlake import _context
from runlake import _validate as chk
from runlake.client import RunlakeClient
from runlake.entities import RunStatus
from runlake.errors import InvalidArgument, NotFound, RunlakeError
from runlake.sweeps import early_stopping as es
from runlake.sweeps.executor import SparkTrialRunner, TrialCancelled, default_spark
from runlake.sweeps.progress import SweepProgress
from runlake.sweeps.results import (
    SweepResult,
    TrialRecord,
    best_of,
    parallel_coordinates,
    results_table,
)
from runlake.sweeps.resume import (
    CONFIG_ARTIFACT,
    NUMBER_TAG,
    ROLE_TAG,
    SWEEP_TAG,
    check_config,
    load_trials,
    remaining_grid,
)
from runlake.sweeps.space import Domain, grid_points, space_to_dict, to_optuna, validate_space
from runlake.sweeps.trial import ERROR_TAG, STATE_TAG, VALUE_TAG, TrialOutcome, TrialSpec

if TYPE_CHECKING:
    import optuna
    from pyspark.sql import SparkSession

__all__ = ["ALGOS", "check_arguments", "sweep"]

ALGOS = ("tpe", "random", "grid")
#: The gateway's rule for keys (checked here too: a sweep must fail before it starts).
_METRIC = re.compile(r"^[/\w.\- :]+$")
Mode = Literal["min", "max"]
Algo = Literal["tpe", "random", "grid"]


@dataclass
class _Live:
    """A trial in flight."""

    record: TrialRecord
    trial: optuna.Trial
    group: str
    started: float
    stopping: bool = False


def _require_optuna() -> None:
    try:
        import optuna  # noqa: F401
    except ImportError:
        raise RunlakeError("runlake.sweep needs optuna: pip install 'runlake[sweeps]'") from None


def check_arguments(
    objective: Any, space: Any, *, metric: Any, mode: Any, algo: Any, max_trials: Any,
    parallelism: Any, early_stopping: Any = None, poll_interval_s: Any = 0.25,
) -> None:  # fmt: skip
    """What ``sweep`` refuses, checked before anything starts (errors name the argument)."""
    _check(objective, metric, mode, algo, max_trials, parallelism, poll_interval_s)
    checked = validate_space(space)
    if algo == "grid":
        grid_points(checked)
    es.describe(early_stopping)
    if not isinstance(early_stopping, str | es.ASHA | es.Median | None):
        _require_optuna()
        es.resolve_pruner(early_stopping)


def _check(
    objective: Any, metric: Any, mode: Any, algo: Any, max_trials: Any, parallelism: Any,
    poll_interval_s: Any,
) -> None:  # fmt: skip
    if not callable(objective):
        raise InvalidArgument(f"must be callable, got {objective!r}", field="objective")
    chk.key(metric, "metric")
    if not _METRIC.match(metric) or len(metric) > 250:
        raise InvalidArgument(
            f"{metric!r} is not a metric name (1-250 letters, digits, '_-. /:')", field="metric"
        )
    if mode not in ("min", "max"):
        raise InvalidArgument(f"{mode!r} is not 'min' or 'max'", field="mode")
    if algo not in ALGOS:
        raise InvalidArgument(f"{algo!r} is not one of {', '.join(ALGOS)}", field="algo")
    if max_trials is None:
        if algo != "grid":
            raise InvalidArgument("is required (grid search alone defaults to the grid's size)",
                                  field="max_trials")  # fmt: skip
    elif isinstance(max_trials, bool) or not isinstance(max_trials, int) or max_trials < 1:
        raise InvalidArgument(f"must be a positive integer, got {max_trials!r}",
                              field="max_trials")  # fmt: skip
    if isinstance(parallelism, bool) or not isinstance(parallelism, int) or parallelism < 1:
        raise InvalidArgument(f"must be a positive integer, got {parallelism!r}",
                              field="parallelism")  # fmt: skip
    if not isinstance(poll_interval_s, int | float) or not poll_interval_s > 0:
        raise InvalidArgument(f"must be above 0, got {poll_interval_s!r}",
                              field="poll_interval_s")  # fmt: skip


def _sampler(algo: str, seed: int | None) -> optuna.samplers.BaseSampler:
    import optuna

    if algo == "tpe":
        return optuna.samplers.TPESampler(seed=seed, constant_liar=True)
    return optuna.samplers.RandomSampler(seed=seed)


@contextlib.contextmanager
def _quiet_optuna() -> Iterator[None]:
    """Optuna logs every trial at INFO; the progress bar says it better."""
    import optuna

    before = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(logging.WARNING)
    try:
        yield
    finally:
        optuna.logging.set_verbosity(before)


def sweep(
    objective: Callable[..., Any],
    space: Mapping[str, Domain],
    *,
    metric: str,
    mode: Mode = "min",
    algo: Algo = "tpe",
    max_trials: int | None = None,
    parallelism: int = 2,
    early_stopping: Any = None,
    spark: SparkSession | None = None,
    seed: int | None = None,
    experiment_id: str | None = None,
    run_name: str | None = None,
    resume: str | None = None,
    poll_interval_s: float = 0.25,
    progress: bool = True,
) -> SweepResult:
    """Search ``space`` for the params that minimise (``mode="min"``) or maximise ``metric``.

    ``objective(params)`` (or ``objective(params, trial)``) trains, logs through the SDK
    and returns the metric; intermediate values logged as ``metric`` (``trial.report(v,
    step)`` or ``runlake.log_metric(metric, v, step=step)``) feed ``early_stopping``
    (``"asha"``, ``"median"``, :class:`~runlake.sweeps.ASHA`, :class:`~runlake.sweeps.Median`).
    ``algo`` is ``"tpe"`` (Bayesian), ``"random"`` or ``"grid"``. Trials run as Spark jobs
    on ``spark`` (the active session, else a local one), ``parallelism`` at a time, each the
    child run of one sweep run. ``resume=<sweep run id>`` continues a sweep whose driver
    died: its finished trials are read back and count towards ``max_trials``.
    """
    _check(objective, metric, mode, algo, max_trials, parallelism, poll_interval_s)
    checked = validate_space(space)
    grid = grid_points(checked) if algo == "grid" else None
    if grid is not None:
        random.Random(seed or 0).shuffle(grid)
        max_trials = len(grid) if max_trials is None else min(max_trials, len(grid))
    assert max_trials is not None
    _require_optuna()
    pruner = es.resolve_pruner(early_stopping)
    config = {
        "space": space_to_dict(checked),
        "metric": metric,
        "mode": mode,
        "algo": algo,
        "early_stopping": es.describe(early_stopping),
        "seed": seed,
        "max_trials": max_trials,
        "parallelism": parallelism,
    }
    with _quiet_optuna():
        return _Sweep(
            objective, checked, config, grid, pruner, RunlakeClient(), poll_interval_s, progress
        ).run(spark or default_spark(parallelism), experiment_id, run_name, resume)


class _Sweep:
    def __init__(
        self,
        objective: Callable[..., Any],
        space: dict[str, Domain],
        config: dict[str, Any],
        grid: list[dict[str, Any]] | None,
        pruner: optuna.pruners.BasePruner | None,
        client: RunlakeClient,
        poll_interval_s: float,
        progress: bool,
    ) -> None:
        import optuna

        self.objective = objective
        self.space = space
        self.config = config
        self.metric: str = config["metric"]
        self.mode: str = config["mode"]
        self.grid = grid
        self.pruner = pruner
        self.client = client
        self.poll_interval_s = poll_interval_s
        self.show_progress = progress
        self.distributions = to_optuna(space)
        self.study = optuna.create_study(
            direction="minimize" if self.mode == "min" else "maximize",
            sampler=_sampler(config["algo"], config["seed"]),
            pruner=pruner or optuna.pruners.NopPruner(),
        )
        self.records: list[TrialRecord] = []
        self.live: dict[Future[TrialOutcome], _Live] = {}
        self.sweep_run_id = ""
        self.experiment_id = ""
        self.next_number = 0

    @property
    def running(self) -> int:
        """Trials in flight (for the progress bar)."""
        return len(self.live)

    # -- set-up --

    def _start_parent(self, experiment_id: str | None, run_name: str | None) -> None:
        from runlake import fluent

        parent = fluent.active_run()
        run = self.client.create_run(
            str(experiment_id) if experiment_id is not None else fluent._experiment_id(),
            run_name=run_name or f"sweep-{uuid.uuid4().hex[:6]}",
            tags={
                **_context.run_context_tags(),
                ROLE_TAG: "sweep",
                "runlake.sweep.max_trials": self.config["max_trials"],
            },
            parent_run_id=parent.info.run_id if parent is not None else None,
        )
        self.sweep_run_id = run.info.run_id
        self.experiment_id = run.info.experiment_id
        c = self.config
        self.client.log_batch(
            self.sweep_run_id,
            params={
                "sweep.metric": c["metric"],
                "sweep.mode": c["mode"],
                "sweep.algo": c["algo"],
                "sweep.early_stopping": json.dumps(c["early_stopping"]),
                "sweep.seed": c["seed"],
            },
        )
        self.client.log_text(self.sweep_run_id, json.dumps(c, indent=1), CONFIG_ARTIFACT)

    def _resume(self, sweep_run_id: str) -> None:
        import optuna

        run = check_config(self.client, sweep_run_id, self.config)
        self.sweep_run_id = run.info.run_id
        self.experiment_id = run.info.experiment_id
        self.client.update_run(self.sweep_run_id, status=RunStatus.RUNNING)
        max_trials = self.config["max_trials"]
        self.client.set_tag(self.sweep_run_id, "runlake.sweep.max_trials", max_trials)
        records, _ = load_trials(
            self.client, run, self.space, self.metric, with_history=self.pruner is not None
        )
        states = {
            "complete": optuna.trial.TrialState.COMPLETE,
            "pruned": optuna.trial.TrialState.PRUNED,
            "failed": optuna.trial.TrialState.FAIL,
        }
        for r in sorted(records, key=lambda r: r.number):
            self.study.add_trial(
                optuna.trial.create_trial(
                    state=states[r.state],
                    value=r.value if r.state == "complete" else None,
                    params=r.params,
                    distributions=self.distributions,
                    intermediate_values=r.intermediate,
                )
            )
        self.records = records
        seed = self.config["seed"]
        if seed is not None and records:  # the same seed again would redraw the same points
            self.study.sampler = _sampler(self.config["algo"], seed + len(records))
        if self.grid is not None:
            self.grid = remaining_grid(self.grid, records)
        self.next_number = max((r.number for r in records), default=-1) + 1

    # -- the loop --

    def run(
        self,
        spark: SparkSession,
        experiment_id: str | None,
        run_name: str | None,
        resume: str | None,
    ) -> SweepResult:
        if resume:
            self._resume(resume)
        else:
            self._start_parent(experiment_id, run_name)
        self.client.flush()
        runner = SparkTrialRunner(spark, self.objective, int(self.config["parallelism"]))
        status = RunStatus.FAILED
        try:
            with SweepProgress(self.show_progress, int(self.config["max_trials"])) as bar:
                bar.update(self)
                self._loop(runner, bar)
            result = self._finish()
            status = RunStatus.FINISHED
            return result
        except KeyboardInterrupt:
            status = RunStatus.KILLED
            raise
        finally:
            if status != RunStatus.FINISHED:
                self._abandon(runner)
                self.client.set_terminated(self.sweep_run_id, status)
                with contextlib.suppress(RunlakeError):
                    self.client.flush()
            runner.close()

    def _budget(self) -> int:
        return int(self.config["max_trials"]) - len(self.records)

    def _loop(self, runner: SparkTrialRunner, bar: SweepProgress) -> None:
        parallelism = int(self.config["parallelism"])
        while True:
            while len(self.live) < parallelism and self._budget() > 0:
                if self.grid is not None and not self.grid:
                    break
                self._launch(runner)
                bar.update(self)
            if not self.live:
                return
            timeout = self.poll_interval_s if self.pruner is not None else 1.0
            done, _ = wait(list(self.live), timeout=timeout, return_when=FIRST_COMPLETED)
            for fut in done:
                self._finish_trial(fut)
            if self.pruner is not None:
                self._poll(runner)
            bar.update(self)

    def _launch(self, runner: SparkTrialRunner) -> None:
        if self.grid is not None:
            self.study.enqueue_trial(self.grid.pop(0))
        trial = self.study.ask(self.distributions)
        number = self.next_number
        self.next_number += 1
        params = dict(trial.params)
        name = f"trial-{number}"
        run = self.client.create_run(
            self.experiment_id,
            run_name=name,
            tags={ROLE_TAG: "trial", SWEEP_TAG: self.sweep_run_id, NUMBER_TAG: number},
            parent_run_id=self.sweep_run_id,
        )
        self.client.log_batch(run.info.run_id, params=params)
        self.client.flush()  # the executor logs to this run: the gateway must know it first
        record = TrialRecord(number, run.info.run_id, params)
        self.records.append(record)
        spec = TrialSpec(
            tracking_uri=self.client.tracking_uri,
            experiment_id=self.experiment_id,
            run_id=run.info.run_id,
            run_name=name,
            sweep_run_id=self.sweep_run_id,
            number=number,
            params=params,
            metric=self.metric,
        )
        group = f"runlake-sweep-{self.sweep_run_id}-{number}"
        self.live[runner.submit(group, spec)] = _Live(record, trial, group, time.monotonic())

    def _finish_trial(self, fut: Future[TrialOutcome]) -> None:
        import optuna

        live = self.live.pop(fut)
        record = live.record
        record.duration_s = time.monotonic() - live.started
        state = optuna.trial.TrialState
        try:
            outcome = fut.result()
        except TrialCancelled:
            record.state = "pruned"
            last = max(record.intermediate, default=None)
            at = {} if last is None else {"runlake.sweep.pruned_at_step": last}
            self._end(record, RunStatus.KILLED, at)
            self.study.tell(live.trial, state=state.PRUNED)
            return
        except Exception as exc:  # the task itself failed: the worker died, Spark refused it
            record.state, record.error = "failed", f"{type(exc).__name__}: {exc}"
            self._end(record, RunStatus.FAILED, {ERROR_TAG: record.error[-8000:]})
            self.study.tell(live.trial, state=state.FAIL)
            return
        if outcome.state == "complete":
            if self.pruner is not None:
                self.client.sync()  # its last points, for the pruner's view of completed trials
                self._read_points(live)
            record.state, record.value = "complete", outcome.value
            self._end(record, RunStatus.FINISHED, {VALUE_TAG: repr(outcome.value)})
            self.study.tell(live.trial, outcome.value)
        elif outcome.state == "pruned":
            record.state = "pruned"
            self._end(record, RunStatus.KILLED)
            self.study.tell(live.trial, state=state.PRUNED)
        else:
            record.state, record.error = "failed", outcome.error
            self._end(record, RunStatus.FAILED, {ERROR_TAG: (outcome.error or "")[-8000:]})
            self.study.tell(live.trial, state=state.FAIL)

    def _end(self, record: TrialRecord, status: str, tags: dict[str, Any] | None = None) -> None:
        """The trial's end, written by the driver only: state tag (and more), then status."""
        self.client.log_batch(record.run_id, tags={STATE_TAG: record.state, **(tags or {})})
        self.client.set_terminated(record.run_id, status)

    def _read_points(self, live: _Live) -> bool:
        """Report the trial's new points to the study; True when there were new ones."""
        import math

        try:
            points = self.client.get_metric_history(live.record.run_id, self.metric)
        except NotFound:
            return False
        seen = live.record.intermediate
        new = sorted((m.step, m.value) for m in points if m.step not in seen)
        for step, value in new:
            seen[step] = value
            if math.isfinite(value):
                live.trial.report(value, step)
        return bool(new)

    def _poll(self, runner: SparkTrialRunner) -> None:
        for live in list(self.live.values()):
            if live.stopping:
                continue
            if self._read_points(live) and live.trial.should_prune():
                live.stopping = True
                runner.cancel(live.group)

    def _abandon(self, runner: SparkTrialRunner) -> None:
        """The driver is stopping early: cancel what runs and say so on the runs."""
        for fut, live in list(self.live.items()):
            runner.cancel(live.group)
            fut.cancel()
            live.record.state = "abandoned"
            with contextlib.suppress(RunlakeError):
                self._end(live.record, RunStatus.KILLED)
        self.live.clear()

    # -- the end --

    def _finish(self) -> SweepResult:
        best = best_of(self.records, self.mode)
        table = results_table(self.records, list(self.space), self.metric)
        c = self.client
        run_id = self.sweep_run_id
        c.log_text(run_id, table.to_csv(index=False), "sweep/trials.csv")
        if best is not None:
            c.log_figure(run_id, parallel_coordinates(self.study, self.metric),
                         "sweep/parallel_coordinates.html")  # fmt: skip
            c.log_metric(run_id, self.metric, float(best.value or 0.0))
        counts = table["state"].value_counts().to_dict()
        tags: dict[str, Any] = {
            f"runlake.sweep.n_{s}": int(counts.get(s, 0)) for s in ("complete", "pruned", "failed")
        }
        if best is not None:
            tags["runlake.sweep.best_run_id"] = best.run_id
            tags["runlake.sweep.best_params"] = json.dumps(best.params, default=str)
        c.log_batch(run_id, tags=tags)
        c.set_terminated(run_id, RunStatus.FINISHED)
        c.flush()
        return SweepResult(
            sweep_run_id=run_id,
            best_params=dict(best.params) if best is not None else {},
            best_value=best.value if best is not None else None,
            best_run_id=best.run_id if best is not None else None,
            trials=table,
            metric=self.metric,
            mode=self.mode,
        )
