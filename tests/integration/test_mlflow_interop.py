"""The model format against the real MLflow 3.17.2, both ways, with identical predictions.

runlake saves sklearn and custom python models here; a script in MLflow's own venv loads
them with ``mlflow.pyfunc.load_model`` / ``mlflow.sklearn.load_model`` and predicts. The same
script saves an sklearn and a custom pyfunc model with MLflow, which runlake then loads and
predicts with. MLflow's venv is made once under .runlake/bench (bench/mlflow_env.py) with
scikit-learn, cloudpickle and numpy pinned to the versions installed here, since a pickle is
only portable between equal library versions.
"""

from __future__ import annotations

import json
import subprocess
import textwrap
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import runlake.pyfunc
import runlake.sklearn
from runlake.models import Model, ModelSchemaError
from sklearn.datasets import make_classification
from sklearn.linear_model import LinearRegression, LogisticRegression

from bench import mlflow_env

# creating MLflow's venv the first time takes a minute or two; later runs find it made
pytestmark = pytest.mark.timeout(1800)

MLFLOW_SCRIPT = textwrap.dedent(
    """
    import json, sys
    import numpy as np
    import pandas as pd
    import mlflow, mlflow.pyfunc, mlflow.sklearn
    from mlflow.models import infer_signature
    from sklearn.linear_model import LogisticRegression

    spec = json.load(open(sys.argv[1]))
    X = pd.DataFrame(spec["X"]["data"], columns=spec["X"]["columns"])
    out = {"loaded": {}, "signatures": {}, "saved": {}}

    # 1. runlake's models, loaded by MLflow
    for name, path in spec["pyfunc"].items():
        model = mlflow.pyfunc.load_model(path)
        out["loaded"][name] = np.asarray(model.predict(X)).tolist()
        out["signatures"][name] = model.metadata.signature.to_dict()
    for name, path in spec["sklearn"].items():
        out["loaded"]["sk:" + name] = mlflow.sklearn.load_model(path).predict(X).tolist()

    # 2. MLflow's models, for runlake to load
    y = (X["a"] + X["b"] > 0).astype(int)
    clf = LogisticRegression().fit(X, y)
    mlflow.sklearn.save_model(
        clf,
        spec["mlflow_sklearn"],
        serialization_format="cloudpickle",
        signature=infer_signature(X, clf.predict(X)),
        input_example=X.head(3),
    )
    out["saved"]["sklearn"] = clf.predict(X).tolist()

    class Affine(mlflow.pyfunc.PythonModel):
        def load_context(self, context):
            with open(context.artifacts["coef"]) as f:
                self.coef = json.load(f)

        def predict(self, context, model_input, params=None):
            scale = (params or {}).get("scale", 1.0)
            total = sum(model_input[k] * v for k, v in self.coef.items())
            return (total * scale).to_numpy()

    with open(spec["coef_file"], "w") as f:
        json.dump({"a": 0.5, "b": -2.0, "c": 3.0}, f)
    mlflow.pyfunc.save_model(
        spec["mlflow_pyfunc"],
        python_model=Affine(),
        artifacts={"coef": spec["coef_file"]},
        signature=infer_signature(X, params={"scale": 1.0}),
        input_example=X.head(2),
    )
    reloaded = mlflow.pyfunc.load_model(spec["mlflow_pyfunc"])
    out["saved"]["pyfunc"] = np.asarray(reloaded.predict(X)).tolist()
    out["saved"]["pyfunc_scaled"] = np.asarray(reloaded.predict(X, params={"scale": 2.0})).tolist()

    json.dump(out, open(sys.argv[2], "w"))
    """
)


def _data() -> pd.DataFrame:
    x, _ = make_classification(n_samples=50, n_features=2, n_redundant=0, random_state=3)
    rng = np.random.default_rng(3)
    return pd.DataFrame({"a": x[:, 0], "b": x[:, 1], "c": rng.integers(0, 5, size=50)})


def _mlflow_python() -> str:
    pins = [f"{d}=={metadata.version(d)}" for d in ("scikit-learn", "cloudpickle", "numpy")]
    return mlflow_env.python(pins)


def _mlflow_env() -> dict[str, str]:
    env = mlflow_env.env()
    env.update(
        MLFLOW_ENABLE_TELEMETRY="false",
        MLFLOW_DISABLE_TELEMETRY="true",
        DO_NOT_TRACK="1",
        # MLflow 3.17 refuses to unpickle any model unless told the source is trusted
        MLFLOW_ALLOW_PICKLE_DESERIALIZATION="true",
    )
    return env


class Exchange:
    """Everything both sides produced, computed once for the module's tests."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.X = _data()
        self.expected: dict[str, list[Any]] = {}
        self.paths: dict[str, Path] = {}
        self.mlflow: dict[str, Any] = {}


def _save_runlake_models(ex: Exchange) -> None:
    X = ex.X
    y = (X["a"] - X["b"] > 0).astype(int)
    clf = LogisticRegression().fit(X, y)
    reg = LinearRegression().fit(X, X["a"] * 2 + X["c"])
    ex.paths["clf"] = ex.root / "rl_clf"
    ex.paths["reg"] = ex.root / "rl_reg"
    runlake.sklearn.save_model(clf, ex.paths["clf"], input_example=X.head(3))
    runlake.sklearn.save_model(
        reg, ex.paths["reg"], input_example=X.head(3), serialization_format="pickle"
    )

    # Defined in a function, so cloudpickle carries the class by value (as for a notebook's
    # __main__): MLflow's venv has no module to import it from, and no runlake either.
    class Weighted(runlake.pyfunc.PythonModel):
        def load_context(self, context: runlake.pyfunc.PythonModelContext) -> None:
            self.weights = json.loads(Path(context.artifacts["weights"]).read_text())

        def predict(
            self,
            context: runlake.pyfunc.PythonModelContext,
            model_input: pd.DataFrame,
            params: dict[str, Any] | None = None,
        ) -> Any:
            return sum(model_input[k] * w for k, w in self.weights.items()).to_numpy()

    weights = ex.root / "weights.json"
    weights.write_text(json.dumps({"a": 1.5, "b": -0.25, "c": 2.0}))
    ex.paths["custom"] = ex.root / "rl_custom"
    runlake.pyfunc.save_model(
        ex.paths["custom"],
        python_model=Weighted(),
        artifacts={"weights": str(weights)},
        input_example=X.head(2),
    )
    for name in ("clf", "reg", "custom"):
        ex.expected[name] = runlake.pyfunc.load_model(ex.paths[name]).predict(X).tolist()
    ex.expected["sk:clf"] = clf.predict(X).tolist()
    ex.expected["sk:reg"] = reg.predict(X).tolist()


@pytest.fixture(scope="module")
def exchange(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Exchange]:
    ex = Exchange(tmp_path_factory.mktemp("interop"))
    _save_runlake_models(ex)
    spec = {
        "X": {"columns": list(ex.X.columns), "data": ex.X.to_numpy(dtype=object).tolist()},
        "pyfunc": {k: str(ex.paths[k]) for k in ("clf", "reg", "custom")},
        "sklearn": {k: str(ex.paths[k]) for k in ("clf", "reg")},
        "mlflow_sklearn": str(ex.root / "ml_sklearn"),
        "mlflow_pyfunc": str(ex.root / "ml_pyfunc"),
        "coef_file": str(ex.root / "coef.json"),
    }
    (ex.root / "spec.json").write_text(json.dumps(spec))
    (ex.root / "mlflow_side.py").write_text(MLFLOW_SCRIPT)
    proc = subprocess.run(
        [
            _mlflow_python(),
            str(ex.root / "mlflow_side.py"),
            str(ex.root / "spec.json"),
            str(ex.root / "out.json"),
        ],
        capture_output=True,
        text=True,
        env=_mlflow_env(),
        cwd=ex.root,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    ex.mlflow = json.loads((ex.root / "out.json").read_text())
    yield ex


def test_mlflow_pyfunc_loads_runlake_models_with_identical_predictions(
    exchange: Exchange,
) -> None:
    for name in ("clf", "reg", "custom"):
        assert exchange.mlflow["loaded"][name] == exchange.expected[name], name


def test_mlflow_sklearn_loads_runlake_estimators(exchange: Exchange) -> None:
    for name in ("sk:clf", "sk:reg"):
        assert exchange.mlflow["loaded"][name] == exchange.expected[name], name


def test_mlflow_reads_runlake_signatures_as_written(exchange: Exchange) -> None:
    for name in ("clf", "reg", "custom"):
        ours = Model.load(exchange.paths[name]).signature
        assert ours is not None
        assert exchange.mlflow["signatures"][name] == ours.to_dict(), name


def test_runlake_loads_mlflow_sklearn_model(exchange: Exchange) -> None:
    path = exchange.root / "ml_sklearn"
    want = exchange.mlflow["saved"]["sklearn"]
    assert runlake.sklearn.load_model(path).predict(exchange.X).tolist() == want
    pyfunc = runlake.pyfunc.load_model(path)
    assert pyfunc.predict(exchange.X).tolist() == want
    assert pyfunc.metadata.extra["mlflow_version"] == mlflow_env.VERSION
    example = pyfunc.metadata.load_input_example(path)
    pd.testing.assert_frame_equal(example, exchange.X.head(3))
    with pytest.raises(ModelSchemaError) as info:
        pyfunc.predict(exchange.X.drop(columns=["c"]))
    assert info.value.column == "c"


def test_runlake_loads_mlflow_custom_pyfunc_without_mlflow(exchange: Exchange) -> None:
    # runlake's venv has no mlflow: the pickle's mlflow base class is stood in for
    model = runlake.pyfunc.load_model(exchange.root / "ml_pyfunc")
    assert model.predict(exchange.X).tolist() == exchange.mlflow["saved"]["pyfunc"]
    scaled = model.predict(exchange.X, params={"scale": 2.0}).tolist()
    assert scaled == exchange.mlflow["saved"]["pyfunc_scaled"]
