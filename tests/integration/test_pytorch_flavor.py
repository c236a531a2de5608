"""The pytorch flavor with the real torch: save, load, pyfunc predict, the signature enforced.

torch runs in its own venv (tests/integration/torch_env.py), which sees this venv's
packages, so the runlake under test is this checkout's.
"""

from __future__ import annotations

import json
import subprocess
import textwrap
from pathlib import Path

import pytest

from tests.integration import torch_env

# installing torch the first time takes a minute or two; later runs find the venv made
pytestmark = pytest.mark.timeout(1800)

SCRIPT = textwrap.dedent(
    """
    import json, sys, warnings
    caught = []  # every warning of the run (torch warns once per process, so from the start)
    warnings.simplefilter("always")
    warnings.showwarning = lambda message, *rest: caught.append(str(message))
    import numpy as np, pandas as pd, torch
    import runlake.pytorch, runlake.pyfunc
    from runlake.models import Model, ModelSchemaError

    class Scaled(torch.nn.Module):  # defined here: saved by value, as MLflow saves it
        def __init__(self):
            super().__init__()
            self.body = torch.nn.Sequential(
                torch.nn.Linear(3, 8), torch.nn.ReLU(), torch.nn.Dropout(0.5), torch.nn.Linear(8, 1)
            )
        def forward(self, x):
            return self.body(x) * 2.0

    torch.manual_seed(0)
    net = Scaled()
    X = pd.DataFrame(np.random.default_rng(0).normal(size=(6, 3)).astype("float32"),
                     columns=["a", "b", "c"])
    path = sys.argv[1]
    runlake.pytorch.save_model(net, path, input_example=X)
    net.eval()
    with torch.no_grad():
        expected = net(torch.tensor(X.to_numpy())).numpy()[:, 0].tolist()

    out = {"torch": torch.__version__}
    loaded = runlake.pytorch.load_model(path)
    out["loaded_type"] = type(loaded).__name__
    loaded.eval()
    with torch.no_grad():
        out["loaded"] = loaded(torch.tensor(X.to_numpy())).numpy()[:, 0].tolist()
    pyfunc = runlake.pyfunc.load_model(path)
    # twice: dropout must be off (eval mode), so the same rows score the same
    out["pyfunc"] = [np.asarray(pyfunc.predict(X)).ravel().tolist() for _ in range(2)]
    out["expected"] = expected
    out["flavors"] = sorted(Model.load(path).flavors)
    from pathlib import Path
    out["requirements"] = (Path(path) / "requirements.txt").read_text().split()
    try:
        pyfunc.predict(X.drop(columns=["b"]))
        out["missing"] = None
    except ModelSchemaError as exc:
        out["missing"] = str(exc)
    out["warnings"] = caught
    print(json.dumps(out))
    """
)


def test_a_real_torch_module_round_trips_through_the_pytorch_flavor(tmp_path: Path) -> None:
    exe = torch_env.python()
    script = tmp_path / "torch_round_trip.py"
    script.write_text(SCRIPT)
    done = subprocess.run(
        [exe, str(script), str(tmp_path / "model")],
        capture_output=True, text=True, env=torch_env.env(), timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["torch"].startswith(torch_env.TORCH)
    assert out["loaded_type"] == "Scaled"
    assert out["loaded"] == pytest.approx(out["expected"], rel=1e-6)
    first, second = out["pyfunc"]
    assert first == pytest.approx(out["expected"], rel=1e-6) and first == second
    assert out["flavors"] == ["python_function", "pytorch"]
    assert any(r.startswith(f"torch=={torch_env.TORCH}") for r in out["requirements"])
    # torch warns (once) when a tensor is made over a read-only array, as pandas gives
    assert not [w for w in out["warnings"] if "not writable" in w], out["warnings"]
    assert out["missing"] is not None and out["missing"].startswith("b: ")
    assert "missing" in out["missing"]
