"""Search spaces: ``{"lr": loguniform(1e-4, 1e-1), "depth": randint(2, 8), ...}``.

A space is a plain dict of parameter name → domain. The four domains are small frozen
classes checked when they are made (a bad bound is an error naming the parameter once the
space is validated, before any trial runs) and translated to Optuna distributions only
inside the sweep driver, so building a space imports nothing heavy.

>>> from runlake.sweeps import choice, loguniform, randint, uniform
>>> space = {"lr": loguniform(1e-4, 1e-1), "depth": randint(2, 8), "act": choice(["relu", "tanh"])}
>>> validate_space(space)["depth"]
randint(2, 8)

``randint(lo, hi)`` draws integers ``lo <= x < hi`` (as numpy and Ray Tune do), so
``randint(2, 8)`` never gives 8. A space file (YAML or JSON) holds the same thing::

    lr: {loguniform: [0.0001, 0.1]}
    depth: {randint: [2, 8]}
    act: {choice: [relu, tanh]}
"""

from __future__ import annotations

import itertools
import json
import math
import numbers
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runlake.errors import InvalidArgument

if TYPE_CHECKING:
    from optuna.distributions import BaseDistribution

__all__ = [
    "MAX_GRID",
    "Choice",
    "Domain",
    "LogUniform",
    "RandInt",
    "Uniform",
    "choice",
    "grid_points",
    "load_space_file",
    "loguniform",
    "parse_param",
    "randint",
    "space_from_dict",
    "space_to_dict",
    "to_optuna",
    "uniform",
    "validate_space",
]

#: The most combinations a grid search enumerates (a larger grid is almost always a typo).
MAX_GRID = 100_000
#: Values a ``choice`` may hold: what a param string can name unambiguously.
ChoiceValue = None | bool | int | float | str


def _real(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise InvalidArgument(f"{what} must be a number, got {value!r}")
    out = float(value)
    if not math.isfinite(out):
        raise InvalidArgument(f"{what} must be finite, got {value!r}")
    return out


def _int(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise InvalidArgument(f"{what} must be an integer, got {value!r}")
    return int(value)


@dataclass(frozen=True)
class Uniform:
    """Floats drawn uniformly from ``[low, high]``."""

    low: float
    high: float

    def __post_init__(self) -> None:
        lo, hi = _real(self.low, "low"), _real(self.high, "high")
        if not lo < hi:
            raise InvalidArgument(f"low ({lo}) must be below high ({hi})")
        object.__setattr__(self, "low", lo)
        object.__setattr__(self, "high", hi)

    def __repr__(self) -> str:
        return f"uniform({self.low!r}, {self.high!r})"


@dataclass(frozen=True)
class LogUniform:
    """Floats whose logarithm is uniform on ``[log low, log high]`` (learning rates)."""

    low: float
    high: float

    def __post_init__(self) -> None:
        lo, hi = _real(self.low, "low"), _real(self.high, "high")
        if lo <= 0:
            raise InvalidArgument(f"low must be above 0 for a log scale, got {lo}")
        if not lo < hi:
            raise InvalidArgument(f"low ({lo}) must be below high ({hi})")
        object.__setattr__(self, "low", lo)
        object.__setattr__(self, "high", hi)

    def __repr__(self) -> str:
        return f"loguniform({self.low!r}, {self.high!r})"


@dataclass(frozen=True)
class RandInt:
    """Integers ``low <= x < high``."""

    low: int
    high: int

    def __post_init__(self) -> None:
        lo, hi = _int(self.low, "low"), _int(self.high, "high")
        if not lo < hi:
            raise InvalidArgument(f"low ({lo}) must be below high ({hi}); high is exclusive")
        object.__setattr__(self, "low", lo)
        object.__setattr__(self, "high", hi)

    def __repr__(self) -> str:
        return f"randint({self.low!r}, {self.high!r})"


@dataclass(frozen=True)
class Choice:
    """One of a list of values (None, bool, int, float or str), each with its own text form."""

    options: tuple[ChoiceValue, ...]

    def __post_init__(self) -> None:
        if isinstance(self.options, str | bytes) or not isinstance(self.options, Sequence):
            raise InvalidArgument(f"choice takes a list of values, got {self.options!r}")
        opts = tuple(self.options)
        if not opts:
            raise InvalidArgument("choice needs at least one value")
        for v in opts:
            if v is not None and not isinstance(v, bool | int | float | str):
                raise InvalidArgument(
                    f"choice values must be None, bool, int, float or str, got {v!r}"
                )
            if isinstance(v, float) and not math.isfinite(v):
                raise InvalidArgument(f"choice values must be finite, got {v!r}")
        # Optuna finds a value by ==, so 1, 1.0 and True would be one choice.
        for i, a in enumerate(opts):
            if any(a == b for b in opts[i + 1 :]):
                raise InvalidArgument(f"choice values must be distinct, {a!r} repeats")
        # A trial's params come back from runlake as strings: each value needs its own.
        texts = [str(v) for v in opts]
        dupes = sorted({t for t in texts if texts.count(t) > 1})
        if dupes:
            raise InvalidArgument(f"choice values must differ as text, {dupes} repeats")
        object.__setattr__(self, "options", opts)

    def __repr__(self) -> str:
        return f"choice({list(self.options)!r})"


Domain = Uniform | LogUniform | RandInt | Choice


def uniform(low: float, high: float) -> Uniform:
    """Floats uniform on ``[low, high]``."""
    return Uniform(low, high)


def loguniform(low: float, high: float) -> LogUniform:
    """Floats log-uniform on ``[low, high]``, ``0 < low < high``."""
    return LogUniform(low, high)


def randint(low: int, high: int) -> RandInt:
    """Integers ``low <= x < high`` (high exclusive)."""
    return RandInt(low, high)


def choice(options: Sequence[ChoiceValue]) -> Choice:
    """One of ``options``."""
    if isinstance(options, str | bytes) or not isinstance(options, Sequence):
        raise InvalidArgument(f"choice takes a list of values, got {options!r}")
    return Choice(tuple(options))


def validate_space(space: Any) -> dict[str, Domain]:
    """The space as a checked dict; InvalidArgument naming ``space.<name>`` otherwise."""
    if not isinstance(space, Mapping):
        raise InvalidArgument(
            f"must be a dict of name -> domain, got {type(space).__name__}", field="space"
        )
    if not space:
        raise InvalidArgument("is empty: give at least one parameter", field="space")
    out: dict[str, Domain] = {}
    for name, domain in space.items():
        if not isinstance(name, str) or not name or len(name) > 250:
            raise InvalidArgument(f"{name!r} is not a parameter name (1-250 chars)", field="space")
        if not isinstance(domain, Uniform | LogUniform | RandInt | Choice):
            raise InvalidArgument(
                f"must be uniform(), loguniform(), randint() or choice(), got {domain!r}",
                field=f"space.{name}",
            )
        out[name] = domain
    return out


def to_optuna(space: Mapping[str, Domain]) -> dict[str, BaseDistribution]:
    """Optuna distributions for the space (imports optuna)."""
    from optuna.distributions import (
        CategoricalDistribution,
        FloatDistribution,
        IntDistribution,
    )

    out: dict[str, BaseDistribution] = {}
    for name, d in space.items():
        if isinstance(d, Uniform):
            out[name] = FloatDistribution(d.low, d.high)
        elif isinstance(d, LogUniform):
            out[name] = FloatDistribution(d.low, d.high, log=True)
        elif isinstance(d, RandInt):
            out[name] = IntDistribution(d.low, d.high - 1)
        else:
            out[name] = CategoricalDistribution(d.options)
    return out


def grid_points(space: Mapping[str, Domain]) -> list[dict[str, Any]]:
    """Every combination, in a fixed order; only choice() and randint() can be gridded."""
    axes: list[list[Any]] = []
    size = 1
    for name, d in space.items():
        if isinstance(d, Choice):
            values: list[Any] = list(d.options)
        elif isinstance(d, RandInt):
            values = list(range(d.low, d.high)) if d.high - d.low <= MAX_GRID else []
        else:
            raise InvalidArgument(
                f"{d!r} is continuous; grid search needs choice([...]) or randint(lo, hi)",
                field=f"space.{name}",
            )
        size *= max(1, len(values))
        if not values or size > MAX_GRID:
            raise InvalidArgument(
                f"the grid would exceed {MAX_GRID:,} combinations", field=f"space.{name}"
            )
        axes.append(values)
    names = list(space)
    return [dict(zip(names, combo, strict=True)) for combo in itertools.product(*axes)]


def parse_param(domain: Domain, text: str, field: str) -> Any:
    """A trial's param as read back from runlake (a string) → its typed value."""
    try:
        if isinstance(domain, Uniform | LogUniform):
            return float(text)
        if isinstance(domain, RandInt):
            return int(text)
    except ValueError:
        raise InvalidArgument(f"{text!r} does not fit {domain!r}", field=field) from None
    for option in domain.options:
        if str(option) == text:
            return option
    raise InvalidArgument(f"{text!r} is not one of {domain!r}", field=field)


# -- files and JSON --

_KINDS: dict[str, type[Uniform] | type[LogUniform] | type[RandInt]] = {
    "uniform": Uniform,
    "loguniform": LogUniform,
    "randint": RandInt,
}


def space_to_dict(space: Mapping[str, Domain]) -> dict[str, dict[str, Any]]:
    """The JSON form a space file holds (and a sweep's parent run records)."""
    out: dict[str, dict[str, Any]] = {}
    for name, d in space.items():
        if isinstance(d, Choice):
            out[name] = {"choice": list(d.options)}
        else:
            kind = {Uniform: "uniform", LogUniform: "loguniform", RandInt: "randint"}[type(d)]
            out[name] = {kind: [d.low, d.high]}
    return out


def space_from_dict(raw: Any, source: str = "space") -> dict[str, Domain]:
    """Read ``{name: {uniform: [lo, hi]} | {choice: [...]} ...}``; errors name the entry."""
    if not isinstance(raw, Mapping) or not raw:
        raise InvalidArgument("must be a non-empty mapping of name -> domain", field=source)
    out: dict[str, Domain] = {}
    for name, spec in raw.items():
        where = f"{source}.{name}"
        if not isinstance(spec, Mapping) or len(spec) != 1:
            raise InvalidArgument(
                "must be one of {uniform: [lo, hi]}, {loguniform: [lo, hi]}, "
                f"{{randint: [lo, hi]}}, {{choice: [...]}}; got {spec!r}",
                field=where,
            )
        ((kind, args),) = spec.items()
        try:
            if kind == "choice":
                if not isinstance(args, list):
                    raise InvalidArgument(f"choice takes a list, got {args!r}")
                out[str(name)] = Choice(tuple(args))
            elif kind in _KINDS:
                if not isinstance(args, list) or len(args) != 2:
                    raise InvalidArgument(f"{kind} takes [low, high], got {args!r}")
                out[str(name)] = _KINDS[kind](*args)
            else:
                raise InvalidArgument(
                    f"unknown domain {kind!r}; use uniform, loguniform, randint or choice"
                )
        except InvalidArgument as exc:
            raise InvalidArgument(str(exc), field=where) from None
    return validate_space(out)


def load_space_file(path: str | Path) -> dict[str, Domain]:
    """A space from a YAML (``.yaml``/``.yml``) or JSON file."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise InvalidArgument(f"cannot read {p}: {exc.strerror}", field="space_file") from None
    try:
        if p.suffix.lower() in (".yaml", ".yml"):
            import yaml

            raw = yaml.safe_load(text)
        else:
            raw = json.loads(text)
    except ValueError as exc:  # json.JSONDecodeError and yaml.YAMLError's parsers
        raise InvalidArgument(f"{p} is not valid: {exc}", field="space_file") from None
    except Exception as exc:  # yaml.YAMLError is not a ValueError
        raise InvalidArgument(f"{p} is not valid: {exc}", field="space_file") from None
    return space_from_dict(raw, "space_file")
