"""The search filter parser: MLflow's syntax plus OR and parentheses, and its SQL rendering."""

from __future__ import annotations

from typing import Any

import duckdb
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
    OrderKey,
    format_filter,
    parse_experiment_filter,
    parse_filter,
    parse_order_by,
    quote_ident,
    render_order_by,
    render_where,
)

M, P, T, A = "metric", "param", "tag", "attribute"


def test_empty_filter_is_no_filter() -> None:
    assert parse_filter("") is None
    assert parse_filter("   \n") is None


@pytest.mark.parametrize(
    ("text", "ident"),
    [
        ("metrics.loss > 1", Identifier(M, "loss")),
        ("metric.loss > 1", Identifier(M, "loss")),
        ("params.lr = '1'", Identifier(P, "lr")),
        ("param.lr = '1'", Identifier(P, "lr")),
        ("parameter.lr = '1'", Identifier(P, "lr")),
        ("tags.team = 'x'", Identifier(T, "team")),
        ("tag.team = 'x'", Identifier(T, "team")),
        ("attributes.status = 'FINISHED'", Identifier(A, "status")),
        ("attribute.status = 'FINISHED'", Identifier(A, "status")),
        ("attr.status = 'FINISHED'", Identifier(A, "status")),
        ("run.status = 'FINISHED'", Identifier(A, "status")),
        ("attributes.created >= 5", Identifier(A, "start_time")),
        ("METRICS.loss > 1", Identifier(M, "loss")),
    ],
)
def test_entities_and_aliases(text: str, ident: Identifier) -> None:
    node = parse_filter(text)
    assert isinstance(node, Comparison) and node.ident == ident


@pytest.mark.parametrize(
    "attribute",
    [
        "run_id",
        "run_name",
        "status",
        "user_id",
        "artifact_uri",
        "experiment_id",
        "lifecycle_stage",
    ],
)
def test_every_string_attribute_takes_string_comparators(attribute: str) -> None:
    for op in ("=", "!=", "LIKE", "ILIKE"):
        assert parse_filter(f"attributes.{attribute} {op} 'x'") == Comparison(
            Identifier(A, attribute), op, "x"
        )
    assert parse_filter(f"attributes.{attribute} NOT IN ('x', 'y')") == Comparison(
        Identifier(A, attribute), "NOT IN", ("x", "y")
    )


@pytest.mark.parametrize("op", ["=", "!=", "<", ">", "<=", ">="])
@pytest.mark.parametrize("ident", ["metrics.m", "attributes.start_time", "attributes.end_time"])
def test_numeric_comparators(ident: str, op: str) -> None:
    node = parse_filter(f"{ident} {op} -1.5e2")
    assert isinstance(node, Comparison) and (node.op, node.value) == (op, -150.0)


@pytest.mark.parametrize("op", ["=", "!=", "LIKE", "ILIKE", "like", "ilike"])
@pytest.mark.parametrize("entity", ["params", "tags"])
def test_string_comparators(entity: str, op: str) -> None:
    node = parse_filter(f"{entity}.k {op} 'v%'")
    assert isinstance(node, Comparison) and (node.op, node.value) == (op.upper(), "v%")


def test_in_and_not_in_lists() -> None:
    assert parse_filter("params.a IN ('x')") == Comparison(Identifier(P, "a"), "IN", ("x",))
    assert parse_filter("tags.a not in ('x', \"y\")") == Comparison(
        Identifier(T, "a"), "NOT IN", ("x", "y")
    )


def test_quoted_keys_and_strings() -> None:
    node = parse_filter(
        'tags.`my tag` = \'it\'\'s\' AND metrics."val loss" < 1 AND params.`a.b` = "q\\"x"'
    )
    assert node == And(
        (
            Comparison(Identifier(T, "my tag"), "=", "it's"),
            Comparison(Identifier(M, "val loss"), "<", 1.0),
            Comparison(Identifier(P, "a.b"), "=", 'q"x'),
        )
    )


def test_bare_keys_with_dots_slashes_dashes_and_colons() -> None:
    node = parse_filter("params.model.optimizer/lr-max:0 = '3'")
    assert node == Comparison(Identifier(P, "model.optimizer/lr-max:0"), "=", "3")


def test_and_binds_tighter_than_or() -> None:
    a, b, c = (f"metrics.{k} = 1" for k in "abc")
    ca, cb, cc = (Comparison(Identifier(M, k), "=", 1.0) for k in "abc")
    assert parse_filter(f"{a} OR {b} AND {c}") == Or((ca, And((cb, cc))))
    assert parse_filter(f"{a} AND {b} OR {c}") == Or((And((ca, cb)), cc))
    assert parse_filter(f"{a} and {b} and {c}") == And((ca, cb, cc))


def test_parentheses_override_precedence() -> None:
    a, b, c = (f"metrics.{k} = 1" for k in "abc")
    ca, cb, cc = (Comparison(Identifier(M, k), "=", 1.0) for k in "abc")
    assert parse_filter(f"({a} OR {b}) AND {c}") == And((Or((ca, cb)), cc))
    assert parse_filter(f"(({a}))") == ca
    assert parse_filter(f"{a} AND ({b} OR ({c}))") == And((ca, Or((cb, cc))))


@pytest.mark.parametrize(
    ("text", "fragments"),
    [
        ("metrics.loss <<< 3", ["at 14", "number"]),
        ("metrics.loss <", ["number", "at the end"]),
        ("params.lr < '3'", ["< at 10", "cannot compare params.lr"]),
        ("metrics.loss = 'x'", ["number", "at 15"]),
        ("metrics.loss LIKE 'x'", ["LIKE", "cannot compare metrics.loss"]),
        ("params.p IN ('a', 3)", ["quoted string", "at 18"]),
        ("datasets.x = 'a'", ["identifier", "at 0"]),
        ("attributes.color = 'red'", ["unknown attribute 'color'", "start_time"]),
        ("(metrics.a = 1", ["')'", "at the end"]),
        ("metrics.a = 1)", ["AND, OR or the end", "at 13"]),
        ("metrics.a = 1 garbage", ["AND, OR or the end", "'garbage'"]),
        ("metrics.a = 1 AND", ["identifier", "at the end"]),
        ("metrics.a = 1 OR OR metrics.b = 2", ["identifier", "at 17"]),
        ("params.a IN 'x'", ["'('"]),
        ("params.a NOT 'x'", ["IN after NOT"]),
        ("params.a IN ()", ["quoted string"]),
        ("params.a IN ('x' 'y')", ["',' or ')'"]),
        ("loss < 1", ["identifier"]),
        ("metrics.a = 1 ;", ["unexpected character ';' at 14"]),
        ("params.a = 'unterminated", ["unexpected character", "unterminated quote"]),
        ("metrics.`` = 1", ["empty key"]),
        ("metrics. = 1", ["a key"]),
        ("metrics.a", ["comparator", "at the end"]),
        ("()", ["identifier", "at 1"]),
    ],
)
def test_malformed_filters_say_where_and_what_was_expected(text: str, fragments: list[str]) -> None:
    with pytest.raises(InvalidArgument) as info:
        parse_filter(text)
    assert info.value.field == "filter"
    message = str(info.value)
    assert message.startswith("filter: ")
    for fragment in fragments:
        assert fragment in message


def test_order_by() -> None:
    keys = parse_order_by(
        ["metrics.loss DESC", "attributes.start_time", "params.lr asc", "tags.`a b` Desc"]
    )
    assert keys == [
        OrderKey(Identifier(M, "loss"), False),
        OrderKey(Identifier(A, "start_time"), True),
        OrderKey(Identifier(P, "lr"), True),
        OrderKey(Identifier(T, "a b"), False),
    ]


@pytest.mark.parametrize(
    "clause", ["metrics.loss SIDEWAYS", "loss", "", "metrics.loss DESC ASC", "attributes.nope"]
)
def test_bad_order_by_names_order_by(clause: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        parse_order_by(["metrics.ok", clause])
    assert info.value.field == "order_by"
    assert "clause 1" in str(info.value)


def test_experiment_filter_vocabulary() -> None:
    assert parse_experiment_filter("name = 'a'") == Comparison(Identifier(A, "name"), "=", "a")
    assert parse_experiment_filter("attributes.name ILIKE 'A%' OR tags.`t 1` != 'x'") == Or(
        (
            Comparison(Identifier(A, "name"), "ILIKE", "A%"),
            Comparison(Identifier(T, "t 1"), "!=", "x"),
        )
    )
    for bad in ("metrics.m > 1", "params.p = 'x'", "name IN ('a')", "name < 'a'", "nom = 'a'"):
        with pytest.raises(InvalidArgument, match=r"^filter: "):
            parse_experiment_filter(bad)


# -- SQL rendering --


def _resolve_all(ident: Identifier, params: list[Any]) -> str | None:
    return quote_ident(f"{ident.entity}:{ident.key}")


def test_values_are_bound_never_spliced() -> None:
    node = parse_filter("params.p = 'x''); DROP TABLE runs; --' OR tags.t IN ('a', 'b')")
    assert node is not None
    params: list[Any] = []
    sql = render_where(node, _resolve_all, params)
    assert "DROP" not in sql and sql.count("?") == 3
    assert params == ["x'); DROP TABLE runs; --", "a", "b"]


def test_identifiers_are_quoted() -> None:
    assert quote_ident('we"ird') == '"we""ird"'


def test_unresolvable_keys_render_false_and_drop_out_of_order() -> None:
    node = parse_filter("metrics.gone != 1 OR metrics.here = 1")
    assert node is not None

    def resolve(ident: Identifier, params: list[Any]) -> str | None:
        return "here" if ident.key == "here" else None

    params: list[Any] = []
    assert render_where(node, resolve, params) == "(FALSE OR (here = ?))"
    assert params == [1.0]
    order = parse_order_by(["metrics.gone", "metrics.here DESC"])
    assert render_order_by(order, resolve, []) == ["here DESC NULLS LAST"]


# -- properties --

_key = st.text(
    alphabet=st.characters(blacklist_categories=["Cs"], blacklist_characters="`"),
    min_size=1,
    max_size=12,
)
_string = st.text(alphabet=st.characters(blacklist_categories=["Cs"]), max_size=10)
_number = st.floats(allow_nan=False, allow_infinity=False)


def _comparisons() -> st.SearchStrategy[Comparison]:
    numeric = st.builds(
        Comparison,
        st.one_of(
            st.builds(Identifier, st.just(M), _key),
            st.sampled_from([Identifier(A, "start_time"), Identifier(A, "end_time")]),
        ),
        st.sampled_from(["=", "!=", "<", ">", "<=", ">="]),
        _number,
    )
    idents = st.one_of(
        st.builds(Identifier, st.sampled_from([P, T]), _key),
        st.sampled_from([Identifier(A, "status"), Identifier(A, "run_name")]),
    )
    text = st.builds(Comparison, idents, st.sampled_from(["=", "!=", "LIKE", "ILIKE"]), _string)
    listed = st.builds(
        Comparison,
        idents,
        st.sampled_from(["IN", "NOT IN"]),
        st.lists(_string, min_size=1, max_size=3).map(tuple),
    )
    return st.one_of(numeric, text, listed)


def _nodes() -> st.SearchStrategy[Node]:
    return st.recursive(
        _comparisons(),
        lambda inner: st.one_of(
            st.lists(inner, min_size=2, max_size=3).map(lambda xs: And(tuple(xs))),
            st.lists(inner, min_size=2, max_size=3).map(lambda xs: Or(tuple(xs))),
        ),
        max_leaves=8,
    )


@settings(max_examples=400, deadline=None)
@given(_nodes())
def test_formatted_filters_parse_back_to_the_same_tree(node: Node) -> None:
    assert parse_filter(format_filter(node)) == node


def _backtick_text(node: Node) -> str:
    """An independent rendering: every key in backticks, every group parenthesised."""
    if isinstance(node, Comparison):
        ident = f"{node.ident.entity}s.`{node.ident.key}`"
        if isinstance(node.value, tuple):
            value = "(" + ", ".join(_sq(v) for v in node.value) + ")"
        elif isinstance(node.value, float):
            value = repr(node.value)
        else:
            value = _sq(node.value)
        return f"{ident} {node.op.lower()} {value}"
    joiner = " and " if isinstance(node, And) else " or "
    return "(" + joiner.join(_backtick_text(i) for i in node.items) + ")"


def _sq(s: str) -> str:
    return "'" + s.replace("\\", "\\\\").replace("'", "''") + "'"


@settings(max_examples=200, deadline=None)
@given(_nodes())
def test_backtick_quoted_text_parses_to_the_same_tree(node: Node) -> None:
    assert parse_filter(_backtick_text(node)) == node


@settings(max_examples=200, deadline=None)
@given(_nodes())
def test_rendered_sql_binds_one_parameter_per_placeholder_and_runs(node: Node) -> None:
    cols = {c.ident: "DOUBLE" if isinstance(c.value, float) else "VARCHAR" for c in _leaves(node)}
    names = {ident: f"c{i}" for i, ident in enumerate(cols)}
    params: list[Any] = []
    sql = render_where(node, lambda ident, _: names[ident], params)
    assert sql.count("?") == len(params)
    con = duckdb.connect()
    con.execute("CREATE TABLE r (" + ", ".join(f"{names[i]} {t}" for i, t in cols.items()) + ")")
    con.execute(f"SELECT count(*) FROM r WHERE {sql}", params).fetchall()


def _leaves(node: Node) -> list[Comparison]:
    if isinstance(node, Comparison):
        return [node]
    return [leaf for item in node.items for leaf in _leaves(item)]


@settings(max_examples=500, deadline=None)
@given(st.text(max_size=80))
def test_arbitrary_text_parses_or_raises_invalid_argument(text: str) -> None:
    try:
        parse_filter(text)
    except InvalidArgument as exc:
        assert exc.field == "filter"


_TOKENS = [
    "metrics.a",
    "params.b",
    "tags.`c d`",
    "attributes.status",
    "attributes.start_time",
    "attr.nope",
    "=",
    "!=",
    "<",
    ">=",
    "LIKE",
    "ILIKE",
    "IN",
    "NOT",
    "AND",
    "OR",
    "(",
    ")",
    ",",
    "'x'",
    '"y"',
    "1",
    "-2.5e3",
    "`",
    "'",
]


@settings(max_examples=1000, deadline=None)
@given(st.lists(st.sampled_from(_TOKENS), max_size=12))
def test_token_soup_parses_or_raises_invalid_argument(tokens: list[str]) -> None:
    for parse in (parse_filter, parse_experiment_filter):
        try:
            parse(" ".join(tokens))
        except InvalidArgument as exc:
            assert exc.field == "filter"
    try:
        parse_order_by([" ".join(tokens)])
    except InvalidArgument as exc:
        assert exc.field == "order_by"
