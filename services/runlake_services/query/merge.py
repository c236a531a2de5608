"""Keeps the index's DuckDB tables equal to the Delta tables' latest state, set-based.

The index has one *wide* ``runs`` table: the run attributes plus, per key ever
seen, ``<stem>_v`` (and ``_t``/``_s`` for a metric's timestamp and step). A
round's rows for a keyed table are pivoted to one row per run (DuckDB PIVOT,
with the round's keys only) and merged with ``INSERT … ON CONFLICT (run_id)``:
the primary-key index makes that cost proportional to the round, not to the
million runs already there. Each entity follows its table's :class:`MergeMode`,
exactly as the Delta sink merges it, so a replayed round changes nothing.

Every function here runs inside the caller's transaction on the caller's cursor.
"""

from __future__ import annotations

from collections.abc import Callable

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from runlake_services.query.columns import ENTITIES, EntitySpec, KeyColumns, KeyEntity
from runlake_services.query.convert import ATTRIBUTES
from runlake_services.query.filter import quote_ident
from runlake_services.tables.schema import TABLES, FoldResult, MergeMode

__all__ = ["DDL", "apply_round", "load_tables"]

assert tuple(TABLES["runs"].schema.names) == ATTRIBUTES
assert TABLES["runs"].mode is MergeMode.COALESCE
assert TABLES["params"].mode is MergeMode.APPEND  # write-once: the first value stays
assert TABLES["tags"].mode is MergeMode.UPSERT
assert TABLES["latest_metrics"].mode is MergeMode.LATEST

DDL = """
CREATE TABLE experiments (experiment_id VARCHAR PRIMARY KEY, name VARCHAR,
  artifact_location VARCHAR, lifecycle_stage VARCHAR, creation_time BIGINT,
  last_update_time BIGINT);
CREATE TABLE experiment_tags (experiment_id VARCHAR, key VARCHAR, value VARCHAR,
  PRIMARY KEY (experiment_id, key));
CREATE TABLE runs (run_id VARCHAR PRIMARY KEY, experiment_id VARCHAR, run_name VARCHAR,
  user_id VARCHAR, status VARCHAR, start_time BIGINT, end_time BIGINT,
  lifecycle_stage VARCHAR, artifact_uri VARCHAR, parent_run_id VARCHAR);
"""

# A set expression for one wide column: (stem, column) -> SQL over excluded./runs.
SetExpr = Callable[[str, str], str]


def _coalesce_upsert(table: str, cols: list[str], keys: tuple[str, ...]) -> str:
    q = [quote_ident(c) for c in cols]
    sets = ", ".join(
        f"{c} = COALESCE(excluded.{c}, {table}.{c})"
        for c, name in zip(q, cols, strict=True)
        if name not in keys
    )
    return (
        f"INSERT INTO {table} ({', '.join(q)}) SELECT {', '.join(q)} FROM src "
        f"ON CONFLICT ({', '.join(keys)}) DO UPDATE SET {sets}"
    )


def _pivot(spec: EntitySpec, stems: list[str], source: str, keymap: str) -> str:
    """One row per run with ``<stem>_<suffix>`` columns; stems are generated, never user text."""
    cols = ", ".join(f"s.{quote_ident(src)}" for _, src, _ in spec.values)
    usings = ", ".join(f"any_value({quote_ident(src)}) AS {sfx}" for sfx, src, _ in spec.values)
    in_list = ", ".join(f"'{stem}'" for stem in stems)
    return (
        f"PIVOT (SELECT s.run_id, k.stem, {cols} FROM {source} s JOIN {keymap} k ON s.key = k.key) "
        f"ON stem IN ({in_list}) USING {usings} GROUP BY run_id"
    )


def _register_keymap(
    cur: duckdb.DuckDBPyConnection,
    name: str,
    keys: KeyColumns,
    entity: KeyEntity,
    wanted: list[str],
) -> list[str]:
    """Registers key → stem for the ``wanted`` keys that have a column; returns their stems."""
    known = [k for k in wanted if keys.stem(entity, k) is not None]
    stems = [keys.stem(entity, k) or "" for k in known]
    cur.register(name, pa.table({"key": pa.array(known, pa.string()), "stem": stems}))
    return stems


def _add_columns(
    cur: duckdb.DuckDBPyConnection, keys: KeyColumns, entity: KeyEntity, wanted: list[str]
) -> KeyColumns:
    keys, new = keys.with_keys(entity, wanted)
    spec = ENTITIES[entity]
    for stem in new:
        for column, (_, _, sql_type) in zip(spec.columns(stem), spec.values, strict=True):
            cur.execute(f"ALTER TABLE runs ADD COLUMN {column} {sql_type}")
    return keys


def _distinct_keys(rows: pa.Table) -> list[str]:
    keys: list[str] = pc.unique(rows.column("key")).to_pylist()
    return keys


def _upsert_keyed(
    cur: duckdb.DuckDBPyConnection,
    keys: KeyColumns,
    entity: KeyEntity,
    source: str,
    wanted: list[str],
    set_expr: SetExpr,
) -> None:
    spec = ENTITIES[entity]
    stems = _register_keymap(cur, "keymap", keys, entity, wanted)
    try:
        if not stems:
            return
        cols = [c for stem in stems for c in spec.columns(stem)]
        sets = ", ".join(f"{c} = {set_expr(stem, c)}" for stem in stems for c in spec.columns(stem))
        cur.execute(
            f"INSERT INTO runs (run_id, {', '.join(cols)}) "
            f"SELECT run_id, {', '.join(cols)} FROM ({_pivot(spec, stems, source, 'keymap')}) "
            f"ON CONFLICT (run_id) DO UPDATE SET {sets}"
        )
    finally:
        cur.unregister("keymap")


def _latest(stem: str, column: str) -> str:
    """LATEST: the new point replaces the old only if (step, timestamp, value) is higher."""
    new = f"(excluded.{stem}_s, excluded.{stem}_t, excluded.{stem}_v)"
    old = f"(runs.{stem}_s, runs.{stem}_t, runs.{stem}_v)"
    later = f"excluded.{stem}_s IS NOT NULL AND (runs.{stem}_s IS NULL OR {new} > {old})"
    return f"CASE WHEN {later} THEN excluded.{column} ELSE runs.{column} END"


def _first_wins(stem: str, column: str) -> str:
    return f"COALESCE(runs.{column}, excluded.{column})"


def _last_wins(stem: str, column: str) -> str:
    return f"COALESCE(excluded.{column}, runs.{column})"


def _with(cur: duckdb.DuckDBPyConnection, rows: pa.Table, fn: Callable[[], object]) -> None:
    cur.register("src", rows)
    try:
        fn()
    finally:
        cur.unregister("src")


def apply_round(cur: duckdb.DuckDBPyConnection, result: FoldResult, keys: KeyColumns) -> KeyColumns:
    """Merge one round; returns the key registry including keys first seen in it."""

    def rows(name: str) -> pa.Table | None:
        table = result.tables.get(name)
        return table if table is not None and table.num_rows else None

    if (exp := rows("experiments")) is not None:
        names = TABLES["experiments"].schema.names
        _with(
            cur,
            exp,
            lambda: cur.execute(_coalesce_upsert("experiments", names, ("experiment_id",))),
        )
    if (etags := rows("experiment_tags")) is not None:

        def merge_experiment_tags() -> None:
            cur.execute(
                "DELETE FROM experiment_tags t USING src WHERE src.deleted "
                "AND t.experiment_id = src.experiment_id AND t.key = src.key"
            )
            cur.execute(
                "INSERT OR REPLACE INTO experiment_tags "
                "SELECT experiment_id, key, value FROM src WHERE NOT deleted"
            )

        _with(cur, etags, merge_experiment_tags)
    if (runs := rows("runs")) is not None:
        _with(
            cur, runs, lambda: cur.execute(_coalesce_upsert("runs", list(ATTRIBUTES), ("run_id",)))
        )
    if (params := rows("params")) is not None:
        wanted = _distinct_keys(params)
        keys = _add_columns(cur, keys, "param", wanted)
        _with(cur, params, lambda: _upsert_keyed(cur, keys, "param", "src", wanted, _first_wins))
    if (tags := rows("tags")) is not None:
        keys = _merge_tags(cur, keys, tags)
    if (latest := rows("latest_metrics")) is not None:
        wanted = _distinct_keys(latest)
        keys = _add_columns(cur, keys, "metric", wanted)
        # At most one row per key is the fold's promise; the window makes any_value exact anyway.
        source = (
            "(SELECT * FROM src QUALIFY row_number() OVER (PARTITION BY run_id, key "
            "ORDER BY step DESC, timestamp DESC, value DESC) = 1)"
        )
        _with(cur, latest, lambda: _upsert_keyed(cur, keys, "metric", source, wanted, _latest))
    return keys


def _merge_tags(cur: duckdb.DuckDBPyConnection, keys: KeyColumns, tags: pa.Table) -> KeyColumns:
    """UPSERT with delete: set rows last-write-wins, deleted rows null their column."""
    deleted = tags.column("deleted")
    set_rows = tags.filter(pc.invert(deleted))
    gone = tags.filter(deleted)
    if set_rows.num_rows:
        wanted = _distinct_keys(set_rows)
        keys = _add_columns(cur, keys, "tag", wanted)
        _with(cur, set_rows, lambda: _upsert_keyed(cur, keys, "tag", "src", wanted, _last_wins))
    if gone.num_rows:
        spec = ENTITIES["tag"]

        def delete() -> None:
            stems = _register_keymap(cur, "keymap", keys, "tag", _distinct_keys(gone))
            try:
                if not stems:
                    return
                # UPDATE, not an upsert: a delete must never create a row for an unknown run.
                # The pivot carries a non-null marker per deleted key, whatever the value column.
                marked = "(SELECT run_id, key, 'deleted' AS value FROM src)"
                sets = ", ".join(
                    f"{c} = CASE WHEN d.{c} IS NULL THEN runs.{c} ELSE NULL END"
                    for stem in stems
                    for c in spec.columns(stem)
                )
                cur.execute(
                    f"UPDATE runs SET {sets} FROM ({_pivot(spec, stems, marked, 'keymap')}) d "
                    "WHERE runs.run_id = d.run_id"
                )
            finally:
                cur.unregister("keymap")

        _with(cur, gone, delete)
    return keys


def load_tables(cur: duckdb.DuckDBPyConnection, data: dict[str, pa.Table]) -> KeyColumns:
    """Replace the index's contents with the stored tables (each in its ``schema``).

    The wide table is built in one CREATE TABLE AS (runs left-joined to one pivot per
    entity) and its primary key added afterwards: a bulk index build is several
    times faster than maintaining the index row by row during the insert.
    """
    registered: list[str] = []

    def register(name: str, table: pa.Table) -> None:
        cur.register(name, table)
        registered.append(name)

    try:
        for name in ("experiments", "experiment_tags"):
            cols = ", ".join(quote_ident(c) for c in TABLES[name].schema.names)
            register(f"src_{name}", data[name])
            cur.execute(f"DELETE FROM {name}")
            cur.execute(f"INSERT INTO {name} ({cols}) SELECT {cols} FROM src_{name}")

        keys = KeyColumns()
        selects = [", ".join(f"r.{quote_ident(c)}" for c in ATTRIBUTES)]
        joins: list[str] = []
        for entity, spec in ENTITIES.items():
            table = data[spec.table]
            wanted = _distinct_keys(table)
            if not wanted:
                continue
            keys = keys.with_keys(entity, wanted)[0]
            source, keymap, alias = f"src_{spec.prefix}", f"keymap_{spec.prefix}", spec.prefix
            register(source, table)
            stems = _register_keymap(cur, keymap, keys, entity, wanted)
            registered.append(keymap)
            selects.append(f"{alias}.* EXCLUDE (run_id)")
            joins.append(
                f"LEFT JOIN ({_pivot(spec, stems, source, keymap)}) {alias} "
                f"ON {alias}.run_id = r.run_id"
            )
        register("src_runs", data["runs"])
        cur.execute("DROP TABLE runs")
        cur.execute(
            f"CREATE TABLE runs AS SELECT {', '.join(selects)} FROM src_runs r {' '.join(joins)}"
        )
        cur.execute("ALTER TABLE runs ADD PRIMARY KEY (run_id)")
        return keys
    finally:
        for name in registered:
            cur.unregister(name)
