"""PUB v0 / SUB v0: broadcast, prefix filtering, drops, contexts, raw (wire-protocols.md §1.4)"""

from __future__ import annotations

import asyncio
import gc
import socket
import threading
import time
import tracemalloc
from typing import TYPE_CHECKING, Any

import pytest

import purenng
from purenng.core.errors import BadOption, NotSupported, Timeout, TryAgain
from purenng.core.message import Message
from purenng.protocols.pubsub0 import (
    RECV_BUFFER,
    SEND_BUFFER,
    Pub0Protocol,
    Sub0Protocol,
)
from purenng.testing import FakeProtocolHost
from support.raw_sp import PUB, SUB, RawSP, recv_exactly, sp_header
from support.waiting import await_for, wait_for

if TYPE_CHECKING:
    from collections.abc import Iterator

    from purenng.core.message import BytesLike

LONG = 5.0  # only to stop hangs

_names = iter(range(1 << 30))


def inproc_url() -> str:
    return f"inproc://test-pubsub-{next(_names)}"


def port_of(sock: purenng.Socket) -> int:
    port = sock.listeners[0].port
    assert port is not None
    return port


def recv_until(sub: Any, last: bytes) -> list[bytes]:
    """Everything ``sub`` receives up to and including ``last``."""
    got: list[bytes] = []
    deadline = time.monotonic() + LONG
    while not got or got[-1] != last:
        assert time.monotonic() < deadline, f"{last!r} never came; got {got[-5:]!r}"
        got.append(sub.recv())
    return got


@pytest.fixture
def pubsub() -> Iterator[tuple[purenng.Pub0, purenng.Sub0]]:
    """A PUB and one connected SUB over inproc (nothing subscribed yet)."""
    url = inproc_url()
    pub = purenng.Pub0(listen=url)
    sub = purenng.Sub0(dial=url, recv_timeout=LONG)
    with pub, sub:
        wait_for(lambda: pub.pipes)
        yield pub, sub


# ---------------------------------------------------------------- identity, options


def test_identity() -> None:
    assert (Pub0Protocol.self_id, Pub0Protocol.peer_id) == (0x20, 0x21)
    assert (Pub0Protocol.self_name, Pub0Protocol.peer_name) == ("pub", "sub")
    assert (Sub0Protocol.self_id, Sub0Protocol.peer_id) == (0x21, 0x20)
    assert (Sub0Protocol.self_name, Sub0Protocol.peer_name) == ("sub", "pub")
    with purenng.Pub0() as pub, purenng.Sub0() as sub:
        assert pub.protocol_cls is Pub0Protocol
        assert sub.protocol_cls is Sub0Protocol
        assert (pub.protocol_info.self_id, pub.protocol_info.peer_id) == (0x20, 0x21)
        assert (sub.protocol_info.self_id, sub.protocol_info.peer_id) == (0x21, 0x20)


def test_option_defaults_and_ranges() -> None:
    with purenng.Pub0() as pub, purenng.Sub0() as sub:
        assert pub.send_buffer == SEND_BUFFER == 16
        assert sub.recv_buffer == RECV_BUFFER == 128
        assert sub.prefer_new is True
        with pytest.raises(BadOption):
            pub.send_buffer = 0  # NNG: 1..8192
        with pytest.raises(BadOption):
            pub.send_buffer = 8193
        with pytest.raises(BadOption):
            sub.prefer_new = 1  # type: ignore[assignment]
        with pytest.raises(BadOption):
            sub.subscribe(42)  # type: ignore[arg-type]
        pub.send_buffer = 4
        sub.prefer_new = False
        assert (pub.send_buffer, sub.prefer_new) == (4, False)
    with pytest.raises(BadOption):
        purenng.Pub0(prefer_new=True)  # a SUB option


def test_pub_cannot_receive_sub_cannot_send() -> None:
    with purenng.Pub0() as pub, purenng.Sub0() as sub:
        with pytest.raises(NotSupported):
            pub.recv()
        with pytest.raises(NotSupported):
            pub.recv_msg(block=False)
        with pytest.raises(NotSupported):
            sub.send(b"x")
        with pytest.raises(NotSupported):
            sub.send(b"x", block=False)
        with pytest.raises(NotSupported):
            pub.new_context()  # NNG: PUB has no contexts
        with sub.new_context() as ctx, pytest.raises(NotSupported):
            ctx.send(b"x")


async def test_pub_cannot_receive_sub_cannot_send_async() -> None:
    async with purenng.Pub0() as pub, purenng.Sub0() as sub:
        with pytest.raises(NotSupported):
            await pub.arecv()
        with pytest.raises(NotSupported):
            await sub.asend(b"x")


def test_pub_send_without_pipes_succeeds() -> None:
    """PUB never waits: with nobody listening the message goes nowhere."""
    with purenng.Pub0(send_timeout=0.01) as pub:
        for i in range(100):
            pub.send(b"%d" % i, block=False)
        assert pub.stats()["drops"] == 0


# ---------------------------------------------------------------- broadcast and filtering


def test_fan_out_to_three_subscribers() -> None:
    url = inproc_url()
    msgs = [b"m%d" % i for i in range(10)]
    with purenng.Pub0(listen=url) as pub:
        subs = [purenng.Sub0(dial=url, recv_timeout=LONG) for _ in range(3)]
        try:
            for s in subs:
                s.subscribe(b"")
            wait_for(lambda: len(pub.pipes) == 3)
            for m in msgs:
                pub.send(m)
            for s in subs:
                assert [s.recv() for _ in msgs] == msgs
        finally:
            for s in subs:
                s.close()


def test_prefix_filtering(pubsub: tuple[purenng.Pub0, purenng.Sub0]) -> None:
    pub, sub = pubsub
    sub.subscribe(b"ab")
    sub.subscribe("x")
    for m in (b"a", b"ab", b"abc", b"b", b"xyz", b"", b"Xab", b"x", b"end"):
        pub.send(m)
    pub.send(b"x-last")
    assert recv_until(sub, b"x-last") == [b"ab", b"abc", b"xyz", b"x", b"x-last"]


def test_empty_topic_matches_everything(pubsub: tuple[purenng.Pub0, purenng.Sub0]) -> None:
    pub, sub = pubsub
    sub.subscribe(b"")
    msgs = [b"", b"\x00", b"anything", b"\xff" * 100]
    for m in msgs:
        pub.send(m)
    assert [sub.recv() for _ in msgs] == msgs


def test_overlapping_topics_deliver_once(pubsub: tuple[purenng.Pub0, purenng.Sub0]) -> None:
    pub, sub = pubsub
    sub.subscribe(b"a")
    sub.subscribe(b"ab")
    sub.subscribe(b"ab")  # twice is once
    pub.send(b"abc")
    pub.send(b"a-last")
    assert recv_until(sub, b"a-last") == [b"abc", b"a-last"]
    sub.unsubscribe(b"ab")  # one unsubscribe undoes the duplicate subscribe
    pub.send(b"abd")
    pub.send(b"a-last")
    assert recv_until(sub, b"a-last") == [b"abd", b"a-last"]


def test_str_topic_is_utf8(pubsub: tuple[purenng.Pub0, purenng.Sub0]) -> None:
    pub, sub = pubsub
    sub.subscribe("é")
    pub.send(b"e-plain")
    pub.send("é-accent".encode())
    assert sub.recv() == "é-accent".encode()


def test_no_subscription_receives_nothing(pubsub: tuple[purenng.Pub0, purenng.Sub0]) -> None:
    pub, sub = pubsub
    for i in range(5):
        pub.send(b"m%d" % i)
    wait_for(lambda: sub.stats()["messages_in"] == 5)
    sub.recv_timeout = 0.1
    with pytest.raises(Timeout):
        sub.recv()


def test_unsubscribe(pubsub: tuple[purenng.Pub0, purenng.Sub0]) -> None:
    pub, sub = pubsub
    sub.subscribe(b"a")
    sub.subscribe(b"b")
    with pytest.raises(BadOption, match="not subscribed"):
        sub.unsubscribe(b"c")  # NNG: ENOENT
    sub.unsubscribe("a")
    pub.send(b"a1")
    pub.send(b"b1")
    assert sub.recv() == b"b1"
    sub.unsubscribe(b"b")
    with pytest.raises(BadOption):
        sub.unsubscribe(b"b")
    pub.send(b"b2")
    wait_for(lambda: sub.stats()["messages_in"] == 3)
    with pytest.raises(TryAgain):
        sub.recv(block=False)


def test_unsubscribe_discards_queued_messages(pubsub: tuple[purenng.Pub0, purenng.Sub0]) -> None:
    """As NNG: what is still queued must match what is still subscribed."""
    pub, sub = pubsub
    sub.subscribe(b"a")
    sub.subscribe(b"b")
    sub.subscribe(b"ab")
    for m in (b"a1", b"b1", b"ab1", b"a2", b"b2"):
        pub.send(m)
    wait_for(lambda: sub.stats()["messages_in"] == 5)
    sub.unsubscribe(b"a")  # ab1 still matches "ab"
    assert [sub.recv() for _ in range(3)] == [b"b1", b"ab1", b"b2"]
    with pytest.raises(TryAgain):
        sub.recv(block=False)


def test_subscription_applies_before_returning(pubsub: tuple[purenng.Pub0, purenng.Sub0]) -> None:
    """A message published right after subscribe() returns is not filtered out."""
    pub, sub = pubsub
    for i in range(20):
        topic = b"t%d-" % i
        sub.subscribe(topic)
        pub.send(topic + b"x")
        assert sub.recv() == topic + b"x"
        sub.unsubscribe(topic)
    with sub.new_context() as ctx:
        for i in range(20):
            topic = b"c%d-" % i
            ctx.subscribe(topic)
            assert ctx.topics == [topic]  # the loop has run it already
            ctx.unsubscribe(topic)
            assert ctx.topics == []


# ---------------------------------------------------------------- queues and drops


@pytest.mark.parametrize("prefer_new", [True, False])
def test_prefer_new_picks_what_survives_a_full_queue(prefer_new: bool) -> None:
    url = inproc_url()
    with (
        purenng.Pub0(listen=url) as pub,
        purenng.Sub0(dial=url, recv_buffer=4, prefer_new=prefer_new) as sub,
    ):
        sub.subscribe(b"")
        wait_for(lambda: pub.pipes)
        for i in range(10):
            pub.send(b"m%d" % i)
        # The application does not read: 6 of the 10 must go.
        wait_for(lambda: sub.stats()["drops"] == 6)
        got = [sub.recv(block=False) for _ in range(4)]
        with pytest.raises(TryAgain):
            sub.recv(block=False)
    if prefer_new:
        assert got == [b"m6", b"m7", b"m8", b"m9"]
    else:
        assert got == [b"m0", b"m1", b"m2", b"m3"]
    assert pub.stats()["drops"] == 0


class _FakePipe:
    """Just enough of a Pipe for the PUB routing logic."""

    def __init__(self, pid: int) -> None:
        self.id = pid
        self.writable = True
        self.closed = False
        self.written: list[bytes] = []

    def write(self, header: BytesLike, body: BytesLike) -> None:
        self.written.append(bytes(header) + bytes(body))


class _FakeHost:
    def __init__(self, **options: Any) -> None:
        self.options = options
        self.counts: dict[str, int] = {}
        self.rejected: list[tuple[Any, str]] = []

    def count(self, name: str, n: int = 1) -> None:
        self.counts[name] = self.counts.get(name, 0) + n

    def reject_pipe(self, pipe: Any, reason: str) -> None:
        self.rejected.append((pipe, reason))


def test_pub_drops_oldest_for_a_full_pipe_only() -> None:
    """Per-pipe queue of send_buffer: a stuck pipe loses its oldest, others get all."""
    host = _FakeHost(send_buffer=4)
    pub = Pub0Protocol(host, raw=False)  # type: ignore[arg-type]
    stuck, fast = _FakePipe(1), _FakePipe(2)
    assert pub.add_pipe(stuck)  # type: ignore[arg-type]
    assert pub.add_pipe(fast)  # type: ignore[arg-type]
    stuck.writable = False
    for i in range(10):
        assert pub.try_send(Message(b"m%d" % i))
    assert fast.written == [b"m%d" % i for i in range(10)]
    assert stuck.written == []
    assert host.counts["drops"] == 6
    stuck.writable = True
    pub.pipe_writable(stuck)  # type: ignore[arg-type]
    assert stuck.written == [b"m6", b"m7", b"m8", b"m9"]
    # Shrinking send_buffer trims queues from the oldest end.
    stuck.writable = False
    for i in range(4):
        pub.try_send(Message(b"n%d" % i))
    pub.set_option("send_buffer", 1)
    assert host.counts["drops"] == 9
    pub.try_send(Message(b"n4"))
    assert host.counts["drops"] == 10
    stuck.writable = True
    pub.pipe_writable(stuck)  # type: ignore[arg-type]
    assert stuck.written[4:] == [b"n4"]
    # What is still queued for a pipe that goes is counted too.
    stuck.writable = False
    pub.try_send(Message(b"o"))
    pub.remove_pipe(stuck)  # type: ignore[arg-type]
    assert host.counts["drops"] == 11


def test_slow_subscriber_does_not_block_the_publisher() -> None:
    """A subscriber that never reads costs drops for itself only."""
    with purenng.Pub0(listen="tcp://127.0.0.1:0") as pub:
        url = pub.listeners[0].url
        stuck = RawSP.connect(port_of(pub), SUB, PUB, rcvbuf=4096)  # never reads
        try:
            with purenng.Sub0(dial=url, recv_timeout=LONG) as live:
                live.subscribe(b"")
                wait_for(lambda: len(pub.pipes) == 2)
                body = b"x" * (64 * 1024)
                for _ in range(300):  # ~19 MiB: far more than socket buffers hold
                    pub.send(body, block=False)  # TryAgain here would be back-pressure
                pub.send(b"last", block=False)
                wait_for(lambda: pub.stats()["drops"] > 0)
                # Both sides drop the oldest, so the newest always arrives.
                got = recv_until(live, b"last")
                assert all(m == body for m in got[:-1])
        finally:
            stuck.close()


def test_channel_discard_queued_keeps_order_under_concurrent_receives() -> None:
    """The purge behind unsubscribe, with receivers popping while it runs."""
    from purenng.core.channel import Channel

    loop = asyncio.new_event_loop()
    try:
        ch = Channel(loop, recv_capacity=100)
        for i in range(10):
            ch.deliver(Message(b"%d" % i))
        assert ch.discard_queued(lambda m: int(m.body) % 3 != 0) == 4  # 0 3 6 9 go
        assert [bytes(m.body) for m in ch._rq] == [b"1", b"2", b"4", b"5", b"7", b"8"]
        popped: list[bytes] = []

        def keep(m: Message) -> bool:
            # A receiver in another thread takes the oldest while this runs.
            if len(popped) < 3:
                popped.append(bytes(ch._rq.popleft().body))
            return m.body != b"2" and m.body != b"7"

        # 7 goes; 2 was taken by the "receiver" before the purge reached it.
        assert ch.discard_queued(keep) == 1
        assert popped == [b"1", b"2", b"4"]
        assert [bytes(m.body) for m in ch._rq] == [b"5", b"8"]
        oldest = ch.drop_oldest()
        assert oldest is not None
        assert oldest.body == b"5"
        assert ch.drop_oldest() is not None
        assert ch.drop_oldest() is None
    finally:
        loop.close()


# ---------------------------------------------------------------- contexts


def test_contexts_have_their_own_subscriptions(
    pubsub: tuple[purenng.Pub0, purenng.Sub0],
) -> None:
    pub, sub = pubsub
    ca, cb = sub.new_context(), sub.new_context()
    ca.recv_timeout = cb.recv_timeout = LONG
    ca.subscribe(b"a")
    cb.subscribe("b")
    cb.subscribe(b"ab")
    sub.subscribe(b"")
    assert (ca.topics, cb.topics) == ([b"a"], [b"b", b"ab"])
    for m in (b"a1", b"b1", b"ab1", b"c1"):
        pub.send(m)
    assert [sub.recv() for _ in range(4)] == [b"a1", b"b1", b"ab1", b"c1"]
    assert [ca.recv(), ca.recv()] == [b"a1", b"ab1"]
    assert [cb.recv(), cb.recv()] == [b"b1", b"ab1"]
    with pytest.raises(TryAgain):
        ca.recv(block=False)
    ca.unsubscribe(b"a")
    with pytest.raises(BadOption):
        ca.unsubscribe(b"a")
    ca.close()
    pub.send(b"a2")
    pub.send(b"b2")
    assert cb.recv() == b"b2"
    assert recv_until(sub, b"b2") == [b"a2", b"b2"]
    cb.close()


def test_context_options(pubsub: tuple[purenng.Pub0, purenng.Sub0]) -> None:
    pub, sub = pubsub
    sub.prefer_new = False
    with sub.new_context() as ctx:
        assert ctx.prefer_new is False  # copied from the socket
        assert ctx.recv_buffer == sub.recv_buffer
        ctx.recv_buffer = 2
        ctx.prefer_new = True
        with pytest.raises(BadOption):
            ctx.prefer_new = "yes"  # type: ignore[assignment]
        ctx.subscribe(b"")
        sub.subscribe(b"")
        sub.recv_buffer = 2
        for i in range(5):
            pub.send(b"m%d" % i)
        wait_for(lambda: sub.stats()["drops"] == 6)  # 3 in each
        assert [ctx.recv(block=False), ctx.recv(block=False)] == [b"m3", b"m4"]
        assert [sub.recv(block=False), sub.recv(block=False)] == [b"m0", b"m1"]
        assert sub.prefer_new is False  # the socket's own setting is unchanged


def test_large_message_to_several_contexts() -> None:
    """A large payload shared by several contexts arrives intact in each."""
    big = bytes(range(256)) * 4096  # 1 MiB, arrives in its own buffer
    with (
        purenng.Pub0(listen="tcp://127.0.0.1:0") as pub,
        purenng.Sub0(recv_max_size=0, recv_timeout=LONG) as sub,
    ):
        sub.dial(pub.listeners[0].url, block=True)
        wait_for(lambda: pub.pipes)
        with sub.new_context() as ctx:
            ctx.recv_timeout = LONG
            sub.subscribe(b"")
            ctx.subscribe(b"\x00\x01")
            pub.send(big)
            assert sub.recv() == big
            assert ctx.recv() == big


def test_closing_the_socket_closes_its_contexts() -> None:
    sub = purenng.Sub0()
    ctx = sub.new_context()
    ctx.recv_timeout = 2 * LONG  # only to stop a hang
    ctx.subscribe(b"")
    errors: list[BaseException] = []

    def receive() -> None:
        try:
            ctx.recv()
        except BaseException as exc:
            errors.append(exc)

    t = threading.Thread(target=receive, daemon=True)
    t.start()
    wait_for(lambda: ctx.channel.has_receiver)
    sub.close()
    t.join(LONG)
    assert not t.is_alive()
    assert len(errors) == 1
    assert isinstance(errors[0], purenng.Closed)


def test_raw_sub_has_no_contexts() -> None:
    with purenng.Sub0(raw=True) as sub, pytest.raises(NotSupported):
        sub.new_context()


# ---------------------------------------------------------------- raw


def test_raw_sub_does_not_filter() -> None:
    url = inproc_url()
    with (
        purenng.Pub0(listen=url) as pub,
        purenng.Sub0(dial=url, raw=True, recv_timeout=LONG) as sub,
    ):
        with pytest.raises(NotSupported):
            sub.subscribe(b"a")
        with pytest.raises(NotSupported):
            sub.unsubscribe(b"a")
        wait_for(lambda: pub.pipes)
        for m in (b"a", b"", b"zz"):
            pub.send(m)
        msgs = [sub.recv_msg() for _ in range(3)]
        assert [bytes(m.body) for m in msgs] == [b"a", b"", b"zz"]
        assert all(bytes(m.header) == b"" and m.pipe is sub.pipes[0] for m in msgs)


def test_raw_pub_puts_the_header_on_the_wire() -> None:
    url = inproc_url()
    with (
        purenng.Pub0(listen=url, raw=True) as pub,
        purenng.Sub0(dial=url, recv_timeout=LONG) as sub,
    ):
        sub.subscribe(b"hd")
        wait_for(lambda: pub.pipes)
        pub.send_msg(Message(b"body", b"hd"))
        assert sub.recv() == b"hdbody"


# ---------------------------------------------------------------- peer misbehaviour


def test_sub_peer_that_sends_gets_its_pipe_closed() -> None:
    """NNG closes a pipe that sends PUB anything (wire-protocols.md §4 item 22)."""
    with purenng.Pub0(listen="tcp://127.0.0.1:0") as pub:
        client = RawSP.connect(port_of(pub), SUB, PUB)
        try:
            wait_for(lambda: len(pub.pipes) == 1)
            client.send(b"hello")
            wait_for(lambda: not pub.pipes)
            assert pub.stats()["protocol_errors"] == 1
            assert client.sock.recv(16) == b""  # the PUB closed the connection
        finally:
            client.close()


def test_sub_never_writes() -> None:
    """A SUB sends its handshake and then nothing, whatever happens."""
    with socket.create_server(("127.0.0.1", 0)) as srv:
        port = srv.getsockname()[1]
        with purenng.Sub0(recv_timeout=LONG) as sub:
            sub.dial(f"tcp://127.0.0.1:{port}", block=False)
            conn, _ = srv.accept()
            with conn:
                conn.settimeout(LONG)
                conn.sendall(sp_header(PUB))
                sub.subscribe(b"topic")
                sub.subscribe(b"")
                conn.sendall((6).to_bytes(8, "big") + b"topic!")
                assert sub.recv() == b"topic!"
                sub.unsubscribe(b"topic")
                with sub.new_context() as ctx:
                    ctx.subscribe(b"t")
                assert recv_exactly(conn, 8) == sp_header(SUB)
                conn.settimeout(0.2)
                with pytest.raises(TimeoutError):
                    conn.recv(1)


# ---------------------------------------------------------------- async, memory


async def test_async_subscribe_and_receive() -> None:
    url = inproc_url()
    async with (
        purenng.Pub0(listen=url) as pub,
        purenng.Sub0(dial=url, recv_timeout=LONG) as sub,
    ):
        sub.subscribe(b"news")  # on the owning loop: applied at once
        ctx = sub.new_context()
        ctx.subscribe(b"")
        await await_for(lambda: pub.pipes)
        waiter = asyncio.ensure_future(sub.arecv())
        await asyncio.sleep(0)
        await pub.asend(b"weather")
        await pub.asend(b"news!")
        assert await asyncio.wait_for(waiter, LONG) == b"news!"
        assert [await ctx.arecv(), await ctx.arecv()] == [b"weather", b"news!"]
        ctx.close()


def test_subscribe_from_many_threads(pubsub: tuple[purenng.Pub0, purenng.Sub0]) -> None:
    pub, sub = pubsub
    topics = [b"t%02d" % i for i in range(40)]
    threads = [threading.Thread(target=sub.subscribe, args=(t,)) for t in topics]
    for th in threads:
        th.start()
    for th in threads:
        th.join(LONG)
    for t in topics:
        pub.send(t)
    assert sorted(sub.recv() for _ in topics) == topics


def test_context_subscribe_from_many_threads(
    pubsub: tuple[purenng.Pub0, purenng.Sub0],
) -> None:
    pub, sub = pubsub
    topics = [b"c%02d" % i for i in range(20)]
    with sub.new_context() as ctx:
        threads = [threading.Thread(target=ctx.subscribe, args=(t,)) for t in topics]
        for th in threads:
            th.start()
        for th in threads:
            th.join(LONG)
        assert sorted(ctx.topics) == topics
        for t in topics:
            pub.send(t)
        assert sorted(ctx.recv() for _ in topics) == topics


def test_sub_protocol_alone_filters_per_context() -> None:
    """The protocol with a fake host: subscriptions are plain inputs, no loop involved."""
    sub = FakeProtocolHost(Sub0Protocol, recv_buffer=2)
    ctx = sub.new_context()
    pipe = sub.add_pipe()
    sub.call("subscribe", b"a")
    ctx.subscribe("b")
    for body in (b"a1", b"b1", b"c1", b"a2", b"a3"):
        pipe.receive(body)
    assert sub.recv_all() == [b"a2", b"a3"]  # prefer_new: the oldest went
    assert ctx.recv_all() == [b"b1"]
    assert sub.counters["drops"] == 1
    assert not pipe.paused  # SUB never pushes back
    with pytest.raises(BadOption):
        sub.call("unsubscribe", b"zzz")
    assert pipe.written == []  # SUB never writes
    raw = FakeProtocolHost(Sub0Protocol, raw=True)
    with pytest.raises(NotSupported):
        raw.call("subscribe", b"")


@pytest.mark.slow
def test_memory_stays_flat_while_filtering(pubsub: tuple[purenng.Pub0, purenng.Sub0]) -> None:
    """100,000 unwanted messages leave nothing behind."""
    pub, sub = pubsub
    sub.subscribe(b"want")
    noise = b"noise" + b"." * 95

    def run(n: int) -> None:
        for _ in range(n):
            pub.send(noise)
        pub.send(b"want-sync")  # newest, so never dropped: marks the end of the run
        assert sub.recv() == b"want-sync"

    run(5_000)  # warm up caches, free lists, deque blocks
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        in_before = sub.stats()["messages_in"]
        run(100_000)
        gc.collect()
        after = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    filtered = sub.stats()["messages_in"] - in_before - 1
    assert filtered >= 50_000, filtered  # most of them really reached the SUB
    # 100,000 retained messages would be ~10 MB; allow noise of a few hundred KB.
    assert after - before < 512 * 1024, after - before
