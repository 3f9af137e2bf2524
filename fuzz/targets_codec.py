"""Targets for the wire codecs a peer reaches first: SP framing and WebSocket.

* ``sp_decoder``: :class:`purenng.core.sp_codec.SPDecoder` fed the way an
  ``asyncio.BufferedProtocol`` is fed (``get_buffer``/``buffer_updated``),
  tcp framing or ipc's type byte, any recv_max_size, any chunking.  It is
  checked against a reference parser written from wire-protocols.md §2.1:
  same messages, same verdict.  Allowed: nothing (the decoder records
  errors, it never raises).
* ``sp_handshake``: :func:`parse_handshake` on any bytes.  Allowed:
  ``ProtocolError``.  A header it accepts must re-encode to itself.
* ``ws_codec``: :class:`WSCodec.receive` on either side, with or without
  fragment mode, any frame limits and chunking, then a send and EOF.
  Allowed: nothing (errors are recorded as ``ProtocolError`` or
  ``MessageTooLarge`` in ``codec.error``).
* ``ws_client_handshake``: :meth:`ClientHandshake.feed` with arbitrary
  server answers.  Allowed: nothing (``error`` is ``ProtocolError``,
  ``ConnectionRefused`` or ``ConnectionReset``).
* ``ws_check_upgrade``: arbitrary bytes parsed by h11 as requests, each
  given to :func:`check_upgrade` and :func:`is_upgrade_request`.  Allowed:
  nothing from purenng (h11's own ``RemoteProtocolError`` for bytes that
  are not HTTP is the parser's answer, not ours).
"""

from __future__ import annotations

import base64
import struct

import h11
from websockets.frames import Frame, Opcode

from purenng.core.errors import (
    ConnectionRefused,
    ConnectionReset,
    Error,
    MessageTooLarge,
    ProtocolError,
)
from purenng.core.sp_codec import (
    HANDSHAKE_SIZE,
    MAX_STREAM_LENGTH,
    SPDecoder,
    encode_handshake,
    frame_prefix,
    parse_handshake,
)
from purenng.http.upgrade import (
    ClientHandshake,
    UpgradeAnswer,
    accept_token,
    check_upgrade,
    is_upgrade_request,
)
from purenng.transports._ws_codec import WSCodec

from ._harness import Input, target

# ---------------------------------------------------------------- SP over a byte stream

_SP_MODULES = ("purenng.core.sp_codec",)
_LIMITS = (1 << 20, 16, 1, 100, 65536, 70000, 200000, 4 << 20)


def _reference(stream: bytes, ipc: bool, limit: int) -> tuple[list[bytes], bool]:
    """Messages and whether the stream is bad, straight from wire-protocols.md §2.1/§2.2."""
    if len(stream) < HANDSHAKE_SIZE:
        return [], False
    head = stream[:HANDSHAKE_SIZE]
    if head[:4] != b"\x00SP\x00" or head[6:8] != b"\x00\x00":
        return [], True
    out: list[bytes] = []
    pos = HANDSHAKE_SIZE
    hlen = 9 if ipc else 8
    while len(stream) - pos >= hlen:
        if ipc and stream[pos] != 1:
            return out, True
        (length,) = struct.unpack_from(">Q", stream, pos + hlen - 8)
        if length > MAX_STREAM_LENGTH or (limit and length > limit):
            return out, True
        end = pos + hlen + length
        if end > len(stream):
            break
        out.append(stream[pos + hlen : end])
        pos = end
    return out, False


def _sp_seeds() -> tuple[bytes, ...]:
    hs = encode_handshake(0x10)
    tcp = hs + frame_prefix(3) + b"abc" + frame_prefix(0) + frame_prefix(5) + b"hello"
    ipc = hs + frame_prefix(2, ipc=True) + b"hi" + frame_prefix(0, ipc=True)
    big = hs + frame_prefix(70000) + b"x" * 70000
    return (
        b"\x00\x00\x07" + tcp,
        b"\x01\x00\x03" + ipc,
        b"\x08\x05\x11\x45" + big[:4096],
        b"\x02\x00\x01" + frame_prefix(1 << 62) + b"\x00",
        b"\x00\x01\x00" + hs + frame_prefix(17) + b"y" * 17,
    )


@target(
    "sp_decoder",
    allowed=(),
    modules=_SP_MODULES,
    seeds=_sp_seeds(),
    weight=0.5,
    max_len=8192,
    dictionary=(
        b"\x00SP\x00",
        b"\x00\x00\x00\x00\x00\x00\x00",
        b"\x01\x00\x00\x00",
        b"\xff" * 8,
    ),
)
def sp_decoder(data: bytes) -> object:
    """Flags (bit 0: ipc, 1: add a valid header, 2: refuse the peer, 3: pad), limit, cuts, stream.

    With bit 3 the stream is padded with a number of KiB of 0xaa bytes taken
    from the next byte, so that big bodies (64 KiB and more) can complete
    (a frame length read from the padding is always too large).
    """
    inp = Input(data)
    flags = inp.u8()
    ipc = bool(flags & 1)
    limit = _LIMITS[inp.u8() % len(_LIMITS)]
    pieces_seed = Input(inp.take(1))
    pad = inp.u8() * 1024 if flags & 8 else 0
    stream = inp.rest()
    if flags & 2:
        stream = encode_handshake(0x11) + stream
    if pad:
        stream += b"\xaa" * pad
    got: list[bytes] = []
    protos: list[int] = []
    refuse = bool(flags & 4)

    def on_handshake(proto: int) -> None:
        protos.append(proto)
        if refuse:
            dec.fail(ProtocolError("refused"))

    def on_message(payload: bytes | bytearray) -> None:
        assert isinstance(payload, bytes | bytearray)
        got.append(bytes(payload))

    dec = SPDecoder(on_handshake, on_message, recv_max_size=limit, ipc=ipc)
    for piece in pieces_seed.chunks(stream):
        if dec.error is not None:
            # Everything after an error is discarded; feed one more piece only.
            dec.buffer_updated(0)
            break
        view = memoryview(piece)
        while view:
            buf = dec.get_buffer(-1)
            assert len(buf) > 0, "get_buffer returned an empty buffer"
            n = min(len(buf), len(view))
            buf[:n] = view[:n]
            dec.buffer_updated(n)
            view = view[n:]
    want, bad = _reference(stream, ipc, limit)
    assert len(protos) <= 1
    if refuse and protos:
        assert got == []
        assert isinstance(dec.error, ProtocolError)
        return ("refused",)
    assert got == want, f"decoded {len(got)} messages, the reference {len(want)}"
    assert (dec.error is not None) == bad, f"decoder error {dec.error!r}, reference bad={bad}"
    if dec.error is not None:
        assert isinstance(dec.error, ProtocolError | MessageTooLarge), repr(dec.error)
    return (ipc, len(got) > 0, type(dec.error).__name__)


@target(
    "sp_handshake",
    allowed=(ProtocolError,),
    modules=_SP_MODULES,
    seeds=(encode_handshake(0x30), b"\x16\x03\x01\x00\x05\x01\x00\x00", b"GET / HTTP/1.1"),
    weight=3,
    max_len=16,
)
def sp_handshake(data: bytes) -> object:
    """Any bytes as a peer's 8-byte SP header."""
    proto = parse_handshake(data)
    assert 0 <= proto <= 0xFFFF
    assert encode_handshake(proto) == data, "an accepted header must re-encode to itself"
    return ("ok",)


# ---------------------------------------------------------------- WebSocket framing

_WS_MODULES = ("purenng.transports._ws_codec",)
_UPGRADE_MODULES = ("purenng.http.upgrade",)
_WS_MAX = (0, 1 << 20, 10, 125, 1000)
_WS_FRAME = (1 << 20, 0, 10, 126, 65536)


def _frame(op: Opcode, payload: bytes, *, fin: bool = True, mask: bool) -> bytes:
    return Frame(op, payload, fin).serialize(mask=mask, extensions=[])


def _ws_seeds() -> tuple[bytes, ...]:
    out = []
    for masked, side in ((True, 0), (False, 1)):
        frames = (
            _frame(Opcode.BINARY, b"\x00\x00\x00\x01hello", mask=masked)
            + _frame(Opcode.BINARY, b"ab", fin=False, mask=masked)
            + _frame(Opcode.PING, b"p", mask=masked)
            + _frame(Opcode.CONT, b"cd", mask=masked)
            + _frame(Opcode.PONG, b"q", mask=masked)
            + _frame(Opcode.CLOSE, struct.pack(">H", 1000) + b"bye", mask=masked)
        )
        out.append(bytes([side, 1, 1, 7]) + frames)
        out.append(bytes([side | 2, 0, 2, 0]) + _frame(Opcode.TEXT, b"text", mask=masked))
        out.append(bytes([side, 3, 3, 0]) + _frame(Opcode.BINARY, b"z" * 300, mask=masked))
    return tuple(out)


@target(
    "ws_codec",
    allowed=(),
    modules=_WS_MODULES,
    seeds=_ws_seeds(),
    weight=1.2,
    max_len=8192,
    dictionary=(b"\x82", b"\x02", b"\x80", b"\x89", b"\x8a", b"\x88", b"\x81", b"\x7e", b"\x7f"),
)
def ws_codec(data: bytes) -> object:
    """Flags (bit 0: we are the server, bit 1: fragment mode), limits, chunk seed, frames."""
    inp = Input(data)
    flags = inp.u8()
    server = bool(flags & 1)
    fragments = bool(flags & 2)
    max_size = _WS_MAX[inp.u8() % len(_WS_MAX)]
    frame_max = _WS_FRAME[inp.u8() % len(_WS_FRAME)]
    cuts = Input(inp.take(1))
    codec = WSCodec(
        client=not server,
        recv_max_size=max_size,
        recv_frame_max=frame_max,
        send_frame_max=7,
        fragments=fragments,
    )
    n_msgs = 0
    for piece in cuts.chunks(inp.rest()):
        msgs = codec.receive(piece)
        for m in msgs:
            assert isinstance(m, bytes | bytearray)
            if fragments:
                assert m, "fragment mode never returns an empty piece"
                if frame_max:
                    assert len(m) <= frame_max
            elif max_size:
                assert len(m) <= max_size, f"a {len(m)}-byte message over {max_size}"
        n_msgs += len(msgs)
        out = codec.data_to_send()
        assert all(isinstance(b, bytes) for b in out)
    if codec.error is not None:
        assert isinstance(codec.error, ProtocolError | MessageTooLarge), repr(codec.error)
        assert codec.closing
    codec.send_message(b"\x00\x00\x00\x01", b"reply body")
    codec.ping(b"x")
    codec.data_to_send()
    codec.receive_eof()
    codec.close()
    codec.data_to_send()
    assert codec.receive(b"\x82\x00") == []
    return (server, fragments, n_msgs > 0, type(codec.error).__name__, codec.close_code)


# ---------------------------------------------------------------- the upgrade handshake

_KEY = base64.b64encode(b"0123456789abcdef")
_ACCEPT = accept_token(_KEY)
_SUBS = ("rep.sp.nanomsg.org", None, "pair1.sp.nanomsg.org")


def _answer(status: bytes, *headers: bytes, body: bytes = b"") -> bytes:
    return b"HTTP/1.1 " + status + b"\r\n" + b"".join(h + b"\r\n" for h in headers) + b"\r\n" + body


def _hs_seeds() -> tuple[bytes, ...]:
    ok = _answer(
        b"101 Switching Protocols",
        b"Upgrade: websocket",
        b"Connection: Upgrade",
        b"Sec-WebSocket-Accept: " + _ACCEPT,
        b"Sec-WebSocket-Protocol: rep.sp.nanomsg.org",
    )
    return (
        b"\x00\x00" + ok + b"\x82\x05hello",
        b"\x01\x05" + _answer(b"100 Continue") + ok,
        b"\x00\x00"
        + _answer(
            b"404 Not Found",
            b"Content-Type: text/plain",
            b"Content-Length: 9",
            body=b"no route\n",
        ),
        b"\x00\x03"
        + _answer(b"400 Bad Request", b"Transfer-Encoding: chunked", body=b"3\r\nabc\r\n0\r\n\r\n"),
        b"\x01\x00" + ok.replace(b"rep.sp", b"req.sp"),
    )


@target(
    "ws_client_handshake",
    allowed=(),
    modules=_UPGRADE_MODULES,
    seeds=_hs_seeds(),
    weight=0.4,
    max_len=4096,
    dictionary=(
        b"HTTP/1.1 101 ",
        b"\r\n",
        b"Sec-WebSocket-Accept: ",
        _ACCEPT,
        b"Upgrade: websocket",
        b"Connection: Upgrade",
        b"Sec-WebSocket-Protocol: ",
        b"Sec-WebSocket-Extensions: x",
        b"Content-Length: ",
        b"Transfer-Encoding: chunked",
    ),
)
def ws_client_handshake(data: bytes) -> object:
    """Subprotocol choice, chunk seed, the server's answer (then EOF)."""
    inp = Input(data)
    sub = _SUBS[inp.u8() % len(_SUBS)]
    cuts = Input(inp.take(1))
    hs = ClientHandshake("example.org:80", "/path?q", sub, key=_KEY, max_response_size=2048)
    assert hs.request_bytes().startswith(b"GET /path?q HTTP/1.1\r\n")
    for piece in cuts.chunks(inp.rest()):
        hs.feed(piece)
    hs.eof()
    assert hs.done
    if hs.error is None:
        assert hs.status == 101
        assert isinstance(hs.trailing, bytes)
    else:
        assert isinstance(hs.error, ProtocolError | ConnectionRefused | ConnectionReset), repr(
            hs.error
        )
    return (hs.status, type(hs.error).__name__)


def _req(*headers: bytes, method: bytes = b"GET", target: bytes = b"/sp") -> bytes:
    return (
        method + b" " + target + b" HTTP/1.1\r\n" + b"".join(h + b"\r\n" for h in headers) + b"\r\n"
    )


_UPGRADE = (
    b"Host: x",
    b"Upgrade: websocket",
    b"Connection: keep-alive, Upgrade",
    b"Sec-WebSocket-Version: 13",
    b"Sec-WebSocket-Key: " + _KEY,
    b"Sec-WebSocket-Protocol: rep.sp.nanomsg.org",
)


@target(
    "ws_check_upgrade",
    allowed=(),
    modules=_UPGRADE_MODULES,
    seeds=(
        b"\x00" + _req(*_UPGRADE),
        b"\x01" + _req(*_UPGRADE[:4], b"Sec-WebSocket-Key: short"),
        b"\x02" + _req(*_UPGRADE, b"Content-Length: 5", method=b"POST") + b"hello",
        b"\x00" + _req(b"Host: x", b"Upgrade: h2c, WebSocket"),
    ),
    weight=1.0,
    max_len=4096,
    dictionary=(*_UPGRADE, b"\r\n", b"Content-Length: 0", b"Transfer-Encoding: chunked", b","),
)
def ws_check_upgrade(data: bytes) -> object:
    """Subprotocol choice, then bytes parsed as HTTP requests by h11."""
    inp = Input(data)
    sub = _SUBS[inp.u8() % len(_SUBS)]
    conn = h11.Connection(h11.SERVER, max_incomplete_event_size=4096)
    conn.receive_data(inp.rest())
    conn.receive_data(b"")
    statuses = []
    request: h11.Request | None = None
    event: object = None
    for _ in range(64):
        try:
            event = conn.next_event()
        except h11.RemoteProtocolError:
            break
        if isinstance(event, h11.Request):
            request = event
        elif not isinstance(event, h11.Data):
            break
    if request is not None and isinstance(event, h11.EndOfMessage):
        is_upgrade_request(request)
        answer = check_upgrade(request, sub, {"X-Extra": "1"})
        assert isinstance(answer, UpgradeAnswer)
        assert answer.status in (101, 400, 405, 413), answer.status
        if answer.accepted:
            h = dict(answer.headers)
            key = {k.lower(): v for k, v in request.headers}[b"sec-websocket-key"]
            assert h[b"Sec-WebSocket-Accept"] == accept_token(key.strip())
            # h11 must be able to send the 101 (the HTTP service does it unguarded).
            out = conn.send(h11.InformationalResponse(status_code=101, headers=answer.headers))
            assert out
        statuses.append(answer.status)
    return tuple(statuses)


__all__ = [
    "Error",
    "sp_decoder",
    "sp_handshake",
    "ws_check_upgrade",
    "ws_client_handshake",
    "ws_codec",
]
