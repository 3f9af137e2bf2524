"""BUS v0: identity, options, star and mesh delivery, raw header, best-effort loss.

purenng against itself, a hand-made SP peer over TCP where the wire must be
controlled, and the protocol object alone with fake pipes for the queue
rules (wire-protocols.md §1.4 "BUS", §1.5; ideas from NNG's ``bus_test.c``).
Interop with real NNG is in tests/interop/test_nng_bus_device.py.

Negative checks ("did not reach X") are made by ordering, never by waiting:
a message that should not arrive would be queued ahead of a later sentinel
on the same connection, so the sentinel must be the next thing received.
"""

from __future__ import annotations

import struct
from collections import deque
from typing import TYPE_CHECKING, Any, cast

import pytest

import purenng
from purenng import Message
from purenng.core.errors import BadOption, NotSupported
from purenng.protocols.bus0 import RECV_BUFFER, SEND_BUFFER, Bus0Protocol
from support.raw_sp import BUS, RawSP
from support.waiting import await_for, wait_for

if TYPE_CHECKING:
    from collections.abc import Iterator

LONG = 5.0  # only to stop hangs


def bus(**kw: Any) -> purenng.Socket:
    kw.setdefault("recv_timeout", LONG)
    kw.setdefault("send_timeout", LONG)
    return purenng.Bus0(**kw)


def port_of(sock: purenng.Socket) -> int:
    port = sock.listeners[0].port
    assert port is not None
    return port


@pytest.fixture
def star() -> Iterator[tuple[purenng.Socket, purenng.Socket, purenng.Socket]]:
    """s1 listens; s2 and s3 dial it (NNG's "bus star")."""
    s1 = bus(listen="tcp://127.0.0.1:0")
    url = s1.listeners[0].url
    s2 = bus(dial=url)
    s3 = bus(dial=url)
    try:
        wait_for(lambda: len(s1.pipes) == 2, "two pipes on the hub")
        yield s1, s2, s3
    finally:
        for s in (s3, s2, s1):
            s.close()


# ------------------------------------------------------------------ identity and options


def test_identity() -> None:
    assert (Bus0Protocol.self_id, Bus0Protocol.peer_id) == (0x70, 0x70)
    assert (Bus0Protocol.self_name, Bus0Protocol.peer_name) == ("bus", "bus")
    with purenng.Bus0() as s:
        assert s.protocol_cls is Bus0Protocol
        info = s.protocol_info
        assert (info.self_id, info.peer_id, info.self_name, info.peer_name) == (
            0x70,
            0x70,
            "bus",
            "bus",
        )
        assert s.raw is False
    with purenng.Bus0(raw=True) as r:
        assert r.raw is True


def test_buffer_defaults_and_ranges() -> None:
    with purenng.Bus0() as s:
        assert s.send_buffer == SEND_BUFFER == 16
        assert s.recv_buffer == RECV_BUFFER == 16
        s.send_buffer = 1
        s.send_buffer = 8192
        assert s.send_buffer == 8192
        for bad in (0, -1, 8193, "3", True):
            with pytest.raises(BadOption):
                s.send_buffer = bad  # type: ignore[assignment]
        s.recv_buffer = 3
        assert s.recv_buffer == 3


def test_no_contexts() -> None:
    with purenng.Bus0() as s, pytest.raises(NotSupported):
        s.new_context()


def test_send_without_pipes_succeeds() -> None:
    # Best effort: nobody to send to is not an error and never waits.
    with purenng.Bus0(send_timeout=0.0) as s:
        s.send(b"DROP1")
        s.send(b"DROP2", block=False)


def test_refuses_other_protocols() -> None:
    with bus(listen="tcp://127.0.0.1:0") as s, purenng.Pair0(dial=s.listeners[0].url):
        wait_for(lambda: s.stats()["protocol_mismatch"] >= 1, "the pair0 peer to be refused")
        assert s.pipes == []


# ------------------------------------------------------------------ delivery


def test_star(star: tuple[purenng.Socket, purenng.Socket, purenng.Socket]) -> None:
    s1, s2, s3 = star
    s1.send(b"one")
    assert s2.recv() == b"one"
    assert s3.recv() == b"one"

    s2.send(b"two")
    assert s1.recv() == b"two"
    # s1 must not forward "two" (to s3, nor back to s2): its next message,
    # sent after it received "two", is the first either of them sees.
    s1.send(b"three")
    assert s2.recv() == b"three"
    assert s3.recv() == b"three"


def test_full_mesh_reaches_every_other_peer_once() -> None:
    a = bus(listen="tcp://127.0.0.1:0")
    b = bus(listen="tcp://127.0.0.1:0", dial=a.listeners[0].url)
    c = bus(dial=[a.listeners[0].url, b.listeners[0].url])
    socks = [a, b, c]
    try:
        wait_for(lambda: all(len(s.pipes) == 2 for s in socks), "a full mesh")
        for i, sender in enumerate(socks):
            sender.send(b"from %d" % i)
            for j, other in enumerate(socks):
                if j != i:
                    msg = other.recv_msg()
                    assert msg.bytes == b"from %d" % i
                    assert msg.header == b""  # cooked: no header shown
                    assert msg.pipe is not None
                    assert msg.pipe in other.pipes
        # Nothing was echoed to a sender, nor delivered twice: a round of
        # sentinels is what everyone sees next.
        for i, sender in enumerate(socks):
            sender.send(b"sentinel %d" % i)
        for j, s in enumerate(socks):
            got = sorted(s.recv() for _ in range(2))
            assert got == sorted(b"sentinel %d" % i for i in range(3) if i != j)
    finally:
        for s in socks:
            s.close()


def test_cooked_send_clears_header(
    star: tuple[purenng.Socket, purenng.Socket, purenng.Socket],
) -> None:
    s1, s2, _ = star
    s1.send_msg(Message(b"body", header=b"\x00\x00\x00\x07junk"))
    msg = s2.recv_msg()
    assert msg.bytes == b"body"
    assert msg.header == b""


async def test_async_exchange() -> None:
    async with (
        purenng.Bus0(listen="tcp://127.0.0.1:0", recv_timeout=LONG) as a,
        purenng.Bus0(dial=a.listeners[0].url, recv_timeout=LONG) as b,
    ):
        await await_for(lambda: a.pipes, "a pipe")
        await a.asend(b"x")
        assert await b.arecv() == b"x"
        await b.asend(b"y")
        assert await a.arecv() == b"y"


@pytest.mark.parametrize("transport", ["ipc", "inproc"])
def test_other_transports(transport: str, purenng_ipc_url: str, purenng_inproc_url: str) -> None:
    url = purenng_ipc_url if transport == "ipc" else purenng_inproc_url
    with bus(listen=url) as a, bus(dial=url) as b:
        wait_for(lambda: bool(a.pipes), "a pipe")
        a.send(b"ping")
        assert b.recv() == b"ping"
        b.send(b"pong")
        assert a.recv() == b"pong"


# ------------------------------------------------------------------ raw mode


def test_raw_receive_carries_source_pipe_id(
    star: tuple[purenng.Socket, purenng.Socket, purenng.Socket],
) -> None:
    _, s2, s3 = star
    with bus(raw=True, listen="tcp://127.0.0.1:0") as raw:
        url = raw.listeners[0].url
        s2.dial(url, block=True)
        s3.dial(url, block=True)
        wait_for(lambda: len(raw.pipes) == 2, "two pipes on the raw socket")
        s2.send(b"from s2")
        m2 = raw.recv_msg()
        s3.send(b"from s3")
        m3 = raw.recv_msg()
        assert (m2.bytes, m3.bytes) == (b"from s2", b"from s3")
        assert m2.pipe is not None
        assert m3.pipe is not None
        assert m2.pipe is not m3.pipe
        assert bytes(m2.header) == struct.pack(">I", m2.pipe.id)
        assert bytes(m3.header) == struct.pack(">I", m3.pipe.id)


def test_raw_send_skips_the_pipe_in_the_header() -> None:
    with bus(raw=True, listen="tcp://127.0.0.1:0") as raw:
        url = raw.listeners[0].url
        with bus(dial=url) as c1, bus(dial=url) as c2:
            wait_for(lambda: len(raw.pipes) == 2, "two pipes on the raw socket")
            c1.send(b"hello")
            origin = raw.recv_msg()
            assert origin.pipe is not None
            # Reflect it as a device would: header names the origin.
            raw.send_msg(Message(origin.body, header=origin.header))
            assert c2.recv() == b"hello"
            # An empty header skips nobody: c1's next message is this one,
            # so "hello" was never echoed to it.
            raw.send_msg(Message(b"to all"))
            assert c1.recv() == b"to all"
            assert c2.recv() == b"to all"


def test_raw_send_header_beyond_the_pipe_word_goes_on_the_wire() -> None:
    with bus(raw=True, listen="tcp://127.0.0.1:0") as raw, bus(dial=raw.listeners[0].url) as c:
        wait_for(lambda: bool(raw.pipes), "a pipe")
        other = struct.pack(">I", 0x7FFFFFFF)  # no such pipe: skips nobody
        raw.send_msg(Message(b"body", header=other + b"ab"))
        assert c.recv() == b"abbody"
        raw.send_msg(Message(b"body", header=b"xy"))  # short: all of it on the wire
        assert c.recv() == b"xybody"


# ------------------------------------------------------------------ best effort, on the wire


def silent_peer(port: int) -> RawSP:
    """A BUS peer over TCP that shakes hands and then reads nothing.

    A tiny receive window: the sender's buffers fill up quickly.
    """
    return RawSP.connect(port, BUS, BUS, rcvbuf=4096)


def test_slow_peer_drops_but_never_blocks_the_others() -> None:
    n, size = 60, 256 * 1024
    with bus(listen="tcp://127.0.0.1:0", send_buffer=2, send_timeout=LONG) as s:
        silent = silent_peer(port_of(s))
        try:
            with bus(dial=s.listeners[0].url) as fast:
                wait_for(lambda: len(s.pipes) == 2, "two pipes")
                body = b"x" * size
                # In lock step with the reading peer, so that only the
                # silent one falls behind: the reader gets every message
                # while the silent peer's pipe fills up and then drops.
                for i in range(n):
                    s.send(struct.pack(">I", i) + body)  # never waits
                    got = fast.recv()
                    assert got[:4] == struct.pack(">I", i)
                    assert len(got) == size + 4
                # The silent one could not take 15 MiB: the rest was dropped.
                assert s.stats()["drops"] > 0
                assert fast.stats()["drops"] == 0
        finally:
            silent.close()


def test_full_receive_queue_drops_new_messages() -> None:
    with bus(listen="tcp://127.0.0.1:0", recv_buffer=4) as s:
        peer = silent_peer(port_of(s))
        try:
            wait_for(lambda: bool(s.pipes), "a pipe")
            for i in range(40):
                peer.send(b"m%02d" % i)
            wait_for(lambda: s.stats()["messages_in"] == 40, "40 messages in")
            assert s.stats()["drops"] == 36
            assert [s.recv() for _ in range(4)] == [b"m%02d" % i for i in range(4)]
            # Room again: new messages are queued.
            peer.send(b"later")
            assert s.recv() == b"later"
        finally:
            peer.close()


# ------------------------------------------------------------------ queue rules, in isolation


class FakePipe:
    def __init__(self, pid: int) -> None:
        self.id = pid
        self.writable = True
        self.closed = False
        self.written: list[tuple[bytes, bytes]] = []

    def write(self, header: Any, body: Any) -> None:
        self.written.append((bytes(header), bytes(body)))

    def pause_reading(self) -> None:
        raise AssertionError("BUS never pauses a pipe")


class FakeChannel:
    def __init__(self, capacity: int) -> None:
        self.recv_capacity = capacity
        self.queue: deque[Message] = deque()

    @property
    def recv_queued(self) -> int:
        return len(self.queue)

    def deliver(self, msg: Message) -> bool:
        self.queue.append(msg)
        return len(self.queue) < self.recv_capacity


class FakeHost:
    def __init__(self, **options: Any) -> None:
        self.options = {"send_buffer": SEND_BUFFER, **options}
        self.channel = FakeChannel(RECV_BUFFER)
        self.counts: dict[str, int] = {}

    def count(self, name: str, n: int = 1) -> None:
        self.counts[name] = self.counts.get(name, 0) + n

    def reject_pipe(self, pipe: Any, reason: str) -> None:
        raise AssertionError(f"BUS rejected a pipe: {reason}")


def make(raw: bool = False, **options: Any) -> tuple[Bus0Protocol, FakeHost, list[FakePipe]]:
    host = FakeHost(**options)
    proto = Bus0Protocol(host, raw)  # type: ignore[arg-type]
    pipes = [FakePipe(pid) for pid in (11, 22, 33)]
    for p in pipes:
        assert proto.add_pipe(p)  # type: ignore[arg-type]
    return proto, host, pipes


def test_unit_busy_pipe_queues_then_drops() -> None:
    proto, host, (p1, p2, p3) = make(send_buffer=2)
    p2.writable = False
    for i in range(5):
        assert proto.try_send(Message(b"%d" % i))
    assert [b for _, b in p1.written] == [b"0", b"1", b"2", b"3", b"4"]
    assert [b for _, b in p3.written] == [b"0", b"1", b"2", b"3", b"4"]
    assert p2.written == []
    assert host.counts == {"drops": 3}  # 2 queued for p2, 3 dropped
    p2.writable = True
    proto.pipe_writable(p2)  # type: ignore[arg-type]
    assert [b for _, b in p2.written] == [b"0", b"1"]
    # Queue empty again: the next message goes straight out.
    proto.try_send(Message(b"5"))
    assert [b for _, b in p2.written] == [b"0", b"1", b"5"]
    assert proto.can_send()


def test_unit_queued_messages_keep_order_behind_the_queue() -> None:
    proto, _, (_, p2, _) = make(send_buffer=4)
    p2.writable = False
    proto.try_send(Message(b"a"))
    p2.writable = True  # writable again, but "a" is still queued
    proto.try_send(Message(b"b"))
    assert p2.written == []
    proto.pipe_writable(p2)  # type: ignore[arg-type]
    assert [b for _, b in p2.written] == [b"a", b"b"]


def test_unit_removed_pipe_counts_its_queue_as_dropped() -> None:
    proto, host, (_, p2, _) = make()
    p2.writable = False
    proto.try_send(Message(b"a"))
    proto.try_send(Message(b"b"))
    proto.remove_pipe(p2)  # type: ignore[arg-type]
    assert host.counts == {"drops": 2}
    proto.try_send(Message(b"c"))  # no longer offered to p2
    assert p2.written == []


def test_unit_send_buffer_option_changes_the_limit() -> None:
    proto, host, (_, p2, _) = make(send_buffer=1)
    p2.writable = False
    proto.try_send(Message(b"a"))
    proto.try_send(Message(b"b"))
    assert host.counts == {"drops": 1}
    proto.set_option("send_buffer", 3)
    proto.try_send(Message(b"c"))
    proto.try_send(Message(b"d"))
    assert host.counts == {"drops": 1}


def test_unit_raw_send_skips_origin_and_keeps_extra_header() -> None:
    proto, _, (p1, p2, p3) = make(raw=True)
    proto.try_send(Message(b"m", header=struct.pack(">I", 22) + b"\x80\x00\x00\x01"))
    assert p1.written == [(b"\x80\x00\x00\x01", b"m")]
    assert p2.written == []
    assert p3.written == [(b"\x80\x00\x00\x01", b"m")]


def test_unit_cooked_ignores_a_header_naming_a_pipe() -> None:
    proto, _, pipes = make(raw=False)
    proto.try_send(Message(b"m", header=struct.pack(">I", 22)))
    assert all(p.written == [(b"", b"m")] for p in pipes)


def test_unit_receive_headers_and_full_queue() -> None:
    raw, host, (p1, _, _) = make(raw=True)
    raw.pipe_message(p1, b"hello")  # type: ignore[arg-type]
    msg = host.channel.queue.popleft()
    assert (msg.bytes, bytes(msg.header)) == (b"hello", struct.pack(">I", 11))
    assert msg.pipe is cast("Any", p1)

    cooked, host, (p1, _, _) = make(raw=False)
    host.channel.recv_capacity = 2
    for i in range(5):
        cooked.pipe_message(p1, b"%d" % i)  # type: ignore[arg-type]
    assert [m.bytes for m in host.channel.queue] == [b"0", b"1"]
    assert all(m.header == b"" and m.pipe is cast("Any", p1) for m in host.channel.queue)
    assert host.counts == {"drops": 3}
