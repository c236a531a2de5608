"""The Arrow engine's parts that need no JVM: conversions, statistics, plans, one task, commits.

A task runs here in-process (no TaskContext: attempt 0) with a real sklearn model and real
files; the commits are real delta-rs transactions and directory moves on a temporary disk.
The same paths under a real Spark are in tests/integration/spark/test_scoring_arrow.py.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from deltalake import DeltaTable
from hypothesis import given, settings
from hypothesis import strategies as st
from pyarrow import fs as pafs
from pyspark.sql import types as T
from pyspark.sql.pandas.types import to_arrow_schema
from runlake.errors import InvalidArgument
from runlake.spark.commit import DeltaOutput, ParquetOutput
from runlake.spark.locations import locate
from runlake.spark.plan import NotEligible, plan_parquet, split_units
from runlake.spark.score import check_job
from runlake.spark.tasks import (
    TaskSpec,
    Unit,
    WrittenFile,
    _Stats,
    conform,
    predictions_to_arrow,
    score_unit,
)
from runlake.spark.worker import ShippedModel

UTC_US = pa.timestamp("us", tz="UTC")


def test_batches_are_conformed_to_the_schema_spark_reads() -> None:
    schema = pa.schema(
        [("id", pa.int64()), ("at", UTC_US), ("x", pa.float64()), ("added", pa.string())]
    )
    raw = pa.record_batch(
        {
            "x": pa.array([0.5, 1.5]),
            "extra": pa.array([1, 2]),
            "at": pa.array([1_000_000_000, 2_000_000_000], pa.timestamp("ns")),  # an INT96 read
            "id": pa.array([1, 2], pa.int32()),
        }
    )
    out = conform(raw, schema)
    assert out.schema == schema
    assert out.column("id").to_pylist() == [1, 2]
    assert out.column("at").cast(pa.int64()).to_pylist() == [1_000_000, 2_000_000]  # µs
    assert out.column("added").null_count == 2


def test_predictions_become_arrow_columns_of_the_result_type() -> None:
    assert predictions_to_arrow(pd.Series([1.0, np.nan]), pa.float64()).to_pylist() == [1.0, None]
    labels = predictions_to_arrow(pd.Series(["a", "b"], dtype=object), pa.string())
    assert labels.to_pylist() == ["a", "b"]
    struct = pa.struct([("label", pa.string()), ("score", pa.float32())])
    frame = pd.DataFrame({"label": ["p", "n"], "score": np.array([0.5, 0.25], np.float32)})
    assert predictions_to_arrow(frame, struct).to_pylist() == [
        {"label": "p", "score": 0.5},
        {"label": "n", "score": 0.25},
    ]
    vectors = predictions_to_arrow(
        pd.Series([np.array([1.0, 2.0]), np.array([3.0])]), pa.list_(pa.float64())
    )
    assert vectors.to_pylist() == [[1.0, 2.0], [3.0]]
    times = pd.Series(pd.to_datetime(["2024-01-01T00:00:00.000001"]))  # datetime64 naive
    assert predictions_to_arrow(times, UTC_US).type == UTC_US
    with pytest.raises(TypeError, match="needs one column"):
        predictions_to_arrow(frame, pa.float64())


floats = st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True, width=64))


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.lists(floats, max_size=20), min_size=1, max_size=4),
    st.lists(st.one_of(st.none(), st.integers(-(2**62), 2**62)), min_size=1, max_size=20),
)
def test_statistics_never_claim_a_range_a_nan_or_infinity_escapes(
    chunks: list[list[float | None]], ints: list[int | None]
) -> None:
    schema = pa.schema(
        [("x", pa.float64()), ("n", pa.int64()), ("s", pa.struct([("a", pa.int8())]))]
    )
    stats = _Stats(schema)
    for chunk in chunks:
        n = len(chunk)
        stats.add(
            pa.record_batch(
                [
                    pa.array(chunk, pa.float64()),
                    pa.array((ints * (n // len(ints) + 1))[:n], pa.int64()),
                    pa.nulls(n, schema.field("s").type),
                ],
                schema=schema,
            )
        )
    out = json.loads(stats.json())
    values = [v for c in chunks for v in c]
    present = [v for v in values if v is not None]
    assert out["numRecords"] == len(values)
    assert out["nullCount"]["x"] == len(values) - len(present)
    assert "s" not in out["nullCount"]  # nested columns carry no statistics
    if present and all(math.isfinite(v) for v in present):
        assert (out["minValues"]["x"], out["maxValues"]["x"]) == (min(present), max(present))
    else:
        assert "x" not in out["minValues"] and "x" not in out["maxValues"]
    ns = [v for c in chunks for v in (ints * (len(c) // len(ints) + 1))[: len(c)]]
    if any(v is not None for v in ns):
        assert out["minValues"]["n"] == min(v for v in ns if v is not None)


def _parquet(path: Path, rows: int, groups: int = 1) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    table = pa.table({"x": np.arange(rows, dtype=np.float64)})
    pq.write_table(table, path, row_group_size=max(1, rows // groups))


def test_a_parquet_plan_lists_data_files_and_refuses_partitions(tmp_path: Path) -> None:
    for name in ("b.parquet", "a.parquet", "_SUCCESS", ".a.parquet.crc", "_temporary/x.parquet"):
        _parquet(tmp_path / "t" / name, 10) if name.endswith("parquet") else (
            tmp_path / "t" / name
        ).write_text("")
    loc = locate(str(tmp_path / "t"))
    assert loc is not None
    plan = plan_parquet(loc, parallelism=2)
    assert plan.files == 2
    assert [p for u in plan.units for p, _ in u.parts] == [
        loc.join("a.parquet"),
        loc.join("b.parquet"),
    ]
    _parquet(tmp_path / "t" / "kind=x" / "c.parquet", 10)
    with pytest.raises(NotEligible, match=r"sub-directories \(kind=x/\)"):
        plan_parquet(loc, parallelism=2)


@settings(max_examples=50, deadline=None)
@given(st.lists(st.integers(1, 400 << 20), min_size=1, max_size=40), st.integers(1, 16))
def test_units_hold_every_file_once(sizes: list[int], parallelism: int) -> None:
    loc = locate("/nonexistent-root")
    assert loc is not None
    files = [(f"/nonexistent-root/f{i}", s) for i, s in enumerate(sizes)]
    small = [(p, s) for p, s in files if s <= 4 << 20]  # never cut: no footer read needed
    units = split_units(loc, small, parallelism)
    assert [u.index for u in units] == list(range(len(units)))
    assert sorted(p for u in units for p, _ in u.parts) == sorted(p for p, _ in small)


def test_a_big_file_is_cut_at_row_group_boundaries(tmp_path: Path) -> None:
    _parquet(tmp_path / "big.parquet", 200_000, groups=8)
    loc = locate(str(tmp_path))
    assert loc is not None
    import runlake.spark.plan as plan

    size = (tmp_path / "big.parquet").stat().st_size
    old = plan.MAX_SPLIT_BYTES
    plan.MAX_SPLIT_BYTES = size // 3  # smaller than the file: it must be cut
    try:
        units = split_units(loc, [(loc.join("big.parquet"), size)], parallelism=1)
    finally:
        plan.MAX_SPLIT_BYTES = old
    groups = [g for u in units for _, gs in u.parts for g in (gs or ())]
    assert len(units) > 1 and sorted(groups) == list(range(8))


@pytest.fixture
def model_dir(tmp_path: Path) -> tuple[Path, Any]:
    import runlake.sklearn
    from sklearn.linear_model import LinearRegression

    X = pd.DataFrame({"a": [0.0, 1.0, 2.0, 3.0], "b": [1.0, 0.0, 1.0, 0.0]})
    model = LinearRegression().fit(X, 3 * X["a"] - X["b"])
    runlake.sklearn.save_model(model, tmp_path / "model", input_example=X[:2])
    return tmp_path / "model", model


def _spec(model: Path, out_dir: Path, *, delta: bool) -> TaskSpec:
    inputs = T.StructType(
        [
            T.StructField("id", T.LongType()),
            T.StructField("a", T.DoubleType()),
            T.StructField("b", T.DoubleType()),
        ]
    )
    outputs = T.StructType([*inputs.fields, T.StructField("prediction", T.DoubleType())])
    local = pafs.LocalFileSystem()
    return TaskSpec(
        model=ShippedModel(f"test-{out_dir.name}", "", local=str(model)),
        names=("a", "b"),
        params=None,
        result_type=T.DoubleType(),
        input_fs=local,
        input_schema=to_arrow_schema(inputs, timezone="UTC"),
        output_schema=to_arrow_schema(outputs, timezone="UTC"),
        output_fs=local,
        output_dir=str(out_dir),
        job_id="job1",
        delta_stats=delta,
    )


def test_a_task_scores_its_files_as_the_model_predicts(
    tmp_path: Path, model_dir: tuple[Path, Any]
) -> None:
    rng = np.random.default_rng(0)
    frames = [
        pd.DataFrame(
            {
                "id": np.arange(k * 1000, k * 1000 + 1000),
                "a": rng.normal(size=1000),
                "b": rng.normal(size=1000),
            }
        )
        for k in range(2)
    ]
    for k, f in enumerate(frames):
        pq.write_table(
            pa.Table.from_pandas(f, preserve_index=False),
            tmp_path / f"in{k}.parquet",
            row_group_size=300,
        )
    out = tmp_path / "out"
    out.mkdir()
    unit = Unit(3, ((str(tmp_path / "in0.parquet"), None), (str(tmp_path / "in1.parquet"), (1, 2))))
    written = score_unit(_spec(model_dir[0], out, delta=True), unit)
    assert written.name == "part-00003-job1-t0.c000.snappy.parquet"
    got = pq.read_table(out / written.name).to_pandas()
    want = pd.concat([frames[0], frames[1].iloc[300:900]], ignore_index=True)
    assert written.rows == len(got) == len(want) == 1600
    assert written.size == (out / written.name).stat().st_size
    pd.testing.assert_frame_equal(got[["id", "a", "b"]], want)
    np.testing.assert_allclose(got["prediction"], model_dir[1].predict(want[["a", "b"]]))
    stats = json.loads(written.stats or "")
    assert stats["numRecords"] == 1600 and stats["maxValues"]["id"] == 1899


def _files(out: Path, n: int = 2) -> list[WrittenFile]:
    files = []
    for i in range(n):
        name = f"part-{i:05d}-job1-t{i}.c000.snappy.parquet"
        pq.write_table(pa.table({"id": [i], "prediction": [i / 2]}), out / name)
        files.append(
            WrittenFile(name, (out / name).stat().st_size, 1, json.dumps({"numRecords": 1}))
        )
    return files


SCHEMA = T.StructType(
    [T.StructField("id", T.LongType()), T.StructField("prediction", T.DoubleType())]
)


def test_a_delta_commit_is_one_transaction_and_an_abort_leaves_nothing(tmp_path: Path) -> None:
    loc = locate(str(tmp_path / "table"))
    assert loc is not None
    first = DeltaOutput(loc, "error", "job1", SCHEMA)
    first.check()
    first.begin()
    files = _files(tmp_path / "table")
    (tmp_path / "table" / "part-00000-job1-t9.c000.snappy.parquet").write_bytes(b"a lost attempt")
    assert first.commit(files, '{"runlake_run_id": "r1"}', "runlake-score/r1") == 0
    dt = DeltaTable(str(tmp_path / "table"))
    assert dt.to_pyarrow_table().num_rows == 2 and dt.transaction_version("runlake-score/r1") == 1
    assert dt.history()[0]["userMetadata"] == '{"runlake_run_id": "r1"}'
    assert not (tmp_path / "table" / "part-00000-job1-t9.c000.snappy.parquet").exists()

    failing = DeltaOutput(loc, "append", "job2", SCHEMA)
    failing.check()
    failing.begin()
    pq.write_table(
        pa.table({"id": [5], "prediction": [1.0]}),
        tmp_path / "table" / "part-00000-job2-t1.c000.snappy.parquet",
    )
    failing.abort()
    assert sorted(p.name for p in (tmp_path / "table").glob("*.parquet")) == sorted(
        f.name for f in files
    )
    assert DeltaTable(str(tmp_path / "table")).version() == 0

    new = locate(str(tmp_path / "never"))
    assert new is not None
    gone = DeltaOutput(new, "error", "job3", SCHEMA)
    gone.begin()
    gone.abort()
    assert not (tmp_path / "never").exists()

    other = T.StructType([T.StructField("id", T.StringType())])
    with pytest.raises(
        InvalidArgument, match=r"^output: .* has other columns .*id: bigint vs string"
    ):
        DeltaOutput(loc, "append", "job4", other).check()


def test_a_parquet_commit_moves_staged_files_in(tmp_path: Path) -> None:
    out = tmp_path / "out"
    loc = locate(str(out))
    assert loc is not None
    job = ParquetOutput(loc, "error", "job1")
    job.begin()
    files = _files(Path(job.staging))
    job.commit(files, "", "")
    assert sorted(p.name for p in out.iterdir()) == sorted([*(f.name for f in files), "_SUCCESS"])
    again = ParquetOutput(loc, "overwrite", "job2")
    again.begin()
    again.abort()  # a failed overwrite: the old files stay, nothing staged remains
    assert sorted(p.name for p in out.iterdir()) == sorted([*(f.name for f in files), "_SUCCESS"])
    third = ParquetOutput(loc, "overwrite", "job3")
    third.begin()
    (Path(third.staging) / "part-00000-job3-t0.c000.snappy.parquet").write_bytes(
        (out / files[0].name).read_bytes()
    )
    third.commit([WrittenFile("part-00000-job3-t0.c000.snappy.parquet", 1, 1, None)], "", "")
    assert sorted(p.name for p in out.iterdir()) == [
        "_SUCCESS",
        "part-00000-job3-t0.c000.snappy.parquet",
    ]


def test_locations_and_bad_options() -> None:
    local = locate("file:///tmp/x/../y")
    assert local is not None and local.path == "/tmp/y" and local.delta_uri == "/tmp/y"
    s3 = locate("s3a://bucket/some/table/")
    assert s3 is not None and s3.path == "bucket/some/table"
    assert s3.delta_uri == "s3://bucket/some/table"
    assert locate("hdfs://namenode/t") is None
    with pytest.raises(InvalidArgument, match=r"^engine: 'fast' is not auto, arrow or spark"):
        check_job("/in", "/out", "auto", "delta", "error", "fast")
