"""REQ/REP against real NNG (pynng = NNG 1.11, nng = NNG 2.0-dev), nngcat and nanocat.

* Socket-level exchanges both ways (NNG asks, purenng answers and the
  reverse), with purenng dialing and listening, over tcp and ipc.
* Contexts: an NNG requester with several contexts against purenng REP
  contexts, and purenng REQ contexts against NNG REP contexts, many requests
  in flight at once, every reply matched to its request.
* Raw mode: a purenng device (raw REP in front, raw REQ behind) between an
  NNG requester and an NNG replier, which only works if the raw headers are
  exactly NNG's (pipe id pushed on the way in, popped on the way out).
* nngcat and nanocat as requester (one request, prints the reply) and as
  replier (``--data`` answers every request).

The NNG side runs :data:`PEER_SCRIPT` in a child process (see
``nngpeer.py`` for why a child): it performs a whole scripted conversation
and prints one JSON line with what it saw, so the host never reads a
half-finished exchange.  Peers that listen get a fixed address (tcp port
picked in advance, ipc path in a short temporary directory); purenng then
dials in the background with a 50 ms redial, and its requests wait for the
pipe (back-pressure), so nothing sleeps.  A replier peer, once it has served
its quota, waits for its requesters to hang up before closing, so no reply
is lost in a closing socket.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import threading
from typing import TYPE_CHECKING, Any

import pytest

import purenng

from .peers import Addresses, T, closing_all, require_peer

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

pytestmark = pytest.mark.interop

LIBS = ("pynng", "nng")
TRANSPORTS = ("tcp", "ipc")
ROLES = ("dial", "listen")
TOOLS = ("nngcat", "nanocat")

PEER_SCRIPT = r'''
"""An NNG REQ or REP peer: one scripted conversation, one JSON line of results."""
import json, os, sys, threading, time

cfg = json.loads(sys.argv[1])
lib, role, n, k, timeout = cfg["lib"], cfg["role"], cfg["n"], cfg["contexts"], cfg["timeout"]
watchdog = threading.Timer(4 * timeout, os._exit, (3,))
watchdog.daemon = True
watchdog.start()
deadline = time.monotonic() + timeout
# REP contexts poll with a short timeout so that they notice the quota is met.
ms = 200 if (role == "rep" and k) else int(timeout * 1000)

if lib == "pynng":
    import pynng
    sock = (pynng.Req0 if role == "req" else pynng.Rep0)(recv_timeout=ms, send_timeout=ms)
    if "listen" in cfg:
        sock.listen(cfg["listen"])
    else:
        sock.dial(cfg["dial"], block=True)
    new_ctx = sock.new_context
    recv = lambda o: bytes(o.recv())
else:
    import nng
    sock = nng.ReqSocket() if role == "req" else nng.RepSocket()
    sock.recv_timeout = ms
    sock.send_timeout = ms
    if "listen" in cfg:
        sock.add_listener(cfg["listen"]).start()
    else:
        sock.add_dialer(cfg["dial"]).start(block=True)
    new_ctx = sock.open_context
    recv = lambda o: o.recv().to_bytes()

objs = [new_ctx() for _ in range(k)] if k else [sock]
result = {}
lock = threading.Lock()
if role == "req":
    replies = result["replies"] = {}
    def work(o, todo):
        for j in todo:
            o.send(b"req %d" % j)
            got = recv(o)
            with lock:
                replies[str(j)] = got.hex()
    threads = [threading.Thread(target=work, args=(o, range(i, n, len(objs))))
               for i, o in enumerate(objs)]
else:
    served = result["served"] = []
    def work(o, todo):
        while time.monotonic() < deadline:
            with lock:
                if len(served) >= n:
                    return
            try:
                req = recv(o)
            except Exception:
                continue  # a poll timeout
            o.send(b"nng:" + req)
            with lock:
                served.append(req.hex())
    threads = [threading.Thread(target=work, args=(o, None)) for o in objs]
for t in threads:
    t.start()
for t in threads:
    t.join(timeout)
if role == "rep":
    while sock.pipes and time.monotonic() < deadline:
        time.sleep(0.01)  # wait for the requesters to hang up
sock.close()
print(json.dumps(result), flush=True)
'''


class ScriptPeer:
    """One run of :data:`PEER_SCRIPT` in a child process."""

    def __init__(self, **cfg: Any) -> None:
        cfg.setdefault("timeout", T)
        self.proc = subprocess.Popen(
            [sys.executable, "-c", PEER_SCRIPT, json.dumps(cfg)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )

    def result(self) -> dict[str, Any]:
        """Wait for the conversation to end; what the peer saw."""
        try:
            out, err = self.proc.communicate(timeout=2 * T)
        except subprocess.TimeoutExpired:
            self.close()
            raise AssertionError("the NNG peer did not finish") from None
        assert self.proc.returncode == 0, err.decode(errors="replace")[-2000:]
        got: dict[str, Any] = json.loads(out)
        return got

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.communicate(timeout=T)


@pytest.fixture
def nng_peer() -> Iterator[Callable[..., ScriptPeer]]:
    """Start :data:`PEER_SCRIPT` peers; all are killed at teardown if still running."""

    def start(**cfg: Any) -> ScriptPeer:
        require_peer(cfg["lib"])
        return ScriptPeer(**cfg)

    with closing_all(start) as spawn:
        yield spawn


def serve(rep: purenng.Socket, n: int) -> threading.Thread:
    """Answer ``n`` requests on ``rep`` in a thread (``pure:`` + request)."""

    def run() -> None:
        for _ in range(n):
            rep.send(b"pure:" + rep.recv())

    t = threading.Thread(target=run)
    t.start()
    return t


def joined(sock: purenng.Socket, addr: Addresses, transport: str, does: str, **peer: Any) -> Any:
    """The peer's settings, with where it goes to meet ``sock``, which ``does`` dial or listen."""
    if does == "listen":
        return {"dial": sock.listen(addr.listen_url(transport)).url, **peer}
    url = addr.fixed_url(transport)
    sock.dial(url, block=False, reconnect_time_min=0.05)
    return {"listen": url, **peer}


# ---------------------------------------------------------------- socket level


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("lib", LIBS)
def test_nng_req_to_purenng_rep(
    lib: str, transport: str, role: str, nng_peer: Callable[..., ScriptPeer], addr: Addresses
) -> None:
    with purenng.Rep0(recv_timeout=T, send_timeout=T) as rep:
        peer = nng_peer(**joined(rep, addr, transport, role, lib=lib, role="req", n=10, contexts=0))
        server = serve(rep, 10)
        replies = peer.result()["replies"]
        server.join(T)
    assert {int(j): bytes.fromhex(h) for j, h in replies.items()} == {
        j: b"pure:req %d" % j for j in range(10)
    }


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("lib", LIBS)
def test_purenng_req_to_nng_rep(
    lib: str, transport: str, role: str, nng_peer: Callable[..., ScriptPeer], addr: Addresses
) -> None:
    with purenng.Req0(recv_timeout=T, send_timeout=T) as req:
        peer = nng_peer(**joined(req, addr, transport, role, lib=lib, role="rep", n=10, contexts=0))
        for i in range(10):
            req.send(b"ask %d" % i)
            assert req.recv() == b"nng:ask %d" % i
    assert peer.result()["served"] == [(b"ask %d" % i).hex() for i in range(10)]


# ---------------------------------------------------------------- contexts


@pytest.mark.parametrize("lib", LIBS)
def test_nng_req_contexts_to_purenng_rep_contexts(
    lib: str, nng_peer: Callable[..., ScriptPeer], addr: Addresses
) -> None:
    n = 40
    with purenng.Rep0(recv_timeout=T, send_timeout=T) as rep:
        peer = nng_peer(**joined(rep, addr, "tcp", "listen", lib=lib, role="req", n=n, contexts=8))
        done = threading.Event()
        served: list[int] = []

        def server(i: int) -> None:
            ctx = rep.new_context()
            ctx.recv_timeout = 0.05
            while not done.is_set():
                try:
                    request = ctx.recv()
                except purenng.Timeout:
                    continue
                served.append(i)
                ctx.send(b"pure:" + request)

        servers = [threading.Thread(target=server, args=(i,)) for i in range(4)]
        for t in servers:
            t.start()
        try:
            replies = peer.result()["replies"]
        finally:
            done.set()
            for t in servers:
                t.join(T)
    assert {int(j): bytes.fromhex(h) for j, h in replies.items()} == {
        j: b"pure:req %d" % j for j in range(n)
    }
    assert len(served) == n


@pytest.mark.parametrize("lib", LIBS)
async def test_purenng_req_contexts_to_nng_rep_contexts(
    lib: str, nng_peer: Callable[..., ScriptPeer], addr: Addresses
) -> None:
    n = 30
    async with purenng.Req0(recv_timeout=T, send_timeout=T) as req:
        url = addr.fixed_url("tcp")
        await req.adial(url, block=False, reconnect_time_min=0.05)
        peer = nng_peer(lib=lib, role="rep", n=n, contexts=4, listen=url)

        async def ask(i: int) -> bytes:
            ctx = req.new_context()
            await ctx.asend(b"ctx %d" % i)
            reply: bytes = await ctx.arecv()
            ctx.close()
            return reply

        replies = await asyncio.gather(*(ask(i) for i in range(n)))
    assert replies == [b"nng:ctx %d" % i for i in range(n)]
    served = (await asyncio.to_thread(peer.result))["served"]
    assert sorted(served) == sorted((b"ctx %d" % i).hex() for i in range(n))


# ---------------------------------------------------------------- raw mode


@pytest.mark.parametrize("lib", LIBS)
def test_purenng_device_between_nng_peers(
    lib: str, nng_peer: Callable[..., ScriptPeer], addr: Addresses
) -> None:
    """NNG REQ -> purenng raw REP | raw REQ -> NNG REP, and the replies back."""
    n = 12
    with (
        purenng.Rep0(raw=True, recv_timeout=0.05) as front,
        purenng.Req0(raw=True, recv_timeout=0.05, send_timeout=T) as back,
    ):
        replier = nng_peer(
            **joined(back, addr, "tcp", "dial", lib=lib, role="rep", n=n, contexts=0)
        )
        asker = nng_peer(
            **joined(front, addr, "tcp", "listen", lib=lib, role="req", n=n, contexts=3)
        )
        stop = threading.Event()
        hops: list[bytes] = []

        def forward(src: purenng.Socket, dst: purenng.Socket) -> None:
            while not stop.is_set():
                try:
                    msg = src.recv_msg()
                except purenng.Timeout:
                    continue
                if src is front:
                    hops.append(bytes(msg.header))
                dst.send_msg(msg)

        threads = [
            threading.Thread(target=forward, args=(front, back)),
            threading.Thread(target=forward, args=(back, front)),
        ]
        for t in threads:
            t.start()
        try:
            replies = asker.result()["replies"]
        finally:
            stop.set()
            for t in threads:
                t.join(T)
    assert len(replier.result()["served"]) == n  # it waited for ``back`` to hang up
    assert {int(j): bytes.fromhex(h) for j, h in replies.items()} == {
        j: b"nng:req %d" % j for j in range(n)
    }
    # What the device saw: the pipe id it pushed, then NNG's request id.
    for header in hops:
        assert len(header) == 8
        assert not header[0] & 0x80
        assert header[4] & 0x80


# ---------------------------------------------------------------- nngcat, nanocat


def _cli(tool: str, proto: str, listen: bool, url: str, data: bytes) -> list[str]:
    if tool == "nngcat":
        where = ["--listen" if listen else "--dial", url]
        return ["nngcat", f"--{proto}0", *where, "--data", data.decode()]
    where = ["--bind" if listen else "--connect", url]
    return ["nanocat", f"--{proto}", *where, "--data", data.decode()]


@pytest.fixture
def cli() -> Iterator[Callable[..., subprocess.Popen[bytes]]]:
    """Run a CLI tool; every one still running at teardown is killed."""
    started: list[subprocess.Popen[bytes]] = []

    def run(tool: str, *argv: str) -> subprocess.Popen[bytes]:
        require_peer(tool)
        proc = subprocess.Popen(
            list(argv), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        started.append(proc)
        return proc

    try:
        yield run
    finally:
        for proc in started:
            if proc.poll() is None:
                proc.kill()
            proc.communicate(timeout=T)


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("tool", TOOLS)
def test_cli_req_to_purenng_rep(
    tool: str, transport: str, cli: Callable[..., subprocess.Popen[bytes]], addr: Addresses
) -> None:
    """The tool dials, sends its ``--data`` once and prints the reply."""
    with purenng.Rep0(recv_timeout=T, send_timeout=T) as rep:
        url = rep.listen(addr.listen_url(transport)).url
        fmt = ["--format", "ascii"] if tool == "nngcat" else ["--ascii"]
        proc = cli(tool, *_cli(tool, "req", False, url, b"question"), *fmt)
        assert rep.recv() == b"question"
        rep.send(b"answer")
        out, err = proc.communicate(timeout=T)
    assert proc.returncode == 0, err
    assert out.strip() == b"answer"


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("tool", TOOLS)
def test_purenng_req_to_cli_rep(
    tool: str, transport: str, cli: Callable[..., subprocess.Popen[bytes]], addr: Addresses
) -> None:
    """The tool listens and answers every request with its ``--data``."""
    url = addr.fixed_url(transport)
    proc = cli(tool, *_cli(tool, "rep", True, url, b"canned"), "--hex")
    with purenng.Req0(recv_timeout=T, send_timeout=T) as req:
        req.dial(url, block=False, reconnect_time_min=0.05)
        for i in range(3):
            req.send(b"q%d" % i)
            assert req.recv() == b"canned"
    proc.kill()
    out, _ = proc.communicate(timeout=T)
    assert out.splitlines() == [b'"\\x71\\x3%d"' % i for i in range(3)]
