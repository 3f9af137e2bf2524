"""Accepting byte streams: the listening socket, the accept loop and the listener.

:class:`SocketServer` replaces ``loop.create_server`` for the built-in
listeners.  It owns the accept loop on a bound, listening, non-blocking
socket (``add_reader``, then ``accept()`` until ``EAGAIN``) and turns each
connection into a transport with ``loop.connect_accepted_socket``, which
asyncio and uvloop both provide (``ssl=`` included: the TLS handshake is
server-side asyncio SSL, as with ``create_server``).  Why not
``create_server``: when descriptors run out, CPython 3.11's selector loop
retries ``accept()`` up to ``backlog`` times per wake-up, each time calling
the loop's exception handler (a traceback in the log) and scheduling a
re-arm, which with a 4096 backlog is a busy core and megabytes of log a
second, and purenng never sees the error.  :class:`SocketServer` backs off
instead (:data:`ACCEPT_RETRY_MIN` doubling to :data:`ACCEPT_RETRY_MAX`),
logs one warning when an episode starts and one info line when accepting
works again, and, given a :class:`~purenng.core.byte_stream.ConnectionGate`,
refuses a connection before spending a handshake on it (``max_pipes``).

:class:`AsyncioStreamListener` queues what a :class:`SocketServer` accepts
as :class:`~purenng.core.byte_stream.AsyncioStream` objects for
``accept()``.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import socket
from collections import deque
from typing import TYPE_CHECKING, Any

from .byte_stream import (
    AsyncioStream,
    ConnectionGate,
    ConnectionSlot,
    Stream,
    StreamListener,
    StreamProtocol,
)
from .errors import Closed

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = [
    "ACCEPT_BATCH",
    "ACCEPT_RETRY_MAX",
    "ACCEPT_RETRY_MIN",
    "RESOURCE_ERRNOS",
    "AsyncioStreamListener",
    "SocketServer",
    "listening_socket",
]

log: logging.Logger = logging.getLogger("purenng")

#: ``accept()`` errors that mean "out of resources now": retry later, do not spin.
RESOURCE_ERRNOS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})
#: First and largest delay (seconds) before retrying ``accept()`` after one of
#: :data:`RESOURCE_ERRNOS`.  A retry costs one failing system call, so even the
#: largest delay keeps recovery prompt once descriptors are free again.
ACCEPT_RETRY_MIN = 0.01
ACCEPT_RETRY_MAX = 1.0
#: Connections accepted per wake-up before other callbacks get a turn (the
#: rest are taken on the next turn): a burst of dialers is taken in few
#: wake-ups without starving the pipes already up.
ACCEPT_BATCH = 256


def listening_socket(info: tuple[Any, ...], backlog: int, where: str) -> socket.socket:
    """A bound, listening, non-blocking TCP socket for one ``getaddrinfo`` entry.

    Set up as ``loop.create_server`` would (``SO_REUSEADDR``; an IPv6 socket
    is IPv6 only, no dual stack), for a :class:`SocketServer` to serve.

    Raises:
        AddressInUse: the address is taken.
        BadAddress: the address is not one of this host's.
    """
    from .errors import AddressInUse, BadAddress

    af, kind, proto, _, addr = info
    sock = socket.socket(af, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if af == socket.AF_INET6 and hasattr(socket, "IPPROTO_IPV6"):
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind(addr)
        sock.listen(backlog)
        sock.setblocking(False)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise AddressInUse(f"{where}: address already in use") from exc
        if exc.errno == errno.EADDRNOTAVAIL:
            raise BadAddress(f"{where}: address not available on this host") from exc
        raise
    return sock


class SocketServer(asyncio.AbstractServer):
    """Serves one bound, listening socket: ``loop.create_server(sock=...)`` without the spin.

    Args:
        sock: The listening socket; the server owns and closes it.
        protocol_factory: Makes each connection's protocol.  With a
            :attr:`gate`, the protocol must have a writable ``slot`` attribute
            (:class:`StreamProtocol` has).
        name: How log lines name the listener (its URL).
        ssl: A server ``SSLContext``: each connection's TLS handshake runs
            in its own task, as with ``create_server``; a failed one is
            dropped and logged at debug level.
        ssl_handshake_timeout: Seconds allowed for that handshake.
        gate: Admission control (``max_pipes``), also settable later.

    Call on the loop that is to serve.
    """

    def __init__(
        self,
        sock: socket.socket,
        protocol_factory: Callable[[], asyncio.BaseProtocol],
        *,
        name: str = "",
        ssl: Any = None,
        ssl_handshake_timeout: float | None = None,
        gate: ConnectionGate | None = None,
    ) -> None:
        self._loop = asyncio.get_running_loop()
        sock.setblocking(False)
        self._sock = sock
        self._fd = sock.fileno()
        self._factory = protocol_factory
        self.name = name
        self._tls: dict[str, Any] = (
            {} if ssl is None else {"ssl": ssl, "ssl_handshake_timeout": ssl_handshake_timeout}
        )
        self.gate = gate
        self._closed = False
        self._reading = False
        self._more: asyncio.Handle | None = None
        self._retry: asyncio.TimerHandle | None = None
        self._delay = ACCEPT_RETRY_MIN
        #: Failed ``accept()`` calls in the current episode: from the first
        #: failure until the backlog is drained (0: accepting normally).
        self.failures: int = 0
        self._episode_start = 0.0
        self._tasks: set[asyncio.Task[None]] = set()
        self._start_reading()

    # ------------------------------------------------------------ accepting

    def _start_reading(self) -> None:
        if not self._reading and not self._closed:
            self._loop.add_reader(self._fd, self._on_readable)
            self._reading = True

    def _stop_reading(self) -> None:
        if self._reading:
            self._reading = False
            self._loop.remove_reader(self._fd)
        if self._more is not None:
            self._more.cancel()
            self._more = None

    def _on_readable(self) -> None:
        self._more = None
        if self._closed:
            return
        accept = self._sock.accept
        for _ in range(ACCEPT_BATCH):
            try:
                conn, _addr = accept()
            except (BlockingIOError, InterruptedError):
                if self.failures:
                    self._recovered()
                return
            except ConnectionAbortedError:
                continue  # the peer gave up while it waited in the backlog
            except OSError as exc:
                self._back_off(exc)
                return
            self._delay = ACCEPT_RETRY_MIN
            self._take(conn)
        # A full batch: more may be waiting.  Take them on the next turn, so
        # the pipes already up get theirs first.
        if self._more is None and self._reading:
            self._more = self._loop.call_soon(self._on_readable)

    def _back_off(self, exc: OSError) -> None:
        """Stop watching the socket and retry later; the first failure of an episode is logged.

        Not only for :data:`RESOURCE_ERRNOS`: any error ``accept()`` keeps
        returning would otherwise be a busy loop, too.
        """
        self._stop_reading()
        loop = self._loop
        if not self.failures:
            self._episode_start = loop.time()
            what = (
                "out of file descriptors or memory"
                if exc.errno in RESOURCE_ERRNOS
                else "accept() keeps failing"
            )
            log.warning(
                "listener %s: cannot accept connections, %s (%s); retrying every %g s or "
                "less until it works (logged once per episode)",
                self.name,
                what,
                exc,
                ACCEPT_RETRY_MAX,
            )
        self.failures += 1
        self._retry = loop.call_later(self._delay, self._resume)
        self._delay = min(self._delay * 2, ACCEPT_RETRY_MAX)

    def _resume(self) -> None:
        self._retry = None
        self._start_reading()

    def _recovered(self) -> None:
        """The backlog is drained: the episode is over.

        Not at the first successful ``accept()``: freed descriptors are
        often taken up again by the connections still waiting, and one
        warning per flap would be the log flood again, only slower.
        """
        log.info(
            "listener %s: accepting again after %d failed attempts in %.1f s",
            self.name,
            self.failures,
            self._loop.time() - self._episode_start,
        )
        self.failures = 0
        self._delay = ACCEPT_RETRY_MIN

    def _take(self, conn: socket.socket) -> None:
        slot: ConnectionSlot | None = None
        gate = self.gate
        if gate is not None:
            slot = gate.admit()
            if slot is None:
                conn.close()  # refused before any handshake: the dialer backs off
                return
        task = self._loop.create_task(self._adopt(conn, slot))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _adopt(self, conn: socket.socket, slot: ConnectionSlot | None) -> None:
        protocol = self._factory()
        if slot is not None:
            protocol.slot = slot  # type: ignore[attr-defined]
        try:
            conn.setblocking(False)
            await self._loop.connect_accepted_socket(lambda: protocol, conn, **self._tls)
        # Both loops close the connection themselves when they fail it (a
        # failed TLS handshake, a close during it).  Closing ``conn`` here
        # could close a descriptor number uvloop has already given out again.
        except asyncio.CancelledError:
            if slot is not None:
                slot.release()
            raise
        except Exception as exc:
            if slot is not None:
                slot.release()
            log.debug("listener %s: dropped an incoming connection: %s", self.name, exc)

    # ------------------------------------------------------------ asyncio.AbstractServer

    def close(self) -> None:
        """Stop accepting and close the socket; handshakes in progress are cancelled."""
        if self._closed:
            return
        self._closed = True
        self._stop_reading()
        if self._retry is not None:
            self._retry.cancel()
            self._retry = None
        self._sock.close()
        for task in self._tasks:
            task.cancel()

    async def wait_closed(self) -> None:
        """Wait until the cancelled handshakes have ended."""
        tasks = list(self._tasks)
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)

    def get_loop(self) -> asyncio.AbstractEventLoop:
        return self._loop

    def is_serving(self) -> bool:
        return not self._closed

    async def start_serving(self) -> None:
        """Serving starts at construction; nothing to do."""

    async def serve_forever(self) -> None:
        """Not used by purenng: serving needs no task."""
        raise NotImplementedError("SocketServer serves from its constructor on")

    @property
    def sockets(self) -> tuple[socket.socket, ...]:
        """The listening socket, as ``asyncio.Server.sockets`` (empty once closed)."""
        return () if self._closed else (self._sock,)


class AsyncioStreamListener(StreamListener):
    """A :class:`StreamListener` over an ``asyncio.Server``.

    Accepted connections wait in a queue until :meth:`accept` takes them.
    Subclasses (or the transport) set :attr:`server` once bound.
    """

    def __init__(self, url: str) -> None:
        self._url = url
        self.server: asyncio.AbstractServer | None = None
        self._queue: deque[AsyncioStream] = deque()
        self._waiter: asyncio.Future[None] | None = None
        self._closed = False
        self._gate: ConnectionGate | None = None

    def serve(
        self, sock: socket.socket, ssl: Any = None, ssl_handshake_timeout: float | None = None
    ) -> None:
        """Start accepting on ``sock`` (bound and listening) with a :class:`SocketServer`."""
        self.server = SocketServer(
            sock,
            self.protocol_factory,
            name=self._url,
            ssl=ssl,
            ssl_handshake_timeout=ssl_handshake_timeout,
            gate=self._gate,
        )

    def set_gate(self, gate: ConnectionGate | None) -> None:
        self._gate = gate
        if isinstance(self.server, SocketServer):
            self.server.gate = gate

    def protocol_factory(self) -> StreamProtocol:
        """For ``loop.create_server``/``create_unix_server``."""
        return StreamProtocol(on_connection=self._connection)

    def _connection(self, protocol: StreamProtocol) -> None:
        assert protocol.transport is not None
        if self._closed:
            protocol.transport.close()
            if protocol.slot is not None:
                protocol.slot.release()
            return
        stream = self.make_stream(protocol.transport, protocol)
        stream.slot = protocol.slot
        self._queue.append(stream)
        w = self._waiter
        if w is not None and not w.done():
            w.set_result(None)

    def make_stream(self, transport: asyncio.Transport, protocol: StreamProtocol) -> AsyncioStream:
        """Wrap an accepted connection (override to add extras)."""
        return AsyncioStream(transport, protocol)

    async def accept(self) -> Stream:
        while not self._queue:
            if self._closed:
                raise Closed("listener is closed")
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        return self._queue.popleft()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self.server is not None:
            self.server.close()
        while self._queue:
            stream = self._queue.popleft()
            stream.close()
            if stream.slot is not None:
                stream.slot.release()
        w = self._waiter
        if w is not None and not w.done():
            w.set_result(None)

    async def aclose(self) -> None:
        self.close()
        if self.server is not None:
            await self.server.wait_closed()

    @property
    def local_address(self) -> Any:
        if self.server is None:
            return None
        socks = getattr(self.server, "sockets", None) or ()
        return socks[0].getsockname() if socks else None

    @property
    def url(self) -> str:
        return self._url
