"""Real peer processes that die: kill -9 mid-message, and a REP server restarted.

* **kill -9 mid-message.**  A purenng Pull listener has two pushers: a
  child process (purenng or pynng) sending 1 MiB messages back to back, so
  that it is almost always in the middle of one, and a long-lived purenng
  pusher in this process sending small numbered messages.  The child is
  killed with SIGKILL; purenng drops its pipe (the half-received message is
  discarded) and keeps serving the other: every small number arrives once,
  in order, before and after the kill, and a fresh peer still gets through.
* **Listener restart with dialer backoff.**  A REP server process
  (purenng, pynng, nng) on a fixed port is killed and started again on the
  same port.  A purenng REQ dialing it with exponential backoff
  (``reconnect_time_min`` 50 ms, ``reconnect_time_max`` 400 ms) gets an
  answer to the request it sent while the server was gone, and to the one
  the server held (``reply_delay``) when it was killed: REQ resends on the
  new pipe.  The same with four REQ contexts in flight at once.
"""

from __future__ import annotations

import asyncio
import functools
import threading
import time
from typing import Any

import pytest

import purenng
from interop.peers import free_tcp_port

from .conftest import LIBS, FaultPeer, T, in_thread, record
from .faultpeer import check, make

pytestmark = [pytest.mark.interop, pytest.mark.usefixtures("purenng_leak_check")]

BIG = 1 << 20


@pytest.mark.parametrize("lib", ["purenng", "pynng"])
async def test_kill_9_mid_message(lib: str) -> None:
    async with (
        purenng.Pull0(recv_timeout=T, recv_max_size=4 * BIG) as pull,
        purenng.Push0(send_timeout=T) as steady,
    ):
        lst = await pull.alisten("tcp://127.0.0.1:0")
        await steady.adial(lst.url, block=True)
        stop = asyncio.Event()

        async def send_steady() -> int:
            i = 0
            while not stop.is_set():
                await steady.asend(make(i, 32))
                i += 1
                if i % 16 == 0:
                    await asyncio.sleep(0.001)
            return i

        sender = asyncio.ensure_future(send_steady())
        small = -1
        big = 0

        async def take(n_small: int) -> None:
            nonlocal small, big
            target = small + n_small
            while small < target:
                data = await pull.arecv()
                seq, ok = check(data)
                assert ok, f"damaged message (seq {seq}, {len(data)} bytes)"
                if len(data) > BIG:
                    big += 1
                    continue
                assert seq == small + 1, f"steady pipe: seq {seq} after {small}"
                small = seq

        try:
            with FaultPeer(lib, "push", dial=lst.url, count=0, sizes=[BIG]) as victim:
                async with asyncio.timeout(T):
                    while big < 3 or small < 50:
                        await take(1)
                assert len(pull.pipes) == 2
                victim.kill()
                async with asyncio.timeout(T):
                    while len(pull.pipes) != 1:
                        await take(1)
                await take(300)
        finally:
            stop.set()
            sent = await sender
        # Everything the steady pusher sent arrives, in order.
        while small < sent - 1:
            await take(1)
        s = pull.stats()
        assert s["pipes_removed"] >= 1
        record(messages=small + 1 + big, peers_killed=1)
        async with purenng.Push0(dial=lst.url, send_timeout=T) as fresh:
            await fresh.asend(make(0, 1))
            assert check(await pull.arecv()) == (0, True)


def _server(lib: str, port: int, **cfg: Any) -> FaultPeer:
    return FaultPeer(lib, "rep", listen=f"tcp://127.0.0.1:{port}", **cfg)


def _start_on_port(lib: str, port: int, **cfg: Any) -> FaultPeer:
    """Start a server on ``port``; a port still held for a moment is retried."""
    deadline = time.monotonic() + T
    while True:
        try:
            return _server(lib, port, **cfg)
        except AssertionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


@pytest.mark.parametrize("lib", LIBS)
def test_rep_server_restart(lib: str) -> None:
    port = free_tcp_port()
    with purenng.Req0(
        recv_timeout=3 * T,
        send_timeout=T,
        resend_time=0.5,
        reconnect_time_min=0.05,
        reconnect_time_max=0.4,
    ) as req:
        answered = 0
        server = _start_on_port(lib, port)
        try:
            req.dial(f"tcp://127.0.0.1:{port}", block=False)
            for i in range(5):
                req.send(make(i, 64))
                assert req.recv() == b"re:" + make(i, 64)
                answered += 1
            # 1. Killed between requests: the next one waits for the restart.
            server.kill()
            server.close()
            result: list[bytes] = []

            def ask() -> None:
                req.send(make(100, 64))
                result.append(req.recv())

            asker = threading.Thread(target=ask)
            asker.start()
            time.sleep(0.3)
            server = _start_on_port(lib, port)
            asker.join(3 * T)
            assert result == [b"re:" + make(100, 64)]
            answered += 1
            # 2. Killed holding a request: REQ resends it to the new server.
            server.close()
            server = _start_on_port(lib, port, reply_delay=5.0)
            asker = threading.Thread(target=lambda: result.append(_ask(req, 200)))
            asker.start()
            server.event("holding")
            server.kill()
            server.close()
            server = _start_on_port(lib, port)
            asker.join(3 * T)
            assert result[-1] == b"re:" + make(200, 64)
            answered += 1
        finally:
            server.close()
        record(messages=2 * answered, server_restarts=3)


def _ask(req: purenng.Socket, seq: int) -> bytes:
    req.send(make(seq, 64))
    return req.recv()


async def test_rep_restart_with_contexts() -> None:
    """Four REQ contexts in flight while the purenng server is killed and restarted."""
    port = free_tcp_port()
    async with purenng.Req0(
        recv_timeout=3 * T, resend_time=0.5, reconnect_time_min=0.05, reconnect_time_max=0.4
    ) as req:
        server = await in_thread(
            functools.partial(_start_on_port, "purenng", port, reply_delay=5.0)
        )
        try:
            await req.adial(f"tcp://127.0.0.1:{port}", block=False)

            async def ask(k: int) -> bytes:
                ctx = req.new_context()
                try:
                    await ctx.asend(make(k, 64))
                    got: bytes = await ctx.arecv()
                    return got
                finally:
                    ctx.close()

            asks = [asyncio.ensure_future(ask(k)) for k in range(4)]
            await server.aevent("holding")
            server.kill()
            server.close()
            server = await in_thread(_start_on_port, "purenng", port)
            replies = await asyncio.wait_for(asyncio.gather(*asks), 3 * T)
            assert replies == [b"re:" + make(k, 64) for k in range(4)]
        finally:
            server.close()
        record(messages=8, server_restarts=1)
