"""Resuming a sweep whose driver died: its trials are read back from runlake.

Everything a resumed driver needs is on the runs: each trial run carries
``runlake.sweep.trial`` (its number), its params, and once it ended ``runlake.sweep.state``
(complete, pruned or failed) with ``runlake.sweep.value`` for a completed one. Completed,
pruned and failed trials count towards ``max_trials`` and are told to the sampler (their
intermediate values too, so the pruner compares against them); a trial still RUNNING had
no driver left to watch it, so it is marked KILLED with ``runlake.sweep.state=abandoned``
and its point is sampled again. The sweep's configuration (``sweep/config.json`` on the
sweep's run) must match: resuming with another space, metric or algorithm is refused,
naming the field.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

from runlake.client import RunlakeClient
from runlake.entities import Run, RunStatus, ViewType
from runlake.errors import Conflict, InvalidArgument, NotFound
from runlake.sweeps.results import TrialRecord
from runlake.sweeps.space import Domain, parse_param
from runlake.sweeps.trial import ERROR_TAG, STATE_TAG, VALUE_TAG

__all__ = [
    "CONFIG_ARTIFACT",
    "NUMBER_TAG",
    "ROLE_TAG",
    "SWEEP_TAG",
    "check_config",
    "load_trials",
    "params_key",
    "remaining_grid",
    "trial_from_run",
]

CONFIG_ARTIFACT = "sweep/config.json"
ROLE_TAG = "runlake.sweep.role"
SWEEP_TAG = "runlake.sweep.id"
NUMBER_TAG = "runlake.sweep.trial"
#: Settings that may change on resume (the rest must match the first run).
MUTABLE = frozenset({"max_trials", "parallelism"})


def check_config(client: RunlakeClient, sweep_run_id: str, config: Mapping[str, Any]) -> Run:
    """The sweep's run, after checking it is a sweep whose configuration matches ``config``."""
    client.sync()  # the dead driver's and its executors' writes: this process never saw them
    try:
        run = client.get_run(sweep_run_id)
    except NotFound:
        raise InvalidArgument(f"no run {sweep_run_id}", field="resume") from None
    if run.data.tags.get(ROLE_TAG) != "sweep":
        raise InvalidArgument(f"run {sweep_run_id} is not a sweep's run", field="resume")
    with tempfile.TemporaryDirectory(prefix="runlake-sweep-") as tmp:
        try:
            local = client.download_artifacts(sweep_run_id, CONFIG_ARTIFACT, tmp)
        except NotFound:
            raise InvalidArgument(
                f"sweep {sweep_run_id} has no {CONFIG_ARTIFACT}", field="resume"
            ) from None
        before = json.loads(Path(local).read_text())
    for key in sorted(set(before) | set(config)):
        if key in MUTABLE:
            continue
        if before.get(key) != config.get(key):
            raise Conflict(
                f"is {config.get(key)!r} but sweep {sweep_run_id} ran with {before.get(key)!r}",
                field=key,
            )
    return run


def _children(client: RunlakeClient, run: Run) -> list[Run]:
    out: list[Run] = []
    token: str | None = None
    while True:
        page = client.search_runs(
            [run.info.experiment_id],
            f"tags.{SWEEP_TAG} = '{run.info.run_id}'",
            ViewType.ACTIVE_ONLY,
            max_results=10_000,
            page_token=token,
        )
        out.extend(page)
        token = page.token
        if not token:
            return out


def trial_from_run(
    run: Run, space: Mapping[str, Domain], metric: str
) -> TrialRecord | Literal["abandoned"] | None:
    """The finished trial a child run records; "abandoned" if it never ended; None: not a trial.

    A trial counts once it carries its end state; one that ended without it (its driver died
    between the two writes) or still RUNNING is abandoned and its point sampled again.
    """
    tags = run.data.tags
    try:
        number = int(tags[NUMBER_TAG])
    except (KeyError, ValueError):
        return None  # a run the user nested under the sweep, not a trial
    state: Any = tags.get(STATE_TAG)
    if state == "abandoned":
        return None  # found by an earlier resume; its point was sampled again
    if state not in ("complete", "pruned", "failed"):
        return "abandoned"
    if any(name not in run.data.params for name in space):
        return "abandoned"  # params of another space: never told to this study
    params = {
        name: parse_param(d, run.data.params[name], f"params.{name}") for name, d in space.items()
    }
    value = None
    if state == "complete":
        text = tags.get(VALUE_TAG)
        value = float(text) if text is not None else run.data.metrics.get(metric)
        if value is None:
            return "abandoned"
    end, start = run.info.end_time, run.info.start_time
    return TrialRecord(
        number=number, run_id=run.info.run_id, params=params, state=state, value=value,
        duration_s=(end - start) / 1000.0 if end else None, error=tags.get(ERROR_TAG),
        resumed=True,
    )  # fmt: skip


def remaining_grid(
    grid: Sequence[Mapping[str, Any]], done: Sequence[TrialRecord]
) -> list[dict[str, Any]]:
    """The grid points no finished trial has run, in the grid's order."""
    seen = {params_key(r.params) for r in done}
    return [dict(p) for p in grid if params_key(p) not in seen]


def params_key(params: Mapping[str, Any]) -> tuple[tuple[str, str], ...]:
    """Params compared as runlake stores them (text), so 1 and 1.0 of one domain match."""
    return tuple(sorted((k, str(v)) for k, v in params.items()))


def load_trials(
    client: RunlakeClient,
    sweep: Run,
    space: Mapping[str, Domain],
    metric: str,
    *,
    with_history: bool,
) -> tuple[list[TrialRecord], list[str]]:
    """(the sweep's finished trials, the run ids of abandoned ones, now marked KILLED)."""
    records: list[TrialRecord] = []
    abandoned: list[str] = []
    for run in _children(client, sweep):
        found = trial_from_run(run, space, metric)
        if found == "abandoned":
            abandoned.append(run.info.run_id)
        elif found is not None:
            records.append(found)
    if with_history:
        for r in records:
            if r.state != "failed":
                points = client.get_metric_history(r.run_id, metric)
                r.intermediate = {m.step: m.value for m in points}
    for run_id in abandoned:
        client.set_tag(run_id, STATE_TAG, "abandoned")
        client.set_terminated(run_id, RunStatus.KILLED)
    client.flush()
    return records, abandoned
