"""``runlake models serve`` as a real process on loopback, scored through real HTTP.

A small sklearn model is saved with ``runlake.sklearn.save_model``; the server is started as
a subprocess on a free port (port 0, read back from its ``ready`` line), and every input
format, the error answers, concurrency (merged batches must not mix answers up),
``--workers 2`` (with a worker killed and replaced) and a clean stop are checked.
"""

from __future__ import annotations

import http.client
import io
import json
import signal
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import psutil
import pytest
import runlake.pyfunc
import runlake.sklearn
from runlake.serving.process import ServingProcess
from sklearn.linear_model import LogisticRegression

pytestmark = pytest.mark.e2e

COLS = [f"f{i}" for i in range(6)]


def _command() -> list[str]:
    """``runlake models serve``, as a user runs it."""
    return [sys.executable, "-m", "runlake.cli", "models", "serve"]


class Served(ServingProcess):
    """A scoring server child with small HTTP helpers."""

    def __init__(self, args: list[str]) -> None:
        super().__init__(args, command=_command())

    def request(
        self, method: str, path: str, body: bytes | None = None, content_type: str | None = None
    ) -> tuple[int, bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            headers = {"Content-Type": content_type} if content_type else {}
            conn.request(method, path, body=body, headers=headers)
            resp = conn.getresponse()
            return resp.status, resp.read()
        finally:
            conn.close()

    def score(self, doc: Any, content_type: str = "application/json") -> tuple[int, Any]:
        body = doc if isinstance(doc, bytes) else json.dumps(doc).encode()
        status, answer = self.request("POST", "/invocations", body, content_type)
        return status, json.loads(answer)


def _data(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(rng.normal(size=(n, len(COLS))), columns=COLS)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    x = _data(300, 0)
    clf = LogisticRegression().fit(x, (x["f0"] - x["f2"] > 0).astype(int))
    path = tmp_path_factory.mktemp("serving") / "clf"
    runlake.sklearn.save_model(clf, path, input_example=x.head(3))
    return path


@pytest.fixture(scope="module")
def server(model_dir: Path) -> Iterator[Served]:
    served = Served(["-m", str(model_dir), "--port", "0", "--max-body-bytes", "65536"]).start()
    yield served
    served.stop()


def _split(x: pd.DataFrame) -> dict[str, Any]:
    return {"dataframe_split": json.loads(x.to_json(orient="split", index=False))}


def _predict(model_dir: Path, x: pd.DataFrame) -> list[Any]:
    return runlake.pyfunc.load_model(model_dir).predict(x).tolist()


def test_ready_line_and_health(server: Served) -> None:
    assert server.url.startswith("http://127.0.0.1:")
    for path in ("/ping", "/health"):
        assert server.request("GET", path)[0] == 200
    status, version = server.request("GET", "/version")
    assert status == 200 and version


def test_every_format_scores_as_the_model(server: Served, model_dir: Path) -> None:
    x = _data(9, 1)
    want = {"predictions": _predict(model_dir, x)}
    for doc in (
        _split(x),
        {"dataframe_records": x.to_dict(orient="records")},
        {"instances": x.to_dict(orient="records")},
        {"inputs": x.to_dict(orient="list")},
    ):
        assert server.score(doc) == (200, want), next(iter(doc))
    assert server.score(x.to_csv(index=False).encode(), "text/csv") == (200, want)
    buf = io.BytesIO()
    x.to_parquet(buf)
    assert server.score(buf.getvalue(), "application/vnd.apache.parquet") == (200, want)


def test_bad_requests_get_clear_4xx(server: Served) -> None:
    status, answer = server.score(b"{oops")
    assert status == 400 and answer["error_code"] == "BAD_REQUEST"
    status, answer = server.score({"dataframe": {"data": [[1]]}})
    assert status == 400 and "unknown key" in answer["message"]
    status, answer = server.score({"inputs": [[1.0]], "instances": [[1.0]]})
    assert status == 400 and "several inputs" in answer["message"]
    status, answer = server.score(b"f0=1", "application/x-www-form-urlencoded")
    assert status == 415 and answer["error_code"] == "BAD_REQUEST"
    missing = _data(1, 2).drop(columns=["f4"])
    status, answer = server.score({"dataframe_records": missing.to_dict(orient="records")})
    assert status == 400 and answer["field"] == "f4" and "f4" in answer["message"]
    status, answer = server.score({"dataframe_split": {"columns": COLS, "data": [["x"] * 6]}})
    assert status == 400 and answer["field"] == "f0"
    assert server.request("GET", "/nothing")[0] == 404
    assert server.request("GET", "/invocations")[0] == 405


def test_body_over_the_limit_is_413(server: Served) -> None:
    big = json.dumps({"dataframe_records": _data(2000, 3).to_dict(orient="records")}).encode()
    assert len(big) > 65536
    status, answer = server.score(big)
    assert status == 413 and "65536" in answer["message"]
    assert server.request("GET", "/ping")[0] == 200  # and the server goes on


def test_concurrent_requests_each_get_their_own_answer(server: Served, model_dir: Path) -> None:
    """Requests merged into shared predict calls must come back to the right caller."""
    x = _data(400, 4)
    want = _predict(model_dir, x)

    def one(i: int) -> tuple[int, Any]:
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
        answers = []
        for j in range(i, 400, 16):  # keep-alive: several requests per connection
            row = x.iloc[[j]]
            body = json.dumps(_split(row))
            conn.request("POST", "/invocations", body, {"Content-Type": "application/json"})
            resp = conn.getresponse()
            answers.append((j, resp.status, json.loads(resp.read())))
        conn.close()
        return i, answers

    with ThreadPoolExecutor(16) as pool:
        results = list(pool.map(one, range(16)))
    seen = 0
    for _, answers in results:
        for j, status, answer in answers:
            assert status == 200
            assert answer == {"predictions": [want[j]]}
            seen += 1
    assert seen == 400


def test_two_workers_share_the_port_survive_a_crash_and_stop_cleanly(model_dir: Path) -> None:
    served = Served(["-m", str(model_dir), "--port", "0", "--workers", "2"]).start()
    try:
        assert served.proc is not None
        launcher = psutil.Process(served.proc.pid)
        workers = launcher.children()
        assert len(workers) == 2
        x = _data(3, 5)
        want = {"predictions": _predict(model_dir, x)}
        assert served.score(_split(x)) == (200, want)
        workers[0].kill()  # a crashed worker is replaced
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            alive = [p for p in launcher.children() if p.status() != psutil.STATUS_ZOMBIE]
            if len(alive) == 2 and workers[0].pid not in {p.pid for p in alive}:
                break
            time.sleep(0.2)
        else:
            raise AssertionError("the killed worker was not replaced")
        for _ in range(10):
            assert served.request("GET", "/ping")[0] == 200
        workers = launcher.children()
    finally:
        code = served.stop(signal.SIGTERM)
    assert code == 0, served.text()
    _, alive = psutil.wait_procs(workers, timeout=10)
    assert not alive
    assert "Traceback" not in served.text()


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_single_worker_stops_cleanly(model_dir: Path, sig: signal.Signals) -> None:
    served = Served(["-m", str(model_dir), "--port", "0"]).start()
    assert served.request("GET", "/ping")[0] == 200
    t0 = time.monotonic()
    assert served.stop(sig) == 0
    assert time.monotonic() - t0 < 15
    assert "Traceback" not in served.text()


def test_a_model_that_cannot_load_is_one_error_line(tmp_path: Path) -> None:
    for workers in ("1", "2"):
        served = Served(["-m", str(tmp_path / "absent"), "--port", "0", "--workers", workers])
        with pytest.raises(RuntimeError, match="did not become ready"):
            served.start(timeout_s=60)
        assert served.proc is not None and served.proc.wait(30) == 1
        text = served.text()
        assert "error" in text and "Traceback" not in text, text


def test_workers_stop_when_the_launcher_is_killed(model_dir: Path) -> None:
    served = Served(["-m", str(model_dir), "--port", "0", "--workers", "2"]).start()
    workers = psutil.Process(served.pid).children()
    assert len(workers) == 2
    served.kill()  # kill -9: the launcher cannot stop them; their lifeline pipe does
    _, alive = psutil.wait_procs(workers, timeout=30)
    assert not alive
