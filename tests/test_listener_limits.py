"""What one listener and one pipe may cost: ``max_pipes``, handshake time, write buffers.

* ``max_pipes`` bounds the connections a listener holds, counting those
  still in a (TLS or SP) handshake: floods of raw clients that never finish
  one are refused at once (EOF before any byte), refusals are counted, and a
  freed slot is usable again.  Over tcp, ipc and tls (the stream listeners
  apply it right after ``accept()``) and ws (message pipes, through
  ``Listener._on_pipe``).
* ``sp_handshake_timeout`` holds against a peer dripping its SP header one
  byte at a time, on both ends.
* A peer that never reads cannot make a pipe buffer without bound: PUB and
  BUS drop for it, REP stops reading its requests; the server pipe's
  :meth:`SPStreamPipe.pending_bytes` stays under the write high-water mark
  plus one coalesced write.

The tests are coroutines: the suite's conftest runs each on the standard
asyncio loop and, when installed, on uvloop.
"""

from __future__ import annotations

import asyncio
import socket
import struct
from typing import TYPE_CHECKING, Any

import pytest

import purenng
from purenng.certs import DevCerts, make_dev_certs
from purenng.core.errors import BadOption, Timeout
from purenng.core.sp_stream import FLUSH_AT, WRITE_HIGH, SPStreamPipe
from support.raw_sp import BUS, PUB, PULL, PUSH, REP, REQ, SUB, sp_header
from support.waiting import await_for

if TYPE_CHECKING:
    from pathlib import Path

#: Only stops hangs.
T = 10.0


@pytest.fixture(scope="module")
def certs() -> DevCerts:
    return make_dev_certs()


class Raw:
    """A raw client connection that speaks bytes, not SP."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.loop = asyncio.get_running_loop()

    @classmethod
    async def connect(cls, url: str, rcvbuf: int | None = None) -> Raw:
        if url.startswith("ipc://"):
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            addr: Any = url.removeprefix("ipc://")
        else:
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            addr = ("127.0.0.1", int(url.rsplit(":", 1)[1]))
        if rcvbuf is not None:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        s.setblocking(False)
        await asyncio.get_running_loop().sock_connect(s, addr)
        return cls(s)

    async def read(self, n: int) -> bytes:
        """Up to ``n`` bytes, b"" at EOF (a reset counts as EOF)."""
        try:
            return await asyncio.wait_for(self.loop.sock_recv(self.sock, n), T)
        except ConnectionError:
            return b""

    async def read_exactly(self, n: int) -> bytes:
        out = b""
        while len(out) < n:
            chunk = await self.read(n - len(out))
            if not chunk:
                break
            out += chunk
        return out

    async def send(self, data: bytes) -> None:
        await asyncio.wait_for(self.loop.sock_sendall(self.sock, data), T)

    def close(self) -> None:
        self.sock.close()


def _url(scheme: str, tmp_path: Path, name: str) -> str:
    if scheme == "ipc":
        return f"ipc://{tmp_path}/{name}.sock"
    return f"{scheme}://127.0.0.1:0"


# ---------------------------------------------------------------- max_pipes


@pytest.mark.parametrize("scheme", ["tcp", "ipc"])
async def test_max_pipes_refuses_a_raw_flood_and_frees_slots(tmp_path: Path, scheme: str) -> None:
    limit, flood = 4, 20
    async with purenng.Pull0(recv_timeout=T) as pull:
        lst = await pull.alisten(_url(scheme, tmp_path, "flood"), max_pipes=limit)
        clients = [await Raw.connect(lst.url) for _ in range(flood)]
        try:
            # Held connections get the listener's SP header; refused
            # ones are closed before any byte.
            first = await asyncio.gather(*(c.read_exactly(8) for c in clients))
            held = [c for c, got in zip(clients, first, strict=True) if got]
            assert all(got in (b"", sp_header(PULL)) for got in first)
            assert len(held) == limit
            assert lst.pipes_refused == flood - limit
            assert pull.stats()["pipes_rejected"] == flood - limit
            assert lst.pipe_count == limit

            # Two finish the handshake and are attached: still counted.
            for c in held[:2]:
                await c.send(sp_header(PUSH))
            await await_for(lambda: len(pull.pipes) == 2, "two attached pipes")
            assert lst.pipe_count == limit
            extra = await Raw.connect(lst.url)
            assert await extra.read(8) == b""
            extra.close()
            assert lst.pipes_refused == flood - limit + 1

            # A slot freed by a client in its handshake, and one freed by an
            # attached pipe, are both usable again by a real dialer.
            held[3].close()
            held[0].close()
            await await_for(lambda: lst.pipe_count == limit - 2, "two slots freed")
            async with purenng.Push0() as a, purenng.Push0() as b:
                await a.adial(lst.url, block=True)
                await b.adial(lst.url, block=True)
                assert lst.pipe_count == limit
                await a.asend(b"a")
                await b.asend(b"b")
                assert {await pull.arecv(), await pull.arecv()} == {b"a", b"b"}
            await await_for(lambda: lst.pipe_count == limit - 2, "dialers' slots freed")
        finally:
            for c in clients:
                c.close()
        await await_for(lambda: lst.pipe_count == 0, "every slot back")


async def test_max_pipes_counts_tls_handshakes(certs: DevCerts) -> None:
    """Raw TCP clients that never start TLS hold slots; the rest are closed at once."""
    limit, flood = 3, 10
    async with purenng.Pull0(recv_timeout=T) as pull:
        lst = await pull.alisten(
            "tls+tcp://127.0.0.1:0",
            max_pipes=limit,
            tls_config=certs.server_config(),
            tls_handshake_timeout=60.0,
        )
        clients = [await Raw.connect(lst.url) for _ in range(flood)]
        try:
            await await_for(lambda: lst.pipes_refused == flood - limit, "refusals")
            assert lst.pipe_count == limit
            # The first ones in hold the slots; the others see EOF without a byte.
            for c in clients[limit:]:
                assert await c.read(1) == b""
            clients[0].close()
            await await_for(lambda: lst.pipe_count == limit - 1, "the slot is freed")
            async with purenng.Push0(tls_config=certs.client_config()) as push:
                await push.adial(lst.url, block=True)
                await push.asend(b"in")
                assert await pull.arecv() == b"in"
                assert lst.pipe_count == limit
        finally:
            for c in clients:
                c.close()
        await await_for(lambda: lst.pipe_count == 0, "every slot back")


async def test_max_pipes_on_ws_message_pipes() -> None:
    """ws hands finished pipes to ``Listener._on_pipe``: the limit applies there."""
    async with purenng.Pull0(recv_timeout=T) as pull:
        lst = await pull.alisten("ws://127.0.0.1:0/limits", max_pipes=2)
        a = purenng.Push0(reconnect_time_min=0.05)
        b = purenng.Push0(reconnect_time_min=0.05)
        c = purenng.Push0(reconnect_time_min=0.05)
        try:
            await a.adial(lst.url, block=True)
            await b.adial(lst.url, block=True)
            await c.adial(lst.url, block=False)
            await await_for(lambda: lst.pipes_refused >= 2, "c refused (and redialing)")
            assert len(pull.pipes) == 2
            assert lst.pipe_count == 2
            await a.aclose()

            def c_is_in() -> bool:
                ours = {cp.local_address for cp in c.pipes}
                return any(p.remote_address in ours for p in pull.pipes)

            await await_for(c_is_in, "c takes the freed slot")
            await c.asend(b"c")
            assert await pull.arecv() == b"c"
            assert len(pull.pipes) == 2
        finally:
            for s in (a, b, c):
                await s.aclose()


# ---------------------------------------------------------------- handshake time


async def test_sp_handshake_timeout_holds_against_a_dripping_peer() -> None:
    timeout, gap = 0.5, 0.25  # the whole header would take 7 * gap = 1.75 s
    async with purenng.Pull0() as pull:
        lst = await pull.alisten("tcp://127.0.0.1:0", sp_handshake_timeout=timeout)
        c = await Raw.connect(lst.url)
        try:
            assert await c.read_exactly(8) == sp_header(PULL)
            sent = 0
            for byte in sp_header(PUSH):
                try:
                    await c.send(bytes([byte]))
                except ConnectionError:
                    break
                sent += 1
                try:
                    got = await asyncio.wait_for(c.loop.sock_recv(c.sock, 1), gap)
                except TimeoutError:
                    continue
                except ConnectionError:
                    got = b""
                assert got == b""
                break
            assert sent < 8, "the listener waited for the whole dripped header"
        finally:
            c.close()
        await await_for(lambda: pull.stats()["handshake_failures"] == 1, "counted")
        assert not pull.pipes


async def test_sp_handshake_timeout_on_a_dialer() -> None:
    server = socket.create_server(("127.0.0.1", 0))
    server.setblocking(False)
    port = server.getsockname()[1]
    try:
        async with purenng.Push0() as push:
            with pytest.raises(Timeout, match=r"0\.2 s"):
                await asyncio.wait_for(
                    push.adial(f"tcp://127.0.0.1:{port}", block=True, sp_handshake_timeout=0.2),
                    T,
                )
    finally:
        server.close()


def test_sp_handshake_timeout_default_and_validation() -> None:
    with purenng.Pair0() as s:
        assert s.sp_handshake_timeout == 10.0
        assert s.max_pipes == 0
        bad: Any
        for bad in (0, -1, None, "1"):
            with pytest.raises(BadOption):
                s.sp_handshake_timeout = bad
        for bad in (-1, 1.5, None):
            with pytest.raises(BadOption):
                s.max_pipes = bad


# ---------------------------------------------------------------- write buffers

#: Message size of the floods, and how many: well past what the kernel buffers
#: (64 KiB each way, set below) and the pipe's high-water mark hold together.
SIZE = 64 * 1024
COUNT = 120
#: Most a pipe may hold: a full buffer, then one coalesced write or one big body.
BOUND = WRITE_HIGH + FLUSH_AT + SIZE + 64


def _server_pipe(sock: purenng.Socket) -> SPStreamPipe:
    (pipe,) = sock.pipes
    assert isinstance(pipe, SPStreamPipe)
    raw = pipe.extra("socket")
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 64 * 1024)
    return pipe


@pytest.mark.parametrize(
    ("make", "self_id", "peer_id"),
    [(purenng.Pub0, PUB, SUB), (purenng.Bus0, BUS, BUS)],
    ids=["pub", "bus"],
)
async def test_broadcast_to_a_peer_that_never_reads_is_bounded(
    tmp_path: Path, make: Any, self_id: int, peer_id: int
) -> None:
    async with make() as server:
        lst = await server.alisten("tcp://127.0.0.1:0")
        c = await Raw.connect(lst.url, rcvbuf=64 * 1024)
        try:
            await c.send(sp_header(peer_id))
            assert await c.read_exactly(8) == sp_header(self_id)
            await await_for(lambda: len(server.pipes) == 1, "attached")
            pipe = _server_pipe(server)
            body = b"x" * SIZE
            most = 0
            for _ in range(COUNT):
                await server.asend(body)
                most = max(most, pipe.pending_bytes())
                await asyncio.sleep(0)
            assert not pipe.writable, "the flood never filled the pipe"
            assert server.stats()["drops"] > 0
            assert most <= BOUND, f"{most} bytes buffered for one pipe"
        finally:
            c.close()
        await await_for(lambda: not server.pipes, "closed")
        assert pipe.pending_bytes() == 0


async def test_rep_stops_reading_a_requester_that_never_reads() -> None:
    recv_buffer = 4
    async with purenng.Rep0(recv_buffer=recv_buffer) as rep:
        lst = await rep.alisten("tcp://127.0.0.1:0")

        async def echo() -> None:
            while True:
                await rep.asend(await rep.arecv())

        task = asyncio.create_task(echo())
        c = await Raw.connect(lst.url, rcvbuf=64 * 1024)
        body = b"r" * SIZE
        requests = b"".join(struct.pack(">I", 0x80000000 | i) + body for i in range(COUNT))
        frames = b"".join(
            struct.pack(">Q", 4 + SIZE) + requests[i * (4 + SIZE) : (i + 1) * (4 + SIZE)]
            for i in range(COUNT)
        )
        sender: asyncio.Task[None] | None = None
        try:
            await c.send(sp_header(REQ))
            assert await c.read_exactly(8) == sp_header(REP)
            await await_for(lambda: len(rep.pipes) == 1, "attached")
            pipe = _server_pipe(rep)
            sender = asyncio.create_task(c.loop.sock_sendall(c.sock, frames))
            most, last, still = 0, -1, 0
            async with asyncio.timeout(T):
                while still < 20:  # until the pipe's counters stand still
                    await asyncio.sleep(0.01)
                    most = max(most, pipe.pending_bytes())
                    now = pipe.msgs_in + pipe.msgs_out
                    still = still + 1 if now == last else 0
                    last = now
            assert most <= BOUND, f"{most} bytes buffered for one pipe"
            assert not pipe.writable
            # REP stopped reading: what came in is what went out, plus
            # the requests waiting for the application and the one it holds.
            assert pipe.msgs_in <= pipe.msgs_out + recv_buffer + 2
            assert pipe.msgs_in < COUNT
            assert not sender.done()
        finally:
            if sender is not None:
                sender.cancel()
            task.cancel()
            c.close()


async def test_pending_bytes_counts_coalesced_frames() -> None:
    """Frames coalesced for the end of the turn count until they are written."""
    async with purenng.Pair0() as a, purenng.Pair0() as b:
        lst = await a.alisten("tcp://127.0.0.1:0")
        await b.adial(lst.url, block=True)
        await await_for(lambda: len(a.pipes) == 1, "attached")
        (pipe,) = a.pipes
        assert isinstance(pipe, SPStreamPipe)
        pipe.write(b"", b"first")  # written at once
        pipe.write(b"", b"second")  # coalesced until the end of this turn
        assert pipe.pending_bytes() >= 8 + len(b"second")
        await asyncio.sleep(0.05)
        assert await b.arecv() == b"first"
        assert await b.arecv() == b"second"
        await await_for(lambda: pipe.pending_bytes() == 0, "all written")
        pipe.close()
        assert pipe.pending_bytes() == 0
