"""Half-open peers: the proxy stops forwarding without closing anything.

A stalled path is invisible to TCP: no FIN, no RST, the connection stays
up, nothing arrives.  Only a timer of the receiver can notice:

* ``recv_idle_timeout`` (socket or endpoint option): a pipe that has
  received nothing for that long is closed with ``Timeout``, counted
  (``idle_timeouts``); the dialer reconnects and REQ resends, so the
  request made during the stall is answered once the path is back.  It
  needs traffic or a peer that sends regularly: an idle healthy pipe is
  closed as well (checked too, so that nobody relies on the opposite).
* ws's ``ws_ping_interval``: the pipe pings its peer; a ping left
  unanswered for an interval closes the pipe with ``Timeout``.  A healthy
  idle ws pipe stays up (the pongs count as traffic).

purenng on both sides, over tcp and ws through the proxy; the REQ side is
the one that must notice (it dials and waits for a reply).
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import pytest

import purenng
from purenng.testing import FaultProxy

from .conftest import T, record

pytestmark = pytest.mark.usefixtures("purenng_leak_check")


class Removed:
    """Collects the error of every pipe a socket removes."""

    def __init__(self, sock: purenng.Socket) -> None:
        self.errors: list[BaseException | None] = []
        self.event = asyncio.Event()
        sock.on_pipe_event(self._on, purenng.PipeEvent.REMOVE_POST)

    def _on(self, pipe: Any, event: Any) -> None:
        self.errors.append(getattr(pipe, "error", None))
        self.event.set()

    async def wait(self, timeout: float = T) -> BaseException | None:
        await asyncio.wait_for(self.event.wait(), timeout)
        return self.errors[0]


@contextlib.asynccontextmanager
async def echo_server(url: str, **options: Any) -> Any:
    async with purenng.Rep0(**options) as rep:
        lst = await rep.alisten(url)

        async def serve() -> None:
            while True:
                q = await rep.arecv()
                await rep.asend(b"re:" + q)

        task = asyncio.ensure_future(serve())
        try:
            yield lst
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def _stalled_request_is_answered(
    req: purenng.Socket, proxy: FaultProxy, removed: Removed
) -> BaseException | None:
    await req.asend(b"one")
    assert await req.arecv() == b"re:one"
    proxy.stall()
    await req.asend(b"two")
    err = await removed.wait()
    proxy.clear()
    assert await asyncio.wait_for(req.arecv(), T) == b"re:two"
    return err


async def test_recv_idle_timeout_closes_a_half_open_pipe() -> None:
    async with (
        echo_server("tcp://127.0.0.1:0") as lst,
        FaultProxy(lst.url) as proxy,
        purenng.Req0(recv_timeout=T, resend_time=0.3, reconnect_time_min=0.05) as req,
    ):
        removed = Removed(req)
        await req.adial(proxy.url, block=True, recv_idle_timeout=0.4)
        err = await _stalled_request_is_answered(req, proxy, removed)
        assert isinstance(err, purenng.Timeout), err
        assert req.stats()["idle_timeouts"] >= 1
        st = proxy.stats()
        assert st.connections >= 2
        assert st.faults["stall"] >= 2
        record(st, messages=4, half_open_pipes_closed=1)


async def test_recv_idle_timeout_also_closes_a_quiet_healthy_pipe() -> None:
    """Documented: the option needs traffic; a silent healthy pipe goes too, then redials."""
    async with (
        echo_server("tcp://127.0.0.1:0") as lst,
        purenng.Req0(recv_timeout=T, reconnect_time_min=0.05, recv_idle_timeout=0.2) as req,
    ):
        removed = Removed(req)
        await req.adial(lst.url, block=True)
        assert isinstance(await removed.wait(), purenng.Timeout)
        await req.asend(b"after")
        assert await req.arecv() == b"re:after"


async def test_recv_idle_timeout_spares_a_slow_large_message() -> None:
    async with (
        purenng.Pull0(recv_timeout=T) as pull,
        purenng.Push0(send_timeout=T) as push,
    ):
        lst = await pull.alisten("tcp://127.0.0.1:0", recv_idle_timeout=0.3)
        async with FaultProxy(lst.url) as proxy:
            await push.adial(proxy.url, block=True)
            await push.asend(b"first")
            assert await pull.arecv() == b"first"
            # 600 KiB in 64 KiB pieces, 0.1 s apart: ~1 s of steady bytes.
            proxy.split(64 * 1024, "up", pause=0.1)
            body = bytes(600 * 1024)
            removed = Removed(pull)
            await push.asend(body)
            got = asyncio.ensure_future(pull.arecv())
            gone = asyncio.ensure_future(removed.event.wait())
            await asyncio.wait([got, gone], timeout=T, return_when=asyncio.FIRST_COMPLETED)
            gone.cancel()
            if not got.done():
                got.cancel()
            assert removed.errors == [], f"pipe closed mid-message: {removed.errors}"
            assert got.result() == body
            record(proxy.stats(), messages=2)


async def test_ws_ping_interval_closes_a_half_open_pipe() -> None:
    async with (
        echo_server("ws://127.0.0.1:0/sp") as lst,
        FaultProxy(("127.0.0.1", lst.port)) as proxy,
        purenng.Req0(recv_timeout=T, resend_time=0.3, reconnect_time_min=0.05) as req,
    ):
        removed = Removed(req)
        await req.adial(f"ws://127.0.0.1:{proxy.port}/sp", block=True, ws_ping_interval=0.2)
        # Idle but healthy: pongs come back, the pipe stays.
        await asyncio.sleep(0.7)
        assert removed.errors == []
        err = await _stalled_request_is_answered(req, proxy, removed)
        assert isinstance(err, purenng.Timeout), err
        assert "pong" in str(err)
        st = proxy.stats()
        assert st.connections >= 2
        record(st, messages=4, half_open_pipes_closed=1)
