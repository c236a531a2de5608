"""docker-compose.yml, loaded by the Compose Specification's reference loader: the services
the code needs, their images, ports, environment, start order and command lines."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlparse

import pytest
import yaml
from runlake_services.compactor.spark import parse_trigger
from runlake_services.eventlog.kafka import KafkaSettings

from tests.unit.deploy._cli import grpc_target, parse_cli
from tests.unit.deploy._dockerfile import stages
from tests.unit.deploy.conftest import COMPOSE_FILE, DOCKERFILE, ROOT, Compose

pytestmark = pytest.mark.timeout(1800)  # the first run builds the loader (Go)

RUNLAKE_SERVICES = ("gateway", "gateway-replica", "query", "compactor")
S3_KEYS = ("RUNLAKE_S3_ACCESS_KEY", "RUNLAKE_S3_SECRET_KEY")


def services(model: dict[str, Any]) -> dict[str, dict[str, Any]]:
    svcs: dict[str, dict[str, Any]] = model["services"]
    return svcs


def command(model: dict[str, Any], name: str) -> list[str]:
    cmd: list[str] = services(model)[name]["command"]
    return cmd


def test_the_file_holds_every_service_of_the_topology(compose_model: dict[str, Any]) -> None:
    assert set(services(compose_model)) == {
        "kafka",
        "kafka-init",
        "minio",
        "minio-init",
        *RUNLAKE_SERVICES,
    }
    assert compose_model["name"] == "runlake"


def test_the_loader_really_validates(compose: Compose) -> None:
    """A misspelt key, a malformed port or a dangling depends_on is refused, naming it: the
    model the other tests read is one that Docker Compose itself would accept."""
    text = COMPOSE_FILE.read_text()
    typo = text.replace("      start_period: 20s\n", "      start_periood: 20s\n", 1)
    assert typo != text
    assert "start_periood" in compose.error(typo)
    bad_port = text.replace('"127.0.0.1:5055:5055"', '"127.0.0.1:50555055"', 1)
    assert bad_port != text
    assert "50555055" in compose.error(bad_port)
    dangling = text.replace(
        "      kafka:\n        condition: service_healthy\n",
        "      kafak:\n        condition: service_healthy\n",
        1,
    )
    assert dangling != text
    assert 'undefined service "kafak"' in compose.error(dangling)


def test_runlake_processes_run_the_runlake_image_built_here(compose_model: dict[str, Any]) -> None:
    dockerfile = stages(DOCKERFILE)
    for name in (*RUNLAKE_SERVICES, "minio-init"):
        svc = services(compose_model)[name]
        assert svc["image"] == "runlake:dev", name
        assert svc["build"]["target"] == "runlake", name
        assert svc["build"]["dockerfile"] == "Dockerfile", name
        # the image's own init (tini) reaps the JVM's children: no second one from Compose
        assert not svc.get("init"), name
    assert dockerfile["runlake"].exec_form("ENTRYPOINT")[:2] == ["tini", "--"]
    minio = services(compose_model)["minio"]
    assert minio["build"]["target"] == "minio" and "minio" in dockerfile


def test_kafka_is_the_version_the_project_pins(compose_model: dict[str, Any]) -> None:
    pom = (ROOT / "scripts" / "jars" / "kafka" / "pom.xml").read_text()
    pinned = re.search(r"<kafka\.version>([^<]+)</kafka\.version>", pom)
    assert pinned is not None
    for name in ("kafka", "kafka-init"):
        assert services(compose_model)[name]["image"] == f"apache/kafka:{pinned.group(1)}"


def test_published_ports_are_loopback_only(compose_model: dict[str, Any]) -> None:
    published: dict[str, set[int]] = {}
    for name, svc in services(compose_model).items():
        for port in svc.get("ports", []):
            assert port["host_ip"] == "127.0.0.1", f"{name} publishes {port} beyond loopback"
            assert int(port["published"]) == port["target"], port
            published.setdefault(name, set()).add(port["target"])
    # clients: the gateway (gRPC + health); tools: Kafka's host listener, MinIO's S3 API
    assert published == {"gateway": {5055, 5056}, "kafka": {9094}, "minio": {9000}}


def test_the_gateway_command_lines_match_the_cli(compose_model: dict[str, Any]) -> None:
    svcs = services(compose_model)
    coordinator = parse_cli(command(compose_model, "gateway"))
    replica = parse_cli(command(compose_model, "gateway-replica"))
    for parsed in (coordinator, replica):
        log = KafkaSettings.from_uri(parsed.option("--log"))
        assert (log.bootstrap_servers, log.topic, log.registry_topic) == (
            "kafka:9092",
            "runlake.events",
            "runlake.registry",
        )
        assert parsed.option("--artifacts-destination") == "s3://runlake/artifacts"
        assert parsed.option("--host") == "0.0.0.0"  # inside the container's network
        assert parsed.option("--port") == 5055
        assert int(parsed.option("--http-port")) == 5056
        host, port = grpc_target(parsed.option("--query-upstream"))
        assert host in svcs and port == int(
            parse_cli(command(compose_model, host)).option("--port")
        )
    assert coordinator.option("--coordinator") is True
    assert coordinator.option("--catalog").startswith("/var/lib/runlake/")
    assert replica.option("--coordinator") is False
    host, port = grpc_target(replica.option("--coordinator-upstream"))
    assert (host, port) == ("gateway", coordinator.option("--port"))


def test_the_coordinator_catalog_lives_on_a_volume(compose_model: dict[str, Any]) -> None:
    coordinator = parse_cli(command(compose_model, "gateway"))
    mounts = services(compose_model)["gateway"]["volumes"]
    assert any(
        m["type"] == "volume" and coordinator.option("--catalog").startswith(m["target"] + "/")
        for m in mounts
    ), mounts


def test_the_query_and_compactor_command_lines_match_the_cli(
    compose_model: dict[str, Any],
) -> None:
    query = parse_cli(command(compose_model, "query"))
    assert query.option("--store") == "s3://runlake/tables"
    assert (query.option("--host"), int(query.option("--port"))) == ("0.0.0.0", 5057)
    assert int(query.option("--http-port")) == 5058

    compactor = parse_cli(command(compose_model, "compactor"))
    assert compactor.option("--kafka") == "kafka:9092"
    assert compactor.option("--tables") == "s3a://runlake/tables"
    assert compactor.option("--checkpoint") == "s3a://runlake/checkpoints/compactor"
    assert compactor.option("--topics") == "runlake.events,runlake.registry"
    assert parse_trigger(compactor.option("--trigger")) == "1 seconds"
    assert compactor.option("--master") == "local[2]"
    # the tables the query service reads are the ones the compactor writes
    assert urlparse(compactor.option("--tables"))[1:] == urlparse(query.option("--store"))[1:]


def test_every_address_in_a_command_line_is_a_service_port(
    compose_model: dict[str, Any],
) -> None:
    svcs = services(compose_model)
    kafka_listeners = svcs["kafka"]["environment"]["KAFKA_ADVERTISED_LISTENERS"]
    assert "PLAINTEXT://kafka:9092" in kafka_listeners.split(",")
    for name in RUNLAKE_SERVICES:
        env = svcs[name]["environment"]
        endpoint = urlparse(env["RUNLAKE_S3_ENDPOINT_URL"])
        assert (endpoint.hostname, endpoint.port) == ("minio", 9000), name
    minio_cmd = stages(DOCKERFILE)["minio"].exec_form("CMD")  # the image's own command
    assert svcs["minio"].get("command") is None
    assert minio_cmd[minio_cmd.index("--address") + 1] == ":9000"


def test_s3_credentials_come_from_the_environment(compose: Compose) -> None:
    model = compose.load(
        {"RUNLAKE_S3_ACCESS_KEY": "AK-from-env", "RUNLAKE_S3_SECRET_KEY": "s3cr3t-from-env"}
    )
    svcs = services(model)
    for name in (*RUNLAKE_SERVICES, "minio-init"):
        env = svcs[name]["environment"]
        assert env["RUNLAKE_S3_ACCESS_KEY"] == "AK-from-env", name
        assert env["RUNLAKE_S3_SECRET_KEY"] == "s3cr3t-from-env", name
        assert env["RUNLAKE_S3_REGION"] == "us-east-1"
    minio = svcs["minio"]["environment"]
    assert (minio["MINIO_ROOT_USER"], minio["MINIO_ROOT_PASSWORD"]) == (
        "AK-from-env",
        "s3cr3t-from-env",
    )
    for name, svc in svcs.items():
        assert "s3cr3t-from-env" not in " ".join(svc.get("command") or []), name


def test_no_literal_secret_in_the_file() -> None:
    """Every key and password is a ${VARIABLE:-default} reference; the defaults are the
    documented dev-only placeholders, and the file says so."""
    raw = yaml.safe_load(COMPOSE_FILE.read_text())
    text = COMPOSE_FILE.read_text()
    assert "DEV-ONLY" in text
    refs: list[str] = []
    for svc in raw["services"].values():
        env = svc.get("environment") or {}
        for key in (*S3_KEYS, "MINIO_ROOT_USER", "MINIO_ROOT_PASSWORD"):
            if key in env:
                refs.append(env[key])
    assert len(refs) == 2 * 6  # 5 runlake services + minio-init share the anchor; minio
    for value in refs:
        m = re.fullmatch(
            r"\$\{(RUNLAKE_S3_ACCESS_KEY|RUNLAKE_S3_SECRET_KEY):-runlake-dev[\w-]*\}", value
        )
        assert m, f"not a variable reference with a dev placeholder: {value!r}"


def test_start_order_waits_for_readiness(compose_model: dict[str, Any]) -> None:
    svcs = services(compose_model)

    def deps(name: str) -> dict[str, str]:
        return {k: v["condition"] for k, v in svcs[name].get("depends_on", {}).items()}

    assert deps("kafka-init") == {"kafka": "service_healthy"}
    assert deps("minio-init") == {"minio": "service_healthy"}
    ready = {
        "kafka-init": "service_completed_successfully",
        "minio-init": "service_completed_successfully",
    }
    assert deps("compactor") == ready
    assert deps("gateway") == {**ready, "query": "service_started"}
    assert deps("gateway-replica") == {"gateway": "service_healthy"}
    for name in svcs:
        for dep, condition in deps(name).items():
            assert dep in svcs, f"{name} depends on {dep}, which is no service"
            if condition == "service_healthy":
                assert "healthcheck" in svcs[dep], f"{name} waits for {dep}, which has no check"
    for name in ("kafka-init", "minio-init"):
        assert svcs[name]["restart"] == "no"


@pytest.mark.parametrize("name", ["gateway", "gateway-replica", "query"])
def test_health_checks_ask_the_http_port(compose_model: dict[str, Any], name: str) -> None:
    svc = services(compose_model)[name]
    http_port = int(parse_cli(command(compose_model, name)).option("--http-port"))
    test = svc["healthcheck"]["test"]
    assert test[0] == "CMD" and test[1] == "python", test
    assert f"http://127.0.0.1:{http_port}/health" in test[-1]


def test_kafka_topics_get_the_partition_setting_and_large_messages(compose: Compose) -> None:
    producer_max = KafkaSettings.from_uri("kafka://k:9092/t").max_message_bytes
    for env, partitions in (({}, "4"), ({"RUNLAKE_KAFKA_PARTITIONS": "16"}, "16")):
        svcs = services(compose.load(env))
        script = svcs["kafka-init"]["command"][0]
        assert f'--partitions "{partitions}"' in script
        assert svcs["kafka"]["environment"]["KAFKA_NUM_PARTITIONS"] == partitions
        for topic in ("runlake.events", "runlake.registry"):
            assert topic in script
        assert "--if-not-exists" in script and "retention.ms=-1" in script
        m = re.search(r"max\.message\.bytes=(\d+)", script)
        assert m and int(m.group(1)) >= producer_max
        broker = svcs["kafka"]["environment"]
        assert int(broker["KAFKA_MESSAGE_MAX_BYTES"]) >= producer_max
        assert broker["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"
        assert broker["KAFKA_PROCESS_ROLES"] == "broker,controller"  # KRaft


def test_at_most_one_compactor(compose_model: dict[str, Any]) -> None:
    """A fixed container_name: Compose refuses `--scale compactor=2` outright."""
    svc = services(compose_model)["compactor"]
    assert svc["container_name"] == "runlake-compactor"
    assert svc.get("deploy", {}).get("replicas", 1) == 1
    assert svc["stop_grace_period"] == "1m0s"
