"""Concurrent S3 multipart uploads of a stream of unknown length, with bounded memory.

The gateway receives a proxied upload as one gRPC stream of 1 MiB chunks. Sending those
bytes to S3 one part after another leaves the link idle while each part is read, and
the minio client's ``put_object`` of an unknown-length stream copies every byte four
times on the way (profiled: a third of the gateway's CPU). Here each chunk is copied
once, into a reusable part buffer; a full buffer is uploaded on a small thread pool
while the next one fills, so receiving, hashing and uploading overlap.

Memory is bounded twice: an upload owns at most ``parallel + 1`` buffers (the one
filling and those in flight), and all uploads of the process draw their buffers from
one :class:`PartBudget`. An upload that finds the budget spent waits for its own
buffers to come back; one that has none yet waits a bounded time for another upload's
and then answers RESOURCE_EXHAUSTED, never an out-of-memory crash.

Nothing is visible before :meth:`MultipartWriter.complete`: the caller checks size and
digest first, and any failure aborts the multipart upload, so S3 discards the parts.

minio-py keeps its multipart calls (create, complete, abort) and its connection pool
private; they are used here through :class:`S3Parts`, the one place that knows, for the
pinned minio 7.2.20 (the cluster tests run them against a real MinIO). Parts themselves go
to presigned part URLs, which the public API makes.
"""

from __future__ import annotations

import io
import logging
import threading
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import timedelta
from typing import Any

from runlake.errors import InvalidArgument, ResourceExhausted

__all__ = ["MAX_PARTS", "MultipartWriter", "PartBudget", "S3Parts", "direct_part_size"]

log = logging.getLogger(__name__)

#: S3's limits: at most 10,000 parts, each (but the last) at least 5 MiB and at most 5 GiB.
MAX_PARTS = 10_000
MIN_PART_BYTES = 5 * 1024 * 1024
MAX_PART_BYTES = 5 * 1024**3
#: Direct uploads: parts of 64 MiB, more for files over 64 GiB so that one answer lists at
#: most 1,024 part URLs (about 600 KB); S3's 5 TiB object limit is 1,024 parts of 5 GiB.
DIRECT_PART_BYTES = 64 * 1024 * 1024
_PART_URL_EXPIRY = timedelta(minutes=15)
MAX_DIRECT_PARTS = 1_024


def direct_part_size(size: int) -> int:
    """Bytes per part of a direct upload of ``size`` bytes (whole MiB), within S3's limits."""
    mib = 1024 * 1024
    part = max(DIRECT_PART_BYTES, -(-size // MAX_DIRECT_PARTS))
    part = -(-part // mib) * mib
    if part > MAX_PART_BYTES:
        raise InvalidArgument(
            f"{size} bytes is more than S3 stores in one object (5 TiB)", field="size"
        )
    return part


class PartBudget:
    """How many part buffers all uploads of this process may hold at once."""

    def __init__(self, buffers: int, *, wait_s: float = 60.0) -> None:
        if buffers < 1:
            raise ValueError("a part budget needs at least one buffer")
        self._free = threading.Semaphore(buffers)
        self.buffers = buffers
        self.wait_s = wait_s

    def take(self, *, wait: bool) -> bool:
        """One buffer's worth; with ``wait``, ResourceExhausted after ``wait_s`` without one."""
        if not wait:
            return self._free.acquire(blocking=False)
        if not self._free.acquire(timeout=self.wait_s):
            raise ResourceExhausted(
                "the gateway is busy with other uploads; retry in a few seconds", field="data"
            )
        return True

    def give(self, n: int = 1) -> None:
        for _ in range(n):
            self._free.release()


class S3Parts:
    """The S3 multipart calls of the minio client (private there, pinned here)."""

    def __init__(self, client: Any, bucket: str, name: str) -> None:
        self._client = client
        self._bucket = bucket
        self._name = name

    def create(self) -> str:
        headers = {"Content-Type": "application/octet-stream"}
        return str(self._client._create_multipart_upload(self._bucket, self._name, headers))

    def upload(self, upload_id: str, number: int, data: memoryview) -> str:
        """PUT one part to a presigned URL, on the client's own connection pool.

        A presigned request leaves the payload unsigned (UNSIGNED-PAYLOAD), so the part is
        not hashed a second time for the signature, which the client's ``_upload_part``
        does over plain HTTP (profiled: a sixth of the gateway's CPU). The stream is
        hashed once and checked against the sender's digest before the upload completes.
        """
        from urllib3.util import Retry

        url = self.presign_part(upload_id, number, _PART_URL_EXPIRY)
        resp = self._client._http.request(
            "PUT",
            url,
            body=data,
            headers={"Content-Length": str(len(data))},
            retries=Retry(total=3, backoff_factor=0.5),
        )
        if resp.status != 200:
            raise OSError(f"S3 refused part {number}: HTTP {resp.status} {resp.data[:300]!r}")
        return str(resp.headers.get("ETag", "")).strip('"')

    def complete(self, upload_id: str, etags: Sequence[str]) -> None:
        from minio.datatypes import Part

        parts = [Part(i, etag) for i, etag in enumerate(etags, start=1)]
        self._client._complete_multipart_upload(self._bucket, self._name, upload_id, parts)

    def abort(self, upload_id: str) -> None:
        self._client._abort_multipart_upload(self._bucket, self._name, upload_id)

    def presign_part(self, upload_id: str, number: int, expires: timedelta) -> str:
        """A URL to PUT part ``number`` directly (public API: any query can be presigned)."""
        return str(
            self._client.get_presigned_url(
                "PUT",
                self._bucket,
                self._name,
                expires=expires,
                extra_query_params={"uploadId": upload_id, "partNumber": str(number)},
            )
        )

    def put_whole(self, data: memoryview) -> None:
        """A small object in one PUT (public API; it copies, but at most one part)."""
        self._client.put_object(self._bucket, self._name, io.BytesIO(data), length=len(data))


class MultipartWriter:
    """Writes one object: :meth:`write` chunks, then :meth:`complete` or :meth:`abort`.

    Objects smaller than one part go up in a single PUT at :meth:`complete`; larger ones as
    a multipart upload whose parts are sent ``parallel`` at a time while the stream goes on.
    """

    def __init__(
        self,
        client: Any,
        bucket: str,
        name: str,
        *,
        part_bytes: int,
        parallel: int,
        budget: PartBudget,
    ) -> None:
        if part_bytes < MIN_PART_BYTES:
            raise ValueError(f"S3 parts are at least {MIN_PART_BYTES} bytes")
        self._s3 = S3Parts(client, bucket, name)
        self._part_bytes = part_bytes
        self._most = parallel + 1  # the buffer filling and those in flight
        self._budget = budget
        self._owned = 0  # buffers taken from the budget
        self._spare: list[bytearray] = []  # owned buffers back from their upload
        self._cond = threading.Condition()
        self._buf: bytearray | None = None
        self._fill = 0
        self._upload_id: str | None = None
        self._pool: ThreadPoolExecutor | None = None
        self._parallel = parallel
        self._etags: list[Future[str]] = []
        self._failed: BaseException | None = None
        self._closed = False

    # -- filling --

    def write(self, chunk: bytes | memoryview) -> None:
        view = memoryview(chunk)
        while view:
            if self._buf is None:
                self._buf = self._take()
                self._fill = 0
            n = min(len(view), self._part_bytes - self._fill)
            self._buf[self._fill : self._fill + n] = view[:n]
            self._fill += n
            view = view[n:]
            if self._fill == self._part_bytes:
                self._send(self._buf, self._fill)
                self._buf = None

    def _take(self) -> bytearray:
        """A buffer: a spare one, a new one within the budget, or one back from upload."""
        with self._cond:
            while True:
                if self._failed is not None:
                    raise self._failed
                if self._spare:
                    return self._spare.pop()
                if self._owned < self._most and self._budget.take(wait=self._owned == 0):
                    self._owned += 1
                    return bytearray(self._part_bytes)
                self._cond.wait()  # one of ours is in flight and comes back

    def _send(self, buf: bytearray, n: int) -> None:
        if len(self._etags) >= MAX_PARTS:
            raise InvalidArgument(
                f"the file is larger than {MAX_PARTS} parts of {self._part_bytes} bytes",
                field="data",
            )
        if self._upload_id is None:
            self._upload_id = self._s3.create()
            self._pool = ThreadPoolExecutor(self._parallel, thread_name_prefix="runlake-s3-part")
        assert self._pool is not None
        number = len(self._etags) + 1
        future = self._pool.submit(self._upload_part, self._upload_id, number, buf, n)
        self._etags.append(future)

    def _upload_part(self, upload_id: str, number: int, buf: bytearray, n: int) -> str:
        try:
            return self._s3.upload(upload_id, number, memoryview(buf)[:n])
        except BaseException as exc:
            with self._cond:
                self._failed = self._failed or exc
            raise
        finally:
            with self._cond:
                self._spare.append(buf)
                self._cond.notify_all()

    # -- ending --

    def complete(self) -> None:
        """Make the object visible: the last part (or the whole small object), then complete."""
        try:
            if self._upload_id is None:
                data = self._buf if self._buf is not None else bytearray()
                self._s3.put_whole(memoryview(data)[: self._fill])
            else:
                if self._buf is not None and self._fill:
                    self._send(self._buf, self._fill)
                    self._buf = None
                etags = [f.result() for f in self._etags]
                self._s3.complete(self._upload_id, etags)
        finally:
            self._release()

    def abort(self) -> None:
        """Discard everything sent; safe to call after a failure, and more than once."""
        try:
            for f in self._etags:
                f.cancel()
            if self._pool is not None:
                self._pool.shutdown(wait=True)
            upload_id, self._upload_id = self._upload_id, None
            if upload_id is not None:
                try:
                    self._s3.abort(upload_id)
                except Exception:  # the parts expire with the bucket's lifecycle rules
                    log.warning("could not abort multipart upload %s", upload_id)
        finally:
            self._release()

    def _release(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._pool is not None:
            self._pool.shutdown(wait=True)
        self._buf = None
        self._spare.clear()
        self._budget.give(self._owned)
        self._owned = 0
