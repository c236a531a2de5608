"""Micro-batching: concurrent requests merged into one ``predict`` call, split back per request.

Why: a model's ``predict`` has a large fixed cost per call (signature enforcement, building
a DataFrame, the framework's own input checks: about a millisecond for a small sklearn model)
and a small cost per row. Scoring 30 one-row requests in one call costs little more than
scoring one, so under concurrency merging multiplies throughput and, since requests stop
queueing behind each other's fixed costs, lowers the tail latency too.

When it is safe, and only then:

- the model must score rows independently (``merge``: decided by the app from the model's
  flavor and the ``--batching`` setting), and its output must have one entry per input row
  (checked on every merged call; a model whose output cannot be split is never merged again);
- only tables are merged (``Table`` rows or DataFrames), and only with tables of the same
  columns, the same Python types per column (the same dtypes for DataFrames) and equal
  params, so pandas infers for the merged frame exactly what it infers for each request;
- a merged call that raises is bisected until the failing requests are alone: each request
  gets the answer (or the error) it would have had on its own, at a cost of a few extra
  calls instead of one per request.

Waiting: a batch is formed as soon as the previous one is done. It waits (at most
``max_wait_s``) only while other requests are still being read off their connections and it
holds fewer than ``max_rows`` rows; it never waits for requests that have not arrived, so a
lone request is scored at once. Under load, requests that arrive while a batch is scored
form the next one: batches grow with the load without any timer.

Where ``predict`` runs: on the event loop itself (``in_thread=False``), or in one dedicated
thread so the loop keeps reading and answering (``/ping``) during long predictions. Either
way a model instance runs one ``predict`` at a time, as its code expects.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Callable, Hashable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson
import pandas as pd

from runlake.models.schema import Schema
from runlake.serving.payload import Parsed, Table, build_frame, narrow_frame

__all__ = ["Batcher", "Outcome", "merge_inputs", "model_input", "split_rows"]

logger = logging.getLogger("runlake.serving")

PredictFn = Callable[[Any, "dict[str, Any] | None"], Any]


@dataclass
class Outcome:
    """What one request gets: its predictions, or the exception scoring it raised."""

    value: Any = None
    error: BaseException | None = None


@dataclass
class _Item:
    parsed: Parsed
    key: Hashable | None
    rows: int
    future: asyncio.Future[Outcome]


@dataclass
class _Stats:
    """Counters for the log line at shutdown and for tests: how much merging happened."""

    requests: int = 0
    calls: int = 0
    merged_calls: int = 0
    merged_requests: int = 0
    bisections: int = 0
    largest: int = 0
    sizes: dict[int, int] = field(default_factory=dict)


def model_input(parsed: Parsed, schema: Schema | None) -> Any:
    """What ``predict`` receives for one request on its own."""
    data = parsed.data
    if isinstance(data, Table):
        data = data.frame()
    if isinstance(data, pd.DataFrame) and parsed.textual:
        data = narrow_frame(data, schema)
    return data


def merge_inputs(parsed: list[Parsed], schema: Schema | None) -> pd.DataFrame:
    """One DataFrame of every request's rows, in order (all share one merge key)."""
    first = parsed[0].data
    if isinstance(first, Table):
        rows: list[list[Any]] = []
        for p in parsed:
            rows.extend(p.data.rows)
        frame = build_frame(first.columns, rows, first.key)
    else:
        frame = pd.concat([p.data for p in parsed], ignore_index=True)
    return narrow_frame(frame, schema) if parsed[0].textual else frame


def split_rows(predictions: Any, sizes: list[int]) -> list[Any] | None:
    """``predictions`` cut into one piece per request (``sizes`` rows each), or None.

    None when the output does not have exactly one entry per input row along its first
    axis: then it cannot be attributed to requests, and the batch must be scored one by one.
    """
    total = sum(sizes)
    bounds: list[tuple[int, int]] = []
    start = 0
    for n in sizes:
        bounds.append((start, start + n))
        start += n
    if isinstance(predictions, np.ndarray):
        if predictions.ndim == 0 or predictions.shape[0] != total:
            return None
        return [predictions[a:b] for a, b in bounds]
    if isinstance(predictions, pd.DataFrame | pd.Series):
        if len(predictions) != total:
            return None
        return [predictions.iloc[a:b] for a, b in bounds]
    if isinstance(predictions, list):
        if len(predictions) != total:
            return None
        return [predictions[a:b] for a, b in bounds]
    return None


class Batcher:
    """Scores parsed requests, one ``predict`` at a time, merging those that may be merged."""

    def __init__(
        self,
        predict: PredictFn,
        *,
        schema: Schema | None,
        merge: bool,
        max_rows: int = 1024,
        max_wait_s: float = 0.002,
        in_thread: bool = False,
    ) -> None:
        self._predict = predict
        self._schema = schema
        self.merge = merge
        self.max_rows = max_rows
        self.max_wait_s = max_wait_s
        self._pool = (
            ThreadPoolExecutor(max_workers=1, thread_name_prefix="runlake-predict")
            if in_thread
            else None
        )
        self._queue: deque[_Item] = deque()
        self._queued_rows = 0
        self._reading = 0
        self._settled: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self.stats = _Stats()

    # -- request accounting (the app calls these around reading a body) -------------------

    def begin_read(self) -> None:
        """A request has started arriving: a batch may wait a little for it."""
        self._reading += 1

    def end_read(self) -> None:
        """That request is queued or rejected: nothing more to wait for from it."""
        self._reading -= 1
        if self._reading <= 0 and self._settled is not None:
            self._settled.set()

    # -- scoring ----------------------------------------------------------------------------

    async def score(self, parsed: Parsed) -> Outcome:
        """Queue one request and wait for its outcome."""
        loop = asyncio.get_running_loop()
        rows = parsed.rows or 0
        item = _Item(parsed, self._key(parsed), rows, loop.create_future())
        self._queue.append(item)
        self._queued_rows += rows
        self.stats.requests += 1
        if self._queued_rows >= self.max_rows and self._settled is not None:
            self._settled.set()
        if self._task is None:
            self._task = loop.create_task(self._drain())
        return await item.future

    def _key(self, parsed: Parsed) -> Hashable | None:
        """Requests with equal keys may share a call; None: this one is scored alone."""
        if not self.merge:
            return None
        data = parsed.data
        shape: Hashable
        if isinstance(data, Table):
            if data.key is None:
                return None
            shape = ("rows", data.columns, data.key)
        elif isinstance(data, pd.DataFrame):
            if len(data) == 0 or not data.columns.is_unique:
                return None
            dtypes = tuple(str(t) for t in data.dtypes)
            shape = ("frame", tuple(map(str, data.columns)), dtypes, parsed.textual)
        else:
            return None
        if parsed.params is None:
            return (shape, None)
        try:
            return (shape, orjson.dumps(parsed.params, option=orjson.OPT_SORT_KEYS))
        except TypeError:
            return None

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        batch: list[_Item] = []
        try:
            while self._queue:
                await self._settle()
                batch = self._take()
                if self._pool is None:
                    outcomes = self._score_group(batch)
                else:
                    outcomes = await loop.run_in_executor(self._pool, self._score_group, batch)
                for item, outcome in zip(batch, outcomes, strict=True):
                    if not item.future.done():
                        item.future.set_result(outcome)
        except BaseException as exc:  # never leave a request waiting forever
            for item in [*batch, *self._queue]:
                if not item.future.done():
                    item.future.set_result(Outcome(error=exc))
            self._queue.clear()
            self._queued_rows = 0
            raise
        finally:
            self._task = None

    async def _settle(self) -> None:
        """Wait (bounded) for requests still being read, if the batch has room for them."""
        if self.max_wait_s <= 0 or not self.merge:
            return
        if self._reading <= 0 or self._queued_rows >= self.max_rows:
            return
        if self._settled is None:
            self._settled = asyncio.Event()
        self._settled.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._settled.wait(), self.max_wait_s)

    def _take(self) -> list[_Item]:
        """The oldest request, and every queued one that may share its call (up to max_rows)."""
        first = self._queue.popleft()
        batch = [first]
        rows = first.rows
        if first.key is not None and self.merge:
            rest: deque[_Item] = deque()
            while self._queue:
                item = self._queue.popleft()
                if item.key == first.key and rows + item.rows <= self.max_rows:
                    batch.append(item)
                    rows += item.rows
                else:
                    rest.append(item)
            self._queue = rest
        self._queued_rows -= rows
        return batch

    # -- runs on the loop or in the predict thread ----------------------------------------------

    def _score_one(self, item: _Item) -> Outcome:
        self.stats.calls += 1
        try:
            data = model_input(item.parsed, self._schema)
            return Outcome(self._predict(data, item.parsed.params))
        except Exception as exc:
            return Outcome(error=exc)

    def _score_group(self, items: list[_Item]) -> list[Outcome]:
        if len(items) == 1 or not self.merge:
            return [self._score_one(item) for item in items]
        sizes = [item.rows for item in items]
        self.stats.calls += 1
        try:
            frame = merge_inputs([item.parsed for item in items], self._schema)
            predictions = self._predict(frame, items[0].parsed.params)
        except Exception:
            # some request in the group cannot be scored: halve until it is alone
            self.stats.bisections += 1
            mid = len(items) // 2
            return self._score_group(items[:mid]) + self._score_group(items[mid:])
        parts = split_rows(predictions, sizes)
        if parts is None:
            self.merge = False
            logger.warning(
                "the model's output (%s) does not have one entry per input row; requests "
                "are no longer merged into batches",
                type(predictions).__name__,
            )
            return [self._score_one(item) for item in items]
        stats = self.stats
        stats.merged_calls += 1
        stats.merged_requests += len(items)
        stats.largest = max(stats.largest, len(items))
        stats.sizes[len(items)] = stats.sizes.get(len(items), 0) + 1
        return [Outcome(part) for part in parts]

    def close(self) -> None:
        """Stop the predict thread (after the prediction in progress, if any)."""
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
