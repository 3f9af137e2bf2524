"""SP over a byte stream: the one adapter every stream transport shares.

It turns a :class:`~purenng.core.byte_stream.Stream` into a
:class:`~purenng.core.pipe.Pipe`: it sends our 8-byte SP header, waits (at
most ``sp_handshake_timeout`` seconds, default :data:`HANDSHAKE_TIMEOUT` as
NNG, for the whole header however slowly it drips in) for the peer's, then frames
messages with the 64-bit length prefix (plus ipc's type byte).  The byte
layouts and checks live in the pure :mod:`purenng.core.sp_codec`.

Theory of operation:

* **Receive.** The adapter *is* an ``asyncio.BufferedProtocol``: it takes
  over the stream's asyncio transport (``Stream.detach_transport``) and lets
  the kernel read straight into the decoder's buffers.  Complete messages go
  synchronously to the owner's ``pipe_message``; there is no task per pipe.
  A stream without an asyncio transport is driven by one reader task instead.
* **Send.** The first small frame of a loop turn is written at once, so
  that a lone request or reply leaves without waiting for the next turn;
  the frames after it in the same turn are appended to one ``bytearray``
  and written once at the end of the turn (or at 256 KiB), so a burst of
  64-byte messages costs two ``write`` system calls, not one per message.
  A body of 64 KiB or more is written as its own ``write`` after its
  prefix, never concatenated (Python 3.11's ``writelines`` would join it).
* **Flow control.** The transport's ``pause_writing`` clears
  :attr:`Pipe.writable`; ``resume_writing`` sets it and tells the owner.
* **Errors.** A bad header, a peer speaking the wrong protocol, an oversized
  or malformed frame, or a handshake that never completes closes this pipe
  only, with the reason in :attr:`SPStreamPipe.error`.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from .errors import Closed, Error, ProtocolError, Timeout
from .pipe import Pipe
from .sp_codec import (
    BIG_BODY,
    IPC_MSG_TYPE,
    SPDecoder,
    encode_handshake,
    encode_ipc_prefix,
    encode_length,
)

if TYPE_CHECKING:
    from collections.abc import Callable

    from .byte_stream import Stream
    from .message import BytesLike

__all__ = ["HANDSHAKE_TIMEOUT", "SPStreamPipe", "start_sp_pipe"]

#: Seconds allowed for the SP header exchange (NNG: 10 s; wire-protocols.md §2.1).
HANDSHAKE_TIMEOUT = 10.0
#: Coalesced small frames are written once this many bytes are waiting.
FLUSH_AT = 256 * 1024
#: asyncio write buffer limits per pipe.
WRITE_HIGH = 1 << 20
WRITE_LOW = 256 * 1024

#: Transport details copied when the pipe starts (see ``SPStreamPipe.extra``).
_KEPT_EXTRAS = ("sockname", "peername", "peercert")


class SPStreamPipe(Pipe, asyncio.BufferedProtocol):
    """A pipe that speaks SP framing over one stream connection.

    Args:
        stream: The connected stream (its transport is taken over).
        self_id: Our SP protocol number, sent in the header.
        transport_name: The URL scheme, for reports.
        on_ready: Called once the peer's header is valid; the socket attaches
            the pipe there (or closes it).
        on_failed: Called if the pipe closes before it was ready.
        recv_max_size: Largest accepted payload; 0 means no limit.
        ipc: Use ipc framing.
    """

    #: As in :class:`Pipe`: why the pipe closed, set by the protocol callbacks below.
    error: BaseException | None

    def __init__(
        self,
        stream: Stream,
        *,
        self_id: int,
        transport_name: str,
        on_ready: Callable[[SPStreamPipe], None],
        on_failed: Callable[[SPStreamPipe], None] | None = None,
        recv_max_size: int = 0,
        ipc: bool = False,
    ) -> None:
        Pipe.__init__(self, -1, transport_name)
        self._stream = stream
        self._self_id = self_id
        self._on_ready = on_ready
        self._on_failed = on_failed
        self._ipc: bool = ipc
        self.decoder: SPDecoder = SPDecoder(
            self._handshake, self._message, recv_max_size=recv_max_size, ipc=ipc
        )
        self.ready: bool = False
        self._tr: Any = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wbuf = bytearray()
        self._flush_handle: asyncio.Handle | None = None
        self._hs_timer: asyncio.TimerHandle | None = None
        self._hs_timeout = HANDSHAKE_TIMEOUT
        self._reader: asyncio.Task[None] | None = None
        self._info: dict[str, Any] = {}

    # ------------------------------------------------------------ start

    def start(
        self, loop: asyncio.AbstractEventLoop, handshake_timeout: float = HANDSHAKE_TIMEOUT
    ) -> None:
        """Take over the stream and send our header (call on ``loop``)."""
        self._loop = loop
        detached = self._stream.detach_transport()
        if detached is not None:
            tr, leftover = detached
            self._tr = tr
            # Kept: a closed (TLS) transport no longer answers, and the pipe
            # lets go of its transport once the connection is lost.
            for name in _KEPT_EXTRAS:
                value = tr.get_extra_info(name)
                if value is not None:
                    self._info[name] = value
            try:
                tr.set_write_buffer_limits(high=WRITE_HIGH, low=WRITE_LOW)
            except (AttributeError, NotImplementedError):
                pass
            tr.set_protocol(self)
            if tr.is_closing():
                self.connection_lost(None)
                return
        else:
            self._tr = _StreamDriver(self._stream, self)
            leftover = b""
        self._hs_timeout = handshake_timeout
        self._hs_timer = loop.call_later(handshake_timeout, self._handshake_timed_out)
        self._tr.write(encode_handshake(self._self_id))
        if isinstance(self._tr, _StreamDriver):
            self._reader = loop.create_task(self._tr.run())
        if leftover:
            self._feed(leftover)

    def _feed(self, data: bytes) -> None:
        view = memoryview(data)
        while view and not self.closed:
            buf = self.decoder.get_buffer(len(view))
            n = min(len(buf), len(view))
            buf[:n] = view[:n]
            self.buffer_updated(n)
            view = view[n:]

    def _handshake_timed_out(self) -> None:
        self._hs_timer = None
        if not self.ready:
            self._fail(Timeout(f"SP handshake not completed in {self._hs_timeout:g} s"))

    # ------------------------------------------------------------ decoder callbacks

    def _handshake(self, peer_id: int) -> None:
        if self._hs_timer is not None:
            self._hs_timer.cancel()
            self._hs_timer = None
        self.peer_id = peer_id
        self.ready = True
        self._on_ready(self)
        if self.closed:
            self.decoder.fail(Closed("pipe refused"))

    def _message(self, payload: bytes | bytearray) -> None:
        if self.closed:
            return  # closed by the protocol mid-read: the rest of the read is void
        self.msgs_in += 1
        self.bytes_in += len(payload)
        deliver = self._deliver
        if deliver is not None:
            deliver(self, payload)

    # ------------------------------------------------------------ asyncio.BufferedProtocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        pass  # the transport is adopted in start()

    def get_buffer(self, sizehint: int) -> memoryview:
        return self.decoder.get_buffer(sizehint)

    def buffer_updated(self, nbytes: int) -> None:
        self.rx_bytes += nbytes
        decoder = self.decoder
        decoder.buffer_updated(nbytes)
        if decoder.error is not None and not self.closed:
            self._fail(decoder.error)

    def eof_received(self) -> bool:
        if not self.ready:
            self.error = ProtocolError("peer closed the connection during the SP handshake")
        self.close()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        if exc is not None and self.error is None:
            self.error = exc
        self._closed_now()
        self._release()

    def _release(self) -> None:
        """Break the pipe's reference cycles once its connection is gone.

        The pipe holds its decoder, whose callbacks are the pipe's bound
        methods, and its transport, whose protocol is the pipe: without this
        a closed pipe waits for the cyclic garbage collector, and over TLS
        it keeps the SSL protocol and OpenSSL's buffers (about 1 MiB after
        large messages) until then.  Addresses stay readable from the copy
        taken at start.
        """
        decoder = self.decoder
        decoder.on_handshake = _ignore
        decoder.on_message = _ignore
        self._tr = None
        self._deliver = None
        self._on_ready = _ignore
        self._on_failed = None

    # ------------------------------------------------------------ Pipe

    def write(self, header: BytesLike, body: BytesLike) -> None:
        if self.closed:
            return
        n = len(header) + len(body)
        self.msgs_out += 1
        self.bytes_out += n
        wbuf = self._wbuf
        if self._ipc:
            wbuf += encode_ipc_prefix(IPC_MSG_TYPE, n)
        else:
            wbuf += encode_length(n)
        if header:
            wbuf += header
        if n >= BIG_BODY:
            self._wbuf = bytearray()
            self._tr.write(wbuf)
            self._tr.write(body)
            return
        wbuf += body
        if self._flush_handle is None:
            # The first frame of this loop turn goes out now: a lone request
            # or reply does not wait a loop turn.  Frames that follow in the
            # same turn are coalesced and written by the flush.
            self._wbuf = bytearray()
            self._tr.write(wbuf)
            loop = self._loop
            assert loop is not None
            self._flush_handle = loop.call_soon(self._flush)
        elif len(wbuf) >= FLUSH_AT:
            self._wbuf = bytearray()  # the flush still due this turn finds it empty
            self._tr.write(wbuf)

    def _flush(self) -> None:
        self._flush_handle = None
        wbuf = self._wbuf
        if wbuf and not self.closed:
            # A fresh buffer each time: the transport may keep a view of the old one.
            self._wbuf = bytearray()
            self._tr.write(wbuf)

    def pending_bytes(self) -> int:
        """Bytes queued for this pipe that the kernel does not have yet; 0 once closed.

        The transport's write buffer plus the frames coalesced for the end of
        this loop turn.  What ``linger`` waits for, and what flow control
        bounds: the pipe stops being :attr:`writable` once the transport's
        buffer passes :data:`WRITE_HIGH`, so a peer that never reads holds at
        most about ``WRITE_HIGH + FLUSH_AT`` plus one message here.
        """
        if self.closed:
            return 0
        n = len(self._wbuf)
        tr = self._tr
        if tr is not None:
            try:
                n += tr.get_write_buffer_size()
            except (AttributeError, NotImplementedError, RuntimeError):
                pass  # a transport that cannot tell (or is already gone)
        return n

    def pause_reading(self) -> None:
        if not self.closed:
            self._tr.pause_reading()

    def resume_reading(self) -> None:
        if not self.closed:
            self._tr.resume_reading()

    def close(self) -> None:
        if self.closed:
            return
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush_handle = None
        tr = self._tr
        if tr is not None:
            if self._wbuf and self.error is None:
                tr.write(self._wbuf)  # close() below still sends what is buffered
                self._wbuf = bytearray()
            tr.close()
        else:
            self._stream.close()
        self._closed_now()

    def abort(self) -> None:
        """Close at once, dropping anything not yet sent."""
        tr = self._tr
        if tr is not None and hasattr(tr, "abort"):
            self._wbuf = bytearray()
            tr.abort()
        self.close()

    def _fail(self, exc: BaseException) -> None:
        if self.error is None:
            self.error = exc
        self.abort()

    def _closed_now(self) -> None:
        if self.closed:
            return
        self.closed = True
        self.writable = False
        if self._hs_timer is not None:
            self._hs_timer.cancel()
            self._hs_timer = None
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush_handle = None
        if self._reader is not None and not self._reader.done():
            self._reader.cancel()
        if self.ready:
            self._notify_closed()
        elif self._on_failed is not None:
            self._on_failed(self)

    # ------------------------------------------------------------ info

    def extra(self, name: str, default: Any = None) -> Any:
        """Transport information (``peername``, ``sockname``, credentials...)."""
        value = self._stream.extra(name, None)
        if value is not None:
            return value
        value = self._info.get(name)
        if value is not None:
            return value
        tr = self._tr
        if tr is not None:
            return tr.get_extra_info(name, default)
        return default

    @property
    def local_address(self) -> Any:
        return self.extra("sockname")

    @property
    def remote_address(self) -> Any:
        return self.extra("peername")

    @property
    def peer_credentials(self) -> Any:
        return self.extra("peer_credentials")

    @property
    def peer_certificate(self) -> dict[str, Any] | None:
        return self.extra("peercert") or None


class _StreamDriver:
    """Makes a plain :class:`Stream` look like an asyncio transport to the pipe."""

    def __init__(self, stream: Stream, pipe: SPStreamPipe) -> None:
        self.stream = stream
        self.pipe = pipe
        self._resume: asyncio.Event = asyncio.Event()
        self._resume.set()
        self._closing = False

    async def run(self) -> None:
        pipe = self.pipe
        try:
            while not pipe.closed:
                await self._resume.wait()
                data = await self.stream.read(256 * 1024)
                if not data:
                    pipe.eof_received()
                    return
                pipe._feed(data)
        except asyncio.CancelledError:
            raise
        except (Error, OSError) as exc:
            pipe.connection_lost(exc)

    def write(self, data: BytesLike) -> None:
        if not self._closing:
            self.stream.write(data)

    def pause_reading(self) -> None:
        self._resume.clear()

    def resume_reading(self) -> None:
        self._resume.set()

    def is_closing(self) -> bool:
        return self._closing

    def close(self) -> None:
        if not self._closing:
            self._closing = True
            self.stream.close()
            self.pipe.connection_lost(None)

    def abort(self) -> None:
        self.close()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self.stream.extra(name, default)

    def get_write_buffer_size(self) -> int:
        return 0  # a plain Stream buffers out of our sight (its drain() waits for it)


def start_sp_pipe(
    stream: Stream,
    loop: asyncio.AbstractEventLoop,
    *,
    self_id: int,
    transport_name: str,
    on_ready: Callable[[SPStreamPipe], None],
    on_failed: Callable[[SPStreamPipe], None] | None = None,
    recv_max_size: int = 0,
    ipc: bool = False,
    handshake_timeout: float | None = None,
) -> SPStreamPipe:
    """Wrap ``stream`` in an :class:`SPStreamPipe` and start the handshake."""
    pipe = SPStreamPipe(
        stream,
        self_id=self_id,
        transport_name=transport_name,
        on_ready=on_ready,
        on_failed=on_failed,
        recv_max_size=recv_max_size,
        ipc=ipc,
    )
    pipe.start(loop, HANDSHAKE_TIMEOUT if handshake_timeout is None else handshake_timeout)
    return pipe


def _ignore(*args: Any) -> None:
    """Stands in for a closed pipe's callbacks."""
