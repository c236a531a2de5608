"""The scale-out query service's feed: an index that follows Delta tables through their
change data feed must end equal to an index fed each fold round directly.

No Spark here: delta-rs writes the tables with the change feed on (what the Spark
compactor's tables have), and the progress rides on each round's ``events`` commit as the
Spark job writes it. Real Delta tables on a local directory, a real DuckDB index.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest
from deltalake import CommitProperties, DeltaTable, write_deltalake
from runlake.errors import DeadlineExceeded, InvalidArgument
from runlake.v1 import events_pb2 as E
from runlake.v1 import query_pb2
from runlake_services.fold import fold
from runlake_services.progress import TokenProgress
from runlake_services.query.follower import TableFollower, cdf_to_fold_rows
from runlake_services.query.state import RunsIndex
from runlake_services.tables.delta_sink import DeltaTableSink
from runlake_services.tables.folded import latest_folded, progress_metadata
from runlake_services.tables.schema import CHANGE_FEED_TABLES, TABLES, FoldResult
from runlake_services.tables.storage import TableStore, open_table_store

from tests import events as ev

TOPIC = "runlake.events"


def _batch(batch_id: str, *events: E.Event) -> E.LoggedBatch:
    meta = E.BatchMeta(batch_id=batch_id, user="u", received_at_ms=1_000)
    return E.LoggedBatch(meta=meta, events=list(events))


class _Compactor:
    """Commits fold rounds like the Spark job: tables first, then events with the offsets."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.sink = DeltaTableSink(str(root), change_feed=True)
        self.sink.ensure_tables()
        for name in CHANGE_FEED_TABLES:
            props = DeltaTable(str(root / name)).metadata().configuration
            assert props.get("delta.enableChangeDataFeed") == "true", name
        self.round = 0

    def commit(self, result: FoldResult) -> str:
        self.round += 1
        for name in TABLES:
            rows = result.tables[name]
            if name != "events" and rows.num_rows:
                self.sink.commit(name, rows, self.round)
        vector = {(TOPIC, 0): self.round * 10}
        meta = progress_metadata(vector, self.round)
        write_deltalake(
            str(self.root / "events"),
            result.tables["events"].cast(TABLES["events"].schema),
            mode="append",
            commit_properties=CommitProperties(custom_metadata={"userMetadata": meta}),
        )
        return f"{TOPIC}:0={self.round * 10}"


def _runs(index: RunsIndex) -> list[dict[str, object]]:
    runs, _ = index.search_runs(["0"], "", query_pb2.ALL, ["attributes.run_name ASC"], 1000, "")
    out = []
    for r in runs:
        out.append(
            {
                "id": r.info.run_id,
                "status": r.info.status,
                "stage": r.info.lifecycle_stage,
                "name": r.info.run_name,
                "params": sorted((p.key, p.value) for p in r.data.params),
                "tags": sorted((t.key, t.value) for t in r.data.tags),
                "metrics": sorted((m.key, m.value, m.step) for m in r.data.metrics),
            }
        )
    return out


def test_a_following_index_ends_equal_to_one_fed_directly(tmp_path: Path) -> None:
    compactor = _Compactor(tmp_path / "tables")
    progress = TokenProgress()
    followed = RunsIndex()
    follower = TableFollower(TableStore(str(tmp_path / "tables")), followed, progress)
    follower.load()
    assert progress.folded == "" and _runs(followed) == []
    direct = RunsIndex()

    a, b, c = ev.run_id(), ev.run_id(), ev.run_id()
    rounds = [
        [_batch("1", ev.created(a, name="a"), ev.params(a, lr="0.1"), ev.tags(a, team="x"))],
        [
            _batch("2", ev.created(b, name="b"), ev.metrics(a, [("loss", 0.5, 10, 1)])),
            _batch("3", ev.metrics(a, [("loss", 0.4, 11, 2), ("loss", 9.0, 1, 0)])),
        ],
        # a tag changes then is deleted in the same stretch of rounds; a run is deleted
        [_batch("4", ev.tags(a, team="y"), ev.tags(b, team="z"), ev.finished(a))],
        [_batch("5", E.Event(tag_deleted=E.TagDeleted(run_id=b, key="team")), ev.deleted(b))],
        [_batch("6", ev.created(c, name="c"), ev.restored(b), ev.metrics(c, [("acc", 1.0, 5, 7)]))],
        # a tag set and deleted within one round, on a key the table never held, beside
        # a set: the deletion matches nothing (a MERGE case delta-rs's change feed needs
        # handled apart), the set lands
        [
            _batch("7", ev.tags(c, gone="x"), ev.tags(a, stage="prod")),
            _batch("8", E.Event(tag_deleted=E.TagDeleted(run_id=c, key="gone"))),
        ],
    ]
    for i, batches in enumerate(rounds):
        result = fold([(100 * i + j, batch) for j, batch in enumerate(batches)])
        token = compactor.commit(result)
        direct.apply(result)
        if i == 2:  # rounds 3 and 4 reach the follower in one poll: several commits per feed
            continue
        assert follower.poll_once()
        assert progress.folded == token
        assert _runs(followed) == _runs(direct), f"after round {i + 1}"
    assert {r["name"] for r in _runs(followed)} == {"a", "b", "c"}
    assert not follower.poll_once()  # nothing new: nothing read, nothing applied

    # a fresh follower starting now loads the same state from the snapshots
    late = RunsIndex()
    TableFollower(TableStore(str(tmp_path / "tables")), late, TokenProgress()).load()
    assert _runs(late) == _runs(direct)


def test_change_rows_keep_the_last_change_per_key_and_deletions() -> None:
    changes = pa.table(
        {
            "run_id": ["r", "r", "r", "s"],
            "key": ["t", "t", "t", "t"],
            "value": ["1", "1", "2", "9"],
            "_change_type": ["insert", "update_preimage", "update_postimage", "insert"],
            "_commit_version": [1, 2, 2, 3],
        }
    )
    rows = cdf_to_fold_rows("tags", changes).to_pylist()
    assert sorted(rows, key=lambda r: r["run_id"]) == [
        {"run_id": "r", "key": "t", "value": "2", "deleted": False},
        {"run_id": "s", "key": "t", "value": "9", "deleted": False},
    ]
    gone = changes.append_column("x", pa.array([0] * 4)).drop_columns("x")
    gone = pa.concat_tables(
        [
            gone,
            pa.table(
                {
                    "run_id": ["s"],
                    "key": ["t"],
                    "value": ["9"],
                    "_change_type": ["delete"],
                    "_commit_version": [4],
                }
            ),
        ]
    )
    last = {r["run_id"]: r["deleted"] for r in cdf_to_fold_rows("tags", gone).to_pylist()}
    assert last == {"r": False, "s": True}


def test_progress_rides_on_the_newest_commit_that_carries_it() -> None:
    history = [
        {"version": 7, "userMetadata": progress_metadata({(TOPIC, 0): 5}, 3), "timestamp": 70},
        {"version": 9, "operation": "OPTIMIZE", "timestamp": 90},  # no metadata
        {"version": 8, "userMetadata": progress_metadata({(TOPIC, 0): 6}, 4), "timestamp": 80},
        {"version": 6, "userMetadata": "not json", "timestamp": 60},
    ]
    found = latest_folded(history)
    assert found is not None and (found.token, found.version) == (f"{TOPIC}:0=6", 8)
    assert latest_folded([{"version": 1}]) is None


def test_token_progress_waits_for_every_listed_partition() -> None:
    progress = TokenProgress()
    progress.folded_to("runlake.events:0=5,1=3")
    progress.wait("runlake.events:0=5", 0.0)  # covered: returns at once
    progress.wait("", 0.0)
    with pytest.raises(DeadlineExceeded, match="min_position"):
        progress.wait("runlake.events:1=4", 0.05)
    progress.folded_to("runlake.events:1=2")  # a stale view never moves it back
    assert progress.folded == "runlake.events:0=5,1=3"
    with pytest.raises(InvalidArgument, match="min_position"):
        progress.wait("12", 0.0)  # an embedded server's position here is a client's mistake
    with pytest.raises(InvalidArgument, match="min_position"):
        progress.wait("runlake.events:x=1", 0.0)


def test_table_stores_take_s3_settings_from_the_environment_only(tmp_path: Path) -> None:
    env = {
        "RUNLAKE_S3_ENDPOINT_URL": "http://127.0.0.1:9000",
        "RUNLAKE_S3_ACCESS_KEY": "key",
        "RUNLAKE_S3_SECRET_KEY": "secret",
    }
    store = open_table_store("s3a://runlake/tables/", env)
    assert store.root == "s3://runlake/tables"
    assert store.storage_options["AWS_ENDPOINT_URL"] == "http://127.0.0.1:9000"
    assert store.storage_options["AWS_ALLOW_HTTP"] == "true"
    assert store.storage_options["AWS_SECRET_ACCESS_KEY"] == "secret"
    assert "secret" not in repr(store)
    assert open_table_store(tmp_path.as_uri(), {}).root == str(tmp_path)
    for bad, needle in (("s3://", "bucket"), ("hdfs://x/y", "valid: file://"), ("file://", "no")):
        with pytest.raises(InvalidArgument, match=needle) as err:
            open_table_store(bad, {})
        assert err.value.field == "store"
