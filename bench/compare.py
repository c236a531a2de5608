"""MLflow's figure, from the better of its two server configurations.

Every comparison starts ``mlflow server`` twice, with its default workers (4) and with
``--workers 1``, measures the same workload on each, and keeps the better figure as
"MLflow best"; both go into the row's detail.
"""

from __future__ import annotations

import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from bench import mlflow_env
from bench.common import Ctx, fan_out
from bench.servers import MlflowServer

__all__ = ["CONFIGS", "mlflow_best", "mlflow_worker"]

T = TypeVar("T")
#: None: MLflow's default number of workers (4).
CONFIGS: tuple[int | None, ...] = (None, 1)


def mlflow_best(
    ctx: Ctx,
    what: str,
    measure: Callable[[MlflowServer], T],
    key: Callable[[T], float],
    *,
    higher_is_better: bool,
    prepare: Callable[[Path], None] | None = None,
    shared_root: bool = False,
) -> tuple[T | None, str, dict[str, T]]:
    """Run ``measure`` against each configuration; (best result, its label, all results).

    ``prepare(root)`` runs once before the first server starts (bulk loading its store);
    with ``shared_root`` both configurations use the same store (read-only benchmarks).
    """
    results: dict[str, T] = {}
    root = ctx.dir(f"mlflow-{what}")
    if prepare is not None:
        prepare(root)
    for i, workers in enumerate(CONFIGS):
        r = root if shared_root or i == 0 else ctx.dir(f"mlflow-{what}")
        server = MlflowServer(r, workers)
        ctx.say(f"{what}: MLflow, {server.label}")
        try:
            with server.start():
                results[server.label] = measure(server)
        except Exception as exc:  # one configuration failing must not hide the other
            ctx.say(f"{what}: MLflow {server.label} failed: {exc}")
            traceback.print_exc()
    if not results:
        return None, "", results
    pick = max if higher_is_better else min
    label = pick(results, key=lambda k: key(results[k]))
    return results[label], label, results


def mlflow_worker(
    script: str, per_worker: list[dict[str, Any]], *, timeout_s: float, barrier: bool = False
) -> list[dict[str, Any]]:
    """Run MLflow worker scripts on the MLflow venv's interpreter."""
    return fan_out(
        script,
        per_worker,
        exe=mlflow_env.python(),
        env=mlflow_env.env(),
        timeout_s=timeout_s,
        barrier=barrier,
    )
