"""The blocking send path under many threads: the hand-off credit stays exact.

User threads and the loop thread share one piece of send state, the credit
of :class:`purenng.core.channel.Channel`.  These tests drive a channel with
a fake protocol that fills up and drains in small steps, from many threads
at once with a tiny thread switch interval, and check what the invariant
promises: every message arrives once, in each thread's order, and the
hand-off deque never holds more than ``SEND_WINDOW`` messages, even though
the protocol keeps revoking credit while threads spend it.
"""

from __future__ import annotations

import asyncio
import sys
import threading
from collections import deque
from typing import TYPE_CHECKING

import pytest

from purenng.core.channel import SEND_WINDOW, Channel
from purenng.core.message import Message

if TYPE_CHECKING:
    from collections.abc import Iterator

THREADS = 8
PER_THREAD = 3000
CAPACITY = 16  # the fake protocol's room between two drains


class FullingProtocol:
    """Takes messages while it has room; a loop callback drains it a little at a time."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.room = CAPACITY
        self.got: list[bytes] = []
        self.channel: Channel | None = None
        self.max_handoff = 0
        self.negative_credit = 0

    def try_send(self, msg: Message) -> bool:
        ch = self.channel
        assert ch is not None
        self.max_handoff = max(self.max_handoff, len(ch._handoff))
        if ch._credit < 0:
            self.negative_credit += 1
        if self.room <= 0:
            return False
        self.room -= 1
        self.got.append(bytes(msg.body))
        if self.room == 0:
            self.loop.call_soon(self.drain)
        return True

    def can_send(self) -> bool:
        return self.room > 0

    def drain(self) -> None:
        self.room = CAPACITY
        assert self.channel is not None
        self.channel.send_ready()


@pytest.fixture
def tiny_switch_interval() -> Iterator[None]:
    """Switch threads as often as CPython allows, so interleavings are many."""
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        yield
    finally:
        sys.setswitchinterval(old)


@pytest.fixture
def loop_thread() -> Iterator[asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    t = threading.Thread(target=loop.run_forever, name="channel-stress-loop", daemon=True)
    t.start()
    try:
        yield loop
    finally:
        loop.call_soon_threadsafe(loop.stop)
        t.join(10)
        loop.close()


def run_senders(ch: Channel) -> None:
    errors: deque[BaseException] = deque()

    def sender(k: int) -> None:
        try:
            for i in range(PER_THREAD):
                ch.send(Message(b"%d:%d" % (k, i)), 30.0)
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=sender, args=(k,)) for k in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not any(t.is_alive() for t in threads), "a sender hung"
    assert not errors, list(errors)


@pytest.mark.usefixtures("tiny_switch_interval")
def test_many_threads_lose_nothing_and_respect_the_window(
    loop_thread: asyncio.AbstractEventLoop,
) -> None:
    proto = FullingProtocol(loop_thread)
    ch = Channel(loop_thread, name="stress")
    ch.bind(proto.try_send, proto.can_send)
    proto.channel = ch
    # Grant the first credit on the loop, as a socket does once it is built.
    done = threading.Event()

    def grant() -> None:
        ch.send_ready()
        done.set()

    loop_thread.call_soon_threadsafe(grant)
    assert done.wait(10)

    run_senders(ch)

    settled = threading.Event()

    def check() -> None:
        if ch._handoff or ch._send_waiters:
            loop_thread.call_later(0.01, check)
        else:
            settled.set()

    loop_thread.call_soon_threadsafe(check)
    assert settled.wait(30), "messages stuck in the channel"

    assert len(proto.got) == THREADS * PER_THREAD
    assert len(set(proto.got)) == len(proto.got), "a message was delivered twice"
    per_thread: dict[bytes, list[int]] = {}
    for body in proto.got:
        k, i = body.split(b":")
        per_thread.setdefault(k, []).append(int(i))
    for k, seq in per_thread.items():
        assert seq == list(range(PER_THREAD)), f"thread {k!r}: out of order"
    assert proto.negative_credit == 0
    assert proto.max_handoff <= SEND_WINDOW, (
        f"{proto.max_handoff} messages waited in the hand-off deque, window {SEND_WINDOW}"
    )
