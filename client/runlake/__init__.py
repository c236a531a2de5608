"""runlake: track, find and query machine-learning runs.

>>> import runlake
>>> runlake.get_tracking_uri()  # doctest: +SKIP
'grpc://127.0.0.1:5055'
"""

from runlake.client import RunlakeClient
from runlake.entities import Experiment, Metric, Run, RunData, RunInfo, ViewType
from runlake.errors import RunlakeError
from runlake.fluent import (
    ActiveRun,
    active_run,
    create_experiment,
    delete_experiment,
    delete_run,
    delete_tag,
    end_run,
    flush,
    get_experiment,
    get_experiment_by_name,
    get_metric_history,
    get_run,
    get_tracking_uri,
    log_metric,
    log_metrics,
    log_param,
    log_params,
    restore_experiment,
    restore_run,
    search_experiments,
    search_runs,
    set_experiment,
    set_tag,
    set_tags,
    set_tracking_uri,
    sql,
    start_run,
)

__all__ = [
    "ActiveRun",
    "Experiment",
    "Metric",
    "Run",
    "RunData",
    "RunInfo",
    "RunlakeClient",
    "RunlakeError",
    "ViewType",
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
