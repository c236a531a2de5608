"""RunsIndex: the latest state of every experiment and run, in an in-memory DuckDB.

Loaded from the Delta tables at start, then kept current by applying each
compaction round's FoldResult with the same merge rules the Delta sink uses, so
search never scans Parquet. Writes (one compactor thread) take a lock; reads use
their own cursor and see a consistent snapshot (DuckDB MVCC).
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
from collections.abc import Sequence
from typing import Any

import duckdb
import pyarrow as pa
from runlake.errors import InvalidArgument, NotFound
from runlake.v1 import events_pb2, query_pb2

from runlake_services.query.filter import (
    And,
    Comparison,
    Identifier,
    Node,
    Parser,
    parse_filter,
    parse_order_by,
)
from runlake_services.tables.reader import DeltaTableReader
from runlake_services.tables.schema import TABLES, FoldResult

__all__ = ["MAX_RESULTS", "RunsIndex"]

MAX_RESULTS = 50_000
DEFAULT_RESULTS = 1_000

_DDL = """
CREATE TABLE experiments (experiment_id VARCHAR PRIMARY KEY, name VARCHAR,
  artifact_location VARCHAR, lifecycle_stage VARCHAR, creation_time BIGINT,
  last_update_time BIGINT);
CREATE TABLE experiment_tags (experiment_id VARCHAR, key VARCHAR, value VARCHAR,
  PRIMARY KEY (experiment_id, key));
CREATE TABLE runs (run_id VARCHAR PRIMARY KEY, experiment_id VARCHAR, run_name VARCHAR,
  user_id VARCHAR, status VARCHAR, start_time BIGINT, end_time BIGINT,
  lifecycle_stage VARCHAR, artifact_uri VARCHAR, parent_run_id VARCHAR);
CREATE TABLE params (run_id VARCHAR, key VARCHAR, value VARCHAR, PRIMARY KEY (run_id, key));
CREATE TABLE tags (run_id VARCHAR, key VARCHAR, value VARCHAR, PRIMARY KEY (run_id, key));
CREATE TABLE latest_metrics (run_id VARCHAR, key VARCHAR, value DOUBLE, timestamp BIGINT,
  step BIGINT, PRIMARY KEY (run_id, key));
"""

_VIEW = {0: ("active",), 1: ("deleted",), 2: ("active", "deleted")}


def _coalesce_upsert(table: str, cols: Sequence[str], keys: Sequence[str]) -> str:
    sets = ", ".join(f"{c} = COALESCE(excluded.{c}, {table}.{c})" for c in cols if c not in keys)
    names = ", ".join(cols)
    return (
        f"INSERT INTO {table} ({names}) SELECT {names} FROM src "
        f"ON CONFLICT ({', '.join(keys)}) DO UPDATE SET {sets}"
    )


class RunsIndex:
    """Search and point reads over the latest state; see module docstring."""

    def __init__(self) -> None:
        self._db = duckdb.connect(":memory:")
        self._db.execute(_DDL)
        self._lock = threading.Lock()

    # -- writes --

    def load(self, reader: DeltaTableReader) -> None:
        """Fill the index from the Delta tables (at server start)."""
        with self._lock:
            for name in (
                "experiments",
                "experiment_tags",
                "runs",
                "params",
                "tags",
                "latest_metrics",
            ):
                data = reader.dataset(name).to_table()
                if data.num_rows:
                    self._db.register("src", data)
                    self._db.execute(f"INSERT OR REPLACE INTO {name} SELECT * FROM src")
                    self._db.unregister("src")

    def apply(self, result: FoldResult) -> None:
        """Apply one compaction round with the tables' merge rules (idempotent)."""
        with self._lock:
            db = self._db
            db.execute("BEGIN")
            try:
                for name, sql in self._apply_sql():
                    rows = result.tables.get(name)
                    if rows is None or rows.num_rows == 0:
                        continue
                    db.register("src", rows)
                    for statement in sql:
                        db.execute(statement)
                    db.unregister("src")
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise

    @staticmethod
    def _apply_sql() -> list[tuple[str, list[str]]]:
        exp_cols = TABLES["experiments"].schema.names
        run_cols = TABLES["runs"].schema.names
        return [
            ("experiments", [_coalesce_upsert("experiments", exp_cols, ["experiment_id"])]),
            (
                "experiment_tags",
                [
                    "DELETE FROM experiment_tags t USING src WHERE src.deleted AND "
                    "t.experiment_id = src.experiment_id AND t.key = src.key",
                    "INSERT OR REPLACE INTO experiment_tags SELECT experiment_id, key, value "
                    "FROM src WHERE NOT deleted",
                ],
            ),
            ("runs", [_coalesce_upsert("runs", run_cols, ["run_id"])]),
            ("params", ["INSERT OR IGNORE INTO params SELECT run_id, key, value FROM src"]),
            (
                "tags",
                [
                    "DELETE FROM tags t USING src WHERE src.deleted AND "
                    "t.run_id = src.run_id AND t.key = src.key",
                    "INSERT OR REPLACE INTO tags SELECT run_id, key, value FROM src "
                    "WHERE NOT deleted",
                ],
            ),
            (
                "latest_metrics",
                [
                    "INSERT INTO latest_metrics SELECT run_id, key, value, timestamp, step "
                    "FROM src ON CONFLICT (run_id, key) DO UPDATE SET value = excluded.value, "
                    "timestamp = excluded.timestamp, step = excluded.step WHERE "
                    "(excluded.step, excluded.timestamp, excluded.value) > "
                    "(latest_metrics.step, latest_metrics.timestamp, latest_metrics.value)"
                ],
            ),
        ]

    # -- reads --

    def _cursor(self) -> duckdb.DuckDBPyConnection:
        return self._db.cursor()

    def get_run(self, run_id: str) -> query_pb2.Run:
        runs = self._runs_by_id(self._cursor(), [run_id])
        if not runs:
            raise NotFound(f"no run with id {run_id!r}", field="run_id")
        return runs[0]

    def _runs_by_id(self, cur: duckdb.DuckDBPyConnection, ids: list[str]) -> list[query_pb2.Run]:
        if not ids:
            return []
        cur.register("ids", pa.table({"run_id": ids, "ord": list(range(len(ids)))}))
        rows = cur.execute(
            "SELECT r.* FROM runs r JOIN ids USING (run_id) ORDER BY ids.ord"
        ).fetchall()
        cols = [d[0] for d in cur.description or []]
        data: dict[str, query_pb2.RunData] = {r[0]: query_pb2.RunData() for r in rows}
        for rid, key, value in cur.execute(
            "SELECT run_id, key, value FROM params JOIN ids USING (run_id) ORDER BY key"
        ).fetchall():
            data[rid].params.add(key=key, value=value)
        for rid, key, value in cur.execute(
            "SELECT run_id, key, value FROM tags JOIN ids USING (run_id) ORDER BY key"
        ).fetchall():
            data[rid].tags.add(key=key, value=value)
        for rid, key, value, ts, step in cur.execute(
            "SELECT run_id, key, value, timestamp, step FROM latest_metrics "
            "JOIN ids USING (run_id) ORDER BY key"
        ).fetchall():
            data[rid].metrics.add(key=key, value=value, timestamp=ts, step=step)
        cur.unregister("ids")
        out = []
        for row in rows:
            r = dict(zip(cols, row, strict=True))
            info = query_pb2.RunInfo(
                run_id=r["run_id"],
                run_name=r["run_name"] or "",
                experiment_id=r["experiment_id"] or "",
                user_id=r["user_id"] or "",
                status=events_pb2.RunStatus.Value(r["status"] or "RUNNING"),
                start_time=r["start_time"] or 0,
                lifecycle_stage=query_pb2.DELETED
                if r["lifecycle_stage"] == "deleted"
                else query_pb2.ACTIVE,
                artifact_uri=r["artifact_uri"] or "",
                parent_run_id=r["parent_run_id"] or "",
            )
            if r["end_time"] is not None:
                info.end_time = r["end_time"]
            out.append(query_pb2.Run(info=info, data=data[r["run_id"]]))
        return out

    def search_runs(
        self,
        experiment_ids: Sequence[str],
        filter: str,
        view_type: int,
        order_by: Sequence[str],
        max_results: int,
        page_token: str,
    ) -> tuple[list[query_pb2.Run], str]:
        limit = _limit(max_results)
        node = parse_filter(filter)
        order = parse_order_by(list(order_by))
        params: list[Any] = []
        where = [f"r.lifecycle_stage IN ({', '.join('?' * len(_VIEW[view_type]))})"]
        params += _VIEW[view_type]
        if experiment_ids:
            where.append(f"r.experiment_id IN ({', '.join('?' * len(experiment_ids))})")
            params += list(experiment_ids)
        if node is not None:
            where.append(_render(node, params))
        order_sql = [
            f"{_expr(k.ident, params)} {'ASC' if k.ascending else 'DESC'} NULLS LAST" for k in order
        ] or ["r.start_time DESC NULLS LAST"]
        order_sql.append("r.run_id ASC")
        fingerprint = json.dumps([list(experiment_ids), filter, view_type, list(order_by)])
        offset = _decode_token(page_token, fingerprint)
        sql = (
            f"SELECT r.run_id FROM runs r WHERE {' AND '.join(where)} "
            f"ORDER BY {', '.join(order_sql)} LIMIT ? OFFSET ?"
        )
        cur = self._cursor()
        ids = [row[0] for row in cur.execute(sql, [*params, limit + 1, offset]).fetchall()]
        more = len(ids) > limit
        runs = self._runs_by_id(cur, ids[:limit])
        token = _encode_token(offset + limit, fingerprint) if more else ""
        return runs, token

    def get_experiment(
        self, experiment_id: str | None = None, name: str | None = None
    ) -> query_pb2.Experiment:
        field, value = ("experiment_id", experiment_id) if experiment_id else ("name", name)
        found = self._experiments(f"e.{field} = ?", [value], "e.experiment_id", 1, 0)
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
        limit = _limit(max_results)
        params: list[Any] = list(_VIEW[view_type])
        where = [f"e.lifecycle_stage IN ({', '.join('?' * len(_VIEW[view_type]))})"]
        if filter.strip():
            where.append(_experiment_filter(filter, params))
        order = []
        for j, clause in enumerate(order_by):
            parts = clause.split()
            col = parts[0].removeprefix("attributes.").removeprefix("attribute.")
            if (
                col not in ("name", "experiment_id", "creation_time", "last_update_time")
                or len(parts) > 2
                or (len(parts) == 2 and parts[1].upper() not in ("ASC", "DESC"))
            ):
                raise InvalidArgument(
                    f"cannot order experiments by {clause!r}", field=f"order_by[{j}]"
                )
            order.append(f"e.{col} {parts[1].upper() if len(parts) == 2 else 'ASC'}")
        order = order or ["e.creation_time DESC"]
        fingerprint = json.dumps([filter, view_type, list(order_by)])
        offset = _decode_token(page_token, fingerprint)
        found = self._experiments(
            " AND ".join(where), params, ", ".join([*order, "e.experiment_id"]), limit + 1, offset
        )
        token = _encode_token(offset + limit, fingerprint) if len(found) > limit else ""
        return found[:limit], token

    def _experiments(
        self, where: str, params: list[Any], order: str, limit: int, offset: int
    ) -> list[query_pb2.Experiment]:
        cur = self._cursor()
        rows = cur.execute(
            f"SELECT e.*, (SELECT list(struct_pack(k := t.key, v := t.value) ORDER BY t.key) "
            f"FROM experiment_tags t WHERE t.experiment_id = e.experiment_id) AS tags "
            f"FROM experiments e WHERE {where} ORDER BY {order} LIMIT ? OFFSET ?",
            [*params, limit, offset],
        ).fetchall()
        out = []
        for eid, name, loc, stage, ctime, utime, tags in rows:
            exp = query_pb2.Experiment(
                experiment_id=eid,
                name=name or "",
                artifact_location=loc or "",
                lifecycle_stage=query_pb2.DELETED if stage == "deleted" else query_pb2.ACTIVE,
                creation_time=ctime or 0,
                last_update_time=utime or 0,
            )
            for t in tags or []:
                exp.tags.add(key=t["k"], value=t["v"])
            out.append(exp)
        return out


def _limit(max_results: int) -> int:
    if max_results == 0:
        return DEFAULT_RESULTS
    if max_results < 0 or max_results > MAX_RESULTS:
        raise InvalidArgument(f"must be between 1 and {MAX_RESULTS}", field="max_results")
    return max_results


def _encode_token(offset: int, fingerprint: str) -> str:
    digest = hashlib.sha256(fingerprint.encode()).hexdigest()[:16]
    return base64.urlsafe_b64encode(json.dumps({"o": offset, "q": digest}).encode()).decode()


def _decode_token(token: str, fingerprint: str) -> int:
    if not token:
        return 0
    try:
        data = json.loads(base64.urlsafe_b64decode(token.encode()))
        offset = int(data["o"])
        digest = str(data["q"])
    except Exception:
        raise InvalidArgument("is not a token this server issued", field="page_token") from None
    if digest != hashlib.sha256(fingerprint.encode()).hexdigest()[:16] or offset < 0:
        raise InvalidArgument("belongs to a different search", field="page_token")
    return offset


def _expr(ident: Identifier, params: list[Any]) -> str:
    if ident.entity == "attribute":
        return f"r.{ident.key}"
    table, col = {
        "metric": ("latest_metrics", "value"),
        "param": ("params", "value"),
        "tag": ("tags", "value"),
    }[ident.entity]
    params.append(ident.key)
    return f"(SELECT x.{col} FROM {table} x WHERE x.run_id = r.run_id AND x.key = ?)"


def _render(node: Node, params: list[Any]) -> str:
    if isinstance(node, Comparison):
        lhs = _expr(node.ident, params)
        if node.op in ("IN", "NOT IN"):
            assert isinstance(node.value, tuple)
            params.extend(node.value)
            return f"({lhs} {node.op} ({', '.join('?' * len(node.value))}))"
        params.append(node.value)
        return f"({lhs} {node.op} ?)"
    joiner = " AND " if isinstance(node, And) else " OR "
    return "(" + joiner.join(_render(item, params) for item in node.items) + ")"


def _experiment_filter(text: str, params: list[Any]) -> str:
    """name / attributes.name and tags.<key> with = != LIKE ILIKE, joined by AND (MLflow's)."""
    p = Parser(text, "filter")
    parts: list[str] = []
    while True:
        tok = p.next("name or tags.<key>")
        key: str | None
        if tok.kind == "word" and tok.text in ("name", "attributes.name", "attribute.name"):
            lhs, key = "e.name", None
        elif tok.kind == "word" and tok.text.startswith(("tags.", "tag.")):
            key = tok.text.partition(".")[2]
            if not key:
                key = p.next("a quoted tag key").text[1:-1]
            lhs = (
                "(SELECT t.value FROM experiment_tags t "
                "WHERE t.experiment_id = e.experiment_id AND t.key = ?)"
            )
        else:
            p.i -= 1
            raise p.error("name or tags.<key>")
        op_tok = p.next("a comparator")
        op = op_tok.text.upper() if op_tok.kind == "word" else op_tok.text
        if op not in ("=", "!=", "LIKE", "ILIKE"):
            p.i -= 1
            raise p.error("= != LIKE or ILIKE")
        val = p.next("a quoted string")
        if val.kind != "string":
            p.i -= 1
            raise p.error("a quoted string")
        if key is not None:
            params.append(key)
        params.append(val.text[1:-1])
        parts.append(f"({lhs} {op} ?)")
        if not p.keyword("AND"):
            break
    if p.peek() is not None:
        raise p.error("AND or the end")
    return " AND ".join(parts)
