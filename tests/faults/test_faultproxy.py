"""The fault proxy itself (purenng.testing.FaultProxy), against plain sockets.

Each fault is checked for what it promises: splitting keeps the byte
stream and moves only the read boundaries, delays hold bytes back, stalls
keep the connection open and forward nothing until resumed, corruption
flips exactly the chosen bytes (reproducibly for a seed), cuts close with
FIN or RST (at once or after N bytes), and every fault is counted.  Both
ways of running it are covered: on the test's loop and on its own thread.
"""

from __future__ import annotations

import asyncio
import socket
import threading
from typing import TYPE_CHECKING

import pytest

from purenng.testing import FaultProxy, no_leaks

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from pathlib import Path

pytestmark = pytest.mark.usefixtures("purenng_leak_check")

T = 10.0
DATA = bytes(range(256)) * 64  # 16 KiB


class Sink:
    """An asyncio server that records every read and echoes nothing (or echoes)."""

    def __init__(self, *, echo: bool = False) -> None:
        self.echo = echo
        self.reads: list[bytes] = []
        self.got = asyncio.Event()
        self.eof = asyncio.Event()
        self.server: asyncio.Server | None = None
        self.writers: list[asyncio.StreamWriter] = []

    async def handle(self, r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        self.writers.append(w)
        try:
            while data := await r.read(65536):
                self.reads.append(data)
                self.got.set()
                if self.echo:
                    w.write(data)
                    await w.drain()
        except ConnectionError:
            pass
        finally:
            self.eof.set()
            w.close()

    @property
    def data(self) -> bytes:
        return b"".join(self.reads)

    async def wait_bytes(self, n: int) -> None:
        async with asyncio.timeout(T):
            while len(self.data) < n:
                self.got.clear()
                await self.got.wait()

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"tcp://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"


@pytest.fixture
async def sink() -> AsyncIterator[Sink]:
    s = Sink()
    s.server = await asyncio.start_server(s.handle, "127.0.0.1", 0)
    yield s
    for w in s.writers:
        w.close()
    s.server.close()
    await s.server.wait_closed()


@pytest.fixture
async def echo() -> AsyncIterator[Sink]:
    s = Sink(echo=True)
    s.server = await asyncio.start_server(s.handle, "127.0.0.1", 0)
    yield s
    for w in s.writers:
        w.close()
    s.server.close()
    await s.server.wait_closed()


async def connect(proxy: FaultProxy) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection("127.0.0.1", proxy.port)


async def drain(r: asyncio.StreamReader) -> None:
    while await r.read(100):
        pass


async def close(w: asyncio.StreamWriter) -> None:
    w.close()
    try:
        await w.wait_closed()
    except ConnectionError:
        pass


async def test_plain_forwarding_both_ways(echo: Sink) -> None:
    async with FaultProxy(echo.url) as proxy:
        r, w = await connect(proxy)
        w.write(DATA)
        got = await asyncio.wait_for(r.readexactly(len(DATA)), T)
        assert got == DATA
        await close(w)
        st = proxy.stats()
        assert st.connections == 1
        assert st.bytes_up == st.bytes_down == len(DATA)
        assert st.faults_total == 0


async def test_split_keeps_the_stream_and_moves_boundaries(sink: Sink) -> None:
    async with FaultProxy(sink.url, seed=7) as proxy:
        proxy.split(3, "up")
        _r, w = await connect(proxy)
        w.write(DATA)
        await sink.wait_bytes(len(DATA))
        assert sink.data == DATA
        # 1..3-byte pieces, each written alone: the sink read far more
        # often than the one 16 KiB chunk the client wrote.
        assert len(sink.reads) > 10
        st = proxy.stats()
        assert st.pieces >= len(DATA) // 3
        assert st.faults["split"] >= 1
        await close(w)


async def test_split_is_reproducible_for_a_seed(sink: Sink) -> None:
    """The piece sizes come from the seed: same seed, same pieces count."""
    counts = []
    for _ in range(2):
        async with FaultProxy(sink.url, seed=11) as proxy:
            proxy.split(5)
            _, w = await connect(proxy)
            w.write(DATA[:1000])
            await sink.wait_bytes(1000)
            counts.append(proxy.stats().pieces)
            await close(w)
        sink.reads.clear()
    assert counts[0] == counts[1]


async def test_delay_holds_bytes_back_and_keeps_order(echo: Sink) -> None:
    async with FaultProxy(echo.url) as proxy:
        proxy.delay(0.15, "down")
        r, w = await connect(proxy)
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        for i in range(5):
            w.write(bytes([i]) * 100)
            await asyncio.sleep(0.01)
        got = await asyncio.wait_for(r.readexactly(500), T)
        # A lower bound only: the delay was applied (no upper bound on speed).
        assert loop.time() - t0 >= 0.14
        assert got == b"".join(bytes([i]) * 100 for i in range(5))
        assert proxy.stats().faults["delay"] >= 1
        await close(w)


async def test_stall_keeps_the_connection_and_forwards_nothing(sink: Sink) -> None:
    async with FaultProxy(sink.url) as proxy:
        _r, w = await connect(proxy)
        w.write(b"before")
        await sink.wait_bytes(6)
        proxy.stall("up")
        w.write(b"during")
        await asyncio.sleep(0.2)
        assert sink.data == b"before"
        assert not sink.eof.is_set()
        st = proxy.stats()
        assert st.open == 1
        assert st.faults["stall"] == 1
        proxy.resume("up")
        await sink.wait_bytes(12)
        assert sink.data == b"beforeduring"
        await close(w)


async def test_stall_applies_to_new_connections(sink: Sink) -> None:
    async with FaultProxy(sink.url) as proxy:
        proxy.stall()
        _, w = await connect(proxy)
        w.write(b"x")
        await asyncio.sleep(0.1)
        assert sink.data == b""
        proxy.clear()
        await sink.wait_bytes(1)
        await close(w)


async def test_corrupt_offsets_flip_exactly_those_bytes(sink: Sink) -> None:
    async with FaultProxy(sink.url, seed=3) as proxy:
        proxy.corrupt(offsets=[0, 9, 5000], direction="up")
        _, w = await connect(proxy)
        w.write(DATA)
        await sink.wait_bytes(len(DATA))
        got = sink.data
        diff = [i for i in range(len(DATA)) if got[i] != DATA[i]]
        assert diff == [0, 9, 5000]
        assert proxy.stats().faults["corrupt"] == 3
        await close(w)


async def test_corrupt_rate_is_seeded_and_limited(sink: Sink) -> None:
    outputs = []
    for _ in range(2):
        async with FaultProxy(sink.url, seed=5) as proxy:
            proxy.corrupt(rate=0.01, direction="up")
            _, w = await connect(proxy)
            w.write(DATA)
            await sink.wait_bytes(len(DATA))
            n = proxy.stats().faults["corrupt"]
            diff = sum(a != b for a, b in zip(sink.data, DATA, strict=True))
            assert diff == n
            assert 40 < n < 400  # ~164 expected for 16 KiB at 1 %
            outputs.append(sink.data)
            await close(w)
        sink.reads.clear()
    assert outputs[0] == outputs[1]
    async with FaultProxy(sink.url, seed=5) as proxy:
        proxy.corrupt(rate=0.5, limit=4)
        _, w = await connect(proxy)
        w.write(DATA)
        await sink.wait_bytes(len(DATA))
        assert proxy.stats().faults["corrupt"] == 4
        assert sum(a != b for a, b in zip(sink.data, DATA, strict=True)) == 4
        await close(w)


@pytest.mark.parametrize("rst", [False, True], ids=["fin", "rst"])
async def test_cut_closes_both_sides(sink: Sink, rst: bool) -> None:
    async with FaultProxy(sink.url) as proxy:
        r, w = await connect(proxy)
        w.write(b"hello")
        await sink.wait_bytes(5)
        assert proxy.cut(rst=rst) == 1
        if rst:
            with pytest.raises(ConnectionResetError):
                await asyncio.wait_for(drain(r), T)
        else:
            assert await asyncio.wait_for(r.read(100), T) == b""
        await asyncio.wait_for(sink.eof.wait(), T)
        st = proxy.stats()
        assert st.faults["cut"] == 1
        assert st.faults["reset"] == (1 if rst else 0)
        assert st.open == 0
        await close(w)


async def test_cut_after_n_bytes_mid_stream(sink: Sink) -> None:
    async with FaultProxy(sink.url, seed=1) as proxy:
        proxy.split(64, "up")
        proxy.cut_after(1000, "up")
        _r, w = await connect(proxy)
        w.write(DATA)
        await asyncio.wait_for(sink.eof.wait(), T)
        assert sink.data == DATA[:1000]
        assert proxy.stats().faults["cut"] == 1
        await close(w)
        # Disarmed after one cut: the next connection passes everything.
        sink.reads.clear()
        sink.eof.clear()
        _, w = await connect(proxy)
        w.write(DATA)
        await sink.wait_bytes(len(DATA))
        await close(w)


async def test_refused_target_closes_the_client() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    async with FaultProxy(("127.0.0.1", port)) as proxy:
        r, w = await connect(proxy)
        assert await asyncio.wait_for(r.read(10), T) == b""
        await close(w)
        async with asyncio.timeout(T):
            while proxy.stats().connect_failures < 1:
                await asyncio.sleep(0.01)


async def test_ipc_both_sides(tmp_path: Path) -> None:
    got: list[bytes] = []

    async def handle(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        got.append(await r.readexactly(4))
        w.write(b"pong")
        await w.drain()
        w.close()

    path = str(tmp_path / "t.sock")
    server = await asyncio.start_unix_server(handle, path)
    try:
        async with FaultProxy(f"ipc://{path}", listen=f"ipc://{tmp_path / 'p.sock'}") as proxy:
            assert proxy.url == f"ipc://{tmp_path / 'p.sock'}"
            proxy.split(1)
            r, w = await asyncio.open_unix_connection(str(tmp_path / "p.sock"))
            w.write(b"ping")
            assert await asyncio.wait_for(r.readexactly(4), T) == b"pong"
            assert got == [b"ping"]
            await close(w)
    finally:
        server.close()
        await server.wait_closed()


def test_own_thread_controlled_from_other_threads() -> None:
    """Blocking mode: the proxy on its own thread, faults set from two threads."""
    with no_leaks():
        lsock = socket.create_server(("127.0.0.1", 0))
        received = bytearray()

        def serve() -> None:
            conn, _ = lsock.accept()
            with conn:
                while data := conn.recv(65536):
                    received.extend(data)
                    conn.sendall(data)

        server = threading.Thread(target=serve)
        server.start()
        try:
            with FaultProxy(("127.0.0.1", lsock.getsockname()[1]), seed=2) as proxy:
                assert any(t.name == "purenng-faultproxy" for t in threading.enumerate())
                other = threading.Thread(target=proxy.split, args=(2,))
                other.start()
                other.join(T)
                proxy.delay(0.01)
                with socket.create_connection(("127.0.0.1", proxy.port), timeout=T) as c:
                    c.sendall(DATA[:3000])
                    back = bytearray()
                    while len(back) < 3000:
                        back.extend(c.recv(65536))
                    assert bytes(back) == DATA[:3000]
                st = proxy.stats()
                assert st.pieces >= 3000
                assert st.faults["delay"] >= 1
        finally:
            server.join(T)
            lsock.close()
        assert bytes(received) == DATA[:3000]
    assert not any(t.name == "purenng-faultproxy" for t in threading.enumerate())


async def test_own_thread_proxy_used_from_async_test(echo: Sink) -> None:
    proxy = FaultProxy(echo.url).start()
    async with proxy:
        proxy.split(4)
        r, w = await connect(proxy)
        w.write(b"abcdefghij")
        assert await asyncio.wait_for(r.readexactly(10), T) == b"abcdefghij"
        await close(w)


async def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="tcp:// and ipc://"):
        FaultProxy("ws://127.0.0.1:1")
    with pytest.raises(ValueError, match="no port"):
        FaultProxy("tcp://127.0.0.1")
    proxy = FaultProxy("tcp://127.0.0.1:1")
    with pytest.raises(ValueError, match="direction"):
        proxy.delay(1, "sideways")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="rate"):
        proxy.corrupt(rate=2)
    with pytest.raises(ValueError, match=">= 0"):
        proxy.split(-1)
