"""MLflow's run search filter syntax, plus OR and parentheses, parsed to an AST and rendered
to SQL with bound parameters (values are never interpolated into the SQL text).

Grammar::

    expr       := and_expr ("OR" and_expr)*
    and_expr   := atom ("AND" atom)*
    atom       := "(" expr ")" | comparison
    comparison := entity "." key op value
    value      := number | string | "(" string ("," string)* ")"
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from runlake.errors import InvalidArgument

__all__ = [
    "And",
    "Comparison",
    "Identifier",
    "Node",
    "Or",
    "OrderKey",
    "Parser",
    "parse_filter",
    "parse_order_by",
]

Entity = Literal["metric", "param", "tag", "attribute"]

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
STRING_ATTRIBUTES = {
    "run_id",
    "run_name",
    "status",
    "user_id",
    "artifact_uri",
    "experiment_id",
    "lifecycle_stage",
}
NUMERIC_ATTRIBUTES = {"start_time", "end_time"}
_ATTRIBUTE_ALIASES = {"created": "start_time", "run_uuid": "run_id"}
NUMERIC_OPS = {"=", "!=", "<", ">", "<=", ">="}
STRING_OPS = {"=", "!=", "LIKE", "ILIKE", "IN", "NOT IN"}


@dataclass(frozen=True)
class Identifier:
    entity: Entity
    key: str

    @property
    def numeric(self) -> bool:
        return self.entity == "metric" or (
            self.entity == "attribute" and self.key in NUMERIC_ATTRIBUTES
        )


@dataclass(frozen=True)
class Comparison:
    ident: Identifier
    op: str
    value: float | str | tuple[str, ...]


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


_TOKEN = re.compile(
    r"""\s*(?:
      (?P<lparen>\() | (?P<rparen>\)) | (?P<comma>,)
    | (?P<op><=|>=|!=|<>|=|<|>)
    | (?P<string>'(?:[^'\\]|\\.|'')*'|"(?:[^"\\]|\\.)*")
    | (?P<backtick>`[^`]*`)
    | (?P<number>[-+]?(?:\d+\.?\d*(?:[eE][-+]?\d+)?|\.\d+(?:[eE][-+]?\d+)?))
    | (?P<word>[A-Za-z_][\w.\-/:]*)
    )""",
    re.VERBOSE,
)


@dataclass(frozen=True)
class _Tok:
    kind: str
    text: str
    pos: int


def _tokenize(text: str, field: str) -> list[_Tok]:
    toks: list[_Tok] = []
    pos = 0
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        m = _TOKEN.match(text, pos)
        if m is None or m.end() == pos:
            start = pos + (len(text[pos:]) - len(text[pos:].lstrip()))
            raise InvalidArgument(f"unexpected character {text[start]!r} at {start}", field=field)
        kind = m.lastgroup or ""
        toks.append(_Tok(kind, m.group(kind), m.start(kind)))
        pos = m.end()
    return toks


def _unquote(tok: _Tok) -> str:
    body = tok.text[1:-1]
    if tok.text[0] == "'":
        body = body.replace("''", "'")
    return re.sub(r"\\(.)", r"\1", body) if tok.kind == "string" else body


class Parser:
    def __init__(self, text: str, field: str) -> None:
        self.field = field
        self.text = text
        self.toks = _tokenize(text, field)
        self.i = 0

    def error(self, what: str) -> InvalidArgument:
        if self.i < len(self.toks):
            tok = self.toks[self.i]
            return InvalidArgument(
                f"expected {what} at {tok.pos}, got {tok.text!r}", field=self.field
            )
        return InvalidArgument(f"expected {what} at the end", field=self.field)

    def peek(self) -> _Tok | None:
        return self.toks[self.i] if self.i < len(self.toks) else None

    def next(self, what: str) -> _Tok:
        tok = self.peek()
        if tok is None:
            raise self.error(what)
        self.i += 1
        return tok

    def keyword(self, word: str) -> bool:
        tok = self.peek()
        if tok is not None and tok.kind == "word" and tok.text.upper() == word:
            self.i += 1
            return True
        return False

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
            if self.next("')'").kind != "rparen":
                self.i -= 1
                raise self.error("')'")
            return node
        return self.comparison()

    def identifier(self) -> Identifier:
        tok = self.next("an identifier like metrics.loss")
        if tok.kind != "word" or "." not in tok.text:
            self.i -= 1
            raise self.error("an identifier like metrics.loss")
        entity_word, _, key = tok.text.partition(".")
        if not key:  # entity.`quoted key` or entity."quoted key"
            q = self.next("a key after the entity")
            if q.kind not in ("backtick", "string"):
                self.i -= 1
                raise self.error("a key (quote it with backticks or double quotes)")
            key = _unquote(q)
        entity = _ENTITY_ALIASES.get(entity_word.lower())
        if entity is None:
            raise InvalidArgument(
                f"{entity_word!r} at {tok.pos} is not one of metrics, params, tags, attributes",
                field=self.field,
            )
        if entity == "attribute":
            key = _ATTRIBUTE_ALIASES.get(key, key)
            if key not in STRING_ATTRIBUTES | NUMERIC_ATTRIBUTES:
                valid = ", ".join(sorted(STRING_ATTRIBUTES | NUMERIC_ATTRIBUTES))
                raise InvalidArgument(
                    f"unknown attribute {key!r} at {tok.pos}; valid: {valid}", field=self.field
                )
        if not key:
            raise InvalidArgument(f"empty key at {tok.pos}", field=self.field)
        return Identifier(entity, key)

    def comparison(self) -> Comparison:
        ident = self.identifier()
        tok = self.next("a comparator")
        if tok.kind == "op":
            op = "!=" if tok.text == "<>" else tok.text
        elif tok.kind == "word" and tok.text.upper() in ("LIKE", "ILIKE", "IN"):
            op = tok.text.upper()
        elif tok.kind == "word" and tok.text.upper() == "NOT" and self.keyword("IN"):
            op = "NOT IN"
        else:
            self.i -= 1
            raise self.error("a comparator (= != < > <= >= LIKE ILIKE IN NOT IN)")
        allowed = NUMERIC_OPS if ident.numeric else STRING_OPS
        if op not in allowed:
            raise InvalidArgument(
                f"{op} at {tok.pos} cannot compare {ident.entity} {ident.key!r}; "
                f"use one of {', '.join(sorted(allowed))}",
                field=self.field,
            )
        value: float | str | tuple[str, ...]
        if op in ("IN", "NOT IN"):
            if self.next("'('").kind != "lparen":
                self.i -= 1
                raise self.error("'(' and a list of strings")
            items: list[str] = []
            while True:
                s = self.next("a string")
                if s.kind != "string":
                    self.i -= 1
                    raise self.error("a quoted string")
                items.append(_unquote(s))
                sep = self.next("',' or ')'")
                if sep.kind == "rparen":
                    break
                if sep.kind != "comma":
                    self.i -= 1
                    raise self.error("',' or ')'")
            value = tuple(items)
        else:
            v = self.next("a value")
            if ident.numeric:
                if v.kind != "number":
                    self.i -= 1
                    raise self.error(f"a number to compare {ident.entity} {ident.key!r} with")
                value = float(v.text)
            else:
                if v.kind != "string":
                    self.i -= 1
                    raise self.error(
                        f"a quoted string to compare {ident.entity} {ident.key!r} with"
                    )
                value = _unquote(v)
        return Comparison(ident, op, value)


def parse_filter(text: str) -> Node | None:
    """The AST of ``text``; None for an empty filter. Raises InvalidArgument naming ``filter``."""
    if not text or not text.strip():
        return None
    p = Parser(text, "filter")
    node = p.expr()
    if p.peek() is not None:
        raise p.error("AND, OR or the end")
    return node


def parse_order_by(clauses: list[str]) -> list[OrderKey]:
    """``["metrics.loss DESC", "attributes.start_time"]`` → order keys (ASC by default)."""
    out: list[OrderKey] = []
    for j, clause in enumerate(clauses):
        p = Parser(clause, f"order_by[{j}]")
        ident = p.identifier()
        ascending = True
        if p.keyword("DESC"):
            ascending = False
        else:
            p.keyword("ASC")
        if p.peek() is not None:
            raise p.error("ASC, DESC or the end")
        out.append(OrderKey(ident, ascending))
    return out
