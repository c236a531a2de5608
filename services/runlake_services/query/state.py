"""RunsIndex: the latest state of every experiment and run, in an in-memory DuckDB.

Loaded from the Delta tables at start, then kept current by applying each
compaction round's FoldResult with the same merge rules the Delta sink uses (see
:mod:`.merge`), so search never scans Parquet. Search runs over one wide table
(a row per run, a column per key), which turns MLflow's filter on metrics and
params into a columnar scan instead of a join per compared key.

Concurrency: one writer (the compactor thread) at a time under a lock; readers
take their own cursor and never wait for it, reading a committed snapshot
(DuckDB MVCC). The key → column registry is swapped only after a commit.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any

import duckdb
import pyarrow as pa
from runlake.errors import InvalidArgument, NotFound
from runlake.v1 import query_pb2

from runlake_services.query.columns import KeyColumns
from runlake_services.query.convert import lifecycle, runs_from_rows
from runlake_services.query.filter import (
    EXPERIMENT_GRAMMAR,
    Identifier,
    OrderKey,
    Resolver,
    parse_experiment_filter,
    parse_filter,
    parse_order_by,
    quote_ident,
    render_order_by,
    render_where,
)
from runlake_services.query.merge import DDL, apply_round, load_tables
from runlake_services.query.paging import decode_token, encode_token, page_size
from runlake_services.tables.reader import DeltaTableReader
from runlake_services.tables.schema import CHANGE_FEED_TABLES, TABLES, FoldResult

__all__ = ["INDEX_TABLES", "RunsIndex"]

_VIEWS: dict[int, tuple[str, ...]] = {
    query_pb2.ACTIVE_ONLY: ("active",),
    query_pb2.DELETED_ONLY: ("deleted",),
    query_pb2.ALL: ("active", "deleted"),
}
#: The tables the index is built from (and, at scale, follows through their change feed).
INDEX_TABLES = CHANGE_FEED_TABLES
_START_TIME = Identifier("attribute", "start_time")
# Beyond this many ids a page is fetched by a semi-join instead of an IN list.
_IN_LIST_MAX = 2_000


def _stages(view_type: int) -> tuple[str, ...]:
    stages = _VIEWS.get(view_type)
    if stages is None:
        raise InvalidArgument(f"unknown view type {view_type}", field="view_type")
    return stages


def _marks(n: int) -> str:
    return ", ".join("?" * n)


class RunsIndex:
    """Search and point reads over the latest state; see the module docstring."""

    def __init__(self) -> None:
        self._db = duckdb.connect(":memory:")
        self._db.execute(DDL)
        self._write_lock = threading.Lock()
        self._keys = KeyColumns()

    def close(self) -> None:
        self._db.close()

    # -- writes --

    def load(self, reader: DeltaTableReader) -> None:
        """Replace the contents with the Delta tables' latest snapshots (absent ones are empty)."""
        self.load_tables({name: reader.dataset(name).to_table() for name in INDEX_TABLES})

    def load_tables(self, data: dict[str, pa.Table]) -> None:
        """Replace the contents with these rows of :data:`INDEX_TABLES` (stored schemas)."""
        self._write(lambda cur, _keys: load_tables(cur, data))

    def apply(self, result: FoldResult) -> None:
        """Apply one compaction round with the tables' merge rules (a replay changes nothing)."""
        self._write(lambda cur, keys: apply_round(cur, result, keys))

    def _write(self, fn: Callable[[duckdb.DuckDBPyConnection, KeyColumns], KeyColumns]) -> None:
        with self._write_lock:
            cur = self._db.cursor()
            try:
                cur.execute("BEGIN")
                try:
                    keys = fn(cur, self._keys)
                    cur.execute("COMMIT")
                except BaseException:
                    cur.execute("ROLLBACK")
                    raise
                self._keys = keys  # after COMMIT: readers never see a column before it exists
            finally:
                cur.close()

    # -- runs --

    def _run_resolver(self, keys: KeyColumns) -> Resolver:
        def resolve(ident: Identifier, params: list[Any]) -> str | None:
            if ident.entity == "attribute":
                return quote_ident(ident.key)
            column = keys.value_column(ident.entity, ident.key)
            return None if column is None else quote_ident(column)

        return resolve

    def get_run(self, run_id: str) -> query_pb2.Run:
        keys = self._keys
        cur = self._db.cursor()
        try:
            runs = self._fetch_runs(cur, keys, [run_id])
        finally:
            cur.close()
        if not runs:
            raise NotFound(f"no run with id {run_id!r}", field="run_id")
        return runs[0]

    def _fetch_runs(
        self, cur: duckdb.DuckDBPyConnection, keys: KeyColumns, ids: list[str]
    ) -> list[query_pb2.Run]:
        """The runs ``ids`` in that order, by primary-key lookups: no scan per result row."""
        if not ids:
            return []
        # A row that only metrics/params created (no RunCreated folded yet) is not a run.
        if len(ids) <= _IN_LIST_MAX:
            table = cur.sql(
                f"SELECT * FROM runs WHERE run_id IN ({_marks(len(ids))}) "
                "AND lifecycle_stage IS NOT NULL",
                params=ids,
            ).to_arrow_table()
        else:
            cur.register("page_ids", pa.table({"run_id": ids}))
            try:
                table = cur.sql(
                    "SELECT * FROM runs WHERE run_id IN (SELECT run_id FROM page_ids) "
                    "AND lifecycle_stage IS NOT NULL"
                ).to_arrow_table()
            finally:
                cur.unregister("page_ids")
        runs = {r.info.run_id: r for r in runs_from_rows(table, keys)}
        return [runs[i] for i in ids if i in runs]

    def search_runs(
        self,
        experiment_ids: Sequence[str],
        filter: str,
        view_type: int,
        order_by: Sequence[str],
        max_results: int,
        page_token: str,
    ) -> tuple[list[query_pb2.Run], str]:
        """One page of runs and the token of the next ('' on the last page)."""
        limit = page_size(max_results)
        node = parse_filter(filter)
        order = parse_order_by(list(order_by))
        stages = _stages(view_type)
        query = {"e": list(experiment_ids), "f": filter, "v": view_type, "o": list(order_by)}
        offset = decode_token(page_token, query)

        keys = self._keys
        resolve = self._run_resolver(keys)
        params: list[Any] = list(stages)
        where = [f"lifecycle_stage IN ({_marks(len(stages))})"]
        if experiment_ids:
            where.append(f"experiment_id IN ({_marks(len(experiment_ids))})")
            params.extend(experiment_ids)
        if node is not None:
            where.append(render_where(node, resolve, params))
        sql = (
            f"SELECT run_id FROM runs WHERE {' AND '.join(where)} "
            f"ORDER BY {', '.join(self._order_terms(order, resolve, params))} LIMIT ? OFFSET ?"
        )
        cur = self._db.cursor()
        try:
            ids = [row[0] for row in cur.execute(sql, [*params, limit + 1, offset]).fetchall()]
            runs = self._fetch_runs(cur, keys, ids[:limit])
        finally:
            cur.close()
        token = encode_token(offset + limit, query) if len(ids) > limit else ""
        return runs, token

    @staticmethod
    def _order_terms(order: list[OrderKey], resolve: Resolver, params: list[Any]) -> list[str]:
        """The caller's keys, then MLflow's tie-breaks: start_time DESC, then run_id."""
        terms = render_order_by(order, resolve, params)
        if all(k.ident != _START_TIME for k in order):
            terms.append("start_time DESC NULLS LAST")
        terms.append("run_id ASC")
        return terms

    # -- experiments --

    def get_experiment(
        self, experiment_id: str | None = None, name: str | None = None
    ) -> query_pb2.Experiment:
        if experiment_id is not None:
            field, value = "experiment_id", experiment_id
        elif name is not None:
            field, value = "name", name
        else:
            raise InvalidArgument("give an experiment id or a name", field="experiment_id")
        found = self._experiments(f"e.{field} = ?", [value], ["e.experiment_id"], 1, 0)
        if not found:
            raise NotFound(f"no experiment with {field} {value!r}", field=field)
        return found[0]

    def search_experiments(
        self,
        view_type: int,
        filter: str,
        order_by: Sequence[str],
        max_results: int,
        page_token: str,
    ) -> tuple[list[query_pb2.Experiment], str]:
        limit = page_size(max_results)
        node = parse_experiment_filter(filter)
        order = parse_order_by(list(order_by), grammar=EXPERIMENT_GRAMMAR)
        stages = _stages(view_type)
        query = {"f": filter, "v": view_type, "o": list(order_by)}
        offset = decode_token(page_token, query)

        def resolve(ident: Identifier, params: list[Any]) -> str | None:
            if ident.entity == "attribute":
                return f"e.{quote_ident(ident.key)}"
            params.append(ident.key)
            return (
                "(SELECT t.value FROM experiment_tags t "
                "WHERE t.experiment_id = e.experiment_id AND t.key = ?)"
            )

        params: list[Any] = list(stages)
        where = f"e.lifecycle_stage IN ({_marks(len(stages))})"
        if node is not None:
            where += " AND " + render_where(node, resolve, params)
        terms = render_order_by(order, resolve, params) or ["e.creation_time DESC NULLS LAST"]
        found = self._experiments(where, params, [*terms, "e.experiment_id ASC"], limit + 1, offset)
        token = encode_token(offset + limit, query) if len(found) > limit else ""
        return found[:limit], token

    def _experiments(
        self, where: str, params: list[Any], order: list[str], limit: int, offset: int
    ) -> list[query_pb2.Experiment]:
        cols = ", ".join(f"e.{c}" for c in TABLES["experiments"].schema.names)
        cur = self._db.cursor()
        try:
            rows = cur.execute(
                f"SELECT {cols}, (SELECT list(struct_pack(k := t.key, v := t.value) "
                "ORDER BY t.key) FROM experiment_tags t WHERE t.experiment_id = e.experiment_id) "
                f"FROM experiments e WHERE {where} ORDER BY {', '.join(order)} LIMIT ? OFFSET ?",
                [*params, limit, offset],
            ).fetchall()
        finally:
            cur.close()
        out = []
        for eid, name, location, stage, created, updated, tags in rows:
            exp = query_pb2.Experiment(
                experiment_id=eid,
                name=name or "",
                artifact_location=location or "",
                lifecycle_stage=lifecycle(stage),
                creation_time=created or 0,
                last_update_time=updated or 0,
            )
            for t in tags or []:
                exp.tags.add(key=t["k"], value=t["v"])
            out.append(exp)
        return out
