"""Artifact path rules, shared by the SDK (fail before sending) and the gateway (the guard).

An artifact path is relative to a run's artifact root and can never leave it. Rather
than normalising a hostile path into a harmless one (``a/../../b`` → ?), anything
that is not already in canonical form is refused: the caller learns at once, and the
gateway never has to reason about what a store would do with ``..``, ``\\`` or NUL.
"""

from __future__ import annotations

from runlake.errors import InvalidArgument

__all__ = ["MAX_PATH_LENGTH", "check_artifact_path", "join_artifact_path"]

MAX_PATH_LENGTH = 1024
_FORBIDDEN = frozenset({"\\", "\x00"})


def check_artifact_path(path: str, field: str = "path", *, allow_root: bool = False) -> str:
    """``path`` if it is a canonical relative artifact path; InvalidArgument naming ``field``.

    Canonical: '/'-separated segments, none empty, '.' or '..'; no leading '/', no
    backslash, NUL or other control character; at most 1,024 characters. With
    ``allow_root`` the empty string (the root itself) is accepted too.
    """
    if not isinstance(path, str):
        raise InvalidArgument(f"must be a string, got {type(path).__name__}", field=field)
    if path == "":
        if allow_root:
            return path
        raise InvalidArgument("must not be empty", field=field)
    if len(path) > MAX_PATH_LENGTH:
        raise InvalidArgument(f"is {len(path)} characters; at most {MAX_PATH_LENGTH}", field=field)
    if path.startswith("/"):
        raise InvalidArgument(f"{path!r} is absolute; give a path relative to the run", field=field)
    bad = next((c for c in path if c in _FORBIDDEN or ord(c) < 0x20 or c == "\x7f"), None)
    if bad is not None:
        raise InvalidArgument(f"{path!r} contains the forbidden character {bad!r}", field=field)
    for segment in path.split("/"):
        if segment in ("", ".", ".."):
            raise InvalidArgument(
                f"{path!r} has an empty, '.' or '..' segment; artifact paths cannot leave "
                "or restate their directory",
                field=field,
            )
    if ":" in path.split("/")[0] and len(path.split("/")[0]) == 2:  # C:... on Windows
        raise InvalidArgument(f"{path!r} looks like a drive path", field=field)
    return path


def join_artifact_path(directory: str | None, name: str) -> str:
    """``directory/name`` (either may be empty), checked; a trailing '/' on ``directory`` is fine.

    A leading '/' is not stripped but refused, like every other path that is not relative.
    """
    joined = f"{directory.rstrip('/')}/{name}" if directory and directory.rstrip("/") else name
    return check_artifact_path(joined)
