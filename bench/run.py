"""`python -m bench.run [--quick] [--no-mlflow] [--only a,b]`: measure and print the figures."""

from __future__ import annotations

import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from bench import mlflow_env, search_data, workloads
from bench.servers import MlflowServer, RssSampler, start_runlake

console = Console()
app = typer.Typer(add_completion=False)


@dataclass
class Row:
    name: str
    runlake: float
    unit: str
    mlflow: float | None = None
    higher_is_better: bool = True
    target: str = ""
    met: bool | None = None
    note: str = ""

    def ratio(self) -> str:
        if not self.mlflow or not self.runlake:
            return ""
        r = self.runlake / self.mlflow if self.higher_is_better else self.mlflow / self.runlake
        return f"{r:,.1f}x"


def _mlflow_best(script: str, per: int, workers: int, tmp: Path) -> tuple[float, str]:
    """Wall seconds of MLflow's faster configuration (default 4 workers or --workers 1)."""
    results = {}
    for w in (4, 1):
        server = MlflowServer(tmp / f"mlflow-{script.__hash__()}-{workers}-{w}", w).start()
        try:
            results[w] = workloads.fan_out(script, server.uri, per, workers, mlflow=True)
        finally:
            server.stop()
    best = min(results, key=lambda k: results[k])
    detail = ", ".join(f"--workers {w}: {workers * per / s:,.0f}/s" for w, s in results.items())
    return results[best], detail


def ingest(quick: bool, use_mlflow: bool, tmp: Path) -> list[Row]:
    rows = []
    per = 20_000 if quick else 200_000
    server, _ = start_runlake(tmp / "ingest")
    try:
        for workers in (1, 4, 16):
            with RssSampler(server.proc.pid) as rss:  # type: ignore[union-attr]
                wall = workloads.fan_out(
                    workloads.RUNLAKE_INGEST, server.uri, per, workers, mlflow=False
                )
            rate = workers * per / wall
            row = Row(
                f"ingest, {workers} processes",
                rate,
                "points/s",
                note=f"server RSS max {max(rss.samples):.0f} MB",
            )
            if use_mlflow:
                mper = min(per, 5_000)
                mwall, detail = _mlflow_best(workloads.MLFLOW_INGEST, mper, workers, tmp)
                row.mlflow = workers * mper / mwall
                row.note += f"; MLflow log_batch(1000): {detail}"
            if workers == 16:
                row.target = "≥ 300,000/s and ≥ 50x MLflow"
                row.met = rate >= 300_000 and (row.mlflow is None or rate >= 50 * row.mlflow)
            rows.append(row)
    finally:
        server.stop()
    return rows


def caller_cost(quick: bool, use_mlflow: bool, tmp: Path) -> list[Row]:
    import runlake

    server, _ = start_runlake(tmp / "caller")
    try:
        runlake.set_tracking_uri(server.uri)
        runlake.start_run()
        n = 50_000 if quick else 200_000
        times = []
        clock = time.perf_counter_ns
        log = runlake.log_metric
        for i in range(n):
            t = clock()
            log("m", 0.5, step=i)
            times.append(clock() - t)
        runlake.end_run()
    finally:
        server.stop()
    times.sort()
    med, p99 = times[len(times) // 2] / 1000, times[int(len(times) * 0.99)] / 1000
    return [
        Row(
            "log_metric caller cost (median)",
            med,
            "µs",
            higher_is_better=False,
            target="≤ 5 µs",
            met=med <= 5,
            note=f"p99 {p99:.1f} µs",
        )
    ]


def many_runs(quick: bool, use_mlflow: bool, tmp: Path) -> list[Row]:
    total = 400 if quick else 2_000
    per = total // 16
    server, _ = start_runlake(tmp / "many")
    try:
        wall = workloads.fan_out(workloads.RUNLAKE_MANY_RUNS, server.uri, per, 16, mlflow=False)
    finally:
        server.stop()
    row = Row(
        f"many runs ({total}, 16 processes)", 16 * per / wall, "runs/s", target="≥ 50x MLflow"
    )
    if use_mlflow:
        mper = max(1, min(per, 10))
        mwall, detail = _mlflow_best(workloads.MLFLOW_MANY_RUNS, mper, 16, tmp)
        row.mlflow = 16 * mper / mwall
        row.met = row.runlake >= 50 * row.mlflow
        row.note = f"MLflow: {detail.replace('/s', ' runs/s')}"
    return [row]


def freshness(quick: bool, use_mlflow: bool, tmp: Path) -> list[Row]:
    import runlake
    from runlake._uri import channel
    from runlake.v1 import query_pb2, query_pb2_grpc

    server, _ = start_runlake(tmp / "fresh")
    try:
        client = runlake.RunlakeClient(server.uri)
        stub = query_pb2_grpc.QueryStub(channel(server.uri))
        rid = client.create_run("0").info.run_id
        client.flush()
        lags = []
        for i in range(40 if quick else 200):
            client.set_tag(rid, "fresh", f"v{i}")
            client.flush()
            t0 = time.perf_counter()
            req = query_pb2.SearchRunsRequest(filter=f"tags.fresh = 'v{i}'")  # no position token
            while not stub.SearchRuns(req).runs:
                time.sleep(0.001)
            lags.append((time.perf_counter() - t0) * 1000)
    finally:
        server.stop()
    lags.sort()
    p50, p99 = statistics.median(lags), lags[int(len(lags) * 0.99) - 1]
    return [
        Row(
            "freshness p99 (ack → searchable)",
            p99,
            "ms",
            higher_is_better=False,
            target="p99 ≤ 1,000 ms",
            met=p99 <= 1000,
            note=f"p50 {p50:.0f} ms",
        )
    ]


def search(quick: bool, use_mlflow: bool, tmp: Path) -> list[Row]:
    import runlake

    rows = []
    for n in (10_000, 100_000) if quick else (10_000, 100_000, 1_000_000):
        data = tmp / f"search{n}"
        search_data.load_runlake(data, n)
        server, ready = start_runlake(data)
        try:
            client = runlake.RunlakeClient(server.uri)
            times = []
            for _ in range(20):
                t = time.perf_counter()
                found = client.search_runs(
                    ["0"], search_data.FILTER, order_by=search_data.ORDER, max_results=100
                )
                times.append(time.perf_counter() - t)
            assert len(found) == 100
        finally:
            server.stop()
        row = Row(
            f"search, {n:,} runs (p50)",
            statistics.median(times) * 1000,
            "ms",
            higher_is_better=False,
            note=f"ready in {ready:.1f} s with the index built",
        )
        if n == 10_000 and use_mlflow:
            ms = MlflowServer(tmp / "mlflow-search", 1).start()
            ms.stop()
            search_data.load_mlflow(ms.root / "mlflow.db", n)
            for w in (1,):
                ms = MlflowServer(ms.root, w).start()
                try:
                    out = subprocess.run(
                        [mlflow_env.python(), "-c", search_data.MLFLOW_SEARCH, ms.uri, "5"],
                        capture_output=True,
                        text=True,
                        env=mlflow_env.ENV,
                        check=True,
                    )
                finally:
                    ms.stop()
            row.mlflow = workloads.elapsed(out.stdout) * 1000
            row.target, row.met = "≥ 20x MLflow", row.mlflow >= 20 * row.runlake
        if n == 1_000_000:
            row.target, row.met = "≤ 100 ms", row.runlake <= 100
        rows.append(row)
    return rows


def history(quick: bool, use_mlflow: bool, tmp: Path) -> list[Row]:
    import runlake

    rows = []
    server, _ = start_runlake(tmp / "history")
    try:
        client = runlake.RunlakeClient(server.uri)
        for n in (100_000,) if quick else (100_000, 1_000_000):
            rid = client.create_run("0").info.run_id
            for i in range(n):
                client.log_metric(rid, "h", float(i), 1, i)
            client.flush()
            times = []
            for _ in range(3):
                t = time.perf_counter()
                pts = client.get_metric_history(rid, "h")
                times.append(time.perf_counter() - t)
            assert len(pts) == n
            row = Row(
                f"metric history, {n:,} points",
                statistics.median(times) * 1000,
                "ms",
                higher_is_better=False,
            )
            if n == 100_000 and use_mlflow:
                ms = MlflowServer(tmp / "mlflow-history", 1).start()
                try:
                    out = subprocess.run(
                        [mlflow_env.python(), "-c", search_data.MLFLOW_HISTORY, ms.uri, str(n)],
                        capture_output=True,
                        text=True,
                        env=mlflow_env.ENV,
                        check=True,
                    )
                finally:
                    ms.stop()
                row.mlflow = workloads.elapsed(out.stdout) * 1000
                row.target, row.met = "≥ 50x MLflow", row.mlflow >= 50 * row.runlake
            if n == 1_000_000:
                row.target, row.met = "≤ 1,000 ms", row.runlake <= 1000
            rows.append(row)
    finally:
        server.stop()
    return rows


def startup(quick: bool, use_mlflow: bool, tmp: Path) -> list[Row]:
    server, ready = start_runlake(tmp / "startup")
    server.stop()
    return [
        Row(
            "server ready (empty data dir)",
            ready,
            "s",
            higher_is_better=False,
            target="≤ 3 s",
            met=ready <= 3,
        )
    ]


BENCHMARKS: dict[str, Callable[[bool, bool, Path], list[Row]]] = {
    "startup": startup,
    "caller_cost": caller_cost,
    "ingest": ingest,
    "many_runs": many_runs,
    "freshness": freshness,
    "search": search,
    "history": history,
}


@app.command()
def main(
    quick: Annotated[bool, typer.Option(help="small sizes: a smoke run of a few minutes")] = False,
    mlflow: Annotated[bool, typer.Option(help="measure MLflow in the same run")] = True,
    only: Annotated[str, typer.Option(help="comma-separated names")] = "",
) -> None:
    names = [n for n in only.split(",") if n] or list(BENCHMARKS)
    rows: list[Row] = []
    try:
        with tempfile.TemporaryDirectory(prefix="runlake-bench-") as tmp:
            for name in names:
                console.print(f"[bold]running {name}[/bold]")
                rows += BENCHMARKS[name](quick, mlflow, Path(tmp))
    finally:
        _print(rows, quick)


def _print(rows: list[Row], quick: bool) -> None:
    table = Table(title="runlake benchmarks" + (" (quick)" if quick else ""))
    for col in ("benchmark", "runlake", "MLflow", "ratio", "target", "met", "notes"):
        table.add_column(col, overflow="fold")
    for r in rows:
        table.add_row(
            r.name,
            f"{r.runlake:,.1f} {r.unit}",
            f"{r.mlflow:,.1f} {r.unit}" if r.mlflow else "",
            r.ratio(),
            r.target,
            {True: "yes", False: "NO", None: ""}[r.met],
            r.note,
        )
    console.print(table)


if __name__ == "__main__":
    app()
