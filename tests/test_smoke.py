"""A first end-to-end check: PUSH to PULL over tcp, blocking and async."""

from __future__ import annotations

import purenng


def test_push_pull_tcp_blocking() -> None:
    with purenng.Pull0(listen="tcp://127.0.0.1:0", recv_timeout=5) as pull:
        push = purenng.Push0(dial=pull.listeners[0].url, send_timeout=5)
        with push:
            for i in range(100):
                push.send(b"%d" % i)
            assert [pull.recv() for _ in range(100)] == [b"%d" % i for i in range(100)]


async def test_pair0_tcp_async() -> None:
    async with purenng.Pair0(listen="tcp://127.0.0.1:0", recv_timeout=5) as a:
        url = a.listeners[0].url
        async with purenng.Pair0(dial=url, recv_timeout=5) as b:
            await b.asend(b"ping")
            assert await a.arecv() == b"ping"
            await a.asend(b"pong")
            assert await b.arecv() == b"pong"
