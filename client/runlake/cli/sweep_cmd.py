"""``runlake sweep SCRIPT --space FILE``: a sweep of a script's objective, on Spark.

The script is imported as a module (its ``if __name__ == "__main__":`` block does not run)
and its ``objective`` function (``--objective`` names another) is the trial. The script is
pickled by value, so executors need not import it; its folder is put on the Python path
of the driver and of local executors for the helpers it imports. Heavy imports (pyspark,
optuna) happen only when the command runs.
"""

from __future__ import annotations

import importlib.util
import os
import re
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from runlake.cli._output import Output, emit
from runlake.errors import InvalidArgument

__all__ = ["load_objective", "sweep"]

_SUMMARY = ("sweep_run_id", "best_run_id", "best_value", "best_params", "n_complete",
            "n_pruned", "n_failed")  # fmt: skip


def load_objective(script: Path, name: str) -> Any:
    """The function ``name`` of the Python file ``script``, ready to be shipped to executors."""
    if not script.is_file():
        raise InvalidArgument(f"no such file: {script}", field="script")
    folder = str(script.resolve().parent)
    if folder not in sys.path:
        sys.path.insert(0, folder)
    parts = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    if folder not in parts:  # local executors inherit the driver's environment
        os.environ["PYTHONPATH"] = os.pathsep.join([folder, *parts])
    module_name = "runlake_sweep_" + re.sub(r"\W", "_", script.stem)
    spec = importlib.util.spec_from_file_location(module_name, script)
    if spec is None or spec.loader is None:
        raise InvalidArgument(f"{script} is not a Python file", field="script")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
    import cloudpickle  # type: ignore[import-untyped]

    cloudpickle.register_pickle_by_value(module)
    fn = getattr(module, name, None)
    if not callable(fn):
        raise InvalidArgument(f"{script} defines no function {name!r}", field="objective")
    return fn


def sweep(
    ctx: typer.Context,
    script: Annotated[Path, typer.Argument(help="Python file defining the objective.")],
    space: Annotated[
        Path,
        typer.Option(
            "--space",
            "-s",
            help="Search space file (YAML or JSON): per name, one of uniform, loguniform, "
            "randint, choice.",
        ),
    ],
    metric: Annotated[str, typer.Option("--metric", "-m", help="The metric to optimise.")],
    mode: Annotated[str, typer.Option("--mode", help="min or max.")] = "min",
    algo: Annotated[str, typer.Option("--algo", help="tpe, random or grid.")] = "tpe",
    max_trials: Annotated[
        int | None, typer.Option("--max-trials", "-n", min=1, help="Default: the grid's size.")
    ] = None,
    parallelism: Annotated[
        int, typer.Option("--parallelism", "-p", min=1, help="Trials at once.")
    ] = 2,
    early_stopping: Annotated[
        str | None, typer.Option("--early-stopping", help="asha or median.")
    ] = None,
    objective: Annotated[
        str, typer.Option("--objective", help="The function's name in the script.")
    ] = "objective",
    experiment: Annotated[
        str | None, typer.Option("--experiment", "-e", help="Experiment name (created if new).")
    ] = None,
    run_name: Annotated[str | None, typer.Option("--run-name")] = None,
    seed: Annotated[int | None, typer.Option("--seed")] = None,
    resume: Annotated[
        str | None, typer.Option("--resume", help="Run id of a sweep to continue.")
    ] = None,
    master: Annotated[
        str | None,
        typer.Option("--master", help="Spark master (default: local[PARALLELISM])."),
    ] = None,
    output: Annotated[Output, typer.Option("--output", "-o", help="table, json or csv.")] = (
        Output.table
    ),
) -> None:
    """Search a space for the best params of a script's objective; trials run on Spark."""
    import runlake
    from runlake.sweeps import load_space_file
    from runlake.sweeps.driver import check_arguments
    from runlake.sweeps.executor import default_spark

    root = ctx.find_root()
    if isinstance(root.obj, str):
        runlake.set_tracking_uri(root.obj)
    domains = load_space_file(space)
    fn = load_objective(script, objective)
    check_arguments(
        fn, domains, metric=metric, mode=mode, algo=algo, max_trials=max_trials,
        parallelism=parallelism, early_stopping=early_stopping,
    )  # fmt: skip
    if experiment:
        runlake.set_experiment(experiment)
    spark = default_spark(parallelism, master=master)
    result = runlake.sweep(
        fn, domains, metric=metric, mode=mode, algo=algo, max_trials=max_trials,  # type: ignore[arg-type]
        parallelism=parallelism, early_stopping=early_stopping, spark=spark, seed=seed,
        run_name=run_name, resume=resume, progress=output is Output.table,
    )  # fmt: skip
    if output is Output.table:
        table = result.trials
        rows = [{str(k): v for k, v in r.items()} for r in table.to_dict("records")]
        emit(rows, [str(c) for c in table.columns], output, f"sweep {result.sweep_run_id}")
        if result.best_run_id is None:
            typer.echo(f"no trial completed; sweep run {result.sweep_run_id}")
        else:
            typer.echo(
                f"best {metric}={result.best_value:.6g} run {result.best_run_id} "
                f"params {result.best_params}; sweep run {result.sweep_run_id}"
            )
    else:
        emit(
            [
                {  # the keys of _SUMMARY
                    "sweep_run_id": result.sweep_run_id,
                    "best_run_id": result.best_run_id,
                    "best_value": result.best_value,
                    "best_params": result.best_params,
                    "n_complete": result.n_complete,
                    "n_pruned": result.n_pruned,
                    "n_failed": result.n_failed,
                }
            ],
            list(_SUMMARY),
            output,
        )
