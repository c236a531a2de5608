"""Reading rendered Kubernetes manifests: workloads, their one container, Service selectors."""

from __future__ import annotations

from typing import Any

from tests.unit.deploy._cli import Parsed, parse_cli

__all__ = ["Manifest", "cli", "container", "ports", "selects", "workloads"]

Manifest = dict[str, Any]
WORKLOADS = {"Deployment", "StatefulSet"}


def workloads(manifests: list[Manifest]) -> dict[str, Manifest]:
    return {m["metadata"]["name"]: m for m in manifests if m["kind"] in WORKLOADS}


def container(workload: Manifest) -> dict[str, Any]:
    containers = workload["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1, workload["metadata"]["name"]
    c: dict[str, Any] = containers[0]
    return c


def cli(workload: Manifest) -> Parsed:
    c = container(workload)
    assert "command" not in c, "the image's entrypoint (runlake) must run"
    return parse_cli(c["args"])


def ports(c: dict[str, Any]) -> dict[str, int]:
    return {p["name"]: p["containerPort"] for p in c.get("ports", [])}


def selects(service: Manifest, workload: Manifest) -> bool:
    labels = workload["spec"]["template"]["metadata"]["labels"]
    return all(labels.get(k) == v for k, v in service["spec"]["selector"].items())
