"""Model registry reads: registered models, versions, aliases and their history.

Answered straight from the five registry Delta tables with DuckDB, read whole on
every call: a registry holds thousands of rows, not millions, so keeping them in
the in-memory run index would buy nothing but a second copy to keep in step. The
tables of one call are read once and then queried several times, so every part
of one answer (a model, its latest versions, its aliases) comes from the same
snapshot of each table.

MLflow's visibility rules live in three views built over each snapshot: a deleted
model is invisible with all its versions, a deleted version is invisible, and an
alias whose version is not visible is neither listed nor resolved. The tables
key on ``model_id`` (a model's identity for life) and carry the *current* name in
``registered_models``; a name that belonged to a deleted model may belong to a
new one, so names are matched among live models only.

``as_of_ms`` reads each table as it was at that time (Delta time travel). The
compactor commits a round's tables one after another within milliseconds, so a
time that falls inside a round may show part of it; any time between rounds is
an exact past state.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import duckdb
import pyarrow as pa
from deltalake import DeltaTable
from deltalake.exceptions import DeltaError
from runlake.errors import InvalidArgument, NotFound
from runlake.v1 import query_pb2

from runlake_services.query.filter import (
    Grammar,
    Identifier,
    parse_filter,
    parse_order_by,
    render_order_by,
    render_where,
)
from runlake_services.query.paging import decode_token, encode_token, page_size
from runlake_services.tables.reader import DeltaTableReader
from runlake_services.tables.schema import TABLES

__all__ = [
    "MODEL_GRAMMAR",
    "REGISTRY_EVENT_TYPES",
    "REGISTRY_TABLES",
    "STAGES",
    "VERSION_GRAMMAR",
    "RegistryReader",
]

REGISTRY_TABLES = (
    "registered_models",
    "registered_model_tags",
    "model_versions",
    "model_version_tags",
    "model_aliases",
)

#: MLflow's stages, in its canonical spelling (requests may use any case).
STAGES = ("None", "Staging", "Production", "Archived")
_CANONICAL_STAGE = {s.lower(): s for s in STAGES}

#: The event types the registry's history is made of (the ``events`` table's event_type).
REGISTRY_EVENT_TYPES = (
    "registered_model_created",
    "registered_model_renamed",
    "registered_model_updated",
    "registered_model_deleted",
    "registered_model_tag_set",
    "registered_model_tag_deleted",
    "model_version_created",
    "model_version_updated",
    "model_version_stage_set",
    "model_version_deleted",
    "model_version_tag_set",
    "model_version_tag_deleted",
    "model_alias_set",
    "model_alias_deleted",
)

# -- filter and order vocabularies (MLflow's registry search, on the run search parser) --

MODEL_GRAMMAR = Grammar(
    entities=frozenset({"tag", "attribute"}),
    string_attributes=frozenset({"name"}),
    numeric_attributes=frozenset({"creation_timestamp", "last_updated_timestamp"}),
    attribute_aliases={"timestamp": "creation_timestamp"},
    string_ops=("=", "!=", "LIKE", "ILIKE"),
    bare_attributes=frozenset({"name", "creation_timestamp", "last_updated_timestamp"}),
)
VERSION_GRAMMAR = Grammar(
    entities=frozenset({"tag", "attribute"}),
    string_attributes=frozenset({"name", "run_id", "source", "current_stage", "user_id"}),
    numeric_attributes=frozenset(
        {"version_number", "creation_timestamp", "last_updated_timestamp"}
    ),
    attribute_aliases={"source_path": "source", "timestamp": "creation_timestamp"},
    string_ops=("=", "!=", "LIKE", "ILIKE", "IN", "NOT IN"),
    bare_attributes=frozenset(
        {
            "name",
            "run_id",
            "source",
            "source_path",
            "current_stage",
            "user_id",
            "version_number",
            "creation_timestamp",
            "last_updated_timestamp",
        }
    ),
)
# order_by takes attributes only (ordering by a tag is not MLflow's, and is not offered).
_MODEL_ORDER = Grammar(
    entities=frozenset({"attribute"}),
    string_attributes=frozenset({"name"}),
    numeric_attributes=frozenset({"creation_timestamp", "last_updated_timestamp"}),
    attribute_aliases={"timestamp": "creation_timestamp"},
    string_ops=(),
    bare_attributes=frozenset(
        {"name", "creation_timestamp", "last_updated_timestamp", "timestamp"}
    ),
)
_VERSION_ORDER = Grammar(
    entities=frozenset({"attribute"}),
    string_attributes=frozenset({"name"}),
    numeric_attributes=frozenset(
        {"version_number", "creation_timestamp", "last_updated_timestamp"}
    ),
    attribute_aliases={"timestamp": "creation_timestamp"},
    string_ops=(),
    bare_attributes=frozenset(
        {"name", "version_number", "creation_timestamp", "last_updated_timestamp", "timestamp"}
    ),
)

# Attribute name (bare or after ``attributes.``, aliases included) -> column of the views.
_MODEL_COLUMNS = {
    "name": "m.name",
    "creation_timestamp": "m.creation_time",
    "timestamp": "m.creation_time",
    "last_updated_timestamp": "m.last_updated_time",
}
_VERSION_COLUMNS = {
    "name": "v.name",
    # a version without a run has run_id NULL in the table and "" on the wire: match the wire
    "run_id": "coalesce(v.run_id, '')",
    "source": "v.source",
    "source_path": "v.source",
    "current_stage": "v.current_stage",
    "user_id": "v.user_id",
    "version_number": "v.version",
    "creation_timestamp": "v.creation_time",
    "timestamp": "v.creation_time",
    "last_updated_timestamp": "v.last_updated_time",
}

# -- SQL over one snapshot --

_VIEWS = (
    "CREATE TEMP VIEW live_models AS "
    "SELECT * FROM registered_models WHERE lifecycle_stage = 'active'",
    "CREATE TEMP VIEW live_versions AS "
    "SELECT v.*, m.name FROM model_versions v JOIN live_models m USING (model_id) "
    "WHERE v.lifecycle_stage = 'active'",
    "CREATE TEMP VIEW live_aliases AS "
    "SELECT a.model_id, a.alias, a.version FROM model_aliases a "
    "JOIN live_versions v USING (model_id, version)",
)

_VERSION_SELECT = (
    "SELECT v.model_id, v.name, v.version, v.source, v.run_id, v.description, "
    "v.current_stage, v.status, v.creation_time, v.last_updated_time, v.user_id, "
    "(SELECT list(struct_pack(k := t.key, val := t.value) ORDER BY t.key) "
    " FROM model_version_tags t WHERE t.model_id = v.model_id AND t.version = v.version), "
    "(SELECT list(a.alias ORDER BY a.alias) "
    " FROM live_aliases a WHERE a.model_id = v.model_id AND a.version = v.version) "
    "FROM live_versions v"
)

_MODEL_SELECT = (
    "SELECT m.model_id, m.name, m.description, m.creation_time, m.last_updated_time, "
    "(SELECT list(struct_pack(k := t.key, val := t.value) ORDER BY t.key) "
    " FROM registered_model_tags t WHERE t.model_id = m.model_id), "
    "(SELECT list(struct_pack(k := a.alias, val := a.version) ORDER BY a.alias) "
    " FROM live_aliases a WHERE a.model_id = m.model_id) "
    "FROM live_models m"
)

_MODEL_TAG = (
    "(SELECT t.value FROM registered_model_tags t WHERE t.model_id = m.model_id AND t.key = ?)"
)
_VERSION_TAG = (
    "(SELECT t.value FROM model_version_tags t "
    "WHERE t.model_id = v.model_id AND t.version = v.version AND t.key = ?)"
)

# Every model that ever carried the name (created with it or renamed to it), then all
# of those models' registry events, in log order. The registered_models row covers a
# model whose creation the events table has not caught up with yet (it commits last).
# The event types are this module's constants, not user text; the name is bound.
_HISTORY = f"""
WITH registry AS (
    SELECT position, event_index, timestamp, "user", event_type, payload,
           json_extract_string(payload, '$.model_id') AS model_id
    FROM events
    WHERE event_type IN ({", ".join(f"'{t}'" for t in REGISTRY_EVENT_TYPES)})
), ids AS (
    SELECT model_id FROM registry
    WHERE (event_type = 'registered_model_created'
           AND json_extract_string(payload, '$.name') = $name)
       OR (event_type = 'registered_model_renamed'
           AND json_extract_string(payload, '$.new_name') = $name)
    UNION
    SELECT model_id FROM registered_models WHERE name = $name
)
SELECT timestamp, "user", event_type, payload FROM registry
WHERE model_id IN (SELECT model_id FROM ids)
ORDER BY position, event_index
"""


def _marks(n: int) -> str:
    return ", ".join("?" * n)


def _canonical_stage(stage: str) -> str:
    canonical = _CANONICAL_STAGE.get(stage.lower())
    if canonical is None:
        raise InvalidArgument(
            f"{stage!r} is not a stage; expected one of {', '.join(STAGES)}", field="stage"
        )
    return canonical


def _version(row: Sequence[Any]) -> query_pb2.ModelVersion:
    """A row of ``_VERSION_SELECT`` (model_id first, then the version's columns)."""
    _mid, name, version, source, run_id, description, *rest = row
    stage, status, created, updated, user, tags, aliases = rest
    mv = query_pb2.ModelVersion(
        name=name,
        version=version,
        source=source or "",
        run_id=run_id or "",
        description=description or "",
        current_stage=stage or "None",
        status=status or "READY",
        creation_timestamp=created or 0,
        last_updated_timestamp=updated or 0,
        user_id=user or "",
        aliases=aliases or [],
    )
    for t in tags or []:
        mv.tags.add(key=t["k"], value=t["val"])
    return mv


class _Snapshot:
    """One DuckDB connection over one snapshot of the registry tables, with the live views.

    The connection is a cursor of a shared in-memory database: opening a database costs
    ~10 ms, a cursor well under one. Registered tables and temp views belong to the
    cursor, so concurrent calls never see each other's snapshots.
    """

    def __init__(self, db: duckdb.DuckDBPyConnection, tables: Mapping[str, pa.Table]) -> None:
        self.con = db.cursor()
        try:
            for name, table in tables.items():
                self.con.register(name, table)
            for ddl in _VIEWS:
                self.con.execute(ddl)
        except BaseException:
            self.con.close()
            raise

    def close(self) -> None:
        self.con.close()

    def versions(
        self, where: str, params: list[Any], order: Sequence[str], limit: int, offset: int = 0
    ) -> list[query_pb2.ModelVersion]:
        rows = self.con.execute(
            f"{_VERSION_SELECT} WHERE {where} ORDER BY {', '.join(order)} LIMIT ? OFFSET ?",
            [*params, limit, offset],
        ).fetchall()
        return [_version(r) for r in rows]

    def models(
        self, where: str, params: list[Any], order: Sequence[str], limit: int, offset: int = 0
    ) -> list[query_pb2.RegisteredModel]:
        rows = self.con.execute(
            f"{_MODEL_SELECT} WHERE {where} ORDER BY {', '.join(order)} LIMIT ? OFFSET ?",
            [*params, limit, offset],
        ).fetchall()
        if not rows:
            return []
        ids = [r[0] for r in rows]
        # latest_versions: the highest live version in each stage ("None" included), as
        # MLflow's RegisteredModel carries them; in version order.
        latest: dict[str, list[query_pb2.ModelVersion]] = {i: [] for i in ids}
        for r in self.con.execute(
            f"{_VERSION_SELECT} WHERE v.model_id IN ({_marks(len(ids))}) "
            "QUALIFY row_number() OVER "
            "(PARTITION BY v.model_id, v.current_stage ORDER BY v.version DESC) = 1 "
            "ORDER BY v.model_id, v.version",
            ids,
        ).fetchall():
            latest[r[0]].append(_version(r))
        out = []
        for mid, name, description, created, updated, tags, aliases in rows:
            rm = query_pb2.RegisteredModel(
                name=name,
                description=description or "",
                creation_timestamp=created or 0,
                last_updated_timestamp=updated or 0,
                latest_versions=latest[mid],
            )
            for t in tags or []:
                rm.tags.add(key=t["k"], value=t["val"])
            for a in aliases or []:
                rm.aliases[a["k"]] = a["val"]
            out.append(rm)
        return out


class RegistryReader:
    """Answers the registry rpcs of the Query service from the Delta tables.

    ``storage_options`` are delta-rs's, the same the reader was given: time travel
    opens its own table handles (the reader's are shared and always at the latest).
    """

    def __init__(
        self, reader: DeltaTableReader, *, storage_options: Mapping[str, str] | None = None
    ) -> None:
        self._reader = reader
        self._options = dict(storage_options or {})
        self._db = duckdb.connect(":memory:")
        # Only registered Arrow tables are ever read: no statement here needs files or the
        # network, so the engine is told so once for every cursor.
        self._db.execute("SET enable_external_access = false")

    # -- snapshots --

    def _latest(self, name: str) -> pa.Table:
        table: pa.Table = self._reader.dataset(name).to_table()
        return table

    def _as_of(self, name: str, as_of_ms: int) -> pa.Table:
        """Table ``name`` as it was at ``as_of_ms``; empty if it did not exist yet."""
        empty = TABLES[name].schema.empty_table()
        uri = self._reader.uri(name)
        if not DeltaTable.is_deltatable(uri, self._options):
            return empty
        dt = DeltaTable(uri, storage_options=self._options)
        # delta-rs resolves a time before the first commit to version 0, which holds rows
        # when the table was created by a write: compare with the creation time ourselves.
        created = dt.metadata().created_time
        if created is not None and as_of_ms < created:
            return empty
        try:
            when = datetime.fromtimestamp(as_of_ms / 1000, tz=UTC)
        except (OverflowError, ValueError, OSError):
            raise InvalidArgument(f"{as_of_ms} is not a time", field="as_of_ms") from None
        try:
            dt.load_as_version(when)
        except DeltaError:
            # the log before a cleanup is gone: that past is no longer answerable
            raise InvalidArgument(
                f"is older than the retained history of table {name}", field="as_of_ms"
            ) from None
        table: pa.Table = dt.to_pyarrow_table()
        return table

    @contextmanager
    def _snapshot(self, as_of_ms: int = 0) -> Iterator[_Snapshot]:
        if as_of_ms < 0:
            raise InvalidArgument(f"{as_of_ms} is negative; 0 means now", field="as_of_ms")
        if as_of_ms == 0:
            tables = {n: self._latest(n) for n in REGISTRY_TABLES}
        else:
            tables = {n: self._as_of(n, as_of_ms) for n in REGISTRY_TABLES}
        snap = _Snapshot(self._db, tables)
        try:
            yield snap
        finally:
            snap.close()

    # -- models --

    def get_registered_model(self, name: str, as_of_ms: int = 0) -> query_pb2.RegisteredModel:
        """The live model named ``name`` (now, or at ``as_of_ms``); NotFound naming ``name``."""
        _require_name(name)
        with self._snapshot(as_of_ms) as snap:
            found = snap.models("m.name = ?", [name], ["m.model_id"], 1)
        if not found:
            raise NotFound(f"no registered model named {name!r}", field="name")
        return found[0]

    def search_registered_models(
        self, filter: str, order_by: Sequence[str], max_results: int, page_token: str
    ) -> tuple[list[query_pb2.RegisteredModel], str]:
        """One page of live models and the next page's token ('' on the last page)."""
        limit = page_size(max_results)
        node = parse_filter(filter, grammar=MODEL_GRAMMAR)
        order = parse_order_by(list(order_by), grammar=_MODEL_ORDER)
        query = {"k": "registered_models", "f": filter, "o": list(order_by)}
        offset = decode_token(page_token, query)

        def resolve(ident: Identifier, params: list[Any]) -> str | None:
            if ident.entity == "attribute":
                return _MODEL_COLUMNS[ident.key]
            params.append(ident.key)
            return _MODEL_TAG

        params: list[Any] = []
        where = "TRUE" if node is None else render_where(node, resolve, params)
        terms = [*render_order_by(order, resolve, params), "m.name ASC", "m.model_id ASC"]
        with self._snapshot() as snap:
            found = snap.models(where, params, terms, limit + 1, offset)
        token = encode_token(offset + limit, query) if len(found) > limit else ""
        return found[:limit], token

    # -- versions --

    def get_model_version(
        self, name: str, version: int = 0, alias: str = "", stage: str = "", as_of_ms: int = 0
    ) -> query_pb2.ModelVersion:
        """One live version of the live model ``name``: by number, by alias, or the latest
        in a stage. NotFound names the field that found nothing (name, version, alias, stage).
        """
        _require_name(name)
        chosen = [f for f, v in (("version", version), ("alias", alias), ("stage", stage)) if v]
        if len(chosen) != 1:
            raise InvalidArgument(
                "give exactly one of version, alias or stage"
                + (f" (got {', '.join(chosen)})" if chosen else ""),
                field="version",
            )
        if version < 0:
            raise InvalidArgument(f"{version} is not a version number", field="version")
        with self._snapshot(as_of_ms) as snap:
            exists = snap.con.execute("SELECT 1 FROM live_models WHERE name = ?", [name]).fetchone()
            if exists is None:
                raise NotFound(f"no registered model named {name!r}", field="name")
            if version:
                field, what = "version", f"version {version}"
                found = snap.versions(
                    "v.name = ? AND v.version = ?", [name, version], ["v.version"], 1
                )
            elif alias:
                field, what = "alias", f"alias {alias!r}"
                found = snap.versions(
                    "v.name = ? AND EXISTS (SELECT 1 FROM live_aliases a WHERE "
                    "a.model_id = v.model_id AND a.version = v.version AND a.alias = ?)",
                    [name, alias],
                    ["v.version"],
                    1,
                )
            else:
                canonical = _canonical_stage(stage)
                field, what = "stage", f"version in stage {canonical}"
                found = snap.versions(
                    "v.name = ? AND v.current_stage = ?",
                    [name, canonical],
                    ["v.version DESC"],
                    1,
                )
        if not found:
            raise NotFound(f"registered model {name!r} has no {what}", field=field)
        return found[0]

    def search_model_versions(
        self, filter: str, order_by: Sequence[str], max_results: int, page_token: str
    ) -> tuple[list[query_pb2.ModelVersion], str]:
        """One page of live versions of live models and the next page's token."""
        limit = page_size(max_results)
        node = parse_filter(filter, grammar=VERSION_GRAMMAR)
        order = parse_order_by(list(order_by), grammar=_VERSION_ORDER)
        query = {"k": "model_versions", "f": filter, "o": list(order_by)}
        offset = decode_token(page_token, query)

        def resolve(ident: Identifier, params: list[Any]) -> str | None:
            if ident.entity == "attribute":
                return _VERSION_COLUMNS[ident.key]
            params.append(ident.key)
            return _VERSION_TAG

        params: list[Any] = []
        where = "TRUE" if node is None else render_where(node, resolve, params)
        terms = [*render_order_by(order, resolve, params), "v.name ASC", "v.version DESC"]
        with self._snapshot() as snap:
            found = snap.versions(where, params, terms, limit + 1, offset)
        token = encode_token(offset + limit, query) if len(found) > limit else ""
        return found[:limit], token

    # -- history --

    def model_history(self, name: str) -> list[query_pb2.ModelHistoryEntry]:
        """Every registry event of every model that ever had ``name``, oldest first.

        A deleted model's history stays readable (it is the audit trail), and a name
        reused after a delete shows both models' lives, told apart by model_id in the
        payload. NotFound when no model ever had the name.
        """
        _require_name(name)
        con = self._db.cursor()
        try:
            con.register("events", self._reader.dataset("events"))
            con.register("registered_models", self._latest("registered_models"))
            rows = con.execute(_HISTORY, {"name": name}).fetchall()
        finally:
            con.close()
        if not rows:
            raise NotFound(f"no registered model was ever named {name!r}", field="name")
        return [
            query_pb2.ModelHistoryEntry(timestamp=ts, user=user, event_type=kind, payload=payload)
            for ts, user, kind, payload in rows
        ]


def _require_name(name: str) -> None:
    if not name:
        raise InvalidArgument("a registered model name is required", field="name")
