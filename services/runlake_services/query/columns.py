"""Which column of the wide runs table holds which metric, param or tag key.

Keys are user text of any case and character, and DuckDB column names are
case-insensitive, so a key never becomes a column name: each gets a generated
stem (``m0``, ``p3``, ``t12``) and the stem names the columns. A ``KeyColumns``
is immutable; the index publishes a new one only after the transaction that
added its columns has committed, so a reader holding one can only name columns
that exist in the snapshot it then reads.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from types import MappingProxyType
from typing import Literal

__all__ = ["ENTITIES", "EntitySpec", "KeyColumns", "KeyEntity"]

KeyEntity = Literal["metric", "param", "tag"]


@dataclass(frozen=True)
class EntitySpec:
    """One keyed entity: the fold table it comes from and the columns each key gets."""

    entity: KeyEntity
    prefix: str
    table: str
    #: (column suffix, source column, SQL type); the first is the value searched on
    values: tuple[tuple[str, str, str], ...]

    def columns(self, stem: str) -> list[str]:
        return [f"{stem}_{suffix}" for suffix, _, _ in self.values]


ENTITIES: dict[KeyEntity, EntitySpec] = {
    "metric": EntitySpec(
        "metric",
        "m",
        "latest_metrics",
        (("v", "value", "DOUBLE"), ("t", "timestamp", "BIGINT"), ("s", "step", "BIGINT")),
    ),
    "param": EntitySpec("param", "p", "params", (("v", "value", "VARCHAR"),)),
    "tag": EntitySpec("tag", "t", "tags", (("v", "value", "VARCHAR"),)),
}


def _frozen(d: dict[str, str]) -> Mapping[str, str]:
    return MappingProxyType(d)


@dataclass(frozen=True)
class KeyColumns:
    """key → stem for each entity, and stem → (entity, key) for reading rows back."""

    stems: Mapping[KeyEntity, Mapping[str, str]] = field(
        default_factory=lambda: MappingProxyType({e: _frozen({}) for e in ENTITIES})
    )

    def stem(self, entity: KeyEntity, key: str) -> str | None:
        return self.stems[entity].get(key)

    def value_column(self, entity: KeyEntity, key: str) -> str | None:
        """The column a filter or order on ``entity.key`` reads; None if no run has the key."""
        stem = self.stem(entity, key)
        return None if stem is None else f"{stem}_v"

    def with_keys(self, entity: KeyEntity, keys: Iterable[str]) -> tuple[KeyColumns, list[str]]:
        """A registry that also knows ``keys``, and the stems that are new in it."""
        current = dict(self.stems[entity])
        prefix = ENTITIES[entity].prefix
        new: list[str] = []
        for key in keys:
            if key not in current:
                stem = f"{prefix}{len(current)}"
                current[key] = stem
                new.append(stem)
        if not new:
            return self, []
        stems = dict(self.stems)
        stems[entity] = _frozen(current)
        return KeyColumns(MappingProxyType(stems)), new

    @cached_property
    def owners(self) -> dict[str, tuple[KeyEntity, str]]:
        """stem → (entity, key), for turning a wide row back into key/value pairs."""
        return {stem: (e, key) for e, m in self.stems.items() for key, stem in m.items()}
