"""Custom python models: save/load round trips, artifacts, code paths, MLmodel content."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import runlake.pyfunc
import yaml
from runlake.errors import AlreadyExists
from runlake.models import (
    Model,
    ModelFormatError,
    ModelInfo,
    ModelSchemaError,
    ModelSignature,
    Schema,
    UnsupportedModelUri,
    _hooks,
    infer_signature,
)

X = pd.DataFrame({"a": [1.0, 2.0, 3.0], "b": [1, 0, 1]})


class Scaled(runlake.pyfunc.PythonModel):
    """Multiplies column a by a factor read from an artifact; adds params["offset"]."""

    def load_context(self, context: runlake.pyfunc.PythonModelContext) -> None:
        self.factor = float(Path(context.artifacts["factor"]).read_text())
        self.vocab = sorted(p.name for p in Path(context.artifacts["vocab"]).iterdir())

    def predict(
        self,
        context: runlake.pyfunc.PythonModelContext,
        model_input: pd.DataFrame,
        params: dict[str, Any] | None = None,
    ) -> pd.Series:
        offset = (params or {}).get("offset", 0.0)
        return model_input["a"] * self.factor + offset


class NoContext(runlake.pyfunc.PythonModel):
    """MLflow 3's context-free predict, without params."""

    def predict(self, model_input: pd.DataFrame) -> np.ndarray:  # type: ignore[override]
        return np.asarray(model_input).sum(axis=1)


@pytest.fixture
def artifacts(tmp_path: Path) -> dict[str, str]:
    factor = tmp_path / "src" / "factor.txt"
    factor.parent.mkdir()
    factor.write_text("2.5")
    vocab = tmp_path / "src" / "vocab"
    vocab.mkdir()
    (vocab / "x").write_text("")
    (vocab / "y").write_text("")
    return {"factor": str(factor), "vocab": vocab.as_uri()}


def test_custom_model_round_trip_with_artifacts(tmp_path: Path, artifacts: dict[str, str]) -> None:
    path = tmp_path / "m"
    runlake.pyfunc.save_model(path, python_model=Scaled(), artifacts=artifacts, input_example=X)
    # the source artifacts are copied: the model no longer needs them
    for f in (tmp_path / "src").rglob("*"):
        if f.is_file():
            f.unlink()
    loaded = runlake.pyfunc.load_model(path)
    assert loaded.predict(X).tolist() == [2.5, 5.0, 7.5]
    inner = loaded.unwrap_python_model()
    assert inner.vocab == ["x", "y"]
    assert loaded.metadata.signature == infer_signature(X, X["a"] * 2.5)
    assert loaded.loader_module == "mlflow.pyfunc.model"
    assert runlake.pyfunc.load_model(path.as_uri()).predict(X).tolist() == [2.5, 5.0, 7.5]


def test_mlmodel_content_and_environment_files(tmp_path: Path, artifacts: dict[str, str]) -> None:
    path = tmp_path / "m"
    runlake.pyfunc.save_model(
        path,
        python_model=Scaled(),
        artifacts=artifacts,
        input_example=X,
        extra_pip_requirements=["scipy==1.0"],
        metadata={"team": "vision"},
    )
    raw = yaml.safe_load((path / "MLmodel").read_text())
    pyfunc = raw["flavors"]["python_function"]
    assert pyfunc["loader_module"] == "mlflow.pyfunc.model"
    assert pyfunc["python_model"] == "python_model.pkl"
    assert pyfunc["env"] == {"conda": "conda.yaml", "virtualenv": "python_env.yaml"}
    assert pyfunc["python_version"] == ".".join(map(str, sys.version_info[:3]))
    assert pyfunc["cloudpickle_version"]
    assert pyfunc["artifacts"]["factor"] == {
        "path": "artifacts/factor.txt",
        "uri": artifacts["factor"],
    }
    assert pyfunc["artifacts"]["vocab"]["path"] == "artifacts/vocab"
    assert len(raw["model_uuid"]) == 32
    assert raw["metadata"] == {"team": "vision"}
    assert raw["saved_input_example_info"] == {
        "artifact_path": "input_example.json",
        "pandas_orient": "split",
        "serving_input_path": "serving_input_example.json",
        "type": "dataframe",
    }
    assert "run_id" not in raw and "artifact_path" not in raw  # only log_model sets them
    assert json.loads(raw["signature"]["inputs"]) == [
        {"type": "double", "name": "a", "required": True},
        {"type": "long", "name": "b", "required": True},
    ]
    assert raw["signature"]["params"] is None
    # utc_time_created as MLflow writes it: "YYYY-MM-DD HH:MM:SS.ffffff"
    assert len(raw["utc_time_created"]) == 26 and raw["utc_time_created"][10] == " "
    assert raw["model_size_bytes"] > 0
    assert json.loads((path / "input_example.json").read_text()) == {
        "columns": ["a", "b"],
        "data": [[1.0, 1], [2.0, 0], [3.0, 1]],
    }
    serving = json.loads((path / "serving_input_example.json").read_text())
    assert serving["dataframe_split"]["columns"] == ["a", "b"]
    reqs = (path / "requirements.txt").read_text().splitlines()
    assert any(r.startswith("cloudpickle==") for r in reqs)
    assert any(r.startswith("pandas==") for r in reqs)
    assert reqs[-1] == "scipy==1.0"
    conda = yaml.safe_load((path / "conda.yaml").read_text())
    assert conda["dependencies"][0].startswith("python=3.")
    assert conda["dependencies"][-1] == {"pip": reqs}
    env = yaml.safe_load((path / "python_env.yaml").read_text())
    assert env["python"] == pyfunc["python_version"]
    assert env["dependencies"] == ["-r requirements.txt"]


def test_signature_is_enforced_and_params_pass_through(
    tmp_path: Path, artifacts: dict[str, str]
) -> None:
    path = tmp_path / "m"
    sig = infer_signature(X, params={"offset": 0.0})
    runlake.pyfunc.save_model(path, python_model=Scaled(), artifacts=artifacts, signature=sig)
    loaded = runlake.pyfunc.load_model(path)
    ints = pd.DataFrame({"b": [1], "a": [4], "extra": ["dropped"]})  # int a -> double
    assert loaded.predict(ints, params={"offset": 1}).tolist() == [11.0]
    with pytest.raises(ModelSchemaError) as info:
        loaded.predict(pd.DataFrame({"a": [1.0]}))
    assert info.value.column == "b"
    with pytest.raises(ModelSchemaError, match="param expects double"):
        loaded.predict(X, params={"offset": "one"})


def test_model_example_metadata_and_input_example_reload(tmp_path: Path) -> None:
    path = tmp_path / "m"
    example = pd.DataFrame(
        {
            "t": pd.to_datetime(["2020-01-01"]),
            "by": [b"\x00\xff"],
            "s": ["x"],
            "n": [np.nan],
        }
    )
    runlake.pyfunc.save_model(path, python_model=lambda df: df.shape[0], input_example=example)
    meta = Model.load(path)
    body = json.loads((path / "input_example.json").read_text())
    assert body["data"][0][:3] == ["2020-01-01T00:00:00", "AP8=\n", "x"]  # MLflow's encodings
    back = meta.load_input_example(path)
    assert back["t"].iloc[0] == pd.Timestamp("2020-01-01")
    assert back["by"].iloc[0] == b"\x00\xff"
    assert runlake.pyfunc.load_model(path).predict(back) == 1


def test_numpy_example_and_context_free_predict(tmp_path: Path) -> None:
    path = tmp_path / "m"
    arr = np.arange(6, dtype=np.float32).reshape(2, 3)
    runlake.pyfunc.save_model(path, python_model=NoContext(), input_example=arr)
    meta = Model.load(path)
    assert meta.saved_input_example_info is not None
    assert meta.saved_input_example_info["type"] == "ndarray"
    assert json.loads((path / "input_example.json").read_text()) == arr.tolist()
    loaded = runlake.pyfunc.load_model(path)
    np.testing.assert_array_equal(loaded.predict(np.ones((1, 3), np.float32)), [3.0])
    with pytest.raises(ModelSchemaError, match="shape"):
        loaded.predict(np.ones((1, 4), np.float32))


def test_code_paths_are_copied_and_importable(tmp_path: Path) -> None:
    mod = tmp_path / "src" / "rl_test_helper_mod.py"
    mod.parent.mkdir()
    mod.write_text("def double(x):\n    return x * 2\n")
    code = "import rl_test_helper_mod\nF = rl_test_helper_mod.double\n"

    class UsesCode(runlake.pyfunc.PythonModel):
        def predict(self, context: Any, model_input: Any, params: Any = None) -> Any:
            import rl_test_helper_mod  # type: ignore[import-not-found]

            return rl_test_helper_mod.double(model_input)

    path = tmp_path / "m"
    runlake.pyfunc.save_model(path, python_model=UsesCode(), code_paths=[str(mod)])
    assert (path / "code" / "rl_test_helper_mod.py").read_text().startswith("def double")
    assert (
        yaml.safe_load((path / "MLmodel").read_text())["flavors"]["python_function"]["code"]
        == "code"
    )
    assert code  # the module is only reachable through the model's code/ directory
    try:
        assert runlake.pyfunc.load_model(path).predict(np.array([2])).tolist() == [4]
    finally:
        sys.path.remove(str(path / "code"))
        sys.modules.pop("rl_test_helper_mod", None)


def test_save_refuses_a_non_empty_directory(tmp_path: Path) -> None:
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "x").write_text("")
    with pytest.raises(AlreadyExists):
        runlake.pyfunc.save_model(tmp_path / "m", python_model=NoContext())


def test_load_errors_are_clear(tmp_path: Path) -> None:
    with pytest.raises(ModelFormatError, match="not a model directory"):
        runlake.pyfunc.load_model(tmp_path)
    with pytest.raises(UnsupportedModelUri, match="runs:/") as info:
        runlake.pyfunc.load_model("hdfs://cluster/model")
    assert isinstance(info.value, NotImplementedError)
    Model(flavors={"python_function": {"loader_module": "mlflow.xgboost"}}).save(tmp_path)
    with pytest.raises(ModelFormatError, match=r"mlflow\.xgboost"):
        runlake.pyfunc.load_model(tmp_path)


def test_unknown_mlmodel_keys_survive_a_round_trip(tmp_path: Path) -> None:
    raw = {
        "flavors": {"python_function": {"loader_module": "mlflow.pyfunc.model"}},
        "mlflow_version": "3.17.2",
        "model_id": None,
        "signature": {"inputs": Schema.from_json('[{"type": "long"}]').to_json()},
    }
    (tmp_path / "MLmodel").write_text(yaml.safe_dump(raw))
    meta = Model.load(tmp_path)
    assert meta.extra == {"mlflow_version": "3.17.2", "model_id": None}
    assert meta.signature == ModelSignature(Schema.from_json('[{"type": "long"}]'))
    again = yaml.safe_load(meta.to_yaml())
    assert again["mlflow_version"] == "3.17.2" and "model_id" in again


def test_log_model_saves_stamps_and_calls_the_upload_hook(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: dict[str, Any] = {}

    def fake_upload(
        local_dir: Path, artifact_path: str, *, registered_model_name: str | None = None
    ) -> ModelInfo:
        meta = Model.load(local_dir)
        seen.update(files=sorted(p.name for p in local_dir.iterdir()), reg=registered_model_name)
        return meta.get_model_info(f"runs:/{meta.run_id}/{artifact_path}")

    monkeypatch.setattr(_hooks, "upload_model_dir", fake_upload)
    monkeypatch.setattr(_hooks, "active_run_id", lambda: "r123")
    info = runlake.pyfunc.log_model(
        NoContext(), name="clf", input_example=X, registered_model_name="churn"
    )
    assert info.model_uri == "runs:/r123/clf"
    assert info.run_id == "r123" and info.artifact_path == "clf"
    assert info.signature is not None and info.signature.inputs is not None
    assert "MLmodel" in seen["files"] and "python_model.pkl" in seen["files"]
    assert seen["reg"] == "churn"
