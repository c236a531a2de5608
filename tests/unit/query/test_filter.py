"""The search filter parser: MLflow's syntax plus OR and parentheses."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from runlake.errors import InvalidArgument
from runlake_services.query.filter import (
    And,
    Comparison,
    Identifier,
    Node,
    Or,
    parse_filter,
    parse_order_by,
)


def test_each_entity_and_alias() -> None:
    node = parse_filter(
        "metric.a > 1 AND params.b = 'x' AND tag.c LIKE 'y%' AND attr.status = 'FINISHED'"
        " AND attributes.created >= 5"
    )
    assert isinstance(node, And)
    idents = [c.ident for c in node.items if isinstance(c, Comparison)]
    assert idents == [
        Identifier("metric", "a"),
        Identifier("param", "b"),
        Identifier("tag", "c"),
        Identifier("attribute", "status"),
        Identifier("attribute", "start_time"),
    ]


def test_and_binds_tighter_than_or_and_parentheses_override() -> None:
    a, b, c = "metrics.a = 1", "metrics.b = 2", "metrics.c = 3"
    flat = parse_filter(f"{a} OR {b} AND {c}")
    assert isinstance(flat, Or) and isinstance(flat.items[1], And)
    grouped = parse_filter(f"({a} OR {b}) AND {c}")
    assert isinstance(grouped, And) and isinstance(grouped.items[0], Or)


def test_quoted_keys_and_in_lists() -> None:
    node = parse_filter("tags.`my tag` IN ('a', 'b''c') AND metrics.\"val loss\" < -1e-3")
    assert isinstance(node, And)
    first, second = node.items
    assert first == Comparison(Identifier("tag", "my tag"), "IN", ("a", "b'c"))
    assert second == Comparison(Identifier("metric", "val loss"), "<", -0.001)


def test_keys_with_dots_slashes_and_dashes() -> None:
    node = parse_filter("params.model.optimizer/lr-max = '3'")
    assert node == Comparison(Identifier("param", "model.optimizer/lr-max"), "=", "3")


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("metrics.loss <<< 3", "number"),
        ("metrics.loss <", "value"),
        ("params.lr < '3'", "cannot compare"),
        ("metrics.loss = 'x'", "number"),
        ("datasets.x = 'a'", "not one of"),
        ("attributes.color = 'red'", "unknown attribute"),
        ("(metrics.a = 1", "')'"),
        ("metrics.a = 1 garbage", "AND, OR or the end"),
        ("metrics.a = 1 AND", "identifier"),
        ("params.a IN 'x'", "'('"),
        ("loss < 1", "identifier"),
        ("metrics.a = 1 ;", "unexpected character"),
    ],
)
def test_malformed_filters_name_the_field(text: str, fragment: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        parse_filter(text)
    assert str(info.value).startswith("filter: ") and fragment in str(info.value)


def test_order_by() -> None:
    keys = parse_order_by(["metrics.loss DESC", "attributes.start_time", "params.lr asc"])
    assert [(k.ident.key, k.ascending) for k in keys] == [
        ("loss", False),
        ("start_time", True),
        ("lr", True),
    ]
    with pytest.raises(InvalidArgument, match=r"^order_by\[0\]"):
        parse_order_by(["metrics.loss SIDEWAYS"])


# -- property tests --

_key = st.text(alphabet=st.sampled_from("abcxyz_09.-/ "), min_size=1, max_size=12).filter(
    lambda k: k.strip() == k and k != ""
)
_string = st.text(alphabet=st.characters(blacklist_categories=["Cs"]), max_size=10)


def _comparisons() -> st.SearchStrategy[Comparison]:
    metric = st.builds(
        lambda k, op, v: Comparison(Identifier("metric", k), op, v),
        _key,
        st.sampled_from(["=", "!=", "<", ">", "<=", ">="]),
        st.floats(allow_nan=False, allow_infinity=False, width=32).map(float),
    )
    text = st.builds(
        lambda e, k, op, v: Comparison(Identifier(e, k), op, v),
        st.sampled_from(["param", "tag"]),
        _key,
        st.sampled_from(["=", "!=", "LIKE", "ILIKE"]),
        _string,
    )
    listed = st.builds(
        lambda k, op, v: Comparison(Identifier("tag", k), op, tuple(v)),
        _key,
        st.sampled_from(["IN", "NOT IN"]),
        st.lists(_string, min_size=1, max_size=3),
    )
    return st.one_of(metric, text, listed)


def _nodes() -> st.SearchStrategy[Node]:
    return st.recursive(
        _comparisons(),
        lambda inner: st.one_of(
            st.lists(inner, min_size=2, max_size=3).map(lambda xs: And(tuple(xs))),
            st.lists(inner, min_size=2, max_size=3).map(lambda xs: Or(tuple(xs))),
        ),
        max_leaves=6,
    )


def _quote(s: str) -> str:
    return "'" + s.replace("\\", "\\\\").replace("'", "''") + "'"


def _render(node: Node) -> str:
    if isinstance(node, Comparison):
        entity = {"metric": "metrics", "param": "params", "tag": "tags"}[node.ident.entity]
        ident = f"{entity}.`{node.ident.key}`"
        if isinstance(node.value, tuple):
            value = "(" + ", ".join(_quote(v) for v in node.value) + ")"
        elif isinstance(node.value, float):
            value = repr(node.value)
        else:
            value = _quote(node.value)
        return f"{ident} {node.op} {value}"
    joiner = " AND " if isinstance(node, And) else " OR "
    return "(" + joiner.join(_render(i) for i in node.items) + ")"


def _flatten(node: Node) -> Node:
    """Parentheses around a same-kind group parse as one flat group; normalise to compare."""
    if isinstance(node, Comparison):
        return node
    kind = type(node)
    items: list[Node] = []
    for item in node.items:
        flat = _flatten(item)
        items.extend(flat.items if isinstance(flat, kind) else [flat])  # type: ignore[union-attr]
    return kind(tuple(items))


@settings(max_examples=300, deadline=None)
@given(_nodes())
def test_rendered_filters_parse_back_to_the_same_tree(node: Node) -> None:
    parsed = parse_filter(_render(node))
    assert parsed is not None
    assert _flatten(parsed) == _flatten(node)


@settings(max_examples=500, deadline=None)
@given(st.text(max_size=60))
def test_arbitrary_text_parses_or_raises_invalid_argument(text: str) -> None:
    try:
        parse_filter(text)
    except InvalidArgument as exc:
        assert str(exc).startswith("filter: ")
