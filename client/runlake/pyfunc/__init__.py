"""The python_function flavor: one ``predict`` for every model, and custom Python models.

>>> import runlake.pyfunc
>>> class AddOne(runlake.pyfunc.PythonModel):
...     def predict(self, context, model_input, params=None):
...         return model_input + 1
>>> runlake.pyfunc.save_model("add_one", python_model=AddOne())  # doctest: +SKIP
>>> runlake.pyfunc.load_model("add_one").predict(pd.DataFrame({"x": [1.0]}))  # doctest: +SKIP

Models are MLflow-format directories: ``mlflow.pyfunc.load_model`` reads them, and
``load_model`` here reads MLflow's python_function, sklearn and pytorch models.
"""

from runlake.pyfunc._base import PythonModel, PythonModelContext
from runlake.pyfunc.loader import PyFuncModel, load_model
from runlake.pyfunc.model import log_model, save_model

FLAVOR_NAME = "python_function"

__all__ = [
    "FLAVOR_NAME",
    "PyFuncModel",
    "PythonModel",
    "PythonModelContext",
    "load_model",
    "log_model",
    "save_model",
]
