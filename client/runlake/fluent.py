"""The fluent API (``runlake.start_run``, ``runlake.log_metric`` …), MLflow's names and behaviour.

All state lives in the one :data:`runlake._session.session` object: tracking URI,
active experiment and the stack of active runs. A log call with no active run
starts one (as MLflow does). Runs started here record the process's context tags
(user, entry point, git commit, host, package versions); the ones still active at
interpreter exit are ended (FAILED when the script died of an exception) before
the sender's bounded exit flush.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, overload

from runlake import _context
from runlake import _validate as chk
from runlake._artifacts import FileInfo
from runlake._frames import runs_frame
from runlake._registry import ModelVersion
from runlake._session import session
from runlake._uri import resolve, validate
from runlake.client import RunlakeClient
from runlake.entities import Experiment, LifecycleStage, Metric, PagedList, Run, ViewType
from runlake.errors import AlreadyExists, Conflict, InvalidArgument

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "ActiveRun",
    "active_run",
    "create_experiment",
    "delete_experiment",
    "delete_run",
    "delete_tag",
    "end_run",
    "flush",
    "get_experiment",
    "get_experiment_by_name",
    "get_metric_history",
    "get_run",
    "get_tracking_uri",
    "log_metric",
    "log_metrics",
    "log_param",
    "log_params",
    "restore_experiment",
    "restore_run",
    "search_experiments",
    "search_runs",
    "set_experiment",
    "set_tag",
    "set_tags",
    "set_tracking_uri",
    "sql",
    "start_run",
]

#: Largest page the query service answers; longer searches are paged through.
_PAGE = 50_000


@dataclass(frozen=True)
class ActiveRun(Run):
    """The run ``start_run`` returns; as a context manager it ends the run on exit.

    A clean exit ends it FINISHED, an exception FAILED (and the exception propagates).
    """

    def __enter__(self) -> ActiveRun:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        _end(self.info.run_id, "FINISHED" if exc_type is None else "FAILED")


# -- tracking URI and experiment --


def set_tracking_uri(uri: str | None) -> None:
    """Point the fluent API (and RunlakeClients made without a URI) at ``grpc://host:port``.

    ``None`` forgets the setting (RUNLAKE_TRACKING_URI or the default apply again). The
    active experiment is forgotten when the URI changes: its id names an experiment of the
    old server, which another server does not have (or has as a different one).
    """
    new = validate(uri) if uri else None
    if new != session.tracking_uri:
        session.experiment_id = None
    session.tracking_uri = new


def get_tracking_uri() -> str:
    return resolve(None, session.tracking_uri)


def _experiment_id() -> str:
    return session.experiment_id or os.environ.get("RUNLAKE_EXPERIMENT_ID") or "0"


def set_experiment(
    experiment_name: str | None = None, experiment_id: str | None = None
) -> Experiment:
    """Make an experiment the active one, creating it when ``experiment_name`` is new."""
    client = session.client()
    if experiment_id is not None:
        exp = client.get_experiment(str(experiment_id))
    elif experiment_name:
        found = client.get_experiment_by_name(experiment_name)
        if found is None:
            try:
                new_id = client.create_experiment(experiment_name)
            except AlreadyExists:  # another process created it meanwhile
                new_id = None
            found = (
                client.get_experiment(new_id)
                if new_id is not None
                else client.get_experiment_by_name(experiment_name)
            )
        if found is None:
            raise Conflict(f"{experiment_name!r} vanished", field="experiment_name")
        exp = found
    else:
        raise InvalidArgument("give experiment_name or experiment_id", field="experiment_name")
    if exp.lifecycle_stage != LifecycleStage.ACTIVE:
        raise Conflict(
            f"experiment {exp.name!r} is deleted; restore it first", field="experiment_name"
        )
    session.experiment_id = exp.experiment_id
    return exp


# -- runs --


def start_run(
    run_id: str | None = None,
    experiment_id: str | None = None,
    run_name: str | None = None,
    nested: bool = False,
    tags: dict[str, Any] | None = None,
    description: str | None = None,
    parent_run_id: str | None = None,
) -> ActiveRun:
    """Start a run (or resume ``run_id``) and make it the active one.

    Starting a run while one is active needs ``nested=True``; the new run then gets
    the active one as its parent (``parent_run_id`` and the ``mlflow.parentRunId`` tag).
    """
    with session.lock:
        active = session.active()
        if active is not None and not nested:
            raise Conflict(
                f"run {active.info.run_id} is already active; end it with end_run() first "
                "or start this one with nested=True",
                field="nested",
            )
        if active is not None and parent_run_id and parent_run_id != active.info.run_id:
            raise InvalidArgument(
                f"is {parent_run_id} but the active run is {active.info.run_id}",
                field="parent_run_id",
            )
        client = session.client()
        if run_id is not None:
            run = _resume(client, run_id, experiment_id)
        else:
            all_tags = {**_context.run_context_tags(), **(tags or {})}
            if description:
                all_tags["mlflow.note.content"] = description
            parent = parent_run_id or (active.info.run_id if active is not None else None)
            run = client.create_run(
                str(experiment_id) if experiment_id is not None else _experiment_id(),
                tags=all_tags,
                run_name=run_name,
                parent_run_id=parent,
            )
        _install_exit_hook()
        session.runs.append((run, os.getpid()))
        return ActiveRun(run.info, run.data)


def _resume(client: RunlakeClient, run_id: str, experiment_id: str | None) -> Run:
    run = client.get_run(run_id)
    if run.info.lifecycle_stage != LifecycleStage.ACTIVE:
        raise Conflict(f"run {run_id} is deleted; restore it first", field="run_id")
    if experiment_id is not None and str(experiment_id) != run.info.experiment_id:
        raise InvalidArgument(
            f"run {run_id} belongs to experiment {run.info.experiment_id}, not {experiment_id}",
            field="experiment_id",
        )
    client.update_run(run_id, status="RUNNING")
    return run


def active_run() -> ActiveRun | None:
    """The innermost active run, or None."""
    run = session.active()
    return None if run is None else ActiveRun(run.info, run.data)


def end_run(status: str = "FINISHED") -> None:
    """End the innermost active run and flush (raises a rejection of anything logged)."""
    run = session.active()
    if run is not None:
        _end(run.info.run_id, status)


def _end(run_id: str, status: str) -> None:
    with session.lock:
        for i in range(len(session.runs) - 1, -1, -1):
            if session.runs[i][0].info.run_id == run_id:
                del session.runs[i]
                break
        else:
            return  # already ended
        client = session.client()
        client.set_terminated(run_id, status)
    client.flush()


def _run_id() -> str:
    runs = session.runs
    if runs:
        return runs[-1][0].info.run_id
    return start_run().info.run_id


def _install_exit_hook() -> None:
    if not session.exit_hook_installed:
        session.exit_hook_installed = True
        atexit.register(_end_runs_at_exit)


def _exit_status(crashed: BaseException | None) -> str:
    """FINISHED after a clean exit, KILLED after Ctrl-C, FAILED after an uncaught exception."""
    if crashed is None or (isinstance(crashed, SystemExit) and crashed.code in (0, None)):
        return "FINISHED"
    return "KILLED" if isinstance(crashed, KeyboardInterrupt) else "FAILED"


def _end_runs_at_exit() -> None:
    """End this process's still-active runs; the sender's own exit hook then flushes them."""
    status = _exit_status(getattr(sys, "last_value", None))
    pid = os.getpid()
    owned = [run for run, owner in reversed(session.runs) if owner == pid]
    session.runs.clear()
    for run in owned:
        try:
            session.client().set_terminated(run.info.run_id, status)
        except Exception as exc:  # never turn exit into a traceback
            print(f"runlake: could not end run {run.info.run_id}: {exc}", file=sys.stderr)


# -- logging to the active run (enqueue only) --


def log_metric(
    key: str, value: float, step: int | None = None, timestamp: int | None = None
) -> None:
    """Log one point to the active run; only enqueues (about a microsecond)."""
    v, ts, st = chk.point(value, timestamp, step)  # before a run may be started for it
    runs = session.runs
    run_id = runs[-1][0].info.run_id if runs else _run_id()
    session.client().enqueue_point(run_id, key, v, ts, st)


def log_metrics(
    metrics: dict[str, float], step: int | None = None, timestamp: int | None = None
) -> None:
    """Log several points with one step and timestamp; all are checked before any is queued."""
    ts = chk.now_ms() if timestamp is None else timestamp
    checked = [(chk.key(k), *chk.point(v, ts, step)) for k, v in metrics.items()]
    run_id = _run_id()
    client = session.client()
    for k, v, t, s in checked:
        client.enqueue_point(run_id, k, v, t, s)


def log_param(key: str, value: Any) -> Any:
    """Log a param (write-once: another value later is rejected); returns ``value``."""
    session.client().log_batch(_run_id(), params={key: value})
    return value


def log_params(params: dict[str, Any]) -> None:
    session.client().log_batch(_run_id(), params=params)


def set_tag(key: str, value: Any) -> None:
    session.client().log_batch(_run_id(), tags={key: value})


def set_tags(tags: dict[str, Any]) -> None:
    session.client().log_batch(_run_id(), tags=tags)


def delete_tag(key: str) -> None:
    session.client().delete_tag(_run_id(), key)


def flush(timeout: float | None = None) -> None:
    """Block until everything logged so far is acknowledged; raise the first rejection."""
    session.client().flush(timeout)


# -- the rest delegates to the session's client --


def delete_run(run_id: str) -> None:
    session.client().delete_run(run_id)


def restore_run(run_id: str) -> None:
    session.client().restore_run(run_id)


def get_run(run_id: str) -> Run:
    return session.client().get_run(run_id)


def get_metric_history(run_id: str, key: str) -> list[Metric]:
    return session.client().get_metric_history(run_id, key)


def sql(query: str) -> pd.DataFrame:
    """One read-only SQL statement over the table views, as a DataFrame."""
    return session.client().sql(query)


def create_experiment(
    name: str, artifact_location: str | None = None, tags: dict[str, Any] | None = None
) -> str:
    return session.client().create_experiment(name, artifact_location, tags)


def get_experiment(experiment_id: str) -> Experiment:
    return session.client().get_experiment(experiment_id)


def get_experiment_by_name(name: str) -> Experiment | None:
    return session.client().get_experiment_by_name(name)


def delete_experiment(experiment_id: str) -> None:
    session.client().delete_experiment(experiment_id)


def restore_experiment(experiment_id: str) -> None:
    session.client().restore_experiment(experiment_id)


def search_experiments(
    view_type: ViewType | int | str = ViewType.ACTIVE_ONLY,
    max_results: int | None = None,
    filter_string: str | None = None,
    order_by: Sequence[str] | None = None,
) -> list[Experiment]:
    """Experiments matching ``filter_string``, every page up to ``max_results``."""
    client = session.client()
    out: list[Experiment] = []
    token: str | None = None
    while True:
        want = _PAGE if max_results is None else min(_PAGE, max_results - len(out))
        page = client.search_experiments(view_type, want, filter_string, order_by, token)
        out.extend(page)
        token = page.token
        if not token or (max_results is not None and len(out) >= max_results):
            return out


@overload
def search_runs(
    experiment_ids: Sequence[str] | str | None = ...,
    filter_string: str = ...,
    run_view_type: ViewType | int | str = ...,
    max_results: int = ...,
    order_by: Sequence[str] | None = ...,
    output_format: Literal["pandas"] = ...,
) -> pd.DataFrame: ...


@overload
def search_runs(
    experiment_ids: Sequence[str] | str | None = ...,
    filter_string: str = ...,
    run_view_type: ViewType | int | str = ...,
    max_results: int = ...,
    order_by: Sequence[str] | None = ...,
    *,
    output_format: Literal["list"],
) -> list[Run]: ...


def search_runs(
    experiment_ids: Sequence[str] | str | None = None,
    filter_string: str = "",
    run_view_type: ViewType | int | str = ViewType.ACTIVE_ONLY,
    max_results: int = 100_000,
    order_by: Sequence[str] | None = None,
    output_format: Literal["pandas", "list"] = "pandas",
) -> pd.DataFrame | list[Run]:
    """Runs matching MLflow's filter syntax (plus OR), every page up to ``max_results``.

    ``experiment_ids`` defaults to the active experiment. The DataFrame has MLflow's
    columns: run_id, experiment_id, status, artifact_uri, start_time, end_time, then
    ``metrics.*``, ``params.*`` and ``tags.*``.
    """
    if output_format not in ("pandas", "list"):
        raise InvalidArgument(f"{output_format!r} is not 'pandas' or 'list'", field="output_format")
    if experiment_ids is None:
        ids: list[str] = [_experiment_id()]
    elif isinstance(experiment_ids, str):
        ids = [experiment_ids]
    else:
        ids = [str(e) for e in experiment_ids]
    client = session.client()
    runs: list[Run] = []
    token: str | None = None
    while len(runs) < max_results:
        page: PagedList[Run] = client.search_runs(
            ids, filter_string, run_view_type, min(_PAGE, max_results - len(runs)), order_by, token
        )
        runs.extend(page)
        token = page.token
        if not token:
            break
    return runs if output_format == "list" else runs_frame(runs)


# -- artifacts --


def log_artifact(
    local_path: str, artifact_path: str | None = None, run_id: str | None = None
) -> None:
    """Upload a file into the active run's artifacts (or ``run_id``'s)."""
    session.client().log_artifact(run_id or _run_id(), local_path, artifact_path)


def log_artifacts(
    local_dir: str, artifact_path: str | None = None, run_id: str | None = None
) -> None:
    """Upload a directory's files into the active run's artifacts (or ``run_id``'s)."""
    session.client().log_artifacts(run_id or _run_id(), local_dir, artifact_path)


def log_text(text: str, artifact_file: str, run_id: str | None = None) -> None:
    session.client().log_text(run_id or _run_id(), text, artifact_file)


def log_dict(dictionary: dict[str, Any], artifact_file: str, run_id: str | None = None) -> None:
    session.client().log_dict(run_id or _run_id(), dictionary, artifact_file)


def log_figure(figure: Any, artifact_file: str, run_id: str | None = None) -> None:
    session.client().log_figure(run_id or _run_id(), figure, artifact_file)


def list_artifacts(run_id: str | None = None, path: str | None = None) -> list[FileInfo]:
    return session.client().list_artifacts(run_id or _run_id(), path)


def get_artifact_uri(artifact_path: str | None = None) -> str:
    """The artifact root URI of the active run, or of a path under it."""
    run = session.client().get_run(_run_id())
    root = run.info.artifact_uri
    return f"{root}/{artifact_path.lstrip('/')}" if artifact_path else root


# -- model registry --


def register_model(model_uri: str, name: str, tags: dict[str, Any] | None = None) -> ModelVersion:
    """Register the model at ``model_uri`` (e.g. runs:/<run_id>/model) as a new version of
    ``name``, creating the registered model on first use."""
    from runlake.artifacts import parse_runs_uri
    from runlake.errors import AlreadyExists

    client = session.client()
    run_id = parse_runs_uri(model_uri)[0] if model_uri.startswith("runs:/") else None
    with contextlib.suppress(AlreadyExists):  # registering a first version creates the model
        client.create_registered_model(name)
    return client.create_model_version(name, model_uri, run_id=run_id, tags=tags)
