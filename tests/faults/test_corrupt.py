"""Corrupt bytes on the wire: the receiver closes the pipe, the dialer reconnects.

SP has no checksum, so a flipped body byte is delivered as it is; what a
receiver can and must catch is a broken frame.  The proxy flips one chosen
byte of one connection (``limit=1``), and the tests check what follows:

* a length prefix whose top byte is flipped (a length far above
  ``recv_max_size``, or with reserved bits): purenng closes that pipe with
  ``MessageTooLarge``, counts it (``oversize``), and the peer's dialer
  reconnects; messages then flow again, still in order;
* the SP header of a new connection: purenng refuses the pipe (counted),
  the peer reconnects;
* a reply's length prefix on the way to a purenng REQ: the pipe is closed,
  purenng redials and resends, and every request is answered;
* a frame purenng sends to pynng, nng or purenng: the peer drops the pipe,
  purenng's dialer reconnects and keeps pushing;
* random flips at a seeded rate, purenng to purenng req/rep: every call
  returns (answer, detectably wrong answer, or Timeout: never a hang), and
  once the faults stop, the socket answers again.

After each: no hang (every wait is bounded), the socket still works (a
fresh peer exchanges a message), fds, threads and tasks back to baseline
(``purenng_leak_check``).  tcp only: the ipc framing is the same apart from
its type byte (see ``test_ipc_type_byte``).
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import tempfile
from typing import Any

import pytest

import purenng
from purenng.testing import FaultProxy

from .conftest import LIBS, FaultPeer, T, record
from .faultpeer import check, make

pytestmark = [pytest.mark.interop, pytest.mark.usefixtures("purenng_leak_check")]

BODY = 100
#: SP header, then frames of an 8-byte length and an 8+BODY-byte message.
HEADER = 8
FRAME = 8 + 8 + BODY


def length_offset(k: int, *, header_bytes: int = 0) -> int:
    """Stream offset of the top byte of frame ``k``'s length prefix (tcp)."""
    return HEADER + k * (FRAME + header_bytes)


class PipeWatch:
    """Records why every pipe of a socket closed."""

    def __init__(self, sock: purenng.Socket) -> None:
        self.errors: list[BaseException | None] = []
        sock.on_pipe_event(self._on, purenng.PipeEvent.REMOVE_POST)

    def _on(self, pipe: Any, event: Any) -> None:
        self.errors.append(getattr(pipe, "error", None))


async def fresh_exchange(pull: purenng.Socket, url: str) -> None:
    """A new purenng peer still gets a message through ``pull``."""
    async with purenng.Push0(dial=url, send_timeout=T) as push:
        await push.asend(b"fresh")
        async with asyncio.timeout(T):
            while True:
                got = await pull.arecv()
                if got == b"fresh":
                    return


async def recv_increasing(pull: purenng.Socket, n: int, after: int = -1) -> int:
    """Receive ``n`` messages whose numbers only increase; the last number."""
    last = after
    for _ in range(n):
        seq, ok = check(await pull.arecv())
        assert ok, f"message {seq} damaged"
        assert seq > last, f"seq {seq} after {last}: repeated or reordered"
        last = seq
    return last


@pytest.mark.parametrize("lib", LIBS)
async def test_corrupt_length_prefix_from_peer(lib: str) -> None:
    async with purenng.Pull0(recv_timeout=T) as pull:
        watch = PipeWatch(pull)
        lst = await pull.alisten("tcp://127.0.0.1:0")
        async with FaultProxy(lst.url, seed=1) as proxy:
            proxy.corrupt(offsets=[length_offset(5)], direction="up", limit=1)
            with FaultPeer(lib, "push", dial=proxy.url, count=0, sizes=[BODY]):
                # Frames 0..4 are whole; frame 5's length is garbage.
                for i in range(5):
                    seq, ok = check(await pull.arecv())
                    assert ok
                    assert seq == i
                last = await recv_increasing(pull, 30, after=4)
                assert last > 5
            st = proxy.stats()
            assert st.faults["corrupt"] == 1
            assert st.connections >= 2, "the peer did not reconnect"
            record(st, messages=35)
        assert pull.stats()["oversize"] == 1
        assert isinstance(watch.errors[0], purenng.MessageTooLarge)
        await fresh_exchange(pull, lst.url)


@pytest.mark.parametrize("lib", LIBS)
async def test_corrupt_sp_header_from_peer(lib: str) -> None:
    async with purenng.Pull0(recv_timeout=T) as pull:
        lst = await pull.alisten("tcp://127.0.0.1:0")
        async with FaultProxy(lst.url, seed=2) as proxy:
            # Byte 1 is the "S" of "\0SP\0": not an SP peer at all.
            proxy.corrupt(offsets=[1], direction="up", limit=1)
            with FaultPeer(lib, "push", dial=proxy.url, count=0, sizes=[BODY]):
                await recv_increasing(pull, 20)
            st = proxy.stats()
            assert st.faults["corrupt"] == 1
            assert st.connections >= 2
            record(st, messages=20)
        s = pull.stats()
        assert s["handshake_failures"] + s["protocol_mismatch"] == 1, s
        await fresh_exchange(pull, lst.url)


@pytest.mark.parametrize("lib", LIBS)
def test_corrupt_reply_to_purenng_req(lib: str) -> None:
    """A broken reply frame: purenng REQ drops the pipe, redials, resends; all answered."""
    n = 12
    with (
        FaultPeer(lib, "rep", listen="tcp://127.0.0.1:0") as peer,
        FaultProxy(peer.url, seed=3) as proxy,
        purenng.Req0(recv_timeout=T, send_timeout=T, reconnect_time_min=0.05) as req,
    ):
        watch = PipeWatch(req)
        # Replies carry a 4-byte request id and "re:" before the request.
        proxy.corrupt(offsets=[length_offset(4, header_bytes=4 + 3)], direction="down", limit=1)
        req.dial(proxy.url, block=False)
        for i in range(n):
            q = make(i, BODY)
            req.send(q)
            assert req.recv() == b"re:" + q, f"request {i}"
        st = proxy.stats()
        assert st.faults["corrupt"] == 1
        assert st.connections >= 2
        record(st, messages=2 * n)
        assert req.stats()["oversize"] == 1
        assert isinstance(watch.errors[0], purenng.MessageTooLarge)


@pytest.mark.parametrize("lib", LIBS)
async def test_corrupt_frame_purenng_sends(lib: str) -> None:
    """The peer drops the pipe on a broken frame; purenng's dialer reconnects."""
    with FaultPeer(
        lib,
        "pull",
        listen="tcp://127.0.0.1:0",
        count=30,
        gaps=True,
        recv_max_size=1 << 20,
        loop="asyncio",
    ) as peer:
        async with (
            FaultProxy(peer.url, seed=4) as proxy,
            purenng.Push0(send_timeout=T, reconnect_time_min=0.05) as push,
        ):
            proxy.corrupt(offsets=[length_offset(5)], direction="up", limit=1)
            await push.adial(proxy.url, block=False)
            done = asyncio.ensure_future(peer.adone(3 * T))
            await push_until(push, done)
            assert (await done)["received"] == 30
            st = proxy.stats()
            assert st.faults["corrupt"] == 1
            assert st.connections >= 2, "purenng did not reconnect"
            record(st, messages=30)


@pytest.mark.parametrize("seed", [11, 12])
async def test_random_corruption_reqrep(seed: int) -> None:
    """Random flips both ways: every call returns, wrong answers are at most the flips."""
    n = 60
    async with (
        purenng.Rep0() as rep,
        purenng.Req0(recv_timeout=1.0, resend_time=0.2, reconnect_time_min=0.05) as req,
    ):
        lst = await rep.alisten("tcp://127.0.0.1:0")

        async def serve() -> None:
            while True:
                q = await rep.arecv()
                await rep.asend(b"re:" + q)

        server = asyncio.ensure_future(serve())
        try:
            async with FaultProxy(lst.url, seed=seed) as proxy:
                proxy.corrupt(rate=0.002, limit=8)
                await req.adial(proxy.url, block=False)
                ok = wrong = timeouts = 0
                for i in range(n):
                    q = make(i, 200)
                    await req.asend(q)
                    try:
                        a = await req.arecv()
                    except purenng.Timeout:
                        timeouts += 1
                        continue
                    if a == b"re:" + q:
                        ok += 1
                    else:
                        wrong += 1
                flips = proxy.stats().faults["corrupt"]
                assert ok + wrong + timeouts == n
                assert wrong <= flips
                # The faults stop; a stuck frame is cut; the socket answers again.
                proxy.clear()
                proxy.cut()
                await req.asend(b"again")
                assert await asyncio.wait_for(req.arecv(), T) == b"re:again"
                record(proxy.stats(), messages=2 * n, corrupt_wrong_answers=wrong)
        finally:
            server.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await server


async def push_until(push: purenng.Socket, done: asyncio.Future[Any]) -> int:
    """Push numbered messages until ``done``; messages lost with a broken pipe are resent
    as new numbers, so the receiver sees increasing numbers with gaps."""
    i = 0
    while not done.done():
        with contextlib.suppress(purenng.Timeout):
            await asyncio.wait_for(push.asend(make(i, BODY)), 0.5)
        i += 1
        if i % 8 == 0:
            await asyncio.sleep(0.005)
    return i


async def test_ipc_type_byte() -> None:
    d = tempfile.mkdtemp(prefix="pnf-", dir="/tmp")
    try:
        async with purenng.Pull0(recv_timeout=T) as pull:
            watch = PipeWatch(pull)
            lst = await pull.alisten(f"ipc://{d}/t.sock")
            async with (
                FaultProxy(lst.url, listen=f"ipc://{d}/p.sock", seed=5) as proxy,
                purenng.Push0(send_timeout=T, reconnect_time_min=0.05) as push,
            ):
                # ipc frames: a type byte, an 8-byte length, the message.
                proxy.corrupt(offsets=[8 + 3 * (1 + 8 + 8 + BODY)], direction="up", limit=1)
                await push.adial(proxy.url, block=False)
                got: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
                sender = asyncio.ensure_future(push_until(push, got))
                try:
                    assert await recv_increasing(pull, 3) == 2
                    await recv_increasing(pull, 20, after=2)
                finally:
                    got.set_result(None)
                    await sender
                st = proxy.stats()
                assert st.connections >= 2
                record(st, messages=23)
            assert isinstance(watch.errors[0], purenng.ProtocolError)
            s = pull.stats()
            assert s["protocol_errors"] + s["oversize"] >= 1, s
    finally:
        shutil.rmtree(d, ignore_errors=True)
