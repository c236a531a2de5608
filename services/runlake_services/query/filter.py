"""MLflow's search filter syntax, plus OR and parentheses, parsed to an AST and rendered to SQL.

Values are always bound parameters and identifiers are resolved by the caller to
column expressions it controls, so no user text ever becomes SQL text. An
identifier the caller cannot resolve (a key no run has logged) renders as FALSE:
MLflow's rule that a run lacking a compared key never matches, without an error.

Grammar (keywords are case-insensitive; AND binds tighter than OR)::

    expr       := and_expr ("OR" and_expr)*
    and_expr   := atom ("AND" atom)*
    atom       := "(" expr ")" | comparison
    comparison := identifier op value
    identifier := entity "." (bare_key | `quoted key` | "quoted key")
    value      := number | 'string' | "string" | "(" string ("," string)* ")"

Strings take ``''`` for a quote and a backslash before any character stands for
that character.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from runlake.errors import InvalidArgument

__all__ = [
    "EXPERIMENT_GRAMMAR",
    "RUN_GRAMMAR",
    "And",
    "Comparison",
    "Grammar",
    "Identifier",
    "Node",
    "Or",
    "OrderKey",
    "Resolver",
    "format_filter",
    "parse_experiment_filter",
    "parse_filter",
    "parse_order_by",
    "quote_ident",
    "render_order_by",
    "render_where",
]

Entity = Literal["metric", "param", "tag", "attribute"]
Value = float | str | tuple[str, ...]

NUMERIC_OPS = ("=", "!=", "<", ">", "<=", ">=")
STRING_OPS = ("=", "!=", "LIKE", "ILIKE", "IN", "NOT IN")

_ENTITY_ALIASES: dict[str, Entity] = {
    "metric": "metric",
    "metrics": "metric",
    "param": "param",
    "params": "param",
    "parameter": "param",
    "parameters": "param",
    "tag": "tag",
    "tags": "tag",
    "attribute": "attribute",
    "attributes": "attribute",
    "attr": "attribute",
    "run": "attribute",
}
_ENTITY_PREFIX: dict[Entity, str] = {
    "metric": "metrics",
    "param": "params",
    "tag": "tags",
    "attribute": "attributes",
}


@dataclass(frozen=True)
class Grammar:
    """What one search accepts: runs and experiments share the parser, not the vocabulary."""

    entities: frozenset[Entity]
    string_attributes: frozenset[str]
    numeric_attributes: frozenset[str]
    attribute_aliases: dict[str, str]
    string_ops: tuple[str, ...]
    #: attributes that may be written without the ``attributes.`` prefix (experiments' ``name``)
    bare_attributes: frozenset[str] = frozenset()

    def is_numeric(self, ident: Identifier) -> bool:
        return ident.entity == "metric" or (
            ident.entity == "attribute" and ident.key in self.numeric_attributes
        )


RUN_GRAMMAR = Grammar(
    entities=frozenset({"metric", "param", "tag", "attribute"}),
    string_attributes=frozenset(
        {
            "run_id",
            "run_name",
            "status",
            "user_id",
            "artifact_uri",
            "experiment_id",
            "lifecycle_stage",
        }
    ),
    numeric_attributes=frozenset({"start_time", "end_time"}),
    attribute_aliases={"created": "start_time", "run_uuid": "run_id"},
    string_ops=STRING_OPS,
)

EXPERIMENT_GRAMMAR = Grammar(
    entities=frozenset({"tag", "attribute"}),
    string_attributes=frozenset({"name", "experiment_id"}),
    numeric_attributes=frozenset({"creation_time", "last_update_time"}),
    attribute_aliases={},
    string_ops=("=", "!=", "LIKE", "ILIKE"),
    bare_attributes=frozenset({"name", "experiment_id", "creation_time", "last_update_time"}),
)


@dataclass(frozen=True)
class Identifier:
    entity: Entity
    key: str


@dataclass(frozen=True)
class Comparison:
    ident: Identifier
    op: str
    value: Value


@dataclass(frozen=True)
class And:
    items: tuple[Node, ...]


@dataclass(frozen=True)
class Or:
    items: tuple[Node, ...]


Node = Comparison | And | Or


@dataclass(frozen=True)
class OrderKey:
    ident: Identifier
    ascending: bool


# -- tokens --

_TOKEN = re.compile(
    r"""\s*(?:
      (?P<lparen>\() | (?P<rparen>\)) | (?P<comma>,)
    | (?P<op><=|>=|!=|<>|==|=|<|>)
    | (?P<string>'(?:[^'\\]|\\.|'')*'|"(?:[^"\\]|\\.)*")
    | (?P<backtick>`[^`]*`)
    | (?P<number>[-+]?(?:\d+\.?\d*(?:[eE][-+]?\d+)?|\.\d+(?:[eE][-+]?\d+)?))
    | (?P<word>[A-Za-z_][\w.\-/:]*)
    )""",
    re.VERBOSE | re.DOTALL,
)
_ESCAPE = re.compile(r"''|\\(.)", re.DOTALL)


@dataclass(frozen=True)
class _Tok:
    kind: str
    text: str
    pos: int


def _tokenize(text: str, field: str) -> list[_Tok]:
    toks: list[_Tok] = []
    pos = 0
    end = len(text.rstrip())
    while pos < end:
        m = _TOKEN.match(text, pos)
        if m is None:
            start = len(text) - len(text[pos:].lstrip())
            what = text[start]
            hint = " (unterminated quote?)" if what in "'\"`" else ""
            raise InvalidArgument(f"unexpected character {what!r} at {start}{hint}", field=field)
        kind = m.lastgroup or ""
        toks.append(_Tok(kind, m.group(kind), m.start(kind)))
        pos = m.end()
    return toks


def _unquote(tok: _Tok) -> str:
    body = tok.text[1:-1]
    if tok.kind == "backtick":
        return body
    return _ESCAPE.sub(lambda m: "'" if m.group(1) is None else m.group(1), body)


# -- parser --


class _Parser:
    def __init__(self, text: str, field: str, grammar: Grammar, context: str = "") -> None:
        self.field = field
        self.grammar = grammar
        self.context = context
        self.toks = _tokenize(text, field)
        self.i = 0

    def fail(self, message: str) -> InvalidArgument:
        return InvalidArgument(f"{self.context}{message}", field=self.field)

    def expected(self, what: str) -> InvalidArgument:
        if self.i < len(self.toks):
            tok = self.toks[self.i]
            return self.fail(f"expected {what} at {tok.pos}, got {tok.text!r}")
        return self.fail(f"expected {what} at the end")

    def peek(self) -> _Tok | None:
        return self.toks[self.i] if self.i < len(self.toks) else None

    def take(self, kinds: tuple[str, ...], what: str) -> _Tok:
        tok = self.peek()
        if tok is None or tok.kind not in kinds:
            raise self.expected(what)
        self.i += 1
        return tok

    def keyword(self, *words: str) -> str | None:
        tok = self.peek()
        if tok is not None and tok.kind == "word" and tok.text.upper() in words:
            self.i += 1
            return tok.text.upper()
        return None

    def done(self, what: str) -> None:
        if self.peek() is not None:
            raise self.expected(what)

    def expr(self) -> Node:
        items = [self.and_expr()]
        while self.keyword("OR"):
            items.append(self.and_expr())
        return items[0] if len(items) == 1 else Or(tuple(items))

    def and_expr(self) -> Node:
        items = [self.atom()]
        while self.keyword("AND"):
            items.append(self.atom())
        return items[0] if len(items) == 1 else And(tuple(items))

    def atom(self) -> Node:
        tok = self.peek()
        if tok is not None and tok.kind == "lparen":
            self.i += 1
            node = self.expr()
            self.take(("rparen",), "')'")
            return node
        return self.comparison()

    def identifier(self) -> Identifier:
        g = self.grammar
        tok = self.take(("word",), _expected_identifier(g))
        if tok.text in g.bare_attributes:
            return Identifier("attribute", tok.text)
        entity_word, dot, key = tok.text.partition(".")
        entity = _ENTITY_ALIASES.get(entity_word.lower())
        if not dot or entity is None or entity not in g.entities:
            self.i -= 1
            raise self.expected(_expected_identifier(g))
        if not key:  # entity.`quoted key` or entity."quoted key"
            key = _unquote(self.take(("backtick", "string"), "a key (quoted or bare) after '.'"))
            if not key:
                raise self.fail(f"empty key at {tok.pos}")
        if entity == "attribute":
            key = g.attribute_aliases.get(key, key)
            known = g.string_attributes | g.numeric_attributes
            if key not in known:
                raise self.fail(
                    f"unknown attribute {key!r} at {tok.pos}; expected one of "
                    + ", ".join(sorted(known))
                )
        return Identifier(entity, key)

    def comparison(self) -> Comparison:
        ident = self.identifier()
        numeric = self.grammar.is_numeric(ident)
        allowed = NUMERIC_OPS if numeric else self.grammar.string_ops
        tok = self.peek()
        op: str | None = None
        if tok is not None and tok.kind == "op":
            op = {"<>": "!=", "==": "="}.get(tok.text, tok.text)
            self.i += 1
        elif tok is not None and tok.kind == "word":
            op = self.keyword("LIKE", "ILIKE", "IN")
            if op is None and self.keyword("NOT"):
                if self.keyword("IN") is None:
                    raise self.expected("IN after NOT")
                op = "NOT IN"
        if op is None:
            raise self.expected("a comparator (" + " ".join(allowed) + ")")
        if op not in allowed:
            assert tok is not None
            raise self.fail(
                f"{op} at {tok.pos} cannot compare {_describe(ident)}; "
                f"expected one of {' '.join(allowed)}"
            )
        value: Value
        if op in ("IN", "NOT IN"):
            self.take(("lparen",), "'(' opening a list of quoted strings")
            items = [_unquote(self.take(("string",), "a quoted string"))]
            while self.take(("comma", "rparen"), "',' or ')'").kind == "comma":
                items.append(_unquote(self.take(("string",), "a quoted string")))
            value = tuple(items)
        elif numeric:
            value = float(self.take(("number",), f"a number to compare {_describe(ident)}").text)
        else:
            value = _unquote(self.take(("string",), f"a quoted string for {_describe(ident)}"))
        return Comparison(ident, op, value)


def _expected_identifier(g: Grammar) -> str:
    prefixes = [f"{_ENTITY_PREFIX[e]}.<key>" for e in ("metric", "param", "tag") if e in g.entities]
    return "an identifier (" + ", ".join([*prefixes, "attributes.<name>"]) + ")"


def _describe(ident: Identifier) -> str:
    return f"{_ENTITY_PREFIX[ident.entity]}.{ident.key}"


def parse_filter(
    text: str, *, grammar: Grammar = RUN_GRAMMAR, field: str = "filter"
) -> Node | None:
    """The AST of ``text``; None for an empty filter. Raises InvalidArgument naming ``field``."""
    if not text.strip():
        return None
    p = _Parser(text, field, grammar)
    node = p.expr()
    p.done("AND, OR or the end")
    return node


def parse_experiment_filter(text: str) -> Node | None:
    """``name``/``attributes.name`` and ``tags.<key>``: the run parser with a smaller vocabulary."""
    return parse_filter(text, grammar=EXPERIMENT_GRAMMAR)


def parse_order_by(
    clauses: list[str], *, grammar: Grammar = RUN_GRAMMAR, field: str = "order_by"
) -> list[OrderKey]:
    """``["metrics.loss DESC", "attributes.start_time"]`` → order keys (ASC by default)."""
    out: list[OrderKey] = []
    for j, clause in enumerate(clauses):
        p = _Parser(clause, field, grammar, context=f"clause {j} ({clause!r}): ")
        ident = p.identifier()
        ascending = p.keyword("ASC", "DESC") != "DESC"
        p.done("ASC, DESC or the end")
        out.append(OrderKey(ident, ascending))
    return out


# -- text (the inverse of parsing: logs, tests, clients building filters) --


def _quote_string(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "''") + "'"


def _format_ident(ident: Identifier) -> str:
    prefix = _ENTITY_PREFIX[ident.entity]
    if re.fullmatch(r"[\w.\-/:]+", ident.key):
        return f"{prefix}.{ident.key}"
    if "`" not in ident.key:
        return f"{prefix}.`{ident.key}`"
    return prefix + '."' + ident.key.replace("\\", "\\\\").replace('"', '\\"') + '"'


def format_filter(node: Node) -> str:
    """Filter text that parses back to ``node`` (compound children are parenthesised)."""
    if isinstance(node, Comparison):
        if isinstance(node.value, tuple):
            value = "(" + ", ".join(_quote_string(v) for v in node.value) + ")"
        elif isinstance(node.value, float):
            value = repr(node.value)
        else:
            value = _quote_string(node.value)
        return f"{_format_ident(node.ident)} {node.op} {value}"
    joiner = " AND " if isinstance(node, And) else " OR "
    return joiner.join(
        format_filter(i) if isinstance(i, Comparison) else f"({format_filter(i)})"
        for i in node.items
    )


# -- SQL --

#: Maps an identifier to a SQL expression (appending any parameters it binds), or None when
#: nothing has that key: the comparison is then FALSE and the order key a constant.
Resolver = Callable[[Identifier, list[Any]], str | None]


def quote_ident(name: str) -> str:
    """A double-quoted SQL identifier; embedded quotes doubled."""
    return '"' + name.replace('"', '""') + '"'


def render_where(node: Node, resolve: Resolver, params: list[Any]) -> str:
    """SQL for ``node``, its values appended to ``params`` in placeholder order."""
    if isinstance(node, Comparison):
        lhs = resolve(node.ident, params)
        if lhs is None:
            return "FALSE"
        if isinstance(node.value, tuple):
            params.extend(node.value)
            marks = ", ".join("?" * len(node.value))
            return f"({lhs} {node.op} ({marks}))"
        params.append(node.value)
        return f"({lhs} {node.op} ?)"
    joiner = " AND " if isinstance(node, And) else " OR "
    return "(" + joiner.join(render_where(i, resolve, params) for i in node.items) + ")"


def render_order_by(keys: list[OrderKey], resolve: Resolver, params: list[Any]) -> list[str]:
    """ORDER BY terms, NULLs last in either direction; unknown keys are dropped (all NULL)."""
    terms = []
    for key in keys:
        expr = resolve(key.ident, params)
        if expr is not None:
            terms.append(f"{expr} {'ASC' if key.ascending else 'DESC'} NULLS LAST")
    return terms
