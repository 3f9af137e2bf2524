"""Pure codec for SP over a byte stream: the handshake and the message framing.

Wire format (``reference/wire-protocols.md`` §2.1, §2.2):

* Both sides send an 8-byte header at once: ``00 'S' 'P' 00``, their own
  protocol number as a big-endian u16, then two reserved zero bytes.  A header
  that differs in bytes 0..3 or 6..7 is refused (as NNG and mangos do).
* Each message is then a 64-bit big-endian length and that many bytes.  ipc
  puts a one-byte message type, always ``0x01``, in front of the length.
* A length above ``recv_max_size`` (when that is non-zero) closes the pipe
  before a single byte of the body is allocated.  Lengths with any of the top
  four bits set are refused outright, as NNG does since 2.0 (``2**60 - 1``).

Theory of operation: :class:`SPDecoder` is fed the way an
``asyncio.BufferedProtocol`` is fed.  It hands out a writable ``memoryview``
(:meth:`SPDecoder.get_buffer`), is told how many bytes landed there
(:meth:`SPDecoder.buffer_updated`) and calls ``on_message(payload)`` for every
complete message.  Small messages are parsed out of one reusable buffer
(16 KiB, growing to 256 KiB under load); a message of :data:`BIG_BODY` bytes
or more is received straight into a buffer of its own, so that it is not
assembled piece by piece.  Every payload is delivered as ``bytes`` (what
``recv()`` returns), which costs one copy out of the receive buffer; that
is why the big buffers are recycled (:class:`BigBufferPool`) rather than
allocated per message: a fresh 1 MiB ``bytearray`` is zero-filled and
page-faulted in, which cost more than the copy itself.

Bad input is never raised into the caller's loop: the decoder records a
:class:`~purenng.core.errors.Error` in :attr:`SPDecoder.error`, discards
everything after it, and the adapter closes the pipe.

No I/O, no clock: this module must stay importable without asyncio (a test
checks).  Mirrors the framing parts of NNG's ``src/sp/transport/tcp/tcp.c``
and ``ipc/ipc.c``.
"""

from __future__ import annotations

import struct
from typing import TYPE_CHECKING

from .errors import Error, MessageTooLarge, ProtocolError

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = [
    "BIG_BODY",
    "HANDSHAKE_SIZE",
    "MAX_STREAM_LENGTH",
    "BigBufferPool",
    "SPDecoder",
    "encode_handshake",
    "encode_ipc_prefix",
    "encode_length",
    "frame_prefix",
    "parse_handshake",
]

#: Size of the SP connection header (wire-protocols.md §2.1).
HANDSHAKE_SIZE = 8
#: Lengths above this have reserved bits set (NNG ``NNI_MAX_STREAM_MSGSZ``).
MAX_STREAM_LENGTH = (1 << 60) - 1
#: Bodies at least this large are received straight into their own buffer.
BIG_BODY = 64 * 1024
#: The largest receive buffer for small messages (reached under load).
RECV_BUFFER = 256 * 1024
#: A new pipe's receive buffer: small, so that idle pipes cost little memory
#: (10,000 pipes at 256 KiB each would take 2.5 GiB).  It grows fourfold each
#: time a read fills it, up to :data:`RECV_BUFFER`.
INITIAL_BUFFER = 16 * 1024
#: The largest big-body buffer kept for reuse; larger bodies are received
#: into a buffer of their own and delivered as that ``bytearray``.
POOLED_MAX = 4 * 1024 * 1024
#: Spare buffers kept per size class (powers of two from :data:`BIG_BODY`
#: to :data:`POOLED_MAX`): at most some 16 MiB stay allocated when idle.
POOLED_PER_CLASS = 2
#: ipc's in-band message type byte (wire-protocols.md §2.2).
IPC_MSG_TYPE = 1

_HEADER = struct.Struct(">4sH2s")
_MAGIC = b"\x00SP\x00"
_LEN = struct.Struct(">Q")
_IPC_LEN = struct.Struct(">BQ")
_unpack_len = _LEN.unpack_from
_unpack_ipc = _IPC_LEN.unpack_from

#: ``n -> bytes``: the 8-byte big-endian length prefix of a message of ``n``
#: bytes.  A bound ``struct`` method, so the send path pays one C call for it.
encode_length: Callable[[int], bytes] = _LEN.pack
#: ``(IPC_MSG_TYPE, n) -> bytes``: ipc's 9-byte prefix (type byte, then length).
encode_ipc_prefix: Callable[[int, int], bytes] = _IPC_LEN.pack


def encode_handshake(protocol_id: int) -> bytes:
    """The 8-byte SP header announcing ``protocol_id``."""
    return _HEADER.pack(_MAGIC, protocol_id, b"\x00\x00")


def parse_handshake(data: bytes | bytearray | memoryview) -> int:
    """Validate a peer's 8-byte SP header and return its protocol number.

    Raises:
        ProtocolError: the header is not a valid SP header.
    """
    if len(data) != HANDSHAKE_SIZE:
        raise ProtocolError(f"SP header must be 8 bytes, got {len(data)}")
    raw = bytes(data)
    magic, proto, reserved = _HEADER.unpack(raw)
    if magic != _MAGIC:
        hint = ""
        if raw[:2] == b"\x16\x03":
            hint = " (it looks like a TLS handshake: listen on tls+tcp:// for TLS peers)"
        elif raw[:4] in (b"GET ", b"POST", b"HEAD", b"PUT "):
            hint = " (it looks like HTTP: listen on ws:// for WebSocket peers)"
        raise ProtocolError(f"not an SP peer: bad connection header {raw!r}{hint}")
    if reserved != b"\x00\x00":
        raise ProtocolError(f"SP header has non-zero reserved bytes {reserved!r}")
    return int(proto)


def frame_prefix(length: int, ipc: bool = False) -> bytes:
    """The length prefix for a message of ``length`` bytes."""
    return encode_ipc_prefix(IPC_MSG_TYPE, length) if ipc else encode_length(length)


class BigBufferPool:
    """Spare receive buffers for big bodies, shared by every decoder in the process.

    A body is copied out of its buffer into ``bytes`` as soon as it is
    complete, so a buffer is busy only while one body is arriving, and the
    number in use at once is the number of pipes in the middle of a big
    body, not the number of pipes.  Buffers come in power-of-two sizes so
    that one can serve any body of its class.  ``list.append`` and
    ``list.pop`` are atomic, which is all the decoders on several event
    loop threads need; a race can only keep one buffer more or fewer.
    """

    __slots__ = ("_free",)

    def __init__(self) -> None:
        self._free: dict[int, list[bytearray]] = {}

    @staticmethod
    def size_class(length: int) -> int:
        """The buffer size that serves a body of ``length`` bytes (0: not pooled)."""
        if length > POOLED_MAX:
            return 0
        return max(BIG_BODY, 1 << (length - 1).bit_length())

    def take(self, length: int) -> bytearray:
        """A buffer of at least ``length`` bytes (its size class, or exact if not pooled).

        Raises:
            MemoryError: a new buffer cannot be allocated.
        """
        size = self.size_class(length)
        if not size:
            return bytearray(length)
        free = self._free.get(size)
        if free:
            try:
                return free.pop()
            except IndexError:  # another thread took the last one
                pass
        return bytearray(size)

    def give(self, buf: bytearray) -> None:
        """Keep ``buf`` for reuse, unless its class already has enough spares."""
        free = self._free.setdefault(len(buf), [])
        if len(free) < POOLED_PER_CLASS:
            free.append(buf)

    def spare_bytes(self) -> int:
        """Memory held by spare buffers (for tests and stats)."""
        return sum(len(b) for free in list(self._free.values()) for b in list(free))


#: The process-wide pool every :class:`SPDecoder` uses.
BIG_BUFFERS = BigBufferPool()


class SPDecoder:
    """Incremental decoder for one SP stream connection.

    Args:
        on_handshake: Called once with the peer's protocol number.  It may
            call :meth:`fail` to refuse the peer.
        on_message: Called with each complete payload (SP header and body
            together, as the peer framed them).
        recv_max_size: Largest payload accepted; 0 means no limit.
        ipc: Expect ipc's one-byte message type before each length.
    """

    __slots__ = (
        "_big",
        "_big_len",
        "_big_mv",
        "_big_pos",
        "_buf",
        "_ipc",
        "_mv",
        "_r",
        "_w",
        "error",
        "handshake_done",
        "on_handshake",
        "on_message",
        "recv_max_size",
    )

    def __init__(
        self,
        on_handshake: Callable[[int], None],
        on_message: Callable[[bytes | bytearray], None],
        *,
        recv_max_size: int = 0,
        ipc: bool = False,
    ) -> None:
        self.on_handshake: Callable[[int], None] = on_handshake
        self.on_message: Callable[[bytes | bytearray], None] = on_message
        self.recv_max_size: int = recv_max_size
        self._ipc = ipc
        self._buf = bytearray(INITIAL_BUFFER)
        self._mv = memoryview(self._buf)
        self._r = 0
        self._w = 0
        self._big: bytearray | None = None
        self._big_mv: memoryview | None = None
        self._big_pos = 0
        self._big_len = 0
        self.handshake_done: bool = False
        #: The first error seen; once set, all further input is discarded.
        self.error: Error | None = None

    def fail(self, error: Error) -> None:
        """Record ``error`` and discard all further input."""
        if self.error is None:
            self.error = error
        self._big = self._big_mv = None
        self._r = self._w = 0

    def get_buffer(self, sizehint: int = -1) -> memoryview:
        """A writable buffer for the next bytes from the stream (never empty)."""
        if self._big_mv is not None:
            return self._big_mv[self._big_pos :]
        if self._w == len(self._buf):
            self._compact()
        return self._mv[self._w :]

    def _compact(self) -> None:
        r, w = self._r, self._w
        if r:
            # bytes() first: the source and target ranges may overlap.
            self._buf[: w - r] = bytes(self._mv[r:w])
            self._r, self._w = 0, w - r

    def _grow(self, at_least: int) -> None:
        """Move the unparsed bytes into a larger buffer of ``at_least`` bytes or more."""
        size = len(self._buf)
        target = max(at_least, min(size * 4, RECV_BUFFER))
        r, w = self._r, self._w
        new = bytearray(target)
        new[: w - r] = self._mv[r:w]
        # Views handed out earlier keep the old buffer alive until they go.
        self._buf = new
        self._mv = memoryview(new)
        self._r, self._w = 0, w - r

    def buffer_updated(self, nbytes: int) -> None:
        """``nbytes`` were written into the last buffer from :meth:`get_buffer`."""
        if self.error is not None:
            return
        filled = not self._big and self._w + nbytes == len(self._buf)
        big = self._big
        if big is not None:
            self._big_pos += nbytes
            if self._big_pos < self._big_len:
                return
            # A big body always ends exactly at the end of the view handed
            # out, so there are no further bytes to parse from this read.
            self._deliver_big(big)
            return
        self._w += nbytes
        if not self.handshake_done:
            if self._w - self._r < HANDSHAKE_SIZE:
                return
            start = self._r
            self._r += HANDSHAKE_SIZE
            self.handshake_done = True
            try:
                proto = parse_handshake(self._mv[start : start + HANDSHAKE_SIZE])
            except ProtocolError as exc:
                self.fail(exc)
                return
            self.on_handshake(proto)
            if self.error is not None:
                return
        self._parse()
        if filled and self.error is None and self._big is None and len(self._buf) < RECV_BUFFER:
            # The read filled the buffer: the peer sends faster than one
            # buffer a read, so take bigger bites.
            self._grow(0)

    def _deliver_big(self, big: bytearray) -> None:
        view = self._big_mv
        assert view is not None
        self._big = self._big_mv = None
        if len(big) == self._big_len and not BigBufferPool.size_class(self._big_len):
            payload: bytes | bytearray = big  # not pooled: hand over the buffer itself
        else:
            payload = bytes(view)
            BIG_BUFFERS.give(big)
        self.on_message(payload)

    def _parse(self) -> None:
        # The hot loop of every stream receive: locals only, one length
        # check, and the ipc type byte looked at only on ipc.
        buf = self._buf
        mv = self._mv
        r, w = self._r, self._w
        ipc = self._ipc
        hlen = 9 if ipc else 8
        limit = self.recv_max_size
        most = limit if 0 < limit < MAX_STREAM_LENGTH else MAX_STREAM_LENGTH
        on_message = self.on_message
        while w - r >= hlen:
            if ipc:
                mtype, length = _unpack_ipc(buf, r)
                if mtype != IPC_MSG_TYPE:
                    self.fail(ProtocolError(f"ipc message type must be 1, got {mtype}"))
                    return
            else:
                length = _unpack_len(buf, r)[0]
            if length > most:
                self.fail(
                    MessageTooLarge(
                        f"peer sent a {length}-byte message, over recv_max_size {limit}"
                        if length <= MAX_STREAM_LENGTH
                        else f"peer sent a length with reserved bits set ({length:#x})"
                    )
                )
                return
            start = r + hlen
            end = start + length
            if end <= w:
                r = end
                on_message(bytes(mv[start:end]))
                if self.error is not None:
                    return
                continue
            if length >= BIG_BODY:
                try:
                    big = BIG_BUFFERS.take(length)
                except MemoryError:
                    self.fail(MessageTooLarge(f"cannot allocate a {length}-byte message"))
                    return
                have = w - start
                big[:have] = mv[start:w]
                self._big = big
                self._big_mv = memoryview(big)[:length]
                self._big_pos = have
                self._big_len = length
                r = w
            else:
                # A small frame still arriving: make sure all of it will fit.
                need = hlen + length
                if need > len(buf):
                    self._r = r
                    self._grow(need)
                    return
                if r + need > len(buf):
                    self._r = r
                    self._compact()
                    return
            break
        if r == w:
            self._r = self._w = 0
        else:
            self._r = r
            if r + hlen > len(buf):
                self._compact()  # not even a frame header fits after r
