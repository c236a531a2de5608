"""runlake: track, find and query machine-learning runs.

>>> import runlake
>>> runlake.get_tracking_uri()  # doctest: +SKIP
'grpc://127.0.0.1:5055'
"""

from typing import TYPE_CHECKING

from runlake.client import RunlakeClient
from runlake.entities import (
    Experiment,
    LifecycleStage,
    Metric,
    PagedList,
    Param,
    Run,
    RunData,
    RunInfo,
    RunStatus,
    RunTag,
    ViewType,
)
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
    get_artifact_uri,
    get_experiment,
    get_experiment_by_name,
    get_metric_history,
    get_run,
    get_tracking_uri,
    list_artifacts,
    log_artifact,
    log_artifacts,
    log_dict,
    log_figure,
    log_metric,
    log_metrics,
    log_param,
    log_params,
    log_text,
    register_model,
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
    "LifecycleStage",
    "Metric",
    "PagedList",
    "Param",
    "Run",
    "RunData",
    "RunInfo",
    "RunStatus",
    "RunTag",
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
    "get_artifact_uri",
    "get_experiment",
    "get_experiment_by_name",
    "get_metric_history",
    "get_run",
    "get_tracking_uri",
    "list_artifacts",
    "log_artifact",
    "log_artifacts",
    "log_dict",
    "log_figure",
    "log_metric",
    "log_metrics",
    "log_param",
    "log_params",
    "log_text",
    "register_model",
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
    "sweep",
]

if TYPE_CHECKING:
    from runlake.sweeps import sweep

# Submodules with heavier imports load on first use: ``runlake.pyfunc.load_model(...)``.
_LAZY = ("artifacts", "models", "pyfunc", "pytorch", "registry", "sklearn", "spark", "sweeps")


def __getattr__(name: str) -> object:
    if name == "sweep":  # runlake.sweep(objective, space, ...): see runlake.sweeps
        from runlake.sweeps import sweep

        return sweep
    if name in _LAZY:
        import importlib

        return importlib.import_module(f"runlake.{name}")
    raise AttributeError(f"module 'runlake' has no attribute {name!r}")
