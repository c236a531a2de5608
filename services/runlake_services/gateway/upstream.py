"""What a scale-out gateway passes on: reads to the query service, unique-name writes to
the coordinator. Clients then need one address, the gateways' (docs/decisions/0018).

* :func:`query_proxy` serves the whole Query service by forwarding each call's bytes
  unparsed to a query process (``--query-upstream``), with the caller's deadline, its
  ``x-runlake-*`` metadata and the upstream's status. ``GetPosition`` is the one call
  answered in part here: the query service knows only what the compactor folded, the
  gateway knows what the log holds (the partitions' high watermarks), which is what
  ``RunlakeClient.sync`` waits for.
* :class:`Coordinator` forwards writes that need a catalog-wide uniqueness check
  (experiment creation and renames, every registry write: decision 0012) from a
  ``--no-coordinator`` gateway to the coordinator (``--coordinator-upstream``). The
  request carries this gateway's log position (``x-runlake-after``) so the coordinator
  validates against a catalog that has seen the caller's earlier writes through this
  gateway; the answer is returned once this gateway's own catalog has seen the forwarded
  write, so the caller's next write through it validates against it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, TypeVar

import grpc
from runlake.errors import InvalidArgument, Unavailable, from_grpc
from runlake.positions import later
from runlake.v1 import events_pb2, gateway_pb2, gateway_pb2_grpc, query_pb2

from runlake_services.gateway.registry import REGISTRY_KINDS

__all__ = [
    "AFTER_HEADER",
    "COORDINATED_KINDS",
    "Coordinator",
    "catch_up",
    "needs_coordinator",
    "open_channel",
    "query_proxy",
]

#: Metadata: the forwarding gateway's log position; the coordinator waits for it.
AFTER_HEADER = "x-runlake-after"
#: Event kinds only the coordinator validates (unique names, gapless version numbers).
COORDINATED_KINDS = frozenset({"experiment_created", "experiment_renamed"}) | REGISTRY_KINDS
_QUERY = "runlake.v1.Query"
_MAX_MESSAGE = 64 * 1024 * 1024
_DEFAULT_TIMEOUT_S = 120.0
_NO_DEADLINE_S = 3600.0
T = TypeVar("T")
Metadata = Sequence[tuple[str, str | bytes]]


def needs_coordinator(events: Iterable[events_pb2.Event]) -> bool:
    """Whether a batch holds a write that only the coordinator may validate."""
    return any(ev.WhichOneof("body") in COORDINATED_KINDS for ev in events)


def open_channel(uri: str, *, field: str) -> grpc.Channel:
    """A channel to ``grpc://host:port`` (InvalidArgument naming ``field`` otherwise)."""
    from runlake._uri import validate

    try:
        validate(uri)
    except InvalidArgument as exc:
        raise InvalidArgument(str(exc).replace("tracking_uri", field), field=field) from None
    target = uri.split("://", 1)[1].rstrip("/")
    return grpc.insecure_channel(
        target,
        options=[
            ("grpc.max_receive_message_length", _MAX_MESSAGE),
            ("grpc.max_send_message_length", _MAX_MESSAGE),
            ("grpc.enable_retries", 0),
        ],
    )


def _forwarded(context: grpc.ServicerContext) -> list[tuple[str, str]]:
    return [(k, str(v)) for k, v in context.invocation_metadata() if k.startswith("x-runlake-")]


def _timeout(context: grpc.ServicerContext) -> float:
    """The caller's deadline; a call without one (gRPC reports ~2**63 s) gets an hour."""
    left = context.time_remaining()
    if left is None or left > _NO_DEADLINE_S:
        return _NO_DEADLINE_S
    return max(0.001, left)


def _relay(context: grpc.ServicerContext, exc: grpc.RpcError) -> None:
    code = exc.code() if isinstance(exc, grpc.Call) else grpc.StatusCode.UNKNOWN
    details = exc.details() if isinstance(exc, grpc.Call) else str(exc)
    if code is grpc.StatusCode.UNAVAILABLE:
        details = f"the query service is unreachable from the gateway ({details})"
    context.abort(code, details or "")


def query_proxy(
    channel: grpc.Channel, log_end: Callable[[], str]
) -> grpc.GenericRpcHandler[bytes, bytes]:
    """A handler for every Query rpc, forwarding to ``channel``; see the module docstring."""
    service = query_pb2.DESCRIPTOR.services_by_name["Query"]
    handlers: dict[str, grpc.RpcMethodHandler[bytes, bytes]] = {}
    for method in service.methods:
        path = f"/{_QUERY}/{method.name}"
        if method.server_streaming:
            stream = channel.unary_stream(path, None, None)

            def forward_stream(
                request: bytes, context: grpc.ServicerContext, stream: Any = stream
            ) -> Iterator[bytes]:
                call = stream(request, timeout=_timeout(context), metadata=_forwarded(context))
                context.add_callback(call.cancel)
                try:
                    yield from call
                except grpc.RpcError as exc:
                    _relay(context, exc)

            handlers[method.name] = grpc.unary_stream_rpc_method_handler(forward_stream)
            continue
        unary = channel.unary_unary(path, None, None)
        if method.name == "GetPosition":

            def position(
                request: bytes, context: grpc.ServicerContext, unary: Any = unary
            ) -> bytes:
                ours = log_end()  # before asking: the answer must cover what we knew
                try:
                    raw = unary(request, timeout=_timeout(context), metadata=_forwarded(context))
                except grpc.RpcError as exc:
                    _relay(context, exc)
                    raise
                resp = query_pb2.PositionResponse.FromString(raw)
                resp.log_end = later(resp.log_end, ours)
                return resp.SerializeToString()

            handlers[method.name] = grpc.unary_unary_rpc_method_handler(position)
            continue

        def forward(request: bytes, context: grpc.ServicerContext, unary: Any = unary) -> bytes:
            try:
                out: bytes = unary(request, timeout=_timeout(context), metadata=_forwarded(context))
                return out
            except grpc.RpcError as exc:
                _relay(context, exc)
                raise

        handlers[method.name] = grpc.unary_unary_rpc_method_handler(forward)
    return grpc.method_handlers_generic_handler(_QUERY, handlers)


class Coordinator:
    """The coordinator gateway, as seen from a ``--no-coordinator`` one."""

    def __init__(
        self,
        channel: grpc.Channel,
        *,
        here: Callable[[], str],
        wait_for: Callable[[str, float], bool],
        catch_up_s: float = 10.0,
    ) -> None:
        self._stub = gateway_pb2_grpc.GatewayStub(channel)
        self._here = here
        self._wait_for = wait_for
        self._catch_up_s = catch_up_s

    def _call(self, fn: Callable[..., T], request: Any, metadata: Metadata) -> T:
        md = [(k, str(v)) for k, v in metadata if k != AFTER_HEADER]
        md.append((AFTER_HEADER, self._here()))
        try:
            response: T = fn(request, timeout=_DEFAULT_TIMEOUT_S, metadata=md)
        except grpc.RpcError as exc:
            err = from_grpc(exc)
            if isinstance(err, Unavailable):
                raise Unavailable(
                    f"the coordinator gateway is unreachable ({err}); retry"
                ) from None
            raise err from None
        position = str(getattr(response, "position", ""))
        if position and not self._wait_for(position, self._catch_up_s):
            raise Unavailable(
                f"the write is durable ({position}) but this gateway has not seen it within "
                f"{self._catch_up_s:.0f} s; retry with the same batch id",
                field="events",
            )
        return response

    def write(
        self, request: gateway_pb2.WriteRequest, metadata: Metadata
    ) -> gateway_pb2.WriteResponse:
        return self._call(self._stub.Write, request, metadata)

    def create_experiment(
        self, request: gateway_pb2.CreateExperimentRequest, metadata: Metadata
    ) -> gateway_pb2.CreateExperimentResponse:
        return self._call(self._stub.CreateExperiment, request, metadata)

    def create_model_version(
        self, request: gateway_pb2.CreateModelVersionRequest, metadata: Metadata
    ) -> gateway_pb2.CreateModelVersionResponse:
        return self._call(self._stub.CreateModelVersion, request, metadata)


def catch_up(context: grpc.ServicerContext, wait_for: Callable[[str, float], bool]) -> None:
    """On the coordinator: wait (bounded) until the catalog covers the forwarder's position."""
    for key, value in context.invocation_metadata():
        if key == AFTER_HEADER and value:
            if not wait_for(str(value), 10.0):
                raise Unavailable(
                    "the coordinator has not yet seen the writes this request follows; retry",
                    field="events",
                )
            return
