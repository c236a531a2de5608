"""The deployment files, loaded by the real tools: Helm for helm/, the Compose
Specification's reference loader (compose-go, as in `docker compose config`) for
docker-compose.yml.

Neither needs a cluster or a Docker engine. Both tools are built from the Go module proxy by
scripts/install_deploy_tools.sh on first use (a minute or two each, then cached in
.runlake/deploy-tools), so a fresh clone runs these tests with no manual step.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from runlake_services.cluster.scripts import repo_root, run_script

ROOT = repo_root()
CHART = ROOT / "helm"
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"

#: The smallest values a real install needs: an external Kafka and S3, keys in a Secret.
BASE_VALUES: dict[str, Any] = {
    "kafka": {"bootstrapServers": "kafka-0.kafka.svc:9092,kafka-1.kafka.svc:9092"},
    "s3": {"endpoint": "http://minio.minio.svc:9000", "existingSecret": "runlake-s3"},
}

Manifest = dict[str, Any]


@pytest.fixture(scope="session")
def deploy_tools() -> Path:
    """The folder with `helm` and `compose-config` (built on first use)."""
    result = run_script("install_deploy_tools.sh", [], timeout_s=1800)
    return Path(result.stdout.strip().splitlines()[-1])


def _merge(base: Mapping[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


@dataclass
class Helm:
    """`helm` over the repository's chart, with values given as dicts (written to a file)."""

    binary: Path
    workdir: Path

    def run(self, args: Sequence[str]) -> subprocess.CompletedProcess[str]:
        env = {
            "PATH": os.environ.get("PATH", ""),
            # keep Helm's own config, cache and data out of the user's home
            "HELM_CONFIG_HOME": str(self.workdir / "config"),
            "HELM_CACHE_HOME": str(self.workdir / "cache"),
            "HELM_DATA_HOME": str(self.workdir / "data"),
        }
        return subprocess.run(
            [str(self.binary), *args], capture_output=True, text=True, env=env, timeout=120
        )

    def _values_file(self, values: Mapping[str, Any]) -> Path:
        path = self.workdir / f"values-{abs(hash(json.dumps(values, sort_keys=True)))}.yaml"
        path.write_text(yaml.safe_dump(dict(values)))
        return path

    def template_result(
        self, values: Mapping[str, Any] | None = None, *, base: bool = True
    ) -> subprocess.CompletedProcess[str]:
        merged = _merge(BASE_VALUES if base else {}, values or {})
        return self.run(
            [
                "template",
                "rl",
                str(CHART),
                "--namespace",
                "ml",
                "-f",
                str(self._values_file(merged)),
            ]
        )

    def template(self, values: Mapping[str, Any] | None = None) -> list[Manifest]:
        """Render the chart (BASE_VALUES + ``values``); the manifests, hooks included."""
        result = self.template_result(values)
        assert result.returncode == 0, result.stderr
        return [doc for doc in yaml.safe_load_all(result.stdout) if doc]

    def template_error(self, values: Mapping[str, Any] | None = None, *, base: bool = True) -> str:
        """Render ``values`` that must be refused; Helm's error message."""
        result = self.template_result(values, base=base)
        assert result.returncode != 0, f"rendered although it should not:\n{result.stdout}"
        return result.stderr


@pytest.fixture(scope="session")
def helm(deploy_tools: Path, tmp_path_factory: pytest.TempPathFactory) -> Helm:
    return Helm(deploy_tools / "helm", tmp_path_factory.mktemp("helm"))


@dataclass
class Compose:
    """docker-compose.yml loaded as `docker compose config` would: schema-validated,
    interpolated from the given environment, normalized (ports, depends_on, ...)."""

    binary: Path
    workdir: Path

    def load_result(
        self, env: Mapping[str, str] | None = None, *, text: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        # A folder of its own: the loader reads .env and resolves build contexts there, so
        # a developer's .env beside the real file cannot change what the tests see.
        folder = self.workdir / f"project-{abs(hash((text, tuple(sorted((env or {}).items())))))}"
        folder.mkdir(exist_ok=True)
        (folder / "docker-compose.yml").write_text(text or COMPOSE_FILE.read_text())
        shutil.copy(DOCKERFILE, folder / "Dockerfile")
        return subprocess.run(
            [str(self.binary), "docker-compose.yml"],
            capture_output=True,
            text=True,
            cwd=folder,
            env={"PATH": os.environ.get("PATH", ""), **(env or {})},
            timeout=60,
        )

    def load(self, env: Mapping[str, str] | None = None) -> dict[str, Any]:
        result = self.load_result(env)
        assert result.returncode == 0, result.stderr
        model: dict[str, Any] = json.loads(result.stdout)
        return model

    def error(self, text: str) -> str:
        result = self.load_result(text=text)
        assert result.returncode != 0, "the loader accepted it"
        return result.stderr


@pytest.fixture(scope="session")
def compose(deploy_tools: Path, tmp_path_factory: pytest.TempPathFactory) -> Compose:
    return Compose(deploy_tools / "compose-config", tmp_path_factory.mktemp("compose"))


@pytest.fixture(scope="session")
def compose_model(compose: Compose) -> dict[str, Any]:
    """The model with no RUNLAKE_* variables set: the file's own defaults."""
    return compose.load()


@pytest.fixture(scope="session")
def chart(helm: Helm) -> list[Manifest]:
    """The chart rendered with BASE_VALUES only (the defaults)."""
    return helm.template()


def find(manifests: list[Manifest], kind: str, name: str) -> Manifest:
    """The one manifest of ``kind`` named ``name``."""
    found = [m for m in manifests if m["kind"] == kind and m["metadata"]["name"] == name]
    assert len(found) == 1, f"{kind}/{name}: {len(found)} found in {names(manifests)}"
    return found[0]


def names(manifests: list[Manifest]) -> list[str]:
    return sorted(f"{m['kind']}/{m['metadata']['name']}" for m in manifests)
