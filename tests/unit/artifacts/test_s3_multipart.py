"""The concurrent multipart writer: what reaches S3, how much is in flight, what a failure leaves.

S3 here is a small in-memory recorder of the four multipart calls, so the writer's own
logic (buffers, budget, ordering, abort) is checked exactly; the real MinIO path is in
tests/integration/cluster/test_artifacts_s3.py.
"""

from __future__ import annotations

import os
import threading
import time
from types import SimpleNamespace
from typing import Any

import pytest
from runlake.errors import InvalidArgument, ResourceExhausted
from runlake_services.artifacts.s3_multipart import (
    MIN_PART_BYTES,
    MultipartWriter,
    PartBudget,
    direct_part_size,
)

PART = MIN_PART_BYTES


class RecordingS3:
    """Keeps parts per upload (PUT to presigned part URLs); an object appears only on complete."""

    def __init__(self, *, delay_s: float = 0.0, fail_part: int | None = None) -> None:
        self.objects: dict[str, bytes] = {}
        self.open: dict[str, dict[int, bytes]] = {}
        self.aborted: list[str] = []
        self.in_flight = 0
        self.most_in_flight = 0
        self._lock = threading.Lock()
        self._delay_s = delay_s
        self._fail_part = fail_part

    def _create_multipart_upload(self, bucket: str, name: str, headers: dict[str, str]) -> str:
        upload_id = f"{name}#{len(self.open) + len(self.aborted)}"
        self.open[upload_id] = {}
        return upload_id

    def get_presigned_url(
        self, method: str, bucket: str, name: str, expires: Any, extra_query_params: Any
    ) -> str:
        q = extra_query_params
        return f"{method} {name} {q['uploadId']} {q['partNumber']}"

    @property
    def _http(self) -> RecordingS3:
        return self

    def request(self, method: str, url: str, body: Any, headers: Any, retries: Any) -> Any:
        verb, _, upload_id, number = url.split()
        assert (verb, method, headers["Content-Length"]) == ("PUT", "PUT", str(len(body)))
        with self._lock:
            self.in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            time.sleep(self._delay_s)
            if int(number) == self._fail_part:
                return SimpleNamespace(status=500, headers={}, data=b"connection reset")
            self.open[upload_id][int(number)] = bytes(body)
            return SimpleNamespace(status=200, headers={"ETag": f'"etag-{number}"'}, data=b"")
        finally:
            with self._lock:
                self.in_flight -= 1

    def _complete_multipart_upload(
        self, bucket: str, name: str, upload_id: str, parts: list[Any]
    ) -> None:
        got = self.open.pop(upload_id)
        assert [p.part_number for p in parts] == sorted(got)
        assert [p.etag for p in parts] == [f"etag-{n}" for n in sorted(got)]
        self.objects[name] = b"".join(got[n] for n in sorted(got))

    def _abort_multipart_upload(self, bucket: str, name: str, upload_id: str) -> None:
        self.open.pop(upload_id, None)
        self.aborted.append(upload_id)

    def put_object(self, bucket: str, name: str, data: Any, length: int) -> None:
        self.objects[name] = data.read()
        assert len(self.objects[name]) == length


def _write(
    s3: RecordingS3, data: bytes, *, budget: PartBudget, parallel: int = 3, chunk: int = 1 << 20
) -> MultipartWriter:
    w = MultipartWriter(s3, "b", "key", part_bytes=PART, parallel=parallel, budget=budget)
    for i in range(0, len(data), chunk):
        w.write(data[i : i + chunk])
    return w


@pytest.mark.parametrize(
    "size", [0, 1, PART - 1, PART, PART + 1, 3 * PART + 12345], ids=lambda n: f"{n}B"
)
def test_the_object_is_exactly_the_stream(size: int) -> None:
    s3 = RecordingS3()
    budget = PartBudget(8)
    data = os.urandom(size)
    w = _write(s3, data, budget=budget, chunk=333_333)
    assert s3.objects == {}  # nothing visible before complete
    w.complete()
    assert s3.objects == {"key": data}
    assert s3.open == {} and s3.aborted == []
    assert budget.take(wait=False) and budget.buffers == 8  # every buffer came back


def test_parts_go_up_concurrently_but_never_more_than_parallel() -> None:
    s3 = RecordingS3(delay_s=0.05)
    budget = PartBudget(16)
    data = os.urandom(10 * PART)
    w = _write(s3, data, budget=budget, parallel=3)
    w.complete()
    assert s3.objects["key"] == data
    assert 2 <= s3.most_in_flight <= 3


def test_a_spent_budget_slows_uploads_down_and_then_refuses() -> None:
    budget = PartBudget(2, wait_s=0.2)
    s3 = RecordingS3(delay_s=0.02)
    first = MultipartWriter(s3, "b", "one", part_bytes=PART, parallel=3, budget=budget)
    first.write(os.urandom(PART + 1))  # owns both buffers now: one in flight, one filling
    second = MultipartWriter(s3, "b", "two", part_bytes=PART, parallel=3, budget=budget)
    with pytest.raises(ResourceExhausted, match="retry"):
        second.write(b"x")
    second.abort()
    first.write(os.urandom(3 * PART))  # goes on within its two buffers
    first.complete()
    assert len(s3.objects["one"]) == 4 * PART + 1
    assert s3.most_in_flight <= 2  # never more parts in flight than buffers owned
    third = MultipartWriter(s3, "b", "three", part_bytes=PART, parallel=3, budget=budget)
    third.write(b"y")  # the first upload gave its buffers back
    third.complete()
    assert s3.objects["three"] == b"y"


def test_a_failed_part_fails_the_upload_and_leaves_nothing() -> None:
    s3 = RecordingS3(fail_part=2)
    budget = PartBudget(8)
    w = MultipartWriter(s3, "b", "key", part_bytes=PART, parallel=2, budget=budget)
    with pytest.raises(OSError, match="part 2: HTTP 500"):
        for _ in range(12):  # the failure surfaces at a later write or at complete
            w.write(os.urandom(PART))
        w.complete()
    w.abort()
    w.abort()  # twice is harmless
    assert s3.objects == {} and s3.open == {} and len(s3.aborted) == 1
    for _ in range(8):
        assert budget.take(wait=False)  # every buffer came back


def test_an_abandoned_stream_is_aborted_and_gives_its_buffers_back() -> None:
    s3 = RecordingS3()
    budget = PartBudget(4)
    w = _write(s3, os.urandom(2 * PART + 7), budget=budget)
    w.abort()
    assert s3.objects == {} and s3.open == {} and len(s3.aborted) == 1
    for _ in range(4):
        assert budget.take(wait=False)


def test_direct_part_sizes_stay_within_s3s_limits() -> None:
    mib, gib = 1 << 20, 1 << 30
    assert direct_part_size(1) == direct_part_size(1_024 * 64 * mib) == 64 * mib
    big = 5 * 1024 * gib  # S3's largest object: 1,024 parts of at most 5 GiB
    assert direct_part_size(big) == 5 * gib
    for size in (1_024 * 64 * mib + 1, 300 * gib, big - 1):
        part = direct_part_size(size)
        assert part % mib == 0 and -(-size // part) <= 1_024
    with pytest.raises(InvalidArgument, match="size"):
        direct_part_size(big + 1)
