"""Artifact paths cannot leave the run's root; the local store shows only complete files."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from runlake.artifact_paths import check_artifact_path, join_artifact_path
from runlake.errors import InvalidArgument, NotFound
from runlake_services.artifacts.local import LocalArtifactStore
from runlake_services.artifacts.store import key_within, open_artifact_store

HOSTILE = [
    "",
    "/etc/passwd",
    "../secret",
    "a/../../b",
    "a/..",
    "./a",
    "a/./b",
    "a//b",
    "a/",
    "a\\..\\b",
    "a\x00b",
    "a\nb",
    "C:/windows",
    "x" * 1025,
]


@pytest.mark.parametrize("path", HOSTILE)
def test_hostile_paths_are_refused_naming_the_field(path: str) -> None:
    with pytest.raises(InvalidArgument) as err:
        check_artifact_path(path, "artifact_file")
    assert err.value.field == "artifact_file"


@pytest.mark.parametrize("path", ["model/MLmodel", "a.b/c-d_e f.txt", "..hidden", "x..y/z"])
def test_ordinary_paths_pass_unchanged(path: str) -> None:
    assert check_artifact_path(path) == path


def test_join_keeps_the_rules() -> None:
    assert join_artifact_path("plots/", "a.png") == "plots/a.png"
    assert join_artifact_path(None, "a.png") == "a.png"
    with pytest.raises(InvalidArgument):
        join_artifact_path("..", "a.png")


@settings(max_examples=400, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("ab./\\:\x00 ")), max_size=12))
def test_an_accepted_path_never_resolves_outside_the_root(
    tmp_path_factory: pytest.TempPathFactory, path: str
) -> None:
    root = tmp_path_factory.mktemp("root")
    try:
        check_artifact_path(path)
    except InvalidArgument:
        return
    resolved = (root / path).resolve()
    assert resolved.is_relative_to(root.resolve())
    assert resolved != root.resolve()


@pytest.fixture
def store(tmp_path: Path) -> LocalArtifactStore:
    return LocalArtifactStore(tmp_path / "artifacts")


def _read(store: LocalArtifactStore, key: str) -> bytes:
    size, chunks = store.get(key)
    data = b"".join(chunks)
    assert len(data) == size
    return data


def test_put_get_list(store: LocalArtifactStore) -> None:
    stored = store.put("0/r1/artifacts/sub/f.bin", [b"ab", b"cd"])
    assert (stored.size, len(stored.sha256)) == (4, 64)
    assert _read(store, "0/r1/artifacts/sub/f.bin") == b"abcd"
    assert [(e.key, e.is_dir) for e in store.list("0/r1/artifacts")] == [
        ("0/r1/artifacts/sub", True)
    ]
    assert store.size("0/r1/artifacts/sub/f.bin") == 4
    assert store.size("0/r1/artifacts/nothing") is None
    with pytest.raises(NotFound):
        store.get("0/r1/artifacts/nothing")


def test_a_refused_upload_leaves_nothing(store: LocalArtifactStore) -> None:
    def refuse(size: int, sha: str) -> None:
        raise InvalidArgument("digest differs", field="trailer.sha256")

    with pytest.raises(InvalidArgument):
        store.put("k/f", [b"data"], refuse)
    assert store.size("k/f") is None
    assert store.list("") == []  # no staging leftovers either (staging is hidden)
    assert list((store._root / ".staging").iterdir()) == []


def test_an_interrupted_upload_leaves_nothing_and_keeps_the_old_file(
    store: LocalArtifactStore,
) -> None:
    store.put("k/f", [b"old"])

    def broken() -> Iterator[bytes]:
        yield b"new data, then the connection drops"
        raise ConnectionError("client went away")

    with pytest.raises(ConnectionError):
        store.put("k/f", broken())
    assert _read(store, "k/f") == b"old"


def test_a_symlink_inside_the_root_cannot_lead_out(
    store: LocalArtifactStore, tmp_path: Path
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (store._root / "link").symlink_to(outside, target_is_directory=True)
    with pytest.raises(InvalidArgument):
        store.put("link/escape.txt", [b"x"])
    assert not (outside / "escape.txt").exists()


def test_staging_is_reserved(store: LocalArtifactStore) -> None:
    with pytest.raises(InvalidArgument):
        store.put(".staging/x", [b"x"])


def test_store_uris_and_containment(tmp_path: Path) -> None:
    store = open_artifact_store((tmp_path / "a").as_uri())
    root = store.root_uri
    assert key_within(root, root + "/0/r/artifacts") == "0/r/artifacts"
    assert key_within(root, root) == ""
    assert key_within(root, root + "-other/0") is None
    assert key_within(root, "s3://bucket/x") is None
    with pytest.raises(ValueError, match="no artifact store"):
        open_artifact_store("ftp://host/x")
