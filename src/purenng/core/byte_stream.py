"""Byte streams: what stream transports produce and the streaming API returns.

:class:`Stream` is the interface: an ordered, reliable, bidirectional byte
stream to one peer (a tcp connection, a unix socket, a TLS session...).  It
knows nothing of SP.  :class:`AsyncioStream` implements it over any asyncio
transport, which is how every built-in stream transport makes its streams;
:mod:`purenng.core.stream_server` accepts them.

Fast path: the SP adapter does not read a stream with ``await read()`` when it
can avoid it.  :meth:`Stream.detach_transport` hands over the underlying
asyncio transport (and any bytes already read), so the adapter installs its
own ``BufferedProtocol`` on it and parses frames straight from the kernel's
reads.  A stream that cannot do that returns None and is driven through
:meth:`Stream.read` instead.

All methods must be called on the loop the stream was made on.
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any, Protocol, cast

from .errors import Closed, ConnectionReset

if TYPE_CHECKING:
    from collections.abc import Callable

    from .message import BytesLike

__all__ = [
    "AsyncioStream",
    "ConnectionGate",
    "ConnectionSlot",
    "Stream",
    "StreamListener",
    "StreamProtocol",
]


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
        self.buffer: bytearray = bytearray()
        self.eof: bool = False
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
