"""PAIR v1: identity, hop word on the wire, TTL, malformed input, raw and polyamorous modes.

purenng against itself and against a plain TCP socket that speaks SP by hand
(wire-protocols.md §1.2-§1.4, §4 items 1-3).  Hop counting is tested on the
protocol alone, with a fake host (no socket, no waiting); one end-to-end
test checks it through real sockets and a raw device.  Interop with real
NNG lives in tests/interop/.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

import pytest

import purenng
from purenng import Message
from purenng.core.errors import BadOption, BadState, ProtocolError, Timeout, TryAgain
from purenng.protocols.pair1 import Pair1Protocol
from purenng.testing import FakeProtocolHost
from support.raw_sp import PAIR1, RawSP, RawSPListener
from support.waiting import await_for, wait_for

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

LONG = 5.0  # only to stop hangs


def hop(n: int) -> bytes:
    return bytes((0, 0, 0, n))


def port_of(sock: purenng.Socket) -> int:
    port = sock.listeners[0].port
    assert port is not None
    return port


@pytest.fixture
def raw_server() -> Iterator[tuple[int, Callable[[], RawSP]]]:
    """A TCP listener that takes one peer and does the SP handshake in a thread.

    purenng's dial waits for the handshake, so it must be answered while the
    dialing socket is still being made; the callable returns that peer.
    """
    with RawSPListener(PAIR1, PAIR1) as lst:
        yield lst.port, lst.accept_in_thread()


@pytest.fixture
def mono() -> Iterator[purenng.Pair1]:
    with purenng.Pair1(listen="tcp://127.0.0.1:0", recv_timeout=LONG, send_timeout=LONG) as s:
        yield s


# ------------------------------------------------------------------ identity and options


def test_identity() -> None:
    assert Pair1Protocol.self_id == 0x11
    assert Pair1Protocol.peer_id == 0x11
    assert Pair1Protocol.self_name == "pair1"
    assert Pair1Protocol.peer_name == "pair1"
    with purenng.Pair1() as s:
        assert s.protocol_cls is Pair1Protocol
        info = s.protocol_info
        assert (info.self_id, info.peer_id) == (0x11, 0x11)
        assert (info.self_name, info.peer_name) == ("pair1", "pair1")


def test_option_defaults_and_ranges() -> None:
    with purenng.Pair1() as s:
        assert s.ttl_max == 8
        assert s.polyamorous is False
        s.ttl_max = 15
        assert s.ttl_max == 15
        for bad in (0, 16, "8", True):
            with pytest.raises(BadOption):
                s.ttl_max = bad  # type: ignore[assignment]
        with pytest.raises(BadOption):
            s.polyamorous = 1  # type: ignore[assignment]
    with pytest.raises(BadOption):
        purenng.Pair1(ttl_max=16)


# ------------------------------------------------------------------ cooked exchange


def test_cooked_exchange_both_ways(mono: purenng.Pair1) -> None:
    with purenng.Pair1(dial=mono.listeners[0].url, recv_timeout=LONG, send_timeout=LONG) as b:
        for i in range(20):
            b.send(b"ping %d" % i)
            msg = mono.recv_msg()
            assert msg.bytes == b"ping %d" % i
            assert bytes(msg.header) == hop(1)
            assert msg.pipe is not None
            assert msg.pipe.id == mono.pipes[0].id
            mono.send(b"pong %d" % i)
            assert b.recv() == b"pong %d" % i


async def test_cooked_exchange_async() -> None:
    async with (
        purenng.Pair1(listen="tcp://127.0.0.1:0", recv_timeout=LONG) as a,
        purenng.Pair1(dial=a.listeners[0].url, recv_timeout=LONG) as b,
    ):
        await b.asend(b"ping")
        assert await a.arecv() == b"ping"
        await a.asend(b"pong")
        msg = await b.arecv_msg()
        assert (msg.bytes, bytes(msg.header)) == (b"pong", hop(1))


def test_zero_length_both_ways(mono: purenng.Pair1) -> None:
    with purenng.Pair1(dial=mono.listeners[0].url, recv_timeout=LONG, send_timeout=LONG) as b:
        b.send(b"")
        msg = mono.recv_msg()
        assert (msg.bytes, bytes(msg.header)) == (b"", hop(1))
        mono.send(b"")
        assert b.recv() == b""


def test_reply_with_received_message_resets_hops(mono: purenng.Pair1) -> None:
    """A cooked socket ignores the header of a message it sends: hop count 1 again."""
    with purenng.Pair1(dial=mono.listeners[0].url, recv_timeout=LONG, send_timeout=LONG) as b:
        b.send_msg(Message(b"x", header=hop(7)))
        msg = mono.recv_msg()
        assert bytes(msg.header) == hop(1)
        mono.send_msg(msg)
        assert bytes(b.recv_msg().header) == hop(1)


# ------------------------------------------------------------------ the wire


def test_wire_cooked_send_has_hop_one(raw_server: tuple[int, Callable[[], RawSP]]) -> None:
    port, accept = raw_server
    with purenng.Pair1(dial=f"tcp://127.0.0.1:{port}", send_timeout=LONG) as s:
        peer = accept()
        s.send(b"hello")
        s.send(b"")
        assert peer.recv() == hop(1) + b"hello"
        assert peer.recv() == hop(1)


def test_wire_raw_send_increments_hop(raw_server: tuple[int, Callable[[], RawSP]]) -> None:
    port, accept = raw_server
    with purenng.Pair1(raw=True, dial=f"tcp://127.0.0.1:{port}", send_timeout=LONG) as s:
        peer = accept()
        s.send_msg(Message(b"a", header=hop(0)))
        s.send_msg(Message(b"b", header=hop(3)))
        s.send_msg(Message(b"c", header=hop(0xFE)))  # the largest a raw send takes
        assert peer.recv() == hop(1) + b"a"
        assert peer.recv() == hop(4) + b"b"
        assert peer.recv() == hop(0xFF) + b"c"


def test_receive_hop_zero_is_accepted(mono: purenng.Pair1) -> None:
    """mangos sends hop count 0; NNG accepts it, and so do we (§4 item 2)."""
    peer = RawSP.connect(port_of(mono), PAIR1, PAIR1)
    try:
        peer.send(hop(0) + b"from mangos", hop(5) + b"five", hop(0))
        msg = mono.recv_msg()
        assert (msg.bytes, bytes(msg.header)) == (b"from mangos", hop(0))
        msg = mono.recv_msg()
        assert (msg.bytes, bytes(msg.header)) == (b"five", hop(5))
        msg = mono.recv_msg()  # only the hop word: an empty body
        assert (msg.bytes, bytes(msg.header)) == (b"", hop(0))
    finally:
        peer.close()


def test_large_message_body(mono: purenng.Pair1) -> None:
    """Bodies big enough to arrive in their own buffer lose exactly the 4-byte word."""
    big = bytes(range(256)) * 1024  # 256 KiB
    with purenng.Pair1(dial=mono.listeners[0].url, send_timeout=LONG, recv_timeout=LONG) as b:
        b.send(big)
        msg = mono.recv_msg()
        assert bytes(msg.header) == hop(1)
        assert msg.bytes == big
        mono.send(big)
        assert b.recv() == big


# ------------------------------------------------------------------ TTL


def test_ttl_drop_keeps_pipe() -> None:
    pair = FakeProtocolHost(Pair1Protocol)
    pipe = pair.add_pipe()
    for payload in (hop(8) + b"at the limit", hop(9) + b"over", hop(1) + b"after"):
        pipe.receive(payload)
    assert pair.recv_all() == [b"at the limit", b"after"]
    assert pair.counters["drops"] == 1
    assert pipe.accepted
    assert not pipe.closed
    # A lower limit set at run time applies to the next messages.
    pair.set_option("ttl_max", 3)
    for payload in (hop(3) + b"three", hop(4) + b"four", hop(2) + b"two"):
        pipe.receive(payload)
    assert pair.recv_all() == [b"three", b"two"]
    assert pair.counters["drops"] == 2
    assert pair.counters["protocol_errors"] == 0


@pytest.mark.parametrize("poly", [False, True])
@pytest.mark.parametrize("ttl", range(1, 16))
def test_ttl_max_is_the_largest_hop_count_kept(ttl: int, poly: bool) -> None:
    pair = FakeProtocolHost(Pair1Protocol, ttl_max=ttl, polyamorous=poly)
    pipe = pair.add_pipe()
    pipe.receive(hop(ttl + 1) + b"over")
    pipe.receive(hop(ttl) + b"kept")
    pipe.receive(hop(0) + b"zero")  # mangos sends 0: accepted
    got = [pair.recv(), pair.recv()]
    assert [(m.bytes, bytes(m.header)) for m in got] == [(b"kept", hop(ttl)), (b"zero", hop(0))]
    assert pair.counters["drops"] == 1
    assert not pipe.closed


def test_hop_count_goes_up_by_one_per_send() -> None:
    cooked = FakeProtocolHost(Pair1Protocol)
    raw = FakeProtocolHost(Pair1Protocol, raw=True)
    cpipe, rpipe = cooked.add_pipe(), raw.add_pipe()
    cooked.send(b"first hop")
    assert cpipe.take() == [hop(1) + b"first hop"]
    for n in (0, 1, 7, 0xFE):
        raw.send(b"fwd", header=hop(n))
        assert rpipe.take() == [hop(n + 1) + b"fwd"]
    with pytest.raises(ProtocolError):
        raw.send(b"no room", header=hop(0xFF))
    assert rpipe.take() == []


def test_ttl_forwarded_through_raw_devices(mono: purenng.Pair1) -> None:
    """End to end: each raw hop adds one; past ttl_max the receiver drops the message."""
    with purenng.Pair1(
        raw=True, dial=mono.listeners[0].url, recv_timeout=LONG, send_timeout=LONG
    ) as dev:
        mono.ttl_max = 2
        wait_for(lambda: len(mono.pipes) == 1)
        dev.send_msg(Message(b"one", header=hop(1)))  # arrives with 2: kept
        dev.send_msg(Message(b"two", header=hop(2)))  # arrives with 3: dropped
        dev.send_msg(Message(b"end", header=hop(0)))
        got = [mono.recv_msg() for _ in range(2)]
        assert [(m.bytes, bytes(m.header)) for m in got] == [(b"one", hop(2)), (b"end", hop(1))]
        wait_for(lambda: mono.stats()["drops"] == 1)


# ------------------------------------------------------------------ malformed input


@pytest.mark.parametrize(
    "bad",
    [b"", b"\x00\x00\x01", b"\x00\x00\x01\x00body", b"\x01\x00\x00\x00", b"\x00\x80\x00\x01"],
    ids=["empty", "short", "word-0x100", "reserved-high", "reserved-mid"],
)
def test_malformed_message_closes_pipe(mono: purenng.Pair1, bad: bytes) -> None:
    peer = RawSP.connect(port_of(mono), PAIR1, PAIR1)
    try:
        # The valid message behind the bad one, in the same write, must not arrive.
        peer.send(hop(1) + b"fine", bad, hop(1) + b"after")
        assert mono.recv() == b"fine"
        assert peer.closed_by_peer()
        wait_for(lambda: not mono.pipes)
        assert mono.stats()["protocol_errors"] == 1
        with pytest.raises(TryAgain):
            mono.recv(block=False)
    finally:
        peer.close()
    # The socket itself is unharmed: the next peer works.
    with purenng.Pair1(dial=mono.listeners[0].url, send_timeout=LONG) as b:
        b.send(b"next")
        assert mono.recv() == b"next"


# ------------------------------------------------------------------ monogamy


def test_second_peer_refused_first_keeps_working(mono: purenng.Pair1) -> None:
    url = mono.listeners[0].url
    with purenng.Pair1(dial=url, recv_timeout=LONG, send_timeout=LONG) as b:
        wait_for(lambda: len(mono.pipes) == 1)
        first = mono.pipes[0].id
        with purenng.Pair1(dial=url, send_timeout=0.2) as c:
            wait_for(lambda: mono.stats().get("pipes_busy", 0) >= 1)
            assert mono.stats()["pipes_rejected"] >= 1
            assert [p.id for p in mono.pipes] == [first]
            b.send(b"still here")
            msg = mono.recv_msg()
            assert msg.bytes == b"still here"
            assert msg.pipe is not None
            assert msg.pipe.id == first
            mono.send(b"to b")
            assert b.recv() == b"to b"
            with pytest.raises(TryAgain):
                mono.recv(block=False)
            assert not c.pipes or c.pipes[0].closed


def test_pair1_refuses_pair0_peer(mono: purenng.Pair1) -> None:
    """PAIR v1 does not talk to PAIR v0 (§4 item 1)."""
    with purenng.Pair0(dial=mono.listeners[0].url) as old:
        wait_for(lambda: mono.stats()["protocol_mismatch"] >= 1)
        wait_for(lambda: old.stats()["protocol_mismatch"] >= 1)
        assert not mono.pipes


# ------------------------------------------------------------------ raw mode


BAD_RAW_HEADERS = [b"", b"\x00\x00\x00", b"\x00\x00\x00\x01\x00", b"\x00\x00\x01\x00", hop(0xFF)]


def test_raw_header_validation_blocking(mono: purenng.Pair1) -> None:
    with purenng.Pair1(
        raw=True, dial=mono.listeners[0].url, recv_timeout=LONG, send_timeout=LONG
    ) as r:
        wait_for(lambda: len(r.pipes) == 1)
        r.send_msg(Message(b"first", header=hop(0)))
        for bad in BAD_RAW_HEADERS:
            with pytest.raises(ProtocolError):
                r.send_msg(Message(b"bad", header=bad))
        r.send_msg(Message(b"last", header=hop(0)))
        assert mono.recv() == b"first"
        assert mono.recv() == b"last"
        with pytest.raises(TryAgain):
            mono.recv(block=False)


def test_raw_header_checked_before_waiting_for_a_peer() -> None:
    """With no peer, a bad header fails at once instead of waiting (as NNG)."""
    with purenng.Pair1(raw=True, send_timeout=LONG) as r:
        with pytest.raises(ProtocolError):
            r.send_msg(Message(b"x", header=b""))
        with pytest.raises(TryAgain):
            r.send_msg(Message(b"x", header=hop(1)), block=False)


async def test_raw_header_validation_async() -> None:
    async with (
        purenng.Pair1(raw=True, listen="tcp://127.0.0.1:0", recv_timeout=LONG) as r,
        purenng.Pair1(dial=r.listeners[0].url, recv_timeout=LONG) as c,
    ):
        await await_for(lambda: len(r.pipes) == 1)
        for bad in BAD_RAW_HEADERS:
            with pytest.raises(ProtocolError):
                await r.asend_msg(Message(b"bad", header=bad))
        await r.asend_msg(Message(b"ok", header=hop(2)))
        msg = await c.arecv_msg()
        assert (msg.bytes, bytes(msg.header)) == (b"ok", hop(3))


def test_raw_receive_keeps_header_and_forwarding_adds_a_hop(mono: purenng.Pair1) -> None:
    with purenng.Pair1(
        raw=True, dial=mono.listeners[0].url, recv_timeout=LONG, send_timeout=LONG
    ) as dev:
        mono.send(b"out")
        msg = dev.recv_msg()
        assert (msg.bytes, bytes(msg.header)) == (b"out", hop(1))
        assert msg.pipe is not None
        dev.send_msg(msg)  # a device sends it on: one more hop
        back = mono.recv_msg()
        assert (back.bytes, bytes(back.header)) == (b"out", hop(2))
        mono.send(b"")
        empty = dev.recv_msg()
        assert (empty.bytes, bytes(empty.header)) == (b"", hop(1))


# ------------------------------------------------------------------ polyamorous mode


@pytest.fixture
def poly() -> Iterator[purenng.Socket]:
    with purenng.Pair1(
        polyamorous=True, listen="tcp://127.0.0.1:0", recv_timeout=LONG, send_timeout=LONG
    ) as s:
        yield s


def _dial(url: str) -> purenng.Socket:
    return purenng.Pair1(dial=url, recv_timeout=LONG, send_timeout=LONG)


def test_poly_directed_send_by_pipe(poly: purenng.Socket) -> None:
    url = poly.listeners[0].url
    with _dial(url) as c1, _dial(url) as c2:
        c1.send(b"I am 1")
        c2.send(b"I am 2")
        pipes = {}
        for _ in range(2):
            m = poly.recv_msg()
            assert bytes(m.header) == hop(1)
            pipes[m.bytes] = m.pipe
        p1, p2 = pipes[b"I am 1"], pipes[b"I am 2"]
        assert p1 is not None
        assert p2 is not None
        assert p1.id != p2.id
        poly.send_msg(Message(b"a", pipe=p1))
        poly.send_msg(Message(b"b", pipe=p2))
        poly.send_msg(Message(b"c", pipe=p1))
        assert [c1.recv(), c1.recv()] == [b"a", b"c"]
        assert c2.recv() == b"b"
        # Replying with the received message goes back where it came from.
        c2.send(b"echo me")
        m = poly.recv_msg()
        poly.send_msg(m)
        assert c2.recv() == b"echo me"
        with pytest.raises(TryAgain):
            c1.recv(block=False)


def test_poly_default_peer_is_the_first_pipe(poly: purenng.Socket) -> None:
    url = poly.listeners[0].url
    with _dial(url) as c1:
        wait_for(lambda: len(poly.pipes) == 1)
        with _dial(url) as c2:
            wait_for(lambda: len(poly.pipes) == 2)
            poly.send(b"to the first")
            assert c1.recv() == b"to the first"
            c2.close()
            wait_for(lambda: len(poly.pipes) == 1)
            poly.send(b"again")
            assert c1.recv() == b"again"


def test_poly_unknown_or_closed_pipe_is_dropped(poly: purenng.Socket) -> None:
    url = poly.listeners[0].url
    with _dial(url) as c1, _dial(url) as c2:
        c2.send(b"hi")
        gone = poly.recv_msg().pipe
        assert gone is not None
        c2.close()
        wait_for(lambda: len(poly.pipes) == 1)
        poly.send_msg(Message(b"lost", pipe=gone), block=False)  # no error, no wait
        wait_for(lambda: poly.stats()["drops"] == 1)
        poly.send(b"kept")
        assert c1.recv() == b"kept"  # "lost" did not go to the other pipe


def test_poly_send_without_pipes_waits() -> None:
    with purenng.Pair1(polyamorous=True, send_timeout=0.2) as s:
        with pytest.raises(TryAgain):
            s.send(b"x", block=False)
        with pytest.raises(Timeout):
            s.send(b"x")


def test_poly_blocked_send_goes_out_when_a_peer_arrives() -> None:
    with purenng.Pair1(polyamorous=True, listen="tcp://127.0.0.1:0") as s:
        errors: list[BaseException] = []

        def sender() -> None:
            try:
                s.send(b"waited")
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)

        t = threading.Thread(target=sender)
        t.start()
        try:
            with _dial(s.listeners[0].url) as c:
                assert c.recv() == b"waited"
        finally:
            t.join(LONG)
        assert not t.is_alive()
        assert not errors


async def test_poly_best_effort_drop_without_head_of_line_blocking() -> None:
    """A peer that does not read loses messages; the sender never waits; others still get theirs.

    All sockets share the test's loop, so nothing is read while the loop below
    runs: the slow pipe's kernel and asyncio buffers fill, then its queue of
    POLY_QUEUE messages, then messages to it are dropped.
    """
    body = b"\x00" * (64 * 1024)
    async with purenng.Pair1(polyamorous=True, listen="tcp://127.0.0.1:0") as srv:
        url = srv.listeners[0].url
        async with (
            purenng.Pair1(dial=url, recv_buffer=1, recv_timeout=LONG) as slow,
            purenng.Pair1(dial=url, recv_timeout=LONG) as fast,
        ):
            await slow.asend(b"slow")
            await fast.asend(b"fast")
            by_name = {}
            for _ in range(2):
                m = await srv.arecv_msg()
                by_name[m.bytes] = m.pipe
            p_slow, p_fast = by_name[b"slow"], by_name[b"fast"]
            sent = 0
            while srv.stats()["drops"] < 10 and sent < 3000:
                await srv.asend_msg(
                    Message(sent.to_bytes(4, "big") + body, pipe=p_slow), block=False
                )
                sent += 1
            drops = srv.stats()["drops"]
            assert drops >= 10, f"no drops after {sent} messages"
            # The other peer is not held up by the full one.
            await srv.asend_msg(Message(b"for fast", pipe=p_fast), block=False)
            assert await fast.arecv() == b"for fast"
            # The slow peer gets what was not dropped, in order, and nothing more.
            got = []
            slow.recv_timeout = 0.5
            while True:
                try:
                    got.append(int.from_bytes((await slow.arecv())[:4], "big"))
                except Timeout:
                    break
            assert got == sorted(got)
            assert len(got) == sent - drops
            assert got[-1] < sent


def test_poly_ttl_and_malformed_affect_only_their_pipe(poly: purenng.Socket) -> None:
    url = poly.listeners[0].url
    with _dial(url) as good:
        wait_for(lambda: len(poly.pipes) == 1)
        peer = RawSP.connect(port_of(poly), PAIR1, PAIR1)
        try:
            peer.send(hop(9) + b"too far", hop(0) + b"zero")
            m = poly.recv_msg()
            assert (m.bytes, bytes(m.header)) == (b"zero", hop(0))
            assert poly.stats()["drops"] == 1
            peer.send(b"\x00\x01")
            assert peer.closed_by_peer()
            wait_for(lambda: len(poly.pipes) == 1)
        finally:
            peer.close()
        good.send(b"alive")
        assert poly.recv() == b"alive"
        poly.send(b"back")
        assert good.recv() == b"back"


def test_poly_mode_change_only_without_pipes() -> None:
    with purenng.Pair1(listen="tcp://127.0.0.1:0", recv_timeout=LONG) as s:
        s.polyamorous = True  # no pipes yet: allowed
        assert s.polyamorous is True
        url = s.listeners[0].url
        with _dial(url) as c1, _dial(url) as c2:
            # Two peers at once: the switch took effect.
            wait_for(lambda: len(s.pipes) == 2)
            assert s.stats().get("pipes_busy", 0) == 0
            with pytest.raises(BadState):
                s.polyamorous = False
            assert s.polyamorous is True
            c1.send(b"1")
            c2.send(b"2")
            assert sorted([s.recv(), s.recv()]) == [b"1", b"2"]
        wait_for(lambda: not s.pipes)
        s.polyamorous = False
        with _dial(url) as c1, _dial(url) as c2:
            wait_for(lambda: s.stats().get("pipes_busy", 0) >= 1)


def test_raw_poly_device_forwards_between_pipes() -> None:
    """A raw polyamorous socket routes by Message.pipe and adds a hop on the way."""
    with purenng.Pair1(
        raw=True, polyamorous=True, listen="tcp://127.0.0.1:0", recv_timeout=LONG
    ) as dev:
        url = dev.listeners[0].url
        with _dial(url) as c1, _dial(url) as c2:
            c1.send(b"from 1")
            c2.send(b"from 2")
            got = {}
            for _ in range(2):
                m = dev.recv_msg()
                assert bytes(m.header) == hop(1)
                got[m.bytes] = m
            # Swap destinations: each message goes to the other peer.
            m1, m2 = got[b"from 1"], got[b"from 2"]
            m1.pipe, m2.pipe = m2.pipe, m1.pipe
            dev.send_msg(m1)
            dev.send_msg(m2)
            r2, r1 = c2.recv_msg(), c1.recv_msg()
            assert (r2.bytes, bytes(r2.header)) == (b"from 1", hop(2))
            assert (r1.bytes, bytes(r1.header)) == (b"from 2", hop(2))
            with pytest.raises(ProtocolError):
                dev.send_msg(Message(b"x", header=b"", pipe=m1.pipe))
