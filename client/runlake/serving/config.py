"""Settings of ``runlake models serve``, validated once, passed to every worker as JSON.

Workers are separate processes started by the launcher, so the settings must survive a
round trip through JSON (``to_json`` / ``from_json``); validation happens in
``__post_init__`` so a bad value fails before any socket is bound or model loaded.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import Any, Literal

__all__ = ["BATCHING_MODES", "DEFAULT_MAX_BODY_BYTES", "ServeConfig"]

Batching = Literal["auto", "on", "off"]
BATCHING_MODES: tuple[str, ...] = ("auto", "on", "off")
#: Large enough for 100k rows of a few dozen features as JSON; a setting, not a law.
DEFAULT_MAX_BODY_BYTES = 64 * 2**20


@dataclass(frozen=True)
class ServeConfig:
    """Everything a scoring worker needs; see the CLI's ``--help`` for each option."""

    model_uri: str
    host: str = "127.0.0.1"
    port: int = 5000
    #: One, as MLflow: each worker is another copy of the model; one process batches more.
    workers: int = 1
    #: Most rows merged into one ``predict`` call; a single larger request is never split.
    max_batch_rows: int = 1024
    #: Longest a batch waits for requests that are already being read (not for new ones).
    max_wait_ms: float = 2.0
    #: auto: merge tabular requests for models known to score rows independently.
    batching: Batching = "auto"
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    #: Idle keep-alive connections are closed after this many seconds.
    keep_alive_s: float = 5.0
    #: Longest a graceful stop waits for requests in progress before closing connections.
    graceful_timeout_s: float = 10.0
    #: Longest the launcher waits for every worker to load the model and listen.
    startup_timeout_s: float = 600.0
    #: The server that resolves runs:/ and models:/ URIs ('': RUNLAKE_TRACKING_URI or default).
    tracking_uri: str = ""

    def __post_init__(self) -> None:
        problems: list[str] = []
        if not self.model_uri:
            problems.append("model_uri: must not be empty")
        if not 0 <= self.port <= 65535:
            problems.append(f"port: must be within 0-65535, got {self.port}")
        if not 1 <= self.workers <= 256:
            problems.append(f"workers: must be within 1-256, got {self.workers}")
        if not 1 <= self.max_batch_rows <= 10_000_000:
            problems.append(f"max_batch_rows: must be within 1-10000000, got {self.max_batch_rows}")
        if not 0 <= self.max_wait_ms <= 1000:
            problems.append(f"max_wait_ms: must be within 0-1000, got {self.max_wait_ms}")
        if self.batching not in BATCHING_MODES:
            problems.append(f"batching: must be one of {BATCHING_MODES}, got {self.batching!r}")
        if self.max_body_bytes < 1024:
            problems.append(f"max_body_bytes: must be at least 1024, got {self.max_body_bytes}")
        for name in ("keep_alive_s", "graceful_timeout_s", "startup_timeout_s"):
            if getattr(self, name) <= 0:
                problems.append(f"{name}: must be positive, got {getattr(self, name)}")
        if problems:
            raise ValueError("; ".join(problems))

    def to_json(self) -> str:
        """The settings as JSON, for a worker process's command line."""
        return json.dumps(dataclasses.asdict(self))

    @classmethod
    def from_json(cls, text: str) -> ServeConfig:
        """Settings written by ``to_json`` (unknown keys refused: a version mismatch)."""
        raw: dict[str, Any] = json.loads(text)
        return cls(**raw)
