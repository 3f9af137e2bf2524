"""``purenng.http.Server``: static files, REST handlers and SP sockets on one port.

A :class:`Server` is a user of the process' shared HTTP service for its host
and port (:mod:`purenng.http.service`).  SP sockets that listen on
``ws://host:port/path`` (or ``wss://``) join the same service, so one port
carries everything, whichever starts first::

    srv = purenng.http.Server("127.0.0.1", 8080)
    srv.static("/", "site/")

    @srv.route("GET", "/api/status")
    async def status(request):
        return {"ok": True}                       # -> JSON

    async with srv:
        async with purenng.Pair0() as chat:
            await chat.alisten(srv.sp_url("/chat"))   # ws://127.0.0.1:8080/chat
            ...

Rules:

* Made inside a running loop, a server runs there (``async with`` or
  :meth:`astart`); made elsewhere, :meth:`start` runs it on purenng's
  background loop, where sockets made outside a loop live too.  Sockets
  sharing its port must live on the same loop.
* Routes and mounts may be added before or after starting; closing removes
  them, and the listening socket closes once its last user (server or SP
  listener) is gone.
* A handler is ``async def handler(request) -> Response | dict | list | str
  | bytes | None`` (plain functions work too).  ``{name}`` segments of its
  path are in ``request.path_params``.  ``HEAD`` is answered by ``GET``
  routes.
* TLS: give ``tls_config`` (a :class:`purenng.TLSConfig` with a
  certificate); the server then speaks https and its SP paths wss.
"""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..core.errors import BadOption, BadState
from ..core.loop import background_loop, run_sync
from .service import Limits, Service, acquire, bind_host, normalize_prefix

if TYPE_CHECKING:
    from collections.abc import Callable
    from types import TracebackType

    from ..core.endpoint import Listener
    from ..core.socket import Socket
    from ..tls_config import TLSConfig

__all__ = ["Server"]


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


class Server:
    """An HTTP/1.1 server whose port SP sockets can share.

    Args:
        host: Address to bind; ``""``, ``"*"`` or ``"0.0.0.0"`` for every
            IPv4 interface, ``"::"`` for IPv6.
        port: Port to bind; 0 picks a free one (read :attr:`port`).
        tls_config: Serve https/wss with this :class:`purenng.TLSConfig`.
        header_timeout: Seconds a client has to send a request head (and to
            finish the TLS handshake); slower clients are disconnected.
        body_timeout: Seconds a client has to send a request body (408).
        max_header_size: Largest request head in bytes (431).
        max_body_size: Largest request body in bytes (413).
        max_pipelined: Most requests a client may have waiting on one
            connection before it reads the answers (429, then closed).
        max_connections: Most HTTP connections at once that are not
            WebSocket; one more is answered 503 and closed at once.
        send_timeout: Seconds an answer may wait for a client that reads
            nothing (the write buffer full); then the connection is aborted.

    Raises:
        BadOption: a limit is not a positive number.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        tls_config: TLSConfig | None = None,
        header_timeout: float = 10.0,
        body_timeout: float = 30.0,
        max_header_size: int = 16 * 1024,
        max_body_size: int = 1 << 20,
        max_pipelined: int = 64,
        max_connections: int = 1024,
        send_timeout: float = 30.0,
    ) -> None:
        for name, value in (
            ("header_timeout", header_timeout),
            ("body_timeout", body_timeout),
            ("max_header_size", max_header_size),
            ("max_body_size", max_body_size),
            ("max_pipelined", max_pipelined),
            ("max_connections", max_connections),
            ("send_timeout", send_timeout),
        ):
            if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
                raise BadOption(f"{name} must be a positive number, not {value!r}")
        if not isinstance(port, int) or not 0 <= port <= 65535:
            raise BadOption(f"port must be in 0..65535, not {port!r}")
        if tls_config is not None:
            from ..tls_config import tls_config_value

            if not tls_config.has_certificate:
                raise BadOption("tls_config needs a certificate to serve https")
            tls_config_value(tls_config)  # loads the files now: errors here, not at start
        self.host = host
        self.tls_config = tls_config
        self._port = port
        self._limits = Limits(
            header_timeout=float(header_timeout),
            body_timeout=float(body_timeout),
            max_header_size=int(max_header_size),
            max_body_size=int(max_body_size),
            max_pipelined=int(max_pipelined),
            max_connections=int(max_connections),
            send_timeout=float(send_timeout),
        )
        self._svc: Service | None = None
        self._routes: list[tuple[str, str, Any]] = []
        self._mounts: list[tuple[str, Path, str]] = []
        self.closed: bool = False

    # ------------------------------------------------------------ configuration

    def static(self, prefix: str, directory: str | Path, *, index: str = "index.html") -> None:
        """Serve the files under ``directory`` at URL path ``prefix``.

        Nothing outside ``directory`` is ever served (``..``, encoded
        variants and symbolic links that point out are refused with 404).

        Raises:
            ValueError: ``directory`` is not a directory.
        """
        root = Path(directory).resolve()
        if not root.is_dir():
            raise ValueError(f"{directory!s} is not a directory")
        prefix = normalize_prefix(prefix)
        self._mounts.append((prefix, root, index))
        if self._svc is not None:
            self._svc.add_mount(prefix, root, index, self)

    def add_route(self, method: str, path: str, handler: Callable[..., Any]) -> None:
        """Answer ``method`` requests for ``path`` with ``handler`` (see the module header).

        Raises:
            ValueError: the path is malformed or already routed for ``method``.
        """
        self._routes.append((method.upper(), path, handler))
        if self._svc is not None:
            self._svc.add_route(method, path, handler, self)

    def route(self, method: str, path: str) -> Callable[[Any], Any]:
        """Decorator form of :meth:`add_route`."""

        def register(handler: Any) -> Any:
            self.add_route(method, path, handler)
            return handler

        return register

    # ------------------------------------------------------------ addresses

    @property
    def port(self) -> int:
        """The bound port (the one asked for until started)."""
        return self._svc.port if self._svc is not None else self._port

    @property
    def loop(self) -> asyncio.AbstractEventLoop | None:
        """The loop the server runs on, once started."""
        return self._svc.loop if self._svc is not None else None

    def _shown_host(self) -> str:
        host = self.host
        if host in ("", "*", "0.0.0.0"):
            host = "127.0.0.1"
        elif host == "::":
            host = "::1"
        return f"[{host}]" if ":" in host else host

    @property
    def url(self) -> str:
        """``http(s)://host:port`` for clients (a wildcard host shown as loopback)."""
        scheme = "https" if self.tls_config is not None else "http"
        return f"{scheme}://{self._shown_host()}:{self.port}"

    def sp_url(self, path: str) -> str:
        """The ``ws://`` (or ``wss://``) URL an SP socket listens on to serve ``path`` here."""
        if not path.startswith("/"):
            path = "/" + path
        scheme = "wss" if self.tls_config is not None else "ws"
        host = self.host if self.host not in ("", "*") else ""
        shown = f"[{host}]" if ":" in host else host
        return f"{scheme}://{shown}:{self.port}{path}"

    async def alisten_sp(self, sock: Socket, path: str, **options: Any) -> Listener:
        """Make ``sock`` serve SP at ``path`` on this server (``tls_config`` passed on)."""
        if self.tls_config is not None:
            options.setdefault("tls_config", self.tls_config)
        return await sock.alisten(self.sp_url(path), **options)

    def listen_sp(self, sock: Socket, path: str, **options: Any) -> Listener:
        """Blocking form of :meth:`alisten_sp`."""
        if self.tls_config is not None:
            options.setdefault("tls_config", self.tls_config)
        return sock.listen(self.sp_url(path), **options)

    # ------------------------------------------------------------ lifetime

    async def astart(self) -> Server:
        """Bind (or join the service already on this host and port) and serve.

        Raises:
            AddressInUse: the port is taken, or served on another loop or
                with other TLS settings.
            BadState: already started or closed.
        """
        if self.closed or self._svc is not None:
            raise BadState("the server was already started" if self._svc else "server closed")
        family = socket.AF_INET6 if ":" in self.host else socket.AF_UNSPEC
        ctx = self.tls_config.server_context() if self.tls_config is not None else None
        svc = await acquire(
            bind_host(self.host, family),
            self._port,
            family=family,
            ssl_context=ctx,
            limits=self._limits,
            where=f"http server {self.host}:{self._port}",
        )
        try:
            for method, path, handler in self._routes:
                svc.add_route(method, path, handler, self)
            for prefix, root, index in self._mounts:
                svc.add_mount(prefix, root, index, self)
        except BaseException:
            svc.remove_owner(self)
            svc.release()
            raise
        self._svc = svc
        return self

    def start(self) -> Server:
        """Start on purenng's background loop (call from outside any loop)."""
        return run_sync(background_loop(), self.astart(), "start")

    async def aclose(self) -> None:
        """Remove this server's routes; the port closes with its last user."""
        svc = self._svc
        if svc is not None and _running_loop() is not svc.loop:
            await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(self.aclose(), svc.loop))
            return
        self._close_now()

    def close(self) -> None:
        """Blocking form of :meth:`aclose` (any thread but the server's loop)."""
        svc = self._svc
        if svc is None or self.closed:
            self.closed = True
            return
        if _running_loop() is svc.loop:
            self._close_now()
        else:
            run_sync(svc.loop, self.aclose(), "close")

    def _close_now(self) -> None:
        if self.closed:
            return
        self.closed = True
        svc = self._svc
        if svc is not None:
            svc.remove_owner(self)
            svc.release()

    async def __aenter__(self) -> Server:
        return await self.astart()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    def __enter__(self) -> Server:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self.closed else ("serving" if self._svc else "not started")
        return f"<purenng.http.Server {self.url} {state}>"
