"""ws:// and wss:// against real NNG (pynng = NNG 1.11, nng = NNG 2.0-dev), nngcat and nanocat.

* PAIR v0 and PUSH/PULL both ways, purenng dialing and listening, with
  messages over 64 KiB so that NNG's and purenng's fragmentation (64 KiB
  frames) and reassembly both take part.
* REQ/REP both ways through the scripted peer of ``test_nng_reqrep``.
* The rules of wire-protocols.md §2.4 as NNG applies them: a wrong path is
  refused (404, ECONNREFUSED), a wrong protocol too (400), an oversized
  message closes the connection (1009) and the peer reconnects.
* nngcat 1.5.2 and nanocat 1.1.5 as dialer and listener.  nanocat binds
  without a path: nanomsg serves every path of its port (§4 item 9).
* wss with verification on: pynng and nng-ssl (both Mbed TLS) check
  purenng's certificate, and purenng checks theirs.

NNG peers that listen get a port picked in advance (their helper cannot
report a ws port); purenng listens on port 0 and gives its URL to the peer.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any

import pytest

import purenng
from purenng.certs import make_dev_certs

from .peers import (
    LIBS,
    ROLES,
    CliPeer,
    NngPeerProcess,
    PeerError,
    T,
    closing_all,
    free_tcp_port,
    pattern,
    require_peer,
    wait_for,
)
from .test_nng_reqrep import ScriptPeer, serve
from .test_tls_interop import CertFiles, TlsPeer

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path

pytestmark = pytest.mark.interop

#: Above NNG's 64 KiB frames: several frames per message each way.
BIG = 300_000


def peer_url(path: str = "/interop", scheme: str = "ws") -> str:
    """A URL for an NNG listener (a port picked now: the peer cannot report it)."""
    return f"{scheme}://127.0.0.1:{free_tcp_port()}{path}"


def meet(
    sock: purenng.Socket,
    spawn_peer: Callable[..., NngPeerProcess],
    lib: str,
    proto: str,
    role: str,
    **peer_kw: Any,
) -> NngPeerProcess:
    """Join ``sock`` and an NNG peer over ws; purenng does ``role``."""
    if role == "listen":
        lst = sock.listen("ws://127.0.0.1:0/interop")
        peer = spawn_peer(lib, proto, dial=lst.url, **peer_kw)
    else:
        peer = spawn_peer(lib, proto, listen=peer_url(), **peer_kw)
        sock.dial(peer.url, block=True)
    peer.wait_pipes(1)
    # NNG counts its pipe once the 101 answer arrives; purenng's side of a
    # listener admits its pipe on its own loop, which may be a moment later.
    wait_for(lambda: bool(sock.pipes), "the pipe on purenng's side")
    return peer


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# ---------------------------------------------------------------- PAIR v0, PUSH/PULL


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("lib", LIBS)
def test_pair0(lib: str, role: str, spawn_peer: Callable[..., NngPeerProcess]) -> None:
    with purenng.Pair0(recv_timeout=T, send_timeout=T, recv_max_size=0) as sock:
        peer = meet(sock, spawn_peer, lib, "pair0", role)
        peer.send(b"from nng")
        assert sock.recv() == b"from nng"
        sock.send(b"from purenng")
        assert peer.recv().data == b"from purenng"
        peer.send_pattern(BIG, 3)
        assert sock.recv() == pattern(BIG, 3)
        sock.send(pattern(BIG, 4))
        got = peer.recv()
        assert (got.length, got.sha256) == (BIG, sha(pattern(BIG, 4)))
        assert sock.pipes[0].transport == "ws"


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("lib", LIBS)
def test_purenng_push_to_nng_pull(
    lib: str, role: str, spawn_peer: Callable[..., NngPeerProcess]
) -> None:
    with purenng.Push0(send_timeout=T) as push:
        peer = meet(push, spawn_peer, lib, "pull0", role)
        for i in range(20):
            push.send(b"item %d" % i)
        push.send(pattern(BIG, 5))
        assert [peer.recv().data for _ in range(20)] == [b"item %d" % i for i in range(20)]
        assert peer.recv().sha256 == sha(pattern(BIG, 5))


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("lib", LIBS)
def test_nng_push_to_purenng_pull(
    lib: str, role: str, spawn_peer: Callable[..., NngPeerProcess]
) -> None:
    with purenng.Pull0(recv_timeout=T, recv_max_size=0) as pull:
        peer = meet(pull, spawn_peer, lib, "push0", role)
        for i in range(20):
            peer.send(b"item %d" % i)
        peer.send_pattern(BIG, 6)
        assert [pull.recv() for _ in range(20)] == [b"item %d" % i for i in range(20)]
        assert pull.recv() == pattern(BIG, 6)


# ---------------------------------------------------------------- REQ/REP


@pytest.fixture
def script_peer() -> Iterator[Callable[..., ScriptPeer]]:
    def start(**cfg: Any) -> ScriptPeer:
        require_peer(cfg["lib"])
        return ScriptPeer(**cfg)

    with closing_all(start) as spawn:
        yield spawn


def joined(sock: purenng.Socket, does: str, **peer: Any) -> dict[str, Any]:
    """The scripted peer's settings; ``sock`` ``does`` dial or listen."""
    if does == "listen":
        return {"dial": sock.listen("ws://127.0.0.1:0/rpc").url, **peer}
    url = peer_url("/rpc")
    sock.dial(url, block=False, reconnect_time_min=0.05)
    return {"listen": url, **peer}


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("lib", LIBS)
def test_nng_req_to_purenng_rep(
    lib: str, role: str, script_peer: Callable[..., ScriptPeer]
) -> None:
    with purenng.Rep0(recv_timeout=T, send_timeout=T) as rep:
        peer = script_peer(**joined(rep, role, lib=lib, role="req", n=10, contexts=0))
        server = serve(rep, 10)
        replies = peer.result()["replies"]
        server.join(T)
    assert {int(j): bytes.fromhex(h) for j, h in replies.items()} == {
        j: b"pure:req %d" % j for j in range(10)
    }


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("lib", LIBS)
def test_purenng_req_to_nng_rep(
    lib: str, role: str, script_peer: Callable[..., ScriptPeer]
) -> None:
    with purenng.Req0(recv_timeout=T, send_timeout=T) as req:
        peer = script_peer(**joined(req, role, lib=lib, role="rep", n=10, contexts=0))
        for i in range(10):
            req.send(b"ask %d" % i)
            assert req.recv() == b"nng:ask %d" % i
    assert peer.result()["served"] == [(b"ask %d" % i).hex() for i in range(10)]


# ---------------------------------------------------------------- refusals and limits


@pytest.mark.parametrize("lib", LIBS)
def test_paths_and_protocols_are_checked_both_ways(
    lib: str, spawn_peer: Callable[..., NngPeerProcess]
) -> None:
    # NNG dialing a path purenng does not serve: 404, which NNG reports as refused.
    with purenng.Pair0() as sock:
        lst = sock.listen("ws://127.0.0.1:0/here")
        with pytest.raises(PeerError, match=r"(?i)refused"):
            spawn_peer(lib, "pair0", dial=lst.url.replace("/here", "/elsewhere"))
        # NNG dialing with the wrong protocol (PULL asks for push.sp.nanomsg.org).
        with pytest.raises(PeerError):
            spawn_peer(lib, "pull0", dial=lst.url)
        assert not sock.pipes
    # purenng dialing NNG: the same refusals, as purenng errors.
    peer = spawn_peer(lib, "pair0", listen=peer_url("/nng"))
    with purenng.Pair0() as sock, pytest.raises(purenng.ConnectionRefused):
        sock.dial(peer.url.replace("/nng", "/other"), block=True)
    with purenng.Push0() as sock, pytest.raises(purenng.ProtocolError, match="400"):
        sock.dial(peer.url, block=True)


@pytest.mark.parametrize("lib", LIBS)
def test_oversized_message_closes_and_the_peer_comes_back(
    lib: str, spawn_peer: Callable[..., NngPeerProcess]
) -> None:
    with purenng.Pair0(recv_timeout=T, recv_max_size=100_000) as sock:
        peer = meet(sock, spawn_peer, lib, "pair0", "listen")
        first = sock.pipes[0]
        peer.send_pattern(100_001)  # one byte over the limit: closed with 1009
        wait_for(lambda: sock.stats()["oversize"] == 1, "the oversize count")
        # NNG redials (its own reconnect timer) and the socket works again.
        wait_for(lambda: sock.pipes and sock.pipes[0] is not first, "NNG to redial")
        peer.send(b"after")
        assert sock.recv() == b"after"


# ---------------------------------------------------------------- nngcat and nanocat


def test_nngcat_dials_purenng(spawn_cli: Callable[..., CliPeer]) -> None:
    with purenng.Pull0(recv_timeout=T) as pull:
        lst = pull.listen("ws://127.0.0.1:0/cat")
        cat = spawn_cli("nngcat", "--push0", "--dial", lst.url, "--data", "hello from nngcat")
        assert pull.recv() == b"hello from nngcat"
        cat.wait()


def test_purenng_dials_nngcat(spawn_cli: Callable[..., CliPeer]) -> None:
    url = peer_url("/cat")
    cat = spawn_cli("nngcat", "--pull0", "--listen", url, "--hex")
    with purenng.Push0(send_timeout=T) as push:
        push.dial(url, block=False, reconnect_time_min=0.05)  # until nngcat is bound
        push.send(b"\x00to nngcat")
        assert cat.messages(1) == [b"\x00to nngcat"]


def test_nanocat_dials_purenng(spawn_cli: Callable[..., CliPeer]) -> None:
    with purenng.Pull0(recv_timeout=T) as pull:
        lst = pull.listen("ws://127.0.0.1:0/nano")
        spawn_cli("nanocat", "--push", "--connect", lst.url, "--data", "hello from nanocat")
        assert pull.recv() == b"hello from nanocat"


def test_purenng_dials_nanocat(spawn_cli: Callable[..., CliPeer]) -> None:
    port = free_tcp_port()
    # nanomsg takes no path when binding and serves every path of the port.
    cat = spawn_cli("nanocat", "--pull", "--bind", f"ws://127.0.0.1:{port}", "--hex")
    with purenng.Push0(send_timeout=T) as push:
        push.dial(f"ws://127.0.0.1:{port}/any", block=False, reconnect_time_min=0.05)
        push.send(b"to nanocat")
        assert cat.messages(1) == [b"to nanocat"]


# ---------------------------------------------------------------- wss


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> CertFiles:
    d: Path = tmp_path_factory.mktemp("wss-interop")
    mine = make_dev_certs().write(d / "mine")
    other = make_dev_certs().write(d / "other")
    return CertFiles(
        mine["ca"],
        mine["server"],
        mine["server_key"],
        mine["client"],
        mine["client_key"],
        other["ca"],
        other["server"],
        other["server_key"],
        other["client"],
        other["client_key"],
    )


@pytest.fixture
def spawn_tls() -> Iterator[Callable[..., TlsPeer]]:
    with closing_all(TlsPeer) as make:
        yield make


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("lib", ["pynng", "nng-ssl"])
def test_wss_pair0_with_verification(
    lib: str, role: str, spawn_tls: Callable[..., TlsPeer], files: CertFiles
) -> None:
    with purenng.Pair0(recv_timeout=T, send_timeout=T, recv_max_size=0) as sock:
        if role == "listen":
            lst = sock.listen("wss://127.0.0.1:0/secure", tls_config=files.server_config())
            peer = spawn_tls(lib, "pair0", dial=lst.url, ca=files.ca, server_name="localhost")
        else:
            url = peer_url("/secure", "wss")
            # The helper reports the address without the path: keep our own URL.
            peer = spawn_tls(lib, "pair0", listen=url, cert=files.server, key=files.server_key)
            sock.dial(url, block=True, tls_config=purenng.TLSConfig(ca_file=files.ca))
        peer.wait_pipes(1)
        peer.send(b"over wss")
        assert sock.recv() == b"over wss"
        sock.send(pattern(BIG, 7))
        assert peer.recv().sha256 == sha(pattern(BIG, 7))


@pytest.mark.parametrize("lib", ["pynng", "nng-ssl"])
def test_wss_refuses_an_untrusted_server(
    lib: str, spawn_tls: Callable[..., TlsPeer], files: CertFiles
) -> None:
    url = peer_url("/secure", "wss")
    spawn_tls(lib, "pair0", listen=url, cert=files.other_server, key=files.other_server_key)
    with purenng.Pair0() as sock, pytest.raises(purenng.TLSError):
        sock.dial(url, block=True, tls_config=purenng.TLSConfig(ca_file=files.ca))
