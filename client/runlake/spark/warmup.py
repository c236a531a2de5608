"""Start the Python workers, and load the model in each, while the driver still plans.

The first task a Spark job runs on each core waits for its Python worker: the fork,
PySpark's set-up, the imports (pandas, pyarrow, the model's library: scikit-learn alone is
~0.8 s of CPU) and the model's load, ~2 s on every core at once. Meanwhile the driver
plans the job through the JVM (the input's schema and Delta log), which in a fresh
``runlake score`` process is the JVM's first, cold, work and leaves a core idle. One small
task per core, submitted before the planning, does the workers' start in that time;
PySpark keeps the workers (``spark.python.worker.reuse``) and :func:`runlake.spark.worker.load`
keeps the model, so the job's tasks find both ready. Measured in decision 0015.

The warm-up never fails the job: a model that cannot load fails the job's own tasks with the
error, once, as it would without a warm-up.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pyspark import SparkContext

    from runlake.spark.worker import ShippedModel

__all__ = ["Warmup", "start_workers"]

#: at most this many warm-up tasks: one per core of a small cluster; a big one starts the
#: rest of its workers with the job's first tasks, as it would anyway
MAX_SLOTS = 64


@dataclass
class Warmup:
    """A warm-up job running in its own job group, from a thread of its own."""

    group: str
    thread: threading.Thread

    def stop(self, sc: SparkContext, timeout_s: float = 30.0) -> None:
        """Cancel it if it still runs (a failed job, or a scheduler that let the job pass)."""
        if self.thread.is_alive():
            sc.cancelJobGroup(self.group)
        self.thread.join(timeout_s)


def start_workers(sc: SparkContext, shipped: ShippedModel, group: str) -> Warmup | None:
    """One task per core loading ``shipped`` in its worker; None when workers are not reused."""
    if sc.getConf().get("spark.python.worker.reuse", "true").strip().lower() != "true":
        return None  # each task would get a fresh worker: nothing to start ahead
    from pyspark import InheritableThread

    slots = max(1, min(sc.defaultParallelism, MAX_SLOTS))

    def run() -> None:
        sc.setJobGroup(group, "runlake score: starting the Python workers", True)
        try:
            rdd = sc.parallelize(range(slots), slots)
            rdd.mapPartitions(partial(_load, shipped)).collect()
        except Exception:  # cancelled, or the cluster failed: the job reports it
            pass

    thread = InheritableThread(target=run, name=f"{group}-warmup", daemon=True)
    thread.start()
    return Warmup(group, thread)


def _load(shipped: ShippedModel, _items: Iterator[int]) -> Iterator[int]:
    """In a Python worker: import the task's modules and load the model; the worker's pid."""
    try:
        import runlake.spark.tasks  # noqa: F401 - pyarrow, pandas: what the job's tasks import
        from runlake.spark.worker import load

        load(shipped)
    except Exception:  # the job's first task meets the same error and reports it
        pass
    yield os.getpid()
