"""The gateway: one :class:`Ingestor` doing the work, one thin gRPC servicer over it.

Writes are serialised through one lock: validation reads the catalog, and the
catalog must not change between the check and the append. The lock is held for
microseconds per 1,000-point batch (vectorised checks, one SQLite commit).
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import NoReturn

import grpc
from runlake.errors import NotFound, ResourceExhausted, RunlakeError
from runlake.v1 import events_pb2, gateway_pb2, gateway_pb2_grpc

from runlake_services.eventlog import EventLog, ExperimentState, StateChanges
from runlake_services.gateway.upstream import Coordinator, catch_up, needs_coordinator
from runlake_services.gateway.validation import (
    check_tags,
    validate_batch,
    validate_experiment_create,
)

__all__ = ["Backlog", "GatewayServicer", "Ingestor"]

SCHEMA_VERSION = 1


class Backlog:
    """Bytes appended to the log but not yet folded: the gateway's backpressure gauge."""

    def __init__(self, limit_bytes: int) -> None:
        self.limit = limit_bytes
        self._pending = 0
        self._lock = threading.Lock()

    @property
    def pending(self) -> int:
        return self._pending

    def add(self, n: int) -> None:
        with self._lock:
            self._pending += n

    def folded(self, n: int) -> None:
        with self._lock:
            self._pending = max(0, self._pending - n)

    def check(self) -> None:
        if self._pending > self.limit:
            raise ResourceExhausted(
                f"{self._pending} bytes wait to be folded (limit {self.limit}); retry in 1 s",
                field="events",
            )


class Ingestor:
    """Validates and appends batches; the same code serves every transport."""

    def __init__(
        self,
        log: EventLog,
        *,
        artifact_root: str,
        backlog: Backlog,
        on_append: Callable[[int], None] | None = None,
        catch_up: Callable[[], bool] | None = None,
    ) -> None:
        self._log = log
        self._artifact_root = artifact_root
        self._backlog = backlog
        self._on_append = on_append
        #: On a gateway whose catalog tails a shared log: wait (bounded) until it has seen
        #: the whole log; whether it did. A batch naming a run or experiment this catalog
        #: does not know yet (another gateway's, a moment ago) is validated again after it.
        self._catch_up = catch_up
        self._lock = threading.Lock()

    def _stamp(self, batch_id: str, user: str, events: list[events_pb2.Event]) -> bytes:
        record = events_pb2.LoggedBatch(
            meta=events_pb2.BatchMeta(
                batch_id=batch_id,
                user=user,
                received_at_ms=int(time.time() * 1000),
                schema_version=SCHEMA_VERSION,
            ),
            events=events,
        )
        return record.SerializeToString()

    def _append(self, batch_id: str, payload: bytes, changes: StateChanges) -> int:
        appended = self._log.append(batch_id, payload, changes)
        if not appended.duplicate:
            self._backlog.add(len(payload))
            if self._on_append is not None:
                self._on_append(appended.position)
        return appended.position

    def write(self, request: gateway_pb2.WriteRequest, *, user: str) -> gateway_pb2.WriteResponse:
        existing = self._log.find(request.batch_id) if request.batch_id else None
        if existing is not None:
            return gateway_pb2.WriteResponse(
                batch_id=request.batch_id, position=str(existing), duplicate=True
            )
        self._backlog.check()
        size = request.ByteSize()
        try:
            return self._write_checked(request, user, size)
        except NotFound:
            if self._catch_up is None or not self._catch_up():
                raise
        return self._write_checked(request, user, size)

    def _write_checked(
        self, request: gateway_pb2.WriteRequest, user: str, size: int
    ) -> gateway_pb2.WriteResponse:
        with self._lock:
            checked = validate_batch(
                self._log.catalog, request.batch_id, request.events, request_bytes=size, user=user
            )
            if not checked.events:
                # Nothing new (params repeated with their values): durable already.
                position = self._log.end_position()
            else:
                payload = self._stamp(request.batch_id, user, checked.events)
                position = self._append(request.batch_id, payload, checked.changes)
        return gateway_pb2.WriteResponse(batch_id=request.batch_id, position=str(position))

    def create_model_version(
        self, request: gateway_pb2.CreateModelVersionRequest, *, user: str
    ) -> gateway_pb2.CreateModelVersionResponse:
        """A new version; the answer carries the number the registry validation assigned."""
        event = events_pb2.Event(
            model_version_created=events_pb2.ModelVersionCreated(
                name=request.name,
                source=request.source,
                run_id=request.run_id,
                description=request.description,
                tags=request.tags,
            )
        )
        write = gateway_pb2.WriteRequest(batch_id=request.batch_id, events=[event])
        if request.batch_id:
            existing = self._log.find(request.batch_id)
            if existing is not None:
                version = self._logged_version(request.batch_id)
                return gateway_pb2.CreateModelVersionResponse(
                    name=request.name, version=version, position=str(existing)
                )
        self._backlog.check()
        with self._lock:
            checked = validate_batch(
                self._log.catalog,
                request.batch_id,
                write.events,
                request_bytes=write.ByteSize(),
                user=user,
            )
            created = checked.events[0].model_version_created
            payload = self._stamp(request.batch_id, user, checked.events)
            position = self._append(request.batch_id, payload, checked.changes)
        return gateway_pb2.CreateModelVersionResponse(
            name=request.name, version=created.version, position=str(position)
        )

    def _logged_version(self, batch_id: str) -> int:
        """The version a retried CreateModelVersion batch got the first time."""
        position = self._log.find(batch_id)
        records = self._log.read((position or 1) - 1, max_records=1, max_bytes=1)
        batch = events_pb2.LoggedBatch()
        batch.ParseFromString(records[0].payload)
        return int(batch.events[0].model_version_created.version)

    def record_artifact(self, run_id: str, path: str, size: int, sha256: str, *, user: str) -> int:
        """Append the ArtifactLogged event of a file the artifact store now holds."""
        event = events_pb2.Event(
            artifact_logged=events_pb2.ArtifactLogged(
                run_id=run_id, path=path, size=size, sha256=sha256
            )
        )
        batch_id = f"artifact:{uuid.uuid4().hex}"
        self._backlog.check()
        with self._lock:
            return self._append(batch_id, self._stamp(batch_id, user, [event]), StateChanges())

    def create_experiment(
        self, request: gateway_pb2.CreateExperimentRequest, *, user: str
    ) -> gateway_pb2.CreateExperimentResponse:
        with self._lock:
            state = validate_experiment_create(
                self._log.catalog, request.name, request.artifact_location, self._artifact_root
            )
            return self._create(state.experiment_id, request, state.artifact_location, user)

    def ensure_default_experiment(self) -> None:
        """Experiment "0" (Default) exists from the first start, as in MLflow."""
        with self._lock:
            if self._log.catalog.experiment("0") is None:
                request = gateway_pb2.CreateExperimentRequest(name="Default")
                location = f"{self._artifact_root.rstrip('/')}/0"
                self._create("0", request, location, "runlake")

    def _create(
        self,
        experiment_id: str,
        request: gateway_pb2.CreateExperimentRequest,
        location: str,
        user: str,
    ) -> gateway_pb2.CreateExperimentResponse:
        check_tags(request.tags, "tags")
        now = int(time.time() * 1000)
        event = events_pb2.Event(
            experiment_created=events_pb2.ExperimentCreated(
                experiment_id=experiment_id,
                name=request.name,
                artifact_location=location,
                tags=request.tags,
                creation_time=now,
            )
        )
        changes = StateChanges(
            experiments={
                experiment_id: ExperimentState(experiment_id, request.name, "active", location)
            }
        )
        batch_id = f"create-experiment:{experiment_id}"
        position = self._append(batch_id, self._stamp(batch_id, user, [event]), changes)
        return gateway_pb2.CreateExperimentResponse(
            experiment_id=experiment_id, position=str(position)
        )


def user_of(context: grpc.ServicerContext) -> str:
    for key, value in context.invocation_metadata():
        if key == "x-runlake-user":
            return str(value)[:200]
    return ""


def abort(context: grpc.ServicerContext, exc: RunlakeError) -> NoReturn:
    context.abort(exc.code, str(exc))
    raise AssertionError("unreachable")  # context.abort raises


class GatewayServicer(gateway_pb2_grpc.GatewayServicer):
    """gRPC transport over :class:`Ingestor`; errors map to status codes in one place.

    ``coordinator``: on a ``--no-coordinator`` gateway, where uniqueness-sensitive writes
    are forwarded (gateway/upstream.py). ``wait_for``: on the coordinator, how to wait
    until its catalog covers a forwarding gateway's position (``x-runlake-after``).
    """

    def __init__(
        self,
        ingestor: Ingestor,
        *,
        coordinator: Coordinator | None = None,
        wait_for: Callable[[str, float], bool] | None = None,
    ) -> None:
        self._ingestor = ingestor
        self._coordinator = coordinator
        self._wait_for = wait_for

    def _local(self, context: grpc.ServicerContext) -> None:
        if self._wait_for is not None:
            catch_up(context, self._wait_for)

    def _write(
        self, request: gateway_pb2.WriteRequest, context: grpc.ServicerContext, user: str
    ) -> gateway_pb2.WriteResponse:
        if self._coordinator is not None and needs_coordinator(request.events):
            return self._coordinator.write(request, context.invocation_metadata())
        if needs_coordinator(request.events):
            self._local(context)
        return self._ingestor.write(request, user=user)

    def Write(
        self, request: gateway_pb2.WriteRequest, context: grpc.ServicerContext
    ) -> gateway_pb2.WriteResponse:
        try:
            return self._write(request, context, user_of(context))
        except RunlakeError as exc:
            abort(context, exc)

    def WriteStream(
        self, request_iterator: Iterator[gateway_pb2.WriteRequest], context: grpc.ServicerContext
    ) -> gateway_pb2.WriteStreamResponse:
        user = user_of(context)
        acks = gateway_pb2.WriteStreamResponse()
        for request in request_iterator:
            try:
                acks.acks.append(self._write(request, context, user))
            except RunlakeError as exc:
                done = len(acks.acks)
                msg = (
                    f"batch {request.batch_id!r} (#{done} of the stream; "
                    f"the {done} before it are durable): {exc}"
                )
                context.abort(exc.code, msg)
        return acks

    def CreateModelVersion(
        self, request: gateway_pb2.CreateModelVersionRequest, context: grpc.ServicerContext
    ) -> gateway_pb2.CreateModelVersionResponse:
        try:
            if self._coordinator is not None:
                return self._coordinator.create_model_version(
                    request, context.invocation_metadata()
                )
            self._local(context)
            return self._ingestor.create_model_version(request, user=user_of(context))
        except RunlakeError as exc:
            abort(context, exc)

    def CreateExperiment(
        self, request: gateway_pb2.CreateExperimentRequest, context: grpc.ServicerContext
    ) -> gateway_pb2.CreateExperimentResponse:
        try:
            if self._coordinator is not None:
                return self._coordinator.create_experiment(request, context.invocation_metadata())
            self._local(context)
            return self._ingestor.create_experiment(request, user=user_of(context))
        except RunlakeError as exc:
            abort(context, exc)
