"""Distributed hyperparameter sweeps on Spark, recorded in runlake.

>>> import runlake
>>> from runlake.sweeps import choice, loguniform, randint
>>> def objective(params):
...     for epoch in range(10):
...         runlake.log_metric("loss", train_epoch(params), step=epoch)  # doctest: +SKIP
...     return evaluate(params)  # doctest: +SKIP
>>> result = runlake.sweep(  # doctest: +SKIP
...     objective,
...     {"lr": loguniform(1e-4, 1e-1), "depth": randint(2, 8), "opt": choice(["adam", "sgd"])},
...     metric="loss", mode="min", algo="tpe", max_trials=50, parallelism=4,
...     early_stopping="asha",
... )
>>> result.best_params, result.best_value, result.best_run_id  # doctest: +SKIP

Each trial is a Spark job and a child run of the sweep's run; samplers and pruners are
Optuna's (``pip install 'runlake[sweeps]'``), imported only when a sweep starts. See
docs/decisions/0014-sweeps.md.
"""

from runlake.sweeps.driver import sweep
from runlake.sweeps.early_stopping import ASHA, Median
from runlake.sweeps.results import SweepResult
from runlake.sweeps.space import (
    Choice,
    LogUniform,
    RandInt,
    Uniform,
    choice,
    load_space_file,
    loguniform,
    randint,
    uniform,
)
from runlake.sweeps.trial import Trial, TrialPruned, current_trial

__all__ = [
    "ASHA",
    "Choice",
    "LogUniform",
    "Median",
    "RandInt",
    "SweepResult",
    "Trial",
    "TrialPruned",
    "Uniform",
    "choice",
    "current_trial",
    "load_space_file",
    "loguniform",
    "randint",
    "sweep",
    "uniform",
]
