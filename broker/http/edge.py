"""The HTTP edge: request ids, access logs, body limits and ProblemDetails for every error.

Whatever a handler raises leaves the broker as an NGSI-LD ProblemDetails body (clause 5.5.2):
NgsiError subclasses with their own status, aiohttp's HTTP errors (404 route, 405, 413) mapped to
the nearest NGSI-LD type, anything else a logged 500 InternalError that reveals no internals.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from aiohttp import web

from broker.errors import (
    BadRequestData,
    HttpError,
    InternalError,
    InvalidRequest,
    NgsiError,
    ResourceNotFound,
)
from broker.http.media import BODY_TYPES, JSON, JSON_LD, context_from_link, media_type
from broker.http.state import BROKER
from broker.logs import request_id

log = logging.getLogger("cetate.http")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

_REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
BODY_METHODS = frozenset({"POST", "PATCH", "PUT"})


def dumps(body: Any) -> bytes:
    return orjson.dumps(body, option=orjson.OPT_NON_STR_KEYS)


def json_response(
    body: Any, status: int = 200, content_type: str = JSON, headers: dict[str, str] | None = None
) -> web.Response:
    return web.Response(body=dumps(body), status=status, content_type=content_type,
                        headers=headers)


def problem_response(error: NgsiError, instance: str) -> web.Response:
    return json_response(error.problem(instance), status=error.status)


def _from_http_exception(exc: web.HTTPException) -> NgsiError:
    if exc.status == 404:
        return ResourceNotFound("No such resource in the NGSI-LD API")
    if exc.status in (405, 406, 411, 413, 415):
        return HttpError(exc.status, exc.text or exc.reason)
    if exc.status >= 500:
        return InternalError()
    return InvalidRequest(exc.text or exc.reason)


@web.middleware
async def edge_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    incoming = request.headers.get("X-Request-Id", "")
    rid = incoming if _REQUEST_ID_RE.match(incoming) else uuid.uuid4().hex
    token = request_id.set(rid)
    started = time.perf_counter()
    try:
        try:
            response = await handler(request)
        except NgsiError as error:
            response = problem_response(error, request.path)
        except web.HTTPException as exc:
            if exc.status < 400:  # redirects and the like pass through
                raise
            response = problem_response(_from_http_exception(exc), request.path)
            if exc.status == 405 and "Allow" in exc.headers:
                response.headers["Allow"] = exc.headers["Allow"]  # RFC 9110 15.5.6: MUST
        except Exception:
            log.exception("unhandled error on %s %s", request.method, request.path)
            response = problem_response(InternalError(), request.path)
        response.headers["X-Request-Id"] = rid
        log.info(
            "%s %s %s", request.method, request.path_qs, response.status,
            extra={"status": response.status,
                   "ms": round((time.perf_counter() - started) * 1000, 2)},
        )
        return response
    finally:
        request_id.reset(token)


# -- request bodies ----------------------------------------------------------------------------

# orjson refuses documents nested deeper than this itself; we turn that into a clear 400.
JSON_DEPTH_LIMIT = 1024


async def read_json(request: web.Request) -> Any:
    """The decoded JSON body, with 411/413/415/400 as HTTP and NGSI-LD say."""
    kind = media_type(request.headers.get("Content-Type"))
    if kind not in BODY_TYPES:
        raise HttpError(415, f"Content-Type must be application/json or application/ld+json, "
                        f"not {kind or 'absent'}")
    max_size = request.app[BROKER].settings.max_body_bytes
    if request.content_length is None and "chunked" not in request.headers.get(
        "Transfer-Encoding", ""
    ).lower():
        raise HttpError(411, "A request body needs a Content-Length")
    if request.content_length is not None and request.content_length > max_size:
        raise HttpError(413, f"Request body over the limit of {max_size} bytes")
    raw = await request.read()  # aiohttp enforces client_max_size on chunked bodies too
    if not raw:
        raise InvalidRequest("Empty request body")
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        if "depth" in str(exc) or "recursion" in str(exc):
            raise BadRequestData(f"JSON nesting deeper than {JSON_DEPTH_LIMIT} levels") from None
        raise InvalidRequest(f"Malformed JSON: {exc}") from None


def link_context(request: web.Request) -> str | None:
    return context_from_link(request.headers.getall("Link", []))


async def read_payload(request: web.Request, *, context_optional: bool = False) -> tuple[Any, Any]:
    """(body without @context, the @context that applies to it) per clause 6.3.5.

    application/json: the context is the Link header's (or the core one if none), and a body
    @context is an error. application/ld+json: the context is the body's @context and a context
    Link header is an error. `context_optional` waives the body @context where the
    specification needs none (a batch delete's plain array of ids).
    """
    body = await read_json(request)
    linked = link_context(request)
    if media_type(request.headers.get("Content-Type")) == JSON_LD:
        if linked is not None:
            raise BadRequestData("application/ld+json requests carry their @context in the "
                                 "body, not in a Link header")
        if isinstance(body, dict) and "@context" in body:
            body = dict(body)
            return body, body.pop("@context")
        if isinstance(body, list) and body and all(
            isinstance(item, dict) and "@context" in item for item in body
        ):
            return body, body[0]["@context"]
        if context_optional:
            return body, None
        raise BadRequestData("An application/ld+json body must carry an @context")
    if isinstance(body, dict) and "@context" in body:
        raise BadRequestData("An application/json body must not carry an @context; use a Link "
                             "header or application/ld+json")
    return body, linked
