"""``runlake dev-cluster up|status|down``: the scale-out deployment on this machine.

Kafka, MinIO, the Spark compactor, a query service and gateways, on loopback, in one
directory (runlake_services.cluster.dev). ``up`` returns once every part answers and
prints the tracking URI; the processes keep running until ``down``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:
    from runlake_services.cluster.dev import DevCluster

__all__ = ["dev_cluster"]

dev_cluster = typer.Typer(
    help="Run the scale-out deployment (Kafka, MinIO, Spark compactor, query, gateways) "
    "on this machine, on 127.0.0.1.",
    no_args_is_help=True,
)

_DIR = typer.Option(
    "--dir", help="Where the cluster keeps its data, logs and PIDs (default .runlake/dev-cluster)."
)


def _cluster(directory: Path | None, **settings: Any) -> DevCluster:
    """A new cluster's settings (``up``) or, without settings, the running one's."""
    from runlake_services.cluster.dev import DevCluster, DevClusterConfig

    console = Console(stderr=True)

    def step(msg: str) -> None:
        console.print(f"[dim]…[/dim] {msg}")

    if not settings:
        where = directory.resolve() if directory else DevClusterConfig().dir
        return DevCluster.open(where, on_step=step)
    if directory is not None:
        settings["dir"] = directory.resolve()
    return DevCluster(DevClusterConfig(**settings), on_step=step)


@dev_cluster.command("up")
def up(
    directory: Annotated[Path | None, _DIR] = None,
    gateways: Annotated[int, typer.Option("--gateways", min=1, help="Gateway processes.")] = 1,
    partitions: Annotated[
        int, typer.Option("--partitions", min=1, help="Partitions of new topics.")
    ] = 3,
    port: Annotated[
        int, typer.Option("--port", min=0, max=65535, help="The first gateway's gRPC port.")
    ] = 5055,
    query_port: Annotated[int, typer.Option("--query-port", min=0, max=65535)] = 5057,
    kafka_port: Annotated[int, typer.Option("--kafka-port", min=1, max=65535)] = 9092,
    kafka_controller_port: Annotated[
        int, typer.Option("--kafka-controller-port", min=1, max=65535)
    ] = 9093,
    minio_port: Annotated[int, typer.Option("--minio-port", min=1, max=65535)] = 9000,
    trigger: Annotated[str, typer.Option("--trigger", help="The compactor's trigger.")] = "1s",
) -> None:
    """Start everything, wait until each part answers, print the tracking URI."""
    cluster = _cluster(
        directory,
        gateways=gateways,
        partitions=partitions,
        gateway_port=port,
        query_port=query_port,
        kafka_port=kafka_port,
        kafka_controller_port=kafka_controller_port,
        minio_port=minio_port,
        trigger=trigger,
    )
    state = cluster.up()
    table = Table("part", "pid", "address", "log")
    table.add_row("kafka", "", state.kafka, state.kafka_dir)
    table.add_row("minio", "", state.s3_endpoint, state.minio_dir)
    for part in state.parts:
        table.add_row(part.name, str(part.pid), part.grpc or part.http, part.log)
    Console(stderr=True).print(table)
    typer.echo(f"runlake dev-cluster ready: tracking URI {state.tracking_uri}")
    typer.echo(f"  export RUNLAKE_TRACKING_URI={state.tracking_uri}")


@dev_cluster.command("status")
def status(
    directory: Annotated[Path | None, _DIR] = None,
    output: Annotated[str, typer.Option("--output", help="table or json")] = "table",
) -> None:
    """Whether each part runs and answers; exit code 1 if any does not."""
    report = _cluster(directory).status()
    if output == "json":
        typer.echo(json.dumps(report, indent=2))
    else:
        if not report["parts"]:
            typer.echo("no dev cluster runs here")
        else:
            table = Table("part", "up", "pid", "address")
            for name, part in report["parts"].items():
                addr = part.get("grpc") or part.get("http") or part.get("detail", "")
                table.add_row(name, "yes" if part["up"] else "NO", str(part["pid"] or ""), addr)
            Console().print(table)
            if report.get("tracking_uri"):
                typer.echo(f"tracking URI {report['tracking_uri']}")
    if not report["running"]:
        raise typer.Exit(1)


@dev_cluster.command("restart")
def restart(
    part: Annotated[str, typer.Argument(help="compactor, query, gateway-0, gateway-1 …")],
    directory: Annotated[Path | None, _DIR] = None,
    kill: Annotated[
        bool, typer.Option("--kill", help="SIGKILL it first (a crash) instead of SIGTERM.")
    ] = False,
) -> None:
    """Stop one part and start it again on the same ports (try a fault on purpose)."""
    new = _cluster(directory).restart(part, kill=kill)
    typer.echo(f"restarted {new.name}: pid {new.pid} {new.grpc or new.http}".rstrip())


@dev_cluster.command("down")
def down(directory: Annotated[Path | None, _DIR] = None) -> None:
    """Stop every part this directory's cluster started (by recorded PID)."""
    stopped = _cluster(directory).down()
    typer.echo("stopped: " + (", ".join(stopped) if stopped else "nothing was running"))
