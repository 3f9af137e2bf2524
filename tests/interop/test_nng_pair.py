"""PAIR v0 and v1 against NNG itself: pynng (NNG 1.11) and nng (NNG 2.0-dev).

Every case runs over tcp, ipc and abstract, once with purenng dialing and once
with purenng listening, and sends messages both ways.  The peers run in child
processes (see ``nngpeer.py`` for why).

PAIR v1 checks the hop word from both ends: cooked bodies must arrive intact
both ways (one word added on send, one removed on receive), purenng shows
NNG's word as ``Message.header``, and the nng package, which keeps the SP
header apart from the body, shows the word purenng put on the wire.
Polyamorous mode is covered against pynng only: the nng package (NNG 2.0)
has no polyamorous constructor.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

import purenng

from .peers import LIBS, ROLES, TRANSPORTS, Addresses, NngPeerProcess, T, connect_peer

pytestmark = pytest.mark.interop

Spawn = Callable[..., NngPeerProcess]

#: Hop word 1, as NNG puts on the wire for a cooked send (wire-protocols.md §1.3).
HOP1 = b"\x00\x00\x00\x01"


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("lib", LIBS)
def test_pair0(lib: str, transport: str, role: str, spawn_peer: Spawn, addr: Addresses) -> None:
    with purenng.Pair0(recv_timeout=T, send_timeout=T) as sock:
        peer = connect_peer(sock, spawn_peer, addr, lib, "pair0", transport, role)
        for i in range(3):
            out = b"purenng %d \x00\xff" % i
            sock.send(out)
            assert peer.recv().data == out
            back = b"%s %d \x00\x01" % (lib.encode(), i)
            peer.send(back)
            assert sock.recv() == back


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("lib", LIBS)
def test_pair1_cooked(
    lib: str, transport: str, role: str, spawn_peer: Spawn, addr: Addresses
) -> None:
    # Bodies that start like a hop word: a side that added or stripped one
    # word too many or too few would change them.
    bodies = [b"plain", HOP1 + b"looks like a header", b"\x00\x00\x00\x05", b"x"]
    with purenng.Pair1(recv_timeout=T, send_timeout=T) as sock:
        peer = connect_peer(sock, spawn_peer, addr, lib, "pair1", transport, role)
        for body in bodies:
            sock.send(body)
            got = peer.recv()
            assert got.data == body
            if got.header is not None:  # nng shows the word purenng sent
                assert got.header == HOP1
            peer.send(body)
            msg = sock.recv_msg()
            assert bytes(msg.body) == body
            assert bytes(msg.header) == HOP1


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("lib", LIBS)
def test_pair1_raw(lib: str, role: str, spawn_peer: Spawn, addr: Addresses) -> None:
    """A raw purenng PAIR1 sees NNG's hop word and forwards its own plus one."""
    with purenng.Pair1(raw=True, recv_timeout=T, send_timeout=T) as sock:
        peer = connect_peer(sock, spawn_peer, addr, lib, "pair1", "tcp", role)
        peer.send(b"from nng")
        msg = sock.recv_msg()
        assert bytes(msg.header) == HOP1
        assert bytes(msg.body) == b"from nng"
        # A device forwarding a message that took 3 hops: NNG sees 4.
        sock.send_msg(purenng.Message(b"forwarded", header=b"\x00\x00\x00\x03"))
        got = peer.recv()
        assert got.data == b"forwarded"
        if got.header is not None:
            assert got.header == b"\x00\x00\x00\x04"


@pytest.mark.parametrize("transport", ["tcp", "ipc"])
def test_pair1_nng_polyamorous_routes_by_pipe(
    transport: str, spawn_peer: Spawn, addr: Addresses
) -> None:
    """Two monogamous purenng dialers, one polyamorous pynng listener.

    Each reply goes back on the pipe its request came in on, so each dialer
    gets exactly its own reply.
    """
    peer = spawn_peer("pynng", "pair1poly", listen=addr.listen_url(transport))
    with (
        purenng.Pair1(dial=peer.url, recv_timeout=T, send_timeout=T) as a,
        purenng.Pair1(dial=peer.url, recv_timeout=T, send_timeout=T) as b,
    ):
        a.send(b"from a")
        b.send(b"from b")
        first, second = peer.recv(), peer.recv()
        assert {first.data, second.data} == {b"from a", b"from b"}
        assert first.pipe is not None
        assert second.pipe is not None
        assert first.pipe != second.pipe
        for got in (second, first):  # answer in the other order
            assert got.data is not None
            peer.send(b"re: " + got.data, pipe=got.pipe)
        assert a.recv() == b"re: from a"
        assert b.recv() == b"re: from b"


@pytest.mark.parametrize("transport", ["tcp", "ipc"])
def test_pair1_purenng_polyamorous_routes_by_pipe(
    transport: str, spawn_peer: Spawn, addr: Addresses
) -> None:
    """The mirror case: a polyamorous purenng listener, two pynng dialers."""
    with purenng.Pair1(polyamorous=True, recv_timeout=T, send_timeout=T) as sock:
        url = sock.listen(addr.listen_url(transport)).url
        one = spawn_peer("pynng", "pair1", dial=url)
        two = spawn_peer("pynng", "pair1", dial=url)
        one.send(b"one")
        two.send(b"two")
        msgs = [sock.recv_msg(), sock.recv_msg()]
        assert sorted(bytes(m.body) for m in msgs) == [b"one", b"two"]
        assert msgs[0].pipe is not None
        assert msgs[1].pipe is not None
        assert msgs[0].pipe is not msgs[1].pipe
        for m in reversed(msgs):
            sock.send_msg(purenng.Message(b"re: " + bytes(m.body), pipe=m.pipe))
        assert one.recv().data == b"re: one"
        assert two.recv().data == b"re: two"
