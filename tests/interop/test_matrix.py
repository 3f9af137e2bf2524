"""The interop matrix: every protocol pair x transport x peer x who dials.

One parametrized test, :func:`test_matrix`, runs one cell per combination of

* a protocol pair, with purenng playing either end where the ends differ
  (:data:`ROWS`: pair0, pair1, push0/pull0, req0/rep0, pub0/sub0,
  surveyor0/respondent0, bus0);
* a transport: tcp, ipc, ws, tls+tcp, wss;
* a peer: pynng (NNG 1.11), the ``nng`` package (NNG 2.0-dev), nngcat
  (NNG 1.5.2) and nanocat (nanomsg 1.1.5; nanomsg has no PAIR v1, so those
  cells do not exist).  Over tls+tcp and wss only pynng (Mbed TLS bundled)
  and nngcat (built with TLS) take part: nanomsg has no TLS and the ``nng``
  package is built without it (:data:`TRANSPORT_PEERS`);
* whether purenng dials or listens.

Each cell does one meaningful exchange in the protocol's direction(s): pair
and bus send both ways, push reaches pull, the requester gets the reply to
its request, a subscriber gets a publication, a surveyor gets the response
to its survey.  ``tests/interop/conftest.py`` collects the outcomes and,
after a complete run of the matrix, writes ``docs/interop.md``.

How the peers are driven, one child process per cell:

* pynng and nng run :data:`PEER_SCRIPT` (a child for the reasons given in
  ``nngpeer.py``); nngcat and nanocat run as they are.  Every peer prints
  each message it receives as one ``--hex`` line, read back by
  :class:`~peers.CliPeer` against a deadline, and sends :data:`PEER_DATA`
  (``--data`` for the tools), or answers with it.
* A peer that listens gets a fixed address and purenng dials it in the
  background with a 50 ms redial; when purenng listens, it is bound before
  the peer starts.  Back-pressure (pair, push, req) makes purenng's first
  send wait for the pipe.
* Lossy patterns repeat rather than sleep: a publisher publishes until the
  subscriber has one, a surveyor repeats its survey while no response came
  (a survey sent before any pipe is up goes nowhere), a bus tool repeats
  its message (``--interval``: whole seconds for nngcat 1.5.2).  purenng
  sends on bus and surveys only once its own pipe is up.
* Peers keep running once they have done their part (a reply must not be
  lost in a closing socket); the fixture kills them at teardown.

Transport details:

* ws and wss URLs carry the path :data:`WS_PATH`, except where nanocat
  binds: nanomsg takes no path when binding and serves every path of its
  port, so nanocat binds ``ws://127.0.0.1:PORT`` and purenng dials
  ``ws://127.0.0.1:PORT/matrix``.
* TLS: one throwaway CA and server certificate per module
  (:func:`purenng.testing.certs.make_dev_certs`); the listener shows the
  server certificate and the dialer verifies it against the CA.  NNG's
  dialers check the URL's host name, which must match the certificate's
  ``localhost``: pynng gets ``server_name="localhost"``, nngcat (no such
  flag) dials ``localhost`` instead of 127.0.0.1.
"""

from __future__ import annotations

import contextlib
import json
import sys
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pytest

import purenng
from purenng.certs import make_dev_certs

from .peers import (
    Addresses,
    CliPeer,
    PeerError,
    T,
    closing_all,
    free_tcp_port,
    require_peer,
    wait_for,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path

pytestmark = pytest.mark.interop

#: (purenng's protocol, the peer's protocol), in table order.
ROWS: tuple[tuple[str, str], ...] = (
    ("pair0", "pair0"),
    ("pair1", "pair1"),
    ("push0", "pull0"),
    ("pull0", "push0"),
    ("req0", "rep0"),
    ("rep0", "req0"),
    ("pub0", "sub0"),
    ("sub0", "pub0"),
    ("surveyor0", "respondent0"),
    ("respondent0", "surveyor0"),
    ("bus0", "bus0"),
)
TRANSPORTS = ("tcp", "ipc", "ws", "tls+tcp", "wss")
PEERS = ("pynng", "nng", "nngcat", "nanocat")
#: The peers of each transport; the others have no cells there (n/a in the
#: table): nanomsg has no TLS, the ``nng`` package is built without it.
TRANSPORT_PEERS: dict[str, tuple[str, ...]] = {
    "tcp": PEERS,
    "ipc": PEERS,
    "ws": PEERS,
    "tls+tcp": ("pynng", "nngcat"),
    "wss": ("pynng", "nngcat"),
}
#: Transports whose endpoints need a TLS configuration.
TLS_TRANSPORTS = frozenset({"tls+tcp", "wss"})
#: The path of every ws/wss URL (a ws listener serves exactly its path).
WS_PATH = "/matrix"
#: What purenng does; the peer does the other.
MODES = ("dial", "listen")
#: Protocols nanomsg (so nanocat) does not have.
NANOMSG_LACKS = frozenset({"pair1"})

#: What every peer sends, or answers with.
PEER_DATA = b"peer-data"
#: What purenng sends, or answers with.
PURE_DATA = b"purenng-data"

#: Cells that cannot pass, each with the verified reason:
#: (transport or None for both, peer, purenng protocol, mode or None) -> reason.
KNOWN_FAILURES: dict[tuple[str | None, str, str, str | None], str] = {}


def _cells() -> list[tuple[str, str, str, str]]:
    return [
        (transport, peer, proto, mode)
        for transport in TRANSPORTS
        for peer in TRANSPORT_PEERS[transport]
        for proto, peer_proto in ROWS
        if not (peer == "nanocat" and peer_proto in NANOMSG_LACKS)
        for mode in MODES
    ]


#: Every cell, as (transport, peer, purenng protocol, mode); the conftest
#: compares the collected cells with this list to tell a complete run.
CELLS: list[tuple[str, str, str, str]] = _cells()


def cell_id(transport: str, peer: str, proto: str, mode: str) -> str:
    """The test id of a cell (the conftest parses it back)."""
    return f"{transport}-{peer}-{proto}-{mode}"


def _known_failure(transport: str, peer: str, proto: str, mode: str) -> str | None:
    for (t, p, pr, m), reason in KNOWN_FAILURES.items():
        if p == peer and pr == proto and t in (None, transport) and m in (None, mode):
            return reason
    return None


def _params() -> list[Any]:
    out = []
    for cell in CELLS:
        reason = _known_failure(*cell)
        marks = [pytest.mark.xfail(strict=True, reason=reason)] if reason else []
        out.append(pytest.param(*cell, id=cell_id(*cell), marks=marks))
    return out


PEER_SCRIPT = r'''
"""A pynng or nng peer for one matrix cell: prints what it receives as --hex lines."""
import json, os, sys, threading, time

cfg = json.loads(sys.argv[1])
lib, proto, timeout = cfg["lib"], cfg["proto"], cfg["timeout"]
DATA = bytes.fromhex(cfg["data"])
watchdog = threading.Timer(3 * timeout, os._exit, (3,))
watchdog.daemon = True
watchdog.start()

def hexline(data):
    print('"' + "".join("\\x%02x" % c for c in data) + '"', flush=True)

ms = int(timeout * 1000)
if lib == "pynng":
    import pynng
    kind = {"pair0": pynng.Pair0, "pair1": pynng.Pair1, "push0": pynng.Push0,
            "pull0": pynng.Pull0, "req0": pynng.Req0, "rep0": pynng.Rep0, "pub0": pynng.Pub0,
            "sub0": pynng.Sub0, "surveyor0": pynng.Surveyor0,
            "respondent0": pynng.Respondent0, "bus0": pynng.Bus0}[proto]
    sock = kind(recv_timeout=ms, send_timeout=ms)
    tls = cfg.get("tls")
    if tls and "listen" in cfg:
        sock.tls_config = pynng.TLSConfig(pynng.TLSConfig.MODE_SERVER,
                                          own_cert_string=tls["cert"], own_key_string=tls["key"])
    elif tls:
        sock.tls_config = pynng.TLSConfig(pynng.TLSConfig.MODE_CLIENT, ca_string=tls["ca"],
                                          server_name=tls["server_name"])
    if "listen" in cfg:
        sock.listen(cfg["listen"])
    else:
        sock.dial(cfg["dial"], block=True)
    recv = lambda: bytes(sock.recv())
else:
    import nng
    assert not cfg.get("tls"), "the nng package has no TLS"
    if proto == "pair0":
        sock = nng.PairSocket(v0=True)
    else:
        kind = {"pair1": nng.PairSocket, "push0": nng.PushSocket, "pull0": nng.PullSocket,
                "req0": nng.ReqSocket, "rep0": nng.RepSocket, "pub0": nng.PubSocket,
                "sub0": nng.SubSocket, "surveyor0": nng.SurveyorSocket,
                "respondent0": nng.RespondentSocket, "bus0": nng.BusSocket}[proto]
        sock = kind()
    sock.recv_timeout = ms
    sock.send_timeout = ms
    if "listen" in cfg:
        sock.add_listener(cfg["listen"]).start()
    else:
        sock.add_dialer(cfg["dial"]).start(block=True)
    recv = lambda: sock.recv().to_bytes()

deadline = time.monotonic() + timeout

def wait_pipe():
    while not sock.pipes:
        if time.monotonic() > deadline:
            raise TimeoutError("no pipe")
        time.sleep(0.005)

def idle():
    time.sleep(max(0.0, deadline - time.monotonic()))

if proto in ("pair0", "pair1", "bus0"):
    if proto == "bus0":
        wait_pipe()  # bus drops what it sends with no pipe
    sock.send(DATA)
    while True:
        hexline(recv())
elif proto in ("rep0", "respondent0"):
    while True:
        hexline(recv())
        sock.send(DATA)
elif proto in ("pull0", "sub0"):
    if proto == "sub0":
        sock.subscribe(b"")
    while True:
        hexline(recv())
elif proto == "push0":
    sock.send(DATA)
    idle()
elif proto == "req0":
    sock.send(DATA)
    hexline(recv())
    idle()
elif proto == "pub0":
    while time.monotonic() < deadline:  # until the subscriber has one
        sock.send(DATA)
        time.sleep(0.02)
elif proto == "surveyor0":
    sock.survey_time = 1000
    wait_pipe()
    while time.monotonic() < deadline:
        sock.send(DATA)
        try:
            hexline(recv())
            break
        except Exception:
            continue  # this survey's deadline: survey again
    idle()
'''


@dataclass(frozen=True)
class Certs:
    """The module's TLS material: PEM text for pynng and purenng, files for nngcat."""

    ca: str
    server: str
    server_key: str
    ca_file: Path
    server_file: Path
    server_key_file: Path

    def server_config(self) -> purenng.TLSConfig:
        return purenng.TLSConfig(cert_data=self.server, key_data=self.server_key)

    def client_config(self) -> purenng.TLSConfig:
        return purenng.TLSConfig(ca_data=self.ca)


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    made = make_dev_certs()
    files = made.write(tmp_path_factory.mktemp("matrix-tls"))
    return Certs(
        made.ca.cert_pem.decode(),
        made.server.cert_pem.decode(),
        made.server.key_pem.decode(),
        files["ca"],
        files["server"],
        files["server_key"],
    )


def _tool_argv(
    tool: str, peer_proto: str, listen: bool, url: str, certs: Certs | None
) -> list[str]:
    """nngcat or nanocat as ``peer_proto``, printing what it receives, sending PEER_DATA."""
    data = PEER_DATA.decode()
    if tool == "nngcat":
        argv = ["nngcat", f"--{peer_proto}", "--listen" if listen else "--dial", url]
        if certs and listen:
            argv += ["--cert", str(certs.server_file), "--key", str(certs.server_key_file)]
        elif certs:
            argv += ["--cacert", str(certs.ca_file)]
        interval = "1"  # nngcat 1.5.2 takes whole seconds only
    else:
        assert certs is None, "nanocat has no TLS"
        argv = ["nanocat", f"--{peer_proto.removesuffix('0')}"]
        argv += ["--bind" if listen else "--connect", url]
        interval = "0.05"
    extra = {
        "pair0": ["--hex", "--data", data],
        "pair1": ["--hex", "--data", data],
        "bus0": ["--hex", "--data", data, "--interval", interval],
        "push0": ["--data", data] + (["--count", "1"] if tool == "nngcat" else []),
        "pull0": ["--hex"],
        "req0": ["--hex", "--data", data],
        "rep0": ["--hex", "--data", data],
        "pub0": ["--data", data, "--interval", interval],
        "sub0": ["--hex", "--subscribe", PURE_DATA[:4].decode()],
        "surveyor0": ["--hex", "--data", data, "--interval", interval],
        "respondent0": ["--hex", "--data", data],
    }[peer_proto]
    return argv + extra


@pytest.fixture
def spawn() -> Iterator[Callable[..., CliPeer]]:
    """Start one cell's peer; it is killed at teardown if still running."""

    def start(
        peer: str, peer_proto: str, listen: bool, url: str, certs: Certs | None = None
    ) -> CliPeer:
        require_peer(peer)
        if peer in ("pynng", "nng"):
            cfg: dict[str, Any] = {
                "lib": peer,
                "proto": peer_proto,
                "timeout": T,
                "data": PEER_DATA.hex(),
                "listen" if listen else "dial": url,
            }
            if certs and listen:
                cfg["tls"] = {"cert": certs.server, "key": certs.server_key}
            elif certs:
                cfg["tls"] = {"ca": certs.ca, "server_name": "localhost"}
            argv = [sys.executable, "-c", PEER_SCRIPT, json.dumps(cfg)]
        else:
            argv = _tool_argv(peer, peer_proto, listen, url, certs)
        return CliPeer(argv)

    with closing_all(start) as spawn:
        yield spawn


def _socket(proto: str) -> purenng.Socket:
    kw: dict[str, Any] = {"recv_timeout": T, "send_timeout": T}
    if proto == "surveyor0":
        kw["survey_time"] = 1.0
    if proto == "respondent0":
        kw["recv_timeout"] = 0.05  # the answering thread polls its stop flag
    cls: type[purenng.Socket] = getattr(purenng, proto.capitalize())
    return cls(**kw)


def _wait_pipe(sock: purenng.Socket) -> None:
    wait_for(lambda: len(sock.pipes) >= 1, "purenng's pipe")


def _exchange(sock: purenng.Socket, proto: str, peer: CliPeer) -> None:
    """One exchange in ``proto``'s direction(s); asserts what each side got."""
    if proto in ("pair0", "pair1", "bus0"):
        if proto == "bus0":
            _wait_pipe(sock)
        sock.send(PURE_DATA)
        assert sock.recv() == PEER_DATA
        assert peer.messages(1) == [PURE_DATA]
    elif proto == "push0":
        sock.send(PURE_DATA)
        assert peer.messages(1) == [PURE_DATA]
    elif proto == "pull0":
        assert sock.recv() == PEER_DATA
    elif proto == "req0":
        sock.send(PURE_DATA)
        assert sock.recv() == PEER_DATA
        assert peer.messages(1) == [PURE_DATA]
    elif proto == "rep0":
        assert sock.recv() == PEER_DATA
        sock.send(PURE_DATA)
        assert peer.messages(1) == [PURE_DATA]
    elif proto == "sub0":
        assert isinstance(sock, purenng.Sub0)
        sock.subscribe(PEER_DATA[:4])
        assert sock.recv() == PEER_DATA
    elif proto == "pub0":
        # Publish until the subscriber has one (bounded: 200 x 50 ms).
        for _ in range(200):
            sock.send(PURE_DATA)
            with contextlib.suppress(PeerError):
                assert peer.messages(1, timeout=0.05) == [PURE_DATA]
                break
        else:
            raise AssertionError("the subscriber got no publication")
    elif proto == "surveyor0":
        _wait_pipe(sock)
        for _ in range(5):  # a survey whose response missed its deadline is repeated
            sock.send(PURE_DATA)
            with contextlib.suppress(purenng.Timeout):
                assert sock.recv() == PEER_DATA
                break
        else:
            raise AssertionError("no response to five surveys")
        assert peer.messages(1)[0] == PURE_DATA
    elif proto == "respondent0":
        stop = threading.Event()
        seen: list[bytes] = []

        def answer() -> None:
            while not stop.is_set():
                try:
                    seen.append(sock.recv())
                except purenng.Timeout:
                    continue
                except purenng.Closed:
                    return
                sock.send(PURE_DATA)

        t = threading.Thread(target=answer)
        t.start()
        try:
            assert peer.messages(1) == [PURE_DATA]
        finally:
            stop.set()
            t.join(T)
        assert seen
        assert set(seen) == {PEER_DATA}
    else:
        raise ValueError(f"unknown protocol {proto!r}")


def _purenng_listen_url(transport: str, addr: Addresses) -> str:
    """Where purenng listens (port 0: the listener reports the bound URL)."""
    if transport in ("ws", "wss"):
        return f"{transport}://127.0.0.1:0{WS_PATH}"
    if transport == "tls+tcp":
        return "tls+tcp://127.0.0.1:0"
    return addr.listen_url(transport)


def _peer_listen_urls(transport: str, peer: str, addr: Addresses) -> tuple[str, str]:
    """(the URL the peer listens on, the URL purenng dials), a port picked now."""
    if transport in ("ws", "wss"):
        base = f"{transport}://127.0.0.1:{free_tcp_port()}"
        # nanomsg binds without a path and serves every path of the port.
        return (base if peer == "nanocat" else base + WS_PATH), base + WS_PATH
    if transport == "tls+tcp":
        url = f"tls+tcp://127.0.0.1:{free_tcp_port()}"
        return url, url
    url = addr.fixed_url(transport)
    return url, url


@pytest.mark.parametrize(("transport", "peer", "proto", "mode"), _params())
def test_matrix(
    transport: str,
    peer: str,
    proto: str,
    mode: str,
    spawn: Callable[..., CliPeer],
    addr: Addresses,
    request: pytest.FixtureRequest,
) -> None:
    peer_proto = dict(ROWS)[proto]
    tls: Certs | None = None
    kw: dict[str, Any] = {}
    if transport in TLS_TRANSPORTS:
        tls = request.getfixturevalue("certs")
        assert tls is not None
        kw["tls_config"] = tls.server_config() if mode == "listen" else tls.client_config()
    with _socket(proto) as sock:
        if mode == "listen":
            url = sock.listen(_purenng_listen_url(transport, addr), **kw).url
            if tls and peer == "nngcat":  # no server-name flag: dial the certificate's name
                url = url.replace("127.0.0.1", "localhost")
            cli = spawn(peer, peer_proto, False, url, tls)
        else:
            peer_url, url = _peer_listen_urls(transport, peer, addr)
            cli = spawn(peer, peer_proto, True, peer_url, tls)
            sock.dial(url, block=False, reconnect_time_min=0.05, **kw)
        _exchange(sock, proto, cli)
