"""Byte streams: what stream transports produce and the streaming API returns.

:class:`Stream` is the interface: an ordered, reliable, bidirectional byte
stream to one peer (a tcp connection, a unix socket, a TLS session...).  It
knows nothing of SP.  :class:`AsyncioStream` implements it over any asyncio
transport, which is how every built-in stream transport makes its streams.

Fast path: the SP adapter does not read a stream with ``await read()`` when it
can avoid it.  :meth:`Stream.detach_transport` hands over the underlying
asyncio transport (and any bytes already read), so the adapter installs its
own ``BufferedProtocol`` on it and parses frames straight from the kernel's
reads.  A stream that cannot do that returns None and is driven through
:meth:`Stream.read` instead.

Accepting: :class:`SocketServer` replaces ``loop.create_server`` for the
built-in listeners.  It owns the accept loop on a bound, listening,
non-blocking socket (``add_reader``, then ``accept()`` until ``EAGAIN``) and
turns each connection into a transport with ``loop.connect_accepted_socket``,
which asyncio and uvloop both provide (``ssl=`` included: the TLS handshake
is server-side asyncio SSL, as with ``create_server``).  Why not
``create_server``: when descriptors run out, CPython 3.11's selector loop
retries ``accept()`` up to ``backlog`` times per wake-up, each time calling
the loop's exception handler (a traceback in the log) and scheduling a
re-arm, which with a 4096 backlog is a busy core and megabytes of log a
second, and purenng never sees the error.  :class:`SocketServer` backs off
instead (:data:`ACCEPT_RETRY_MIN` doubling to :data:`ACCEPT_RETRY_MAX`),
logs one warning when an episode starts and one info line when accepting
works again, and, given a :class:`ConnectionGate`, refuses a connection
before spending a handshake on it (``max_pipes``).

All methods must be called on the loop the stream was made on.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import socket
from abc import ABC, abstractmethod
from collections import deque
from typing import TYPE_CHECKING, Any, Protocol, cast

from .errors import Closed, ConnectionReset

if TYPE_CHECKING:
    from collections.abc import Callable

    from .message import BytesLike

__all__ = [
    "ACCEPT_BATCH",
    "ACCEPT_RETRY_MAX",
    "ACCEPT_RETRY_MIN",
    "RESOURCE_ERRNOS",
    "AsyncioStream",
    "AsyncioStreamListener",
    "ConnectionGate",
    "ConnectionSlot",
    "SocketServer",
    "Stream",
    "StreamListener",
    "StreamProtocol",
    "listening_socket",
]

log = logging.getLogger("purenng")

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


class ConnectionSlot:
    """One admitted connection's place under a limit; :meth:`release` is idempotent.

    It travels with the connection (as :attr:`Stream.slot`) from ``accept()``
    until whoever ends up owning the connection is done with it.
    """

    __slots__ = ("_release",)

    def __init__(self, release: Callable[[], None]) -> None:
        self._release: Callable[[], None] | None = release

    def release(self) -> None:
        """Give the place back (the first call only)."""
        release, self._release = self._release, None
        if release is not None:
            release()


class ConnectionGate(Protocol):
    """Admission control for a listener (the endpoint's ``max_pipes``)."""

    def admit(self) -> ConnectionSlot | None:
        """A slot for one more connection, or None to refuse it (and count that)."""


class Stream(ABC):
    """An async byte stream to one peer.

    Attributes:
        slot: The place this connection holds under its listener's
            :class:`ConnectionGate`, when a gated listener accepted it.
    """

    slot: ConnectionSlot | None = None

    @abstractmethod
    async def read(self, max_bytes: int = 65536) -> bytes:
        """Up to ``max_bytes`` bytes; ``b""`` once the peer has closed its side.

        Raises:
            Closed: the stream was closed locally.
            ConnectionReset: the connection broke.
        """

    async def read_exactly(self, n: int) -> bytes:
        """Exactly ``n`` bytes.

        Raises:
            ConnectionReset: the peer closed before ``n`` bytes arrived.
        """
        parts: list[bytes] = []
        need = n
        while need:
            chunk = await self.read(need)
            if not chunk:
                raise ConnectionReset(f"stream ended {need} bytes short of {n}")
            parts.append(chunk)
            need -= len(chunk)
        return b"".join(parts)

    @abstractmethod
    def write(self, data: BytesLike) -> None:
        """Queue ``data`` for sending.  Never blocks; see :meth:`drain`."""

    async def drain(self) -> None:  # noqa: B027 - optional override
        """Wait until the write buffer is below its high-water mark."""

    @abstractmethod
    def close(self) -> None:
        """Close the stream at once; idempotent."""

    async def aclose(self) -> None:
        """Close the stream."""
        self.close()

    @property
    def local_address(self) -> Any:
        """The local address (transport-specific)."""
        return self.extra("sockname")

    @property
    def remote_address(self) -> Any:
        """The peer's address (transport-specific)."""
        return self.extra("peername")

    def extra(self, name: str, default: Any = None) -> Any:
        """Transport-specific information, as ``asyncio.Transport.get_extra_info``."""
        return default

    def detach_transport(self) -> tuple[asyncio.Transport, bytes] | None:
        """Give up the underlying asyncio transport, if there is one.

        Returns:
            The transport and the bytes already received but not yet read, or
            None if this stream has no asyncio transport to give.  After a
            successful call the stream must not be used again.
        """
        return None

    async def __aenter__(self) -> Stream:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


class StreamListener(ABC):
    """A bound listening endpoint that yields :class:`Stream` objects."""

    @abstractmethod
    async def accept(self) -> Stream:
        """The next incoming connection.

        Raises:
            Closed: the listener was closed.
        """

    @abstractmethod
    def close(self) -> None:
        """Stop listening; idempotent.  Streams already accepted live on."""

    def set_gate(self, gate: ConnectionGate | None) -> None:  # noqa: B027 - optional override
        """Check ``gate`` before spending anything on a new connection.

        A listener that can (the built-in ones) asks ``gate.admit()`` right
        after ``accept()``, before any handshake, closes refused connections
        at once, and hands the slot over as :attr:`Stream.slot`.  The default
        ignores the gate: the endpoint then applies it to each accepted stream.
        """

    async def aclose(self) -> None:
        """Stop listening."""
        self.close()

    @property
    def local_address(self) -> Any:
        """The bound address (with the real port when port 0 was asked for)."""
        return None

    @property
    def url(self) -> str:
        """The URL the listener is bound to, with the real port filled in."""
        raise NotImplementedError

    async def __aenter__(self) -> StreamListener:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


class StreamProtocol(asyncio.Protocol):
    """Buffers what an asyncio transport receives until a reader takes it."""

    def __init__(self, on_connection: Any = None) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.eof = False
        self.exc: BaseException | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._drain_waiters: list[asyncio.Future[None]] = []
        self._paused = False
        self._on_connection = on_connection
        #: Set by a gated :class:`SocketServer` before the connection is made.
        self.slot: ConnectionSlot | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses.
        self.transport = cast("asyncio.Transport", transport)
        if self._on_connection is not None:
            self._on_connection(self)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        self._wake()

    def eof_received(self) -> bool:
        self.eof = True
        self._wake()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.eof = True
        self.exc = exc
        self._wake()
        for fut in self._drain_waiters:
            if not fut.done():
                fut.set_result(None)
        self._drain_waiters.clear()

    def pause_writing(self) -> None:
        self._paused = True

    def resume_writing(self) -> None:
        self._paused = False
        for fut in self._drain_waiters:
            if not fut.done():
                fut.set_result(None)
        self._drain_waiters.clear()

    def _wake(self) -> None:
        w = self._waiter
        if w is not None and not w.done():
            w.set_result(None)

    async def wait_readable(self) -> None:
        self._waiter = asyncio.get_running_loop().create_future()
        try:
            await self._waiter
        finally:
            self._waiter = None

    async def drain(self) -> None:
        if self._paused and self.transport is not None and not self.transport.is_closing():
            fut = asyncio.get_running_loop().create_future()
            self._drain_waiters.append(fut)
            await fut


class AsyncioStream(Stream):
    """A :class:`Stream` over an asyncio transport and a :class:`StreamProtocol`."""

    def __init__(self, transport: asyncio.Transport, protocol: StreamProtocol) -> None:
        self._transport: asyncio.Transport | None = transport
        self._protocol = protocol
        self._extra: dict[str, Any] = {}

    def set_extra(self, name: str, value: Any) -> None:
        """Attach transport-specific information (e.g. peer credentials)."""
        self._extra[name] = value

    async def read(self, max_bytes: int = 65536) -> bytes:
        pr = self._protocol
        while True:
            if self._transport is None:
                raise Closed("stream is closed")
            if pr.buffer:
                data = bytes(pr.buffer[:max_bytes])
                del pr.buffer[:max_bytes]
                return data
            if pr.eof:
                if pr.exc is not None:
                    raise ConnectionReset(str(pr.exc)) from pr.exc
                return b""
            await pr.wait_readable()

    def write(self, data: BytesLike) -> None:
        if self._transport is None or self._transport.is_closing():
            raise Closed("stream is closed")
        self._transport.write(data)

    async def drain(self) -> None:
        await self._protocol.drain()

    def close(self) -> None:
        tr, self._transport = self._transport, None
        if tr is not None:
            tr.close()
            self._protocol._wake()

    def extra(self, name: str, default: Any = None) -> Any:
        if name in self._extra:
            return self._extra[name]
        tr = self._transport
        return tr.get_extra_info(name, default) if tr is not None else default

    def detach_transport(self) -> tuple[asyncio.Transport, bytes] | None:
        tr, self._transport = self._transport, None
        if tr is None:
            return None
        data = bytes(self._protocol.buffer)
        self._protocol.buffer.clear()
        # The new owner becomes the transport's protocol; a reference left
        # here would tie the transport (and, over TLS, its SSL state) to
        # this stream for as long as the new owner keeps the stream.
        self._protocol.transport = None
        return tr, data

    @property
    def protocol(self) -> StreamProtocol:
        """The protocol buffering this stream's input."""
        return self._protocol


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
        self.failures = 0
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
