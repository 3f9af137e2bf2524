"""SURVEYOR/RESPONDENT v0: identity, deadlines, stale responses, contexts, TTL, raw mode.

purenng against itself (inproc and tcp) and against a plain TCP socket that
speaks SP by hand (wire-protocols.md §1.2-§1.5, §4 item 14).  Survey
deadlines are tested on the protocol alone, with a fake host and a fake
clock (no socket, no sleep); one end-to-end test checks the socket's timer
wiring.  Interop with real NNG and nanomsg lives in
tests/interop/test_nng_survey.py.
"""

from __future__ import annotations

import asyncio
import random
import threading
import time
import tracemalloc
from typing import Any

import pytest

import purenng
from purenng import Message
from purenng.core.errors import BadOption, BadState, NotSupported, Timeout, TryAgain
from purenng.protocols.survey0 import (
    MALFORMED,
    SEND_BUFFER,
    TOO_MANY_HOPS,
    Respondent0Protocol,
    Surveyor0Protocol,
    backtrace_length,
)
from purenng.testing import FakePipe, FakeProtocolHost
from support.raw_sp import RESPONDENT, SURVEYOR, RawSP
from support.waiting import await_for, wait_for

LONG = 10.0  # only to stop hangs


def word(n: int) -> bytes:
    return n.to_bytes(4, "big")


def stat(sock: purenng.Socket, name: str) -> int:
    value: int = sock.stats().get(name, 0)
    return value


def connected(surveyor: purenng.Socket, n: int) -> None:
    wait_for(lambda: len(surveyor.pipes) >= n)


# ------------------------------------------------------------------ identity and options


def test_identity() -> None:
    assert (Surveyor0Protocol.self_id, Surveyor0Protocol.peer_id) == (0x62, 0x63)
    assert (Surveyor0Protocol.self_name, Surveyor0Protocol.peer_name) == (
        "surveyor",
        "respondent",
    )
    assert (Respondent0Protocol.self_id, Respondent0Protocol.peer_id) == (0x63, 0x62)
    assert (Respondent0Protocol.self_name, Respondent0Protocol.peer_name) == (
        "respondent",
        "surveyor",
    )
    with purenng.Surveyor0() as s, purenng.Respondent0() as r:
        assert s.protocol_cls is Surveyor0Protocol
        assert r.protocol_cls is Respondent0Protocol
        assert (s.protocol_info.self_id, s.protocol_info.peer_id) == (0x62, 0x63)
        assert (r.protocol_info.self_name, r.protocol_info.peer_name) == (
            "respondent",
            "surveyor",
        )


def test_option_defaults_and_ranges() -> None:
    with purenng.Surveyor0() as s, purenng.Respondent0() as r:
        assert s.survey_time == 1.0
        assert s.ttl_max == 8
        assert r.ttl_max == 8
        assert s.send_buffer == SEND_BUFFER == 8
        assert s.recv_buffer == 128
        s.survey_time = 0.25
        assert s.survey_time == 0.25
        s.survey_time = None
        assert s.survey_time is None
        for sock in (s, r):
            sock.ttl_max = 15
            assert sock.ttl_max == 15
            for bad in (0, 16, -1, "3", True):
                with pytest.raises(BadOption):
                    sock.ttl_max = bad  # type: ignore[assignment]
        for bad_time in (-1, "1", True):
            with pytest.raises(BadOption):
                s.survey_time = bad_time  # type: ignore[assignment]
    with pytest.raises(BadOption):
        purenng.Respondent0(survey_time=1.0)  # a surveyor option only


def test_backtrace_length() -> None:
    end = word(0x80000001)
    assert backtrace_length(end + b"x", 8) == 4
    assert backtrace_length(word(5) + word(6) + end, 3) == 12
    assert backtrace_length(word(5) + word(6) + word(7) + end, 3) == TOO_MANY_HOPS
    assert backtrace_length(word(5) + b"\x00\x00", 8) == MALFORMED
    assert backtrace_length(b"", 8) == MALFORMED
    # No limit: only the end bit counts (raw SURVEYOR, as NNG).
    assert backtrace_length(word(1) * 20 + end, None) == 84
    assert backtrace_length(word(1) * 20, None) == MALFORMED


# ------------------------------------------------------------------ cooked surveys


def test_three_respondents_then_timeout_then_badstate(purenng_inproc_url: str) -> None:
    """End to end: the socket's timer ends the survey."""
    with purenng.Surveyor0(listen=purenng_inproc_url, survey_time=0.3, recv_timeout=LONG) as s:
        rs = [purenng.Respondent0(dial=purenng_inproc_url, recv_timeout=LONG) for _ in range(3)]
        try:
            connected(s, 3)

            def answer(i: int, r: purenng.Socket) -> None:
                r.send(r.recv() + b" from %d" % i)

            threads = [threading.Thread(target=answer, args=(i, r)) for i, r in enumerate(rs)]
            t0 = time.monotonic()
            s.send(b"who is there?")
            for t in threads:
                t.start()
            got = [s.recv_msg() for _ in range(3)]
            assert sorted(m.bytes for m in got) == [b"who is there? from %d" % i for i in range(3)]
            # The survey id is kept apart from the body, as NNG keeps it.
            ids = {bytes(m.header) for m in got}
            assert len(ids) == 1
            (sid,) = ids
            assert len(sid) == 4
            assert sid[0] & 0x80
            assert {m.pipe.id for m in got if m.pipe} == {p.id for p in s.pipes}
            with pytest.raises(Timeout):
                s.recv()
            assert time.monotonic() - t0 >= 0.3 - 0.01  # not before the deadline
            with pytest.raises(BadState):
                s.recv()  # after the deadline: ESTATE, as NNG
            with pytest.raises(BadState):
                s.recv(block=False)
            for t in threads:
                t.join(LONG)
        finally:
            for r in rs:
                r.close()


def test_recv_before_any_survey_is_badstate() -> None:
    with purenng.Surveyor0(recv_timeout=LONG) as s:
        with pytest.raises(BadState):
            s.recv()
        with pytest.raises(BadState):
            s.recv(block=False)


def test_survey_ids_differ_and_have_the_high_bit(purenng_inproc_url: str) -> None:
    with (
        purenng.Surveyor0(listen=purenng_inproc_url) as s,
        purenng.Respondent0(dial=purenng_inproc_url, raw=True, recv_timeout=LONG) as xr,
    ):
        connected(s, 1)
        seen = []
        for i in range(5):
            s.send(b"%d" % i)
            m = xr.recv_msg()
            assert m.bytes == b"%d" % i
            pipe_word, sid = bytes(m.header[:4]), bytes(m.header[4:])
            assert int.from_bytes(pipe_word, "big") == xr.pipes[0].id
            assert len(sid) == 4
            assert sid[0] & 0x80
            seen.append(sid)
        assert len(set(seen)) == 5


def fake_surveyor(pipes: int = 1, **options: Any) -> tuple[FakeProtocolHost, list[FakePipe]]:
    s = FakeProtocolHost(Surveyor0Protocol, **options)
    return s, [s.add_pipe() for _ in range(pipes)]


def test_no_pipes_send_succeeds_and_times_out() -> None:
    s, _ = fake_surveyor(0, survey_time=0.05)
    s.send(b"anyone?")
    waiting = s.recv_later()
    s.advance(0.049)
    assert not waiting.done()
    s.advance(0.001)
    with pytest.raises(Timeout):
        waiting.result(0)
    with pytest.raises(BadState):
        s.recv()


def test_deadline_is_exact_and_responses_before_it_count() -> None:
    s, (pipe,) = fake_surveyor(survey_time=1.0)
    s.send(b"q")
    (survey,) = pipe.take()
    assert survey[0] & 0x80
    assert survey[4:] == b"q"
    s.advance(0.999)
    pipe.receive(survey[:4] + b"just in time")
    m = s.recv()
    assert (m.bytes, bytes(m.header), m.pipe) == (b"just in time", survey[:4], pipe)
    waiting = s.recv_later()
    s.advance(0.001)
    with pytest.raises(Timeout):
        waiting.result(0)
    pipe.receive(survey[:4] + b"too late")
    with pytest.raises(BadState):
        s.recv()
    assert s.counters["stale_responses"] == 1


def test_survey_time_none_never_expires() -> None:
    s, (pipe,) = fake_surveyor(survey_time=None)
    s.send(b"q")
    (survey,) = pipe.take()
    assert s.next_deadline is None
    s.advance(3600.0)
    with pytest.raises(TryAgain):
        s.recv()  # nothing yet, and the survey goes on
    pipe.receive(survey[:4] + b"q!")
    assert s.recv().bytes == b"q!"


def test_unread_responses_go_at_the_deadline() -> None:
    s, (pipe,) = fake_surveyor(survey_time=1.0)
    s.send(b"q")
    (survey,) = pipe.take()
    pipe.receive(survey[:4] + b"a")
    pipe.receive(survey[:4] + b"b")  # neither received by the application
    s.advance(1.0)
    with pytest.raises(BadState):
        s.recv()
    assert s.counters["drops"] == 2


def test_late_response_is_dropped_and_never_reaches_the_next_survey() -> None:
    s, (pipe,) = fake_surveyor(survey_time=0.1)
    s.send(b"first")
    (first,) = pipe.take()
    waiting = s.recv_later()
    s.advance(0.1)
    with pytest.raises(Timeout):
        waiting.result(0)
    pipe.receive(first[:4] + b"late answer to first")
    assert s.counters["stale_responses"] == 1
    assert s.counters["drops"] == 1
    s.set_option("survey_time", 10.0)
    s.send(b"second")
    (second,) = pipe.take()
    assert second[:4] != first[:4]
    pipe.receive(second[:4] + b"answer to second")
    assert s.recv().bytes == b"answer to second"
    with pytest.raises(TryAgain):
        s.recv()  # nothing else came through, the late answer least of all


def test_new_survey_cancels_the_old_one(purenng_inproc_url: str) -> None:
    with (
        purenng.Surveyor0(listen=purenng_inproc_url, survey_time=LONG, recv_timeout=LONG) as s,
        purenng.Respondent0(dial=purenng_inproc_url, recv_timeout=LONG) as r,
    ):
        connected(s, 1)
        s.send(b"abc")
        assert r.recv() == b"abc"
        r.send(b"abc answered")
        # The answer arrived but nobody read it: the next survey drops it.
        wait_for(lambda: stat(s, "messages_in") == 1)
        s.send(b"def")
        assert r.recv() == b"def"
        r.send(b"def answered")
        assert s.recv() == b"def answered"
        # An answer to the cancelled survey is stale now.
        s.send(b"ghi")
        assert r.recv() == b"ghi"
        s.send(b"jkl")
        r.send(b"ghi answered")
        assert r.recv() == b"jkl"
        r.send(b"jkl answered")
        assert s.recv() == b"jkl answered"
        wait_for(lambda: stat(s, "stale_responses") == 1)
        s.recv_timeout = 0.1
        with pytest.raises(Timeout):
            s.recv()


async def test_new_survey_fails_a_waiting_receive() -> None:
    async with purenng.Surveyor0(survey_time=LONG, recv_timeout=LONG) as s:
        await s.asend(b"one")
        waiting = asyncio.ensure_future(s.arecv())
        await asyncio.sleep(0)
        assert not waiting.done()
        await s.asend(b"two")
        with pytest.raises(BadState):
            await waiting


def test_new_survey_restarts_the_deadline() -> None:
    s, _ = fake_surveyor(survey_time=1.0)
    s.send(b"one")
    s.advance(0.9)
    s.send(b"two")  # cancels "one" and its deadline
    waiting = s.recv_later()
    s.advance(0.9)
    assert not waiting.done()
    s.advance(0.1)
    with pytest.raises(Timeout):
        waiting.result(0)


async def test_deadline_fails_a_waiting_async_receive() -> None:
    """End to end on a real socket: the host's timer ends an async receive.

    No recv_timeout: only the survey deadline can end the wait.
    """
    async with purenng.Surveyor0(survey_time=0.05, recv_timeout=None) as s:
        await s.asend(b"one")
        with pytest.raises(Timeout):
            await asyncio.wait_for(s.arecv(), LONG)
        with pytest.raises(BadState):
            await s.arecv()


def test_blocking_receives_always_end_at_the_deadline() -> None:
    # No recv_timeout: only the deadline can end these receives.  Deadlines
    # of 0..1 ms land before, during and after the moment the receive
    # starts, so both outcomes occur: Timeout (the receive waited) and
    # BadState (it started after the deadline).
    rng = random.Random(1234)
    with purenng.Surveyor0() as s:
        ctx = s.new_context()
        for _ in range(200):
            ctx.survey_time = rng.uniform(0.0, 0.001)
            ctx.send(b"x")
            with pytest.raises((Timeout, BadState)):
                ctx.recv()


def test_send_never_blocks_best_effort() -> None:
    # The respondent never reads: its connection fills up, the surveyor's
    # per-pipe queue fills up, and from then on surveys are dropped for that
    # pipe instead of making send wait (NNG "survey send best effort").
    body = b"x" * 65536
    with purenng.Respondent0(listen="tcp://127.0.0.1:0", recv_buffer=1) as r:
        url = r.listeners[0].url
        with purenng.Surveyor0(dial=url, survey_time=LONG) as s:
            connected(s, 1)
            for _ in range(300):
                s.send(body, block=False)  # never TryAgain
            assert stat(s, "drops") > 0
            assert len(s.pipes) == 1


# ------------------------------------------------------------------ cooked respondent


def test_respondent_send_without_survey_is_badstate(purenng_inproc_url: str) -> None:
    with (
        purenng.Surveyor0(listen=purenng_inproc_url, survey_time=LONG, recv_timeout=LONG) as s,
        purenng.Respondent0(dial=purenng_inproc_url, recv_timeout=LONG) as r,
    ):
        with pytest.raises(BadState):
            r.send(b"unasked")
        connected(s, 1)
        s.send(b"q")
        assert r.recv() == b"q"
        r.send(b"a")
        with pytest.raises(BadState):
            r.send(b"a again")  # one answer per survey
        assert s.recv() == b"a"


def test_respondent_answers_the_last_survey_it_received(purenng_inproc_url: str) -> None:
    with (
        purenng.Surveyor0(listen=purenng_inproc_url, survey_time=LONG, recv_timeout=LONG) as s,
        purenng.Respondent0(dial=purenng_inproc_url, recv_timeout=LONG) as r,
    ):
        connected(s, 1)
        c1, c2 = s.new_context(), s.new_context()
        c1.send(b"one")
        c2.send(b"two")
        assert r.recv() == b"one"
        assert r.recv() == b"two"
        r.send(b"answer")
        assert c2.recv() == b"answer"
        c1.recv_timeout = 0.1
        with pytest.raises(Timeout):
            c1.recv()


def test_response_to_a_vanished_surveyor_is_dropped(purenng_inproc_url: str) -> None:
    with purenng.Respondent0(listen=purenng_inproc_url, recv_timeout=LONG) as r:
        s = purenng.Surveyor0(dial=purenng_inproc_url)
        try:
            wait_for(lambda: r.pipes)
            s.send(b"q")
            assert r.recv() == b"q"
        finally:
            s.close()
        wait_for(lambda: not r.pipes)
        r.send(b"nobody hears this")  # succeeds, as NNG's does
        assert stat(r, "drops") == 1


async def test_respondent_async_exchange_over_tcp() -> None:
    async with purenng.Respondent0(listen="tcp://127.0.0.1:0", recv_timeout=LONG) as r:
        url = r.listeners[0].url
        async with purenng.Surveyor0(dial=url, survey_time=LONG, recv_timeout=LONG) as s:
            await await_for(lambda: s.pipes)
            for i in range(10):
                await s.asend(b"q%d" % i)
                msg = await r.arecv_msg()
                assert msg.bytes == b"q%d" % i
                assert bytes(msg.header) == b""  # cooked: the backtrace is kept inside
                await r.asend(msg.bytes.upper())
                assert await s.arecv() == b"Q%d" % i


# ------------------------------------------------------------------ contexts


async def test_twenty_concurrent_surveys_on_contexts(purenng_inproc_url: str) -> None:
    async with purenng.Surveyor0(
        listen=purenng_inproc_url, survey_time=LONG, recv_timeout=LONG
    ) as s:
        rs = [purenng.Respondent0(dial=purenng_inproc_url, recv_timeout=LONG) for _ in range(3)]
        try:
            await await_for(lambda: len(s.pipes) == 3)

            async def serve(ctx: purenng.Context, tag: bytes) -> None:
                while True:
                    m = await ctx.arecv()
                    await ctx.asend(m + b" by " + tag)

            servers = [
                asyncio.ensure_future(serve(r.new_context(), b"r%d" % i))
                for i, r in enumerate(rs)
                for _ in range(4)
            ]
            ctxs = [s.new_context() for _ in range(20)]

            async def survey(i: int) -> list[bytes]:
                ctx = ctxs[i]
                await ctx.asend(b"survey %d" % i)
                got = [await ctx.arecv() for _ in range(3)]
                # The deadlines: test_twenty_context_deadlines_on_one_timer.
                return sorted(got)

            try:
                results = await asyncio.gather(*(survey(i) for i in range(20)))
            finally:
                for t in servers:
                    t.cancel()
                await asyncio.gather(*servers, return_exceptions=True)
            for i, got in enumerate(results):
                assert got == [b"survey %d by r%d" % (i, k) for k in range(3)]
            assert stat(s, "stale_responses") == 0
        finally:
            for r in rs:
                await r.aclose()


def test_context_survey_time_is_per_context() -> None:
    s, (pipe,) = fake_surveyor(survey_time=10.0)
    short, long_ = s.new_context(), s.new_context()
    assert short.survey_time == 10.0  # inherited from the socket
    short.survey_time = 0.05
    assert short.survey_time == 0.05
    assert long_.survey_time == 10.0
    assert s.options["survey_time"] == 10.0
    with pytest.raises(BadOption):
        short.survey_time = -1
    short.send(b"short")
    long_.send(b"long")
    short_survey, long_survey = pipe.take()
    waiting = short.recv_later()
    s.advance(0.05)
    with pytest.raises(Timeout):
        waiting.result(0)
    with pytest.raises(BadState):
        short.recv()
    pipe.receive(short_survey[:4] + b"short!")
    pipe.receive(long_survey[:4] + b"long!")
    assert long_.recv().bytes == b"long!"
    assert s.counters["stale_responses"] == 1
    s.advance(9.95)
    with pytest.raises(BadState):
        long_.recv()


def test_twenty_context_deadlines_on_one_timer() -> None:
    s, pipes = fake_surveyor(3)
    ctxs = [s.new_context() for _ in range(20)]
    waits = []
    for i, ctx in enumerate(ctxs):
        ctx.survey_time = 1.0 + i / 100
        ctx.send(b"survey %d" % i)
        assert len(s.clock.pending) == 1  # one timer for the protocol, contexts included
    for k, pipe in enumerate(pipes):
        for survey in pipe.take():
            pipe.receive(survey[:4] + survey[4:] + b" by r%d" % k)
    for i, ctx in enumerate(ctxs):
        assert sorted(ctx.recv_all()) == [b"survey %d by r%d" % (i, k) for k in range(3)]
        waits.append(ctx.recv_later())
    s.advance(1.095)
    assert [w.done() for w in waits] == [True] * 10 + [False] * 10
    s.advance(0.1)
    for w in waits:
        with pytest.raises(Timeout):
            w.result(0)
    assert s.counters["stale_responses"] == 0


def test_context_recv_before_survey_and_close(purenng_inproc_url: str) -> None:
    with purenng.Surveyor0(survey_time=LONG, recv_timeout=LONG) as s:
        ctx = s.new_context()
        with pytest.raises(BadState):
            ctx.recv()
        ctx.send(b"q")
        ctx.close()
        with pytest.raises(purenng.Closed):
            ctx.recv()


async def test_respondent_contexts_answer_the_right_surveyor(purenng_inproc_url: str) -> None:
    async with purenng.Respondent0(listen=purenng_inproc_url, recv_timeout=LONG) as r:
        ss = [
            purenng.Surveyor0(dial=purenng_inproc_url, survey_time=LONG, recv_timeout=LONG)
            for _ in range(4)
        ]
        try:
            await await_for(lambda: len(r.pipes) == 4)
            rctxs = [r.new_context() for _ in range(3)]

            async def serve(ctx: purenng.Context) -> None:
                while True:
                    m = await ctx.arecv()
                    await asyncio.sleep(0.001)  # the other contexts get work meanwhile
                    await ctx.asend(m + b"?")

            servers = [asyncio.ensure_future(serve(c)) for c in rctxs]
            try:
                for round_ in range(5):
                    for i, s in enumerate(ss):
                        await s.asend(b"s%d round %d" % (i, round_))
                    for i, s in enumerate(ss):
                        assert await s.arecv() == b"s%d round %d?" % (i, round_)
            finally:
                for t in servers:
                    t.cancel()
                await asyncio.gather(*servers, return_exceptions=True)
        finally:
            for s in ss:
                await s.aclose()


def test_respondent_context_and_socket_share_surveys(purenng_inproc_url: str) -> None:
    with (
        purenng.Surveyor0(listen=purenng_inproc_url, survey_time=LONG, recv_timeout=LONG) as s,
        purenng.Respondent0(dial=purenng_inproc_url, recv_timeout=LONG) as r,
    ):
        connected(s, 1)
        ctx = r.new_context()
        s.send(b"for whoever asks first")
        assert ctx.recv() == b"for whoever asks first"
        with pytest.raises(BadState):
            r.send(b"the socket received nothing")
        ctx.send(b"from the context")
        assert s.recv() == b"from the context"


def test_raw_sockets_have_no_contexts() -> None:
    with purenng.Surveyor0(raw=True) as xs, purenng.Respondent0(raw=True) as xr:
        with pytest.raises(NotSupported):
            xs.new_context()
        with pytest.raises(NotSupported):
            xr.new_context()


# ------------------------------------------------------------------ TTL and malformed input


def test_respondent_ttl_drop_keeps_the_pipe() -> None:
    with purenng.Respondent0(listen="tcp://127.0.0.1:0", ttl_max=3, recv_timeout=LONG) as r:
        port = r.listeners[0].port
        assert port is not None
        peer = RawSP.connect(port, SURVEYOR, RESPONDENT)
        try:
            end = word(0x80000007)
            peer.send(word(1) + word(2) + word(3) + end + b"four hops")  # dropped
            peer.send(word(1) + word(2) + end + b"three hops")  # delivered
            assert r.recv() == b"three hops"
            r.send(b"reply")
            assert peer.recv() == word(1) + word(2) + end + b"reply"
            assert stat(r, "ttl_drops") == 1
            assert stat(r, "drops") >= 1
            assert len(r.pipes) == 1
            r.ttl_max = 4
            peer.send(word(1) + word(2) + word(3) + end + b"four hops ok now")
            assert r.recv() == b"four hops ok now"
        finally:
            peer.close()


@pytest.mark.parametrize("ttl", range(1, 16))
def test_respondent_ttl_max_counts_hops(ttl: int) -> None:
    r = FakeProtocolHost(Respondent0Protocol, ttl_max=ttl)
    pipe = r.add_pipe()
    end = word(0x80000007)

    def backtrace(n: int) -> bytes:
        return b"".join(word(i) for i in range(1, n)) + end

    pipe.receive(backtrace(ttl + 1) + b"over")
    pipe.receive(backtrace(ttl) + b"at the limit")
    assert r.recv().bytes == b"at the limit"
    r.send(b"reply")
    assert pipe.take() == [backtrace(ttl) + b"reply"]
    assert (r.counters["ttl_drops"], r.counters["drops"]) == (1, 1)
    assert not pipe.closed


@pytest.mark.parametrize("raw", [False, True])
def test_respondent_malformed_backtrace_closes_the_pipe(raw: bool) -> None:
    with purenng.Respondent0(listen="tcp://127.0.0.1:0", raw=raw) as r:
        port = r.listeners[0].port
        assert port is not None
        peer = RawSP.connect(port, SURVEYOR, RESPONDENT)
        try:
            wait_for(lambda: r.pipes)
            peer.send(word(1) + b"\x00\x00")  # no word with the end bit
            assert peer.closed_by_peer()
            wait_for(lambda: stat(r, "protocol_errors") == 1)
        finally:
            peer.close()


def test_surveyor_closes_a_pipe_with_a_short_response() -> None:
    with purenng.Surveyor0(listen="tcp://127.0.0.1:0", survey_time=LONG) as s:
        port = s.listeners[0].port
        assert port is not None
        peer = RawSP.connect(port, RESPONDENT, SURVEYOR)
        try:
            wait_for(lambda: s.pipes)
            s.send(b"q")
            survey = peer.recv()
            assert survey[4:] == b"q"
            assert survey[0] & 0x80
            peer.send(b"\x80\x00")  # shorter than a survey id
            assert peer.closed_by_peer()
            wait_for(lambda: stat(s, "protocol_errors") == 1)
        finally:
            peer.close()


def test_surveyor_ignores_hops_and_unknown_ids_on_the_wire() -> None:
    with purenng.Surveyor0(
        listen="tcp://127.0.0.1:0", survey_time=LONG, recv_timeout=LONG, ttl_max=1
    ) as s:
        port = s.listeners[0].port
        assert port is not None
        peer = RawSP.connect(port, RESPONDENT, SURVEYOR)
        try:
            wait_for(lambda: s.pipes)
            s.send(b"q")
            survey = peer.recv()
            sid = survey[:4]
            peer.send(word(0x80000000 ^ int.from_bytes(sid, "big") ^ 1) + b"wrong id")
            peer.send(word(12345) + b"no end bit")
            peer.send(sid + b"right")
            assert s.recv() == b"right"
            assert stat(s, "stale_responses") == 2
            assert len(s.pipes) == 1
        finally:
            peer.close()


# ------------------------------------------------------------------ raw mode


def test_raw_respondent_headers_and_routing(purenng_inproc_url: str) -> None:
    with (
        purenng.Respondent0(listen=purenng_inproc_url, raw=True, recv_timeout=LONG) as xr,
        purenng.Surveyor0(dial=purenng_inproc_url, survey_time=LONG, recv_timeout=LONG) as s1,
        purenng.Surveyor0(dial=purenng_inproc_url, survey_time=LONG, recv_timeout=LONG) as s2,
    ):
        wait_for(lambda: len(xr.pipes) == 2)
        s1.send(b"from s1")
        s2.send(b"from s2")
        msgs = {m.bytes: m for m in (xr.recv_msg(), xr.recv_msg())}
        for body, m in msgs.items():
            assert m.pipe is not None
            assert bytes(m.header[:4]) == word(m.pipe.id)  # pipe id first, as NNG
            assert len(m.header) == 8
            assert m.header[4] & 0x80
            # Route by the first header word; the rest goes on the wire.
            xr.send_msg(Message(body + b" answered", m.header))
        assert s1.recv() == b"from s1 answered"
        assert s2.recv() == b"from s2 answered"
        # Too short a header, or an unknown pipe: dropped silently.
        xr.send_msg(Message(b"x", b"\x00\x01"))
        xr.send_msg(Message(b"x", word(0x7FFFFFFF) + word(0x80000001)))
        wait_for(lambda: stat(xr, "drops") == 2)


def test_raw_surveyor_passes_headers_through(purenng_inproc_url: str) -> None:
    with (
        purenng.Surveyor0(listen=purenng_inproc_url, raw=True, recv_timeout=LONG) as xs,
        purenng.Respondent0(dial=purenng_inproc_url, raw=True, recv_timeout=LONG) as xr,
    ):
        connected(xs, 1)
        hop, sid = word(77), word(0x80001234)
        xs.send_msg(Message(b"body", hop + sid))
        m = xr.recv_msg()
        assert m.bytes == b"body"
        assert bytes(m.header) == word(xr.pipes[0].id) + hop + sid
        xr.send_msg(Message(b"resp", m.header))
        back = xs.recv_msg()
        assert back.bytes == b"resp"
        assert bytes(back.header) == hop + sid  # backtrace up to the end bit
        # A raw surveyor has no deadline and no survey state.
        with pytest.raises(TryAgain):
            xs.recv(block=False)


def test_raw_device_chain(purenng_inproc_url: str) -> None:
    front, back = purenng_inproc_url + "-front", purenng_inproc_url + "-back"
    with (
        purenng.Surveyor0(listen=front, survey_time=LONG, recv_timeout=LONG) as s,
        purenng.Respondent0(dial=front, raw=True, recv_timeout=LONG) as xr,
        purenng.Surveyor0(listen=back, raw=True, recv_timeout=LONG) as xs,
    ):
        rs = [purenng.Respondent0(dial=back, recv_timeout=LONG) for _ in range(2)]
        try:
            connected(s, 1)
            connected(xs, 2)
            s.send(b"through a device")
            m = xr.recv_msg()
            m.pipe = None
            xs.send_msg(m)  # forward: the pipe id becomes one backtrace hop
            for i, r in enumerate(rs):
                r.send(r.recv() + b" %d" % i)
            for _ in range(2):
                resp = xs.recv_msg()
                resp.pipe = None
                xr.send_msg(resp)  # backward: routed by the popped hop
            got = sorted([s.recv(), s.recv()])
            assert got == [b"through a device 0", b"through a device 1"]
        finally:
            for r in rs:
                r.close()


# ------------------------------------------------------------------ memory


@pytest.mark.slow
def test_memory_flat_over_100000_stale_responses(purenng_inproc_url: str) -> None:
    total = 100_000
    with (
        purenng.Surveyor0(listen=purenng_inproc_url, survey_time=0.05, recv_timeout=LONG) as s,
        purenng.Respondent0(dial=purenng_inproc_url, raw=True, recv_timeout=LONG) as xr,
    ):
        connected(s, 1)
        s.send(b"expires at once")
        old = xr.recv_msg()  # header: pipe id + the survey id
        with pytest.raises(Timeout):
            s.recv()
        header = bytes(old.header)

        def flood(n: int) -> None:
            for _ in range(n):
                xr.send_msg(Message(b"stale", header))

        flood(5_000)  # warm up caches and buffers before measuring
        wait_for(lambda: stat(s, "stale_responses") == 5_000)
        tracemalloc.start()
        try:
            before = tracemalloc.get_traced_memory()[0]
            flood(total - 5_000)
            wait_for(lambda: stat(s, "stale_responses") == total, timeout=50.0)
            after = tracemalloc.get_traced_memory()[0]
        finally:
            tracemalloc.stop()
        assert after - before < 2 * 1024 * 1024, f"grew by {after - before} bytes"
        with pytest.raises(BadState):
            s.recv()
