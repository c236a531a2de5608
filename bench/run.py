"""``python -m bench.run [--only NAME,...] [--quick] [--mlflow/--no-mlflow]``: print the figures.

Every benchmark prints runlake's figure, MLflow's measured in the same run on the same
machine (where the issue asks for a comparison), their ratio, the issue's target and
whether it was met. Timings are only printed, never asserted.
"""

from __future__ import annotations

import json
import platform
import shutil
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import psutil
import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from bench import (
    artifacts,
    caller_cost,
    freshness,
    history,
    ingest,
    many_runs,
    scale_out,
    scoring,
    search,
    server,
    serving,
    sweeps,
)
from bench.common import Ctx, Row

console = Console(width=None if sys.stdout.isatty() else 150)
app = typer.Typer(add_completion=False, help=__doc__)

BENCHMARKS: dict[str, Callable[[Ctx], list[Row]]] = {
    ingest.NAME: ingest.run,
    caller_cost.NAME: caller_cost.run,
    many_runs.NAME: many_runs.run,
    freshness.NAME: freshness.run,
    search.NAME: search.run,
    history.NAME: history.run,
    server.NAME: server.run,
    serving.NAME: serving.run,
    artifacts.NAME: artifacts.run,
    scale_out.NAME: scale_out.run,
    sweeps.NAME: sweeps.run,
    scoring.NAME: scoring.run,
}


def _fmt(value: float | None, unit: str) -> str:
    if value is None:
        return "—"
    if value >= 1000:
        return f"{value:,.0f} {unit}"
    if value >= 10:
        return f"{value:,.1f} {unit}"
    return f"{value:,.3g} {unit}"


def _met(met: bool | None) -> str:
    return {True: "[green]yes[/green]", False: "[red]NO[/red]", None: ""}[met]


def _table(rows: list[Row], title: str) -> Table:
    table = Table(title=title, show_lines=True)
    table.add_column("benchmark")
    table.add_column("runlake", justify="right")
    table.add_column("MLflow best", justify="right")
    table.add_column("ratio", justify="right")
    table.add_column("target")
    table.add_column("met")
    for r in rows:
        ratio = r.ratio()
        table.add_row(
            r.name,
            _fmt(r.runlake, r.unit),
            _fmt(r.mlflow, r.unit),
            "" if ratio is None else f"{ratio:,.1f}x",
            r.target,
            _met(r.met),
        )
    return table


def _markdown(rows: list[Row], header: str) -> str:
    lines = [
        header,
        "",
        "| benchmark | runlake | MLflow best | ratio | target | met |",
        "|---|---:|---:|---:|---|---|",
    ]
    for r in rows:
        ratio = r.ratio()
        met = {True: "yes", False: "**no**", None: ""}[r.met]
        lines.append(
            f"| {r.name} | {_fmt(r.runlake, r.unit)} | {_fmt(r.mlflow, r.unit)} | "
            f"{'' if ratio is None else f'{ratio:,.1f}x'} | {r.target} | {met} |"
        )
    lines += ["", "Details:", ""]
    for r in rows:
        for d in r.detail:
            lines.append(f"- {r.name}: {d}")
    return "\n".join(lines) + "\n"


def _machine() -> str:
    mem = psutil.virtual_memory().total / 2**30
    load = ", ".join(f"{x:.1f}" for x in psutil.getloadavg())
    return (
        f"{platform.system()} {platform.machine()}, {psutil.cpu_count()} CPUs, "
        f"{mem:.0f} GiB RAM, Python {platform.python_version()}, load average {load}"
    )


@app.command()
def main(
    only: Annotated[
        str, typer.Option(help=f"comma-separated benchmarks: {', '.join(BENCHMARKS)}")
    ] = "",
    quick: Annotated[bool, typer.Option(help="small sizes: a smoke run of a few minutes")] = False,
    mlflow: Annotated[bool, typer.Option(help="measure MLflow in the same run")] = True,
    flood_seconds: Annotated[
        float | None,
        typer.Option(help="duration of the server RSS flood (default 600 s, quick 20 s)"),
    ] = None,
    markdown: Annotated[
        Path | None, typer.Option(help="also write the results as Markdown to this file")
    ] = None,
    json_out: Annotated[
        Path | None, typer.Option("--json", help="also write the results as JSON to this file")
    ] = None,
    keep: Annotated[bool, typer.Option(help="keep the servers' data directories")] = False,
) -> None:
    names = [n.strip() for n in only.split(",") if n.strip()] or list(BENCHMARKS)
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown:
        raise typer.BadParameter(f"unknown: {', '.join(unknown)}; known: {', '.join(BENCHMARKS)}")
    flood = flood_seconds if flood_seconds is not None else (20.0 if quick else 600.0)
    tmp = Path(tempfile.mkdtemp(prefix="runlake-bench-"))
    rows: list[Row] = []
    failed: list[str] = []
    began = time.monotonic()
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    console.print(f"[bold]runlake benchmarks[/bold] {'(quick) ' if quick else ''}— {_machine()}")
    try:
        with Progress(
            SpinnerColumn(),
            TextColumn("[bold]{task.fields[bench]}[/bold]"),
            BarColumn(),
            TextColumn("{task.completed}/{task.total}"),
            TimeElapsedColumn(),
            TextColumn("{task.description}"),
            console=console,
            transient=False,
        ) as progress:
            task = progress.add_task("", total=len(names), bench="")

            def say(msg: str) -> None:
                progress.update(task, description=msg)
                progress.console.log(msg)

            ctx = Ctx(quick=quick, mlflow=mlflow, tmp=tmp, flood_seconds=flood, say=say)
            for name in names:
                progress.update(task, bench=name, description="")
                t0 = time.monotonic()
                try:
                    rows += BENCHMARKS[name](ctx)
                except Exception:
                    failed.append(name)
                    progress.console.print(f"[red]{name} failed[/red]")
                    progress.console.print(traceback.format_exc())
                progress.console.log(f"{name} took {time.monotonic() - t0:.0f} s")
                progress.advance(task)
    finally:
        if not keep:
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            console.print(f"data kept in {tmp}")
    title = "runlake benchmarks" + (" (quick sizes: smoke)" if quick else "")
    console.print(_table(rows, title))
    for r in rows:
        for d in r.detail:
            console.print(f"  [dim]{r.name}:[/dim] {d}")
    took = time.monotonic() - began
    console.print(f"took {took:.0f} s" + (f"; failed: {', '.join(failed)}" if failed else ""))
    header = (
        f"### {stamp}, `python -m bench.run{' --quick' if quick else ''}"
        f"{'' if mlflow else ' --no-mlflow'}{' --only ' + only if only else ''}`\n\n"
        f"{_machine()}; took {took:.0f} s" + (f"; failed: {', '.join(failed)}" if failed else "")
    )
    if markdown is not None:
        markdown.write_text(_markdown(rows, header))
    if json_out is not None:
        json_out.write_text(
            json.dumps(
                {"header": header, "quick": quick, "rows": [r.as_dict() for r in rows]}, indent=1
            )
        )
    if failed:
        raise typer.Exit(1)


if __name__ == "__main__":
    app()
