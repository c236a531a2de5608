"""sklearn round trips (classifier and regressor), and the torch-optional pytorch flavor."""

from __future__ import annotations

import pickle
import sys
import types
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import runlake.pyfunc
import runlake.pytorch
import runlake.sklearn
import yaml
from runlake.errors import InvalidArgument
from runlake.models import MissingFlavorDependency, Model, ModelSchemaError, TensorSpec
from sklearn.datasets import make_classification, make_regression
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import Ridge
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler


def _table(x: np.ndarray[Any, Any]) -> pd.DataFrame:
    return pd.DataFrame(x, columns=[f"f{i}" for i in range(x.shape[1])])


@pytest.mark.parametrize("fmt", ["cloudpickle", "pickle"])
def test_classifier_round_trip(tmp_path: Path, fmt: str) -> None:
    x, y = make_classification(n_samples=60, n_features=4, random_state=0)
    frame = _table(x)
    clf = make_pipeline(StandardScaler(), RandomForestClassifier(n_estimators=5, random_state=0))
    clf.fit(frame, y)
    path = tmp_path / "clf"
    runlake.sklearn.save_model(clf, path, input_example=frame.head(3), serialization_format=fmt)
    estimator = runlake.sklearn.load_model(path)
    np.testing.assert_array_equal(estimator.predict(frame), clf.predict(frame))
    pyfunc = runlake.pyfunc.load_model(path)
    np.testing.assert_array_equal(pyfunc.predict(frame), clf.predict(frame))
    sig = pyfunc.metadata.signature
    assert sig is not None and sig.inputs is not None and sig.outputs is not None
    assert sig.inputs.input_names() == ["f0", "f1", "f2", "f3"]
    assert sig.outputs.inputs == [TensorSpec(np.dtype("int64"), (-1,))]
    raw = yaml.safe_load((path / "MLmodel").read_text())
    assert raw["flavors"]["sklearn"]["serialization_format"] == fmt
    assert raw["flavors"]["sklearn"]["pickled_model"] == "model.pkl"
    assert raw["flavors"]["sklearn"]["sklearn_version"] == "1.9.1"
    assert raw["flavors"]["python_function"]["loader_module"] == "mlflow.sklearn"
    assert raw["flavors"]["python_function"]["model_path"] == "model.pkl"
    reqs = (path / "requirements.txt").read_text()
    assert "scikit-learn==1.9.1" in reqs
    assert ("cloudpickle==" in reqs) == (fmt == "cloudpickle")


def test_regressor_round_trip_with_enforcement(tmp_path: Path) -> None:
    x, y = make_regression(n_samples=40, n_features=3, random_state=1)
    frame = _table(x)
    reg = Ridge().fit(frame, y)
    path = tmp_path / "reg"
    runlake.sklearn.save_model(reg, path, input_example=frame.head(2))
    pyfunc = runlake.pyfunc.load_model(path)
    expected = reg.predict(frame)
    np.testing.assert_allclose(pyfunc.predict(frame), expected)
    # reordered columns plus an extra one still score identically
    shuffled = frame[["f2", "f0", "f1"]].assign(extra=1)
    np.testing.assert_allclose(pyfunc.predict(shuffled), expected)
    with pytest.raises(ModelSchemaError) as info:
        pyfunc.predict(frame.drop(columns=["f1"]))
    assert info.value.column == "f1"
    with pytest.raises(ModelSchemaError) as info:
        pyfunc.predict(frame.assign(f0="high"))
    assert info.value.column == "f0"


def test_numpy_trained_model_gets_a_tensor_signature(tmp_path: Path) -> None:
    x, y = make_regression(n_samples=20, n_features=2, random_state=2)
    reg = Ridge().fit(x, y)
    path = tmp_path / "np"
    runlake.sklearn.save_model(reg, path, input_example=x[:2])
    pyfunc = runlake.pyfunc.load_model(path)
    np.testing.assert_allclose(pyfunc.predict(x), reg.predict(x))
    assert Model.load(path).get_input_schema() is not None
    with pytest.raises(ModelSchemaError, match="shape"):
        pyfunc.predict(x[:, :1])


def test_sklearn_save_rejects_bad_options(tmp_path: Path) -> None:
    reg = Ridge().fit([[0.0], [1.0]], [0.0, 1.0])
    with pytest.raises(InvalidArgument, match="serialization format"):
        runlake.sklearn.save_model(reg, tmp_path / "a", serialization_format="joblib")
    with pytest.raises(InvalidArgument, match="predict_proba"):
        runlake.sklearn.save_model(reg, tmp_path / "b", pyfunc_predict_fn="predict_proba")


def test_skops_model_without_skops_is_a_clear_error(tmp_path: Path) -> None:
    reg = Ridge().fit([[0.0], [1.0]], [0.0, 1.0])
    runlake.sklearn.save_model(reg, tmp_path)
    meta = Model.load(tmp_path)
    meta.flavors["sklearn"]["serialization_format"] = "skops"
    meta.save(tmp_path)
    with pytest.raises(MissingFlavorDependency, match="skops") as info:
        runlake.sklearn.load_model(tmp_path)
    assert isinstance(info.value, ImportError)


# -- pytorch ------------------------------------------------------------------------------


def test_pytorch_without_torch_says_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "torch", None)  # import torch -> ImportError
    with pytest.raises(MissingFlavorDependency, match="pip install torch") as info:
        runlake.pytorch.save_model(object(), tmp_path / "m")
    assert isinstance(info.value, ImportError)
    assert not (tmp_path / "m").exists()


class _Doubler:
    """Stands in for an nn.Module: callable on a 'tensor' (here a numpy array)."""

    def eval(self) -> None:
        self.evaluated = True

    def __call__(self, x: Any) -> Any:
        return np.asarray(x) * 2


def _fake_torch() -> types.ModuleType:
    fake = types.ModuleType("torch")
    fake.__version__ = "0.0-fake"  # type: ignore[attr-defined]

    def save(obj: Any, path: str, pickle_module: Any = pickle) -> None:
        with open(path, "wb") as f:
            pickle_module.dump(obj, f)

    def load(path: str, weights_only: bool = True) -> Any:
        assert weights_only is False  # a full module pickle needs it off
        with open(path, "rb") as f:
            return pickle.load(f)

    fake.save = save  # type: ignore[attr-defined]
    fake.load = load  # type: ignore[attr-defined]
    fake.as_tensor = np.asarray  # type: ignore[attr-defined]
    fake.no_grad = nullcontext  # type: ignore[attr-defined]
    return fake


def test_pytorch_flavor_layout_with_a_stand_in_torch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "torch", _fake_torch())
    path = tmp_path / "m"
    example = np.ones((2, 3), dtype=np.float32)
    runlake.pytorch.save_model(_Doubler(), path, input_example=example)
    raw = yaml.safe_load((path / "MLmodel").read_text())
    assert raw["flavors"]["pytorch"] == {
        "model_data": "data",
        "pytorch_version": "0.0-fake",
        "code": None,
    }
    assert raw["flavors"]["python_function"]["loader_module"] == "mlflow.pytorch"
    assert (path / "data" / "pickle_module_info.txt").read_text() == (
        "mlflow.pytorch.pickle_module"
    )
    assert isinstance(runlake.pytorch.load_model(path), _Doubler)
    out = runlake.pyfunc.load_model(path).predict(example)
    np.testing.assert_array_equal(out, example * 2)
