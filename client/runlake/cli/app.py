"""Typer application; each command is thin over RunlakeClient.

Exit codes: 0 success, 1 a runlake error (one clean ``error: field: message`` line on
stderr, no traceback), 2 a usage error (click's own handling: unknown option, bad
``--output`` choice, a malformed ``--tracking-uri``).
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, ParamSpec, TypeVar

import typer

from runlake.cli._output import Output, View, emit
from runlake.entities import Experiment, Run, ViewType
from runlake.errors import RunlakeError

if TYPE_CHECKING:
    from runlake.client import RunlakeClient

P = ParamSpec("P")
R = TypeVar("R")

app = typer.Typer(
    help="runlake: ML lifecycle tracking on an event-sourced backend.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
experiments = typer.Typer(help="List and create experiments.", no_args_is_help=True)
runs = typer.Typer(help="Search and inspect runs.", no_args_is_help=True)
app.add_typer(experiments, name="experiments")
app.add_typer(runs, name="runs")


def _add_late_groups() -> None:
    """Groups defined in their own modules (they import this one for the shared client)."""
    from runlake.cli.registry_cmds import artifacts, models
    from runlake.cli.serve_cmd import serve

    models.command("serve")(serve)
    for group in (artifacts, models):
        for command in group.registered_commands:
            command.callback = clean_errors(command.callback)  # type: ignore[arg-type]
    app.add_typer(artifacts, name="artifacts")
    app.add_typer(models, name="models")

    from runlake.cli.scale_cmds import gateway, query

    app.command("gateway")(clean_errors(gateway))
    app.command("query")(clean_errors(query))

    from runlake.cli.compactor_cmd import compactor

    app.command("compactor")(clean_errors(compactor))

    from runlake.cli.cluster_cmds import dev_cluster

    for command in dev_cluster.registered_commands:
        command.callback = clean_errors(command.callback)  # type: ignore[arg-type]
    app.add_typer(dev_cluster, name="dev-cluster")

    from runlake.cli.sweep_cmd import sweep

    app.command("sweep")(clean_errors(sweep))

    from runlake.cli.score_cmd import score

    app.command("score")(clean_errors(score))


_VIEWS = {
    View.active: ViewType.ACTIVE_ONLY,
    View.deleted: ViewType.DELETED_ONLY,
    View.all: ViewType.ALL,
}


def _check_uri(value: str | None) -> str | None:
    from runlake._uri import validate

    if value is None:
        return None
    try:
        return validate(value)
    except RunlakeError as exc:
        raise typer.BadParameter(str(exc)) from None


UriOpt = Annotated[
    str | None,
    typer.Option(
        "--tracking-uri",
        envvar="RUNLAKE_TRACKING_URI",
        help="grpc://host:port of the server (default grpc://127.0.0.1:5055).",
        callback=_check_uri,
    ),
]
OutOpt = Annotated[Output, typer.Option("--output", "-o", help="table, json or csv.")]
ViewOpt = Annotated[View, typer.Option("--view", help="active, deleted or all.")]


@app.callback()
def _root(ctx: typer.Context, tracking_uri: UriOpt = None) -> None:
    ctx.obj = tracking_uri


def _client(ctx: typer.Context) -> RunlakeClient:
    from runlake.client import RunlakeClient

    root = ctx.find_root()
    return RunlakeClient(root.obj if isinstance(root.obj, str) else None)


def clean_errors(fn: Callable[P, R]) -> Callable[P, R]:
    """Turn a runlake error into one stderr line and exit code 1 (no traceback)."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except RunlakeError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(1) from None

    return wrapper


def _ms(ms: int | None) -> str:
    if not ms:
        return ""
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S")


@app.command()
def server(
    data_dir: Annotated[
        Path, typer.Option("--data-dir", envvar="RUNLAKE_DATA_DIR", help="Where data lives.")
    ] = Path(".runlake/data"),
    host: Annotated[str, typer.Option("--host", envvar="RUNLAKE_HOST")] = "127.0.0.1",
    port: Annotated[
        int, typer.Option("--port", envvar="RUNLAKE_PORT", min=0, max=65535, help="gRPC port.")
    ] = 5055,
    http_port: Annotated[
        int,
        typer.Option("--http-port", envvar="RUNLAKE_HTTP_PORT", min=0, max=65535, help="Health."),
    ] = 5056,
    artifacts_destination: Annotated[
        str | None,
        typer.Option(
            "--artifacts-destination",
            envvar="RUNLAKE_ARTIFACTS_DESTINATION",
            help="file:///dir or s3://bucket/prefix (default: <data dir>/artifacts).",
        ),
    ] = None,
) -> None:
    """Start the embedded all-in-one server (gateway, compactor, query service)."""
    from runlake_services.embedded import ServerConfig, run_server

    try:
        config = ServerConfig(
            data_dir=data_dir,
            host=host,
            port=port,
            http_port=http_port,
            artifacts_destination=artifacts_destination,
        )
    except ValueError as exc:  # pydantic's ValidationError
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    clean_errors(run_server)(config)


@experiments.command("list")
@clean_errors
def experiments_list(
    ctx: typer.Context, view: ViewOpt = View.active, output: OutOpt = Output.table
) -> None:
    """List experiments."""
    client = _client(ctx)
    found: list[Experiment] = []
    token: str | None = None
    while True:
        page = client.search_experiments(view_type=_VIEWS[view], max_results=1000, page_token=token)
        found.extend(page)
        token = page.token
        if not token:
            break
    rows = [
        {
            "experiment_id": e.experiment_id,
            "name": e.name,
            "lifecycle_stage": e.lifecycle_stage,
            "artifact_location": e.artifact_location,
            "creation_time": _ms(e.creation_time) if output is Output.table else e.creation_time,
        }
        for e in found
    ]
    cols = ["experiment_id", "name", "lifecycle_stage", "artifact_location", "creation_time"]
    emit(rows, cols, output, "Experiments")


@experiments.command("create")
@clean_errors
def experiments_create(ctx: typer.Context, name: str) -> None:
    """Create an experiment and print its id."""
    typer.echo(_client(ctx).create_experiment(name))


def _run_row(r: Run, *, all_tags: bool) -> dict[str, Any]:
    row: dict[str, Any] = {
        "run_id": r.info.run_id,
        "run_name": r.info.run_name,
        "experiment_id": r.info.experiment_id,
        "status": r.info.status,
        "user_id": r.info.user_id,
        "start_time": r.info.start_time,
        "end_time": r.info.end_time,
        "lifecycle_stage": r.info.lifecycle_stage,
        "artifact_uri": r.info.artifact_uri,
    }
    row.update({f"metrics.{k}": v for k, v in sorted(r.data.metrics.items())})
    row.update({f"params.{k}": v for k, v in sorted(r.data.params.items())})
    row.update(
        {
            f"tags.{k}": v
            for k, v in sorted(r.data.tags.items())
            if all_tags or not k.startswith(("mlflow.", "runlake."))
        }
    )
    return row


@runs.command("search")
@clean_errors
def runs_search(
    ctx: typer.Context,
    experiment_id: Annotated[
        list[str] | None, typer.Option("--experiment-id", "-e", help="Repeat for several.")
    ] = None,
    filter_string: Annotated[
        str,
        typer.Option("--filter", "-f", help="e.g. \"metrics.loss < 0.5 AND params.lr = '0.1'\""),
    ] = "",
    order_by: Annotated[
        list[str] | None, typer.Option("--order-by", help="e.g. 'metrics.loss ASC'; repeatable.")
    ] = None,
    max_results: Annotated[int, typer.Option("--max-results", min=1, max=50_000)] = 100,
    view: ViewOpt = View.active,
    output: OutOpt = Output.table,
) -> None:
    """Search runs with MLflow's filter syntax (plus OR and parentheses)."""
    found = _client(ctx).search_runs(
        experiment_id or [], filter_string, _VIEWS[view], max_results, order_by or []
    )
    rows = [_run_row(r, all_tags=output is not Output.table) for r in found]
    cols: dict[str, None] = {}
    for row in rows:
        cols.update(dict.fromkeys(row))
    columns = list(cols) or ["run_id"]
    if output is Output.table:
        for row in rows:
            row["start_time"], row["end_time"] = _ms(row["start_time"]), _ms(row["end_time"])
        hidden = {"experiment_id", "lifecycle_stage", "artifact_uri", "user_id"}
        columns = [c for c in columns if c not in hidden]
    emit(rows, columns, output, f"{len(rows)} runs")


@runs.command("get")
@clean_errors
def runs_get(ctx: typer.Context, run_id: str, output: OutOpt = Output.table) -> None:
    """Show one run: attributes, latest metrics, params and tags."""
    row = _run_row(_client(ctx).get_run(run_id), all_tags=True)
    if output is Output.table:
        row["start_time"], row["end_time"] = _ms(row["start_time"]), _ms(row["end_time"])
        emit(
            [{"field": k, "value": v} for k, v in row.items()],
            ["field", "value"],
            output,
            f"run {run_id}",
        )
    else:
        emit([row], list(row), output)


@runs.command("history")
@clean_errors
def runs_history(ctx: typer.Context, run_id: str, key: str, output: OutOpt = Output.table) -> None:
    """The full history of one metric of a run, by step."""
    points = _client(ctx).get_metric_history(run_id, key)
    rows = [{"step": m.step, "timestamp": m.timestamp, "value": m.value} for m in points]
    emit(rows, ["step", "timestamp", "value"], output, f"{key} ({len(rows)} points)")


@app.command()
@clean_errors
def sql(ctx: typer.Context, query: str, output: OutOpt = Output.table) -> None:
    """Run one read-only SQL statement over the table views (runs, metrics, params, …)."""
    table = _client(ctx).sql(query, arrow=True)
    emit(table.to_pylist(), table.column_names, output)


def main() -> None:
    """Entry point. Anything unexpected still ends in one line, not a traceback."""
    try:
        app()
    except RunlakeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        sys.exit(130)
    except Exception as exc:
        print(f"error: {type(exc).__name__}: {exc}", file=sys.stderr)
        sys.exit(1)


_add_late_groups()
