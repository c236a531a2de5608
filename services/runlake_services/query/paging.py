"""max_results bounds and opaque page tokens shared by run and experiment search.

A token carries the offset and a digest of the query it was issued for, so a
token replayed against another filter or order is refused instead of silently
paging through a different result.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from typing import Any

from runlake.errors import InvalidArgument

__all__ = ["DEFAULT_RESULTS", "MAX_RESULTS", "decode_token", "encode_token", "page_size"]

DEFAULT_RESULTS = 1_000
MAX_RESULTS = 50_000


def page_size(max_results: int) -> int:
    """0 (unset in proto3) means the default; anything outside 1..MAX_RESULTS is refused."""
    if max_results == 0:
        return DEFAULT_RESULTS
    if not 1 <= max_results <= MAX_RESULTS:
        raise InvalidArgument(
            f"{max_results} is out of range; expected 1 to {MAX_RESULTS}", field="max_results"
        )
    return max_results


def _digest(query: Any) -> str:
    text = json.dumps(query, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def encode_token(offset: int, query: Any) -> str:
    raw = json.dumps({"o": offset, "q": _digest(query)}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_token(token: str, query: Any) -> int:
    """The offset in ``token`` (0 for none); InvalidArgument if it is not for ``query``."""
    if not token:
        return 0
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        data = json.loads(raw)
        offset, digest = data["o"], data["q"]
        if type(offset) is not int or not isinstance(digest, str) or offset < 0:
            raise ValueError(token)
    except (binascii.Error, ValueError, KeyError, TypeError, UnicodeDecodeError):
        raise InvalidArgument(
            "is not a page token this server issued", field="page_token"
        ) from None
    if digest != _digest(query):
        raise InvalidArgument(
            "was issued for a different search (filter, order or scope changed)",
            field="page_token",
        )
    return offset
