"""Requests, responses and errors of :mod:`purenng.http` (no I/O here).

A REST handler receives a :class:`Request` and returns a :class:`Response`
or something :func:`as_response` turns into one: a ``dict`` or ``list``
becomes JSON, a ``str`` plain text, ``bytes`` an octet stream, ``None`` a
204.  Raising :class:`HTTPError` answers with its status; any other
exception answers 500 and is logged, and the server lives on.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "HTTPError",
    "Request",
    "Response",
    "as_response",
    "json_response",
    "status_phrase",
    "text_response",
]

_PHRASES = {
    101: "Switching Protocols",
    200: "OK",
    201: "Created",
    204: "No Content",
    301: "Moved Permanently",
    304: "Not Modified",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    408: "Request Timeout",
    413: "Content Too Large",
    415: "Unsupported Media Type",
    426: "Upgrade Required",
    431: "Request Header Fields Too Large",
    500: "Internal Server Error",
    501: "Not Implemented",
    503: "Service Unavailable",
}


def status_phrase(status: int) -> str:
    """The reason phrase for ``status`` ("" when unknown)."""
    return _PHRASES.get(status, "")


class HTTPError(Exception):
    """Raise from a handler to answer with ``status`` and a plain-text ``message``.

    Args:
        status: The HTTP status, 4xx or 5xx.
        message: Sent as the body (a default phrase when empty).
        headers: Extra response headers.
    """

    def __init__(
        self, status: int, message: str = "", headers: dict[str, str] | None = None
    ) -> None:
        self.status = status
        self.message: str = message or status_phrase(status) or f"HTTP {status}"
        self.headers: dict[str, str] = dict(headers or {})
        super().__init__(f"HTTP {status}: {self.message}")


@dataclass
class Request:
    """One HTTP request as a handler sees it.

    Attributes:
        method: Upper-case method, e.g. ``"GET"``.
        target: The request target as sent (path and query).
        path: The percent-decoded path.
        query: The query parameters (last value wins).
        query_string: The raw query string, without ``?``.
        headers: Header names in lower case; repeated headers joined by ``", "``.
        body: The whole request body.
        client: The peer's address, as the socket reports it.
        path_params: Values of ``{name}`` segments of the route.
    """

    method: str
    target: str
    path: str
    query: dict[str, str] = field(default_factory=dict)
    query_string: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    client: Any = None
    path_params: dict[str, str] = field(default_factory=dict)

    def text(self) -> str:
        """The body decoded as UTF-8."""
        return self.body.decode("utf-8")

    def json(self) -> Any:
        """The body parsed as JSON.

        Raises:
            HTTPError: 400 when the body is not valid JSON.
        """
        try:
            return json.loads(self.body)
        except ValueError as exc:
            raise HTTPError(400, f"the body is not valid JSON: {exc}") from None


@dataclass
class Response:
    """An HTTP response.

    Attributes:
        status: The status code.
        body: The body bytes.
        headers: Response headers; ``Content-Length`` is set by the server.
        content_type: Shortcut for the ``Content-Type`` header.
    """

    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str | None = None

    def header_list(self) -> list[tuple[bytes, bytes]]:
        """The headers to send, ``Content-Type`` included."""
        out = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in self.headers.items()]
        if self.content_type and not any(k.lower() == "content-type" for k in self.headers):
            out.append((b"Content-Type", self.content_type.encode("latin-1")))
        return out


def json_response(obj: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    """A JSON response (UTF-8, compact)."""
    body = json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    return Response(status, body, dict(headers or {}), "application/json")


def text_response(
    text: str,
    status: int = 200,
    headers: dict[str, str] | None = None,
    content_type: str = "text/plain; charset=utf-8",
) -> Response:
    """A text response (UTF-8)."""
    return Response(status, text.encode("utf-8"), dict(headers or {}), content_type)


def as_response(result: Any) -> Response:
    """Turn what a handler returned into a :class:`Response`.

    Raises:
        TypeError: the value has no obvious HTTP form.
    """
    if isinstance(result, Response):
        return result
    if result is None:
        return Response(204)
    if isinstance(result, dict | list | int | float | bool):
        return json_response(result)
    if isinstance(result, str):
        return text_response(result)
    if isinstance(result, bytes | bytearray | memoryview):
        return Response(200, bytes(result), {}, "application/octet-stream")
    raise TypeError(f"a handler returned {type(result).__name__}; return a Response, dict, str...")
