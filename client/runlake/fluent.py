"""The fluent API (``runlake.start_run`` …): MLflow's, with its state in one session object."""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal

from runlake.entities import Experiment, Metric, Run, ViewType
from runlake.errors import Conflict, InvalidArgument

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

    from runlake.client import RunlakeClient

__all__ = ["ActiveRun", "Session", "session"]


@dataclass
class Session:
    """Everything the fluent API remembers: tracking URI, experiment, the stack of runs."""

    tracking_uri: str | None = None
    experiment_id: str | None = None
    runs: list[Run] = field(default_factory=list)
    lock: threading.RLock = field(default_factory=threading.RLock)
    _client: RunlakeClient | None = None
    _client_key: tuple[int, str | None, str | None] | None = None

    def client(self) -> RunlakeClient:
        """The session's client, made once per (process, URI): log calls are on the hot path."""
        key = (os.getpid(), self.tracking_uri, os.environ.get("RUNLAKE_TRACKING_URI"))
        if self._client is None or self._client_key != key:
            from runlake.client import RunlakeClient

            self._client = RunlakeClient(self.tracking_uri)
            self._client_key = key
        return self._client


session = Session()


def _reset_after_fork() -> None:
    session.runs = []


os.register_at_fork(after_in_child=_reset_after_fork)


class ActiveRun:
    """The run ``start_run`` returns; as a context manager it ends the run on exit."""

    def __init__(self, run: Run) -> None:
        self._run = run

    @property
    def info(self) -> Any:
        return self._run.info

    @property
    def data(self) -> Any:
        return self._run.data

    def __enter__(self) -> ActiveRun:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        end_run("FINISHED" if exc_type is None else "FAILED")


def set_tracking_uri(uri: str) -> None:
    from runlake._uri import resolve

    session.tracking_uri = resolve(uri)


def get_tracking_uri() -> str:
    from runlake._uri import resolve

    return resolve(None, session.tracking_uri)


def set_experiment(
    experiment_name: str | None = None, experiment_id: str | None = None
) -> Experiment:
    """Make an experiment the active one, creating it when the name is new."""
    client = session.client()
    if experiment_id is not None:
        exp = client.get_experiment(experiment_id)
    elif experiment_name:
        found = client.get_experiment_by_name(experiment_name)
        exp = found or client.get_experiment(client.create_experiment(experiment_name))
    else:
        raise InvalidArgument("give experiment_name or experiment_id", field="experiment_name")
    if exp.lifecycle_stage != "active":
        raise Conflict(
            f"experiment {exp.name!r} is deleted; restore it first", field="experiment_name"
        )
    session.experiment_id = exp.experiment_id
    return exp


def _experiment_id() -> str:
    return session.experiment_id or os.environ.get("RUNLAKE_EXPERIMENT_ID") or "0"


def start_run(
    run_id: str | None = None,
    experiment_id: str | None = None,
    run_name: str | None = None,
    nested: bool = False,
    tags: dict[str, Any] | None = None,
    description: str | None = None,
    parent_run_id: str | None = None,
) -> ActiveRun:
    with session.lock:
        if session.runs and not nested:
            raise Conflict(
                f"run {session.runs[-1].info.run_id} is already active; end it first or "
                "start this one with nested=True",
                field="nested",
            )
        client = session.client()
        if run_id is not None:
            run = client.get_run(run_id)
            client.update_run(run_id, status="RUNNING")
        else:
            all_tags = dict(tags or {})
            if description:
                all_tags["mlflow.note.content"] = description
            parent = parent_run_id or (session.runs[-1].info.run_id if session.runs else None)
            run = client.create_run(
                experiment_id or _experiment_id(),
                tags=all_tags,
                run_name=run_name,
                parent_run_id=parent,
            )
        session.runs.append(run)
        return ActiveRun(run)


def active_run() -> ActiveRun | None:
    return ActiveRun(session.runs[-1]) if session.runs else None


def _run_id() -> str:
    if not session.runs:
        run = start_run()
        return str(run.info.run_id)
    return session.runs[-1].info.run_id


def end_run(status: str = "FINISHED") -> None:
    with session.lock:
        if not session.runs:
            return
        run = session.runs.pop()
        client = session.client()
        client.set_terminated(run.info.run_id, status)
        client.flush()


def log_param(key: str, value: Any) -> Any:
    session.client().log_param(_run_id(), key, value)
    return value


def log_params(params: dict[str, Any]) -> None:
    session.client().log_batch(_run_id(), params=params)


def log_metric(
    key: str, value: float, step: int | None = None, timestamp: int | None = None
) -> None:
    from runlake.client import point

    checked = point(value, timestamp, step)
    session.client().sender.metric(_run_id(), key, *checked)


def log_metrics(
    metrics: dict[str, float], step: int | None = None, timestamp: int | None = None
) -> None:
    from runlake.client import point

    checked = [(key, *point(value, timestamp, step)) for key, value in metrics.items()]
    sender = session.client().sender
    rid = _run_id()
    for key, v, ts, st in checked:
        sender.metric(rid, key, v, ts, st)


def set_tag(key: str, value: Any) -> None:
    session.client().set_tag(_run_id(), key, value)


def set_tags(tags: dict[str, Any]) -> None:
    session.client().log_batch(_run_id(), tags=tags)


def delete_tag(key: str) -> None:
    session.client().delete_tag(_run_id(), key)


def delete_run(run_id: str) -> None:
    session.client().delete_run(run_id)


def restore_run(run_id: str) -> None:
    session.client().restore_run(run_id)


def get_run(run_id: str) -> Run:
    return session.client().get_run(run_id)


def get_metric_history(run_id: str, key: str) -> list[Metric]:
    return session.client().get_metric_history(run_id, key)


def flush(timeout: float | None = None) -> None:
    """Block until everything logged so far is acknowledged; raise if any of it was rejected."""
    session.client().flush(timeout)


def sql(query: str, *, arrow: bool = False) -> pd.DataFrame | pa.Table:
    return session.client().sql(query, arrow=arrow)


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
    view_type: ViewType = ViewType.ACTIVE_ONLY,
    max_results: int = 1000,
    filter_string: str = "",
    order_by: Sequence[str] | None = None,
) -> list[Experiment]:
    return session.client().search_experiments(view_type, max_results, filter_string, order_by)


def search_runs(
    experiment_ids: Sequence[str] | None = None,
    filter_string: str = "",
    run_view_type: ViewType = ViewType.ACTIVE_ONLY,
    max_results: int = 1000,
    order_by: Sequence[str] | None = None,
    output_format: Literal["pandas", "list"] = "pandas",
) -> pd.DataFrame | list[Run]:
    """Runs matching the filter; a DataFrame shaped like MLflow's, or a list of Run."""
    ids = list(experiment_ids) if experiment_ids is not None else [_experiment_id()]
    runs = list(
        session.client().search_runs(ids, filter_string, run_view_type, max_results, order_by)
    )
    if output_format == "list":
        return runs
    import pandas as pd

    rows = []
    for r in runs:
        row: dict[str, Any] = {
            "run_id": r.info.run_id,
            "experiment_id": r.info.experiment_id,
            "status": r.info.status,
            "artifact_uri": r.info.artifact_uri,
            "start_time": r.info.start_time,
            "end_time": r.info.end_time,
        }
        row.update({f"metrics.{k}": v for k, v in r.data.metrics.items()})
        row.update({f"params.{k}": v for k, v in r.data.params.items()})
        row.update({f"tags.{k}": v for k, v in r.data.tags.items()})
        rows.append(row)
    return pd.DataFrame(rows)
