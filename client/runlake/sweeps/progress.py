"""The sweep's progress bar (rich, on stderr): trials done of max_trials, best value, states."""

from __future__ import annotations

from typing import Any, Protocol

from runlake.sweeps.results import TrialRecord, best_of

__all__ = ["SweepProgress", "SweepState"]


class SweepState(Protocol):
    """What the bar reads from the driver."""

    records: list[TrialRecord]
    mode: str
    metric: str

    @property
    def running(self) -> int: ...


class SweepProgress:
    """A rich progress bar on stderr: trials done of max_trials, best value, states."""

    def __init__(self, enabled: bool, total: int) -> None:
        self.enabled = enabled
        self.total = total
        self._progress: Any = None
        self._task: Any = None

    def __enter__(self) -> SweepProgress:
        if self.enabled:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
            )

            self._progress = Progress(
                TextColumn("[bold]sweep[/bold]"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                TextColumn("{task.description}"),
                console=Console(stderr=True),
            )
            self._progress.__enter__()
            self._task = self._progress.add_task("", total=self.total)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.__exit__(*exc)

    def update(self, s: SweepState) -> None:
        if self._progress is None:
            return
        done = [r for r in s.records if r.state != "running" and r.state != "abandoned"]
        best = best_of(s.records, s.mode)
        n = {k: sum(r.state == k for r in done) for k in ("pruned", "failed")}
        text = f"{s.running} running · {n['pruned']} pruned · {n['failed']} failed"
        if best is not None:
            text = f"best {s.metric}={best.value:.6g} · " + text
        self._progress.update(self._task, completed=len(done), description=text)
