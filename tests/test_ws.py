"""The ws/wss transports: conformance, the pure codec, the wire rules of §2.4, port sharing.

* The conformance kit first, then the pure codec (handshake decisions and
  framing, byte by byte, no loop), then the transport through the public
  socket API.
* Wire-level cases (status lines, header casing, close codes, frame sizes)
  use :class:`RawWS`: a client that writes its own upgrade request and
  speaks raw frames through websockets' sans-I/O ``Protocol``, an
  implementation independent of purenng's handshake code, so a test can
  send what a well-behaved peer never would (text frames, oversized frames,
  unanswered pings) and read exactly what purenng sent back.
* Every wait is bounded (``T``); no sleeps stand in for synchronisation.
"""

from __future__ import annotations

import ast
import asyncio
import json
import socket
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import h11
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from websockets.frames import BINARY, CLOSE, CONT, PING, PONG, Close, Frame
from websockets.protocol import OPEN, Protocol, Side

import purenng
from purenng.core.url import parse_url
from purenng.http import upgrade
from purenng.testing import check_pipe_transport
from purenng.transports import _ws_codec as codec
from purenng.transports.ws import WSPipe, parse_ws_url
from support.waiting import await_for

if TYPE_CHECKING:
    from collections.abc import Callable

#: Generous limit (seconds) for any single wait; only there to stop hangs.
T = 10.0
KEY = b"dGhlIHNhbXBsZSBub25jZQ=="


# ---------------------------------------------------------------- helpers


def upgrade_request(
    port: int | None, path: str, subprotocol: str | None = "pair.sp.nanomsg.org", **extra: str
) -> bytes:
    """A client's upgrade request, written out by hand."""
    assert port is not None
    lines = [
        f"GET {path} HTTP/1.1",
        f"Host: 127.0.0.1:{port}",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Key: {KEY.decode()}",
        "Sec-WebSocket-Version: 13",
    ]
    if subprotocol is not None:
        lines.append(f"Sec-WebSocket-Protocol: {subprotocol}")
    lines += [f"{k.replace('_', '-')}: {v}" for k, v in extra.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


async def read_head(reader: asyncio.StreamReader) -> bytes:
    """The response head up to and including the blank line."""
    async with asyncio.timeout(T):
        return await reader.readuntil(b"\r\n\r\n")


async def http_exchange(port: int | None, request: bytes) -> tuple[bytes, bytes]:
    """Send ``request`` raw; the response head and whatever follows until EOF."""
    assert port is not None
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request)
        head = await read_head(reader)
        async with asyncio.timeout(T):
            rest = await reader.read()
        return head, rest
    finally:
        writer.close()


class RawWS:
    """A raw WebSocket client: own upgrade request, frames via websockets' sans-I/O layer."""

    def __init__(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, head: bytes
    ) -> None:
        self.reader = reader
        self.writer = writer
        self.head = head
        self.proto = Protocol(Side.CLIENT, state=OPEN, max_size=None)
        self.frames: list[Frame] = []
        self.eof = False

    @classmethod
    async def connect(cls, port: int | None, path: str = "/sp", **kw: Any) -> RawWS:
        assert port is not None
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(upgrade_request(port, path, **kw))
        head = await read_head(reader)
        assert head.startswith(b"HTTP/1.1 101 "), head
        return cls(reader, writer, head)

    def send(self, build: Callable[[Protocol], object]) -> None:
        """Queue frames with ``build(protocol)`` and write them."""
        build(self.proto)
        for data in self.proto.data_to_send():
            if data:
                self.writer.write(data)

    async def next_frame(self, *, answer: bool = True) -> Frame | None:
        """The next frame from the server (None at EOF); ``answer`` writes pongs/echoes."""
        async with asyncio.timeout(T):
            while not self.frames:
                if self.eof:
                    return None
                data = await self.reader.read(1 << 20)
                if not data:
                    self.eof = True
                    self.proto.receive_eof()
                else:
                    self.proto.receive_data(data)
                self.frames += [e for e in self.proto.events_received() if isinstance(e, Frame)]
                out = self.proto.data_to_send()
                if answer and not self.writer.is_closing():
                    for d in out:
                        if d:
                            self.writer.write(d)
        return self.frames.pop(0)

    async def frames_until_close(self) -> list[Frame]:
        """Frames up to and including the close frame (or EOF)."""
        got: list[Frame] = []
        while True:
            f = await self.next_frame()
            if f is None:
                return got
            got.append(f)
            if f.opcode is CLOSE:
                return got

    async def wait_eof(self) -> None:
        while await self.next_frame() is not None:
            pass

    def close(self) -> None:
        self.writer.close()


def close_code(frame: Frame) -> int:
    assert frame.opcode is CLOSE, frame
    return int(Close.parse(frame.data).code)


# ---------------------------------------------------------------- conformance


def test_conformance() -> None:
    report = check_pipe_transport("ws://127.0.0.1:0/sp")
    assert "many_in_order" in report.passed
    assert "large_message" in report.passed


# ---------------------------------------------------------------- pure codec: handshake


def test_accept_token_and_subprotocol() -> None:
    # RFC 6455 §1.3's example.
    assert upgrade.accept_token(KEY) == b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
    assert codec.subprotocol("rep") == "rep.sp.nanomsg.org"


def _request(**headers: str) -> h11.Request:
    conn = h11.Connection(h11.SERVER)
    method = headers.pop("method", "GET")
    base = {
        "Host": "x",
        "Upgrade": "websocket",
        "Connection": "keep-alive, Upgrade",
        "Sec-WebSocket-Key": KEY.decode(),
        "Sec-WebSocket-Version": "13",
        "Sec-WebSocket-Protocol": "chat, pair.sp.nanomsg.org",
    }
    for k, v in headers.items():
        name = k.replace("_", "-")
        if v == "":
            base.pop(name, None)
        else:
            base[name] = v
    raw = f"{method} /sp HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in base.items())
    conn.receive_data((raw + "\r\n").encode())
    event = conn.next_event()
    assert isinstance(event, h11.Request)
    return event


def test_check_upgrade_accepts_with_exact_casing() -> None:
    answer = upgrade.check_upgrade(_request(), "pair.sp.nanomsg.org", {"X-Extra": "1"})
    assert answer.accepted
    assert answer.headers == [
        (b"Upgrade", b"websocket"),
        (b"Connection", b"Upgrade"),
        (b"Sec-WebSocket-Accept", b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo="),
        (b"Sec-WebSocket-Protocol", b"pair.sp.nanomsg.org"),
        (b"X-Extra", b"1"),
    ]


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({"Sec_WebSocket_Protocol": ""}, 400),
        ({"Sec_WebSocket_Protocol": "pull.sp.nanomsg.org"}, 400),
        ({"Upgrade": ""}, 400),
        ({"Connection": "keep-alive"}, 400),
        ({"Sec_WebSocket_Version": "8"}, 400),
        ({"Sec_WebSocket_Key": "short"}, 400),
        ({"Sec_WebSocket_Key": ""}, 400),
        ({"method": "POST", "Content_Length": "0"}, 405),
        ({"method": "GET", "Content_Length": "3"}, 413),
    ],
)
def test_check_upgrade_refusals(headers: dict[str, str], status: int) -> None:
    answer = upgrade.check_upgrade(_request(**headers), "pair.sp.nanomsg.org")
    assert answer.status == status
    assert answer.body  # a reason a person can read


def _answer(status: int, *headers: str, body: bytes = b"") -> bytes:
    reason = {101: "Switching Protocols", 404: "Not Found"}.get(status, "X")
    lines = [f"HTTP/1.1 {status} {reason}", *headers]
    if status != 101:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


_GOOD_101 = (
    "Upgrade: websocket",
    "Connection: Upgrade",
    "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=",
    "Sec-WebSocket-Protocol: rep.sp.nanomsg.org",
)


def test_client_handshake_request_and_101_fed_byte_by_byte() -> None:
    hs = upgrade.ClientHandshake("h:1", "/a?b=1", "rep.sp.nanomsg.org", {"X-Y": "z"}, key=KEY)
    req = hs.request_bytes()
    assert req.startswith(b"GET /a?b=1 HTTP/1.1\r\n")
    for line in (
        b"Host: h:1",
        b"Upgrade: websocket",
        b"Connection: Upgrade",
        b"Sec-WebSocket-Key: " + KEY,
        b"Sec-WebSocket-Version: 13",
        b"Sec-WebSocket-Protocol: rep.sp.nanomsg.org",
        b"X-Y: z",
    ):
        assert b"\r\n" + line + b"\r\n" in req
    data = _answer(101, *_GOOD_101) + b"\x82\x01x"
    for i in range(len(data)):
        done = hs.feed(data[i : i + 1])
        assert done == (i >= len(data) - 4), i
    assert hs.error is None
    assert hs.status == 101
    assert hs.trailing == b"\x82\x01x"


_REFUSALS = [
    (
        _answer(404, "Content-Type: text/plain", body=b"no SP here"),
        purenng.ConnectionRefused,
        "no SP here",
    ),
    (_answer(403), purenng.ConnectionRefused, "403"),
    (_answer(400), purenng.ProtocolError, "HTTP 400"),
    (
        _answer(101, *_GOOD_101[:2], "Sec-WebSocket-Accept: AAAA", _GOOD_101[3]),
        purenng.ProtocolError,
        "Accept",
    ),
    (
        _answer(101, *_GOOD_101[:3], "Sec-WebSocket-Protocol: req.sp.nanomsg.org"),
        purenng.ProtocolError,
        "subprotocol",
    ),
    (_answer(101, *_GOOD_101[:3]), purenng.ProtocolError, "subprotocol"),
    (_answer(101, "Upgrade: h2c", *_GOOD_101[1:]), purenng.ProtocolError, "Upgrade"),
    (
        _answer(101, *_GOOD_101, "Sec-WebSocket-Extensions: permessage-deflate"),
        purenng.ProtocolError,
        "extension",
    ),
    (b"SSH-2.0-OpenSSH\r\n\r\n", purenng.ProtocolError, "bad HTTP"),
]


@pytest.mark.parametrize(("answer", "error", "text"), _REFUSALS)
def test_client_handshake_refusals(answer: bytes, error: type[Exception], text: str) -> None:
    hs = upgrade.ClientHandshake("h:1", "/", "rep.sp.nanomsg.org", key=KEY)
    assert hs.feed(answer)
    assert isinstance(hs.error, error), hs.error
    assert text in str(hs.error)


def test_client_handshake_eof() -> None:
    hs = upgrade.ClientHandshake("h:1", "/", "rep.sp.nanomsg.org", key=KEY)
    assert not hs.feed(b"HTTP/1.1 101 Swi")
    hs.eof()
    assert isinstance(hs.error, purenng.ConnectionReset)


# ---------------------------------------------------------------- pure codec: framing


def _pair(**kw: Any) -> tuple[codec.WSCodec, codec.WSCodec]:
    return codec.WSCodec(client=True, **kw), codec.WSCodec(client=False, **kw)


def _wire(src: codec.WSCodec) -> bytes:
    return b"".join(src.data_to_send())


def _frames(data: bytes, *, from_client: bool) -> list[Frame]:
    """Parse raw bytes as frames with an independent parser."""
    proto = Protocol(Side.SERVER if from_client else Side.CLIENT, state=OPEN, max_size=None)
    proto.receive_data(data)
    return [e for e in proto.events_received() if isinstance(e, Frame)]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    sizes=st.lists(st.integers(0, 300), min_size=1, max_size=6),
    header=st.binary(max_size=8),
    frame_max=st.integers(0, 64),
    chunk=st.integers(1, 50),
    client_sends=st.booleans(),
)
def test_codec_round_trip_under_any_chunking(
    sizes: list[int], header: bytes, frame_max: int, chunk: int, client_sends: bool
) -> None:
    client, server = _pair(send_frame_max=frame_max)
    src, dst = (client, server) if client_sends else (server, client)
    sent = [bytes((i + n) & 0xFF for i in range(n)) for n in sizes]
    for body in sent:
        src.send_message(header, body)
    data = _wire(src)
    got: list[bytes] = []
    for i in range(0, len(data), chunk):
        got += [bytes(m) for m in dst.receive(data[i : i + chunk])]
    assert got == [header + b for b in sent]
    assert dst.error is None
    assert not dst.closing


def test_codec_fragments_by_send_frame_max() -> None:
    client, _ = _pair(send_frame_max=64 * 1024)
    client.send_message(b"HDR!", bytes(200_000))
    frames = _frames(_wire(client), from_client=True)
    assert [f.opcode for f in frames] == [BINARY, CONT, CONT, CONT]
    assert [len(f.data) for f in frames] == [65536, 65536, 65536, 200_004 - 3 * 65536]
    assert [f.fin for f in frames] == [False, False, False, True]
    one, _ = _pair(send_frame_max=0)
    one.send_message(b"", bytes(200_000))
    assert [len(f.data) for f in _frames(_wire(one), from_client=True)] == [200_000]


def test_codec_frame_over_recv_frame_max_closes_1009() -> None:
    client, server = _pair(recv_frame_max=1000, recv_max_size=0)
    client.send_message(b"", bytes(1000))
    assert [len(m) for m in server.receive(_wire(client))] == [1000]
    client.send_message(b"", bytes(1001))
    # Refused on the frame header, before any of the payload arrives.
    assert server.receive(_wire(client)[:4]) == []
    assert isinstance(server.error, purenng.MessageTooLarge)
    reply = _frames(_wire(server), from_client=False)
    assert close_code(reply[0]) == 1009


def test_codec_fragmented_message_over_recv_max_size_closes_1009() -> None:
    client, server = _pair(recv_max_size=100, send_frame_max=30)
    client.send_message(b"", bytes(100))  # exactly at the limit, in 4 frames
    assert [len(m) for m in server.receive(_wire(client))] == [100]
    client.send_message(b"", bytes(101))  # each frame is small, the message is not
    assert server.receive(_wire(client)) == []
    assert isinstance(server.error, purenng.MessageTooLarge)
    assert close_code(_frames(_wire(server), from_client=False)[0]) == 1009


def test_codec_text_frame_closes_1003() -> None:
    peer = Protocol(Side.CLIENT, state=OPEN)
    peer.send_binary(b"ok")
    peer.send_text(b"text")
    peer.send_binary(b"never")
    _, server = _pair()
    msgs = server.receive(b"".join(peer.data_to_send()))
    assert msgs == [b"ok"]  # what came before the text frame is kept
    assert isinstance(server.error, purenng.ProtocolError)
    assert server.closing
    assert close_code(_frames(_wire(server), from_client=False)[0]) == 1003


@pytest.mark.parametrize(
    ("wire", "why"),
    [
        (b"\x82\x02ab", "unmasked frame from a client"),
        (b"\xc2\x80\x00\x00\x00\x00", "RSV1 set without an extension"),
        (b"\x89\xfe\x00\x80" + bytes(4 + 128), "control frame over 125 bytes"),
        (b"\x80\x80\x00\x00\x00\x00", "continuation without a message"),
    ],
)
def test_codec_bad_framing_closes_1002(wire: bytes, why: str) -> None:
    _, server = _pair()
    assert server.receive(wire) == [], why
    assert isinstance(server.error, purenng.ProtocolError), why
    assert close_code(_frames(_wire(server), from_client=False)[0]) == 1002


def test_codec_ping_pong_and_close_echo() -> None:
    client, server = _pair()
    client.ping(b"abc")
    assert server.receive(_wire(client)) == []
    pong = _frames(_wire(server), from_client=False)
    assert [(f.opcode, f.data) for f in pong] == [(PONG, b"abc")]
    client.receive(b"".join(f.serialize(mask=False) for f in pong))
    assert client.pongs == [b"abc"]
    client.close()
    assert client.closing
    client.send_message(b"", b"after close")  # ignored
    server.receive(_wire(client))
    assert server.closing
    assert server.error is None
    assert server.close_code == 1000
    echo = server.data_to_send()
    assert close_code(_frames(echo[0], from_client=False)[0]) == 1000
    assert echo[-1] == b""  # then the server ends the connection


def test_codec_module_is_pure() -> None:
    tree = ast.parse(Path(codec.__file__).read_text())
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    assert not names & {"asyncio", "socket", "selectors", "time"}, names


# ---------------------------------------------------------------- URLs


@pytest.mark.parametrize(
    ("url", "host", "port", "path", "target"),
    [
        ("ws://example.com", "example.com", 80, "/", "/"),
        ("wss://example.com", "example.com", 443, "/", "/"),
        ("ws://h:9/a/b?x=1#frag", "h", 9, "/a/b", "/a/b?x=1"),
        ("ws://h:9?x=1", "h", 9, "/", "/?x=1"),
        ("ws6://[::1]:9/p", "::1", 9, "/p", "/p"),
        ("ws://:9/p", "", 9, "/p", "/p"),
    ],
)
def test_url_forms(url: str, host: str, port: int, path: str, target: str) -> None:
    u = parse_ws_url(parse_url(url))
    assert (u.host, u.port, u.path, u.target) == (host, port, path, target)


@pytest.mark.parametrize(
    "url", ["ws4://[::1]:9/", "ws6://127.0.0.1:9/", "ws://h:x/", "ws://a b:1/"]
)
def test_bad_urls(url: str) -> None:
    with pytest.raises(purenng.BadAddress):
        parse_ws_url(parse_url(url))


@pytest.mark.parametrize("url", ["ws://:9/p", "ws://127.0.0.1:0/p", "ws://*:9/"])
async def test_undialable_urls(url: str) -> None:
    async with purenng.Pair0() as s:
        with pytest.raises(purenng.BadAddress):
            await s.adial(url, block=False)


# ---------------------------------------------------------------- through sockets


@pytest.mark.parametrize(
    ("listener", "dialer"), [("Pair0", "Pair0"), ("Pull0", "Push0"), ("Rep0", "Req0")]
)
async def test_exchange(listener: str, dialer: str) -> None:
    async with (
        getattr(purenng, listener)(recv_timeout=T) as a,
        getattr(purenng, dialer)(recv_timeout=T) as b,
    ):
        lst = await a.alisten("ws://127.0.0.1:0/x")
        await b.adial(lst.url, block=True)
        await b.asend(b"request")
        assert await a.arecv() == b"request"
        if listener != "Pull0":
            await a.asend(b"reply")
            assert await b.arecv() == b"reply"


async def test_port_sharing_two_sockets_two_paths() -> None:
    async with (
        purenng.Pair0(recv_timeout=T) as a,
        purenng.Pull0(recv_timeout=T) as b,
        purenng.Pair0(recv_timeout=T) as da,
        purenng.Push0(recv_timeout=T) as db,
    ):
        la = await a.alisten("ws://127.0.0.1:0/a")
        lb = await b.alisten(f"ws://127.0.0.1:{la.port}/b")
        assert lb.port == la.port
        assert lb.url.endswith("/b")
        with pytest.raises(purenng.AddressInUse, match="path '/a'"):
            await b.alisten(la.url)
        await da.adial(la.url, block=True)
        await db.adial(lb.url, block=True)
        await da.asend(b"to a")
        await db.asend(b"to b")
        assert await a.arecv() == b"to a"
        assert await b.arecv() == b"to b"
        # Closing one listener leaves the other (and the port) serving.
        await la.aclose()
        async with purenng.Pair0() as late, purenng.Push0() as db2:
            with pytest.raises(purenng.ConnectionRefused):
                await late.adial(la.url, block=True)
            await db2.adial(lb.url, block=True)
            await await_for(lambda: len(b.pipes) == 2, "b's second pipe")
        await lb.aclose()
    # The last listener gone, the port is free again.
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", la.port))


async def test_two_listeners_binding_one_port_at_once_share_it(purenng_free_port: int) -> None:
    port = purenng_free_port
    async with purenng.Pair0() as a, purenng.Pair0() as b, purenng.Pair0() as c:
        la, lb = await asyncio.gather(
            a.alisten(f"ws://127.0.0.1:{port}/a"), b.alisten(f"ws://127.0.0.1:{port}/b")
        )
        assert la.port == lb.port == port
        await c.adial(f"ws://127.0.0.1:{port}/b", block=True)
        await await_for(lambda: b.pipes, "b's pipe")


async def test_a_port_taken_by_another_program_is_address_in_use() -> None:
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        async with purenng.Pair0() as a:
            with pytest.raises(purenng.AddressInUse):
                await a.alisten(f"ws://127.0.0.1:{other.getsockname()[1]}/x")


async def test_unknown_path_is_404_and_refused() -> None:
    async with purenng.Pair0() as a, purenng.Pair0() as b:
        lst = await a.alisten("ws://127.0.0.1:0/sp")
        head, _ = await http_exchange(lst.port, upgrade_request(lst.port, "/nothing"))
        assert head.startswith(b"HTTP/1.1 404 ")
        with pytest.raises(purenng.ConnectionRefused, match="404"):
            await b.adial(f"ws://127.0.0.1:{lst.port}/nothing", block=True)
        assert not a.pipes


async def test_wrong_or_missing_subprotocol_is_400() -> None:
    async with purenng.Pull0() as pull, purenng.Pair0() as pair:
        lst = await pull.alisten("ws://127.0.0.1:0/sp")
        for sub in (None, "pair.sp.nanomsg.org", "push.sp.nanomsg.org"):
            head, body = await http_exchange(lst.port, upgrade_request(lst.port, "/sp", sub))
            assert head.startswith(b"HTTP/1.1 400 "), (sub, head)
            assert b"pull.sp.nanomsg.org" in body
        # A PAIR dialer asks for pair.sp.nanomsg.org: the PULL listener refuses it.
        with pytest.raises(purenng.ProtocolError, match="400"):
            await pair.adial(lst.url, block=True)
        async with purenng.Push0() as push:  # and the right peer still gets in
            await push.adial(lst.url, block=True)


async def test_101_answer_has_the_exact_headers_peers_require() -> None:
    async with purenng.Rep0(ws_response_headers={"X-Served-By": "purenng"}) as rep:
        lst = await rep.alisten("ws://127.0.0.1:0/api")
        ws = await RawWS.connect(lst.port, "/api", subprotocol="rep.sp.nanomsg.org")
        lines = ws.head.split(b"\r\n")
        assert lines[0] == b"HTTP/1.1 101 Switching Protocols"
        for want in (
            b"Upgrade: websocket",
            b"Connection: Upgrade",
            b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=",
            b"Sec-WebSocket-Protocol: rep.sp.nanomsg.org",
            b"X-Served-By: purenng",
        ):
            assert want in lines, (want, ws.head)
        assert not any(line.lower().startswith(b"sec-websocket-extensions") for line in lines)
        ws.close()


async def test_dialer_request_names_the_listeners_protocol() -> None:
    got: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()

    async def fake_server(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        got.set_result(await reader.readuntil(b"\r\n\r\n"))
        writer.write(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
        writer.close()

    server = await asyncio.start_server(fake_server, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server, purenng.Req0() as req:
        with pytest.raises(purenng.ConnectionRefused):
            await req.adial(
                f"ws://127.0.0.1:{port}/svc?v=2", block=True, ws_request_headers={"X-Tok": "7"}
            )
        head = await got
    lines = head.split(b"\r\n")
    assert lines[0] == b"GET /svc?v=2 HTTP/1.1"
    for want in (
        f"Host: 127.0.0.1:{port}".encode(),
        b"Upgrade: websocket",
        b"Connection: Upgrade",
        b"Sec-WebSocket-Version: 13",
        b"Sec-WebSocket-Protocol: rep.sp.nanomsg.org",  # the peer's name, not "req"
        b"X-Tok: 7",
    ):
        assert want in lines, (want, head)


async def test_text_frame_closes_with_1003_and_listener_lives_on() -> None:
    async with purenng.Pair0(recv_timeout=T) as a:
        lst = await a.alisten("ws://127.0.0.1:0/sp")
        ws = await RawWS.connect(lst.port)
        await await_for(lambda: a.pipes, "the raw client's pipe")

        def binary_then_text(p: Protocol) -> None:
            p.send_binary(b"binary ok")
            p.send_text(b"text!")

        ws.send(binary_then_text)
        assert await a.arecv() == b"binary ok"
        frames = await ws.frames_until_close()
        assert close_code(frames[-1]) == 1003
        await ws.wait_eof()
        await await_for(lambda: not a.pipes, "the pipe to go")
        ws.close()
        async with purenng.Pair0() as b:
            await b.adial(lst.url, block=True)


async def test_oversized_frame_closes_with_1009() -> None:
    async with purenng.Pair0(recv_timeout=T, recv_max_size=8 << 20) as a:
        lst = await a.alisten("ws://127.0.0.1:0/sp")
        ws = await RawWS.connect(lst.port)
        await await_for(lambda: a.pipes, "the raw client's pipe")
        ws.send(lambda p: p.send_binary(bytes(1 << 20)))  # at ws_recv_frame_max: fine
        assert len(await a.arecv()) == 1 << 20
        ws.send(lambda p: p.send_binary(bytes((1 << 20) + 1)))
        frames = await ws.frames_until_close()
        assert close_code(frames[-1]) == 1009
        await await_for(lambda: a.stats()["oversize"] == 1, "the oversize count")
        ws.close()


async def test_fragmented_message_over_recv_max_size_closes_with_1009() -> None:
    async with purenng.Pair0(recv_timeout=T, recv_max_size=100_000) as a:
        lst = await a.alisten("ws://127.0.0.1:0/sp")
        ws = await RawWS.connect(lst.port)
        await await_for(lambda: a.pipes, "the raw client's pipe")

        def fragments(total: int) -> Callable[[Protocol], None]:
            def build(p: Protocol) -> None:
                p.send_binary(bytes(40_000), fin=False)
                p.send_continuation(bytes(40_000), fin=False)
                p.send_continuation(bytes(total - 80_000), fin=True)

            return build

        ws.send(fragments(100_000))  # exactly recv_max_size, in three frames
        assert len(await a.arecv()) == 100_000
        ws.send(fragments(100_001))
        frames = await ws.frames_until_close()
        assert close_code(frames[-1]) == 1009
        await await_for(lambda: a.stats()["oversize"] == 1, "the oversize count")
        ws.close()


async def test_large_messages_go_out_in_64k_frames() -> None:
    async with purenng.Pair0() as a, purenng.Pair0(ws_send_frame_max=0) as one_frame:
        lst = await a.alisten("ws://127.0.0.1:0/sp")
        lst1 = await one_frame.alisten("ws://127.0.0.1:0/sp")
        for sock, port, want in ((a, lst.port, 4), (one_frame, lst1.port, 1)):
            ws = await RawWS.connect(port)
            await await_for(lambda s=sock: s.pipes, "the raw client's pipe")  # type: ignore[misc]
            await sock.asend(bytes(200_000))
            frames = [await ws.next_frame()]
            while frames[-1] is not None and not frames[-1].fin:
                frames.append(await ws.next_frame())
            assert len(frames) == want
            assert all(f is not None and len(f.data) <= 65536 for f in frames) or want == 1
            assert sum(len(f.data) for f in frames if f is not None) == 200_000
            ws.close()


async def test_ping_is_answered() -> None:
    async with purenng.Pair0() as a:
        lst = await a.alisten("ws://127.0.0.1:0/sp")
        ws = await RawWS.connect(lst.port)
        ws.send(lambda p: p.send_ping(b"are you there"))
        frame = await ws.next_frame()
        assert frame is not None
        assert (frame.opcode, frame.data) == (PONG, b"are you there")
        ws.close()


async def test_aping_round_trip_between_purenng_pipes() -> None:
    async with purenng.Pair0() as a, purenng.Pair0() as b:
        lst = await a.alisten("ws://127.0.0.1:0/sp")
        await b.adial(lst.url, block=True)
        pipe = b.pipes[0]
        assert isinstance(pipe, WSPipe)
        rtt = await pipe.aping(b"x")
        assert rtt >= 0


async def test_ping_interval_closes_a_silent_peer() -> None:
    async with purenng.Pair0(ws_ping_interval=0.05) as a:
        lst = await a.alisten("ws://127.0.0.1:0/sp")
        closed: list[Any] = []
        a.on_pipe_event(lambda p, e: closed.append(p), purenng.PipeEvent.REMOVE_POST)
        ws = await RawWS.connect(lst.port)
        # Read without answering: the pings go unanswered.
        first = await ws.next_frame(answer=False)
        assert first is not None
        assert first.opcode is PING
        while (f := await ws.next_frame(answer=False)) is not None and f.opcode is PING:
            pass
        await await_for(lambda: closed, "the silent pipe to close")
        assert isinstance(closed[0].error, purenng.Timeout)
        ws.close()
    # A peer that answers keeps its pipe through several intervals (longer
    # ones here, so that a loaded machine does not make a prompt peer late).
    async with purenng.Pair0(ws_ping_interval=0.25) as b:
        lst = await b.alisten("ws://127.0.0.1:0/sp")
        ws2 = await RawWS.connect(lst.port)
        for _ in range(3):
            f = await ws2.next_frame()
            assert f is not None
            assert f.opcode is PING
        assert len(b.pipes) == 1
        ws2.close()


async def test_close_handshake_when_purenng_closes() -> None:
    async with purenng.Pair0() as a:
        lst = await a.alisten("ws://127.0.0.1:0/sp")
        ws = await RawWS.connect(lst.port)
        await await_for(lambda: a.pipes, "the raw client's pipe")
        a.pipes[0].close()
        frames = await ws.frames_until_close()
        assert [f.opcode for f in frames] == [CLOSE]
        assert close_code(frames[0]) == 1000
        await ws.wait_eof()
        ws.close()


async def test_close_handshake_when_the_peer_closes() -> None:
    async with purenng.Pair0() as a:
        lst = await a.alisten("ws://127.0.0.1:0/sp")
        gone: list[Any] = []
        a.on_pipe_event(lambda p, e: gone.append(p), purenng.PipeEvent.REMOVE_POST)
        ws = await RawWS.connect(lst.port)
        await await_for(lambda: a.pipes, "the raw client's pipe")
        ws.send(lambda p: p.send_close(1000, "bye"))
        frames = await ws.frames_until_close()
        assert close_code(frames[-1]) == 1000  # the echo
        await ws.wait_eof()  # then the server ends the connection
        await await_for(lambda: gone, "the pipe to go")
        assert gone[0].close_code == 1000
        assert gone[0].error is None
        ws.close()


async def test_closing_a_dialer_sends_1000_to_the_listener() -> None:
    async with purenng.Pair0() as a, purenng.Pair0() as b:
        gone: list[Any] = []
        a.on_pipe_event(lambda p, e: gone.append(p), purenng.PipeEvent.REMOVE_POST)
        lst = await a.alisten("ws://127.0.0.1:0/sp")
        await b.adial(lst.url, block=True)
        await await_for(lambda: a.pipes, "the listener's pipe")
        await b.aclose()
        await await_for(lambda: gone, "the listener's pipe to go")
        assert gone[0].close_code == 1000


def _has_ipv6() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
    except OSError:
        return False
    return True


@pytest.mark.skipif(not _has_ipv6(), reason="no IPv6 loopback here")
async def test_ws6_exchange() -> None:
    async with purenng.Pair0(recv_timeout=T) as a, purenng.Pair0(recv_timeout=T) as b:
        lst = await a.alisten("ws6://[::1]:0/six")
        assert lst.url.startswith("ws6://[::1]:")
        await b.adial(lst.url, block=True)
        await b.asend(b"v6")
        assert await a.arecv() == b"v6"


def test_sharing_a_port_across_loops_is_refused() -> None:
    # One socket lives on the background loop, the other on a loop of its own.
    with purenng.Pair0() as bg:
        lst = bg.listen("ws://127.0.0.1:0/a")

        async def other_loop() -> None:
            async with purenng.Pair0() as s:
                with pytest.raises(purenng.AddressInUse, match="another event loop"):
                    await s.alisten(f"ws://127.0.0.1:{lst.port}/b")

        asyncio.run(other_loop())


async def test_wss_exchange_with_verification(tmp_path: Path) -> None:
    certs = pytest.importorskip("purenng.certs").make_dev_certs()
    other = pytest.importorskip("purenng.certs").make_dev_certs()
    async with purenng.Pair0(recv_timeout=T) as a, purenng.Pair0(recv_timeout=T) as b:
        lst = await a.alisten("wss://127.0.0.1:0/secure", tls_config=certs.server_config())
        assert lst.url.startswith("wss://127.0.0.1:")
        await b.adial(lst.url, block=True, tls_config=certs.client_config())
        await b.asend(b"secret")
        assert await a.arecv() == b"secret"
        pipe = b.pipes[0]
        assert isinstance(pipe, WSPipe)
        assert pipe.peer_certificate  # the server's verified certificate
        async with purenng.Pair0() as c:  # a dialer trusting another CA is refused
            with pytest.raises(purenng.TLSError):
                await c.adial(lst.url, block=True, tls_config=other.client_config())
        async with purenng.Pair0() as plain:  # plain ws cannot share a TLS port
            with pytest.raises(purenng.AddressInUse, match="TLS"):
                await plain.alisten(f"ws://127.0.0.1:{lst.port}/plain")
        with pytest.raises(purenng.BadOption, match="certificate"):
            await a.alisten("wss://127.0.0.1:0/x")


def test_wss_on_the_background_loop() -> None:
    # Sockets made outside a loop live on the background loop (uvloop when
    # installed), whose TLS transports must hand over to the pipe as well.
    certs = pytest.importorskip("purenng.certs").make_dev_certs()
    with purenng.Pair0(recv_timeout=T) as a, purenng.Pair0(recv_timeout=T) as b:
        lst = a.listen("wss://127.0.0.1:0/bg", tls_config=certs.server_config())
        b.dial(lst.url, block=True, tls_config=certs.client_config())
        b.send(b"small")
        assert a.recv() == b"small"
        a.send(bytes(300_000))
        assert b.recv() == bytes(300_000)


async def test_wss_mutual_authentication() -> None:
    certs = pytest.importorskip("purenng.certs").make_dev_certs()
    server = certs.server_config(auth_mode="required")
    async with purenng.Pair0(recv_timeout=T) as a, purenng.Pair0(recv_timeout=T) as b:
        lst = await a.alisten("wss://127.0.0.1:0/mutual", tls_config=server)
        async with purenng.Pair0() as anonymous:
            no_cert = purenng.TLSConfig(ca_data=certs.ca.cert_pem)
            with pytest.raises(purenng.TLSError):
                await anonymous.adial(lst.url, block=True, tls_config=no_cert)
        assert not a.pipes
        await b.adial(lst.url, block=True, tls_config=certs.client_config())
        await b.asend(b"known client")
        assert await a.arecv() == b"known client"
        pipe = a.pipes[0]
        assert isinstance(pipe, WSPipe)
        assert pipe.peer_certificate  # the client's verified certificate
        async with purenng.Pair0() as plain_a, purenng.Pair0() as plain_b:
            plain_lst = await plain_a.alisten("ws://127.0.0.1:0/p")
            await plain_b.adial(plain_lst.url, block=True)
            assert plain_b.pipes[0].peer_certificate is None


@pytest.mark.parametrize("then_close", [False, True])
async def test_frames_sent_with_the_upgrade_request_are_kept(then_close: bool) -> None:
    # A client may write its first frames (even its close) right behind the
    # upgrade request: they are delivered once the socket admits the pipe.
    async with purenng.Pair0(recv_timeout=T) as a:
        gone: list[Any] = []
        a.on_pipe_event(lambda p, e: gone.append(p), purenng.PipeEvent.REMOVE_POST)
        lst = await a.alisten("ws://127.0.0.1:0/sp")
        peer = Protocol(Side.CLIENT, state=OPEN)
        peer.send_binary(b"early")
        peer.send_binary(b"second")
        if then_close:
            peer.send_close(1000)
        reader, writer = await asyncio.open_connection("127.0.0.1", lst.port)
        writer.write(upgrade_request(lst.port, "/sp") + b"".join(peer.data_to_send()))
        assert (await read_head(reader)).startswith(b"HTTP/1.1 101")
        assert await a.arecv() == b"early"
        assert await a.arecv() == b"second"
        if then_close:
            await await_for(lambda: gone, "the pipe to close")
            assert gone[0].close_code == 1000
        writer.close()


def test_import_purenng_loads_neither_websockets_nor_h11() -> None:
    code = (
        "import sys, json, purenng\n"
        "with purenng.Pair0(listen='tcp://127.0.0.1:0'): pass\n"
        "import purenng.transports.ws\n"
        "print(json.dumps(sorted(sys.modules)))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    mods = json.loads(out.stdout.splitlines()[-1])
    assert not [m for m in mods if m.split(".")[0] in ("websockets", "h11", "wsproto")]


def test_without_the_ws_extra_only_ws_fails_and_says_what_to_install() -> None:
    code = (
        "import sys\n"
        "sys.modules['websockets'] = None  # as if not installed\n"
        "import purenng\n"
        "with purenng.Pair0() as s:\n"
        "    try:\n"
        "        s.listen('ws://127.0.0.1:0/x')\n"
        "    except purenng.NotSupported as exc:\n"
        "        print('refused:', exc)\n"
        "    print('tcp:', s.listen('tcp://127.0.0.1:0').port > 0)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    ).stdout
    assert "refused: ws:// and wss:// need websockets: pip install 'purenng[ws]'" in out
    assert "tcp: True" in out


async def test_no_leaks_after_many_connections(purenng_leak_check: None) -> None:
    async with purenng.Pair0(recv_timeout=T) as a:
        lst = await a.alisten("ws://127.0.0.1:0/sp")
        for i in range(5):
            async with purenng.Pair0(recv_timeout=T) as b:
                await b.adial(lst.url, block=True)
                await b.asend(b"%d" % i)
                assert await a.arecv() == b"%d" % i
            await await_for(lambda: not a.pipes, "the pipe to go")
