"""One trial, as it runs on a Spark executor: the objective inside its own child run.

The driver has already created the trial's run (a child of the sweep's run) and logged its
params; :func:`run_trial` makes that run the active one in the executor's Python worker,
so everything the objective logs through the SDK (``runlake.log_metric``, artifacts,
models) lands on it, calls the objective, and reports back:

- a returned number (or the last value given to :meth:`Trial.report`) completes the trial;
- raising :class:`TrialPruned` prunes it;
- any other exception fails it; the full traceback is stored as the artifact
  ``traceback.txt`` and sent back. The exception does not leave the worker: the sweep
  goes on.

The driver alone writes the end of a trial (state tag and status): a trial it stops early
is cancelled (job group) while its Python worker may still run for Spark's
``spark.python.task.killTimeout`` (2 s by default) before it is killed, and that worker
must not overwrite "pruned" with its own ending. One writer, no race.
"""

from __future__ import annotations

import contextlib
import contextvars
import inspect
import math
import os
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

from runlake.errors import InvalidArgument, RunlakeError

__all__ = [
    "STATE_TAG",
    "Trial",
    "TrialOutcome",
    "TrialPruned",
    "TrialSpec",
    "current_trial",
    "run_trial",
]

STATE_TAG = "runlake.sweep.state"
VALUE_TAG = "runlake.sweep.value"
ERROR_TAG = "runlake.sweep.error"

State = Literal["complete", "pruned", "failed"]


class TrialPruned(Exception):
    """Raise inside an objective to stop the trial as pruned (it is not a failure)."""


@dataclass(frozen=True)
class TrialSpec:
    """What the driver sends to an executor for one trial."""

    tracking_uri: str
    experiment_id: str
    run_id: str
    run_name: str
    sweep_run_id: str
    number: int
    params: dict[str, Any]
    metric: str


@dataclass(frozen=True)
class TrialOutcome:
    """What the executor sends back (the run already records the same)."""

    state: State
    value: float | None = None
    error: str | None = None
    duration_s: float = 0.0


@dataclass
class Trial:
    """The handle an objective gets: its params, its run, and ``report`` for intermediate values.

    >>> def objective(params, trial):
    ...     for epoch in range(10):
    ...         trial.report(train_one_epoch(params), step=epoch)  # doctest: +SKIP
    ...     return evaluate()  # doctest: +SKIP
    """

    number: int
    run_id: str
    params: dict[str, Any]
    metric: str
    sweep_run_id: str
    _last: tuple[int, float] | None = field(default=None, repr=False)

    def report(self, value: float, step: int) -> None:
        """Log ``value`` of the sweep's metric at ``step``: the driver's early stopping reads it.

        The same as ``runlake.log_metric(metric, value, step=step)``; logging the metric that
        way works too.
        """
        from runlake import fluent

        fluent.log_metric(self.metric, value, step=step)

    @property
    def last_reported(self) -> tuple[int, float] | None:
        """(step, value) of the last point of the sweep's metric logged in this trial, or None."""
        return self._last


@contextlib.contextmanager
def _watching(client: Any, trial: Trial) -> Iterator[None]:
    """Note the trial's own points of its metric as they are logged (every SDK path that logs
    one point goes through the session client's ``enqueue_point``), to know at the end
    whether the returned value still needs logging."""
    original = client.enqueue_point

    def enqueue_point(run_id: str, name: str, value: float, timestamp: int, step: int) -> None:
        original(run_id, name, value, timestamp, step)
        if run_id == trial.run_id and name == trial.metric:
            trial._last = (step, value)

    setattr(client, "enqueue_point", enqueue_point)  # noqa: B010 - an instance attribute
    try:
        yield
    finally:
        with contextlib.suppress(AttributeError):
            delattr(client, "enqueue_point")


_current: contextvars.ContextVar[Trial | None] = contextvars.ContextVar(
    "runlake_sweep_trial", default=None
)


def current_trial() -> Trial:
    """The trial this code runs in (inside an objective); RunlakeError outside one."""
    trial = _current.get()
    if trial is None:
        raise RunlakeError("not inside a sweep trial")
    return trial


def _takes_trial(objective: Callable[..., Any]) -> bool:
    """objective(params) or objective(params, trial)?"""
    try:
        sig = inspect.signature(objective)
    except (TypeError, ValueError):
        return False
    positional = [
        p for p in sig.parameters.values() if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
    ]
    varargs = any(p.kind is p.VAR_POSITIONAL for p in sig.parameters.values())
    return len(positional) >= 2 or varargs


def _value(returned: Any, trial: Trial, client: Any) -> float:
    """The trial's value: what the objective returned, else its last report, else the run's."""
    if returned is None:
        if trial.last_reported is not None:
            return trial.last_reported[1]
        latest = client.get_run(trial.run_id).data.metrics.get(trial.metric)
        if latest is None:
            raise InvalidArgument(
                f"the objective returned None and logged no {trial.metric!r}",
                field="objective",
            )
        return float(latest)
    if isinstance(returned, bool | str) or not hasattr(returned, "__float__"):
        raise InvalidArgument(
            f"the objective must return a number, got {type(returned).__name__}",
            field="objective",
        )
    value = float(returned)
    if math.isnan(value):
        raise InvalidArgument("the objective returned NaN", field="objective")
    return value


def run_trial(objective: Callable[..., Any], spec: TrialSpec) -> TrialOutcome:
    """Run one trial in this (worker) process; never raises for the objective's errors.

    Everything the objective logged is flushed (acknowledged) before this returns, so the
    driver's end-of-trial writes come after it in the log; the run's state and status are
    the driver's to write, never the executor's (see the module docstring).
    """
    from runlake import fluent
    from runlake._session import session
    from runlake.entities import Run, RunData, RunInfo, RunStatus

    session.tracking_uri = spec.tracking_uri
    client = session.client()
    # The driver created the run and flushed it: attach it without a read (a read would
    # wait for the compactor), the way start_run(run_id=...) would after its lookup.
    info = RunInfo(
        run_id=spec.run_id, run_name=spec.run_name, experiment_id=spec.experiment_id,
        user_id="", status=RunStatus.RUNNING, start_time=0, end_time=None,
        lifecycle_stage="active", artifact_uri="",
    )  # fmt: skip
    with session.lock:
        session.runs.append((Run(info, RunData()), os.getpid()))
    trial = Trial(spec.number, spec.run_id, dict(spec.params), spec.metric, spec.sweep_run_id)
    token = _current.set(trial)
    started = time.monotonic()
    try:
        with _watching(client, trial):
            if _takes_trial(objective):
                returned = objective(dict(spec.params), trial)
            else:
                returned = objective(dict(spec.params))
        fluent.flush()
        value = _value(returned, trial, client)
        last = trial.last_reported
        if last is None or last[1] != value:  # the value is the run's latest point of the metric
            client.log_metric(
                spec.run_id, spec.metric, value, step=0 if last is None else last[0] + 1
            )
        fluent.flush()
        return TrialOutcome("complete", value=value, duration_s=time.monotonic() - started)
    except TrialPruned:
        with contextlib.suppress(RunlakeError):
            fluent.flush()
        return TrialOutcome("pruned", duration_s=time.monotonic() - started)
    except Exception:
        text = traceback.format_exc()
        with contextlib.suppress(RunlakeError):  # it may have logged something invalid
            fluent.flush()
        with contextlib.suppress(RunlakeError):  # the driver's tag holds the end of it
            client.log_text(spec.run_id, text, "traceback.txt")
        return TrialOutcome("failed", error=text, duration_s=time.monotonic() - started)
    finally:
        _current.reset(token)
        with session.lock:  # a run the objective left open must not leak into the next trial
            session.runs[:] = [r for r in session.runs if r[0].info.run_id != spec.run_id]
