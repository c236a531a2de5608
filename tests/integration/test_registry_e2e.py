"""Model registry and models end to end through a real server: log, register, promote, load."""

from __future__ import annotations

import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import runlake
from runlake.errors import AlreadyExists, InvalidArgument, NotFound
from runlake_services.embedded.process import ServerProcess

pytestmark = pytest.mark.e2e


@pytest.fixture
def client(server: ServerProcess, monkeypatch: pytest.MonkeyPatch) -> runlake.RunlakeClient:
    monkeypatch.setenv("RUNLAKE_TRACKING_URI", server.uri)
    runlake.set_tracking_uri(server.uri)
    return runlake.RunlakeClient(server.uri)


def _frame() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame(rng.normal(size=(40, 3)), columns=["a", "b", "c"])


def test_log_register_promote_alias_and_load(client: runlake.RunlakeClient, tmp_path: Path) -> None:
    from sklearn.linear_model import LinearRegression

    x = _frame()
    y = x["a"] * 2 + x["b"]
    model = LinearRegression().fit(x, y)
    with runlake.start_run() as run:
        # the interface, word for word: log_model(model, "model", input_example=…)
        info = runlake.sklearn.log_model(
            model, "model", input_example=x.head(3), registered_model_name="e2e-reg"
        )
    assert info.model_uri == f"runs:/{run.info.run_id}/model"
    assert info.registered_model_version == 1
    names = {f.path for f in client.list_artifacts(run.info.run_id, "model")}
    assert {"model/MLmodel", "model/model.pkl"} <= names

    v2 = runlake.register_model(info.model_uri, "e2e-reg")
    assert v2.version == 2 and v2.run_id == run.info.run_id and v2.source == info.model_uri
    client.transition_model_version_stage("e2e-reg", 1, "Production")
    client.transition_model_version_stage(
        "e2e-reg", 2, "production", archive_existing_versions=True
    )
    assert client.get_model_version("e2e-reg", 1).current_stage == "Archived"
    assert client.get_model_version("e2e-reg", 2).current_stage == "Production"
    client.set_registered_model_alias("e2e-reg", "champion", 1)
    assert client.get_model_version_by_alias("e2e-reg", "champion").version == 1
    client.set_registered_model_alias("e2e-reg", "champion", 2)  # moves
    assert client.get_model_version_by_alias("e2e-reg", "champion").version == 2
    assert client.get_registered_model("e2e-reg").aliases == {"champion": 2}

    expected = model.predict(x)
    for uri in (
        "models:/e2e-reg/1",
        "models:/e2e-reg@champion",
        "models:/e2e-reg/Production",
        info.model_uri,
    ):
        got = runlake.pyfunc.load_model(uri).predict(x)
        np.testing.assert_allclose(np.asarray(got), expected)
    assert isinstance(runlake.sklearn.load_model("models:/e2e-reg@champion"), LinearRegression)

    client.delete_registered_model_alias("e2e-reg", "champion")
    with pytest.raises(NotFound):
        client.get_model_version_by_alias("e2e-reg", "champion")
    found = client.search_model_versions(f"run_id = '{run.info.run_id}'")
    assert sorted(v.version for v in found) == [1, 2]
    local = Path(client.download_artifacts(run.info.run_id, "model", str(tmp_path)))
    assert (local / "MLmodel").is_file() and (local / "model.pkl").is_file()


def test_thirty_two_clients_registering_at_once_get_one_to_thirty_two(
    server: ServerProcess, tmp_path: Path
) -> None:
    """Separate processes, each registering one version at the same moment."""
    runlake.RunlakeClient(server.uri).create_registered_model("concurrent-reg")
    script = (
        "import sys, time, runlake\n"
        "c = runlake.RunlakeClient(sys.argv[1])\n"
        "go = float(sys.argv[2])\n"
        "time.sleep(max(0.0, go - time.time()))\n"
        "v = c.create_model_version('concurrent-reg', 'runs:/%s/model' % ('0' * 32))\n"
        "print(v.version)\n"
    )
    go = time.time() + 6
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", script, server.uri, str(go)],
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(32)
    ]
    versions = sorted(int(p.communicate(timeout=120)[0].strip()) for p in procs)
    assert versions == list(range(1, 33))
    listed = runlake.RunlakeClient(server.uri).search_model_versions("name = 'concurrent-reg'")
    assert sorted(v.version for v in listed) == list(range(1, 33))


def test_threads_in_one_process_too(client: runlake.RunlakeClient) -> None:
    client.create_registered_model("threads-reg")
    with ThreadPoolExecutor(8) as pool:
        versions = list(
            pool.map(
                lambda _: client.create_model_version("threads-reg", "s3://b/m").version, range(16)
            )
        )
    assert sorted(versions) == list(range(1, 17))


def test_registry_errors_name_the_field(client: runlake.RunlakeClient) -> None:
    client.create_registered_model("err-reg")
    with pytest.raises(AlreadyExists, match="name"):
        client.create_registered_model("err-reg")
    with pytest.raises(NotFound, match="name"):
        client.create_model_version("no-such-model", "runs:/x/m")
    with pytest.raises(InvalidArgument, match="source"):
        client.create_model_version("err-reg", "")
    with pytest.raises(NotFound, match="run_id"):
        client.create_model_version("err-reg", "runs:/x/m", run_id="f" * 32)
    client.create_model_version("err-reg", "s3://b/m")
    with pytest.raises(InvalidArgument, match="stage"):
        client.transition_model_version_stage("err-reg", 1, "Prod")
    with pytest.raises(NotFound, match="version"):
        client.transition_model_version_stage("err-reg", 9, "Staging")
    with pytest.raises(InvalidArgument, match="alias"):
        client.set_registered_model_alias("err-reg", "v3", 1)
    with pytest.raises(InvalidArgument, match="name"):
        client.create_registered_model("a/b")
    # nothing of the refused writes happened
    assert [v.version for v in client.search_model_versions("name = 'err-reg'")] == [1]


def test_rename_delete_history_and_time_travel(client: runlake.RunlakeClient) -> None:
    client.create_registered_model("tt-reg", description="first")
    client.create_model_version("tt-reg", "s3://b/m1")
    time.sleep(0.05)
    before = int(time.time() * 1000)
    time.sleep(0.05)
    client.transition_model_version_stage("tt-reg", 1, "Staging")
    client.rename_registered_model("tt-reg", "tt-reg-2")
    with pytest.raises(NotFound):
        client.get_registered_model("tt-reg")
    now = client.get_registered_model("tt-reg-2")
    assert [v.current_stage for v in now.latest_versions] == ["Staging"]
    then = client.get_registered_model("tt-reg", as_of_ms=before)
    assert [v.current_stage for v in then.latest_versions] == ["None"]
    events = [e.event_type for e in client.get_model_history("tt-reg-2")]
    assert events == [
        "registered_model_created",
        "model_version_created",
        "model_version_stage_set",
        "registered_model_renamed",
    ]
    client.delete_registered_model("tt-reg-2")
    with pytest.raises(NotFound):
        client.get_model_version("tt-reg-2", 1)
    client.create_registered_model("tt-reg-2")  # the name is free again: a new model
    assert client.get_registered_model("tt-reg-2").latest_versions == []


def test_models_cli(server: ServerProcess, client: runlake.RunlakeClient) -> None:
    client.create_registered_model("cli-reg")
    client.create_model_version("cli-reg", "s3://b/m")
    env_uri = ["--tracking-uri", server.uri]

    def cli(*args: str) -> str:
        out = subprocess.run(
            [sys.executable, "-m", "runlake.cli", *env_uri, *args],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert out.returncode == 0, out.stderr
        return out.stdout

    assert "cli-reg version 1 is now in Staging" in cli(
        "models", "stage", "cli-reg", "1", "staging"
    )
    assert "cli-reg@prod -> version 1" in cli("models", "alias", "cli-reg", "prod", "1")
    assert '"version": 1' in cli("models", "versions", "cli-reg", "-o", "json")
    from datetime import UTC, datetime

    before_description = datetime.now(UTC).isoformat()
    time.sleep(0.05)
    cli("models", "describe", "cli-reg", "# Churn\nscores customers")
    cli("models", "tag", "cli-reg", "team", "growth")
    cli("models", "tag", "cli-reg", "validated", "yes", "--version", "1")
    cli("models", "rename", "cli-reg", "cli-reg-2")
    cli("models", "rename", "cli-reg-2", "cli-reg")
    model = client.get_registered_model("cli-reg")
    assert model.description.startswith("# Churn") and model.tags == {"team": "growth"}
    assert client.get_model_version("cli-reg", 1).tags == {"validated": "yes"}
    then = cli("models", "get", "cli-reg", "--as-of", before_description, "-o", "json")
    assert '"description": ""' in then and "Churn" not in then
    assert "Churn" in cli("models", "get", "cli-reg", "-o", "json")
    cli("models", "tag", "cli-reg", "team", "--delete")
    assert client.get_registered_model("cli-reg").tags == {}
    history = cli("models", "history", "cli-reg", "-o", "json")
    assert "model_alias_set" in history and "model_version_stage_set" in history
    bad = subprocess.run(
        [sys.executable, "-m", "runlake.cli", *env_uri, "models", "get", "no-such"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert bad.returncode == 1 and bad.stderr.startswith("error:")


def test_serve_a_registered_model_by_alias_over_http(
    server: ServerProcess, client: runlake.RunlakeClient
) -> None:
    """``runlake --tracking-uri … models serve -m models:/NAME@ALIAS``, scored with real HTTP."""
    import http.client
    import json

    from runlake.serving.process import ServingProcess
    from sklearn.linear_model import LogisticRegression

    x = _frame()
    clf = LogisticRegression().fit(x, (x["a"] > x["c"]).astype(int))
    with runlake.start_run():
        info = runlake.sklearn.log_model(
            clf, name="model", input_example=x.head(3), registered_model_name="served-reg"
        )
    client.set_registered_model_alias("served-reg", "champion", info.registered_model_version)
    cli = [sys.executable, "-m", "runlake.cli", "--tracking-uri", server.uri, "models", "serve"]

    served = ServingProcess(["-m", "models:/served-reg@champion", "--port", "0"], command=cli)
    with served.start(timeout_s=120):
        conn = http.client.HTTPConnection("127.0.0.1", served.port, timeout=30)
        body = json.dumps({"dataframe_split": json.loads(x.to_json(orient="split", index=False))})
        conn.request("POST", "/invocations", body, {"Content-Type": "application/json"})
        resp = conn.getresponse()
        assert resp.status == 200
        assert json.loads(resp.read()) == {"predictions": clf.predict(x).tolist()}
        conn.request(
            "POST", "/invocations", x.head(2).to_csv(index=False), {"Content-Type": "text/csv"}
        )
        resp = conn.getresponse()
        assert (resp.status, json.loads(resp.read())) == (
            200,
            {"predictions": clf.predict(x.head(2)).tolist()},
        )
        conn.close()
    assert "models:/served-reg@champion" in served.text()

    missing = ServingProcess(["-m", "models:/served-reg@nobody", "--port", "0"], command=cli)
    with pytest.raises(RuntimeError, match="did not become ready"):
        missing.start(timeout_s=120)
    assert missing.proc is not None and missing.proc.wait(30) == 1
    assert "alias" in missing.text() and "Traceback" not in missing.text()


def test_search_describe_and_tag_models_and_versions(client: runlake.RunlakeClient) -> None:
    for name, team in (("search-a1", "growth"), ("search-a2", "risk"), ("search-b1", "growth")):
        client.create_registered_model(name, tags={"team": team})
        client.create_model_version(name, f"s3://b/{name}/1")
        client.create_model_version(name, f"s3://b/{name}/2", tags={"validated": "yes"})
    client.update_registered_model("search-a1", "# Scores churn\n\n*weekly*")
    client.update_model_version("search-a1", 2, "retrained on November")

    def names(filter_string: str, **kw: object) -> list[str]:
        return [m.name for m in client.search_registered_models(filter_string, **kw)]  # type: ignore[arg-type]

    assert names("name LIKE 'search-a%'", order_by=["name DESC"]) == ["search-a2", "search-a1"]
    assert names("name LIKE 'search-%' AND tags.team = 'growth'") == ["search-a1", "search-b1"]
    assert names("name ILIKE 'SEARCH-B%'") == ["search-b1"]
    first = client.search_registered_models("name LIKE 'search-%'", max_results=2)
    assert [m.name for m in first] == ["search-a1", "search-a2"] and first.token
    rest = client.search_registered_models(
        "name LIKE 'search-%'", max_results=2, page_token=first.token
    )
    assert [m.name for m in rest] == ["search-b1"] and not rest.token

    model = client.get_registered_model("search-a1")
    assert model.description == "# Scores churn\n\n*weekly*" and model.tags == {"team": "growth"}
    assert client.get_model_version("search-a1", 2).description == "retrained on November"
    versions = client.search_model_versions(
        "name IN ('search-a1', 'search-b1') AND tags.validated = 'yes'",
        order_by=["name ASC", "version_number DESC"],
    )
    assert [(v.name, v.version) for v in versions] == [("search-a1", 2), ("search-b1", 2)]
    assert [
        v.version for v in client.search_model_versions("name = 'search-a2' AND version_number < 2")
    ] == [1]
    with pytest.raises(InvalidArgument, match="filter"):
        client.search_registered_models("nme = 'x'")
