"""Tiny-piece writes and delays between purenng and purenng, pynng, nng.

The fault proxy sits in front of the listener and, in both directions,
rewrites every chunk as 1..7-byte pieces (13 on the way back) and holds
each back 2 ms.  The byte stream is unchanged; only where every read ends
moves, so the SP handshake, the 64-bit length prefixes and the bodies are
cut at every possible place.  Through it:

* push/pull both ways (purenng pushes to the peer, the peer pushes to
  purenng): every numbered message arrives once, intact, in order;
* req/rep both ways: every request is answered with its own reply;

with purenng dialing (the peer listens) and listening (the peer dials), over
tcp for every library, and over ipc (the proxy listens on a unix socket and
forwards to one) for purenng and pynng peers.

Loops: the push/pull tests use the async API on the test's loop (standard
asyncio, the proxy on the same loop); the req/rep tests use the blocking
API on purenng's background loop (uvloop when installed, the proxy on its
own thread).  purenng peers in child processes run the blocking API, on the
standard loop for push/pull and on the default (uvloop) for req/rep.
"""

from __future__ import annotations

import shutil
import tempfile
from typing import TYPE_CHECKING

import pytest

import purenng
from purenng.testing import FaultProxy

from .conftest import LIBS, FaultPeer, T, record
from .faultpeer import check, make

if TYPE_CHECKING:
    from collections.abc import Iterator

pytestmark = [pytest.mark.interop, pytest.mark.usefixtures("purenng_leak_check")]

#: Message bodies cycled through (the 8-byte sequence number comes first).
SIZES = [0, 1, 7, 8, 63, 300, 1500, 9000]
N = 40
ROLES = ("dial", "listen")


def _faults(proxy: FaultProxy) -> None:
    proxy.split(7, "up")
    proxy.split(13, "down")
    proxy.delay(0.002)


def _cells() -> list[object]:
    cells: list[object] = [
        pytest.param("tcp", lib, role, id=f"tcp-{lib}-purenng_{role}s")
        for lib in LIBS
        for role in ROLES
    ]
    cells += [
        pytest.param("ipc", lib, role, id=f"ipc-{lib}-purenng_{role}s")
        for lib in ("purenng", "pynng")
        for role in ROLES
    ]
    return cells


def _listen_url(transport: str, tmp: str, name: str) -> str:
    return "tcp://127.0.0.1:0" if transport == "tcp" else f"ipc://{tmp}/{name}.sock"


@pytest.fixture
def ipc_dir() -> Iterator[str]:
    """A short directory for ipc paths (``sun_path`` is 108 bytes), one per test."""
    d = tempfile.mkdtemp(prefix="pnf-", dir="/tmp")
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.mark.parametrize(("transport", "lib", "role"), _cells())
async def test_push_to_peer(transport: str, lib: str, role: str, ipc_dir: str) -> None:
    """purenng pushes N numbered messages; the peer pulls and checks them."""
    async with purenng.Push0(send_timeout=T, reconnect_time_min=0.05) as push:
        if role == "listen":
            lst = await push.alisten(_listen_url(transport, ipc_dir, "t"))
            async with FaultProxy(lst.url, listen=_proxy_url(transport, ipc_dir)) as proxy:
                _faults(proxy)
                with FaultPeer(lib, "pull", dial=proxy.url, count=N, loop="asyncio") as peer:
                    for i in range(N):
                        await push.asend(make(i, SIZES[i % len(SIZES)]))
                    assert (await peer.adone())["received"] == N
                record(proxy.stats(), messages=N)
        else:
            listen = _listen_url(transport, ipc_dir, "peer")
            with FaultPeer(lib, "pull", listen=listen, count=N, loop="asyncio") as peer:
                async with FaultProxy(peer.url, listen=_proxy_url(transport, ipc_dir)) as proxy:
                    _faults(proxy)
                    await push.adial(proxy.url, block=False)
                    for i in range(N):
                        await push.asend(make(i, SIZES[i % len(SIZES)]))
                    assert (await peer.adone())["received"] == N
                    record(proxy.stats(), messages=N)


@pytest.mark.parametrize(("transport", "lib", "role"), _cells())
async def test_pull_from_peer(transport: str, lib: str, role: str, ipc_dir: str) -> None:
    """The peer pushes N numbered messages; purenng pulls: all, intact, in order."""
    async with purenng.Pull0(recv_timeout=T, reconnect_time_min=0.05) as pull:
        if role == "listen":
            lst = await pull.alisten(_listen_url(transport, ipc_dir, "t"))
            async with FaultProxy(lst.url, listen=_proxy_url(transport, ipc_dir)) as proxy:
                _faults(proxy)
                with FaultPeer(lib, "push", dial=proxy.url, count=N, sizes=SIZES) as peer:
                    await _pull_all(pull)
                    await peer.adone()
                record(proxy.stats(), messages=N)
        else:
            listen = _listen_url(transport, ipc_dir, "peer")
            with FaultPeer(lib, "push", listen=listen, count=N, sizes=SIZES) as peer:
                async with FaultProxy(peer.url, listen=_proxy_url(transport, ipc_dir)) as proxy:
                    _faults(proxy)
                    await pull.adial(proxy.url, block=False)
                    await _pull_all(pull)
                    await peer.adone()
                    record(proxy.stats(), messages=N)


async def _pull_all(pull: purenng.Socket) -> None:
    for i in range(N):
        seq, ok = check(await pull.arecv())
        assert ok, f"message {i} (seq {seq}) damaged"
        assert seq == i


@pytest.mark.parametrize(("transport", "lib", "role"), _cells())
def test_requests_to_peer(transport: str, lib: str, role: str, ipc_dir: str) -> None:
    """purenng REQ (blocking API) asks N questions; the peer REP answers each."""
    with purenng.Req0(recv_timeout=T, send_timeout=T, reconnect_time_min=0.05) as req:
        if role == "listen":
            lst = req.listen(_listen_url(transport, ipc_dir, "t"))
            with FaultProxy(lst.url, listen=_proxy_url(transport, ipc_dir)) as proxy:
                _faults(proxy)
                with FaultPeer(lib, "rep", dial=proxy.url):
                    _ask_all(req)
                record(proxy.stats(), messages=2 * N)
        else:
            listen = _listen_url(transport, ipc_dir, "peer")
            with (
                FaultPeer(lib, "rep", listen=listen) as peer,
                FaultProxy(peer.url, listen=_proxy_url(transport, ipc_dir)) as proxy,
            ):
                _faults(proxy)
                req.dial(proxy.url, block=False)
                _ask_all(req)
                record(proxy.stats(), messages=2 * N)


def _ask_all(req: purenng.Socket) -> None:
    for i in range(N):
        q = make(i, SIZES[i % len(SIZES)])
        req.send(q)
        assert req.recv() == b"re:" + q, f"request {i}: wrong reply"


@pytest.mark.parametrize(("transport", "lib", "role"), _cells())
def test_requests_from_peer(transport: str, lib: str, role: str, ipc_dir: str) -> None:
    """The peer REQ asks N questions; purenng REP (blocking API) answers each."""
    with purenng.Rep0(recv_timeout=T, send_timeout=T, reconnect_time_min=0.05) as rep:
        if role == "listen":
            lst = rep.listen(_listen_url(transport, ipc_dir, "t"))
            with FaultProxy(lst.url, listen=_proxy_url(transport, ipc_dir)) as proxy:
                _faults(proxy)
                with FaultPeer(lib, "req", dial=proxy.url, count=N, sizes=SIZES) as peer:
                    _answer_all(rep)
                    assert peer.done()["answered"] == N
                record(proxy.stats(), messages=2 * N)
        else:
            listen = _listen_url(transport, ipc_dir, "peer")
            with (
                FaultPeer(lib, "req", listen=listen, count=N, sizes=SIZES) as peer,
                FaultProxy(peer.url, listen=_proxy_url(transport, ipc_dir)) as proxy,
            ):
                _faults(proxy)
                rep.dial(proxy.url, block=False)
                _answer_all(rep)
                assert peer.done()["answered"] == N
                record(proxy.stats(), messages=2 * N)


def _answer_all(rep: purenng.Socket) -> None:
    for i in range(N):
        q = rep.recv()
        seq, ok = check(q)
        assert ok, f"request {i} (seq {seq}) damaged"
        assert seq == i
        rep.send(b"re:" + q)


def _proxy_url(transport: str, ipc_dir: str) -> str:
    return "tcp://127.0.0.1:0" if transport == "tcp" else f"ipc://{ipc_dir}/proxy.sock"
