"""The class-data archive's bookkeeping, with the real java: what is mapped, what never is."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from runlake_services.cluster import class_data

JAVA = class_data.java_binary()
pytestmark = pytest.mark.skipif(JAVA is None, reason="no java")  # Java 17 is a dependency

#: a class path a bare JVM can start with
CLASS_PATH = "/nonexistent-runlake-test.jar"


def _dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def _recorded(folder: Path, key: str, body: bytes, pid: int | None = None) -> Path:
    """A partial archive as a session leaves it: the file and, beside it, its JVM and class path."""
    options, partial = class_data.archive_options(folder, key, "")
    assert partial is not None and options.split()[0] == f"-XX:ArchiveClassesAtExit={partial}"
    class_data.note_recording(partial, pid or _dead_pid(), CLASS_PATH)
    partial.write_bytes(body)
    return partial


def test_a_truncated_recording_is_deleted_and_never_mapped(tmp_path: Path) -> None:
    """A JVM killed while writing leaves part of an archive, which would crash a JVM mapping it."""
    partial = _recorded(tmp_path, "k", b"\x00" * 4096)
    class_data.promote(tmp_path, "k")
    assert not partial.exists() and not (tmp_path / "k.jsa").exists()
    assert list(tmp_path.glob("*.json")) == []
    assert (tmp_path / "k.failures").read_text() == "1"
    assert list(tmp_path.glob("hs_err*")) == [] and not list(Path.cwd().glob("hs_err*"))
    options, again = class_data.archive_options(tmp_path, "k", "")
    assert again is not None and "ArchiveClassesAtExit" in options  # records once more


def test_a_key_whose_recordings_keep_failing_is_given_up(tmp_path: Path) -> None:
    for _ in range(class_data.MAX_FAILURES):
        _recorded(tmp_path, "k", b"not an archive")
        class_data.promote(tmp_path, "k")
    assert (tmp_path / "k.unsupported").exists()
    assert class_data.archive_options(tmp_path, "k", "") == ("", None)


def test_a_recording_in_progress_is_left_alone_and_not_doubled(tmp_path: Path) -> None:
    """A JVM still running (or writing as it exits): its file is not checked, nor recorded again."""
    _, partial = class_data.archive_options(tmp_path, "k", "")
    assert partial is not None
    jvm = subprocess.Popen(  # a process naming the partial on its command line, as the JVM does
        [sys.executable, "-c", "import time; time.sleep(30)", partial.name]
    )
    try:
        _until_exec(jvm.pid, partial.name)  # a real JVM has run for seconds by then
        class_data.note_recording(partial, jvm.pid, CLASS_PATH)
        partial.write_bytes(b"half written")
        assert class_data.archive_options(tmp_path, "k", "") == ("", None)
        assert partial.exists()
    finally:
        jvm.kill()
        jvm.wait()
    class_data.promote(tmp_path, "k")  # now it is done, and bad
    assert not partial.exists()


def _until_exec(pid: int, name: str, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while name.encode() not in Path(f"/proc/{pid}/cmdline").read_bytes():
        assert time.monotonic() < deadline, "the stand-in process did not start"
        time.sleep(0.01)


def test_an_archive_of_another_size_than_checked_is_not_mapped(tmp_path: Path) -> None:
    (tmp_path / "k.jsa").write_bytes(b"x" * 100)
    (tmp_path / "k.size").write_text("100")
    options, _ = class_data.archive_options(tmp_path, "k", "")
    assert options.split()[0] == f"-XX:SharedArchiveFile={tmp_path / 'k.jsa'}"
    with open(tmp_path / "k.jsa", "r+b") as f:
        f.truncate(50)
    options, partial = class_data.archive_options(tmp_path, "k", "")
    assert "SharedArchiveFile" not in options and partial is not None


@pytest.mark.parametrize("user", ["-Xshare:off", "-XX:SharedArchiveFile=/mine.jsa -Xmx2g"])
def test_a_users_own_sharing_options_win(tmp_path: Path, user: str) -> None:
    assert class_data.archive_options(tmp_path, "k", user) == ("", None)
    assert list(tmp_path.iterdir()) == []


def test_the_key_follows_the_class_path_and_the_spark_jars(tmp_path: Path) -> None:
    assert JAVA is not None
    jars = tmp_path / "jars"
    jars.mkdir()
    (jars / "spark-core.jar").write_bytes(b"1")
    a = class_data.archive_key(JAVA, "/a.jar", jars)
    assert a == class_data.archive_key(JAVA, "/a.jar", jars)
    assert a != class_data.archive_key(JAVA, "/a.jar:/b.jar", jars)
    (jars / "spark-core.jar").write_bytes(b"12")  # another Spark build
    assert a != class_data.archive_key(JAVA, "/a.jar", jars)


def test_meta_of_a_recording_names_its_jvm(tmp_path: Path) -> None:
    partial = _recorded(tmp_path, "k", b"", pid=os.getpid())
    meta = json.loads(partial.with_name(partial.name + ".json").read_text())
    assert meta == {"pid": os.getpid(), "class_path": CLASS_PATH}


def test_the_folder_is_the_setting_and_off_turns_it_off(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    default = tmp_path / "default"
    monkeypatch.delenv("RUNLAKE_SPARK_CLASS_DATA", raising=False)
    assert class_data.folder(default) == default
    monkeypatch.setenv("RUNLAKE_SPARK_CLASS_DATA", str(tmp_path))
    assert class_data.folder(default) == tmp_path
    monkeypatch.setenv("RUNLAKE_SPARK_CLASS_DATA", "off")
    assert class_data.folder(default) is None


@pytest.mark.parametrize("setting", ["on", "cds-here", "./relative"])
def test_a_setting_that_is_no_folder_is_reported_by_name_and_nothing_is_made(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
    setting: str,
) -> None:  # fmt: skip
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("RUNLAKE_SPARK_CLASS_DATA", setting)
    with caplog.at_level("WARNING"):
        assert class_data.folder(tmp_path / "default") is None
    assert "RUNLAKE_SPARK_CLASS_DATA" in caplog.text and repr(setting) in caplog.text
    assert list(tmp_path.iterdir()) == []


def test_a_folder_that_cannot_be_made_is_reported_and_the_options_are_left_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from runlake_services.cluster import spark

    in_the_way = tmp_path / "a-file"
    in_the_way.write_text("not a folder")
    monkeypatch.setenv("RUNLAKE_SPARK_CLASS_DATA", str(in_the_way))
    conf = {"spark.driver.extraJavaOptions": "-Xmx2g"}
    with caplog.at_level("WARNING"):
        assert spark._add_class_data(conf) is None
    assert conf == {"spark.driver.extraJavaOptions": "-Xmx2g"}
    assert str(in_the_way) in caplog.text and "starts without it" in caplog.text
    assert in_the_way.read_text() == "not a folder"
