"""The Arrow engine's output side: where tasks write, and one commit by the driver.

Delta (:class:`DeltaOutput`): tasks write their Parquet files straight into the table's
directory, where no reader sees them (a Delta table is what its log lists). The driver then
commits every file of the job in **one** delta-rs transaction — ``create_table_with_add_actions``
for a new table, ``create_write_transaction`` (append or overwrite) for an existing one —
with the job's ``userMetadata`` and the app transaction ``(runlake-score/<run id>, 1)``. If
the commit call fails ambiguously, the app transaction says whether it landed, so a job is
committed once or not at all. A failed job deletes the files it wrote (and the directory
if it created it); the table's history does not change.

Parquet (:class:`ParquetOutput`): a directory has no log, so tasks write into
``<output>/_temporary/runlake-<job>/`` (hidden from Spark and pyarrow readers, as Spark's
own committer stages), and the commit moves the files into ``<output>/`` and writes
``_SUCCESS``; ``overwrite`` first deletes what was there. That is Spark's
``FileOutputCommitter`` protocol: a failed job leaves no file in view, but a driver that
dies halfway through the moves leaves part of them (on S3 each move is a copy). Use Delta
when readers must never see a partial write.

An existing output the Arrow engine cannot write exactly as Spark would — a Delta table
with NOT NULL columns or invariants, CHECK constraints, generated or identity columns, a
change feed, column mapping or deletion vectors — is :class:`NotEligible`, and the job
runs on Spark's writer, which enforces them.
"""

from __future__ import annotations

import contextlib
import json
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from runlake.errors import InvalidArgument, RunlakeError
from runlake.spark.plan import NotEligible

if TYPE_CHECKING:
    from pyspark.sql import types as T

    from runlake.spark.locations import TableLocation
    from runlake.spark.tasks import WrittenFile

__all__ = ["DeltaOutput", "OutputCommitter", "ParquetOutput"]

Mode = Literal["error", "overwrite", "append"]
#: Delta writer features whose tables take externally written files unchanged
_PLAIN_WRITER_FEATURES = frozenset({"appendOnly", "timestampNtz", "v2Checkpoint",
                                    "vacuumProtocolCheck"})  # fmt: skip
_PLAIN_READER_FEATURES = frozenset({"timestampNtz", "v2Checkpoint", "vacuumProtocolCheck"})


@dataclass
class _Base:
    loc: TableLocation
    mode: Mode
    job_id: str
    existed: bool = field(default=False, init=False)

    def _exists(self) -> bool:
        from pyarrow import fs as pafs

        return bool(self.loc.filesystem.get_file_info(self.loc.path).type != pafs.FileType.NotFound)

    def _job_files(self, directory: str) -> list[str]:
        from pyarrow import fs as pafs

        try:
            infos = self.loc.filesystem.get_file_info(pafs.FileSelector(directory))
        except FileNotFoundError:
            return []
        return [
            i.path for i in infos if i.type == pafs.FileType.File and self.job_id in i.base_name
        ]

    def _remove_if_empty(self, directory: str) -> None:
        from pyarrow import fs as pafs

        fs = self.loc.filesystem
        try:
            if not fs.get_file_info(pafs.FileSelector(directory, recursive=True)):
                fs.delete_dir(directory)
        except (FileNotFoundError, OSError):
            pass


@dataclass
class DeltaOutput(_Base):
    """Commit the job's files to a Delta table in one transaction (module docstring)."""

    #: the scored DataFrame's schema: the table's schema when the job creates it
    schema: T.StructType | None = None
    delta_stats: bool = field(default=True, init=False)
    _table_schema: Any = field(default=None, init=False, repr=False)

    @property
    def files_dir(self) -> str:
        return self.loc.path

    def check(self) -> None:
        """Refuse (InvalidArgument) or hand to Spark (NotEligible) before anything runs."""
        from deltalake import DeltaTable

        from runlake.spark.types import same_columns

        assert self.schema is not None
        if not DeltaTable.is_deltatable(self.loc.delta_uri, self.loc.storage_options):
            return
        dt = DeltaTable(self.loc.delta_uri, storage_options=self.loc.storage_options)
        _check_plain(dt)
        from pyspark.sql import types as T

        theirs = T.StructType.fromJson(json.loads(dt.schema().to_json()))
        if any(not f.nullable or "delta.invariants" in (f.metadata or {}) for f in theirs):
            raise NotEligible("the output table has NOT NULL columns or invariants")
        diff = same_columns(theirs, self.schema)
        if diff:
            raise InvalidArgument(
                f"the table at {self.loc.uri} has other columns than the scored input "
                f"({diff}); score into a new table", field="output",
            )  # fmt: skip
        self._table_schema = dt.schema()

    def begin(self) -> None:
        self.existed = self._exists()
        self.loc.filesystem.create_dir(self.loc.path, recursive=True)

    def commit(self, files: list[WrittenFile], user_metadata: str, app_id: str) -> int:
        """One Delta commit of ``files``; the version it made."""
        from deltalake import CommitProperties, DeltaTable, Schema, Transaction
        from deltalake.transaction import AddAction, RemoveAction, create_table_with_add_actions

        assert self.schema is not None
        now = int(time.time() * 1000)
        adds = [AddAction(f.name, f.size, {}, now, True, f.stats or "") for f in files]
        props = CommitProperties(
            custom_metadata={"userMetadata": user_metadata},
            app_transactions=[Transaction(app_id, 1)],
        )
        uri, options = self.loc.delta_uri, self.loc.storage_options
        try:
            if self._table_schema is None:
                schema = Schema.from_json(self.schema.json())
                create_table_with_add_actions(
                    uri, schema, adds, mode="error", storage_options=options,
                    commit_properties=props,
                )  # fmt: skip
            else:
                dt = DeltaTable(uri, storage_options=options)
                actions: list[AddAction | RemoveAction] = [*adds]
                dt.create_write_transaction(actions, self.mode, self._table_schema,
                                            commit_properties=props)  # fmt: skip
        except Exception:
            if _committed_version(uri, options, app_id, user_metadata) is None:
                raise
        version = _committed_version(uri, options, app_id, user_metadata)
        if version is None:
            raise RunlakeError(f"{self.loc.uri}: the job's commit is not in the table's history")
        kept = {self.loc.join(f.name) for f in files}
        for path in self._job_files(self.loc.path):  # failed or speculative attempts
            if path not in kept:
                self.loc.filesystem.delete_file(path)
        return version

    def abort(self) -> None:
        for path in self._job_files(self.loc.path):
            self.loc.filesystem.delete_file(path)
        if not self.existed:
            self._remove_if_empty(self.loc.path)


def _check_plain(dt: Any) -> None:
    p = dt.protocol()
    writer = set(p.writer_features or ())
    reader = set(p.reader_features or ())
    if p.min_writer_version > 2 and (p.min_writer_version < 7 or writer - _PLAIN_WRITER_FEATURES):
        what = (
            ", ".join(sorted(writer - _PLAIN_WRITER_FEATURES)) or f"writer v{p.min_writer_version}"
        )
        raise NotEligible(f"the output table's Delta features ({what}) need Spark's writer")
    if p.min_reader_version == 2 or reader - _PLAIN_READER_FEATURES:
        raise NotEligible("the output table's Delta reader features need Spark's writer")


def _committed_version(
    uri: str, options: dict[str, str], app_id: str, user_metadata: str
) -> int | None:
    """The version of this job's commit, found by its app transaction (None: not there)."""
    from deltalake import DeltaTable

    if not DeltaTable.is_deltatable(uri, options):
        return None
    dt = DeltaTable(uri, storage_options=options)
    if dt.transaction_version(app_id) is None:
        return None
    for entry in dt.history(50):
        if entry.get("userMetadata") == user_metadata:
            return int(entry["version"])
    return None


@dataclass
class ParquetOutput(_Base):
    """Stage the job's files under ``_temporary`` and move them in (module docstring)."""

    delta_stats: bool = field(default=False, init=False)

    @property
    def staging(self) -> str:
        return self.loc.join("_temporary", f"runlake-{self.job_id}")

    @property
    def files_dir(self) -> str:
        return self.staging

    def check(self) -> None:
        from pyarrow import fs as pafs

        if self.loc.filesystem.get_file_info(self.loc.path).type == pafs.FileType.File:
            raise NotEligible("the output path is a file")

    def begin(self) -> None:
        self.existed = self._exists()
        self.loc.filesystem.create_dir(self.staging, recursive=True)

    def commit(self, files: list[WrittenFile], user_metadata: str, app_id: str) -> None:
        from pyarrow import fs as pafs

        fs = self.loc.filesystem
        if self.mode == "overwrite" and self.existed:
            for entry in fs.get_file_info(pafs.FileSelector(self.loc.path)):
                if entry.base_name == "_temporary":
                    continue
                if entry.type == pafs.FileType.Directory:
                    fs.delete_dir(entry.path)
                else:
                    fs.delete_file(entry.path)
        for f in files:
            fs.move(f"{self.staging}/{f.name}", self.loc.join(f.name))
        with fs.open_output_stream(self.loc.join("_SUCCESS")):
            pass
        fs.delete_dir(self.staging)
        self._remove_if_empty(self.loc.join("_temporary"))

    def abort(self) -> None:
        with contextlib.suppress(FileNotFoundError, OSError):
            self.loc.filesystem.delete_dir(self.staging)
        self._remove_if_empty(self.loc.join("_temporary"))
        if not self.existed:
            self._remove_if_empty(self.loc.path)


OutputCommitter = DeltaOutput | ParquetOutput
