"""Search spaces: domains check their bounds, round-trip through files and run params."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from runlake.errors import InvalidArgument
from runlake.sweeps import choice, load_space_file, loguniform, randint, uniform
from runlake.sweeps.space import (
    MAX_GRID,
    Choice,
    grid_points,
    parse_param,
    space_from_dict,
    space_to_dict,
    to_optuna,
    validate_space,
)

FINITE = st.floats(min_value=-1e9, max_value=1e9, allow_nan=False, allow_infinity=False)
POSITIVE = st.floats(min_value=1e-9, max_value=1e9, allow_nan=False)
INTS = st.integers(min_value=-(10**6), max_value=10**6)
CHOICE_VALUES = st.one_of(
    st.none(), st.booleans(), st.integers(-1000, 1000), FINITE, st.text(max_size=8)
)


@st.composite
def domains(draw: st.DrawFn) -> Any:
    kind = draw(st.sampled_from(["uniform", "loguniform", "randint", "choice"]))
    if kind == "uniform":
        lo = draw(FINITE)
        return uniform(lo, lo + draw(st.floats(1e-3, 1e6)))
    if kind == "loguniform":
        lo = draw(POSITIVE)
        return loguniform(lo, lo * draw(st.floats(1.001, 1e6)))
    if kind == "randint":
        lo = draw(INTS)
        return randint(lo, draw(st.integers(lo + 1, lo + 10**6)))
    values = draw(st.lists(CHOICE_VALUES, min_size=1, max_size=6, unique_by=str))
    values = [v for i, v in enumerate(values) if all(v != w for w in values[:i])]
    return choice(values)


SPACES = st.dictionaries(st.text(alphabet="abcxyz_", min_size=1, max_size=6), domains(),
                         min_size=1, max_size=4)  # fmt: skip


@given(lo=FINITE, hi=FINITE)
def test_uniform_needs_low_below_high(lo: float, hi: float) -> None:
    if lo < hi:
        d = uniform(lo, hi)
        assert (d.low, d.high) == (lo, hi)
    else:
        with pytest.raises(InvalidArgument, match="must be below high"):
            uniform(lo, hi)


@given(lo=st.floats(max_value=0.0, allow_nan=False, allow_infinity=False), hi=POSITIVE)
def test_loguniform_needs_a_positive_low(lo: float, hi: float) -> None:
    with pytest.raises(InvalidArgument, match="above 0"):
        loguniform(lo, hi)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: uniform(0, float("inf")), "finite"),
        (lambda: uniform(float("nan"), 1), "finite"),
        (lambda: uniform("0", 1), "must be a number"),
        (lambda: uniform(True, 2), "must be a number"),
        (lambda: randint(0, 0), "exclusive"),
        (lambda: randint(0.5, 3), "must be an integer"),
        (lambda: choice([]), "at least one"),
        (lambda: choice("abc"), "a list of values"),
        (lambda: choice([1, "1"]), "differ as text"),
        (lambda: choice([1, True]), "distinct"),
        (lambda: choice([2, 2.0]), "distinct"),
        (lambda: choice([[1, 2]]), "None, bool, int, float or str"),
        (lambda: choice([float("nan")]), "finite"),
    ],
)
def test_bad_domains_are_refused(make: Any, message: str) -> None:
    with pytest.raises(InvalidArgument, match=message):
        make()


def test_validate_space_names_the_parameter() -> None:
    with pytest.raises(InvalidArgument, match=r"^space\.lr: must be uniform"):
        validate_space({"lr": (0.1, 0.2)})
    with pytest.raises(InvalidArgument, match=r"^space: is empty"):
        validate_space({})
    with pytest.raises(InvalidArgument, match=r"^space: must be a dict"):
        validate_space([uniform(0, 1)])
    with pytest.raises(InvalidArgument, match=r"^space: '' is not a parameter name"):
        validate_space({"": uniform(0, 1)})


@given(space=SPACES)
def test_space_round_trips_through_its_file_form(space: dict[str, Any]) -> None:
    as_json = json.loads(json.dumps(space_to_dict(space)))
    assert space_from_dict(as_json) == space


@given(space=SPACES, data=st.data())
def test_sampled_values_round_trip_through_run_params(space: dict[str, Any], data: Any) -> None:
    """A resumed driver reads params back as strings; each must parse to the same value."""
    dists = to_optuna(space)
    for name, d in space.items():
        if isinstance(d, Choice):
            value = data.draw(st.sampled_from(d.options))
        elif hasattr(d, "low") and isinstance(d.low, int):
            value = data.draw(st.integers(d.low, d.high - 1))
        else:
            value = data.draw(st.floats(d.low, d.high, allow_nan=False))
        assert dists[name]._contains(dists[name].to_internal_repr(value))
        back = parse_param(d, str(value), f"params.{name}")
        assert back == value and type(back) is type(value)


def test_randint_high_is_exclusive() -> None:
    dist = to_optuna({"k": randint(2, 5)})["k"]
    assert (dist.low, dist.high) == (2, 4)  # type: ignore[attr-defined]
    assert [p["k"] for p in grid_points({"k": randint(2, 5)})] == [2, 3, 4]


def test_parse_param_refuses_values_outside_the_domain() -> None:
    with pytest.raises(InvalidArgument, match=r"^params\.opt: 'rmsprop' is not one of"):
        parse_param(choice(["adam", "sgd"]), "rmsprop", "params.opt")
    with pytest.raises(InvalidArgument, match=r"^params\.k: 'x' does not fit"):
        parse_param(randint(0, 3), "x", "params.k")


def test_grid_is_every_combination() -> None:
    space = {"a": choice(["x", "y", "z"]), "k": randint(0, 4), "b": choice([True, False])}
    points = grid_points(space)
    assert len(points) == 3 * 4 * 2
    assert len({tuple(sorted(p.items())) for p in points}) == len(points)


def test_grid_refuses_continuous_and_huge_spaces() -> None:
    with pytest.raises(InvalidArgument, match=r"^space\.lr: .* is continuous"):
        grid_points({"k": randint(0, 3), "lr": loguniform(1e-3, 1e-1)})
    with pytest.raises(InvalidArgument, match=f"exceed {MAX_GRID:,}"):
        grid_points({"a": randint(0, 1000), "b": randint(0, 1000)})


def test_space_file_yaml_and_json(tmp_path: Path) -> None:
    yaml_file = tmp_path / "space.yaml"
    yaml_file.write_text(
        "lr: {loguniform: [0.0001, 0.1]}\ndepth: {randint: [2, 8]}\nact: {choice: [relu, tanh]}\n"
    )
    expected = {
        "lr": loguniform(1e-4, 0.1),
        "depth": randint(2, 8),
        "act": choice(["relu", "tanh"]),
    }
    assert load_space_file(yaml_file) == expected
    json_file = tmp_path / "space.json"
    json_file.write_text(json.dumps({"x": {"uniform": [0, 1]}}))
    assert load_space_file(json_file) == {"x": uniform(0, 1)}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("lr: {loguniform: [0, 0.1]}\n", r"^space_file\.lr: low must be above 0"),
        ("lr: {normal: [0, 1]}\n", r"^space_file\.lr: unknown domain 'normal'"),
        ("lr: {uniform: [0]}\n", r"^space_file\.lr: uniform takes \[low, high\]"),
        ("lr: [0, 1]\n", r"^space_file\.lr: must be one of"),
        ("opt: {choice: adam}\n", r"^space_file\.opt: choice takes a list"),
        ("- 1\n", r"^space_file: must be a non-empty mapping"),
        ("lr: {uniform: [0, 1\n", r"^space_file: .* is not valid"),
    ],
)
def test_bad_space_files_name_the_entry(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "space.yaml"
    path.write_text(text)
    with pytest.raises(InvalidArgument, match=message):
        load_space_file(path)


def test_missing_space_file() -> None:
    with pytest.raises(InvalidArgument, match=r"^space_file: cannot read"):
        load_space_file("/nonexistent/space.yaml")


def test_loguniform_distribution_is_on_a_log_scale() -> None:
    dist = to_optuna({"lr": loguniform(1e-5, 1.0)})["lr"]
    assert dist.log  # type: ignore[attr-defined]
    assert math.isclose(dist.low, 1e-5)  # type: ignore[attr-defined]
