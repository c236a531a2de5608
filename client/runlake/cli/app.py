"""Typer application; each command is thin over RunlakeClient."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from runlake.cli._output import Output, emit
from runlake.entities import Run, ViewType
from runlake.errors import RunlakeError

app = typer.Typer(
    help="runlake: ML lifecycle on an event-sourced backend.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
experiments = typer.Typer(help="Experiments.", no_args_is_help=True)
runs = typer.Typer(help="Runs.", no_args_is_help=True)
app.add_typer(experiments, name="experiments")
app.add_typer(runs, name="runs")

_state: dict[str, str | None] = {"uri": None}

UriOpt = Annotated[
    str | None,
    typer.Option(
        "--tracking-uri", envvar="RUNLAKE_TRACKING_URI", help="grpc://host:port of the server."
    ),
]
OutOpt = Annotated[Output, typer.Option("--output", "-o", help="table, json or csv.")]


@app.callback()
def _root(tracking_uri: UriOpt = None) -> None:
    _state["uri"] = tracking_uri


def _client() -> Any:
    from runlake.client import RunlakeClient

    return RunlakeClient(_state["uri"])


def _ms(ms: int | None) -> str:
    if not ms:
        return ""
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S")


@app.command()
def server(
    data_dir: Annotated[Path, typer.Option(envvar="RUNLAKE_DATA_DIR")] = Path(".runlake/data"),
    host: Annotated[str, typer.Option(envvar="RUNLAKE_HOST")] = "127.0.0.1",
    port: Annotated[int, typer.Option(envvar="RUNLAKE_PORT")] = 5055,
    http_port: Annotated[int, typer.Option(envvar="RUNLAKE_HTTP_PORT")] = 5056,
) -> None:
    """Start the embedded all-in-one server (gateway, compactor, query service)."""
    from runlake_services.embedded import ServerConfig, run_server

    run_server(ServerConfig(data_dir=data_dir, host=host, port=port, http_port=http_port))


@experiments.command("list")
def experiments_list(
    view: Annotated[str, typer.Option(help="active, deleted or all")] = "active",
    output: OutOpt = Output.table,
) -> None:
    """List experiments."""
    views = {"active": ViewType.ACTIVE_ONLY, "deleted": ViewType.DELETED_ONLY, "all": ViewType.ALL}
    if view not in views:
        raise typer.BadParameter("must be active, deleted or all", param_hint="--view")
    found = _client().search_experiments(view_type=views[view])
    rows = [
        {
            "experiment_id": e.experiment_id,
            "name": e.name,
            "lifecycle_stage": e.lifecycle_stage,
            "artifact_location": e.artifact_location,
            "created": _ms(e.creation_time),
        }
        for e in found
    ]
    emit(
        rows,
        ["experiment_id", "name", "lifecycle_stage", "artifact_location", "created"],
        output,
        "Experiments",
    )


@experiments.command("create")
def experiments_create(name: str) -> None:
    """Create an experiment and print its id."""
    print(_client().create_experiment(name))


def _run_row(r: Run) -> dict[str, Any]:
    row: dict[str, Any] = {
        "run_id": r.info.run_id,
        "run_name": r.info.run_name,
        "experiment_id": r.info.experiment_id,
        "status": r.info.status,
        "start_time": r.info.start_time,
        "end_time": r.info.end_time,
        "lifecycle_stage": r.info.lifecycle_stage,
    }
    row.update({f"metrics.{k}": v for k, v in sorted(r.data.metrics.items())})
    row.update({f"params.{k}": v for k, v in sorted(r.data.params.items())})
    row.update(
        {
            f"tags.{k}": v
            for k, v in sorted(r.data.tags.items())
            if not k.startswith(("mlflow.", "runlake."))
        }
    )
    return row


@runs.command("search")
def runs_search(
    experiment_id: Annotated[list[str] | None, typer.Option("--experiment-id", "-e")] = None,
    filter: Annotated[str, typer.Option("--filter", "-f")] = "",
    order_by: Annotated[list[str] | None, typer.Option("--order-by")] = None,
    max_results: Annotated[int, typer.Option("--max-results")] = 100,
    view: Annotated[str, typer.Option(help="active, deleted or all")] = "active",
    output: OutOpt = Output.table,
) -> None:
    """Search runs with MLflow's filter syntax (plus OR and parentheses)."""
    views = {"active": ViewType.ACTIVE_ONLY, "deleted": ViewType.DELETED_ONLY, "all": ViewType.ALL}
    if view not in views:
        raise typer.BadParameter("must be active, deleted or all", param_hint="--view")
    found = _client().search_runs(
        experiment_id or [], filter, views[view], max_results, order_by or []
    )
    rows = [_run_row(r) for r in found]
    cols: list[str] = []
    for row in rows:
        cols.extend(c for c in row if c not in cols)
    if output is Output.table:
        for row in rows:
            row["start_time"] = _ms(row["start_time"])
            row["end_time"] = _ms(row["end_time"])
        cols = [c for c in cols if c not in ("experiment_id", "lifecycle_stage")]
    emit(rows, cols or ["run_id"], output, f"{len(rows)} runs")


@runs.command("get")
def runs_get(run_id: str, output: OutOpt = Output.table) -> None:
    """Show one run: attributes, latest metrics, params and tags."""
    r = _client().get_run(run_id)
    row = _run_row(r)
    row.update({f"tags.{k}": v for k, v in sorted(r.data.tags.items())})
    if output is Output.table:
        row["start_time"] = _ms(row["start_time"])
        row["end_time"] = _ms(row["end_time"])
        emit(
            [{"field": k, "value": v} for k, v in row.items()],
            ["field", "value"],
            output,
            f"run {run_id}",
        )
    else:
        emit([row], list(row), output)


@runs.command("history")
def runs_history(run_id: str, key: str, output: OutOpt = Output.table) -> None:
    """The full history of one metric of a run."""
    points = _client().get_metric_history(run_id, key)
    rows = [{"step": m.step, "timestamp": m.timestamp, "value": m.value} for m in points]
    emit(rows, ["step", "timestamp", "value"], output, f"{key} ({len(rows)} points)")


@app.command()
def sql(query: str, output: OutOpt = Output.table) -> None:
    """Run one read-only SQL statement over the table views."""
    table = _client().sql(query, arrow=True)
    emit(table.to_pylist(), table.column_names, output)


def main() -> None:
    """Entry point: runlake errors print one clean line (exit 1); usage errors exit 2."""
    try:
        app()
    except RunlakeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(1)
