"""Model serving: a REST scoring server speaking MLflow's protocol (``runlake models serve``).

>>> from runlake.serving import ServeConfig, run
>>> run(ServeConfig("path/to/model", port=5000, workers=2))  # doctest: +SKIP

``POST /invocations`` takes ``dataframe_split``, ``dataframe_records``, ``instances`` or
``inputs`` JSON (with ``params``), CSV or Parquet and answers ``{"predictions": ...}`` as
MLflow 3 does; ``GET /ping``, ``/health`` and ``/version`` too. Concurrent tabular requests
are merged into one ``predict`` call when the model scores rows independently.
docs/decisions/0009-model-serving.md explains the choices and the measurements.

Only the configuration is imported eagerly; the server (uvicorn, uvloop) loads on ``run``.
"""

from __future__ import annotations

from runlake.serving.config import ServeConfig

__all__ = ["ServeConfig", "run"]


def run(config: ServeConfig) -> int:
    """Serve until Ctrl-C or SIGTERM; the exit status (see ``runlake.serving.server.run``)."""
    from runlake.serving.server import run as run_server

    return run_server(config)
