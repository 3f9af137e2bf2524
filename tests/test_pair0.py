"""PAIR v0: identity, exchange, one peer only, raw mode, back-pressure (wire-protocols.md §1.4)."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

import pytest

import purenng
from purenng import Message
from purenng.core.errors import Timeout, TryAgain
from purenng.protocols.pair0 import Pair0Protocol
from support.waiting import wait_for

if TYPE_CHECKING:
    from collections.abc import Iterator

LONG = 5.0  # only to stop hangs


@pytest.fixture
def a() -> Iterator[purenng.Socket]:
    with purenng.Pair0(listen="tcp://127.0.0.1:0", recv_timeout=LONG, send_timeout=LONG) as s:
        yield s


def test_identity() -> None:
    assert (Pair0Protocol.self_id, Pair0Protocol.peer_id) == (0x10, 0x10)
    assert (Pair0Protocol.self_name, Pair0Protocol.peer_name) == ("pair", "pair")
    with purenng.Pair0() as s:
        assert s.protocol_cls is Pair0Protocol
        info = s.protocol_info
        assert (info.self_id, info.peer_id, info.self_name, info.peer_name) == (
            0x10,
            0x10,
            "pair",
            "pair",
        )


def test_cooked_exchange_both_ways(a: purenng.Socket) -> None:
    with purenng.Pair0(dial=a.listeners[0].url, recv_timeout=LONG, send_timeout=LONG) as b:
        for i in range(20):
            b.send(b"ping %d" % i)
            msg = a.recv_msg()
            assert (msg.bytes, bytes(msg.header)) == (b"ping %d" % i, b"")
            assert msg.pipe is not None
            a.send(b"pong %d" % i)
            assert b.recv() == b"pong %d" % i


def test_zero_length_both_ways(a: purenng.Socket) -> None:
    with purenng.Pair0(dial=a.listeners[0].url, recv_timeout=LONG, send_timeout=LONG) as b:
        b.send(b"")
        assert a.recv() == b""
        a.send(b"")
        assert b.recv() == b""
        b.send(b"after")
        assert a.recv() == b"after"


def test_raw_sends_header_then_body(a: purenng.Socket) -> None:
    """Raw and cooked are the same on the wire: a raw header is just leading bytes."""
    with purenng.Pair0(
        raw=True, dial=a.listeners[0].url, recv_timeout=LONG, send_timeout=LONG
    ) as r:
        r.send_msg(Message(b"body", header=b"HD"))
        assert a.recv() == b"HDbody"
        a.send(b"plain")
        msg = r.recv_msg()
        assert (msg.bytes, bytes(msg.header)) == (b"plain", b"")


def test_second_peer_refused_first_keeps_working(a: purenng.Socket) -> None:
    url = a.listeners[0].url
    with purenng.Pair0(dial=url, recv_timeout=LONG, send_timeout=LONG) as b:
        wait_for(lambda: len(a.pipes) == 1)
        first = a.pipes[0].id
        with purenng.Pair0(dial=url) as c:
            wait_for(lambda: a.stats().get("pipes_busy", 0) >= 1)
            assert a.stats()["pipes_rejected"] >= 1
            assert [p.id for p in a.pipes] == [first]
            b.send(b"still here")
            msg = a.recv_msg()
            assert msg.bytes == b"still here"
            assert msg.pipe is not None
            assert msg.pipe.id == first
            a.send(b"to b")
            assert b.recv() == b"to b"
            assert all(p.closed for p in c.pipes)


def test_send_waits_for_a_peer() -> None:
    with purenng.Pair0(send_timeout=0.2) as s:
        with pytest.raises(TryAgain):
            s.send(b"x", block=False)
        with pytest.raises(Timeout):
            s.send(b"x")


def test_back_pressure_blocks_sender_and_loses_nothing() -> None:
    """A receiver that does not read stops the sender; once it reads, all arrives in order.

    The receiver holds one message in its queue, then stops reading its
    pipe; TCP and the sender's write buffer fill up; then send waits and,
    with send_timeout, raises Timeout.  Nothing accepted is lost, and the
    message that timed out is not sent.
    """
    body = b"\x00" * (64 * 1024)
    with (
        purenng.Pair0(listen="tcp://127.0.0.1:0", recv_buffer=1, recv_timeout=LONG) as rx,
        purenng.Pair0(dial=rx.listeners[0].url, send_timeout=0.3) as tx,
    ):
        wait_for(lambda: len(tx.pipes) == 1)
        sent = 0
        with pytest.raises(Timeout):  # noqa: PT012 - the loop is what fills the pipe
            while sent < 1500:
                tx.send(sent.to_bytes(4, "big") + body)
                sent += 1
        assert 0 < sent < 1500
        with pytest.raises(TryAgain):
            tx.send(b"no room", block=False)

        # A sender with no timeout now waits until the receiver reads.
        tx.send_timeout = None
        done = threading.Event()
        errors: list[BaseException] = []

        def blocked_sender() -> None:
            try:
                tx.send(b"last")
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)
            finally:
                done.set()

        t = threading.Thread(target=blocked_sender)
        t.start()
        try:
            got = [int.from_bytes(rx.recv()[:4], "big") for _ in range(sent)]
            assert got == list(range(sent))
            assert rx.recv() == b"last"
            assert done.wait(LONG)
        finally:
            t.join(LONG)
        assert not errors
        rx.recv_timeout = 0.2
        with pytest.raises(Timeout):
            rx.recv()
