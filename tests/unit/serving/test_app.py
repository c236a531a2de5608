"""The ASGI application driven directly (no sockets): endpoints, answers, error codes."""

from __future__ import annotations

import asyncio
import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import runlake.pyfunc
import runlake.sklearn
from runlake.models import infer_signature
from runlake.serving.app import ScoringApp, error_for, merges_requests
from runlake.serving.config import ServeConfig
from runlake.serving.errors import ScoringError
from runlake.serving.output import predictions_body
from sklearn.linear_model import LogisticRegression

COLS = ["f0", "f1", "f2", "f3"]


def _data(n: int = 40, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(rng.normal(size=(n, len(COLS))), columns=COLS)


@pytest.fixture(scope="module")
def sk_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    x = _data(200)
    model = LogisticRegression().fit(x, (x["f0"] + x["f1"] > 0).astype(int))
    path = tmp_path_factory.mktemp("models") / "sk"
    runlake.sklearn.save_model(model, path, input_example=x.head(3))
    return path


class Boom(runlake.pyfunc.PythonModel):
    def predict(self, context: Any, model_input: pd.DataFrame, params: Any = None) -> Any:
        raise RuntimeError("disk on fire")


class Frame(runlake.pyfunc.PythonModel):
    def predict(self, context: Any, model_input: pd.DataFrame, params: Any = None) -> Any:
        k = (params or {}).get("k", 1)
        return pd.DataFrame({"double": model_input["f0"] * 2 * k, "name": "row"})


@pytest.fixture(scope="module")
def custom_dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("custom")
    out = {}
    signature = infer_signature(_data(2), params={"k": 1})
    for name, model in (("boom", Boom()), ("frame", Frame())):
        out[name] = root / name
        runlake.pyfunc.save_model(out[name], python_model=model, signature=signature)
    return out


class Client:
    """Calls the ASGI app as a server would: one scope, a body in chunks, the answer."""

    def __init__(self, app: ScoringApp) -> None:
        self.app = app

    def request(
        self,
        method: str,
        path: str,
        body: bytes = b"",
        content_type: str | None = "application/json",
        chunks: int = 1,
        headers: list[tuple[bytes, bytes]] | None = None,
    ) -> tuple[int, dict[bytes, bytes], bytes]:
        hdrs = list(headers or [])
        if content_type is not None:
            hdrs.append((b"content-type", content_type.encode()))
        if chunks == 1:
            hdrs.append((b"content-length", str(len(body)).encode()))
        scope = {"type": "http", "method": method, "path": path, "headers": hdrs}
        size = max(1, -(-len(body) // chunks))
        pieces = [body[i : i + size] for i in range(0, len(body), size)] or [b""]
        messages = [
            {"type": "http.request", "body": p, "more_body": i < len(pieces) - 1}
            for i, p in enumerate(pieces)
        ]
        sent: list[dict[str, Any]] = []

        async def receive() -> dict[str, Any]:
            return messages.pop(0) if messages else {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        asyncio.run(self.app(scope, receive, send))
        start, body_msg = sent
        return start["status"], dict(start["headers"]), body_msg["body"]

    def score(self, doc: Any, **kw: Any) -> tuple[int, Any]:
        body = doc if isinstance(doc, bytes) else json.dumps(doc).encode()
        status, _, answer = self.request("POST", "/invocations", body, **kw)
        return status, json.loads(answer)


def _app(path: Path, **config: Any) -> Client:
    return Client(ScoringApp(runlake.pyfunc.load_model(path), ServeConfig(str(path), **config)))


@pytest.fixture(scope="module")
def sk(sk_dir: Path) -> Client:
    return _app(sk_dir)


def _expected(sk_dir: Path, x: pd.DataFrame) -> list[Any]:
    return runlake.pyfunc.load_model(sk_dir).predict(x).tolist()


# -- every format answers what the model's own predict answers --------------------------------


def test_every_json_format_predicts_as_the_model(sk: Client, sk_dir: Path) -> None:
    x = _data(7, seed=3)
    want = _expected(sk_dir, x)
    split = json.loads(x.to_json(orient="split", index=False))
    docs = [
        {"dataframe_split": split},
        {"dataframe_records": x.to_dict(orient="records")},
        {"instances": x.to_dict(orient="records")},
        {"inputs": x.to_dict(orient="list")},
    ]
    for doc in docs:
        assert sk.score(doc) == (200, {"predictions": want}), doc


def test_csv_and_parquet(sk: Client, sk_dir: Path) -> None:
    x = _data(5, seed=4)
    want = {"predictions": _expected(sk_dir, x)}
    assert sk.score(x.to_csv(index=False).encode(), content_type="text/csv") == (200, want)
    buf = io.BytesIO()
    x.to_parquet(buf)
    status, answer = sk.score(buf.getvalue(), content_type="application/vnd.apache.parquet")
    assert (status, answer) == (200, want)


def test_chunked_body(sk: Client, sk_dir: Path) -> None:
    x = _data(30, seed=5)
    body = json.dumps({"dataframe_split": json.loads(x.to_json(orient="split", index=False))})
    assert sk.score(body.encode(), chunks=7)[1] == {"predictions": _expected(sk_dir, x)}


def test_dataframe_output_is_records(custom_dirs: dict[str, Path]) -> None:
    client = _app(custom_dirs["frame"])
    x = _data(2)
    status, answer = client.score(
        {"dataframe_records": x.to_dict(orient="records"), "params": {"k": 3}}
    )
    assert status == 200
    assert answer == {"predictions": [{"double": v * 6, "name": "row"} for v in x["f0"].tolist()]}


# -- other endpoints -----------------------------------------------------------------------


def test_ping_health_version(sk: Client) -> None:
    for path in ("/ping", "/health"):
        assert sk.request("GET", path)[0] == 200
    status, headers, body = sk.request("GET", "/version")
    assert status == 200 and body.decode().count(".") >= 1
    assert headers[b"content-type"].startswith(b"text/plain")


def test_unknown_path_and_wrong_method(sk: Client) -> None:
    status, _, body = sk.request("GET", "/predict")
    assert status == 404 and json.loads(body)["error_code"] == "ENDPOINT_NOT_FOUND"
    status, headers, body = sk.request("GET", "/invocations")
    assert status == 405 and headers[b"allow"] == b"POST"
    assert sk.request("POST", "/ping")[0] == 405


# -- errors: one per class -------------------------------------------------------------------


def test_malformed_json_is_400(sk: Client) -> None:
    status, answer = sk.score(b'{"dataframe_split": ')
    assert status == 400
    assert answer["error_code"] == "BAD_REQUEST" and "not valid JSON" in answer["message"]


def test_unknown_and_several_format_keys_are_400(sk: Client) -> None:
    assert sk.score({"dataframe": []})[0] == 400
    status, answer = sk.score({"inputs": [], "instances": []})
    assert status == 400 and "several inputs" in answer["message"]


def test_wrong_content_type_is_415(sk: Client) -> None:
    status, answer = sk.score(b"f0=1", content_type="application/x-www-form-urlencoded")
    assert status == 415 and answer["error_code"] == "BAD_REQUEST"
    assert sk.score(b"{}", content_type=None)[0] == 415


def test_schema_error_names_the_column(sk: Client) -> None:
    status, answer = sk.score({"dataframe_records": [{"f0": 1.0, "f1": 2.0, "f2": 3.0}]})
    assert status == 400
    assert answer["field"] == "f3" and "f3" in answer["message"]
    status, answer = sk.score({"dataframe_records": [{"f0": "a", "f1": 2.0, "f2": 3.0, "f3": 4.0}]})
    assert status == 400 and answer["field"] == "f0"


def test_body_too_large_is_413(sk_dir: Path) -> None:
    client = _app(sk_dir, max_body_bytes=2048)
    x = _data(100)
    body = json.dumps({"dataframe_records": x.to_dict(orient="records")}).encode()
    status, headers, answer = client.request("POST", "/invocations", body)
    assert status == 413 and headers[b"connection"] == b"close"
    assert "2048" in json.loads(answer)["message"]
    status, _, _ = client.request("POST", "/invocations", body, chunks=10)  # no length given
    assert status == 413


def test_model_failure_is_500_without_traceback(custom_dirs: dict[str, Path]) -> None:
    client = _app(custom_dirs["boom"])
    status, answer = client.score({"dataframe_records": _data(1).to_dict(orient="records")})
    assert status == 500
    assert answer["error_code"] == "INTERNAL_ERROR"
    assert "disk on fire" in answer["message"]
    assert "Traceback" not in json.dumps(answer) and "stack_trace" not in answer


def test_model_input_error_is_400() -> None:
    err = error_for(ValueError("Input X contains NaN."))
    assert err.status == 400 and "contains NaN" in err.message


def test_error_for_keeps_scoring_errors() -> None:
    e = ScoringError("x", status=413)
    assert error_for(e) is e


# -- batching policy ---------------------------------------------------------------------------


def test_merging_policy(sk_dir: Path, custom_dirs: dict[str, Path]) -> None:
    sk_model = runlake.pyfunc.load_model(sk_dir)
    custom = runlake.pyfunc.load_model(custom_dirs["frame"])
    assert merges_requests("auto", sk_model)
    assert not merges_requests("auto", custom)  # custom code may look across rows
    assert merges_requests("on", custom)
    assert not merges_requests("off", sk_model)


def test_predictions_body_shapes() -> None:
    assert json.loads(predictions_body(np.array([1.5, np.nan]))) == {"predictions": [1.5, None]}
    assert json.loads(predictions_body(pd.Series([1, 2], name="y"))) == {
        "predictions": [{"y": 1}, {"y": 2}]
    }
    assert json.loads(predictions_body(np.array(["a", "b"], dtype=object))) == {
        "predictions": ["a", "b"]
    }
    stamp = pd.Timestamp("2024-01-02T03:04:05")
    assert json.loads(predictions_body([stamp, b"\x00"])) == {
        "predictions": ["2024-01-02T03:04:05", "AA=="]
    }
    with pytest.raises(TypeError):
        predictions_body([object()])
