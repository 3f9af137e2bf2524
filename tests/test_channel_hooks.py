"""Channel hooks protocols use: recv_error, fail_receivers, check_send."""

from __future__ import annotations

import asyncio
import threading

import pytest

import purenng
from purenng.core.channel import Channel
from purenng.core.loop import background_loop
from purenng.core.message import Message


def _channel(loop: asyncio.AbstractEventLoop) -> Channel:
    ch = Channel(loop, name="test channel")
    ch.bind(lambda m: True, lambda: True)
    return ch


async def test_recv_error_raised_instead_of_waiting() -> None:
    ch = _channel(asyncio.get_running_loop())
    ch.recv_error = purenng.BadState("no request outstanding")
    with pytest.raises(purenng.BadState, match="no request"):
        await ch.arecv(timeout=5)
    # A queued message is still delivered first.
    ch.deliver(Message(b"x"))
    assert (await ch.arecv(timeout=5)).body == b"x"
    ch.recv_error = None
    with pytest.raises(purenng.Timeout):
        await ch.arecv(timeout=0.01)


async def test_fail_receivers_wakes_async_waiters_only_once() -> None:
    ch = _channel(asyncio.get_running_loop())
    waiter = asyncio.ensure_future(ch.arecv(timeout=5))
    await asyncio.sleep(0)
    assert ch.has_receiver
    ch.fail_receivers(purenng.Timeout("survey expired"))
    with pytest.raises(purenng.Timeout, match="survey expired"):
        await waiter
    # Later receives wait as usual.
    later = asyncio.ensure_future(ch.arecv(timeout=5))
    await asyncio.sleep(0)
    ch.deliver(Message(b"y"))
    assert (await later).body == b"y"


def test_fail_receivers_wakes_a_blocked_thread() -> None:
    loop = background_loop()
    ch = _channel(loop)
    result: list[BaseException] = []

    def reader() -> None:
        try:
            ch.recv(timeout=10)
        except BaseException as exc:
            result.append(exc)

    t = threading.Thread(target=reader)
    t.start()
    for _ in range(1000):
        if ch._thread_waiters:
            break
        threading.Event().wait(0.005)
    assert ch._thread_waiters == 1
    loop.call_soon_threadsafe(ch.fail_receivers, purenng.Timeout("expired"))
    t.join(5)
    assert not t.is_alive()
    assert len(result) == 1
    assert isinstance(result[0], purenng.Timeout)


def test_check_send_refuses_in_the_callers_thread() -> None:
    loop = background_loop()
    ch = _channel(loop)
    ch._credit = 10  # the batched path: without check_send nothing would refuse

    def check(msg: Message) -> None:
        if msg.header != b"ok":
            raise purenng.ProtocolError("bad header")

    ch.check_send = check
    with pytest.raises(purenng.ProtocolError):
        ch.send(Message(b"body", b"no"), timeout=1)
    assert not ch._handoff
    ch.send(Message(b"body", b"ok"), timeout=1)
    assert len(ch._handoff) <= 1
