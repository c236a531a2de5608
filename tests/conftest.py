"""Factory fixtures shared by every test layer."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from runlake_services.compactor import EmbeddedCompactor
from runlake_services.eventlog import EventLog, open_event_log
from runlake_services.gateway import Backlog, Ingestor
from runlake_services.progress import Progress
from runlake_services.tables.delta_sink import DeltaTableSink
from runlake_services.tables.reader import DeltaTableReader


@dataclass
class Pipeline:
    """Gateway → SQLite log → compactor → Delta, in-process, without gRPC."""

    root: Path
    log: EventLog
    ingestor: Ingestor
    sink: DeltaTableSink
    reader: DeltaTableReader
    progress: Progress
    compactor: EmbeddedCompactor
    backlog: Backlog

    def table(self, name: str) -> list[dict[str, object]]:
        rows: list[dict[str, object]] = self.reader.dataset(name).to_table().to_pylist()
        return rows


@pytest.fixture
def pipeline_factory(tmp_path: Path) -> Iterator[Callable[..., Pipeline]]:
    made: list[Pipeline] = []
    counter = itertools.count()

    def make(root: Path | None = None, backlog_limit: int = 1 << 30) -> Pipeline:
        root = root or tmp_path / f"p{next(counter)}"
        log = open_event_log(f"sqlite:///{root / 'log.db'}")
        backlog = Backlog(backlog_limit)
        ingestor = Ingestor(log, artifact_root=(root / "artifacts").as_uri(), backlog=backlog)
        ingestor.ensure_default_experiment()
        sink = DeltaTableSink(str(root / "tables"))
        sink.ensure_tables()
        progress = Progress()
        compactor = EmbeddedCompactor(log, sink, progress, on_bytes_folded=backlog.folded)
        p = Pipeline(
            root,
            log,
            ingestor,
            sink,
            DeltaTableReader(str(root / "tables")),
            progress,
            compactor,
            backlog,
        )
        made.append(p)
        return p

    yield make
    for p in made:
        p.log.close()
