"""The application side of a pipe: pipe.send / pipe.asend."""

from __future__ import annotations

import asyncio
import time

import pytest

import purenng
from support.waiting import wait_for


def test_pipe_send_reaches_exactly_that_peer_on_polyamorous_pair1() -> None:
    with purenng.Pair1(polyamorous=True, listen="tcp://127.0.0.1:0", recv_timeout=5) as hub:
        url = hub.listeners[0].url
        a = purenng.Pair1(dial=url, recv_timeout=0.3)
        b = purenng.Pair1(dial=url, recv_timeout=0.3)
        with a, b:
            a.send(b"from a")
            b.send(b"from b")
            got = {hub.recv_msg().bytes: None for _ in range(2)}
            assert set(got) == {b"from a", b"from b"}
            wait_for(lambda: len(hub.pipes) == 2)
            pipe_of_a = next(p for p in hub.pipes if p.remote_address == a.pipes[0].local_address)
            pipe_of_a.send(b"only for a")
            assert a.recv() == b"only for a"
            with pytest.raises(purenng.Timeout):
                b.recv()


async def test_pipe_asend_and_closed_pipe() -> None:
    async with purenng.Pair0(listen="tcp://127.0.0.1:0", recv_timeout=5) as a:
        async with purenng.Pair0(dial=a.listeners[0].url, recv_timeout=5) as b:
            await b.asend(b"hello")
            msg = await a.arecv_msg()
            assert msg.pipe is not None
            await msg.pipe.asend(b"back")
            assert await b.arecv() == b"back"
            pipe = msg.pipe
        deadline = time.monotonic() + 5
        while not pipe.closed:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.01)
        with pytest.raises(purenng.Closed):
            await pipe.asend(b"too late")
