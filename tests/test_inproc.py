"""The inproc transport: names, pipes across loops, flow control, close, no fds."""

from __future__ import annotations

import asyncio
import itertools
import os
import threading
import time
from typing import TYPE_CHECKING

import pytest

import purenng
from purenng.core.errors import AddressInUse, Closed, ConnectionRefused, ProtocolError, Timeout
from purenng.core.message import Message
from purenng.core.pipe import PipeEvent
from purenng.transports import inproc
from support.waiting import await_for, wait_for

if TYPE_CHECKING:
    from purenng.core.pipe import Pipe
    from purenng.core.socket import Socket

_seq = itertools.count()


@pytest.fixture
def name(request: pytest.FixtureRequest) -> str:
    """A fresh inproc URL per test (names are process-wide)."""
    return f"inproc://{request.node.name}-{next(_seq)}"


def _fd_count() -> int:
    return len(os.listdir("/proc/self/fd"))


async def _turns(n: int) -> None:
    """Let the loop run ``n`` iterations (callbacks posted with call_soon run)."""
    for _ in range(n):
        await asyncio.sleep(0)


# ------------------------------------------------------------ basic traffic


async def test_conformance(name: str) -> None:
    from purenng.testing import check_transport

    report = await check_transport(name)
    assert "close_while_busy" in report.passed
    assert "exchange" in report.passed


async def test_pair0_both_ways_async(name: str) -> None:
    async with (
        purenng.Pair0(listen=name, recv_timeout=5) as a,
        purenng.Pair0(dial=name, recv_timeout=5) as b,
    ):
        for i in range(100):
            await b.asend(b"b%d" % i)
            await a.asend(b"a%d" % i)
        assert [await a.arecv() for _ in range(100)] == [b"b%d" % i for i in range(100)]
        assert [await b.arecv() for _ in range(100)] == [b"a%d" % i for i in range(100)]
        (pa,) = a.pipes
        (pb,) = b.pipes
        assert pa.transport == pb.transport == "inproc"
        assert pa.peer_id == pb.peer_id == 0x10
        assert pa.local_address == pb.remote_address == name.removeprefix("inproc://")
        assert pb.listener is None
        assert pb.dialer is b.dialers[0]
        assert pa.listener is a.listeners[0]
        assert pa.dialer is None
        assert pa.msgs_in == 100
        assert pb.msgs_out == 100
        assert pa.bytes_in == pb.bytes_out == sum(len(b"b%d" % i) for i in range(100))


@pytest.mark.parametrize("push_listens", [True, False], ids=["push-listens", "pull-listens"])
def test_push_pull_blocking(name: str, push_listens: bool) -> None:
    if push_listens:
        push = purenng.Push0(listen=name, send_timeout=5)
        pull = purenng.Pull0(dial=name, recv_timeout=5)
    else:
        pull = purenng.Pull0(listen=name, recv_timeout=5)
        push = purenng.Push0(dial=name, send_timeout=5)
    with push, pull:
        for i in range(500):
            push.send(b"%d" % i)
        assert [pull.recv() for _ in range(500)] == [b"%d" % i for i in range(500)]
        assert pull.pipes[0].peer_id == 0x50
        assert push.pipes[0].peer_id == 0x51


async def test_push_pull_async_both_roles(name: str) -> None:
    async with (
        purenng.Push0(listen=name, send_timeout=5) as push,
        purenng.Pull0(dial=name, recv_timeout=5) as pull,
    ):
        await push.asend(b"one")
        assert await pull.arecv() == b"one"
    async with (
        purenng.Pull0(listen=name, recv_timeout=5) as pull,
        purenng.Push0(dial=name, send_timeout=5) as push,
    ):
        await push.asend(b"two")
        assert await pull.arecv() == b"two"


async def test_body_travels_without_copy(name: str) -> None:
    async with (
        purenng.Pull0(listen=name, recv_timeout=5) as pull,
        purenng.Push0(dial=name, send_timeout=5) as push,
    ):
        body = b"z" * 1000
        await push.asend(body)
        assert await pull.arecv() is body
        ba = bytearray(b"mutable")
        await push.asend(ba)
        assert (await pull.arecv_msg()).body is ba
        await push.asend(memoryview(b"abcdef")[1:4])
        msg = await pull.arecv_msg()
        assert type(msg.body) is bytes
        assert msg.body == b"bcd"


async def test_header_is_pulled_up_into_the_body(name: str) -> None:
    async with (
        purenng.Pair0(listen=name, recv_timeout=5) as cooked,
        purenng.Pair0(dial=name, raw=True, send_timeout=5) as raw,
    ):
        await raw.asend_msg(Message(b"BODY", b"HDR"))
        msg = await cooked.arecv_msg()
        assert msg.body == b"HDRBODY"
        assert type(msg.body) is bytes
        assert bytes(msg.header) == b""


async def test_recv_max_size_is_ignored(name: str) -> None:
    async with (
        purenng.Pull0(listen=name, recv_timeout=5, recv_max_size=16) as pull,
        purenng.Push0(dial=name, send_timeout=5) as push,
    ):
        await push.asend(b"x" * 100_000)
        assert len(await pull.arecv()) == 100_000
        assert pull.pipes


# ------------------------------------------------------------ two loops


async def test_sockets_on_two_loops(name: str) -> None:
    here = purenng.Pair0(recv_timeout=5, send_timeout=5)
    await here.alisten(name)
    # Made outside any loop, in a thread: it lives on the background loop.
    there: Socket = await asyncio.to_thread(purenng.Pair0, recv_timeout=5, send_timeout=5)
    try:
        assert there.loop is not here.loop
        await asyncio.to_thread(there.dial, name, block=True)
        await asyncio.to_thread(there.send, b"hello")
        assert await here.arecv() == b"hello"
        # Bulk both ways: blocking sends on the background socket from a
        # thread, async sends here; each side reads the other's.
        n = 2000

        def send_all() -> None:
            for i in range(n):
                there.send(b"%d" % i)

        t = threading.Thread(target=send_all)
        t.start()
        assert [await here.arecv() for _ in range(n)] == [b"%d" % i for i in range(n)]
        await asyncio.to_thread(t.join, 5)
        reader = asyncio.get_running_loop().run_in_executor(
            None, lambda: [there.recv() for _ in range(n)]
        )
        for i in range(n):
            await here.asend(b"h%d" % i)
        assert await reader == [b"h%d" % i for i in range(n)]
        # The async API of the foreign socket works from this loop too.
        await there.asend(b"bridged")
        assert await here.arecv() == b"bridged"
    finally:
        await asyncio.to_thread(there.close)
        await here.aclose()


async def test_close_notifies_each_side_once_on_its_own_loop(name: str) -> None:
    here = purenng.Pair0(recv_timeout=5)
    there: Socket = await asyncio.to_thread(purenng.Pair0, recv_timeout=5)
    events: list[tuple[str, PipeEvent, int]] = []
    here.on_pipe_event(lambda p, e: events.append(("here", e, threading.get_ident())))
    there.on_pipe_event(lambda p, e: events.append(("there", e, threading.get_ident())))
    try:
        await here.alisten(name, reconnect_time_min=5)
        await asyncio.to_thread(there.dial, name, block=True, reconnect_time_min=5)
        await await_for(lambda: len(here.pipes) == 1)
        (pipe,) = here.pipes
        pipe.close()
        await await_for(lambda: not there.pipes)
        removed = [(who, tid) for who, e, tid in events if e is PipeEvent.REMOVE_POST]
        assert sorted(w for w, _ in removed) == ["here", "there"]
        tids = dict(removed)
        assert tids["here"] == threading.get_ident()
        assert tids["there"] != threading.get_ident()
        assert here.stats()["pipes_removed"] == 1
        assert there.stats()["pipes_removed"] == 1
    finally:
        await asyncio.to_thread(there.close)
        await here.aclose()


# ------------------------------------------------------------ flow control


def test_back_pressure_blocks_then_delivers_everything_in_order(name: str) -> None:
    n = 10_000
    with (
        purenng.Pull0(listen=name, recv_timeout=5) as pull,
        purenng.Push0(dial=name, send_timeout=0.2) as push,
    ):
        timeouts = 0
        blocked = threading.Event()
        errors: list[BaseException] = []

        def produce() -> None:
            nonlocal timeouts
            try:
                i = 0
                deadline = time.monotonic() + 30
                while i < n and time.monotonic() < deadline:
                    try:
                        push.send(b"%d" % i)
                    except Timeout:
                        timeouts += 1
                        blocked.set()
                        continue
                    i += 1
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)
                blocked.set()

        t = threading.Thread(target=produce)
        t.start()
        # Nobody reads: the sender must hit the high-water marks and time out.
        assert blocked.wait(10), "send never blocked"
        (ppipe,) = pull.pipes
        assert isinstance(ppipe, inproc.InprocPipe)
        assert ppipe.queued >= inproc.HIGH_WATER
        assert not push.pipes[0].writable
        got = [pull.recv() for _ in range(n)]
        t.join(10)
        assert not errors
        assert timeouts >= 1
        assert got == [b"%d" % i for i in range(n)]
        pull.recv_timeout = 0.05
        with pytest.raises(Timeout):
            pull.recv()


async def test_back_pressure_across_loops(name: str) -> None:
    """The wake-up after a drain crosses threads: the writer lives on another loop."""
    n = 10_000
    pull = purenng.Pull0(recv_timeout=5, recv_buffer=16)
    await pull.alisten(name)
    push: Socket = await asyncio.to_thread(purenng.Push0, send_timeout=10)
    try:
        await asyncio.to_thread(push.dial, name, block=True)

        def send_all() -> None:
            for i in range(n):
                push.send(b"%d" % i)

        sender = asyncio.get_running_loop().run_in_executor(None, send_all)
        await await_for(lambda: bool(push.pipes) and not push.pipes[0].writable)
        assert [await pull.arecv() for _ in range(n)] == [b"%d" % i for i in range(n)]
        await sender
    finally:
        await asyncio.to_thread(push.close)
        await pull.aclose()


async def test_pause_keeps_messages_and_resume_delivers_them(name: str) -> None:
    # Pipe-level: with the reader paused, writes queue up; nothing is lost.
    async with (
        purenng.Pair0(listen=name, recv_timeout=5) as a,
        purenng.Pair0(dial=name, recv_timeout=5) as b,
    ):
        await await_for(lambda: len(a.pipes) == 1)
        (pa,) = a.pipes
        (pb,) = b.pipes
        assert isinstance(pa, inproc.InprocPipe)
        pa.pause_reading()
        for i in range(10):
            pb.write(b"", b"%d" % i)
        await _turns(3)  # the drain posted by write would have run by now
        assert pa.queued == 10
        assert a.channel.recv_queued == 0
        pa.resume_reading()
        assert [await a.arecv() for _ in range(10)] == [b"%d" % i for i in range(10)]


async def test_write_does_not_deliver_synchronously(name: str) -> None:
    async with (
        purenng.Pair0(listen=name, recv_timeout=5) as a,
        purenng.Pair0(dial=name, recv_timeout=5) as b,
    ):
        await await_for(lambda: len(a.pipes) == 1)
        (pb,) = b.pipes
        pb.write(b"", b"x")
        pb.write(b"", b"y")
        assert a.channel.recv_queued == 0
        assert await a.arecv() == b"x"
        assert await a.arecv() == b"y"


async def test_writable_follows_the_water_marks(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    async with (
        purenng.Pair0(listen=name, recv_timeout=5) as a,
        purenng.Pair0(dial=name, recv_timeout=5) as b,
    ):
        await await_for(lambda: len(a.pipes) == 1)
        (pa,) = a.pipes
        (pb,) = b.pipes
        woken: list[Pipe] = []
        real = b._protocol.pipe_writable

        def spy(p: Pipe) -> None:
            woken.append(p)
            real(p)

        monkeypatch.setattr(b._protocol, "pipe_writable", spy)
        pa.pause_reading()
        for _ in range(inproc.HIGH_WATER - 1):
            pb.write(b"", b"m")
        assert pb.writable
        pb.write(b"", b"m")
        assert not pb.writable
        a.recv_buffer = 8192
        pa.resume_reading()
        await await_for(lambda: bool(woken))
        assert woken == [pb]
        assert pb.writable


# ------------------------------------------------------------ names


async def test_address_in_use_and_connection_refused(name: str) -> None:
    async with purenng.Pair0(listen=name) as a, purenng.Pair0() as b:
        with pytest.raises(AddressInUse):
            await b.alisten(name)
        assert a.listeners
        with pytest.raises(ConnectionRefused):
            await b.adial(name + "-nobody", block=True)
        assert not b.dialers


def test_name_is_reusable_after_listener_close(name: str) -> None:
    with purenng.Pull0(recv_timeout=5) as pull, purenng.Push0(send_timeout=5) as push:
        lst = pull.listen(name)
        push.dial(name, block=True)
        lst.close()
        # The pipe made by the closed listener lives on.
        push.send(b"still here")
        assert pull.recv() == b"still here"
        with purenng.Pull0(recv_timeout=5) as other:
            other.listen(name)
            with purenng.Push0(dial=name, send_timeout=5) as push2:
                push2.send(b"new owner")
                assert other.recv() == b"new owner"
        # Closing the whole socket frees the name as well.
        with pytest.raises(ConnectionRefused):
            push.dial(name, block=True)
        assert name.removeprefix("inproc://") not in inproc.bound_names()


async def test_protocol_mismatch_is_refused(name: str) -> None:
    async with purenng.Pull0(listen=name) as pull, purenng.Pair0() as pair:
        with pytest.raises(ProtocolError, match="0x51"):
            await pair.adial(name, block=True)
        await _turns(3)  # the listener side's hand-over has run by now
        assert not pull.pipes
        assert not pair.pipes
        assert pair.stats()["protocol_mismatch"] == 1


# ------------------------------------------------------------ close


def test_close_while_peer_blocked_in_recv(name: str) -> None:
    a = purenng.Pair0(listen=name, recv_timeout=10)
    b = purenng.Pair0(recv_timeout=10)
    try:
        b.dial(name, block=True)
        wait_for(lambda: len(a.pipes) == 1 and len(b.pipes) == 1)
        removed = threading.Event()
        b.on_pipe_event(lambda p, e: removed.set(), PipeEvent.REMOVE_POST)
        results: dict[str, BaseException | bytes] = {}

        def blocked_recv(who: str, sock: Socket) -> None:
            try:
                results[who] = sock.recv()
            except BaseException as exc:
                results[who] = exc

        ta = threading.Thread(target=blocked_recv, args=("a", a))
        tb = threading.Thread(target=blocked_recv, args=("b", b))
        ta.start()
        tb.start()
        wait_for(lambda: a.channel._thread_waiters == 1 and b.channel._thread_waiters == 1)
        a.close()
        ta.join(5)
        assert isinstance(results["a"], Closed)
        assert removed.wait(5)
        assert not b.pipes
        # b's recv is still waiting (its socket is open): feed it through a new peer.
        with purenng.Pair0(listen=name) as c:
            wait_for(lambda: len(b.pipes) == 1)
            c.send(b"after")
            tb.join(5)
        assert results["b"] == b"after"
    finally:
        a.close()
        b.close()


async def test_messages_queued_to_a_closed_side_are_dropped(name: str) -> None:
    async with (
        purenng.Pair0(listen=name, recv_timeout=5) as a,
        purenng.Pair0(dial=name, recv_timeout=5) as b,
    ):
        await await_for(lambda: len(a.pipes) == 1)
        (pa,) = a.pipes
        (pb,) = b.pipes
        assert isinstance(pa, inproc.InprocPipe)
        pa.pause_reading()
        pb.write(b"", b"lost")
        pa.close()
        assert pa.queued == 0
        assert pa.closed
        await await_for(lambda: pb.closed)
        pb.write(b"", b"ignored")  # writing to a closed pipe is a no-op
        assert not a.pipes
        assert not b.pipes


# ------------------------------------------------------------ scale, no file descriptors


@pytest.mark.slow
async def test_ten_thousand_sockets_use_no_file_descriptors(name: str) -> None:
    pairs = 5000
    fds_before = _fd_count()
    pulls: list[Socket] = []
    pushes: list[Socket] = []
    try:
        for i in range(pairs):
            pull = purenng.Pull0(recv_timeout=5)
            pulls.append(pull)
            await pull.alisten(f"{name}-{i}")
        for i in range(pairs):
            push = purenng.Push0(send_timeout=5)
            pushes.append(push)
            await push.adial(f"{name}-{i}", block=True)
        await await_for(lambda: all(p.pipes for p in pulls), timeout=20)
        assert _fd_count() - fds_before <= 4
        for i in range(0, pairs, 499):
            await pushes[i].asend(b"%d" % i)
            assert await pulls[i].arecv() == b"%d" % i
    finally:
        for sock in [*pushes, *pulls]:
            await sock.aclose()
    assert _fd_count() - fds_before <= 4
    assert not [n for n in inproc.bound_names() if n.startswith(name.removeprefix("inproc://"))]
