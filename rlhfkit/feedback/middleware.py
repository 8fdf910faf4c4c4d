"""The app's outer layers, as plain ASGI middleware (Starlette's BaseHTTPMiddleware costs more per
request under load): security headers, a cap on request bodies, and an admission limit.

Why the admission limit: a request takes its database connection in one worker thread (the
labeler lookup) and keeps it while it waits for another (the endpoint, then the response model).
With more requests in flight than connections, every worker thread could be waiting for a
connection held by requests that wait for a thread; nothing moved until the pool's 30 s timeout
failed them with 500s. Letting in no more requests than the pool has connections means an admitted
request always finds one free; the rest wait in the event loop, holding neither.
"""
from __future__ import annotations

import json
import secrets

import anyio

# Scripts and styles run only with this response's nonce (the templates read it from
# request.state.csp_nonce), so injected markup can do nothing even if escaping ever failed.
CSP = ("default-src 'none'; script-src 'nonce-{nonce}'; style-src 'nonce-{nonce}'; img-src 'self'; "
       "form-action 'self'; base-uri 'none'; frame-ancestors 'none'")


class SecurityHeaders:
    """CSP, no framing, no MIME sniffing, and no Referer: invite and admin links carry tokens."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        nonce = secrets.token_urlsafe(16)
        scope.setdefault("state", {})["csp_nonce"] = nonce
        headers = [(b"content-security-policy", CSP.format(nonce=nonce).encode()), (b"x-frame-options", b"DENY"),
                   (b"x-content-type-options", b"nosniff"), (b"referrer-policy", b"no-referrer")]

        async def send_with_headers(message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *headers]
            await send(message)
        await self.app(scope, receive, send_with_headers)


class BodyLimit:
    """A request body over `max_bytes` gets 413, read no further than that; a body within it is
    read here and handed on unchanged (the largest the app needs is an answer with its note)."""

    def __init__(self, app, max_bytes: int) -> None:
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        chunks, size, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] != "http.request":        # the client went away
                return
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if size > self.max_bytes:
                return await _error(send, 413, f"request body over {self.max_bytes} bytes")
            more = message.get("more_body", False)
        body = [{"type": "http.request", "body": b"".join(chunks), "more_body": False}]

        async def replay():
            return body.pop() if body else await receive()
        await self.app(scope, replay, send)


class Admission:
    """At most `slots` requests inside the app at once (see the module docstring)."""

    def __init__(self, app, slots: int) -> None:
        self.app, self.slots = app, anyio.Semaphore(slots)

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        async with self.slots:
            await self.app(scope, receive, send)


async def _error(send, status: int, detail: str) -> None:
    """A JSON error shaped like FastAPI's own ({"detail": ...})."""
    body = json.dumps({"detail": detail}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
