"""PUB/SUB against real peers: pynng (NNG 1.11), nng (NNG 2.0-dev), nngcat, nanocat.

Both directions (purenng publishes, purenng subscribes), purenng dialing and
listening, over tcp and ipc.  The subscriber filters on its own side in
every case (wire-protocols.md §1.4 "PUB / SUB"), so each test also checks
that the peer's filter, or purenng's, let through exactly the matching
messages.

How a test knows the subscriber is connected: a publisher's messages reach
only the subscribers connected at that moment, and a subscriber cannot say
when it is connected.  So the publisher sends a ``t:sync`` message
repeatedly (bounded in count and time) until the subscriber reports one;
then it publishes the real batch, which ends with ``t:end``.  Leftover
``t:sync`` copies still in flight are ignored when the batch is checked;
everything else must match exactly and in order, since one pipe keeps the
publisher's order.

The NNG bindings run in a child process (:data:`PEER_SCRIPT`, for the
reasons given in :mod:`nngpeer`, which has no PUB/SUB roles): a SUB peer
prints each message it receives as one hex line; a PUB peer publishes the
hex messages of each line it reads on stdin and answers ``sent``.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import purenng

from .peers import (
    ROLES,
    Addresses,
    ChildProcess,
    CliPeer,
    PeerError,
    T,
    closing_all,
    require_peer,
)

pytestmark = pytest.mark.interop

SpawnCli = Callable[..., CliPeer]

LIBS = ("pynng", "nng")
TRANSPORTS = ("tcp", "ipc")
TOOLS = ("nngcat", "nanocat")

SYNC = b"t:sync"
END = b"t:end"
#: What the publisher sends once the subscriber is there; the subscriber
#: has subscribed to b"t:" only.
BATCH = [b"x:1", b"t:1", b"", b"u:t:", b"t", b"t:2\x00\xff", b"T:3", END]
EXPECTED = [b"t:1", b"t:2\x00\xff", END]
#: Sync attempts before giving up (each waits up to POLL seconds).
SYNC_TRIES = 200
POLL = 0.05

PEER_SCRIPT = r"""
import json, os, sys, threading
lib, role, mode, url, lifetime = sys.argv[1:6]
topics = [bytes.fromhex(t) for t in sys.argv[6:]]
timer = threading.Timer(float(lifetime), os._exit, (3,))
timer.daemon = True
timer.start()
tcp = url.startswith("tcp://")
if lib == "pynng":
    import pynng
    sock = pynng.Pub0() if role == "pub" else pynng.Sub0()
    for t in topics:
        sock.subscribe(t)
    if mode == "listen":
        lst = sock.listen(url)
        if tcp:
            url = "tcp://%s" % (lst.local_address,)
    else:
        sock.dial(url, block=True)
    recv = lambda: bytes(sock.recv())
else:
    import nng
    sock = nng.PubSocket() if role == "pub" else nng.SubSocket()
    for t in topics:
        sock.subscribe(t)
    if mode == "listen":
        lst = sock.add_listener(url)
        lst.start()
        if tcp:
            url = "tcp://127.0.0.1:%d" % lst.port
    else:
        sock.add_dialer(url).start(block=True)
    recv = lambda: sock.recv().to_bytes()
print(json.dumps({"url": url}), flush=True)
if role == "sub":
    while True:
        print(recv().hex(), flush=True)
else:
    for line in sys.stdin:
        for h in line.split(","):
            sock.send(bytes.fromhex(h.strip()))
        print("sent", flush=True)
"""


class PyPeer:
    """A PUB or SUB socket of pynng or nng in a child process."""

    def __init__(self, lib: str, role: str, mode: str, url: str, topics: list[bytes]) -> None:
        argv = [sys.executable, "-c", PEER_SCRIPT, lib, role, mode, url, str(6 * T)]
        self._child = ChildProcess(argv + [t.hex() for t in topics], stdin=True)
        try:
            line = self._child.readline(T)
            if line is None:
                raise PeerError(self._child.describe("peer exited before it was ready"))
            self.url: str = json.loads(line)["url"]
        except BaseException:
            self._child.close()
            raise

    def publish(self, msgs: list[bytes]) -> None:
        """Make a PUB peer send ``msgs`` once, in order."""
        stdin = self._child.proc.stdin
        assert stdin is not None
        stdin.write((",".join(m.hex() for m in msgs) + "\n").encode())
        stdin.flush()
        if self._child.readline(T) != b"sent":
            raise PeerError(self._child.describe("the PUB peer did not publish"))

    def received(self, timeout: float = T) -> bytes:
        """The next message a SUB peer received."""
        line = self._child.readline(timeout)
        if line is None:
            raise PeerError(self._child.describe("the SUB peer exited"))
        return bytes.fromhex(line.decode())

    def close(self) -> None:
        self._child.close()


@pytest.fixture
def spawn_py() -> Iterator[Callable[..., PyPeer]]:
    def start(
        lib: str, role: str, mode: str, url: str, topics: list[bytes] | None = None
    ) -> PyPeer:
        require_peer(lib)
        return PyPeer(lib, role, mode, url, topics or [])

    with closing_all(start) as spawn:
        yield spawn


def _batch_after_syncs(got: list[bytes]) -> list[bytes]:
    return [m for m in got if m != SYNC]


def sync_and_collect(
    publish: Callable[[list[bytes]], None], receive: Callable[[float], bytes]
) -> list[bytes]:
    """Publish SYNC until one is received, then BATCH; what came after, up to END.

    ``receive(timeout)`` raises (Timeout, PeerError) when nothing came in time.
    """
    for _ in range(SYNC_TRIES):
        publish([SYNC])
        try:
            first = receive(POLL)
        except (purenng.Timeout, PeerError):
            continue
        assert first == SYNC, first
        break
    else:
        raise AssertionError(f"the subscriber received nothing after {SYNC_TRIES} syncs")
    publish(BATCH)
    got: list[bytes] = []
    deadline = time.monotonic() + T
    while not got or got[-1] != END:
        assert time.monotonic() < deadline, got
        got.append(receive(T))
    return _batch_after_syncs(got)


def _purenng_recv(sub: Any) -> Callable[[float], bytes]:
    def receive(timeout: float) -> bytes:
        sub.recv_timeout = timeout
        data: bytes = sub.recv()
        return data

    return receive


# ---------------------------------------------------------------- pynng / nng


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("lib", LIBS)
def test_purenng_pub_to_nng_sub(
    lib: str, transport: str, role: str, spawn_py: Callable[..., PyPeer], addr: Addresses
) -> None:
    with purenng.Pub0() as pub:
        if role == "listen":
            url = pub.listen(addr.listen_url(transport)).url
            peer = spawn_py(lib, "sub", "dial", url, [b"t:"])
        else:
            peer = spawn_py(lib, "sub", "listen", addr.listen_url(transport), [b"t:"])
            pub.dial(peer.url, block=True)

        def publish(msgs: list[bytes]) -> None:
            for m in msgs:
                pub.send(m)

        assert sync_and_collect(publish, peer.received) == EXPECTED
        assert pub.stats()["protocol_errors"] == 0  # the NNG SUB never wrote


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("lib", LIBS)
def test_nng_pub_to_purenng_sub(
    lib: str, transport: str, role: str, spawn_py: Callable[..., PyPeer], addr: Addresses
) -> None:
    with purenng.Sub0() as sub:
        sub.subscribe("t:")
        if role == "listen":
            url = sub.listen(addr.listen_url(transport)).url
            peer = spawn_py(lib, "pub", "dial", url)
        else:
            peer = spawn_py(lib, "pub", "listen", addr.listen_url(transport))
            sub.dial(peer.url, block=True)
        assert sync_and_collect(peer.publish, _purenng_recv(sub)) == EXPECTED
        assert sub.stats()["drops"] == 0
        assert sub.stats()["pipes_removed"] == 0  # NNG would close a SUB that wrote


@pytest.mark.parametrize("lib", LIBS)
def test_nng_pub_to_purenng_sub_contexts(
    lib: str, spawn_py: Callable[..., PyPeer], addr: Addresses
) -> None:
    """Two contexts with different subscriptions on one purenng SUB, NNG publishing."""
    with purenng.Sub0() as sub:
        url = sub.listen(addr.listen_url("tcp")).url
        peer = spawn_py(lib, "pub", "dial", url)
        with sub.new_context() as ctx:
            ctx.recv_timeout = T
            ctx.subscribe(b"u:")
            sub.subscribe(b"t:")
            assert sync_and_collect(peer.publish, _purenng_recv(sub)) == EXPECTED
            assert ctx.recv() == b"u:t:"


# ---------------------------------------------------------------- nngcat / nanocat


def _tool_args(tool: str, role: str, listen: bool, url: str) -> list[str]:
    proto = f"--{role}0" if tool == "nngcat" else f"--{role}"
    if tool == "nngcat":
        return [proto, "--listen" if listen else "--dial", url]
    return [proto, "--bind" if listen else "--connect", url]


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("tool", TOOLS)
def test_purenng_pub_to_tool_sub(
    tool: str, transport: str, role: str, spawn_cli: SpawnCli, addr: Addresses
) -> None:
    with purenng.Pub0() as pub:
        if role == "listen":
            url = pub.listen(addr.listen_url(transport)).url
            cli = spawn_cli(
                tool, *_tool_args(tool, "sub", False, url), "--subscribe", "t:", "--hex"
            )
        else:
            url = addr.fixed_url(transport)
            cli = spawn_cli(tool, *_tool_args(tool, "sub", True, url), "--subscribe", "t:", "--hex")
            pub.dial(url, block=False, reconnect_time_min=0.05)

        def publish(msgs: list[bytes]) -> None:
            for m in msgs:
                pub.send(m)

        def receive(timeout: float) -> bytes:
            return cli.messages(1, timeout)[0]

        assert sync_and_collect(publish, receive) == EXPECTED
        assert pub.stats()["protocol_errors"] == 0  # the tool's SUB never wrote


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("tool", TOOLS)
def test_tool_pub_to_purenng_sub(
    tool: str, transport: str, role: str, spawn_cli: SpawnCli, addr: Addresses
) -> None:
    # The tool repeats its message (nngcat: whole seconds only), so a copy
    # published before the subscription was connected does not matter.
    interval = "1" if tool == "nngcat" else "0.05"
    with purenng.Sub0(recv_timeout=T) as sub:
        sub.subscribe(b"t:")
        with sub.new_context() as other:
            other.subscribe(b"x")
            args = ["--data", "t:hello", "--interval", interval]
            if role == "listen":
                url = sub.listen(addr.listen_url(transport)).url
                spawn_cli(tool, *_tool_args(tool, "pub", False, url), *args)
            else:
                url = addr.fixed_url(transport)
                spawn_cli(tool, *_tool_args(tool, "pub", True, url), *args)
                sub.dial(url, block=False, reconnect_time_min=0.05)
            assert sub.recv() == b"t:hello"
            with pytest.raises(purenng.TryAgain):
                other.recv(block=False)  # filtered out for that context
