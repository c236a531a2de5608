"""The scoring server's ASGI application: MLflow's endpoints, written directly against ASGI.

Endpoints, as ``mlflow models serve`` has them:

- ``POST /invocations``: score a payload (``runlake.serving.payload``) and answer
  ``{"predictions": ...}`` (``runlake.serving.output``);
- ``GET /ping`` and ``GET /health``: 200 once the model is loaded (a worker loads it before
  it accepts any connection, so a server that answers has it);
- ``GET /version``: the version of runlake serving the model, as text.

Errors are MLflow's JSON, ``{"error_code", "message"}`` (``runlake.serving.errors``): 400 for
a payload or an input the model refuses (a signature error names the column), 413 for a body
over the limit, 415 for a content type other than JSON, CSV or Parquet, 404/405 for other
paths and methods, 500 when the model itself fails. Tracebacks go to the log, never out.

Why no web framework: the application has four routes and a hot path of a few hundred
microseconds; a framework's request objects, routing and middleware cost about as much as
the whole application again (measured in docs/decisions/0009-model-serving.md).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, MutableMapping
from importlib import metadata
from typing import Any

from runlake.errors import InvalidArgument
from runlake.models.errors import ModelSchemaError
from runlake.models.schema import Schema
from runlake.pyfunc import PyFuncModel
from runlake.serving.batching import Batcher
from runlake.serving.config import ServeConfig
from runlake.serving.errors import ENDPOINT_NOT_FOUND, INTERNAL_ERROR, ScoringError
from runlake.serving.output import predictions_body
from runlake.serving.payload import parse_content_type, parse_request

__all__ = ["ROW_WISE_LOADERS", "ScoringApp", "error_for", "merges_requests"]

logger = logging.getLogger("runlake.serving")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

#: Flavors whose ``predict`` scores each row on its own, so merged requests get the answers
#: they would get alone. Custom python models may look at the whole input (normalise by the
#: batch, count rows...): they are merged only with ``--batching on``.
ROW_WISE_LOADERS = frozenset({"mlflow.sklearn"})

_JSON = b"application/json"
_TEXT = b"text/plain; charset=utf-8"
#: Exceptions a model raises for input it cannot take (sklearn's checks raise ValueError):
#: the client's to fix, so 400 as MLflow answers, with the exception's own message.
_INPUT_ERRORS = (ValueError, TypeError, KeyError, IndexError)


class _Disconnected(Exception):
    """The client went away before its body was read: nothing to answer."""


def merges_requests(mode: str, model: PyFuncModel) -> bool:
    """Whether concurrent requests to ``model`` may be merged into one ``predict`` call."""
    if mode == "off":
        return False
    signature = model.metadata.signature
    schema = signature.inputs if signature is not None else None
    if schema is not None and schema.is_tensor_spec:
        return False  # tensors are scored per request: no shared table to merge into
    return mode == "on" or model.loader_module in ROW_WISE_LOADERS


def error_for(exc: BaseException) -> ScoringError:
    """The answer for an exception raised while parsing or scoring a request."""
    if isinstance(exc, ScoringError):
        return exc
    if isinstance(exc, ModelSchemaError):
        return ScoringError(
            f"the input does not match the model's signature: {exc}", field=exc.column
        )
    if isinstance(exc, InvalidArgument):
        return ScoringError(str(exc), field=exc.field)
    if isinstance(exc, _INPUT_ERRORS):
        logger.debug("the model refused an input", exc_info=exc)
        return ScoringError(f"the model could not score this input: {type(exc).__name__}: {exc}")
    logger.error("the model failed while scoring", exc_info=exc)
    return ScoringError(
        f"the model failed: {type(exc).__name__}: {exc}", status=500, error_code=INTERNAL_ERROR
    )


def _version() -> bytes:
    try:
        return metadata.version("runlake").encode()
    except metadata.PackageNotFoundError:
        return b"unknown"


class ScoringApp:
    """One loaded model behind MLflow's scoring endpoints (an ASGI 3 application)."""

    def __init__(self, model: PyFuncModel, config: ServeConfig, *, in_thread: bool = False):
        self.model = model
        signature = model.metadata.signature
        self.schema: Schema | None = signature.inputs if signature is not None else None
        self.max_body_bytes = config.max_body_bytes
        self.batcher = Batcher(
            model.predict,
            schema=self.schema,
            merge=merges_requests(config.batching, model),
            max_rows=config.max_batch_rows,
            max_wait_s=config.max_wait_ms / 1000,
            in_thread=in_thread,
        )
        self._version = _version()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            await self._http(scope, receive, send)
        elif kind == "lifespan":
            await self._lifespan(receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                self.close()
                await send({"type": "lifespan.shutdown.complete"})
                return

    def close(self) -> None:
        """Release the predict thread (if any)."""
        self.batcher.close()

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope["path"]
        method: str = scope["method"]
        if path == "/invocations":
            if method != "POST":
                await _error(send, _not_allowed(method, path, "POST"), allow=b"POST")
                return
            await self._invocations(scope, receive, send)
        elif path in ("/ping", "/health"):
            if method not in ("GET", "HEAD"):
                await _error(send, _not_allowed(method, path, "GET"), allow=b"GET, HEAD")
                return
            await _respond(send, 200, b"\n", _JSON)
        elif path == "/version":
            if method not in ("GET", "HEAD"):
                await _error(send, _not_allowed(method, path, "GET"), allow=b"GET, HEAD")
                return
            await _respond(send, 200, self._version, _TEXT)
        else:
            await _error(
                send,
                ScoringError(
                    f"no endpoint {path}; the scoring server has POST /invocations, "
                    "GET /ping, /health and /version",
                    status=404,
                    error_code=ENDPOINT_NOT_FOUND,
                ),
            )

    async def _invocations(self, scope: Scope, receive: Receive, send: Send) -> None:
        content_type: str | None = None
        length: bytes | None = None
        for name, value in scope["headers"]:
            if name == b"content-type":
                content_type = value.decode("latin-1")
            elif name == b"content-length":
                length = value
        batcher = self.batcher
        batcher.begin_read()
        try:
            parse_content_type(content_type)  # 415 before reading a body for nothing
            if length is not None and _declared(length) > self.max_body_bytes:
                raise self._too_large()
            body = await self._body(receive)
            parsed = parse_request(body, content_type, self.schema)
        except ScoringError as exc:
            await _error(send, exc, close=exc.status == 413)
            return
        except _Disconnected:
            return
        finally:
            batcher.end_read()
        outcome = await batcher.score(parsed)
        if outcome.error is not None:
            await _error(send, error_for(outcome.error))
            return
        try:
            answer = predictions_body(outcome.value)
        except (TypeError, ValueError) as exc:
            logger.error("predictions could not be written as JSON", exc_info=exc)
            await _error(
                send,
                ScoringError(
                    f"the model's predictions could not be written as JSON: {exc}",
                    status=500,
                    error_code=INTERNAL_ERROR,
                ),
            )
            return
        await _respond(send, 200, answer, _JSON)

    async def _body(self, receive: Receive) -> bytes:
        """The whole request body, or a 413 once it passes the limit (chunked bodies too)."""
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise _Disconnected
            chunk: bytes = message.get("body", b"")
            if chunk:
                size += len(chunk)
                if size > self.max_body_bytes:
                    raise self._too_large()
                chunks.append(chunk)
            if not message.get("more_body", False):
                break
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    def _too_large(self) -> ScoringError:
        return ScoringError(
            f"the body is larger than the server's limit of {self.max_body_bytes} bytes "
            "(--max-body-bytes); send fewer rows per request",
            status=413,
        )


def _declared(length: bytes) -> int:
    try:
        return int(length)
    except ValueError:
        raise ScoringError("the Content-Length header is not a number") from None


def _not_allowed(method: str, path: str, allowed: str) -> ScoringError:
    return ScoringError(f"{method} is not allowed on {path}; use {allowed}", status=405)


async def _error(
    send: Send, exc: ScoringError, *, allow: bytes | None = None, close: bool = False
) -> None:
    extra: list[tuple[bytes, bytes]] = []
    if allow is not None:
        extra.append((b"allow", allow))
    if close:  # the rest of an unread body must not be taken for the next request
        extra.append((b"connection", b"close"))
    await _respond(send, exc.status, exc.body(), _JSON, extra)


async def _respond(
    send: Send,
    status: int,
    body: bytes,
    content_type: bytes,
    extra: list[tuple[bytes, bytes]] | None = None,
) -> None:
    headers = [(b"content-type", content_type), (b"content-length", str(len(body)).encode())]
    if extra:
        headers.extend(extra)
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
