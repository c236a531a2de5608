"""The Arrow engine's input plan: which files a table version holds, cut into task units.

A Delta input is listed with delta-rs at the version the job pinned (the add actions of
that snapshot); a Parquet input is the non-hidden files of its directory, as Spark lists
them (names starting with ``_`` or ``.`` are not data). Tables the Arrow engine would read
differently from Spark are left to Spark, with the reason: Delta tables with deletion
vectors, column mapping or partition columns (values that live outside the files), and
Parquet directories with sub-directories (Hive partitions). The run records the reason.

Units follow Spark's split rule (``spark.sql.files.maxPartitionBytes``, 128 MiB) but aim
for at least four units per core, so that the last tasks to finish leave little of the
cluster idle; small files are packed together, and a file larger than the split is cut at
row-group boundaries (its footer is read on the driver only then).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import unquote

from runlake.spark.tasks import Unit

if TYPE_CHECKING:
    from runlake.spark.locations import TableLocation

__all__ = ["InputPlan", "NotEligible", "plan_delta", "plan_parquet", "split_units"]

MAX_SPLIT_BYTES = 128 << 20
#: what opening one more file costs, in bytes of reading (Spark's openCostInBytes)
OPEN_COST_BYTES = 4 << 20
UNITS_PER_CORE = 4
#: Delta reader features whose files read the same with plain pyarrow
_PLAIN_READER_FEATURES = frozenset({"timestampNtz", "v2Checkpoint", "vacuumProtocolCheck"})


class NotEligible(Exception):
    """The table needs Spark's own reader or writer; the message says why."""


@dataclass(frozen=True)
class InputPlan:
    units: list[Unit]
    files: int
    bytes: int


def plan_delta(loc: TableLocation, version: int, parallelism: int) -> InputPlan:
    """The files of Delta version ``version`` at ``loc``, as units (or NotEligible)."""
    from deltalake import DeltaTable

    dt = DeltaTable(loc.delta_uri, version=version, storage_options=loc.storage_options)
    protocol = dt.protocol()
    features = set(protocol.reader_features or ())
    if protocol.min_reader_version == 2 or features - _PLAIN_READER_FEATURES:
        what = ", ".join(sorted(features - _PLAIN_READER_FEATURES)) or "column mapping"
        raise NotEligible(f"the input's Delta reader features ({what}) need Spark's reader")
    partitions = dt.metadata().partition_columns
    if partitions:
        raise NotEligible(f"the input is partitioned by {partitions}")
    actions = dt.get_add_actions(flatten=True)
    paths = actions.column("path").to_pylist()
    sizes = actions.column("size_bytes").to_pylist()
    files = []
    for rel, size in zip(paths, sizes, strict=True):
        if "://" in rel or rel.startswith("/"):
            raise NotEligible("the input's log names files outside the table (a clone)")
        files.append((loc.join(unquote(rel)), int(size)))
    return InputPlan(split_units(loc, files, parallelism), len(files), sum(s for _, s in files))


def plan_parquet(loc: TableLocation, parallelism: int) -> InputPlan:
    """The data files of the Parquet file or directory at ``loc``, as units."""
    from pyarrow import fs as pafs

    info = loc.filesystem.get_file_info(loc.path)
    if info.type == pafs.FileType.File:
        entries = [info]
    else:
        entries = loc.filesystem.get_file_info(pafs.FileSelector(loc.path, recursive=True))
    files = []
    root = loc.path.rstrip("/") + "/"
    for e in entries:
        rel = e.path[len(root) :] if e.path.startswith(root) else e.base_name
        parts = rel.split("/")
        if any(p.startswith(("_", ".")) for p in parts):
            continue
        if e.type != pafs.FileType.File:
            continue
        if len(parts) > 1:
            raise NotEligible(f"the input has sub-directories ({parts[0]}/): partitions")
        files.append((e.path, int(e.size or 0)))
    files.sort()
    return InputPlan(split_units(loc, files, parallelism), len(files), sum(s for _, s in files))


def split_units(loc: TableLocation, files: list[tuple[str, int]], parallelism: int) -> list[Unit]:
    """Files → task units of about ``split`` bytes each (see the module docstring)."""
    total = sum(size + OPEN_COST_BYTES for _, size in files)
    split = min(
        MAX_SPLIT_BYTES, max(OPEN_COST_BYTES, total // max(1, parallelism * UNITS_PER_CORE))
    )
    pieces: list[tuple[tuple[str, tuple[int, ...] | None], int]] = []
    for path, size in files:
        if size > split:
            pieces += _row_group_pieces(loc, path, split)
        else:
            pieces.append(((path, None), size))
    units: list[Unit] = []
    current: list[tuple[str, tuple[int, ...] | None]] = []
    filled = 0
    for piece, size in pieces:
        if current and filled + size + OPEN_COST_BYTES > split:
            units.append(Unit(len(units), tuple(current)))
            current, filled = [], 0
        current.append(piece)
        filled += size + OPEN_COST_BYTES
    if current:
        units.append(Unit(len(units), tuple(current)))
    return units


def _row_group_pieces(
    loc: TableLocation, path: str, split: int
) -> list[tuple[tuple[str, tuple[int, ...] | None], int]]:
    import pyarrow.parquet as pq

    with loc.filesystem.open_input_file(path) as f:
        meta = pq.ParquetFile(f).metadata
    pieces: list[tuple[tuple[str, tuple[int, ...] | None], int]] = []
    groups: list[int] = []
    size = 0
    for i in range(meta.num_row_groups):
        group = meta.row_group(i)
        rg = sum(group.column(c).total_compressed_size for c in range(group.num_columns))
        if groups and size + rg > split:
            pieces.append(((path, tuple(groups)), size))
            groups, size = [], 0
        groups.append(i)
        size += rg
    if groups or not pieces:
        pieces.append(((path, tuple(groups) if meta.num_row_groups else None), size))
    return pieces
