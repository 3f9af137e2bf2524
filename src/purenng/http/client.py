"""``purenng.http.Client``: a minimal HTTP/1.1 client (GET, POST, any method).

Enough for tests, scripts and health checks against a
:class:`purenng.http.Server`: one connection per request (``Connection:
close``), the whole response read into memory, h11 doing the HTTP.  For
anything more (connection pools, redirects, streaming) use a real HTTP
client library.

Rules:

* The async methods (:meth:`Client.arequest`, :meth:`Client.aget`,
  :meth:`Client.apost`) run on the caller's loop; the blocking ones run a
  private loop and must not be called from inside a running loop.
* ``https://`` uses ``tls_config`` (a :class:`purenng.TLSConfig`; without
  one the system trust store verifies the server), as a wss dialer would.
* Every request is bounded by ``timeout`` seconds, connection included.
* Only status codes are results: a 404 is a :class:`ClientResponse` with
  ``status`` 404, not an exception.
"""

from __future__ import annotations

import asyncio
import json as jsonlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import h11

from ..core.errors import BadAddress, ConnectionRefused, ConnectionReset, ProtocolError, Timeout

if TYPE_CHECKING:
    from ..tls_config import TLSConfig

__all__ = ["Client", "ClientResponse"]

#: Largest response body read, bytes.
MAX_BODY = 64 << 20


@dataclass
class ClientResponse:
    """A whole HTTP response.

    Attributes:
        status: The status code.
        reason: The reason phrase.
        headers: Header names in lower case (repeated ones joined by ``", "``).
        body: The body bytes.
    """

    status: int
    reason: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""

    def text(self) -> str:
        """The body decoded as UTF-8."""
        return self.body.decode("utf-8")

    def json(self) -> Any:
        """The body parsed as JSON."""
        return jsonlib.loads(self.body)


class _Reader(asyncio.Protocol):
    def __init__(self, conn: h11.Connection, request: bytes) -> None:
        self.conn = conn
        self.request = request
        self.changed = asyncio.Event()
        self.lost = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport.write(self.request)  # type: ignore[attr-defined]

    def data_received(self, data: bytes) -> None:
        self.conn.receive_data(data)
        self.changed.set()

    def eof_received(self) -> bool:
        self.conn.receive_data(b"")
        self.changed.set()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        self.changed.set()


class Client:
    """A tiny HTTP/1.1 client bound to one base URL.

    Args:
        base_url: ``http://host:port`` or ``https://host:port`` (a path is a prefix).
        tls_config: Trust and identity for https.
        timeout: Seconds per request.
        headers: Headers sent with every request.

    Raises:
        BadAddress: the base URL is not http or https.
    """

    def __init__(
        self,
        base_url: str,
        *,
        tls_config: TLSConfig | None = None,
        timeout: float = 10.0,
        headers: dict[str, str] | None = None,
    ) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise BadAddress(f"{base_url!r}: expected http://host:port or https://host:port")
        self.tls: bool = parts.scheme == "https"
        self.host: str = parts.hostname
        self.port: int = parts.port or (443 if self.tls else 80)
        self.prefix: str = parts.path.rstrip("/")
        self.tls_config = tls_config
        self.timeout = timeout
        self.headers: dict[str, str] = dict(headers or {})

    async def arequest(
        self,
        method: str,
        path: str = "/",
        *,
        body: bytes | str = b"",
        json: Any = None,
        headers: dict[str, str] | None = None,
    ) -> ClientResponse:
        """Send one request and read the whole response.

        Raises:
            ConnectionRefused: nobody listens.
            ConnectionReset: the server closed before a whole response.
            ProtocolError: the response is not valid HTTP/1.1.
            Timeout: ``timeout`` passed.
        """
        if json is not None:
            body = jsonlib.dumps(json).encode()
            headers = {"Content-Type": "application/json", **(headers or {})}
        data = body.encode("utf-8") if isinstance(body, str) else body
        hdrs = {**self.headers, **(headers or {})}
        host = f"[{self.host}]" if ":" in self.host else self.host
        items: list[tuple[str, str]] = [("Host", f"{host}:{self.port}"), ("Connection", "close")]
        if data or method.upper() in ("POST", "PUT", "PATCH"):
            items.append(("Content-Length", str(len(data))))
        items += list(hdrs.items())
        conn = h11.Connection(h11.CLIENT)
        request = conn.send(
            h11.Request(method=method.upper(), target=self.prefix + path, headers=items)
        )
        request = (request or b"") + (conn.send(h11.Data(data=data)) or b"" if data else b"")
        request += conn.send(h11.EndOfMessage()) or b""
        try:
            async with asyncio.timeout(self.timeout):
                return await self._exchange(conn, request)
        except TimeoutError:
            raise Timeout(f"no whole response within {self.timeout:g} s") from None

    async def _exchange(self, conn: h11.Connection, request: bytes) -> ClientResponse:
        loop = asyncio.get_running_loop()
        kwargs: dict[str, Any] = {}
        if self.tls:
            from ..tls_config import TLSConfig

            cfg = self.tls_config or TLSConfig()
            name = cfg.server_hostname(self.host)
            kwargs = {"ssl": cfg.client_context(name), "server_hostname": name}
        try:
            tr, pr = await loop.create_connection(
                lambda: _Reader(conn, request), self.host, self.port, **kwargs
            )
        except ConnectionRefusedError as exc:
            raise ConnectionRefused(f"{self.host}:{self.port}: connection refused") from exc
        try:
            resp: ClientResponse | None = None
            body = bytearray()
            while True:
                try:
                    event = conn.next_event()
                except h11.RemoteProtocolError as exc:
                    raise ProtocolError(f"bad HTTP response: {exc}") from exc
                if event is h11.NEED_DATA:
                    if pr.lost and resp is None:
                        raise ConnectionReset("the server closed before answering")
                    pr.changed.clear()
                    await pr.changed.wait()
                    continue
                if isinstance(event, h11.Response):
                    headers: dict[str, str] = {}
                    for k, v in event.headers:
                        key, val = k.decode("latin-1"), v.decode("latin-1")
                        headers[key] = headers[key] + ", " + val if key in headers else val
                    resp = ClientResponse(
                        event.status_code, event.reason.decode("latin-1"), headers
                    )
                elif isinstance(event, h11.Data):
                    body += event.data
                    if len(body) > MAX_BODY:
                        raise ProtocolError(f"response body over {MAX_BODY} bytes")
                elif isinstance(event, h11.EndOfMessage | h11.ConnectionClosed):
                    if resp is None:
                        raise ConnectionReset("the server closed before answering")
                    resp.body = bytes(body)
                    return resp
        finally:
            tr.close()

    async def aget(self, path: str = "/", **kwargs: Any) -> ClientResponse:
        """``GET path`` (see :meth:`arequest`)."""
        return await self.arequest("GET", path, **kwargs)

    async def apost(self, path: str = "/", **kwargs: Any) -> ClientResponse:
        """``POST path`` with ``body=`` or ``json=`` (see :meth:`arequest`)."""
        return await self.arequest("POST", path, **kwargs)

    def request(self, method: str, path: str = "/", **kwargs: Any) -> ClientResponse:
        """Blocking :meth:`arequest` (not from inside a running loop)."""
        return asyncio.run(self.arequest(method, path, **kwargs))

    def get(self, path: str = "/", **kwargs: Any) -> ClientResponse:
        """Blocking :meth:`aget`."""
        return self.request("GET", path, **kwargs)

    def post(self, path: str = "/", **kwargs: Any) -> ClientResponse:
        """Blocking :meth:`apost`."""
        return self.request("POST", path, **kwargs)
