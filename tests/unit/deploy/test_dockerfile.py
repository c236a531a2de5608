"""The Dockerfile, checked statically (no Docker engine here): hadolint, then what the
scale-out processes need from the image."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from tests.unit.deploy._dockerfile import Stage, stages
from tests.unit.deploy.conftest import DOCKERFILE, ROOT


@pytest.fixture(scope="module")
def dockerfile() -> dict[str, Stage]:
    return stages(DOCKERFILE)


def test_hadolint_finds_nothing() -> None:
    hadolint = Path(sys.executable).parent / "hadolint"
    result = subprocess.run(
        [str(hadolint), "--config", str(ROOT / ".hadolint.yaml"), "--no-color", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_runlake_image_is_the_default_target(dockerfile: dict[str, Stage]) -> None:
    assert list(dockerfile)[-1] == "runlake"  # `docker build .` builds it
    assert {"build", "runlake", "minio"} <= set(dockerfile)


def test_python_satisfies_the_package(dockerfile: dict[str, Stage]) -> None:
    text = DOCKERFILE.read_text()
    m = re.search(r"^ARG PYTHON_IMAGE=python:(\d+)\.(\d+)-slim-(\w+)$", text, flags=re.MULTILINE)
    assert m, "the Python base image is not pinned to a minor version"
    requires = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"]
    minimum = tuple(int(x) for x in re.fullmatch(r">=(\d+)\.(\d+)", requires).groups())  # type: ignore[union-attr]
    assert (int(m.group(1)), int(m.group(2))) >= minimum
    # build and runtime share the base image, so the venv copied between them works
    assert dockerfile["build"].base == dockerfile["runlake"].base == "${PYTHON_IMAGE}"


def test_the_package_is_installed_with_the_scale_extra(dockerfile: dict[str, Stage]) -> None:
    run = dockerfile["build"].run_text()
    assert re.search(r"pip install [^\n]*-e '\.\[scale\]'", run), run
    # the runtime stage carries that venv, at the same path, and puts it first on PATH
    assert "--from=build /app /app" in dockerfile["runlake"].values("COPY")
    assert dockerfile["runlake"].last("ENV").startswith("PATH=/app/.venv/bin:$PATH")


def test_java_17_runtime_for_spark(dockerfile: dict[str, Stage]) -> None:
    run = dockerfile["runlake"].run_text()
    assert re.search(r"apt-get install [^\n]*\bopenjdk-17-jre-headless\b", run), run
    # Maven (with Debian 12's Java 17) only in the build stage
    assert "maven" in dockerfile["build"].run_text() and "maven" not in run


def test_spark_connector_jars_are_resolved_at_build_and_shipped(
    dockerfile: dict[str, Stage],
) -> None:
    build, runtime = dockerfile["build"], dockerfile["runlake"]
    assert build.last("WORKDIR") == "/app"
    assert "scripts/install_spark_jars.sh" in build.run_text()
    # where runlake_services.cluster looks for them: <checkout>/.runlake/jars/spark
    assert "--from=build /state/jars /app/.runlake/jars" in runtime.values("COPY")
    assert "mv .runlake/jars /state/jars" in build.run_text()


def test_runs_as_a_numeric_non_root_user(dockerfile: dict[str, Stage]) -> None:
    for name in ("runlake", "minio"):
        user = dockerfile[name].last("USER")
        uid, _, gid = user.partition(":")
        assert uid.isdigit() and int(uid) != 0, f"{name}: USER {user}"
        assert gid.isdigit() and int(gid) != 0, f"{name}: USER {user}"
    assert "useradd --system --uid 10001" in dockerfile["runlake"].run_text()


def test_the_entrypoint_is_runlake(dockerfile: dict[str, Stage]) -> None:
    entrypoint = dockerfile["runlake"].exec_form("ENTRYPOINT")
    assert entrypoint == ["tini", "--", "runlake"]
    assert "tini" in dockerfile["runlake"].run_text()
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert "runlake" in scripts


def test_the_ports_of_the_processes_are_exposed(dockerfile: dict[str, Stage]) -> None:
    exposed = {int(p) for v in dockerfile["runlake"].values("EXPOSE") for p in v.split()}
    assert exposed == {5055, 5056, 5057, 5058}


def test_minio_is_built_from_the_projects_pin(dockerfile: dict[str, Stage]) -> None:
    script = (ROOT / "scripts" / "install_minio.sh").read_text()
    pin = re.search(r"^MINIO_MODULE_VERSION=(\S+)$", script, flags=re.MULTILINE)
    assert pin
    assert f"MINIO_MODULE_VERSION={pin.group(1)}" in dockerfile["minio-build"].values("ARG")
    assert "github.com/minio/minio@${MINIO_MODULE_VERSION}" in dockerfile["minio-build"].run_text()
    assert dockerfile["minio"].exec_form("ENTRYPOINT") == ["minio"]


def test_no_secret_is_baked_into_the_image(dockerfile: dict[str, Stage]) -> None:
    for stage in dockerfile.values():
        for instruction, value in stage.instructions:
            if instruction in ("ENV", "ARG"):
                assert not re.search(r"(SECRET|ACCESS_KEY|PASSWORD)", value), value


def test_the_build_context_leaves_local_state_out() -> None:
    ignored = set((ROOT / ".dockerignore").read_text().split())
    assert {".git", ".venv", ".runlake", ".env", "client/runlake/v1"} <= ignored
