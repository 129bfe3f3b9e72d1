"""`POST /v1/traces`: OTLP/HTTP, so any application instrumented with OpenTelemetry can export to
flywheel (OTLP specification, opentelemetry-proto docs/specification.md "OTLP/HTTP").

JSON (`application/json`) or protobuf (`application/x-protobuf`), gzip, deflate or plain; a bearer
token of a reviewer (`flywheel users add otel-exporter`); bodies over the limit, before or after
decompression, get 413. The answer, 200 with an empty ExportTraceServiceResponse in the request's
content type, goes out only once the batch is appended and fsynced to the inbox
(flywheel.core.intake.otlp_inbox); the weekly loop ingests what arrived.
"""

from __future__ import annotations

import json
import zlib

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from flywheel.core.common import clock
from flywheel.core.intake import otlp_inbox
from flywheel.core.intake.sources.otlp import count_spans, shape_problem
from flywheel.web import auth

MAX_BODY = 16 * 1024 * 1024
JSON, PROTOBUF = "application/json", "application/x-protobuf"


class _TooLarge(Exception):
    pass


def _status(status: int, message: str, content_type: str) -> Response:
    """An OTLP error: a google.rpc.Status in the request's encoding (plain text when that is unknown)."""
    if content_type == PROTOBUF:
        from google.rpc import status_pb2

        return Response(status_pb2.Status(code=_grpc_code(status), message=message).SerializeToString(),
                        status_code=status, media_type=PROTOBUF)
    if content_type == JSON:
        return JSONResponse({"code": _grpc_code(status), "message": message}, status_code=status)
    return Response(message, status_code=status, media_type="text/plain")


def _grpc_code(status: int) -> int:
    return {400: 3, 401: 16, 413: 8, 415: 3}.get(status, 13)  # INVALID_ARGUMENT, UNAUTHENTICATED, RESOURCE_EXHAUSTED


async def _body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise _TooLarge()
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _TooLarge()
        chunks.append(chunk)
    return b"".join(chunks)


def _decompress(body: bytes, encoding: str, limit: int) -> bytes:
    if encoding in ("", "identity"):
        return body
    wbits = {"gzip": 16 + zlib.MAX_WBITS, "deflate": zlib.MAX_WBITS}[encoding]
    inflater = zlib.decompressobj(wbits)
    out = inflater.decompress(body, limit + 1)
    if len(out) > limit or inflater.unconsumed_tail:
        raise _TooLarge()
    return out + inflater.flush()


def _decode(data: bytes, content_type: str) -> dict:
    """The request as an OTLP JSON document; ValueError when it is not one."""
    if content_type == JSON:
        try:
            text = (data or b"{}").decode("utf-8")
        except UnicodeDecodeError:  # json.loads would guess UTF-16 and quote the body's bytes
            raise ValueError("the body is not UTF-8 JSON") from None
        doc = json.loads(text)
        if not isinstance(doc, dict):  # its containers' kinds: otlp.shape_problem, for both encodings
            raise ValueError('expected an ExportTraceServiceRequest: {"resourceSpans": [...]}')
        return doc
    from google.protobuf.json_format import MessageToDict
    from google.protobuf.message import DecodeError
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    request = ExportTraceServiceRequest()
    try:
        request.ParseFromString(data)
    except DecodeError:
        raise ValueError("not a protobuf ExportTraceServiceRequest") from None
    # proto3 JSON: ids come out in base64, which the intake reads as well as hex.
    return MessageToDict(request, use_integers_for_enums=True)


async def receive(request: Request) -> Response:
    review = request.app.state.review
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    known = content_type if content_type in (JSON, PROTOBUF) else ""
    with review.store() as store:
        if auth.bearer_reviewer(request, store) is None:
            return _status(401, "send Authorization: Bearer <token> (flywheel users add prints one)", known)
    if not known:
        return _status(415, f"Content-Type must be {JSON} or {PROTOBUF}", "")
    encoding = request.headers.get("content-encoding", "").strip().lower()
    if encoding not in ("", "identity", "gzip", "deflate"):
        return _status(415, "Content-Encoding must be gzip, deflate or none", known)
    limit = request.app.state.otlp_max_body
    try:
        body = await _body(request, limit)
        # Inflating and decoding a large batch takes milliseconds of CPU: off the event loop.
        doc = await run_in_threadpool(lambda: _decode(_decompress(body, encoding, limit), known))
    except _TooLarge:
        return _status(413, f"the body is over {limit // (1024 * 1024)} MiB (after decompression too); send smaller "
                       "batches", known)
    except RecursionError:
        return _status(400, "not OTLP trace data: nested too deeply", known)
    except (ValueError, zlib.error, UnicodeDecodeError) as exc:
        return _status(400, f"not OTLP trace data: {str(exc)[:200]}", known)
    problem = shape_problem(doc)
    if problem:
        return _status(400, f"not OTLP trace data: {problem}", known)
    if count_spans(doc):
        await run_in_threadpool(otlp_inbox.append, review.paths.inbox_traces, doc, clock.now())
    if known == PROTOBUF:
        return Response(b"", media_type=PROTOBUF)
    return JSONResponse({})


routes = [Route("/v1/traces", receive, methods=["POST"])]
