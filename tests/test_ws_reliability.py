"""ws/wss under hostile or broken peers: what a remote peer can make a pipe hold, and survival.

* Every scenario runs on the standard asyncio loop and on uvloop (when
  installed): the blocking API runs on purenng's background loop, which is
  uvloop, and some defects show on one loop only (a TLS transport closed
  twice breaks on asyncio, uvloop hides it).
* Peers that misbehave are raw: a plain asyncio connection that writes its
  own upgrade request and frames built by websockets' sans-I/O ``Protocol``,
  so a test can flood pings, never read, or send endless continuation frames.
* Memory is checked by counting what the listener buffers (its transport's
  write buffer, the codec's queue), never by timing or RSS, so nothing flakes;
  every flood is bounded in bytes and every wait in time (``T``).
"""

from __future__ import annotations

import asyncio
import importlib.util
from typing import TYPE_CHECKING, Any, ClassVar

import pytest
from websockets.frames import CLOSE, PONG, Frame
from websockets.protocol import OPEN, Protocol, Side

import purenng
from purenng.transports.ws import WRITE_HIGH, WSPipe, WSStream
from support.waiting import await_for

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from purenng.certs import DevCerts

#: Generous limit (seconds) for any single wait; only there to stop hangs.
T = 10.0
KEY = "dGhlIHNhbXBsZSBub25jZQ=="

LOOPS = [
    "asyncio",
    pytest.param(
        "uvloop",
        marks=pytest.mark.skipif(
            importlib.util.find_spec("uvloop") is None, reason="uvloop is not installed"
        ),
    ),
]


def run(loop: str, scenario: Callable[[], Awaitable[None]]) -> None:
    """Run ``scenario`` on a fresh loop of the kind named (bounded in time)."""
    factory: Callable[[], asyncio.AbstractEventLoop] | None = None
    if loop == "uvloop":
        import uvloop

        factory = uvloop.new_event_loop

    async def bounded() -> None:
        try:
            async with asyncio.timeout(6 * T):
                await scenario()
        finally:
            # A test that failed left its raw client open, and a loop does not
            # close while the server still waits to write to it (uvloop hangs).
            while Raw.opened:
                Raw.opened.pop().close()

    with asyncio.Runner(loop_factory=factory) as runner:
        runner.run(bounded())


@pytest.fixture(scope="module")
def certs() -> DevCerts:
    certs: DevCerts = pytest.importorskip("purenng.certs").make_dev_certs()
    return certs


class Raw:
    """A raw WebSocket client that reads only when told to."""

    #: Clients not yet closed (``run`` resets them all when a scenario ends).
    opened: ClassVar[list[Raw]] = []

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.proto = Protocol(Side.CLIENT, state=OPEN, max_size=None)

    @classmethod
    async def connect(
        cls, port: int | None, path: str = "/sp", subprotocol: str | None = "pair.sp.nanomsg.org"
    ) -> Raw:
        assert port is not None
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        lines = [
            f"GET {path} HTTP/1.1",
            f"Host: 127.0.0.1:{port}",
            "Upgrade: websocket",
            "Connection: Upgrade",
            f"Sec-WebSocket-Key: {KEY}",
            "Sec-WebSocket-Version: 13",
        ]
        if subprotocol is not None:
            lines.append(f"Sec-WebSocket-Protocol: {subprotocol}")
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
        async with asyncio.timeout(T):
            head = await reader.readuntil(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 101 "), head
        raw = cls(reader, writer)
        cls.opened.append(raw)
        return raw

    async def send(self, build: Callable[[Protocol], object]) -> None:
        """Queue frames with ``build(protocol)``, write them and wait until the kernel took them."""
        build(self.proto)
        for data in self.proto.data_to_send():
            if data:
                self.writer.write(data)
        async with asyncio.timeout(T):
            await self.writer.drain()

    async def frames(self, until_opcode: Any = CLOSE, limit: int = 10**6) -> list[Frame]:
        """Read frames (answering nothing) up to one with ``until_opcode``, EOF or ``limit``."""
        got: list[Frame] = []
        async with asyncio.timeout(T):
            while len(got) < limit:
                data = await self.reader.read(1 << 20)
                if not data:
                    return got
                self.proto.receive_data(data)
                for e in self.proto.events_received():
                    if isinstance(e, Frame):
                        got.append(e)
                        if e.opcode is until_opcode:
                            return got
        return got

    def close(self) -> None:
        """Reset the connection: a graceful close could wait on what the server holds."""
        self.writer.transport.abort()


def server_pipe(sock: purenng.Socket) -> WSPipe:
    pipe = sock.pipes[0]
    assert isinstance(pipe, WSPipe)
    return pipe


def buffered(tr: Any) -> int:
    """What a server-side transport holds for a peer that does not read."""
    return int(tr.get_write_buffer_size())


# ---------------------------------------- a wss pipe closed by an oversized message


@pytest.mark.parametrize("loop", LOOPS)
def test_wss_listener_accepts_peers_after_an_oversized_message(loop: str, certs: DevCerts) -> None:
    async def scenario() -> None:
        cfg = certs.server_config()
        async with purenng.Pair0(recv_timeout=T, recv_max_size=1000) as a:
            lst = await a.alisten("wss://127.0.0.1:0/sp", tls_config=cfg)
            removed: list[Any] = []
            a.on_pipe_event(
                lambda p, e: removed.append(p.remote_address), purenng.PipeEvent.REMOVE_POST
            )
            async with purenng.Pair0() as b:
                await b.adial(lst.url, block=True, tls_config=certs.client_config())
                await b.asend(bytes(5000))  # over recv_max_size: the listener closes with 1009
                await await_for(lambda: removed, "the oversized peer's pipe to go")
            assert a.stats()["oversize"] == 1
            assert removed[0][0] == "127.0.0.1"  # the address was still readable
            # Pair0 takes one peer: a pipe left behind would refuse this one as busy.
            async with purenng.Pair0(recv_timeout=T) as c:
                await c.adial(lst.url, block=True, tls_config=certs.client_config())
                await c.asend(b"second peer")
                assert await a.arecv() == b"second peer"
                await a.asend(b"answer")
                assert await c.arecv() == b"answer"

    run(loop, scenario)


@pytest.mark.parametrize("who", ["peer", "we"])
@pytest.mark.parametrize("loop", LOOPS)
def test_wss_addresses_stay_readable_after_close(loop: str, who: str, certs: DevCerts) -> None:
    # Before: the peer's close frame made the pipe close its TLS transport
    # twice, after which reading an address raised (in remove_post callbacks too).
    async def scenario() -> None:
        server = certs.server_config(auth_mode="required")
        async with purenng.Pair0(recv_timeout=T) as a, purenng.Pair0(recv_timeout=T) as b:
            seen: dict[str, Any] = {}
            errors: list[BaseException] = []

            def on_remove(pipe: purenng.Pipe, event: purenng.PipeEvent) -> None:
                try:
                    seen["remote"] = pipe.remote_address
                    seen["local"] = pipe.local_address
                    seen["cert"] = pipe.peer_certificate
                    assert isinstance(pipe, WSPipe)
                    seen["other"] = pipe.extra("no such thing", "default")
                except BaseException as exc:
                    errors.append(exc)

            a.on_pipe_event(on_remove, purenng.PipeEvent.REMOVE_POST)
            lst = await a.alisten("wss://127.0.0.1:0/sp", tls_config=server)
            await b.adial(lst.url, block=True, tls_config=certs.client_config())
            await b.asend(b"hello")
            assert await a.arecv() == b"hello"
            pipe = server_pipe(a)
            before = (pipe.remote_address, pipe.local_address)
            # A normal close, by either side: close frames, then the TLS close.
            (b.pipes[0] if who == "peer" else pipe).close()
            await await_for(lambda: seen or errors, "the remove_post callback")
            assert not errors, errors
            assert (seen["remote"], seen["local"]) == before
            assert seen["cert"]  # the client's certificate, verified at the handshake
            assert seen["other"] == "default"
            # And well after the close, once the transport is fully gone.
            await await_for(lambda: not b.pipes, "the dialer's pipe to go")
            await asyncio.sleep(0.05)
            assert pipe.remote_address == before[0]
            assert pipe.extra("peername") == before[0]
            assert pipe.extra("socket", "gone") in ("gone", pipe._tr.get_extra_info("socket"))

    run(loop, scenario)


# ---------------------------------------- pings from a peer that reads nothing


@pytest.mark.parametrize("loop", LOOPS)
def test_a_ping_flood_from_a_peer_that_never_reads_stays_bounded(loop: str) -> None:
    # Before: every ping got its own pong, written at once, so the listener
    # held what the peer sent (16 MiB of pings: ~10 MiB of pongs buffered).
    async def scenario() -> None:
        async with purenng.Pair0(recv_timeout=T) as a:
            lst = await a.alisten("ws://127.0.0.1:0/sp")
            raw = await Raw.connect(lst.port)
            await await_for(lambda: a.pipes, "the raw client's pipe")
            pipe = server_pipe(a)
            tr = pipe._tr
            most = 0
            sent = 0
            batch = 2000  # pings of 125 bytes: ~260 KiB per batch

            def pings(p: Protocol) -> None:
                for i in range(batch):
                    p.send_ping(i.to_bytes(4, "big") + bytes(121))

            while sent < 16 << 20:
                await raw.send(pings)
                sent += batch * 131
                most = max(most, buffered(tr))
            # A message behind the pings: once it is received, all are read.
            await raw.send(lambda p: p.send_binary(b"after the pings"))
            assert await a.arecv() == b"after the pings"
            most = max(most, buffered(tr))
            assert not pipe.closed
            assert most <= WRITE_HIGH + 1024, f"{most} bytes buffered for {sent} bytes of pings"
            assert pipe._codec.pings_coalesced > 0
            assert pipe.pending_bytes() <= WRITE_HIGH + 1024
            raw.close()

    run(loop, scenario)


@pytest.mark.parametrize("loop", LOOPS)
def test_a_pong_waits_while_writes_are_blocked_and_answers_the_latest_ping(loop: str) -> None:
    async def scenario() -> None:
        async with purenng.Pair0(send_timeout=T) as a:
            lst = await a.alisten("ws://127.0.0.1:0/sp")
            raw = await Raw.connect(lst.port)
            await await_for(lambda: a.pipes, "the raw client's pipe")
            pipe = server_pipe(a)
            sent = 0
            while pipe.writable and sent < 64:  # fill the kernel and the write buffer
                await a.asend(bytes(1 << 20))
                sent += 1
                await asyncio.sleep(0)
            assert not pipe.writable, "the write side never paused"
            held = buffered(pipe._tr)

            def pings(p: Protocol) -> None:
                for i in range(100):
                    p.send_ping(b"ping %d" % i)

            await raw.send(pings)
            # Read by the listener: a pong waits (or, before, joined the buffer).
            await await_for(
                lambda: buffered(pipe._tr) != held or getattr(pipe._codec, "pong_pending", False),
                "the pings to be read",
            )
            assert buffered(pipe._tr) == held  # no pong joined the blocked data
            # The peer reads again: the data first, then one pong, the latest ping's.
            frames = await raw.frames(until_opcode=PONG)
            pongs = [f for f in frames if f.opcode is PONG]
            assert [bytes(f.data) for f in pongs] == [b"ping 99"]
            assert sum(len(f.data) for f in frames if f.opcode is not PONG) > 0
            raw.close()

    run(loop, scenario)


@pytest.mark.parametrize("loop", LOOPS)
def test_a_stream_ping_flood_stays_bounded(loop: str) -> None:
    async def scenario() -> None:
        from purenng import stream

        async with await stream.listen("ws://127.0.0.1:0/bytes") as lst:
            raw = await Raw.connect(lst.port, "/bytes", subprotocol=None)
            async with asyncio.timeout(T):
                st = await lst.accept()
            assert isinstance(st, WSStream)
            tr = st._tr
            most = 0
            sent = 0

            def pings(p: Protocol) -> None:
                for _ in range(2000):
                    p.send_ping(bytes(125))

            while sent < 16 << 20:
                await raw.send(pings)
                sent += 2000 * 131
                most = max(most, buffered(tr))
            await raw.send(lambda p: p.send_binary(b"after the pings"))
            async with asyncio.timeout(T):
                assert await st.read() == b"after the pings"  # all the pings are read
            most = max(most, buffered(tr))
            assert most <= WRITE_HIGH + 1024, f"{most} bytes buffered for {sent} bytes of pings"
            assert st.pending_bytes() <= WRITE_HIGH + 1024
            raw.close()
            st.close()

    run(loop, scenario)


@pytest.mark.parametrize("loop", LOOPS)
def test_both_peers_sending_large_messages_at_once_do_not_deadlock(loop: str) -> None:
    # Guard: pausing reads whenever writes are blocked (a tempting fix for
    # the ping flood) deadlocks here: each side's buffer waits for the other
    # to read, and neither reads.
    async def scenario() -> None:
        size = 8 << 20
        kw: dict[str, Any] = {"recv_timeout": T, "send_timeout": T, "recv_max_size": 2 * size}
        async with purenng.Pair0(**kw) as a, purenng.Pair0(**kw) as b:
            lst = await a.alisten("ws://127.0.0.1:0/sp")
            await b.adial(lst.url, block=True)

            async def send(s: purenng.Socket) -> None:
                for _ in range(3):
                    await s.asend(bytes(size))

            async def recv(s: purenng.Socket) -> int:
                return sum([len(await s.arecv()) for _ in range(3)])

            async with asyncio.timeout(T):
                _, _, got_a, got_b = await asyncio.gather(send(a), send(b), recv(a), recv(b))
            assert (got_a, got_b) == (3 * size, 3 * size)

    run(loop, scenario)


# ---------------------------------------------------------------- reassembly, pending bytes


@pytest.mark.parametrize("loop", LOOPS)
def test_endless_continuation_frames_are_cut_at_recv_max_size(loop: str) -> None:
    async def scenario() -> None:
        limit = 1 << 20
        async with purenng.Pair0(recv_max_size=limit) as a:
            lst = await a.alisten("ws://127.0.0.1:0/sp")
            raw = await Raw.connect(lst.port)
            await await_for(lambda: a.pipes, "the raw client's pipe")
            pipe = server_pipe(a)
            frame = 60_000  # under ws_recv_frame_max: only the message limit can stop it
            await raw.send(lambda p: p.send_binary(bytes(frame), fin=False))
            sent = frame
            most = 0
            try:
                while sent < 64 << 20 and not pipe.closed:
                    await raw.send(lambda p: p.send_continuation(bytes(frame), fin=False))
                    sent += frame
                    parts = pipe._codec._parts
                    most = max(most, sum(len(x) for x in parts or ()))
            except (ConnectionError, TimeoutError):
                pass  # the listener closed: writing fails
            await await_for(lambda: pipe.closed, "the pipe to close")
            assert isinstance(pipe.error, purenng.MessageTooLarge)
            assert most <= limit
            # The close frame (1009) may be lost to the reset that closing with
            # unread input causes; test_ws checks it on the wire.
            assert a.stats()["oversize"] == 1
            raw.close()

    run(loop, scenario)


@pytest.mark.parametrize("loop", LOOPS)
def test_pending_bytes_counts_what_has_not_reached_the_kernel(loop: str) -> None:
    async def scenario() -> None:
        async with purenng.Pair0(send_timeout=T) as a:
            lst = await a.alisten("ws://127.0.0.1:0/sp")
            raw = await Raw.connect(lst.port)
            await await_for(lambda: a.pipes, "the raw client's pipe")
            pipe = server_pipe(a)
            assert pipe.pending_bytes() == 0
            pipe.write(b"", b"x" * 100)  # coalesced: held until the end of the loop turn
            pipe.write(b"", b"y" * 100)
            assert pipe.pending_bytes() >= 100
            while pipe.writable:  # the peer reads nothing: the buffer fills
                await a.asend(bytes(1 << 20))
                await asyncio.sleep(0)
            assert pipe.pending_bytes() >= buffered(pipe._tr) > 0
            pipe.close()
            assert pipe.pending_bytes() == 0
            raw.close()

    run(loop, scenario)


# ---------------------------------------- the dialer against hostile servers


async def hostile_server(answer: Callable[[asyncio.StreamWriter], Awaitable[None]]) -> Any:
    """A TCP server that reads the upgrade request, then runs ``answer``."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await reader.readuntil(b"\r\n\r\n")
            await answer(writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    return await asyncio.start_server(handle, "127.0.0.1", 0)


@pytest.mark.parametrize("loop", LOOPS)
def test_dialer_refuses_an_endless_answer_head(loop: str) -> None:
    async def scenario() -> None:
        stop = asyncio.Event()
        written = [0]

        async def endless(writer: asyncio.StreamWriter) -> None:
            writer.write(b"HTTP/1.1 101 Switching Protocols\r\n")
            line = b"X-Filler: " + b"a" * 1000 + b"\r\n"
            while not stop.is_set() and written[0] < 32 << 20:
                writer.write(line * 16)
                written[0] += 16 * len(line)
                await writer.drain()

        server = await hostile_server(endless)
        port = server.sockets[0].getsockname()[1]
        async with server, purenng.Pair0() as s:
            with pytest.raises(purenng.ProtocolError):
                await s.adial(f"ws://127.0.0.1:{port}/sp", block=True, ws_handshake_timeout=T)
            stop.set()
        assert written[0] < 32 << 20  # refused long before the flood ran out

    run(loop, scenario)


@pytest.mark.parametrize("loop", LOOPS)
def test_dialer_gives_up_on_a_dripping_server_at_the_deadline(loop: str) -> None:
    async def scenario() -> None:
        async def drip(writer: asyncio.StreamWriter) -> None:
            for b in b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n" * 10:
                writer.write(bytes([b]))
                await writer.drain()
                await asyncio.sleep(1.0)

        server = await hostile_server(drip)
        port = server.sockets[0].getsockname()[1]
        async with server, purenng.Pair0() as s:
            loop = asyncio.get_running_loop()
            start = loop.time()
            with pytest.raises(purenng.Timeout):
                await s.adial(f"ws://127.0.0.1:{port}/sp", block=True, ws_handshake_timeout=1.5)
            assert loop.time() - start < T  # cut at the deadline, not when the drip ends

    run(loop, scenario)


def test_client_handshake_refuses_a_large_answer_that_arrives_whole() -> None:
    # h11 bounds a head still incomplete; one that came in one read was
    # accepted whatever its size.
    from purenng.http.upgrade import ClientHandshake, accept_token

    hs = ClientHandshake("h:1", "/", "pair.sp.nanomsg.org", key=KEY.encode())
    answer = (
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Accept: " + accept_token(KEY) + b"\r\n"
        b"Sec-WebSocket-Protocol: pair.sp.nanomsg.org\r\n"
        + b"X-Filler: "
        + b"a" * (40 * 1024)
        + b"\r\n\r\n"
    )
    assert hs.feed(answer)
    assert isinstance(hs.error, purenng.ProtocolError), hs.error
    small = ClientHandshake("h:1", "/", "pair.sp.nanomsg.org", key=KEY.encode())
    assert small.feed(answer.replace(b"a" * (40 * 1024), b"a" * 1000))
    assert small.error is None
