"""The shared HTTP/1.1 server: one listening socket per host and port, many users.

What it is: the engine behind :class:`purenng.http.Server` and behind every
``ws://``/``wss://`` listener.  A :class:`Service` owns one bound address and
routes each request by path to one of:

1. an **SP path** (a ws/wss listener): WebSocket upgrade checks, the 101
   answer, then the connection is handed to the listener's pipe;
2. a **REST route** (``method``, ``path``) with an async handler;
3. a **static mount** (a path prefix served from a directory);
4. otherwise 404.

Rules:

* **Sharing** (NNG's "shared HTTP server instances", wire-protocols.md
  §2.4): the process keeps one service per ``(bind host, port)``.  The first
  user binds it; the next ones join it, in any order: SP listeners and
  :class:`~purenng.http.Server` objects alike.  The last one to leave closes
  the listening socket.  Port 0 always binds a new service, registered
  under the port it got, so later users can join it by that number.
* A service lives on the event loop that bound it; users on another loop
  are refused (:class:`~purenng.core.errors.AddressInUse`, saying why).  A
  plain and a TLS service cannot share a port, and a TLS service keeps the
  TLS context of whoever bound it: a joiner must bring the same
  :class:`~purenng.TLSConfig` object or none.
* An upgrade request for a path nobody registered gets 404 (NNG: the dialer
  sees ECONNREFUSED).  Any request on an SP path that is not a valid SP
  upgrade gets a 4xx (:func:`~purenng.http.upgrade.check_upgrade`).
* **Limits** against slow or hostile clients: headers must arrive within
  ``header_timeout`` (else the connection is closed), bodies within
  ``body_timeout`` (408), a request head over ``max_header_size`` gets 431,
  a body over ``max_body_size`` 413, malformed HTTP 400.  A failing request
  closes its own connection only; handler exceptions answer 500.  The TLS
  handshake is bounded by ``header_timeout`` too.
* **Memory** a client can make a connection hold is bounded, whether or
  not it reads the answers: the next request is read only once the answer
  to the previous one is written out to the transport's low-water mark
  (``pause_writing``/``resume_writing``), and only once the requests
  already received are answered (so at most one read of pipelined requests
  waits).  More than ``max_pipelined`` requests found waiting at once get
  429 and the connection closes.  More than ``max_connections``
  connections that are not (yet) WebSocket get an immediate 503 and are
  closed; upgraded connections do not count.  An answer the client does
  not read for ``send_timeout`` aborts the connection.
* Static files: the decoded path may not leave the mount's directory (no
  ``..``, no NUL, the resolved path, symbolic links followed, must stay
  inside); a directory serves its ``index.html`` and is redirected to its
  name with a trailing slash; content types come from :mod:`mimetypes`.

Theory of operation: each connection is an :class:`asyncio.Protocol` that
feeds an ``h11.Connection`` and handles one request at a time (h11 buffers
pipelined ones).  A handler or a file runs as one task per request; reading
pauses meanwhile, and resumes when h11 needs more data and the transport
takes writes again.  After a 101 the connection object steps aside and the
listener's pipe becomes the transport's protocol (``set_protocol``), with
whatever bytes h11 had read past the request.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import mimetypes
import re
import socket
import stat
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import parse_qsl, unquote

import h11

from ..core.errors import AddressInUse, BadAddress
from ..core.stream_server import SocketServer, listening_socket
from ._types import HTTPError, Request, Response, as_response, status_phrase, text_response
from .upgrade import check_upgrade, is_upgrade_request

if TYPE_CHECKING:
    import ssl
    from collections.abc import Callable, Mapping
    from pathlib import Path

#: Connections waiting to be accepted, as the kernel queues them.
_BACKLOG = 1024

__all__ = [
    "Limits",
    "Service",
    "WSRoute",
    "acquire",
    "bind_host",
    "normalize_prefix",
    "services",
]

log: logging.Logger = logging.getLogger("purenng.http")

#: Files are sent in pieces of this size.
FILE_CHUNK = 256 * 1024


@dataclass
class Limits:
    """Per-service limits against slow and hostile clients.

    Attributes:
        header_timeout: Seconds for a request head to arrive (and for the TLS
            handshake, and for an idle keep-alive connection to send one).
        body_timeout: Seconds for a request body to arrive after its head.
        max_header_size: Largest request head, bytes (431 beyond).
        max_body_size: Largest request body, bytes (413 beyond).
        max_pipelined: Most requests a client may have waiting on one
            connection, received but not yet answered (429 and the
            connection closes beyond).  Few clients pipeline at all; the
            limit stops one from making us answer what it never reads.
        max_connections: Most connections a service holds that are not
            WebSocket (waiting for a request head, or kept alive between
            requests); one more is answered 503 and closed at once.
            Upgraded connections (SP pipes, byte streams) do not count.
        send_timeout: Seconds an answer may stay stuck, the connection's
            write buffer full because the client reads nothing; then the
            connection is aborted (its buffer and its slot freed).
    """

    header_timeout: float = 10.0
    body_timeout: float = 30.0
    max_header_size: int = 16 * 1024
    max_body_size: int = 1 << 20
    max_pipelined: int = 64
    max_connections: int = 1024
    send_timeout: float = 30.0


class WSRoute(Protocol):
    """What a WebSocket path needs to offer the service (the ws listeners implement it).

    ``subprotocol`` None: a byte-stream path that requires none.
    """

    subprotocol: str | None
    response_headers: Mapping[str, str] | None
    loop: asyncio.AbstractEventLoop

    def on_upgrade(self, transport: asyncio.Transport, trailing: bytes) -> None:
        """Take over ``transport`` after the 101 (``trailing``: bytes already read)."""


@dataclass
class _Route:
    method: str
    pattern: str
    regex: re.Pattern[str]
    handler: Any
    owner: object


@dataclass
class _Mount:
    prefix: str
    root: Path
    index: str
    owner: object


def _compile(pattern: str) -> re.Pattern[str]:
    """``/items/{id}`` -> a regex with one named group per ``{name}`` segment."""
    if not pattern.startswith("/"):
        raise ValueError(f"a route path starts with '/': {pattern!r}")
    out = []
    for part in re.split(r"(\{[A-Za-z_][A-Za-z0-9_]*\})", pattern):
        if part.startswith("{") and part.endswith("}"):
            out.append(f"(?P<{part[1:-1]}>[^/]+)")
        else:
            out.append(re.escape(part))
    return re.compile("".join(out) + r"\Z")


def normalize_prefix(prefix: str) -> str:
    """A mount prefix: leading ``/``, no trailing ``/`` (except the root)."""
    if not prefix.startswith("/"):
        prefix = "/" + prefix
    return prefix.rstrip("/") or "/"


class Service:
    """One bound address and its routing tables (see the module header)."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        host: str,
        port: int,
        family: int,
        ssl_context: ssl.SSLContext | None,
        limits: Limits,
    ) -> None:
        self.loop = loop
        self.host = host
        self.requested_port = port
        self.family = family
        self.ssl_context = ssl_context
        self.limits = limits
        self.server: SocketServer | None = None
        self.port: int = port
        self.sockname: Any = None
        self.ready: asyncio.Future[None] = loop.create_future()
        self.closed: bool = False
        self.users: int = 1
        self.ws_routes: dict[str, WSRoute] = {}
        self.routes: list[_Route] = []
        self.mounts: list[_Mount] = []
        self.connections: set[_Connection] = set()

    @property
    def key(self) -> tuple[str, int]:
        """The registry key: bind host and bound port."""
        return (self.host, self.port)

    @property
    def tls(self) -> bool:
        """Whether the service speaks TLS (https and wss)."""
        return self.ssl_context is not None

    async def bind(self, where: str) -> None:
        """Bind and start serving (on :attr:`loop`).

        Raises:
            AddressInUse: the address is taken by something else.
            BadAddress: the host does not resolve or is not local.
        """
        try:
            infos = await self.loop.getaddrinfo(
                self.host,
                self.requested_port,
                family=self.family,
                type=socket.SOCK_STREAM,
                flags=socket.AI_PASSIVE,
            )
        except socket.gaierror as exc:
            raise BadAddress(f"{where}: cannot resolve {self.host!r}: {exc.strerror}") from exc
        # A name with several addresses binds the first (so port 0 means one
        # port), as the tcp transport does.
        sock = listening_socket(infos[0], _BACKLOG, where)
        # purenng's own accept loop, not loop.create_server: when descriptors
        # run out it backs off instead of spinning (core/byte_stream.py).
        server = SocketServer(
            sock,
            lambda: _Connection(self),
            name=where,
            ssl=self.ssl_context,
            ssl_handshake_timeout=self.limits.header_timeout if self.ssl_context else None,
        )
        self.server = server
        self.sockname = server.sockets[0].getsockname()
        self.port = self.sockname[1]

    # ------------------------------------------------------------ routing tables

    def add_ws_route(self, path: str, route: WSRoute, where: str) -> None:
        """Serve SP over WebSocket at ``path``.

        Raises:
            AddressInUse: another SP socket already listens on ``path``.
        """
        if path in self.ws_routes:
            raise AddressInUse(f"{where}: another socket already listens on path {path!r}")
        if any(r.regex.match(path) for r in self.routes):
            raise AddressInUse(f"{where}: path {path!r} is taken by an HTTP route")
        self.ws_routes[path] = route

    def remove_ws_route(self, path: str, route: WSRoute) -> None:
        """Stop serving SP at ``path`` (if ``route`` still holds it)."""
        if self.ws_routes.get(path) is route:
            del self.ws_routes[path]

    def add_route(self, method: str, pattern: str, handler: Any, owner: object) -> None:
        """Route ``method`` requests matching ``pattern`` to ``handler``.

        Raises:
            ValueError: the pattern is malformed or already routed for ``method``.
        """
        method = method.upper()
        regex = _compile(pattern)
        for r in self.routes:
            if r.method == method and r.pattern == pattern:
                raise ValueError(f"{method} {pattern} is already routed")
        self.routes.append(_Route(method, pattern, regex, handler, owner))

    def add_mount(self, prefix: str, root: Path, index: str, owner: object) -> None:
        """Serve files under ``root`` at ``prefix``."""
        prefix = normalize_prefix(prefix)
        self.mounts = [m for m in self.mounts if m.prefix != prefix]
        self.mounts.append(_Mount(prefix, root, index, owner))
        # Longest prefix first.
        self.mounts.sort(key=lambda m: len(m.prefix), reverse=True)

    def remove_owner(self, owner: object) -> None:
        """Drop the routes and mounts ``owner`` added."""
        self.routes = [r for r in self.routes if r.owner is not owner]
        self.mounts = [m for m in self.mounts if m.owner is not owner]

    # ------------------------------------------------------------ lifetime

    def release(self) -> None:
        """One user leaves; the last one closes the service (on its loop)."""
        with _lock:
            self.users -= 1
            last = self.users <= 0
            if last and _services.get(self.key) is self:
                del _services[self.key]
        if last:
            self.close()

    def close(self) -> None:
        """Stop listening and close idle HTTP connections (upgraded ones live on)."""
        if self.closed:
            return
        self.closed = True
        if self.server is not None:
            self.server.close()
        for conn in list(self.connections):
            conn.abort()
        self.connections.clear()


# ---------------------------------------------------------------- registry

_lock = threading.Lock()
_services: dict[tuple[str, int], Service] = {}


def services() -> list[Service]:
    """The services of this process (for diagnostics and tests)."""
    with _lock:
        return list(_services.values())


def bind_host(host: str, family: int) -> str:
    """The address to bind for a URL host ('' and '*' mean every interface)."""
    if host in ("", "*"):
        return "::" if family == socket.AF_INET6 else "0.0.0.0"
    return host.lower()


async def acquire(
    host: str,
    port: int,
    *,
    family: int = socket.AF_UNSPEC,
    ssl_context: ssl.SSLContext | None = None,
    limits: Limits | None = None,
    where: str,
) -> Service:
    """The service for ``host:port``: joined if it exists, else bound now.

    Call on the loop the caller's sockets live on; call :meth:`Service.release`
    once done with it.

    Args:
        host: The bind host (see :func:`bind_host`).
        port: The port; 0 binds a new service on a free port.
        family: Address family for binding.
        ssl_context: The server TLS context, None for plain HTTP/ws.
        limits: Limits for a new service (a joined one keeps its own unless given).
        where: The URL or name of the caller, for error messages.

    Raises:
        AddressInUse: the port is served on another loop, with or without TLS
            unlike this request, or bound by someone else.
        BadAddress: the host cannot be bound.
    """
    loop = asyncio.get_running_loop()
    if port == 0:
        svc = Service(loop, host, 0, family, ssl_context, limits or Limits())
        await _bind_new(svc, where, None)
        return svc
    key = (host, port)
    with _lock:
        found = _services.get(key)
        if found is None or found.closed:
            svc = Service(loop, host, port, family, ssl_context, limits or Limits())
            _services[key] = svc
        else:
            _check_join(found, loop, ssl_context, where)
            found.users += 1
    if found is None or found.closed:
        await _bind_new(svc, where, key)
        return svc
    try:
        # Bound by another user that may still be binding: wait for it.
        await asyncio.shield(found.ready)
    except BaseException:
        with _lock:
            found.users -= 1
        raise
    if limits is not None:
        found.limits = limits
    return found


async def _bind_new(svc: Service, where: str, key: tuple[str, int] | None) -> None:
    """Bind a new service; register it under its bound port (and drop ``key`` on failure)."""
    try:
        await svc.bind(where)
    except BaseException as exc:
        with _lock:
            if key is not None and _services.get(key) is svc:
                del _services[key]
        svc.closed = True
        if isinstance(exc, asyncio.CancelledError):
            svc.ready.cancel()
        else:
            svc.ready.set_exception(exc)
            svc.ready.exception()  # marked retrieved: joiners re-raise it themselves
        raise
    svc.ready.set_result(None)
    with _lock:
        _services[svc.key] = svc


def _check_join(
    svc: Service, loop: asyncio.AbstractEventLoop, ssl_context: ssl.SSLContext | None, where: str
) -> None:
    if svc.loop is not loop:
        raise AddressInUse(
            f"{where}: {svc.host}:{svc.port} is served by an HTTP server on another event "
            "loop; sockets and servers sharing a port must live on the same loop"
        )
    if (ssl_context is None) != (svc.ssl_context is None):
        have = "TLS (https/wss)" if svc.tls else "plain HTTP (http/ws)"
        raise AddressInUse(f"{where}: {svc.host}:{svc.port} already serves {have}")
    if ssl_context is not None and ssl_context is not svc.ssl_context:
        raise AddressInUse(
            f"{where}: {svc.host}:{svc.port} already serves TLS with another TLSConfig; "
            "give every user of a shared port the same TLSConfig object"
        )


# ---------------------------------------------------------------- one connection


class _Connection(asyncio.Protocol):
    """One HTTP/1.1 connection of a service (see the module header)."""

    def __init__(self, svc: Service) -> None:
        self.svc = svc
        self.h11 = h11.Connection(h11.SERVER, max_incomplete_event_size=svc.limits.max_header_size)
        self.tr: asyncio.Transport | None = None
        self.busy = False
        self.closed = False
        self.detached = False
        self.request: h11.Request | None = None
        self.body = bytearray()
        self.timer: asyncio.TimerHandle | None = None
        # Runs while the transport takes no writes (send_timeout); kept
        # through close(), which waits for the buffer to drain.
        self.stall_timer: asyncio.TimerHandle | None = None
        self.task: asyncio.Task[None] | None = None
        self.peer: Any = None
        # Bytes of the next request head have arrived (for the header timeout).
        self.partial = False
        # Reading paused by us (a request is being answered).
        self.reading_paused = False
        # Requests taken from what h11 had buffered, since it last ran dry.
        self.pipelined = 0
        # The next request waits for the transport to take writes again.
        self.blocked = False
        self._writable = asyncio.Event()
        self._writable.set()

    # ------------------------------------------------------------ asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.tr = transport  # type: ignore[assignment]
        self.peer = transport.get_extra_info("peername")
        svc = self.svc
        if svc.closed:
            transport.close()
            return
        if len(svc.connections) >= svc.limits.max_connections:
            # Refused before reading anything: answered at once (a dialer
            # sees "HTTP 503"), so they cost no timer and no parser.
            self.closed = True
            log.debug(
                "http %s: over max_connections (%d); refused", self.peer, len(svc.connections)
            )
            transport.write(_TOO_MANY_CONNECTIONS)  # type: ignore[attr-defined]
            transport.close()
            return
        svc.connections.add(self)
        self._arm(svc.limits.header_timeout, self._header_timed_out)

    def data_received(self, data: bytes) -> None:
        if self.closed or self.detached:
            return
        self.partial = True
        try:
            self.h11.receive_data(data)
        except RuntimeError:  # data after we decided to close
            return
        self._process()

    def eof_received(self) -> bool:
        if not (self.closed or self.detached):
            try:
                self.h11.receive_data(b"")
            except RuntimeError:
                pass
            self._process()
        # Keep the transport open while a response is on its way (TLS has no
        # half-close: asyncio would only warn).
        return self.busy and not self.svc.tls

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._disarm()
        if self.stall_timer is not None:
            self.stall_timer.cancel()
            self.stall_timer = None
        if self.task is not None and not self.task.done():
            self.task.cancel()
        self.svc.connections.discard(self)
        self._writable.set()

    def pause_writing(self) -> None:
        self._writable.clear()
        if self.stall_timer is None and not self.detached:
            self.stall_timer = self.svc.loop.call_later(
                self.svc.limits.send_timeout, self._send_timed_out
            )

    def resume_writing(self) -> None:
        self._writable.set()
        if self.stall_timer is not None:
            self.stall_timer.cancel()
            self.stall_timer = None
        if self.blocked:
            # The answer is out (to the low-water mark): the next request.
            self.blocked = False
            self.svc.loop.call_soon(self._process)

    # ------------------------------------------------------------ timers

    def _arm(self, delay: float, cb: Callable[[], None]) -> None:
        self._disarm()
        self.timer = self.svc.loop.call_later(delay, cb)

    def _disarm(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def _header_timed_out(self) -> None:
        self.timer = None
        if not (self.closed or self.detached or self.busy):
            log.debug("http %s: no complete request head in time; closing", self.peer)
            if self.partial:
                self.busy = True
                self._send_error(408, "the request head did not arrive in time")
            else:
                self.close()  # an idle keep-alive connection: nothing to answer

    def _send_timed_out(self) -> None:
        self.stall_timer = None
        if not self.detached:
            log.debug("http %s: our answer was not read for send_timeout; aborting", self.peer)
            self.abort()

    def _body_timed_out(self) -> None:
        self.timer = None
        if not (self.closed or self.detached or self.busy):
            self.busy = True
            self._send_error(408, "the request body did not arrive in time")

    # ------------------------------------------------------------ request cycle

    def _process(self) -> None:
        conn = self.h11
        while not (self.busy or self.closed or self.detached):
            if not self._writable.is_set():
                # The peer is not reading our answers: take no new request
                # until it does (resume_writing continues here).
                self.blocked = True
                if not self.reading_paused and self.tr is not None:
                    self.reading_paused = True
                    self.tr.pause_reading()
                return
            try:
                event = conn.next_event()
            except h11.RemoteProtocolError as exc:
                self.busy = True
                status = exc.error_status_hint
                self._send_error(status, f"bad request: {exc}")
                return
            if event is h11.NEED_DATA:
                # All that was buffered is handled: read again.
                self.pipelined = 0
                if self.reading_paused and self.tr is not None:
                    self.reading_paused = False
                    self.tr.resume_reading()
                return
            if event is h11.PAUSED:
                return
            if isinstance(event, h11.Request):
                self.pipelined += 1
                if self.pipelined > self.svc.limits.max_pipelined:
                    self.busy = True
                    self._send_error(429, "too many pipelined requests")
                    return
                self._got_head(event)
            elif isinstance(event, h11.Data):
                self.body += event.data
                if len(self.body) > self.svc.limits.max_body_size:
                    self.busy = True
                    self._send_error(413, "request body too large")
                    return
            elif isinstance(event, h11.EndOfMessage):
                self._disarm()
                self.busy = True
                if self.tr is not None and not self.reading_paused:
                    self.reading_paused = True
                    self.tr.pause_reading()
                self._dispatch()
                # One request per callback, even when the answer was written
                # at once: the next one comes from _next_cycle's call_soon, so
                # a client pipelining thousands cannot hold the loop.
                return
            elif isinstance(event, h11.ConnectionClosed):
                self.close()
                return

    def _got_head(self, event: h11.Request) -> None:
        self.request = event
        self.body = bytearray()
        limits = self.svc.limits
        # h11 bounds only a head still incomplete; one that arrives whole in
        # one read is measured here.
        size = len(event.method) + len(event.target) + 12
        size += sum(len(k) + len(v) + 4 for k, v in event.headers.raw_items())
        if size > limits.max_header_size:
            self.busy = True
            self._send_error(431, "request head too large")
            return
        self._arm(limits.body_timeout, self._body_timed_out)
        length = None
        for name, value in event.headers:
            if name == b"content-length":
                length = int(value)
        if length is not None and length > limits.max_body_size:
            self.busy = True
            self._send_error(413, "request body too large")
            return
        if self.h11.they_are_waiting_for_100_continue:
            self._write(h11.InformationalResponse(status_code=100, headers=[]))

    def _dispatch(self) -> None:
        req = self.request
        assert req is not None
        target = req.target.decode("ascii", "replace")
        raw_path, _, query = target.partition("?")
        try:
            path = unquote(raw_path, errors="strict")
        except UnicodeDecodeError:
            self._send_error(400, "the path is not valid UTF-8 after percent-decoding")
            return
        if "\x00" in path or not path.startswith("/"):
            self._send_error(400, "malformed path")
            return
        svc = self.svc
        ws = svc.ws_routes.get(path)
        if ws is not None:
            self._upgrade(req, ws)
            return
        if is_upgrade_request(req):
            self._send_error(404, f"no SP endpoint at {path}")
            return
        method = req.method.decode("ascii")
        allowed: list[str] = []
        for route in svc.routes:
            m = route.regex.match(path)
            if m is None:
                continue
            if route.method != method and not (route.method == "GET" and method == "HEAD"):
                allowed.append(route.method)
                continue
            request = self._make_request(method, target, path, query, m.groupdict())
            self._spawn(self._run_handler(route.handler, request))
            return
        if allowed:
            self._send_error(405, "method not allowed", [(b"Allow", ", ".join(allowed).encode())])
            return
        for mount in svc.mounts:
            rel = _under(mount.prefix, path)
            if rel is not None:
                self._spawn(self._serve_file(mount, rel, path, method))
                return
        self._send_error(404, f"nothing at {path}", close=False)

    def _make_request(
        self, method: str, target: str, path: str, query: str, params: dict[str, str]
    ) -> Request:
        req = self.request
        assert req is not None
        headers: dict[str, str] = {}
        for name, value in req.headers:
            k = name.decode("latin-1")
            v = value.decode("latin-1")
            headers[k] = headers[k] + ", " + v if k in headers else v
        return Request(
            method=method,
            target=target,
            path=path,
            query=dict(parse_qsl(query, keep_blank_values=True)),
            query_string=query,
            headers=headers,
            body=bytes(self.body),
            client=self.peer,
            path_params=params,
        )

    def _spawn(self, coro: Any) -> None:
        self.task = self.svc.loop.create_task(coro)

    # ------------------------------------------------------------ the WebSocket upgrade

    def _upgrade(self, req: h11.Request, route: WSRoute) -> None:
        answer = check_upgrade(req, route.subprotocol, route.response_headers)
        if not answer.accepted:
            self._send_response(answer.status, answer.body, answer.headers, close=True)
            return
        tr = self.tr
        assert tr is not None
        data = self.h11.send(
            h11.InformationalResponse(
                status_code=101, headers=answer.headers, reason=b"Switching Protocols"
            )
        )
        trailing, eof = self.h11.trailing_data
        self.detached = True
        self._disarm()
        self.svc.connections.discard(self)
        if data:
            tr.write(data)
        if eof:
            tr.close()
            return
        try:
            # Reading stays paused: the listener's pipe resumes it once admitted.
            route.on_upgrade(tr, trailing)
        except Exception:
            log.exception(
                "http %s: the SP listener failed to take an upgraded connection", self.peer
            )
            tr.abort()

    # ------------------------------------------------------------ responses

    async def _run_handler(self, handler: Any, request: Request) -> None:
        try:
            result = handler(request)
            if inspect.isawaitable(result):
                result = await result
            resp = as_response(result)
        except HTTPError as exc:
            resp = text_response(exc.message + "\n", exc.status, exc.headers)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception(
                "http %s: handler for %s %s failed", self.peer, request.method, request.path
            )
            resp = text_response("internal server error\n", 500)
        await self._send_full(resp, head=request.method == "HEAD")

    async def _serve_file(self, mount: _Mount, rel: str, path: str, method: str) -> None:
        if method not in ("GET", "HEAD"):
            self._send_error(405, "method not allowed", [(b"Allow", b"GET, HEAD")], close=False)
            return
        target = _resolve(mount.root, rel)
        if target is None:
            self._send_error(404, f"nothing at {path}", close=False)
            return
        loop = self.svc.loop
        try:
            kind, size = await loop.run_in_executor(None, _stat, target)
        except OSError:
            kind, size = "missing", 0
        if kind == "dir":
            if not path.endswith("/"):
                self._send_response(301, b"", [(b"Location", (path + "/").encode("utf-8"))])
                return
            target = target / mount.index
            try:
                kind, size = await loop.run_in_executor(None, _stat, target)
            except OSError:
                kind = "missing"
        if kind != "file":
            self._send_error(404, f"nothing at {path}", close=False)
            return
        ctype, encoding = mimetypes.guess_type(target.name)
        ctype = ctype or "application/octet-stream"
        if ctype.startswith("text/") or ctype in ("application/javascript", "application/json"):
            ctype += "; charset=utf-8"
        headers = [(b"Content-Type", ctype.encode()), (b"Content-Length", str(size).encode())]
        if encoding:
            headers.append((b"Content-Encoding", encoding.encode()))
        # Each piece is read by a job that opens and closes the file itself: no
        # file object is left open when the task is cancelled mid-transfer.
        try:
            chunk = await loop.run_in_executor(None, _read_at, target, 0, min(FILE_CHUNK, size))
        except OSError:
            self._send_error(404, f"nothing at {path}", close=False)
            return
        self._write(h11.Response(status_code=200, headers=headers, reason=b"OK"))
        sent = 0
        while method == "GET" and sent < size and not self.closed:
            if not chunk:
                self.abort()  # the file shrank: end the connection short
                return
            sent += len(chunk)
            self._write(h11.Data(data=chunk))
            await self._writable.wait()
            if sent < size:
                try:
                    chunk = await loop.run_in_executor(
                        None, _read_at, target, sent, min(FILE_CHUNK, size - sent)
                    )
                except OSError:
                    chunk = b""
        if self.closed:
            return
        self._write(h11.EndOfMessage())
        self._next_cycle()

    async def _send_full(self, resp: Response, *, head: bool) -> None:
        if self.closed:
            return
        headers = resp.header_list()
        headers.append((b"Content-Length", str(len(resp.body)).encode()))
        self._write(
            h11.Response(
                status_code=resp.status,
                headers=headers,
                reason=status_phrase(resp.status).encode(),
            )
        )
        if resp.body and not head and resp.status not in (204, 304):
            self._write(h11.Data(data=resp.body))
        self._write(h11.EndOfMessage())
        await self._writable.wait()
        self._next_cycle()

    def _send_error(
        self,
        status: int,
        text: str,
        headers: list[tuple[bytes, bytes]] | None = None,
        *,
        close: bool = True,
    ) -> None:
        body = (text + "\n").encode("utf-8")
        hdrs = [(b"Content-Type", b"text/plain; charset=utf-8"), *(headers or [])]
        self._send_response(status, body, hdrs, close=close)

    def _send_response(
        self,
        status: int,
        body: bytes,
        headers: list[tuple[bytes, bytes]],
        *,
        close: bool = False,
    ) -> None:
        """A whole response at once; with ``close`` the connection ends after it."""
        if self.closed:
            return
        hdrs = [*headers, (b"Content-Length", str(len(body)).encode())]
        if close:
            hdrs.append((b"Connection", b"close"))
        try:
            self._write(
                h11.Response(
                    status_code=status, headers=hdrs, reason=status_phrase(status).encode()
                )
            )
            req = self.request
            if body and not (req is not None and req.method == b"HEAD"):
                self._write(h11.Data(data=body))
            self._write(h11.EndOfMessage())
        except h11.LocalProtocolError:
            self.abort()  # h11 cannot answer in this state: just close
            return
        self._next_cycle()

    def _write(self, event: Any) -> None:
        data = self.h11.send(event)
        if data and self.tr is not None and not self.closed:
            self.tr.write(data)

    def _next_cycle(self) -> None:
        """The response is out: keep the connection for the next request, or close it."""
        if self.closed:
            return
        conn = self.h11
        if conn.our_state is h11.DONE and conn.their_state is h11.DONE:
            conn.start_next_cycle()
            self.busy = False
            self.partial = False
            self.request = None
            self.body = bytearray()
            self._arm(self.svc.limits.header_timeout, self._header_timed_out)
            # From a callback: pipelined requests must not recurse.  Reading
            # resumes there, once h11 has nothing buffered left.
            self.svc.loop.call_soon(self._process)
        else:
            self.close()

    def close(self) -> None:
        """Close after what is written (idempotent)."""
        if self.closed:
            return
        self.closed = True
        self._disarm()
        self.svc.connections.discard(self)
        if self.tr is not None:
            self.tr.close()

    def abort(self) -> None:
        """Close at once."""
        self.closed = True
        self._disarm()
        if self.tr is not None:
            self.tr.abort()


#: The answer to a connection over ``max_connections``.
_TOO_MANY_CONNECTIONS = (
    b"HTTP/1.1 503 Service Unavailable\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"Content-Length: 21\r\n"
    b"Connection: close\r\n"
    b"\r\n"
    b"too many connections\n"
)


def _under(prefix: str, path: str) -> str | None:
    """``path`` relative to a mount ``prefix``, or None when outside it."""
    if prefix == "/":
        return path[1:]
    if path == prefix:
        return ""
    if path.startswith(prefix + "/"):
        return path[len(prefix) + 1 :]
    return None


def _resolve(root: Path, rel: str) -> Path | None:
    """The file for ``rel`` under ``root``, or None if it would leave ``root``."""
    parts = [p for p in rel.split("/") if p not in ("", ".")]
    if any(p == ".." or "\\" in p for p in parts):
        return None
    try:
        candidate = root.joinpath(*parts).resolve()
    except (OSError, RuntimeError, ValueError):
        return None
    if candidate != root and not candidate.is_relative_to(root):
        return None
    return candidate


def _read_at(path: Path, offset: int, n: int) -> bytes:
    with path.open("rb") as f:
        f.seek(offset)
        return f.read(n)


def _stat(path: Path) -> tuple[str, int]:
    st = path.stat()
    if stat.S_ISDIR(st.st_mode):
        return "dir", 0
    if stat.S_ISREG(st.st_mode):
        return "file", st.st_size
    return "other", 0
