"""docker-compose.yml and the chart describe the same topology: the same roles, each
running the same runlake command on the same ports, wired to the same other roles."""

from __future__ import annotations

from typing import Any

import pytest

from tests.unit.deploy._cli import grpc_target, parse_cli
from tests.unit.deploy._k8s import container, selects, workloads
from tests.unit.deploy.conftest import Manifest

pytestmark = pytest.mark.timeout(1800)  # the first run builds the tools (Go)

Role = tuple[str, int | None, int | None, tuple[str, ...]]


def _role(args: list[str]) -> str:
    parsed = parse_cli(args)
    if parsed.command == "gateway":
        return "coordinator" if parsed.option("--coordinator") else "gateway"
    return parsed.command


def _shape(args: list[str], upstream_role: dict[str, str]) -> Role:
    """(command, --port, --http-port, roles it connects to) of one process."""
    parsed = parse_cli(args)
    port = http = None
    if parsed.command != "compactor":
        port, http = int(parsed.option("--port")), int(parsed.option("--http-port"))
    upstreams = []
    for option in ("--query-upstream", "--coordinator-upstream"):
        if option in args:
            host, _ = grpc_target(parsed.option(option))
            upstreams.append(upstream_role[host])
    return parsed.command, port, http, tuple(upstreams)


def test_compose_and_helm_run_the_same_processes(
    compose_model: dict[str, Any], chart: list[Manifest]
) -> None:
    compose_args = {
        name: svc["command"]
        for name, svc in compose_model["services"].items()
        if (svc.get("build") or {}).get("target") == "runlake"
        and svc.get("command")
        and svc["command"][0] in ("gateway", "query", "compactor")
    }
    compose_roles = {name: _role(args) for name, args in compose_args.items()}
    compose_shapes = {
        compose_roles[name]: _shape(args, compose_roles) for name, args in compose_args.items()
    }

    w = workloads(chart)
    helm_roles = {name: _role(container(m)["args"]) for name, m in w.items()}
    # a Service name stands for the role of the pods it selects (one role each)
    service_roles: dict[str, str] = {}
    for svc in (m for m in chart if m["kind"] == "Service"):
        roles = {helm_roles[n] for n, m in w.items() if selects(svc, m)}
        if len(roles) == 1:
            service_roles[svc["metadata"]["name"]] = roles.pop()
    helm_shapes = {
        helm_roles[name]: _shape(container(m)["args"], service_roles) for name, m in w.items()
    }

    assert set(compose_shapes) == {"coordinator", "gateway", "query", "compactor"}
    assert compose_shapes == helm_shapes
    assert helm_shapes["gateway"][3] == ("query", "coordinator")
