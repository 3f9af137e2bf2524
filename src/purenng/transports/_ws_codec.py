"""The pure part of SP over WebSocket: message framing after the upgrade.

What it is: the decisions of the ws/wss transport without any I/O, so that
they can be tested byte by byte and reused by any event loop.  The asyncio
adapter is :mod:`purenng.transports.ws`; the HTTP server that shares a port
between SP paths, REST handlers and static files is :mod:`purenng.http`.

Libraries (the ``ws`` extra), and why these two:

* **h11** parses and writes HTTP/1.1 for the upgrade request and response,
  and for every other request the shared server answers.  Nothing here
  hand-rolls HTTP.  h11 writes header names exactly as given, which matters:
  NNG's dialer compares ``Upgrade: websocket`` case-sensitively, and
  nanomsg's compares whole values (``reference/wire-protocols.md`` §2.4, §4
  items 7 and 24).
* **websockets' sans-I/O layer** (:class:`websockets.protocol.Protocol`,
  websockets >= 16) frames messages.  Compared with wsproto it (1) checks
  both of NNG's receive limits, the per-frame ``ws:rxframe-max`` and the
  per-message ``recv-size-max``, from the frame *header*, before buffering
  a payload (its ``max_size=(message, fragment)`` pair), closing with 1009;
  (2) answers pings and echoes the close frame by itself and fails a
  connection with the right close code (RFC 6455 §7.1.7); and (3) measured
  about three times faster per small message on this project's machine (its
  C mask helper and leaner parser): 64-byte messages cost 2.4 + 3.7 µs
  (masked send + receive) against wsproto 1.3's 7.7 + 10.3 µs.  The
  handshake is *not* websockets': it is done with h11 here, because the
  same server also answers plain HTTP requests.

Rules (``reference/wire-protocols.md`` §2.4):

* The subprotocol is ``<name>.sp.nanomsg.org`` where ``<name>`` is the
  **listener's** protocol: a dialer sends its peer's name, a listener checks
  it against its own name and echoes it.  It is required both ways; a
  missing or wrong one gets HTTP 400 (as NNG).
* No 8-byte SP header travels: the subprotocol implies the peer protocol.
* One SP message (header + body) is one binary WebSocket message, sent in
  frames of at most ``send_frame_max`` bytes (NNG: 64 KiB).  A received
  frame over ``recv_frame_max`` (NNG: 1 MiB) or a message over
  ``recv_max_size`` closes with 1009; a text frame closes with 1003; bad
  framing (masking, reserved bits, oversized control frames) with 1002.
* No extensions are offered or accepted.
* Pings are answered, but only the latest one that is still unanswered
  when the pong can go out (RFC 6455 §5.5.3 allows it): the codec holds at
  most **one** pong, so a peer that floods pings and reads nothing cannot
  make us queue pongs without bound.  The adapter takes the pong with
  :meth:`WSCodec.data_to_send` only while its connection can be written to.
* Byte streams (``purenng.stream`` over ws) use the same framing with no
  subprotocol requirement: the subprotocol is the application's
  (``ws_protocol``), or none.  A ``None`` subprotocol here means: none is
  asked for, none may be answered, and a listener takes any request.

Theory of operation: the upgrade request and its answer are HTTP's
(:mod:`purenng.http.upgrade`); :class:`WSCodec` wraps one websockets ``Protocol``:
``receive(data)`` returns the complete messages, ``send_message()`` queues
frames, ``data_to_send()`` gives the bytes to write (an empty ``bytes``
means: close the connection once the rest is written), and ``error`` says
why the connection failed.  Bad input never raises: it is recorded, the
close frame is queued, and the rest is discarded.  Mirrors NNG's
``src/supplemental/websocket/websocket.c`` and ``src/sp/transport/ws/``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from websockets.exceptions import PayloadTooBig
from websockets.frames import BINARY, CLOSE, CONT, PING, PONG, TEXT, CloseCode, Frame
from websockets.protocol import CLOSED, OPEN, Protocol, Side

from ..http.upgrade import SUBPROTOCOL_SUFFIX
from ..plugin import (
    MessageTooLarge,
    ProtocolError,
)

if TYPE_CHECKING:
    from ..plugin import BytesLike

__all__ = [
    "CLOSE_UNSUPPORTED",
    "DEFAULT_RECV_FRAME_MAX",
    "DEFAULT_SEND_FRAME_MAX",
    "SUBPROTOCOL_SUFFIX",
    "WSCodec",
    "subprotocol",
]

#: NNG's ``ws:rxframe-max``: largest frame accepted (wire-protocols.md §2.4).
DEFAULT_RECV_FRAME_MAX = 1 << 20
#: NNG's ``ws:txframe-max``: larger messages are sent in frames of this size.
DEFAULT_SEND_FRAME_MAX = 64 * 1024
#: Close code used when the peer sends text (NNG: 1003, wire-protocols.md §2.4).
CLOSE_UNSUPPORTED = 1003


def subprotocol(protocol_name: str) -> str:
    """The ``Sec-WebSocket-Protocol`` value for a protocol (``"rep"`` -> ``rep.sp.nanomsg.org``)."""
    return protocol_name + SUBPROTOCOL_SUFFIX


class _Protocol(Protocol):
    """websockets' protocol, except that pings are not answered at once.

    websockets queues one pong per ping as it parses them, so a peer sending
    pings without reading the pongs grows our output by what it sends.  Here
    a ping only records its payload (a newer ping replaces an older one not
    yet answered: RFC 6455 §5.5.3); :meth:`WSCodec.data_to_send` sends it.
    """

    pending_pong: bytes | None = None

    def recv_frame(self, frame: Frame) -> None:
        if frame.opcode is PING:
            self.pending_pong = bytes(frame.data)
            self.events.append(frame)
            return
        if frame.opcode is CLOSE:
            self.send_pending_pong()  # answered before the close echo, in order
        super().recv_frame(frame)

    def send_pending_pong(self) -> None:
        """Queue the pong for the latest unanswered ping, if any (while open)."""
        payload = self.pending_pong
        if payload is not None:
            self.pending_pong = None
            if self.state is OPEN:
                self.send_frame(Frame(PONG, payload))


class WSCodec:
    """SP messages over one open WebSocket connection (either side).

    Args:
        client: True on the dialer's side (frames out are masked).
        recv_max_size: Largest message accepted, bytes; 0: no limit.
        recv_frame_max: Largest frame accepted, bytes; 0: no limit.
        send_frame_max: Messages larger than this go out in several frames;
            0: always one frame.
        fragments: True for byte streams: :meth:`receive` returns each binary
            frame's payload as it comes, without waiting for the message's
            last frame (message boundaries mean nothing to a byte stream, and
            this keeps a large message from being held whole).

    Attributes:
        error: Why the connection failed (``MessageTooLarge`` for 1009,
            ``ProtocolError`` for everything else), or None.
        closing: True once a close frame was sent or received, or the
            connection failed: no more messages come in or go out.
        close_code: The close code the peer sent, if any.
        pongs: Payloads of pongs received and not yet taken.
        pings_coalesced: Pings left unanswered because a newer one came
            before the pong could go out (RFC 6455 §5.5.3).
    """

    __slots__ = (
        "_fragments",
        "_parts",
        "_proto",
        "close_code",
        "closing",
        "error",
        "pings_coalesced",
        "pongs",
        "send_frame_max",
    )

    def __init__(
        self,
        *,
        client: bool,
        recv_max_size: int = 0,
        recv_frame_max: int = DEFAULT_RECV_FRAME_MAX,
        send_frame_max: int = DEFAULT_SEND_FRAME_MAX,
        fragments: bool = False,
    ) -> None:
        self._fragments = fragments
        self._proto = _Protocol(
            Side.CLIENT if client else Side.SERVER,
            state=OPEN,
            max_size=(recv_max_size or None, recv_frame_max or None),
        )
        self.send_frame_max: int = send_frame_max
        self._parts: list[bytes | bytearray] | None = None
        self.error: BaseException | None = None
        self.closing: bool = False
        self.close_code: int | None = None
        self.pongs: list[bytes] = []
        self.pings_coalesced: int = 0

    # ------------------------------------------------------------ receiving

    def receive(self, data: bytes | bytearray) -> list[bytes | bytearray]:
        """Feed received bytes; the complete messages they finish, in order."""
        if self.closing:
            return []  # after a close or a failure the rest is discarded
        proto = self._proto
        answered = proto.pending_pong is None
        proto.receive_data(data)
        out: list[bytes | bytearray] = []
        for event in proto.events_received():
            # A Protocol in the OPEN state yields frames only (requests and
            # responses come from the handshake subclasses, not used here).
            frame = cast("Frame", event)
            opcode = frame.opcode
            if opcode is BINARY or opcode is CONT:
                # Parsed payloads are bytes (masked) or bytearray (unmasked).
                data = cast("bytes | bytearray", frame.data)
                if self._fragments:
                    if data:
                        out.append(data)
                elif frame.fin:
                    parts = self._parts
                    if parts is None:
                        out.append(data)
                    else:
                        parts.append(data)
                        out.append(b"".join(parts))
                        self._parts = None
                elif self._parts is None:
                    self._parts = [data]
                else:
                    self._parts.append(data)
            elif opcode is TEXT:
                self.fail(CLOSE_UNSUPPORTED, "binary messages only")
                self.error = ProtocolError("peer sent a text frame (closed with 1003)")
                return out
            elif opcode is PONG:
                self.pongs.append(bytes(frame.data))
            elif opcode is PING:
                # The pong waits in the protocol (data_to_send writes it);
                # an older ping still waiting for one is answered by it.
                if not answered:
                    self.pings_coalesced += 1
                answered = False
            else:  # CLOSE: the protocol echoed it
                self._closed_by_peer()
        self._check_failed()
        return out

    def receive_eof(self) -> None:
        """The peer closed the byte stream."""
        if self._proto.state is not CLOSED:
            self._proto.receive_eof()
        self.closing = True

    def _closed_by_peer(self) -> None:
        self.closing = True
        rcvd = self._proto.close_rcvd
        if rcvd is not None:
            self.close_code = int(rcvd.code)

    def _check_failed(self) -> None:
        exc = self._proto.parser_exc
        if exc is None or self.error is not None:
            return
        self.closing = True
        if isinstance(exc, PayloadTooBig):
            err: BaseException = MessageTooLarge(f"closed with 1009: {exc}")
        elif isinstance(exc, EOFError):
            return  # a peer that vanished is a plain close, not an error
        else:
            err = ProtocolError(f"bad WebSocket framing (closed with 1002): {exc}")
        err.__cause__ = exc
        self.error = err

    # ------------------------------------------------------------ sending

    def send_message(self, header: BytesLike, body: BytesLike) -> None:
        """Queue one SP message as one binary message (fragmented if large).

        Ignored once :attr:`closing`.
        """
        if self.closing:
            return
        proto = self._proto
        limit = self.send_frame_max
        n = len(header) + len(body)
        if not limit or n <= limit:
            proto.send_binary(b"".join((header, body)) if header else body)
            return
        view = memoryview(body)
        head: BytesLike
        if header:
            take = max(0, limit - len(header))
            head = b"".join((header, view[:take]))
            view = view[take:]
        else:
            head, view = view[:limit], view[limit:]
        proto.send_binary(head, fin=not view)
        while view:
            chunk, view = view[:limit], view[limit:]
            proto.send_continuation(chunk, fin=not view)

    def ping(self, payload: bytes = b"") -> None:
        """Queue a ping (payload at most 125 bytes)."""
        if not self.closing:
            self._proto.send_ping(payload)

    def close(self, code: int = CloseCode.NORMAL_CLOSURE, reason: str = "") -> None:
        """Start the closing handshake; nothing more is sent or received."""
        if self.closing:
            return
        self.closing = True
        if self._proto.state is OPEN:
            self._proto.send_pending_pong()
            self._proto.send_close(code, reason)

    def fail(self, code: int, reason: str = "") -> None:
        """Fail the connection with ``code`` (a close frame, then the end of the stream)."""
        self.closing = True
        self._proto.fail(code, reason)

    def data_to_send(self, *, pong: bool = True) -> list[bytes]:
        """Bytes to write, in order; an empty ``bytes`` means: then close the connection.

        Args:
            pong: Include the pong for the latest unanswered ping.  False
                while the connection's write buffer is full: the pong waits
                (later pings replace it) instead of growing that buffer.
        """
        proto = self._proto
        if pong:
            proto.send_pending_pong()
        return proto.data_to_send()

    @property
    def pong_pending(self) -> bool:
        """True while a received ping waits for its pong."""
        return self._proto.pending_pong is not None

    def pending_bytes(self) -> int:
        """Bytes queued here and not yet taken by :meth:`data_to_send` (a waiting pong
        counts as its payload plus a frame header)."""
        n = sum(len(w) for w in self._proto.writes)
        pong = self._proto.pending_pong
        if pong is not None:
            n += len(pong) + 6
        return n

    @property
    def open(self) -> bool:
        """True while messages may still flow."""
        return not self.closing
