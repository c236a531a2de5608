"""The embedded compactor: a thread that folds the SQLite log into Delta with delta-rs.

Commit protocol of one round (each step idempotent, so a crash anywhere is safe):

1. Read the records after ``start`` = the position the ``events`` table holds
   (events is committed last, so it marks the last complete round).
2. For every other table T, fold the records after max(start, T's own position)
   — normally the same records for all — and commit T's rows with the round's
   last position as T's Delta app-transaction version. A table that holds no rows
   from this round is not committed.
3. Commit the ``events`` rows with the same version: the round is now done.
4. Publish the round to the in-memory query state and advance the folded
   position, which releases readers waiting on read-your-writes.

After a crash between 2 and 3, the tables that committed in the round know so
(step 2's ``max``), and the replay skips exactly their share.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from runlake_services.eventlog import EventLog
from runlake_services.fold import decode_records, fold
from runlake_services.progress import Progress
from runlake_services.tables.delta_sink import DeltaTableSink
from runlake_services.tables.schema import TABLES, FoldResult

__all__ = ["EmbeddedCompactor"]

log = logging.getLogger(__name__)

_MAX_RECORDS = 5_000


class EmbeddedCompactor:
    """Folds new log records every ``interval_s`` (sooner when woken) until stopped."""

    def __init__(
        self,
        log_: EventLog,
        sink: DeltaTableSink,
        progress: Progress,
        *,
        on_fold: Callable[[FoldResult], None] | None = None,
        on_bytes_folded: Callable[[int], None] | None = None,
        after_round: Callable[[], object] | None = None,
        interval_s: float = 0.05,
        optimize_every_commits: int = 200,
        round_bytes: int = 4 * 1024 * 1024,
    ) -> None:
        self._log = log_
        self._sink = sink
        self._progress = progress
        self._on_fold = on_fold
        self._on_bytes = on_bytes_folded
        self._after_round = after_round
        self._interval = interval_s
        self._optimize_every = optimize_every_commits
        # A round's log bytes bound the server's memory: its Arrow rows, Parquet buffers
        # and merge state are several times the raw size (see bench/RESULTS.md, memory).
        self._round_bytes = round_bytes
        self._commits_since_optimize: dict[str, int] = dict.fromkeys(TABLES, 0)
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.rounds = 0
        self.last_error: BaseException | None = None

    def folded_position(self) -> int:
        return self._sink.folded_position("events")

    def start(self) -> None:
        self._progress.folded_to(self.folded_position())
        self._thread = threading.Thread(target=self._loop, name="runlake-compactor", daemon=True)
        self._thread.start()

    def wake(self) -> None:
        self._wake.set()

    def stop(self, *, drain: bool = True) -> None:
        """Stop the thread; with ``drain`` fold what the log holds first."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=60)
        if drain:
            while self.run_once():
                pass

    def _loop(self) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                folded = self.run_once()
            except Exception as exc:  # keep serving reads; retry the round after a pause
                self.last_error = exc
                log.exception("compaction round failed; retrying")
                self._stop.wait(1.0)
                continue
            if folded and self._after_round is not None:
                self._after_round()  # after the round is published: readers never wait on it
            if folded:
                continue  # more may be waiting: fold again at once
            self._wake.wait(max(0.0, self._interval - (time.monotonic() - started)))
            self._wake.clear()

    def run_once(self) -> int:
        """One round of the commit protocol; returns how many records it folded."""
        # 1. the records after the last complete round
        start = self.folded_position()
        raw = self._log.read(start, max_records=_MAX_RECORDS, max_bytes=self._round_bytes)
        if not raw:
            return 0
        records = decode_records(raw)
        end = records[-1][0]
        result = fold(records)
        # 2. every table but events, each from where it stands
        for name in TABLES:
            if name == "events":
                continue
            own = self._sink.folded_position(name)
            if own >= end:
                continue
            rows = result.tables[name]
            if own > start:
                rows = fold([r for r in records if r[0] > own]).tables[name]
            if rows.num_rows:
                self._sink.commit(name, rows, end)
                self._after_commit(name)
        # 3. events last: marks the round complete
        self._sink.commit("events", result.tables["events"], end)
        self._after_commit("events")
        # 4. publish
        if self._on_fold is not None:
            self._on_fold(result)
        if self._on_bytes is not None:
            self._on_bytes(sum(len(r.payload) for r in raw))
        self._progress.folded_to(end)
        self.rounds += 1
        return len(raw)

    def _after_commit(self, name: str) -> None:
        self._commits_since_optimize[name] += 1
        if self._commits_since_optimize[name] >= self._optimize_every:
            self._commits_since_optimize[name] = 0
            self._sink.maintain(name)
