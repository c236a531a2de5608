"""The base classes custom models subclass. Standard library only, on purpose.

A custom model is pickled with cloudpickle, and this module is pickled *by value* with it
(see ``runlake.pyfunc._pickle``): the pickle then carries these classes instead of a
reference to ``runlake``, so MLflow (or any Python with cloudpickle) unpickles a runlake
model without runlake installed. Anything this module imported would have to exist there
too, hence the standard library only.
"""

from __future__ import annotations

import types
from collections.abc import Callable
from typing import Any

__all__ = ["PythonModel", "PythonModelContext"]


class PythonModelContext:
    """What ``load_context`` receives: local paths of the model's artifacts, and its config."""

    def __init__(self, artifacts: dict[str, str], model_config: dict[str, Any] | None = None):
        self._artifacts = dict(artifacts)
        self._model_config = dict(model_config or {})

    @property
    def artifacts(self) -> dict[str, str]:
        """Artifact name → absolute local path of the copy inside the model directory."""
        return self._artifacts

    @property
    def model_config(self) -> dict[str, Any]:
        """Configuration given at load time (empty unless a loader passes one)."""
        return self._model_config


class PythonModel:
    """Subclass this to package arbitrary Python as a model.

    Override ``predict(self, context, model_input, params=None)`` (or the context-free
    ``predict(self, model_input, params=None)``, as MLflow 3 also accepts), and
    ``load_context(self, context)`` to read artifacts once when the model is loaded, not on
    every predict. ``model_input`` is what the signature enforcement produced: a DataFrame
    for a column schema, a numpy array or dict of arrays for a tensor schema.
    """

    def load_context(self, context: PythonModelContext) -> None:
        """Called once after unpickling, with the artifacts' local paths; default: nothing."""

    def predict(self, context: PythonModelContext, model_input: Any, params: Any = None) -> Any:
        """Score ``model_input``; subclasses must override."""
        raise NotImplementedError(f"{type(self).__name__} must implement predict()")

    @property
    def predict_type_hints(self) -> Any:
        """No type hints: read by MLflow's pyfunc wrapper, which then passes input unchanged."""
        return types.SimpleNamespace(input=None, output=None)


class _FunctionModel(PythonModel):
    """A plain function ``f(model_input)`` saved as a model (``python_model=f``)."""

    def __init__(self, func: Callable[[Any], Any]) -> None:
        self.func = func

    def predict(self, model_input: Any, params: Any = None) -> Any:  # type: ignore[override]
        """Call the function on the input (params are not passed to a plain function)."""
        return self.func(model_input)
