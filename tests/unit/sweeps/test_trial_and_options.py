"""What runlake.sweep refuses before it starts anything, and the trial's value rules."""

from __future__ import annotations

from typing import Any

import pytest
from runlake.errors import InvalidArgument
from runlake.sweeps import ASHA, Median, sweep, uniform
from runlake.sweeps.early_stopping import describe, resolve_pruner
from runlake.sweeps.trial import Trial, _takes_trial, _value

SPACE = {"x": uniform(0, 1)}


def _objective(params: dict[str, Any]) -> float:
    return float(params["x"])


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"objective": 3}, "objective"),
        ({"metric": ""}, "metric"),
        ({"mode": "minimize"}, "mode"),
        ({"algo": "bayes"}, "algo"),
        ({"max_trials": 0}, "max_trials"),
        ({"max_trials": None}, "max_trials"),
        ({"max_trials": 2.5}, "max_trials"),
        ({"parallelism": 0}, "parallelism"),
        ({"early_stopping": "hyperband-ish"}, "early_stopping"),
        ({"early_stopping": 3}, "early_stopping"),
        ({"space": {"x": (0, 1)}}, "space.x"),
        ({"space": {"x": uniform(0, 1)}, "algo": "grid"}, "space.x"),
        ({"poll_interval_s": 0}, "poll_interval_s"),
    ],
)
def test_bad_arguments_name_the_field_before_anything_runs(
    kwargs: dict[str, Any], field: str
) -> None:
    args: dict[str, Any] = {"objective": _objective, "space": SPACE, "metric": "loss",
                            "max_trials": 4, "spark": object()}  # fmt: skip
    args.update(kwargs)
    objective, space = args.pop("objective"), args.pop("space")
    with pytest.raises(InvalidArgument, match=rf"^{field}: "):
        sweep(objective, space, **args)


def test_early_stopping_rules_map_to_optuna_pruners() -> None:
    import optuna

    assert isinstance(resolve_pruner("asha"), optuna.pruners.SuccessiveHalvingPruner)
    assert isinstance(resolve_pruner("Median"), optuna.pruners.MedianPruner)
    assert isinstance(resolve_pruner(ASHA(min_resource=2)), optuna.pruners.SuccessiveHalvingPruner)
    custom = optuna.pruners.PercentilePruner(25.0)
    assert resolve_pruner(custom) is custom
    assert resolve_pruner(None) is None
    assert describe(Median(n_startup_trials=3)) == {
        "rule": "median", "n_startup_trials": 3, "n_warmup_steps": 0, "interval_steps": 1,
    }  # fmt: skip
    with pytest.raises(InvalidArgument, match=r"^early_stopping\.reduction_factor"):
        ASHA(reduction_factor=1)


def test_objective_arity_decides_whether_it_gets_the_trial() -> None:
    assert not _takes_trial(lambda params: 0.0)
    assert _takes_trial(lambda params, trial: 0.0)
    assert _takes_trial(lambda *args: 0.0)
    assert not _takes_trial(lambda params, *, trial=None: 0.0)


def test_trial_value_rules() -> None:
    trial = Trial(0, "r" * 32, {}, "loss", "s" * 32)
    assert _value(0.5, trial, client=None) == 0.5
    assert _value(3, trial, client=None) == 3.0
    trial._last = (4, 0.25)
    assert _value(None, trial, client=None) == 0.25  # returned nothing: the last report
    for bad in (float("nan"), "0.5", True, [0.5]):
        with pytest.raises(InvalidArgument, match=r"^objective: "):
            _value(bad, trial, client=None)
