"""The tcp transport: ``tcp://``, ``tcp4://``, ``tcp6://``.

URL forms (``reference/wire-protocols.md`` §3.2):

* ``tcp://127.0.0.1:5555``, ``tcp://[::1]:5555``, ``tcp://host.name:5555``;
* listeners accept a wildcard host: empty (``tcp://:5555``, NNG's form), ``*``
  (nanomsg's and NNG 1.x's form), ``0.0.0.0`` or ``[::]``; port 0 binds a free
  port, readable as ``listener.port`` and in ``listener.url``;
* ``tcp4://`` and ``tcp6://`` restrict the address family.

Options: ``tcp_nodelay`` (default True, as NNG) and ``tcp_keepalive``
(default False).  The stream is a plain asyncio connection; SP framing is the
shared adapter's job.  Mirrors NNG's ``src/sp/transport/tcp/tcp.c``.

:func:`connect` and :func:`bind_listener` hold the socket work (address
family, wildcard hosts, port 0 read back, errors mapped to purenng's) so
that transports layered on TCP (tls) pass only their extra arguments.
"""

from __future__ import annotations

import asyncio
import errno
import socket
from typing import TYPE_CHECKING, Any, ClassVar

from ..plugin import (
    AsyncioStream,
    AsyncioStreamListener,
    BadAddress,
    ConnectionRefused,
    OptionSpec,
    StreamProtocol,
    StreamTransport,
    boolean,
    hookimpl,
    listening_socket,
    parse_host_port,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from ..plugin import URL, HostPort, Registry

__all__ = ["TCPTransport", "bind_listener", "connect"]

#: The purenng plugin API this module is written for (purenng.plugin.API_VERSION).
PURENNG_PLUGIN_API: str = "1.0"

_FAMILY = {"tcp": socket.AF_UNSPEC, "tcp4": socket.AF_INET, "tcp6": socket.AF_INET6}
#: Listen backlog; the kernel caps it at ``somaxconn``.
BACKLOG = 4096


def _apply_options(transport: asyncio.BaseTransport, options: Mapping[str, Any]) -> None:
    sock = transport.get_extra_info("socket")
    if sock is None:
        return
    try:
        sock.setsockopt(
            socket.IPPROTO_TCP, socket.TCP_NODELAY, 1 if options.get("tcp_nodelay", True) else 0
        )
        if options.get("tcp_keepalive", False):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    except OSError:
        pass  # the connection is already gone; the pipe will notice


def _format_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


async def connect(
    url: URL,
    hp: HostPort,
    family: int,
    translate: Callable[[OSError], BaseException | None] | None = None,
    **kwargs: Any,
) -> tuple[asyncio.Transport, StreamProtocol]:
    """Open a connection to ``hp`` (``kwargs`` go to ``create_connection``).

    ``translate`` may turn an error into a more telling one first (tls: a
    failed handshake); a refused connection raises :class:`ConnectionRefused`.
    """
    loop = asyncio.get_running_loop()
    try:
        return await loop.create_connection(
            StreamProtocol, hp.host, hp.port, family=family, **kwargs
        )
    except socket.gaierror as exc:
        raise BadAddress(f"{url.raw!r}: cannot resolve {hp.host!r}: {exc.strerror}") from exc
    except OSError as exc:
        err = translate(exc) if translate is not None else None
        if err is not None:
            raise err from exc
        if exc.errno == errno.ECONNREFUSED or f"[Errno {errno.ECONNREFUSED}]" in str(exc):
            raise ConnectionRefused(f"{url.raw}: connection refused") from exc
        raise


async def bind_listener(
    lst: AsyncioStreamListener, url: URL, hp: HostPort, family: int, **kwargs: Any
) -> None:
    """Serve ``lst`` on ``hp``; its URL then names the bound port (port 0: the one chosen).

    A wildcard host binds every address of the family (IPv4 when the scheme
    allows both); a name that resolves to several addresses binds the first,
    so that port 0 means one port.  ``kwargs`` go to
    :meth:`AsyncioStreamListener.serve` (tls: ``ssl=...``).  The socket is
    made here, as ``create_server`` would (``SO_REUSEADDR``, ``IPV6_V6ONLY``,
    a :data:`BACKLOG` of 4096), because purenng runs its own accept loop
    (:class:`~purenng.core.stream_server.SocketServer`: no busy loop when
    descriptors run out).
    """
    host: str = hp.host
    if hp.wildcard:
        host = "::" if family == socket.AF_INET6 else "0.0.0.0"
        if family == socket.AF_UNSPEC:
            family = socket.AF_INET
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(
            host, hp.port, family=family, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
    except socket.gaierror as exc:
        raise BadAddress(f"{url.raw!r}: cannot resolve {hp.host!r}: {exc.strerror}") from exc
    if not infos:  # pragma: no cover - getaddrinfo raises instead
        raise BadAddress(f"{url.raw!r}: {hp.host!r} has no address")
    # As asyncio: no dual-stack socket, tcp6 means IPv6 only.
    sock = listening_socket(infos[0], BACKLOG, url.raw)
    bound = sock.getsockname()
    shown = _format_host(hp.host) if hp.host not in ("", "*") else hp.host
    lst._url = f"{url.scheme}://{shown}:{bound[1]}"
    try:
        lst.serve(sock, **kwargs)
    except BaseException:
        sock.close()
        raise


class _TCPListener(AsyncioStreamListener):
    def __init__(self, url: str, options: Mapping[str, Any]) -> None:
        super().__init__(url)
        self._options = options

    def make_stream(self, transport: asyncio.Transport, protocol: StreamProtocol) -> AsyncioStream:
        _apply_options(transport, self._options)
        return AsyncioStream(transport, protocol)


class TCPTransport(StreamTransport):
    """TCP over IPv4 and IPv6."""

    schemes: ClassVar[tuple[str, ...]] = ("tcp", "tcp4", "tcp6")
    option_prefix = "tcp"
    option_specs: ClassVar[Mapping[str, OptionSpec]] = {
        "tcp_nodelay": OptionSpec("tcp_nodelay", boolean, True, "disable Nagle's algorithm"),
        "tcp_keepalive": OptionSpec(
            "tcp_keepalive", boolean, False, "enable TCP keep-alive probes"
        ),
    }

    def _host_port(self, url: URL) -> HostPort:
        hp = parse_host_port(url)
        family = _FAMILY.get(url.scheme, socket.AF_UNSPEC)
        if family == socket.AF_INET and ":" in hp.host:
            raise BadAddress(f"{url.raw!r}: tcp4 needs an IPv4 address")
        if (
            family == socket.AF_INET6
            and hp.host
            and "." in hp.host
            and hp.host.replace(".", "").isdigit()
        ):
            raise BadAddress(f"{url.raw!r}: tcp6 needs an IPv6 address")
        return hp

    def check_url(self, url: URL) -> None:
        self._host_port(url)

    def check_dial_url(self, url: URL) -> None:
        self._dial_host_port(url)

    def _dial_host_port(self, url: URL) -> HostPort:
        hp = self._host_port(url)
        if hp.wildcard:
            raise BadAddress(f"{url.raw!r}: cannot dial a wildcard address")
        if hp.port == 0:
            raise BadAddress(f"{url.raw!r}: cannot dial port 0")
        return hp

    async def dial(self, url: URL, options: Mapping[str, Any]) -> AsyncioStream:
        hp = self._dial_host_port(url)
        tr, pr = await connect(url, hp, _FAMILY.get(url.scheme, socket.AF_UNSPEC))
        _apply_options(tr, options)
        return AsyncioStream(tr, pr)

    async def listen(self, url: URL, options: Mapping[str, Any]) -> _TCPListener:
        lst = _TCPListener(url.raw, options)
        await bind_listener(
            lst, url, self._host_port(url), _FAMILY.get(url.scheme, socket.AF_UNSPEC)
        )
        return lst


@hookimpl
def purenng_register_transports(registry: Registry) -> None:
    registry.add_transport(TCPTransport())
