"""pyfunc models the scoring tests of both paths log: pickled by value, so Spark's Python
workers need not import this module."""

from __future__ import annotations

import os
import sys
from typing import Any

import cloudpickle
import numpy as np
import pandas as pd
import runlake.pyfunc

cloudpickle.register_pickle_by_value(sys.modules[__name__])


class Verdict(runlake.pyfunc.PythonModel):
    """Two outputs: a label and a score."""

    def predict(self, context: Any, model_input: pd.DataFrame, params: Any = None) -> Any:
        score = model_input["a"] * 2.0
        return pd.DataFrame({"label": np.where(score > 0, "pos", "neg"), "score": score})


class CountsLoads(runlake.pyfunc.PythonModel):
    """Scores ``a * scale + shift``; appends its process id to a file each time it is loaded."""

    def __init__(self, log: str, *, scale: float = 1.0, shift: float = 0.0) -> None:
        self.log, self.scale, self.shift = log, scale, shift

    def load_context(self, context: Any) -> None:
        with open(self.log, "a") as f:
            f.write(f"{os.getpid()}\n")

    def predict(self, context: Any, model_input: pd.DataFrame, params: Any = None) -> Any:
        return np.asarray(model_input["a"], dtype=float) * self.scale + self.shift


class FailsToLoad(runlake.pyfunc.PythonModel):
    """A model whose load raises (a library missing on the executors, say)."""

    def load_context(self, context: Any) -> None:
        raise RuntimeError("this model cannot load here")

    def predict(self, context: Any, model_input: pd.DataFrame, params: Any = None) -> Any:
        return np.zeros(len(model_input))
