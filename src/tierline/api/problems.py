"""Errors as RFC 9457 problem details (``application/problem+json``), a request size limit, and no
stack trace ever sent to a client."""

from __future__ import annotations

import logging
import uuid
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tierline.errors import TierlineError

PROBLEM = "application/problem+json"
log = logging.getLogger("tierline.api")
TITLES = {
    400: "Bad request",
    401: "Authentication required",
    403: "Not allowed for this role",
    404: "Not found",
    405: "Method not allowed",
    409: "Conflict",
    413: "Request too large",
    415: "Unsupported media type",
    422: "Invalid input",
    500: "Internal error",
    503: "Not ready",
}
PROBLEM_SCHEMA = {
    "type": "object",
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "instance": {"type": "string"},
        "errors": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {"field": {"type": "string"}, "reason": {"type": "string"}},
            },
        },
    },
    "required": ["type", "title", "status"],
}


def problem(
    status: int,
    detail: str | None = None,
    errors: list[dict[str, str]] | None = None,
    instance: str | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    body: dict[str, Any] = {"type": "about:blank", "title": TITLES.get(status, "Error"), "status": status}
    if detail:
        body["detail"] = detail
    if instance:
        body["instance"] = instance
    if errors is not None:
        body["errors"] = errors
    return JSONResponse(body, status_code=status, media_type=PROBLEM, headers=headers)


def _path(loc: tuple[Any, ...] | list[Any]) -> str:
    parts = [p for p in loc if p not in ("body",)] if loc and loc[0] == "body" else list(loc)
    text = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in parts).lstrip(".")
    return text or "body"


def install(app: FastAPI) -> None:
    @app.exception_handler(TierlineError)
    async def _tierline(request: Request, exc: TierlineError) -> JSONResponse:
        status = 409 if exc.field == "idempotency_key" else 422  # a key reused for another request: a conflict
        return problem(
            status, f"{exc.field}: {exc.reason}", [{"field": exc.field, "reason": exc.reason}], request.url.path
        )

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {
                "field": _path(tuple(e.get("loc", ()))),
                "reason": str(e.get("msg", "invalid")).removeprefix("Value error, "),
            }
            for e in exc.errors()
        ]
        detail = "; ".join(f"{e['field']}: {e['reason']}" for e in errors[:5])
        return problem(422, detail, errors, request.url.path)

    @app.exception_handler(HTTPException)
    async def _http(request: Request, exc: HTTPException) -> JSONResponse:
        headers = dict(exc.headers) if exc.headers else None
        return problem(exc.status_code, str(exc.detail) if exc.detail else None, None, request.url.path, headers)


class CatchAll:
    """An unexpected error becomes a 500 problem with an incident id (logged with its trace, never
    sent); the exception stops here, so the server keeps the connection and says nothing more."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracked(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracked)
        except Exception as exc:  # noqa: BLE001 - the last line of defence
            incident = uuid.uuid4().hex[:12]
            log.error("incident %s on %s %s", incident, scope.get("method"), scope.get("path"), exc_info=exc)
            if not started:
                await _respond(scope, send, problem(500, f"an internal error occurred (incident {incident})"))


class BodyLimit:
    """Refuse request bodies above a limit (413), by Content-Length or by counting a streamed body,
    and text containing NUL characters (422: no database stores them). JSON bodies are read whole
    (they are small) and checked before the application sees them; uploads on `upload_paths` get the
    larger limit and are counted as they stream."""

    def __init__(self, app: ASGIApp, limit: int, upload_limit: int, upload_paths: tuple[str, ...]) -> None:
        self.app, self.limit, self.upload_limit, self.upload_paths = app, limit, upload_limit, upload_paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "")
        if "\x00" in path or b"%00" in scope.get("query_string", b"") or b"%00" in scope.get("raw_path", b""):
            await _respond(scope, send, problem(422, "NUL characters are not allowed", None, path))
            return
        upload = path.startswith(self.upload_paths)
        limit = self.upload_limit if upload else self.limit
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await _respond(scope, send, _too_large(limit, path))
            return
        if upload:
            await self._stream(scope, receive, send, limit)
            return
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if size > limit:
                await _respond(scope, send, _too_large(limit, path))
                return
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        if b"\x00" in body or b"\\u0000" in body.lower():
            await _respond(scope, send, problem(422, "NUL characters are not allowed", None, path))
            return
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if sent:
                return await receive()
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)

    async def _stream(self, scope: Scope, receive: Receive, send: Send, limit: int) -> None:
        seen, too_big, answered = 0, False, False

        async def counted() -> Message:
            nonlocal seen, too_big
            if too_big:
                return {"type": "http.request", "body": b"", "more_body": False}
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    too_big = True
                    return {"type": "http.request", "body": b"", "more_body": False}
            return message

        async def guarded(message: Message) -> None:
            nonlocal answered
            if not too_big:
                await send(message)
            elif not answered:  # whatever the application made of a cut body, the answer is 413
                answered = True
                await _respond(scope, send, _too_large(limit, scope.get("path", "")))

        await self.app(scope, counted, guarded)


def _too_large(limit: int, path: str) -> JSONResponse:
    return problem(413, f"the request body is larger than {limit:,} bytes", None, path)


async def _respond(scope: Scope, send: Send, response: JSONResponse) -> None:
    await response(scope, _drain, send)


async def _drain() -> Message:
    return {"type": "http.disconnect"}
