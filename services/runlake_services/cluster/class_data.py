"""A class-data archive (AppCDS) for the Spark driver's JVM, recorded by its first session.

A JVM starting Spark with Delta loads, parses and verifies some 25,000 classes: on the
2-core machine ``spark_session`` took 4.7 s and the first table read 1.6 s; with the classes
mapped from an archive, 3.0 s and 0.7 s (decision 0020). Java 17 writes such an archive of
whatever a JVM loaded when it exits (``-XX:ArchiveClassesAtExit``) and maps one at start
(``-XX:SharedArchiveFile``), checking that it was made by the same JVM build for the same
class path, and otherwise running without it, silently.

One archive per key: the java binary and the class path the session asks for.

- ``<key>.jsa`` present (and of the size it was checked at): the session maps it.
- absent, and no other session recording: the session records one, which its JVM writes to
  ``<key>.<token>.partial`` as it exits (that first session starts ~4 s slower, once); its
  pid and exact class path go beside it in ``.partial.json``.
- a later session finds the recording JVM gone, checks the partial with ``java -Xshare:on``
  in a scratch directory (a JVM killed while writing leaves a truncated file, which would
  crash a JVM that maps it: it is never mapped unchecked) and moves it into place, or
  deletes it. After three failed recordings (a JVM that cannot record) the key is given
  up: ``<key>.unsupported``.

A user's own ``-Xshare``/archive options in ``spark.driver.extraJavaOptions`` win: nothing is
added then. The JVM's CDS log is turned off (it writes warnings to stdout); a user's own
``-Xlog`` options come after runlake's, so they win too.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

__all__ = ["archive_options", "folder", "note_recording", "promote"]

log = logging.getLogger(__name__)

#: recordings that may fail (killed JVMs) before a key is given up
MAX_FAILURES = 3
_OWN_FLAGS = ("-Xshare", "SharedArchiveFile", "ArchiveClassesAtExit")
_CHECK_TIMEOUT_S = 60
#: the JVM logs CDS warnings to stdout (hundreds of lines as it writes an archive: classes it
#: cannot store), which would land in a command's own output (``runlake sweep -o json``)
_QUIET = "-Xlog:cds*=off"


def folder(default: Path) -> Path | None:
    """Where the archives live: ``RUNLAKE_SPARK_CLASS_DATA`` (an absolute path, or ``off``).

    A value that is neither is reported and the JVM starts without an archive: a cache
    setting does not fail the user's job.
    """
    setting = os.environ.get("RUNLAKE_SPARK_CLASS_DATA", "").strip()
    if not setting:
        return default
    if setting.lower() in ("off", "0", "false", "no"):
        return None
    if not os.path.isabs(setting):
        log.warning("RUNLAKE_SPARK_CLASS_DATA=%r is neither 'off' nor an absolute path: the "
                    "Spark JVM starts without a class-data archive", setting)  # fmt: skip
        return None
    return Path(setting)


def java_binary() -> Path | None:
    """The java PySpark launches: ``$JAVA_HOME/bin/java``, else the first on the PATH."""
    home = os.environ.get("JAVA_HOME")
    found = str(Path(home) / "bin" / "java") if home else shutil.which("java")
    return Path(found).resolve() if found and os.path.exists(found) else None


def archive_key(java: Path, class_path: str, spark_jars: Path | None) -> str:
    """What an archive is valid for: this java build, this class path, these Spark jars."""
    st = java.stat()
    parts = [str(java), str(st.st_size), str(st.st_mtime_ns), class_path]
    if spark_jars is not None and spark_jars.is_dir():
        parts += sorted(f"{p.name}:{p.stat().st_size}" for p in spark_jars.glob("*.jar"))
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:24]


def archive_options(where: Path, key: str, user_options: str) -> tuple[str, Path | None]:
    """(the JVM options to add, the partial archive this session records, if it does)."""
    if any(flag in user_options for flag in _OWN_FLAGS):
        return "", None
    where.mkdir(parents=True, exist_ok=True)
    promote(where, key)
    final = where / f"{key}.jsa"
    if _usable(final):
        return f"-XX:SharedArchiveFile={final} {_QUIET}", None
    if (where / f"{key}.unsupported").exists() or any(
        alive for *_, alive in _recordings(where, key)
    ):
        return "", None
    partial = where / f"{key}.{uuid.uuid4().hex[:12]}.partial"
    return f"-XX:ArchiveClassesAtExit={partial} {_QUIET}", partial


def note_recording(partial: Path, pid: int, class_path: str) -> None:
    """Beside a partial archive: the JVM writing it, and the class path it was launched with."""
    _meta(partial).write_text(json.dumps({"pid": pid, "class_path": class_path}))


def promote(where: Path, key: str) -> None:
    """Check each finished recording of ``key``; move a good one into place, delete the rest."""
    final = where / f"{key}.jsa"
    for meta_file, partial, meta, alive in _recordings(where, key):
        if alive:
            continue  # the JVM runs, or is writing the archive as it exits
        if _usable(final):
            partial.unlink(missing_ok=True)  # another session's recording got there first
        elif meta is not None and partial.exists() and _check(partial, str(meta["class_path"])):
            os.replace(partial, final)
            final.with_suffix(".size").write_text(str(final.stat().st_size))
        else:  # killed before or while writing it, or a JVM that cannot map it
            partial.unlink(missing_ok=True)
            _failed(where, key)
        meta_file.unlink(missing_ok=True)


def _recordings(where: Path, key: str) -> Iterator[tuple[Path, Path, dict[str, Any] | None, bool]]:
    """Each noted recording of ``key``: (its note, its partial, the note read, JVM alive)."""
    for meta_file in sorted(where.glob(f"{key}.*.partial.json")):
        partial = meta_file.with_name(meta_file.name.removesuffix(".json"))
        meta = _read_meta(partial)
        yield meta_file, partial, meta, meta is not None and _alive(int(meta["pid"]), partial)


def _usable(final: Path) -> bool:
    """Present and exactly as checked (a truncated archive would crash the JVM)."""
    size = final.with_suffix(".size")
    try:
        return final.stat().st_size == int(size.read_text())
    except (OSError, ValueError):
        return False


def _check(partial: Path, class_path: str) -> bool:
    """Whether a JVM maps ``partial`` for ``class_path`` (``-Xshare:on`` refuses otherwise)."""
    java = java_binary()
    if java is None:
        return False
    with tempfile.TemporaryDirectory() as scratch:  # where a crashing JVM writes hs_err
        try:
            proc = subprocess.run(
                [str(java), f"-XX:SharedArchiveFile={partial}", "-Xshare:on",
                 f"-XX:ErrorFile={scratch}/hs_err.log", "-XX:-CreateCoredumpOnCrash",
                 "-cp", class_path, "-version"],
                cwd=scratch, capture_output=True, timeout=_CHECK_TIMEOUT_S, check=False,
            )  # fmt: skip
        except (OSError, subprocess.TimeoutExpired):
            return False
    return proc.returncode == 0


def _failed(where: Path, key: str) -> None:
    counter = where / f"{key}.failures"
    try:
        failures = int(counter.read_text()) + 1
    except (OSError, ValueError):
        failures = 1
    counter.write_text(str(failures))
    if failures >= MAX_FAILURES:
        (where / f"{key}.unsupported").write_text(f"{failures} recordings failed the check\n")


def _alive(pid: int, partial: Path) -> bool:
    """Whether ``pid`` is still the JVM writing ``partial`` (not a reused pid)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return partial.name.encode() in cmdline


def _meta(partial: Path) -> Path:
    return partial.with_name(partial.name + ".json")


def _read_meta(partial: Path) -> dict[str, Any] | None:
    with contextlib.suppress(OSError, ValueError):
        meta = json.loads(_meta(partial).read_text())
        if isinstance(meta, dict) and isinstance(meta.get("pid"), int) and "class_path" in meta:
            return meta
    return None
