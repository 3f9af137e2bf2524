"""REQ/REP v0: identity, exchange, state errors, resends, contexts, TTL, garbage, raw mode.

purenng against itself and against a plain TCP socket that speaks SP by hand
(wire-protocols.md §1.2-§1.5, §4 items 3 and 15).  Resend timing and hop
counting are tested on the protocols alone, with a fake host and a fake
clock (no socket, no sleep); one end-to-end test of each checks the
socket's wiring.  Interop with real NNG lives in
tests/interop/test_nng_reqrep.py.
"""

from __future__ import annotations

import asyncio
import struct
import threading
from typing import TYPE_CHECKING, Any

import pytest

import purenng
from purenng import Message
from purenng.core.errors import (
    BadOption,
    BadState,
    ConnectionReset,
    NotSupported,
    Timeout,
    TryAgain,
)
from purenng.protocols.reqrep0 import (
    MALFORMED,
    TOO_MANY_HOPS,
    Rep0Protocol,
    Req0Protocol,
    backtrace_length,
)
from purenng.testing import FakePipe, FakeProtocolHost
from support.raw_sp import REP, REQ, RawSP, RawSPListener
from support.waiting import await_for, wait_for

if TYPE_CHECKING:
    from collections.abc import Iterator

LONG = 5.0  # only to stop hangs
TCP = "tcp://127.0.0.1:0"


def word(n: int) -> bytes:
    return struct.pack(">I", n)


def url_of(sock: purenng.Socket) -> str:
    url: str = sock.listeners[0].url
    return url


@pytest.fixture
def raw_rep() -> Iterator[RawSPListener]:
    with RawSPListener(REP, REQ) as lst:
        yield lst


def dial_raw(req: purenng.Socket, lst: RawSPListener) -> RawSP:
    """``req`` dials the hand-made listener; returns the accepted side."""
    req.dial(lst.url, block=False)
    peer = lst.accept()
    wait_for(lambda: req.pipes)
    return peer


# ---------------------------------------------------------------- identity, options


def test_identity_and_options() -> None:
    assert (Req0Protocol.self_id, Req0Protocol.peer_id) == (0x30, 0x31)
    assert (Req0Protocol.self_name, Req0Protocol.peer_name) == ("req", "rep")
    assert (Rep0Protocol.self_id, Rep0Protocol.peer_id) == (0x31, 0x30)
    assert (Rep0Protocol.self_name, Rep0Protocol.peer_name) == ("rep", "req")
    with purenng.Req0() as req, purenng.Rep0() as rep:
        assert req.protocol_cls is Req0Protocol
        assert rep.protocol_cls is Rep0Protocol
        assert req.resend_time == 60.0
        assert req.ttl_max == 8
        assert rep.ttl_max == 8
        req.resend_time = None
        assert req.resend_time is None
        rep.ttl_max = 15
        for bad in (0, 16):
            with pytest.raises(BadOption):
                rep.ttl_max = bad
        with pytest.raises(BadOption):
            req.resend_time = -1
        with pytest.raises(BadOption):
            rep.resend_time = 1.0  # type: ignore[attr-defined]  # a REQ option only


def test_raw_sockets_have_no_contexts() -> None:
    for cls in (purenng.Req0, purenng.Rep0):
        with cls(raw=True) as sock, pytest.raises(NotSupported):
            sock.new_context()


def test_backtrace_length_rules() -> None:
    end = word(0x80000001)
    assert backtrace_length(end + b"body", 8) == 4
    assert backtrace_length(word(7) + word(9) + end, 8) == 12
    # NNG's worked example (xrep_test "ttl drop"): ttl 3 takes 2 and 3 words, not 4.
    assert backtrace_length(word(1) + end, 3) == 8
    assert backtrace_length(word(1) + word(2) + end, 3) == 12
    assert backtrace_length(word(1) + word(2) + word(3) + end, 3) == TOO_MANY_HOPS
    assert backtrace_length(b"", 8) == MALFORMED
    assert backtrace_length(b"\x80\x00\x00", 8) == MALFORMED
    assert backtrace_length(word(1) + b"\x00\x01", 8) == MALFORMED
    assert backtrace_length(word(1) * 100, None) == MALFORMED


# ---------------------------------------------------------------- exchange


def test_exchange_blocking() -> None:
    with (
        purenng.Rep0(listen=TCP, recv_timeout=LONG) as rep,
        purenng.Req0(recv_timeout=LONG, send_timeout=LONG) as req,
    ):
        req.dial(url_of(rep), block=True)

        def serve() -> None:
            for _ in range(20):
                msg = rep.recv_msg()
                assert msg.pipe is not None
                assert msg.header == b""
                rep.send(b"re:" + msg.bytes)

        t = threading.Thread(target=serve)
        t.start()
        for i in range(20):
            req.send(b"q%d" % i)
            assert req.recv() == b"re:q%d" % i
        t.join(LONG)
        assert not t.is_alive()


async def test_exchange_async() -> None:
    async with (
        purenng.Rep0(listen=TCP, recv_timeout=LONG) as rep,
        purenng.Req0(recv_timeout=LONG) as req,
    ):
        await req.adial(url_of(rep), block=True)
        for i in range(20):
            await req.asend(b"q%d" % i)
            assert await rep.arecv() == b"q%d" % i
            await rep.asend(b"a%d" % i)
            assert await req.arecv() == b"a%d" % i


def test_send_waits_for_a_pipe() -> None:
    with (
        purenng.Req0(send_timeout=0.05) as req,
        purenng.Rep0(listen=TCP, recv_timeout=LONG) as rep,
    ):
        with pytest.raises(TryAgain):
            req.send(b"x", block=False)
        with pytest.raises(Timeout):
            req.send(b"x")
        req.dial(url_of(rep), block=True)
        req.send(b"now")
        assert rep.recv() == b"now"


def test_nonblocking_receives() -> None:
    with (
        purenng.Rep0(listen=TCP) as rep,
        purenng.Req0(recv_timeout=LONG) as req,
    ):
        req.dial(url_of(rep), block=True)
        with pytest.raises(TryAgain):
            rep.recv(block=False)
        req.send(b"ping")
        wait_for(lambda: rep.stats()["messages_in"] == 1)
        assert rep.recv(block=False) == b"ping"
        rep.send(b"pong")
        wait_for(lambda: req.stats()["messages_in"] == 1)
        assert req.recv(block=False) == b"pong"


# ---------------------------------------------------------------- state errors


def test_bad_state() -> None:
    with (
        purenng.Rep0(listen=TCP, recv_timeout=LONG) as rep,
        purenng.Req0(recv_timeout=LONG) as req,
    ):
        with pytest.raises(BadState):
            req.recv()
        with pytest.raises(BadState):
            rep.send(b"unasked")
        req.dial(url_of(rep), block=True)
        req.send(b"q")
        assert rep.recv() == b"q"
        rep.send(b"a")
        with pytest.raises(BadState):
            rep.send(b"twice")
        assert req.recv() == b"a"
        with pytest.raises(BadState):
            req.recv()
        ctx = req.new_context()
        with pytest.raises(BadState):
            ctx.recv()
        rctx = rep.new_context()
        with pytest.raises(BadState):
            rctx.send(b"unasked")


async def test_new_request_cancels_waiting_receive() -> None:
    async with (
        purenng.Rep0(listen=TCP, recv_timeout=LONG) as rep,
        purenng.Req0(recv_timeout=LONG) as req,
    ):
        await req.adial(url_of(rep), block=True)
        await req.asend(b"first")
        waiter = asyncio.ensure_future(req.arecv())
        await await_for(lambda: req.channel.has_receiver)
        await req.asend(b"second")
        with pytest.raises(BadState, match="canceled"):
            await waiter
        # The first reply is stale now; the second one gets through.
        assert await rep.arecv() == b"first"
        await rep.asend(b"for first")
        assert await rep.arecv() == b"second"
        await rep.asend(b"for second")
        assert await req.arecv() == b"for second"
        await await_for(lambda: req.stats().get("stale_replies") == 1)


def test_new_request_discards_an_untaken_reply() -> None:
    with (
        purenng.Rep0(listen=TCP, recv_timeout=LONG) as rep,
        purenng.Req0(recv_timeout=LONG) as req,
    ):
        req.dial(url_of(rep), block=True)
        req.send(b"one")
        rep.recv()
        rep.send(b"reply one")
        wait_for(lambda: req.stats()["messages_in"] == 1)
        req.send(b"two")  # the reply to "one" was never taken
        with pytest.raises(TryAgain):
            req.recv(block=False)
        rep.recv()
        rep.send(b"reply two")
        assert req.recv() == b"reply two"


# ---------------------------------------------------------------- wire format


def test_request_ids_on_the_wire(raw_rep: RawSPListener) -> None:
    with purenng.Req0(recv_timeout=LONG) as req:
        peer = dial_raw(req, raw_rep)
        ids = []
        for i in range(3):
            req.send(b"req %d" % i)
            frame = peer.recv()
            (rid,) = struct.unpack(">I", frame[:4])
            assert rid & 0x80000000
            assert rid & 0x7FFFFFFF
            assert frame[4:] == b"req %d" % i
            ids.append(rid)
            peer.send(frame[:4] + b"rep %d" % i)
            assert req.recv() == b"rep %d" % i
        assert len(set(ids)) == 3
        peer.close()


def test_reply_carries_the_backtrace_back() -> None:
    with purenng.Rep0(listen=TCP, recv_timeout=LONG) as rep:
        peer = RawSP.connect(url_of(rep), REQ, REP)
        trace = word(0x1234) + word(0x7FFFFFFF) + word(0x80000005)
        peer.send(trace + b"hello")
        msg = rep.recv_msg()
        assert msg.bytes == b"hello"
        assert msg.header == b""
        rep.send(b"world")
        assert peer.recv() == trace + b"world"
        peer.close()


def test_stale_and_unknown_replies_are_dropped(raw_rep: RawSPListener) -> None:
    with purenng.Req0(recv_timeout=LONG) as req:
        peer = dial_raw(req, raw_rep)
        req.send(b"old")
        old = peer.recv()
        req.send(b"new")
        new = peer.recv()
        peer.send(old[:4] + b"late answer")
        peer.send(word(0x80000000 | 0x1234567) + b"never asked")
        peer.send(word(0x1234) + b"no end bit: an unknown id too")
        peer.send(new[:4] + b"answer")
        assert req.recv() == b"answer"
        assert req.stats()["stale_replies"] == 3
        assert not req.stats()["protocol_errors"]
        peer.close()


# ---------------------------------------------------------------- resends


def test_resend_after_resend_time() -> None:
    """End to end: the socket's timer drives the protocol's resend."""
    with (
        purenng.Rep0(listen=TCP, recv_timeout=LONG) as rep,
        purenng.Req0(recv_timeout=LONG, resend_time=0.2) as req,
    ):
        req.dial(url_of(rep), block=True)
        req.send(b"again?")
        assert rep.recv() == b"again?"  # not answered
        assert rep.recv() == b"again?"  # the resend
        rep.send(b"yes")
        assert req.recv() == b"yes"
        assert req.stats()["resends"] >= 1


def fake_req(**options: Any) -> tuple[FakeProtocolHost, FakePipe]:
    req = FakeProtocolHost(Req0Protocol, **options)
    return req, req.add_pipe()


def test_fake_resend_exactly_at_resend_time() -> None:
    req, pipe = fake_req(resend_time=5.0)
    req.send(b"again?")
    (first,) = pipe.take()
    assert first[4:] == b"again?"
    assert req.next_deadline == 5.0
    req.advance(4.999)
    assert pipe.take() == []
    req.advance(0.001)
    assert pipe.take() == [first]  # the same id and body
    assert req.counters["resends"] == 1
    req.advance(5.0)
    assert pipe.take() == [first]
    assert req.counters["resends"] == 2
    pipe.receive(first[:4] + b"yes")
    assert req.recv().bytes == b"yes"
    assert req.next_deadline is None
    req.advance(600.0)
    assert pipe.take() == []  # answered: no more resends
    assert req.counters["resends"] == 2


def test_no_resend_before_resend_time() -> None:
    req, pipe = fake_req()  # the default, 60 s
    req.send(b"once")
    assert len(pipe.take()) == 1
    req.advance(59.999)
    assert pipe.take() == []
    assert req.counters["resends"] == 0
    req.advance(0.001)
    assert len(pipe.take()) == 1


@pytest.mark.parametrize("value", [None, 0])
def test_resend_time_off_never_resends(value: float | None) -> None:
    req, pipe = fake_req(resend_time=value)
    req.send(b"q")
    assert len(pipe.take()) == 1
    assert req.next_deadline is None
    req.advance(3600.0)
    assert pipe.take() == []
    assert req.clock.pending == []


def test_context_resend_time() -> None:
    req, pipe = fake_req()
    ctx = req.new_context()
    assert ctx.resend_time == 60.0
    with pytest.raises(BadOption):
        ctx.resend_time = "soon"
    ctx.resend_time = 0.2
    assert ctx.resend_time == 0.2
    assert req.options["resend_time"] == 60.0  # the socket's own is unchanged
    ctx.send(b"ctx")
    req.send(b"sock")
    ctx_request, sock_request = pipe.take()
    req.advance(0.2)
    assert pipe.take() == [ctx_request]  # only the context's request
    pipe.receive(ctx_request[:4] + b"done")
    assert ctx.recv().bytes == b"done"
    req.advance(59.8)
    assert pipe.take() == [sock_request]
    ctx.close()


def test_resend_time_change_applies_from_the_next_write() -> None:
    req, pipe = fake_req(resend_time=10.0)
    req.send(b"a")
    pipe.take()
    req.set_option("resend_time", 1.0)
    req.advance(9.999)
    assert pipe.take() == []  # written with 10 s: that deadline stands
    req.advance(0.001)
    assert len(pipe.take()) == 1  # resent at 10 s, now with 1 s
    req.advance(1.0)
    assert len(pipe.take()) == 1


def test_resend_waits_for_a_pipe_and_restarts_its_deadline() -> None:
    req = FakeProtocolHost(Req0Protocol, resend_time=5.0)
    p1 = req.add_pipe()
    req.send(b"job")
    (job,) = p1.take()
    req.advance(1.0)
    p1.close()  # resent at once, but there is no other pipe yet
    assert req.counters["resends"] == 0
    p2 = req.add_pipe()
    assert p2.take() == [job]
    assert req.counters["resends"] == 1
    req.advance(4.999)  # 5 s after the resend, not after the first write
    assert p2.take() == []
    req.advance(0.001)
    assert p2.take() == [job]


def test_resend_to_a_full_pipe_waits_for_room() -> None:
    req, pipe = fake_req(resend_time=1.0)
    req.send(b"r")
    (request,) = pipe.take()
    pipe.set_writable(False)
    req.advance(1.0)
    assert pipe.take() == []
    assert req.counters["resends"] == 0
    pipe.set_writable(True)
    assert pipe.take() == [request]
    assert req.counters["resends"] == 1


def test_many_contexts_resend_in_deadline_order_on_one_timer() -> None:
    req, pipe = fake_req()
    ctxs = [req.new_context() for _ in range(50)]
    resend = {i: 10.0 + (7 * i % 50) / 10 for i in range(50)}  # 10.0 .. 14.9, shuffled
    for i, ctx in enumerate(ctxs):
        ctx.resend_time = resend[i]
        ctx.send(b"%d" % i)
        assert len(req.clock.pending) == 1  # one timer for the protocol, contexts included
    assert len(pipe.take()) == 50
    # Half of them answered (and closed) before their deadline: never resent.
    for i in range(0, 50, 2):
        ctxs[i].close()
    req.advance(15.0)
    resent = [int(p[4:]) for p in pipe.take()]
    assert resent == sorted(range(1, 50, 2), key=resend.__getitem__)
    assert req.counters["resends"] == 25
    assert len(req.clock.pending) == 1


def test_closed_protocol_arms_nothing() -> None:
    req, pipe = fake_req(resend_time=1.0)
    req.send(b"x")
    assert len(pipe.take()) == 1
    req.close()
    assert req.advance(10.0) == 0
    assert pipe.take() == []


def test_resend_on_pipe_loss() -> None:
    with (
        purenng.Rep0(listen=TCP, recv_timeout=LONG) as rep1,
        purenng.Rep0(listen=TCP, recv_timeout=LONG) as rep2,
        purenng.Req0(recv_timeout=LONG) as req,
    ):
        req.dial(url_of(rep1), block=True)
        req.send(b"job")  # rep1 is the only pipe
        req.dial(url_of(rep2), block=True)
        assert rep1.recv() == b"job"
        rep1.close()  # before answering
        assert rep2.recv() == b"job"  # long before the 60 s resend time
        rep2.send(b"done by 2")
        assert req.recv() == b"done by 2"
        assert req.stats()["resends"] == 1


def test_pipe_loss_without_resends_resets() -> None:
    with (
        purenng.Rep0(listen=TCP, recv_timeout=LONG) as rep,
        purenng.Req0(recv_timeout=LONG, resend_time=None) as req,
    ):
        req.dial(url_of(rep), block=True, reconnect_time_min=60.0)
        req.send(b"lost")
        assert rep.recv() == b"lost"
        rep.close()
        with pytest.raises(ConnectionReset):
            req.recv()


async def test_waiting_receive_resets_on_pipe_loss() -> None:
    async with (
        purenng.Rep0(listen=TCP, recv_timeout=LONG) as rep,
        purenng.Req0(recv_timeout=LONG, resend_time=0) as req,
    ):
        await req.adial(url_of(rep), block=True)
        await req.asend(b"lost")
        assert await rep.arecv() == b"lost"
        waiter = asyncio.ensure_future(req.arecv())
        await await_for(lambda: req.channel.has_receiver)
        for pipe in rep.pipes:
            pipe.close()
        with pytest.raises(ConnectionReset):
            await waiter
        with pytest.raises(BadState):
            await req.arecv()


# ---------------------------------------------------------------- contexts


async def test_fifty_req_contexts_against_ten_rep_contexts() -> None:
    async with (
        purenng.Rep0(listen=TCP, recv_timeout=LONG) as rep,
        purenng.Req0(recv_timeout=LONG, send_timeout=LONG) as req,
    ):
        await req.adial(url_of(rep), block=True)
        served: list[int] = []

        async def server(n: int) -> None:
            ctx = rep.new_context()
            while True:
                msg = await ctx.arecv()
                served.append(n)
                await asyncio.sleep(0)  # let the others interleave
                await ctx.asend(b"re:" + msg)

        async def client(i: int) -> bytes:
            ctx = req.new_context()
            await ctx.asend(b"q%d" % i)
            got: bytes = await ctx.arecv()
            ctx.close()
            return got

        servers = [asyncio.ensure_future(server(n)) for n in range(10)]
        try:
            replies = await asyncio.gather(*(client(i) for i in range(50)))
        finally:
            for s in servers:
                s.cancel()
            await asyncio.gather(*servers, return_exceptions=True)
        assert replies == [b"re:q%d" % i for i in range(50)]
        assert len(served) == 50
        assert len(set(served)) > 1
        assert not req.stats().get("stale_replies")


def test_contexts_from_threads() -> None:
    with (
        purenng.Rep0(listen=TCP, recv_timeout=LONG) as rep,
        purenng.Req0(recv_timeout=LONG, send_timeout=LONG) as req,
    ):
        req.dial(url_of(rep), block=True)
        stop = threading.Event()
        errors: list[BaseException] = []

        def server() -> None:
            ctx = rep.new_context()
            ctx.recv_timeout = 0.05
            while not stop.is_set():
                try:
                    msg = ctx.recv()
                except Timeout:
                    continue
                except BaseException as exc:  # reported below
                    errors.append(exc)
                    return
                ctx.send(b"re:" + msg)

        def client(i: int, out: list[bytes]) -> None:
            ctx = req.new_context()
            for j in range(10):
                ctx.send(b"%d.%d" % (i, j))
                out.append(ctx.recv())

        results: list[list[bytes]] = [[] for _ in range(8)]
        servers = [threading.Thread(target=server) for _ in range(4)]
        clients = [threading.Thread(target=client, args=(i, results[i])) for i in range(8)]
        for t in servers + clients:
            t.start()
        for t in clients:
            t.join(LONG * 2)
        stop.set()
        for t in servers:
            t.join(LONG)
        assert not errors
        for i, got in enumerate(results):
            assert got == [b"re:%d.%d" % (i, j) for j in range(10)]


def test_rep_context_replies_to_its_own_request() -> None:
    with (
        purenng.Rep0(listen=TCP, recv_timeout=LONG) as rep,
        purenng.Req0(recv_timeout=LONG) as req,
    ):
        req.dial(url_of(rep), block=True)
        a, b = req.new_context(), req.new_context()
        ra, rb = rep.new_context(), rep.new_context()
        a.send(b"from a")
        assert ra.recv() == b"from a"
        b.send(b"from b")
        assert rb.recv() == b"from b"
        rb.send(b"to b")  # answered out of order
        ra.send(b"to a")
        assert a.recv() == b"to a"
        assert b.recv() == b"to b"


async def test_requests_go_only_to_contexts_still_receiving() -> None:
    async with (
        purenng.Rep0(listen=TCP, recv_timeout=LONG) as rep,
        purenng.Req0(recv_timeout=LONG) as req,
    ):
        await req.adial(url_of(rep), block=True)
        idle = rep.new_context()
        idle.recv_timeout = 0.05
        with pytest.raises(Timeout):
            await idle.arecv()  # asked once, then gave up
        busy = rep.new_context()
        waiter = asyncio.ensure_future(busy.arecv())
        await await_for(lambda: busy.channel.has_receiver)
        await req.asend(b"for whoever waits")
        assert await waiter == b"for whoever waits"
        with pytest.raises(TryAgain):
            await idle.arecv(block=False)
        await busy.asend(b"answered")
        assert await req.arecv() == b"answered"


def test_reply_to_a_departed_requester_is_dropped() -> None:
    with purenng.Rep0(listen=TCP, recv_timeout=LONG) as rep:
        with purenng.Req0(dial=url_of(rep)) as req:
            req.send(b"bye")
            assert rep.recv() == b"bye"
        wait_for(lambda: not rep.pipes)
        rep.send(b"nobody listens")  # succeeds, silently dropped
        with pytest.raises(BadState):
            rep.send(b"no request left")


# ---------------------------------------------------------------- TTL and garbage


def test_ttl_drop() -> None:
    """End to end: hop counting on a real socket, and ttl_max set at run time."""
    with (
        purenng.Rep0(listen=TCP, recv_timeout=LONG) as rep,
        purenng.Req0(raw=True) as xreq,
    ):
        xreq.dial(url_of(rep), block=True)
        hops8 = b"".join(word(i) for i in range(1, 8)) + word(0x80000001)
        hops9 = word(99) + hops8
        xreq.send_msg(Message(b"too far", hops9))
        xreq.send_msg(Message(b"just right", hops8))
        assert rep.recv() == b"just right"
        assert rep.stats()["ttl_drops"] == 1
        assert rep.pipes
        assert not rep.stats()["protocol_errors"]
        rep.ttl_max = 3
        three = word(1) + word(2) + word(0x80000002)
        xreq.send_msg(Message(b"four", word(0) + three))
        xreq.send_msg(Message(b"three", three))
        assert rep.recv() == b"three"
        wait_for(lambda: rep.stats()["ttl_drops"] == 2)


def hops(n: int) -> bytes:
    """A backtrace of ``n`` words: ``n - 1`` device hops, then the request id."""
    return b"".join(word(i) for i in range(1, n)) + word(0x80000001)


@pytest.mark.parametrize("ttl", range(1, 16))
def test_rep_ttl_max_counts_hops(ttl: int) -> None:
    rep = FakeProtocolHost(Rep0Protocol, ttl_max=ttl)
    pipe = rep.add_pipe()
    pipe.receive(hops(ttl + 1) + b"over")  # dropped, the pipe kept
    pipe.receive(hops(ttl) + b"at the limit")
    assert rep.recv().bytes == b"at the limit"
    rep.send(b"reply")
    assert pipe.take() == [hops(ttl) + b"reply"]  # the whole backtrace goes back
    assert rep.counters["ttl_drops"] == 1
    assert rep.counters["drops"] == 1
    assert not rep.rejected
    assert not pipe.closed


def test_rep_ttl_max_change_applies_to_the_next_request() -> None:
    rep = FakeProtocolHost(Rep0Protocol)
    pipe = rep.add_pipe()
    pipe.receive(hops(8) + b"eight")
    assert rep.recv().bytes == b"eight"
    rep.set_option("ttl_max", 3)
    pipe.receive(hops(4) + b"four")
    pipe.receive(hops(3) + b"three")
    assert rep.recv().bytes == b"three"
    assert rep.counters["ttl_drops"] == 1


@pytest.mark.parametrize("raw", [False, True])
def test_rep_malformed_backtrace_closes_the_pipe(raw: bool) -> None:
    rep = FakeProtocolHost(Rep0Protocol, raw=raw)
    pipe = rep.add_pipe()
    pipe.receive(word(1) + b"hi")  # no word with bit 31 before the end
    assert pipe.closed
    assert rep.rejected == [(pipe, "malformed REQ request: no end of backtrace")]
    assert rep.counters["protocol_errors"] == 1


def test_raw_req_has_no_hop_limit() -> None:
    xreq = FakeProtocolHost(Req0Protocol, raw=True)
    pipe = xreq.add_pipe()
    pipe.receive(hops(40) + b"far")
    msg = xreq.recv()
    assert (msg.bytes, bytes(msg.header)) == (b"far", hops(40))


def test_malformed_backtrace_closes_the_pipe_only() -> None:
    with (
        purenng.Rep0(listen=TCP, recv_timeout=LONG) as rep,
        purenng.Req0(recv_timeout=LONG) as good,
    ):
        bad = RawSP.connect(url_of(rep), REQ, REP)
        wait_for(lambda: rep.pipes)
        bad.send(word(1) + b"hello")  # no word with bit 31 before the end
        assert bad.closed_by_peer()
        bad.close()
        assert rep.stats()["protocol_errors"] == 1
        good.dial(url_of(rep), block=True)
        good.send(b"still alive?")
        assert rep.recv() == b"still alive?"
        rep.send(b"yes")
        assert good.recv() == b"yes"


def test_short_reply_closes_the_pipe(raw_rep: RawSPListener) -> None:
    with purenng.Req0(recv_timeout=LONG, resend_time=None) as req:
        peer = dial_raw(req, raw_rep)
        req.send(b"q")
        peer.recv()
        peer.send(b"\x80\x00")
        assert peer.closed_by_peer()
        peer.close()
        assert req.stats()["protocol_errors"] == 1
        with pytest.raises(ConnectionReset):
            req.recv()


def test_garbage_is_survived() -> None:
    with (
        purenng.Rep0(listen=TCP, recv_timeout=LONG) as rep,
        purenng.Req0(recv_timeout=LONG) as req,
    ):
        for junk in (b"", b"\x00", b"\x00\x00\x00\x00", word(5) * 3 + b"xy"):
            bad = RawSP.connect(url_of(rep), REQ, REP)
            bad.send(junk)
            assert bad.closed_by_peer()
            bad.close()
        req.dial(url_of(rep), block=True)
        req.send(b"fine")
        assert rep.recv() == b"fine"
        rep.send(b"ok")
        assert req.recv() == b"ok"
        assert rep.stats()["protocol_errors"] == 4


# ---------------------------------------------------------------- raw mode


def test_raw_rep_header_and_routing() -> None:
    with (
        purenng.Rep0(listen=TCP, raw=True, recv_timeout=LONG) as xrep,
        purenng.Req0(recv_timeout=LONG) as req,
    ):
        req.dial(url_of(xrep), block=True)
        req.send(b"route me")
        msg = xrep.recv_msg()
        assert msg.pipe is not None
        assert msg.bytes == b"route me"
        header = bytes(msg.header)
        assert len(header) == 8
        assert header[:4] == word(msg.pipe.id)
        assert header[4] & 0x80
        # Dropped silently: no pipe id, unknown pipe.
        xrep.send_msg(Message(b"nowhere", b"\x00\x01"))
        xrep.send_msg(Message(b"nowhere", word(0x7FFFFFF0) + header[4:]))
        xrep.send_msg(Message(b"routed", header))
        assert req.recv() == b"routed"
        assert xrep.stats()["drops"] == 2


def test_raw_req_header_passthrough(raw_rep: RawSPListener) -> None:
    with purenng.Req0(raw=True, recv_timeout=LONG) as xreq:
        peer = dial_raw(xreq, raw_rep)
        trace = word(42) + word(0x80000007)
        xreq.send_msg(Message(b"body", trace))
        assert peer.recv() == trace + b"body"
        peer.send(trace + b"answer")
        msg = xreq.recv_msg()
        assert bytes(msg.header) == trace
        assert msg.bytes == b"answer"
        peer.send(word(1) + b"\x00\x00")  # runs out before an end word
        assert peer.closed_by_peer()
        peer.close()
        assert xreq.stats()["protocol_errors"] == 1


def test_device_between_req_and_rep() -> None:
    """Raw REP + raw REQ forwarding both ways: a hop pushed and popped."""
    with (
        purenng.Rep0(listen=TCP, recv_timeout=LONG) as server,
        purenng.Rep0(listen=TCP, raw=True, recv_timeout=0.05) as front,
        purenng.Req0(raw=True, recv_timeout=0.05) as back,
        purenng.Req0(recv_timeout=LONG) as client,
    ):
        back.dial(url_of(server), block=True)
        client.dial(url_of(front), block=True)
        stop = threading.Event()

        def forward(src: purenng.Socket, dst: purenng.Socket) -> None:
            while not stop.is_set():
                try:
                    dst.send_msg(src.recv_msg())
                except Timeout:
                    continue

        threads = [
            threading.Thread(target=forward, args=(front, back)),
            threading.Thread(target=forward, args=(back, front)),
        ]
        for t in threads:
            t.start()
        try:
            for i in range(5):
                client.send(b"via device %d" % i)
                assert server.recv() == b"via device %d" % i
                server.send(b"back %d" % i)
                assert client.recv() == b"back %d" % i
        finally:
            stop.set()
            for t in threads:
                t.join(LONG)


def test_closing_the_socket_closes_its_contexts() -> None:
    """A context's pending receive fails with Closed when its socket closes."""
    import threading

    rep = purenng.Rep0(listen="tcp://127.0.0.1:0")
    ctx = rep.new_context()
    ctx.recv_timeout = 10
    errors: list[BaseException] = []

    def waiter() -> None:
        try:
            ctx.recv()
        except BaseException as exc:
            errors.append(exc)

    t = threading.Thread(target=waiter)
    t.start()
    for _ in range(2000):
        if ctx.channel._thread_waiters:
            break
        threading.Event().wait(0.005)
    rep.close()
    t.join(5)
    assert not t.is_alive()
    assert len(errors) == 1
    assert isinstance(errors[0], purenng.Closed)
    assert ctx.closed
    with pytest.raises(purenng.Closed):
        ctx.send(b"late")
