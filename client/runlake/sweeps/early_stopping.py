"""Early stopping rules, decided on the driver from the trials' intermediate metrics.

The rules are Optuna's pruners: :class:`ASHA` is its ``SuccessiveHalvingPruner``
(asynchronous successive halving: a trial reaching a rung continues only if it is in the
top ``1/reduction_factor`` of the trials that reached that rung), :class:`Median` its
``MedianPruner`` (stop a trial whose best value so far is worse than the median of the
completed trials at the same step). ``early_stopping="asha"`` / ``"median"`` take the
defaults; an Optuna ``BasePruner`` instance is accepted as it is.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from runlake.errors import InvalidArgument

if TYPE_CHECKING:
    from optuna.pruners import BasePruner

__all__ = ["ASHA", "EarlyStopping", "Median", "describe", "resolve_pruner"]


@dataclass(frozen=True)
class ASHA:
    """Asynchronous successive halving (Li et al. 2018), through Optuna's pruner.

    ``min_resource``: steps every trial gets before its first rung; ``reduction_factor``:
    1 in this many trials goes on at each rung; ``min_early_stopping_rate``: rungs skipped.
    """

    min_resource: int = 1
    reduction_factor: int = 3
    min_early_stopping_rate: int = 0

    def __post_init__(self) -> None:
        if self.min_resource < 1:
            raise InvalidArgument("must be at least 1", field="early_stopping.min_resource")
        if self.reduction_factor < 2:
            raise InvalidArgument("must be at least 2", field="early_stopping.reduction_factor")
        if self.min_early_stopping_rate < 0:
            raise InvalidArgument(
                "must be 0 or more", field="early_stopping.min_early_stopping_rate"
            )


@dataclass(frozen=True)
class Median:
    """The median stopping rule (Golovin et al. 2017), through Optuna's pruner.

    No trial is stopped before ``n_startup_trials`` have completed, nor before its own
    ``n_warmup_steps``; the rule is checked every ``interval_steps`` steps.
    """

    n_startup_trials: int = 5
    n_warmup_steps: int = 0
    interval_steps: int = 1

    def __post_init__(self) -> None:
        if self.n_startup_trials < 0:
            raise InvalidArgument("must be 0 or more", field="early_stopping.n_startup_trials")
        if self.n_warmup_steps < 0:
            raise InvalidArgument("must be 0 or more", field="early_stopping.n_warmup_steps")
        if self.interval_steps < 1:
            raise InvalidArgument("must be at least 1", field="early_stopping.interval_steps")


EarlyStopping = ASHA | Median

_NAMES: dict[str, type[ASHA] | type[Median]] = {"asha": ASHA, "median": Median}


def _rule(early_stopping: Any) -> EarlyStopping | None:
    if early_stopping is None or isinstance(early_stopping, ASHA | Median):
        return early_stopping
    if isinstance(early_stopping, str):
        cls = _NAMES.get(early_stopping.strip().lower())
        if cls is None:
            raise InvalidArgument(
                f"{early_stopping!r} is not one of {', '.join(_NAMES)}", field="early_stopping"
            )
        return cls()
    return None


def resolve_pruner(early_stopping: Any) -> BasePruner | None:
    """The Optuna pruner for ``early_stopping`` (None: no early stopping)."""
    import optuna

    rule = _rule(early_stopping)
    if isinstance(rule, ASHA):
        return optuna.pruners.SuccessiveHalvingPruner(
            min_resource=rule.min_resource,
            reduction_factor=rule.reduction_factor,
            min_early_stopping_rate=rule.min_early_stopping_rate,
        )
    if isinstance(rule, Median):
        return optuna.pruners.MedianPruner(
            n_startup_trials=rule.n_startup_trials,
            n_warmup_steps=rule.n_warmup_steps,
            interval_steps=rule.interval_steps,
        )
    if early_stopping is None:
        return None
    if isinstance(early_stopping, optuna.pruners.BasePruner):
        return early_stopping
    raise InvalidArgument(
        f"must be 'asha', 'median', ASHA(...), Median(...) or an optuna pruner, "
        f"got {early_stopping!r}",
        field="early_stopping",
    )


def describe(early_stopping: Any) -> dict[str, Any] | None:
    """A JSON description of the rule, recorded on the sweep's run (compared on resume)."""
    rule = _rule(early_stopping)
    if rule is not None:
        return {"rule": type(rule).__name__.lower(), **asdict(rule)}
    if early_stopping is None:
        return None
    return {"rule": type(early_stopping).__name__}
