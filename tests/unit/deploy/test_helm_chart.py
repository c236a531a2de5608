"""The chart in helm/, linted and rendered by the real `helm` with default and non-default
values: the kinds and counts of the topology, its Services and ports, probes, resources,
the command lines (parsed by the CLI itself) and where the S3 keys come from."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlparse

import pytest
import yaml
from runlake_services.compactor.spark import parse_trigger
from runlake_services.eventlog.kafka import KafkaSettings

from tests.unit.deploy._cli import grpc_target
from tests.unit.deploy._dockerfile import stages
from tests.unit.deploy._k8s import cli, container, ports, selects, workloads
from tests.unit.deploy.conftest import BASE_VALUES, CHART, DOCKERFILE, Helm, Manifest, find, names

pytestmark = pytest.mark.timeout(1800)  # the first run builds helm (Go)

COORDINATOR = "rl-runlake-gateway-coordinator"
GATEWAY = "rl-runlake-gateway"
QUERY = "rl-runlake-query"
COMPACTOR = "rl-runlake-compactor"


def test_lint_is_clean(helm: Helm, tmp_path: Any) -> None:
    values = tmp_path / "values.yaml"
    values.write_text(yaml.safe_dump(BASE_VALUES))
    result = helm.run(["lint", "--strict", str(CHART), "-f", str(values)])
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_default_topology(chart: list[Manifest]) -> None:
    assert names(chart) == sorted(
        [
            "ServiceAccount/rl-runlake",
            f"Deployment/{COORDINATOR}",
            f"Deployment/{GATEWAY}",
            f"Deployment/{QUERY}",
            f"StatefulSet/{COMPACTOR}",
            f"Service/{COORDINATOR}",
            f"Service/{GATEWAY}",
            f"Service/{QUERY}",
            f"Service/{COMPACTOR}",
            "Job/rl-runlake-kafka-topics",
        ]
    )
    w = workloads(chart)
    assert w[COORDINATOR]["spec"]["replicas"] == 1
    assert w[GATEWAY]["spec"]["replicas"] == 2
    assert w[QUERY]["spec"]["replicas"] == 2
    assert w[COMPACTOR]["spec"]["replicas"] == 1


def test_exactly_one_coordinator_and_at_most_one_compactor(helm: Helm) -> None:
    """Whatever the values, one coordinator that never overlaps its successor, and one
    compactor in a StatefulSet (no second pod while the first may run)."""
    for values in ({}, {"gateway": {"replicas": 7}, "query": {"replicas": 5}}):
        w = workloads(helm.template(values))
        gateways = [m for m in w.values() if container(m)["args"][0] == "gateway"]
        coordinators = [m for m in gateways if cli(m).option("--coordinator") is True]
        assert [m["metadata"]["name"] for m in coordinators] == [COORDINATOR]
        assert coordinators[0]["spec"]["replicas"] == 1
        assert coordinators[0]["spec"]["strategy"] == {"type": "Recreate"}
        compactors = [m for m in w.values() if container(m)["args"][0] == "compactor"]
        assert [m["kind"] for m in compactors] == ["StatefulSet"]
        spec = compactors[0]["spec"]
        assert spec["replicas"] == 1 and spec["podManagementPolicy"] == "OrderedReady"
        assert spec["serviceName"] == COMPACTOR
    assert workloads(helm.template({"gateway": {"replicas": 7}}))[GATEWAY]["spec"]["replicas"] == 7


@pytest.mark.parametrize(
    ("values", "field"),
    [
        ({"compactor": {"replicas": 2}}, "at '/compactor': additional properties 'replicas'"),
        (
            {"gateway": {"coordinator": {"replicas": 2}}},
            "at '/gateway/coordinator': additional properties 'replicas'",
        ),
        ({"kafka": {"topcis": {}}}, "at '/kafka': additional properties 'topcis'"),
        ({"gateway": {"replicas": -1}}, "/gateway/replicas"),
        ({"kafka": {"topics": {"partitions": 0}}}, "/kafka/topics/partitions"),
        ({"kafka": {"bootstrapServers": "kafka://broker:9092"}}, "/kafka/bootstrapServers"),
        ({"compactor": {"trigger": "fast"}}, "/compactor/trigger"),
        ({"compactor": {"driverMemory": "2 GB"}}, "/compactor/driverMemory"),
        ({"s3": {"endpoint": "minio:9000"}}, "/s3/endpoint"),
        ({"s3": {"bucket": "Bad_Bucket"}}, "/s3/bucket"),
        ({"image": {"pullPolicy": "Sometimes"}}, "/image/pullPolicy"),
    ],
)
def test_bad_values_are_refused_naming_the_field(
    helm: Helm, values: dict[str, Any], field: str
) -> None:
    error = helm.template_error(values)
    assert "values don't meet the specifications of the schema" in error
    assert field in error, error


@pytest.mark.parametrize(
    ("values", "field"),
    [
        (
            {"s3": {"endpoint": "http://minio:9000", "existingSecret": "s"}},
            "kafka.bootstrapServers",
        ),
        ({"kafka": {"bootstrapServers": "k:9092"}, "s3": {"existingSecret": "s"}}, "s3.endpoint"),
        (
            {"kafka": {"bootstrapServers": "k:9092"}, "s3": {"endpoint": "http://m:9000"}},
            "s3.existingSecret",
        ),
    ],
)
def test_missing_settings_are_refused_naming_them(
    helm: Helm, values: dict[str, Any], field: str
) -> None:
    assert field in helm.template_error(values, base=False)


def test_gateway_command_lines_match_the_cli(chart: list[Manifest]) -> None:
    w = workloads(chart)
    services = {m["metadata"]["name"]: m for m in chart if m["kind"] == "Service"}
    for name in (COORDINATOR, GATEWAY):
        parsed = cli(w[name])
        log = KafkaSettings.from_uri(parsed.option("--log"))
        assert log.bootstrap_servers == BASE_VALUES["kafka"]["bootstrapServers"]
        assert (log.topic, log.registry_topic) == ("runlake.events", "runlake.registry")
        assert parsed.option("--artifacts-destination") == "s3://runlake/artifacts"
        assert parsed.option("--host") == "0.0.0.0"
        assert parsed.option("--timeout-ms") == 5000 and parsed.option("--workers") == 16
        c = container(w[name])
        assert ports(c) == {
            "grpc": parsed.option("--port"),
            "http": int(parsed.option("--http-port")),
        }
        # --query-upstream is the query Service, on a port that reaches the query pods
        host, port = grpc_target(parsed.option("--query-upstream"))
        assert _service_reaches(services[host], port, w[QUERY], "grpc")
    replica = cli(w[GATEWAY])
    assert replica.option("--coordinator") is False
    host, port = grpc_target(replica.option("--coordinator-upstream"))
    assert _service_reaches(services[host], port, w[COORDINATOR], "grpc")
    assert not selects(services[host], w[GATEWAY]), "the coordinator Service must pick it alone"
    assert "--coordinator-upstream" not in container(w[COORDINATOR])["args"]
    assert cli(w[COORDINATOR]).option("--catalog") is None  # default: rebuilt at start


def test_query_and_compactor_command_lines_match_the_cli(chart: list[Manifest]) -> None:
    w = workloads(chart)
    query = cli(w[QUERY])
    assert query.option("--store") == "s3://runlake/tables"
    assert query.option("--host") == "0.0.0.0"
    assert ports(container(w[QUERY])) == {
        "grpc": int(query.option("--port")),
        "http": int(query.option("--http-port")),
    }
    compactor = cli(w[COMPACTOR])
    assert compactor.option("--kafka") == BASE_VALUES["kafka"]["bootstrapServers"]
    assert compactor.option("--topics") == "runlake.events,runlake.registry"  # order is for life
    assert compactor.option("--tables") == "s3a://runlake/tables"
    assert compactor.option("--checkpoint") == "s3a://runlake/checkpoints/compactor"
    assert parse_trigger(compactor.option("--trigger")) == "1 seconds"
    assert compactor.option("--max-offsets") == 20000
    assert compactor.option("--optimize-every") == 100
    assert compactor.option("--master") == "local[2]"
    assert compactor.option("--driver-memory") == "2g"
    assert urlparse(compactor.option("--tables"))[1:] == urlparse(query.option("--store"))[1:]


def test_non_default_values_reach_every_process(helm: Helm) -> None:
    manifests = helm.template(
        {
            "image": {"repository": "registry.example/ml/runlake", "tag": "1.2.3"},
            "kafka": {
                "bootstrapServers": "b-1.msk:9092",
                "topics": {"events": "ml.events", "registry": "ml.registry", "partitions": 48},
            },
            "s3": {
                "endpoint": "https://s3.eu-west-1.amazonaws.com",
                "region": "eu-west-1",
                "bucket": "ml-lake",
                "tablesPrefix": "prod/tables",
                "checkpointPrefix": "prod/checkpoints/compactor",
                "artifactsPrefix": "prod/artifacts",
            },
            "gateway": {
                "replicas": 4,
                "timeoutMs": 2000,
                "coordinator": {"persistence": {"enabled": True}},
            },
            "query": {"replicas": 6, "service": {"grpcPort": 6000}},
            "compactor": {"trigger": "500ms", "maxOffsetsPerTrigger": 5000, "master": "local[8]"},
        }
    )
    w = workloads(manifests)
    assert (w[GATEWAY]["spec"]["replicas"], w[QUERY]["spec"]["replicas"]) == (4, 6)
    assert w[COORDINATOR]["spec"]["replicas"] == 1
    for m in w.values():
        assert container(m)["image"] == "registry.example/ml/runlake:1.2.3"
        env = {e["name"]: e.get("value") for e in container(m)["env"]}
        assert env["RUNLAKE_S3_ENDPOINT_URL"] == "https://s3.eu-west-1.amazonaws.com"
        assert env["RUNLAKE_S3_REGION"] == "eu-west-1"
    for name in (COORDINATOR, GATEWAY):
        parsed = cli(w[name])
        log = KafkaSettings.from_uri(parsed.option("--log"))
        assert (log.bootstrap_servers, log.topic, log.registry_topic) == (
            "b-1.msk:9092",
            "ml.events",
            "ml.registry",
        )
        assert parsed.option("--artifacts-destination") == "s3://ml-lake/prod/artifacts"
        assert parsed.option("--timeout-ms") == 2000
        host, port = grpc_target(parsed.option("--query-upstream"))
        assert port == 6000
        assert _service_reaches(find(manifests, "Service", host), port, w[QUERY], "grpc")
    assert cli(w[QUERY]).option("--store") == "s3://ml-lake/prod/tables"
    compactor = cli(w[COMPACTOR])
    assert compactor.option("--topics") == "ml.events,ml.registry"
    assert compactor.option("--tables") == "s3a://ml-lake/prod/tables"
    assert compactor.option("--checkpoint") == "s3a://ml-lake/prod/checkpoints/compactor"
    assert parse_trigger(compactor.option("--trigger")) == "500 milliseconds"
    assert compactor.option("--max-offsets") == 5000
    assert compactor.option("--master") == "local[8]"
    # the coordinator keeps its catalog on a claim, mounted where --catalog points
    catalog = cli(w[COORDINATOR]).option("--catalog")
    pod = w[COORDINATOR]["spec"]["template"]["spec"]
    mount = next(m for m in container(w[COORDINATOR])["volumeMounts"] if m["name"] == "catalog")
    assert catalog.startswith(mount["mountPath"] + "/")
    volume = next(v for v in pod["volumes"] if v["name"] == "catalog")
    claim = find(manifests, "PersistentVolumeClaim", volume["persistentVolumeClaim"]["claimName"])
    assert claim["spec"]["accessModes"] == ["ReadWriteOnce"]
    job = find(manifests, "Job", "rl-runlake-kafka-topics")
    env = {e["name"]: e["value"] for e in container(job)["env"]}
    assert (env["EVENTS_TOPIC"], env["REGISTRY_TOPIC"], env["PARTITIONS"]) == (
        "ml.events",
        "ml.registry",
        "48",
    )


def test_no_replica_gateways_leaves_the_coordinator_serving(helm: Helm) -> None:
    manifests = helm.template({"gateway": {"replicas": 0}})
    w = workloads(manifests)
    assert GATEWAY not in w and COORDINATOR in w
    assert selects(find(manifests, "Service", GATEWAY), w[COORDINATOR])


def test_the_gateway_service_is_the_one_address_of_every_gateway(chart: list[Manifest]) -> None:
    w = workloads(chart)
    service = find(chart, "Service", GATEWAY)
    assert selects(service, w[COORDINATOR]) and selects(service, w[GATEWAY])
    assert not selects(service, w[QUERY]) and not selects(service, w[COMPACTOR])
    assert {p["name"]: p["port"] for p in service["spec"]["ports"]} == {"grpc": 5055, "http": 5056}
    query_service = find(chart, "Service", QUERY)
    assert [n for n, m in w.items() if selects(query_service, m)] == [QUERY]
    # every Service targets ports its pods name
    for svc in (m for m in chart if m["kind"] == "Service"):
        for target in (m for m in w.values() if selects(svc, m)):
            for p in svc["spec"].get("ports", []):
                assert p["targetPort"] in ports(container(target)), (svc["metadata"]["name"], p)
    headless = find(chart, "Service", COMPACTOR)
    assert headless["spec"]["clusterIP"] == "None" and "ports" not in headless["spec"]


def test_probes_ask_the_http_port(chart: list[Manifest]) -> None:
    w = workloads(chart)
    for name in (COORDINATOR, GATEWAY, QUERY):
        c = container(w[name])
        http = int(cli(w[name]).option("--http-port"))
        assert ports(c)["http"] == http
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            assert c[probe]["httpGet"] == {"path": "/health", "port": "http"}, (name, probe)
        # a gateway catches up with the topics (bounded at 60 s) before it answers ready
        startup = c["startupProbe"]
        assert startup["periodSeconds"] * startup["failureThreshold"] >= 120
    compactor = container(w[COMPACTOR])
    assert not {"startupProbe", "readinessProbe", "livenessProbe"} & set(compactor)


def test_every_container_has_requests_and_a_memory_limit(chart: list[Manifest]) -> None:
    for name, m in workloads(chart).items():
        resources = container(m)["resources"]
        assert {"cpu", "memory"} <= set(resources["requests"]), name
        assert "memory" in resources["limits"], name
    compactor = container(workloads(chart)[COMPACTOR])
    limit = _bytes(compactor["resources"]["limits"]["memory"])
    heap = _bytes(cli(workloads(chart)[COMPACTOR]).option("--driver-memory"))
    assert limit >= 1.5 * heap, "the Spark driver's heap must leave room for the JVM and Python"


def test_s3_keys_come_from_an_existing_secret(chart: list[Manifest]) -> None:
    assert not [m for m in chart if m["kind"] == "Secret"]
    for name, m in workloads(chart).items():
        env = {e["name"]: e for e in container(m)["env"]}
        for key in ("RUNLAKE_S3_ACCESS_KEY", "RUNLAKE_S3_SECRET_KEY"):
            assert env[key]["valueFrom"]["secretKeyRef"] == {"name": "runlake-s3", "key": key}, name
            assert "value" not in env[key]


def test_keys_given_as_values_live_only_in_a_secret(helm: Helm) -> None:
    secret_value = "wJalrXUtnFEMI-K7MDENG-bPxRfiCY"
    manifests = helm.template(
        {"s3": {"existingSecret": "", "accessKey": "AKIAEXAMPLE", "secretKey": secret_value}}
    )
    secrets = [m for m in manifests if m["kind"] == "Secret"]
    assert len(secrets) == 1
    secret = secrets[0]
    assert secret["stringData"] == {
        "RUNLAKE_S3_ACCESS_KEY": "AKIAEXAMPLE",
        "RUNLAKE_S3_SECRET_KEY": secret_value,
    }
    for m in manifests:
        if m is not secret:
            assert secret_value not in yaml.safe_dump(m), f"{m['kind']}/{m['metadata']['name']}"
    for name, m in workloads(manifests).items():
        env = {e["name"]: e for e in container(m)["env"]}
        ref = env["RUNLAKE_S3_SECRET_KEY"]["valueFrom"]["secretKeyRef"]
        assert ref["name"] == secret["metadata"]["name"], name
        # a changed key rolls the pods
        assert "checksum/s3-secret" in m["spec"]["template"]["metadata"]["annotations"], name


def test_pods_run_as_the_images_non_root_user(chart: list[Manifest]) -> None:
    uid, _, gid = stages(DOCKERFILE)["runlake"].last("USER").partition(":")
    for name, m in workloads(chart).items():
        pod = m["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True, name
        assert (pod["securityContext"]["runAsUser"], pod["securityContext"]["runAsGroup"]) == (
            int(uid),
            int(gid),
        )
        assert pod["automountServiceAccountToken"] is False, name
        sc = container(m)["securityContext"]
        assert sc["allowPrivilegeEscalation"] is False and sc["capabilities"]["drop"] == ["ALL"]


def test_the_topics_job_runs_before_the_gateways(chart: list[Manifest]) -> None:
    job = find(chart, "Job", "rl-runlake-kafka-topics")
    assert job["metadata"]["annotations"]["helm.sh/hook"] == "pre-install,pre-upgrade"
    c = container(job)
    env = {e["name"]: e["value"] for e in c["env"]}
    assert env["BOOTSTRAP"] == BASE_VALUES["kafka"]["bootstrapServers"]
    assert (env["PARTITIONS"], env["REPLICATION_FACTOR"], env["MIN_INSYNC_REPLICAS"]) == (
        "12",
        "3",
        "2",
    )
    script = c["args"][0]
    assert "--if-not-exists" in script and "retention.ms=-1" in script
    m = re.search(r"max\.message\.bytes=(\d+)", script)
    producer_max = KafkaSettings.from_uri("kafka://k:9092/t").max_message_bytes
    assert m and int(m.group(1)) >= producer_max
    assert c["image"] == "apache/kafka:4.4.0"


def test_topics_managed_elsewhere_need_no_job(helm: Helm) -> None:
    manifests = helm.template({"kafka": {"topics": {"create": False}}})
    assert not [m for m in manifests if m["kind"] == "Job"]


def _service_reaches(service: Manifest, port: int, workload: Manifest, port_name: str) -> bool:
    """``service`` selects ``workload``'s pods and maps ``port`` to their named port."""
    if not selects(service, workload):
        return False
    return any(p["port"] == port and p["targetPort"] == port_name for p in service["spec"]["ports"])


def _bytes(quantity: str) -> float:
    """A Kubernetes quantity (4Gi) or a JVM size (2g) in bytes."""
    m = re.fullmatch(r"(\d+(?:\.\d+)?)([KMGT]i?|[kmgt])?", str(quantity))
    assert m, quantity
    unit = (m.group(2) or "").lower().rstrip("i")
    return float(m.group(1)) * 1024 ** " kmgt".index(unit or " ")


def test_spark_settings_reach_the_compactor_as_conf_flags(helm: Helm) -> None:
    manifests = helm.template(
        {
            "compactor": {
                "master": "k8s://https://kubernetes.default.svc",
                "sparkConf": {
                    "spark.executor.instances": 4,
                    "spark.kubernetes.container.image": "runlake:0.1.0",
                },
            }
        }
    )
    compactor = cli(workloads(manifests)[COMPACTOR])
    assert compactor.option("--master") == "k8s://https://kubernetes.default.svc"
    assert sorted(compactor.option("--conf")) == [
        "spark.executor.instances=4",
        "spark.kubernetes.container.image=runlake:0.1.0",
    ]
    error = helm.template_error({"compactor": {"sparkConf": {"fs.s3a.secret.key": "x"}}})
    # only spark.* settings (S3 keys stay in the Secret); Helm's message names the key
    assert "'fs.s3a.secret.key' does not match pattern" in error
