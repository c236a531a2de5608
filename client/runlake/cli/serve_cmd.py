"""``runlake models serve``: the scoring server for one model (MLflow's scoring protocol).

Registered by the CLI under the ``models`` group. Options follow ``mlflow models serve``
(``-m``, ``-h/--host``, ``-p/--port``, ``-w/--workers``) plus the batching and limit
settings of runlake's server; heavy imports happen only when the command runs.
"""

from __future__ import annotations

from typing import Annotated

import typer

from runlake.serving.config import BATCHING_MODES, DEFAULT_MAX_BODY_BYTES, ServeConfig

__all__ = ["serve"]


def _batching(value: str) -> str:
    if value not in BATCHING_MODES:
        raise typer.BadParameter(f"must be one of {', '.join(BATCHING_MODES)}")
    return value


def _tracking_uri(ctx: typer.Context) -> str:
    """``runlake --tracking-uri …`` (or RUNLAKE_TRACKING_URI), for models:/ and runs:/ URIs."""
    root = ctx.find_root().obj
    return root if isinstance(root, str) else ""


def serve(
    ctx: typer.Context,
    model_uri: Annotated[
        str,
        typer.Option(
            "--model-uri",
            "-m",
            help="The model: a local path, file://, runs:/RUN_ID/PATH or models:/NAME@ALIAS.",
        ),
    ],
    host: Annotated[
        str, typer.Option("--host", "-h", help="Address to listen on (loopback by default).")
    ] = "127.0.0.1",
    port: Annotated[
        int, typer.Option("--port", "-p", min=0, max=65535, help="Port (0: any free port).")
    ] = 5000,
    workers: Annotated[
        int,
        typer.Option(
            "--workers",
            "-w",
            envvar="RUNLAKE_MODELS_WORKERS",
            min=1,
            max=256,
            help="Processes sharing the port, each with its own copy of the model.",
        ),
    ] = 1,
    max_batch_rows: Annotated[
        int,
        typer.Option(
            "--max-batch-rows",
            min=1,
            help="Most rows merged from concurrent requests into one predict call.",
        ),
    ] = 1024,
    max_wait_ms: Annotated[
        float,
        typer.Option(
            "--max-wait-ms",
            min=0.0,
            max=1000.0,
            help="Longest a batch waits for requests still being read (never for new ones).",
        ),
    ] = 2.0,
    batching: Annotated[
        str,
        typer.Option(
            "--batching",
            callback=_batching,
            help="auto: merge tabular requests for row-wise flavors (sklearn); on: for any "
            "model with a table input; off: one predict call per request.",
        ),
    ] = "auto",
    max_body_bytes: Annotated[
        int,
        typer.Option(
            "--max-body-bytes", min=1024, help="Larger request bodies are refused with 413."
        ),
    ] = DEFAULT_MAX_BODY_BYTES,
    keep_alive: Annotated[
        float,
        typer.Option("--keep-alive", min=1.0, help="Seconds an idle connection stays open."),
    ] = 5.0,
    graceful_timeout: Annotated[
        float,
        typer.Option(
            "--graceful-timeout",
            min=1.0,
            help="Seconds a stop waits for requests in progress.",
        ),
    ] = 10.0,
    startup_timeout: Annotated[
        float,
        typer.Option(
            "--startup-timeout", min=1.0, help="Seconds allowed for workers to load the model."
        ),
    ] = 600.0,
) -> None:
    """Serve a model over HTTP: POST /invocations, GET /ping, /health, /version.

    Prints a line with "ready" and the URL once requests are accepted; Ctrl-C or SIGTERM
    stops it (and its workers) cleanly.
    """
    try:
        config = ServeConfig(
            model_uri=model_uri,
            host=host,
            port=port,
            workers=workers,
            max_batch_rows=max_batch_rows,
            max_wait_ms=max_wait_ms,
            batching=batching,  # type: ignore[arg-type]  # checked by _batching
            max_body_bytes=max_body_bytes,
            keep_alive_s=keep_alive,
            graceful_timeout_s=graceful_timeout,
            startup_timeout_s=startup_timeout,
            tracking_uri=_tracking_uri(ctx),
        )
    except ValueError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    from runlake.serving import run

    status = run(config)  # runlake errors (bind, model load) reach the CLI's one-line handler
    if status:
        raise typer.Exit(status)
