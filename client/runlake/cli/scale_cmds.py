"""Commands of the scale-out deployment: ``runlake gateway`` and ``runlake query``.

(``runlake compactor`` is in compactor_cmd.py, ``runlake dev-cluster`` in cluster_cmds.py.)
Registered by the CLI (``app.command("gateway")(gateway)``); runnable alone as well for
tests and process managers: ``python -c "from runlake.cli.scale_cmds import main; main()"``.
The server side is imported only when the command runs, so ``runlake --help`` stays fast.
"""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlencode, urlparse

import typer

from runlake.errors import RunlakeError

__all__ = ["gateway", "main", "query"]


def _with_options(log: str, options: dict[str, str]) -> str:
    """``log`` with ``options`` added to its query (options given in the URI win)."""
    if not options:
        return log
    parsed = urlparse(log)
    if parsed.scheme != "kafka":
        raise typer.BadParameter(
            f"--catalog, --timeout-ms and --no-coordinator apply to kafka:// logs, not {log!r}"
        )
    present = {kv.split("=", 1)[0] for kv in parsed.query.split("&") if kv}
    extra = urlencode({k: v for k, v in options.items() if k not in present})
    query = "&".join(q for q in (parsed.query, extra) if q)
    return parsed._replace(query=query).geturl()


def gateway(
    log: Annotated[
        str,
        typer.Option(
            "--log",
            envvar="RUNLAKE_LOG_URI",
            help="The event log: kafka://HOST:PORT/TOPIC (registry events go to "
            "runlake.registry; ?registry_topic=… to change) or sqlite:///PATH.",
        ),
    ],
    artifacts_destination: Annotated[
        str,
        typer.Option(
            "--artifacts-destination",
            envvar="RUNLAKE_ARTIFACTS_DESTINATION",
            help="Where artifact bytes go: s3://bucket/prefix or file:///dir.",
        ),
    ],
    host: Annotated[
        str, typer.Option("--host", help="Address to listen on (loopback by default).")
    ] = "127.0.0.1",
    port: Annotated[
        int, typer.Option("--port", min=0, max=65535, help="gRPC port (0: any free port).")
    ] = 5055,
    catalog: Annotated[
        str | None,
        typer.Option(
            "--catalog",
            help="This gateway's local catalog file (kept across restarts: it resumes "
            "tailing where it stopped). Default: a temporary one, rebuilt from the topics.",
        ),
    ] = None,
    coordinator: Annotated[
        bool,
        typer.Option(
            "--coordinator/--no-coordinator",
            help="Whether this gateway takes registry writes and experiment creation. "
            "Exactly one gateway of a deployment must.",
        ),
    ] = True,
    timeout_ms: Annotated[
        int,
        typer.Option(
            "--timeout-ms",
            min=100,
            help="Longest a write waits for Kafka's acknowledgement; then UNAVAILABLE.",
        ),
    ] = 5_000,
    workers: Annotated[int, typer.Option("--workers", min=1, help="gRPC worker threads.")] = 16,
    http_port: Annotated[
        int | None,
        typer.Option("--http-port", min=0, max=65535, help="Serve GET /health here (0: any)."),
    ] = None,
    query_upstream: Annotated[
        str | None,
        typer.Option(
            "--query-upstream",
            envvar="RUNLAKE_QUERY_UPSTREAM",
            help="grpc://HOST:PORT of a query service: this gateway then serves reads too, "
            "so clients need only its address.",
        ),
    ] = None,
    coordinator_upstream: Annotated[
        str | None,
        typer.Option(
            "--coordinator-upstream",
            envvar="RUNLAKE_COORDINATOR_UPSTREAM",
            help="grpc://HOST:PORT of the coordinator gateway; a --no-coordinator gateway "
            "forwards registry writes and experiment creation there.",
        ),
    ] = None,
) -> None:
    """Run a gateway (ingestion + artifacts) over a shared event log; no compactor.

    Prints a line with "ready" and its grpc:// address once it has caught up with the log
    and accepts writes; Ctrl-C or SIGTERM stops it cleanly.
    """
    options: dict[str, str] = {}
    if catalog is not None:
        options["catalog"] = catalog
    if not coordinator:
        options["coordinator"] = "false"
    if timeout_ms != 5_000:
        options["timeout_ms"] = str(timeout_ms)
    log_uri = _with_options(log, options)

    from runlake_services.gateway.process import GatewayConfig, run_gateway

    try:
        run_gateway(
            GatewayConfig(
                log_uri=log_uri,
                artifacts_destination=artifacts_destination,
                host=host,
                port=port,
                grpc_workers=workers,
                http_port=http_port,
                query_upstream=query_upstream,
                coordinator_upstream=coordinator_upstream,
            )
        )
    except RunlakeError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None


def query(
    store: Annotated[
        str,
        typer.Option(
            "--store",
            envvar="RUNLAKE_TABLES_URI",
            help="Where the compactor writes the Delta tables: s3://BUCKET/PREFIX (s3a:// "
            "too) or file:///DIR. S3 endpoint and keys come from RUNLAKE_S3_* variables.",
        ),
    ],
    host: Annotated[
        str, typer.Option("--host", help="Address to listen on (loopback by default).")
    ] = "127.0.0.1",
    port: Annotated[
        int, typer.Option("--port", min=0, max=65535, help="gRPC port (0: any free port).")
    ] = 5057,
    http_port: Annotated[
        int | None,
        typer.Option("--http-port", min=0, max=65535, help="Serve GET /health here (0: any)."),
    ] = None,
    refresh_ms: Annotated[
        int,
        typer.Option("--refresh-ms", min=10, help="How often to look for newly folded data."),
    ] = 200,
    workers: Annotated[int, typer.Option("--workers", min=1, help="gRPC worker threads.")] = 16,
) -> None:
    """Serve the query API and SQL over the Delta tables the compactor writes (stateless).

    Prints a line with "ready" and its grpc:// address once its index is loaded; reads
    carrying a write's position wait until the compactor has folded it.
    """
    from runlake_services.query.process import QueryConfig, run_query

    try:
        run_query(
            QueryConfig(
                store=store,
                host=host,
                port=port,
                http_port=http_port,
                refresh_s=refresh_ms / 1000,
                grpc_workers=workers,
            )
        )
    except RunlakeError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None


def main() -> None:
    """``runlake gateway`` alone (what the CLI registers as a subcommand)."""
    typer.run(gateway)
