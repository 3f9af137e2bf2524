"""BUS and devices against NNG itself (pynng, NNG 1.11).

* BUS between purenng and pynng, each side listening in turn, over tcp and
  ipc, messages both ways.
* Reflectors: a purenng raw BUS device with pynng clients (plus one purenng
  client), and NNG's ``nng_device`` on a raw pynng BUS with purenng clients.
  A message reaches every other client and never comes back to its sender.
* REQ/REP through devices: a purenng device between pynng REQ and REP, an
  NNG device (``nng_device`` through pynng's ``lib``, as pynng 0.9 has no
  Python-level ``device``) between purenng REQ and REP, and a mixed chain of
  both, which needs both sides to push and pop backtrace hops the same way.

The pynng sockets live in a child process driven by JSON lines (the script
is :data:`PEER`); why a child and not pynng in this process is explained in
``nngpeer.py``.  Negative checks ("not echoed") are made by ordering: the
sentinel sent afterwards must be the next message received.
"""

from __future__ import annotations

import json
import struct
import sys
import threading
from typing import TYPE_CHECKING, Any

import pytest

import purenng

from .peers import Addresses, ChildProcess, PeerError, T, closing_all, require_peer, wait_for

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

pytestmark = pytest.mark.interop

TCP = "tcp://127.0.0.1:0"

#: The pynng side: named sockets, operated one JSON command per line.
PEER = r"""
import json, os, sys, threading, time
import pynng
from pynng import lib

watchdog = threading.Timer(float(sys.argv[1]), os._exit, (3,))
watchdog.daemon = True
watchdog.start()
TIMEOUT_MS = int(float(sys.argv[2]) * 1000)
KINDS = {
    "bus0": (pynng.Bus0, lib.nng_bus0_open_raw),
    "req0": (pynng.Req0, lib.nng_req0_open_raw),
    "rep0": (pynng.Rep0, lib.nng_rep0_open_raw),
}
socks, threads, results = {}, {}, {}

def emit(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()

def echo(sock, prefix):
    while True:
        try:
            sock.send(prefix + sock.recv())
        except pynng.Timeout:
            continue
        except pynng.Closed:
            return

def device(name, a, b):
    results[name] = lib.nng_device(a.socket, b.socket)

emit({"event": "ready"})
for line in sys.stdin:
    cmd = json.loads(line)
    op = cmd["op"]
    try:
        s = socks.get(cmd.get("name"))
        out = {"ok": True}
        if op == "open":
            cls, raw_opener = KINDS[cmd["proto"]]
            s = cls(opener=raw_opener) if cmd.get("raw") else cls()
            s.recv_timeout = TIMEOUT_MS
            s.send_timeout = TIMEOUT_MS
            socks[cmd["name"]] = s
        elif op == "listen":
            lst = s.listen(cmd["url"])
            url = cmd["url"]
            if url.startswith("tcp://"):
                url = "tcp://%s" % lst.local_address
            out["url"] = url
        elif op == "dial":
            s.dial(cmd["url"], block=True)
        elif op == "send":
            s.send(bytes.fromhex(cmd["data"]))
        elif op == "recv":
            out["data"] = s.recv().hex()
        elif op == "wait_pipes":
            deadline = time.monotonic() + TIMEOUT_MS / 1000
            while len(s.pipes) < cmd["n"]:
                if time.monotonic() > deadline:
                    raise TimeoutError("%d of %d pipes" % (len(s.pipes), cmd["n"]))
                time.sleep(0.005)
        elif op == "echo":
            t = threading.Thread(target=echo, args=(s, bytes.fromhex(cmd["prefix"])))
            t.daemon = True
            t.start()
        elif op == "device":
            a, b = socks[cmd["a"]], socks[cmd["b"]]
            t = threading.Thread(target=device, args=(cmd["name"], a, b))
            t.daemon = True
            t.start()
            threads[cmd["name"]] = t
        elif op == "device_result":
            threads[cmd["name"]].join(TIMEOUT_MS / 1000)
            out["running"] = threads[cmd["name"]].is_alive()
            out["rc"] = results.get(cmd["name"])
        elif op == "close":
            s.close()
        elif op == "exit":
            for s in socks.values():
                s.close()
            emit(out)
            break
        else:
            raise ValueError("unknown op %r" % op)
    except Exception as exc:
        out = {"ok": False, "error": "%s: %s" % (type(exc).__name__, exc)}
    emit(out)
"""


class Pynng:
    """The pynng child process: open sockets by name and drive them."""

    def __init__(self) -> None:
        self.child = ChildProcess([sys.executable, "-c", PEER, str(6 * T), str(T)], stdin=True)
        try:
            ready = self._line()
            if ready.get("event") != "ready":
                raise PeerError(self.child.describe(f"pynng peer did not start: {ready}"))
        except BaseException:
            self.child.close()
            raise

    def _line(self) -> dict[str, Any]:
        line = self.child.readline(T + 5)
        if line is None:
            raise PeerError(self.child.describe("pynng peer exited"))
        obj: dict[str, Any] = json.loads(line)
        return obj

    def __call__(self, op: str, **kw: Any) -> dict[str, Any]:
        stdin = self.child.proc.stdin
        assert stdin is not None
        stdin.write((json.dumps({"op": op, **kw}) + "\n").encode())
        stdin.flush()
        reply = self._line()
        if not reply.get("ok"):
            raise PeerError(f"pynng peer: {op} {kw} failed: {reply.get('error')}")
        return reply

    def open(self, name: str, proto: str, *, raw: bool = False) -> None:
        self("open", name=name, proto=proto, raw=raw)

    def listen(self, name: str, url: str) -> str:
        got: str = self("listen", name=name, url=url)["url"]
        return got

    def send(self, name: str, data: bytes) -> None:
        self("send", name=name, data=data.hex())

    def recv(self, name: str) -> bytes:
        return bytes.fromhex(self("recv", name=name)["data"])

    def close(self) -> None:
        if self.child.proc.poll() is None and not self.child.closed:
            try:
                self("exit")
                self.child.wait(T)
            except (PeerError, OSError):
                pass
        self.child.close()


@pytest.fixture
def pynng_peer() -> Iterator[Pynng]:
    require_peer("pynng")
    peer = Pynng()
    try:
        yield peer
    finally:
        peer.close()


@pytest.fixture
def closing() -> Iterator[Callable[..., Any]]:
    def add(sock: purenng.Socket) -> Any:
        return sock

    with closing_all(add) as closing:
        yield closing


def listen_url(addr: Addresses, transport: str) -> str:
    return addr.listen_url(transport)


class DeviceThread:
    """A purenng device in a thread; :meth:`join` checks that it returned."""

    def __init__(self, a: purenng.Socket, b: purenng.Socket | None = None) -> None:
        self.error: BaseException | None = None
        self.returned = False
        self.thread = threading.Thread(target=self._run, args=(a, b), daemon=True)
        self.thread.start()

    def _run(self, a: purenng.Socket, b: purenng.Socket | None) -> None:
        try:
            purenng.device(a, b)
            self.returned = True
        except BaseException as exc:
            self.error = exc

    def join(self) -> None:
        self.thread.join(T)
        assert not self.thread.is_alive(), "the device did not end"
        assert self.error is None, repr(self.error)
        assert self.returned


# ------------------------------------------------------------------ BUS


@pytest.mark.parametrize("role", ["listen", "dial"])
@pytest.mark.parametrize("transport", ["tcp", "ipc"])
def test_bus_purenng_and_pynng_both_ways(
    transport: str, role: str, pynng_peer: Pynng, addr: Addresses, closing: Callable[..., Any]
) -> None:
    me = closing(purenng.Bus0(recv_timeout=T, send_timeout=T))
    pynng_peer.open("bus", "bus0")
    if role == "listen":
        url = me.listen(listen_url(addr, transport)).url
        pynng_peer("dial", name="bus", url=url)
    else:
        url = pynng_peer.listen("bus", listen_url(addr, transport))
        me.dial(url, block=True)
    wait_for(lambda: me.pipes, "the pipe")
    pynng_peer("wait_pipes", name="bus", n=1)
    for i in range(5):
        me.send(b"purenng %d" % i)
        assert pynng_peer.recv("bus") == b"purenng %d" % i
        pynng_peer.send("bus", b"pynng %d" % i)
        assert me.recv() == b"pynng %d" % i
    big = bytes(range(256)) * 1024
    me.send(big)
    assert pynng_peer.recv("bus") == big


def test_purenng_bus_reflector_with_pynng_clients(
    pynng_peer: Pynng, closing: Callable[..., Any]
) -> None:
    hub = closing(purenng.Bus0(raw=True, listen=TCP))
    url = hub.listeners[0].url
    for name in ("a", "b"):
        pynng_peer.open(name, "bus0")
        pynng_peer("dial", name=name, url=url)
    mine = closing(purenng.Bus0(dial=url, recv_timeout=T, send_timeout=T))
    wait_for(lambda: len(hub.pipes) == 3, "three clients")
    dev = DeviceThread(hub)

    pynng_peer.send("a", b"from a")
    assert pynng_peer.recv("b") == b"from a"
    assert mine.recv() == b"from a"
    mine.send(b"from purenng")
    assert pynng_peer.recv("a") == b"from purenng"  # "from a" was not echoed
    assert pynng_peer.recv("b") == b"from purenng"
    pynng_peer.send("b", b"from b")
    assert pynng_peer.recv("a") == b"from b"
    assert mine.recv() == b"from b"  # "from purenng" was not echoed
    hub.close()
    dev.join()


def test_nng_bus_reflector_with_purenng_clients(
    pynng_peer: Pynng, closing: Callable[..., Any]
) -> None:
    pynng_peer.open("hub", "bus0", raw=True)
    url = pynng_peer.listen("hub", TCP)
    clients = [closing(purenng.Bus0(dial=url, recv_timeout=T, send_timeout=T)) for _ in range(3)]
    pynng_peer("wait_pipes", name="hub", n=3)
    pynng_peer("device", name="reflector", a="hub", b="hub")
    for i, sender in enumerate(clients):
        sender.send(b"from %d" % i)
        for j, other in enumerate(clients):
            if j != i:
                assert other.recv() == b"from %d" % i
    # Nothing came back to a sender: each one's next message is a sentinel.
    for i, sender in enumerate(clients):
        sender.send(b"sentinel %d" % i)
        for j, other in enumerate(clients):
            if j != i:
                assert other.recv() == b"sentinel %d" % i
    pynng_peer("close", name="hub")
    done = pynng_peer("device_result", name="reflector")
    assert done["running"] is False
    assert done["rc"] != 0  # NNG_ECLOSED: nng_device returns when a socket closes


def test_raw_bus_header_from_nng_peer(pynng_peer: Pynng, closing: Callable[..., Any]) -> None:
    raw = closing(purenng.Bus0(raw=True, listen=TCP, recv_timeout=T))
    pynng_peer.open("bus", "bus0")
    pynng_peer("dial", name="bus", url=raw.listeners[0].url)
    pynng_peer.send("bus", b"hello")
    msg = raw.recv_msg()
    assert msg.bytes == b"hello"  # nothing of the header travelled on the wire
    assert msg.pipe is not None
    assert bytes(msg.header) == struct.pack(">I", msg.pipe.id)


# ------------------------------------------------------------------ REQ/REP through devices


@pytest.mark.parametrize("transport", ["tcp", "ipc"])
def test_purenng_device_between_pynng_req_and_rep(
    transport: str, pynng_peer: Pynng, addr: Addresses, closing: Callable[..., Any]
) -> None:
    xrep = closing(purenng.Rep0(raw=True, listen=TCP))
    xreq = closing(purenng.Req0(raw=True))
    out_url = xreq.listen(listen_url(addr, transport)).url
    pynng_peer.open("rep", "rep0")
    pynng_peer("dial", name="rep", url=out_url)
    pynng_peer("echo", name="rep", prefix=b"reply to ".hex())
    pynng_peer.open("req", "req0")
    pynng_peer("dial", name="req", url=xrep.listeners[0].url)
    wait_for(lambda: xrep.pipes and xreq.pipes, "both pipes")
    dev = DeviceThread(xrep, xreq)
    for i in range(10):
        pynng_peer.send("req", b"question %d" % i)
        assert pynng_peer.recv("req") == b"reply to question %d" % i
    xreq.close()
    dev.join()


def test_nng_device_between_purenng_req_and_rep(
    pynng_peer: Pynng, closing: Callable[..., Any]
) -> None:
    pynng_peer.open("xrep", "rep0", raw=True)
    pynng_peer.open("xreq", "req0", raw=True)
    in_url = pynng_peer.listen("xrep", TCP)
    out_url = pynng_peer.listen("xreq", TCP)
    pynng_peer("device", name="dev", a="xrep", b="xreq")
    rep = closing(purenng.Rep0(dial=out_url, recv_timeout=T, send_timeout=T))
    req = closing(purenng.Req0(dial=in_url, recv_timeout=T, send_timeout=T))
    pynng_peer("wait_pipes", name="xreq", n=1)
    for i in range(10):
        req.send(b"question %d" % i)
        assert rep.recv() == b"question %d" % i
        rep.send(b"answer %d" % i)
        assert req.recv() == b"answer %d" % i
    pynng_peer("close", name="xrep")
    done = pynng_peer("device_result", name="dev")
    assert done["running"] is False


def test_mixed_device_chain(pynng_peer: Pynng, closing: Callable[..., Any]) -> None:
    """purenng REQ -> NNG device -> purenng device -> pynng REP, and back."""
    pynng_peer.open("xrep", "rep0", raw=True)
    pynng_peer.open("xreq", "req0", raw=True)
    nng_in = pynng_peer.listen("xrep", TCP)
    xrep = closing(purenng.Rep0(raw=True, listen=TCP))
    pynng_peer("dial", name="xreq", url=xrep.listeners[0].url)
    pynng_peer("device", name="dev", a="xrep", b="xreq")
    xreq = closing(purenng.Req0(raw=True, listen=TCP))
    pynng_peer.open("rep", "rep0")
    pynng_peer("dial", name="rep", url=xreq.listeners[0].url)
    pynng_peer("echo", name="rep", prefix=b"ok: ".hex())
    wait_for(lambda: xrep.pipes and xreq.pipes, "the purenng device's pipes")
    dev = DeviceThread(xrep, xreq)
    req = closing(purenng.Req0(dial=nng_in, recv_timeout=T, send_timeout=T))
    for i in range(5):
        req.send(b"deep %d" % i)
        assert req.recv() == b"ok: deep %d" % i
    xrep.close()
    dev.join()
