"""Edge cases against NNG: empty messages, wrong peer protocols, the async API.

Zero-length messages are legal (wire-protocols.md §2.1).  purenng must take
one from pynng and from nng, cooked PAIR v1 included, where the wire carries
only the hop word.  The other direction is checked with the nng package
only: pynng 0.9.0 cannot receive an empty message at all (its ``recv()``
raises ``RuntimeError: cannot use unpack() on <cdata 'char *' NULL>``, see
bench-peers/noise-controlled/RESULTS.md), so there is no pynng case for it;
the nngcat/nanocat cases are in ``test_cli.py``.

A peer speaking the wrong protocol completes the SP handshake and is then
refused (counted in ``protocol_mismatch``); the socket must keep serving
the right peer while the wrong one keeps redialing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

import purenng

from .peers import LIBS, ROLES, Addresses, NngPeerProcess, T, connect_peer, wait_for

pytestmark = pytest.mark.interop

Spawn = Callable[..., NngPeerProcess]

_CLASSES: dict[str, type[purenng.Socket]] = {
    "pair0": purenng.Pair0,
    "pair1": purenng.Pair1,
    "pull0": purenng.Pull0,
    "push0": purenng.Push0,
}
_PEER_OF = {"pair0": "pair0", "pair1": "pair1", "pull0": "push0", "push0": "pull0"}


@pytest.mark.parametrize("proto", ["pair0", "pair1", "pull0"])
@pytest.mark.parametrize("lib", LIBS)
def test_zero_length_from_nng(lib: str, proto: str, spawn_peer: Spawn, addr: Addresses) -> None:
    with _CLASSES[proto](recv_timeout=T) as sock:
        peer = connect_peer(sock, spawn_peer, addr, lib, _PEER_OF[proto], "tcp", "listen")
        peer.send(b"")
        peer.send(b"after")
        assert sock.recv() == b""
        assert sock.recv() == b"after"


@pytest.mark.parametrize("proto", ["pair0", "pair1", "push0"])
def test_zero_length_to_nng(proto: str, spawn_peer: Spawn, addr: Addresses) -> None:
    with _CLASSES[proto](send_timeout=T) as sock:
        peer = connect_peer(sock, spawn_peer, addr, "nng", _PEER_OF[proto], "tcp", "dial")
        sock.send(b"")
        sock.send(b"after")
        got = peer.recv()
        assert (got.length, got.data) == (0, b"")
        if proto == "pair1":
            assert got.header == b"\x00\x00\x00\x01"
        assert peer.recv().data == b"after"


@pytest.mark.parametrize("lib", LIBS)
def test_wrong_peer_protocol_refused_then_right_peer_served(
    lib: str, spawn_peer: Spawn, addr: Addresses
) -> None:
    with purenng.Pair0(recv_timeout=T, send_timeout=T) as sock:
        url = sock.listen(addr.listen_url("tcp")).url
        # The PUSH keeps redialing for the whole test.
        spawn_peer(lib, "push0", dial=url, nonblock_dial=True)
        wait_for(lambda: sock.stats()["protocol_mismatch"] >= 1, "a protocol_mismatch")
        assert sock.pipes == []
        good = spawn_peer(lib, "pair0", dial=url)
        sock.send(b"hello pair")
        assert good.recv().data == b"hello pair"
        good.send(b"hello back")
        assert sock.recv() == b"hello back"
        assert len(sock.pipes) == 1


@pytest.mark.parametrize("proto", ["pair0", "pair1"])
@pytest.mark.parametrize("lib", LIBS)
def test_monogamous_pair_refuses_second_nng_peer(
    lib: str, proto: str, spawn_peer: Spawn, addr: Addresses
) -> None:
    """A second peer is refused while the first is up, and served once it left."""
    with _CLASSES[proto](recv_timeout=T, send_timeout=T) as sock:
        url = sock.listen(addr.listen_url("tcp")).url
        first = spawn_peer(lib, proto, dial=url)
        first.send(b"first")
        assert sock.recv() == b"first"
        second = spawn_peer(lib, proto, dial=url, nonblock_dial=True)
        wait_for(lambda: sock.stats()["pipes_rejected"] >= 1, "the second peer's refusal")
        sock.send(b"to first")
        assert first.recv().data == b"to first"
        first.close()
        # Until purenng has seen the first pipe go, a send could still take it.
        wait_for(lambda: sock.stats()["pipes_removed"] >= 1, "the first pipe to go")
        # The second peer keeps redialing and is taken once the slot is free.
        sock.send(b"to second")
        assert second.recv().data == b"to second"
        second.send(b"second")
        assert sock.recv() == b"second"


@pytest.mark.parametrize("lib", LIBS)
def test_purenng_dialer_refuses_wrong_peer(lib: str, spawn_peer: Spawn, addr: Addresses) -> None:
    """purenng dialing a PULL with a PAIR0 socket: refused, nothing usable."""
    peer = spawn_peer(lib, "pull0", listen=addr.listen_url("tcp"))
    with purenng.Pair0(send_timeout=T) as sock:
        sock.dial(peer.url, block=False, reconnect_time_min=0.05)
        wait_for(lambda: sock.stats()["protocol_mismatch"] >= 1, "a protocol_mismatch")
        assert sock.pipes == []
        with pytest.raises(purenng.TryAgain):
            sock.send(b"nobody to take this", block=False)


@pytest.mark.parametrize("role", ROLES)
async def test_pair0_async_on_test_loop(role: str, spawn_peer: Spawn, addr: Addresses) -> None:
    """The async API on the test's own loop against pynng.

    The socket lives on this loop, so every blocking call to the peer process
    runs in a thread to keep the loop (and the handshake) going.
    """
    async with purenng.Pair0(recv_timeout=T, send_timeout=T) as sock:
        if role == "listen":
            lst = await sock.alisten(addr.listen_url("tcp"))
            peer = await asyncio.to_thread(spawn_peer, "pynng", "pair0", dial=lst.url)
        else:
            peer = await asyncio.to_thread(
                spawn_peer, "pynng", "pair0", listen=addr.listen_url("tcp")
            )
            await sock.adial(peer.url, block=True)
        await sock.asend(b"async ping")
        got = await asyncio.to_thread(peer.recv)
        assert got.data == b"async ping"
        await asyncio.to_thread(peer.send, b"async pong")
        assert await sock.arecv() == b"async pong"
