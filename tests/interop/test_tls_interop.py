"""tls+tcp:// against NNG's own TLS: pynng (NNG 1.11), nng-ssl (NNG 2.0) and nngcat.

Verification is on in every exchange: the side that dials checks the
listener's certificate against the test CA.  pynng and nng-ssl bundle Mbed
TLS, so these tests also prove OpenSSL (purenng) and Mbed TLS agree.

* nng-ssl installs the same ``nng`` module as the ``nng`` package, so it
  lives in a venv of its own: ``.venv-nngssl`` (``make nngssl``; CI's
  ``make test`` makes it), or the Python named by ``PURENNG_NNGSSL_PYTHON``.
* NNG dialers take the URL's host as the server name; Mbed TLS checks a
  name, so peers that dial get ``--server-name localhost`` and the URL keeps
  127.0.0.1 (``localhost`` could resolve to ::1 first, where nobody listens).
  nngcat has no server-name flag: it dials ``localhost``.
* A missing peer skips, or fails with ``PURENNG_REQUIRE_PEERS`` set.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

import purenng
from purenng.certs import make_dev_certs
from support.pipes import stream_pipe

from .nngpeer import pattern
from .peers import (
    REQUIRE_ENV,
    ChildProcess,
    CliPeer,
    NngPeerProcess,
    PeerError,
    T,
    closing_all,
    free_tcp_port,
    require_peer,
    wait_for,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

pytestmark = pytest.mark.interop

TLS_PEER = Path(__file__).with_name("tlspeer.py")
REPO = Path(__file__).resolve().parents[2]
#: purenng's name for each NNG binding here.
LIBS = ("pynng", "nng-ssl")
ROLES = ("dial", "listen")


@dataclass(frozen=True)
class CertFiles:
    ca: Path
    server: Path
    server_key: Path
    client: Path
    client_key: Path
    other_ca: Path
    other_server: Path
    other_server_key: Path
    other_client: Path
    other_client_key: Path

    def server_config(self, **kw: Any) -> purenng.TLSConfig:
        return purenng.TLSConfig(
            cert_file=self.server, key_file=self.server_key, ca_file=self.ca, **kw
        )

    def client_config(self, **kw: Any) -> purenng.TLSConfig:
        return purenng.TLSConfig(
            cert_file=self.client, key_file=self.client_key, ca_file=self.ca, **kw
        )


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> CertFiles:
    d = tmp_path_factory.mktemp("tls-interop")
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


def nngssl_python() -> str | None:
    """The Python of the nng-ssl venv, if it is there and has TLS."""
    exe = os.environ.get("PURENNG_NNGSSL_PYTHON") or str(REPO / ".venv-nngssl" / "bin" / "python")
    if not Path(exe).is_file():
        return None
    probe = subprocess.run(
        [exe, "-c", "import nng; print(nng.tls_engine_name())"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if probe.returncode != 0 or probe.stdout.strip() in ("", "none"):
        return None
    return exe


_NNGSSL: list[str | None] = []


def require_lib(lib: str) -> str:
    """The Python to run ``lib``'s peer with (skip, or fail, when missing)."""
    if lib == "pynng":
        require_peer("pynng")
        return sys.executable
    if not _NNGSSL:
        _NNGSSL.append(nngssl_python())
    exe = _NNGSSL[0]
    if exe is None:
        why = "nng-ssl is not installed in .venv-nngssl (make nngssl)"
        if os.environ.get(REQUIRE_ENV):
            pytest.fail(f"{why}, and {REQUIRE_ENV} is set")
        pytest.skip(why)
    return exe


class TlsPeer(NngPeerProcess):
    """:class:`NngPeerProcess` running ``tlspeer.py`` (TLS options, chosen Python)."""

    def __init__(self, lib: str, proto: str, *, timeout: float = T, **opts: Any) -> None:
        python = require_lib(lib)
        argv = [python, str(TLS_PEER), "--lib", "pynng" if lib == "pynng" else "nng"]
        argv += ["--proto", proto, "--timeout", str(timeout), "--lifetime", str(6 * timeout)]
        for key, value in opts.items():
            if value is not None:
                argv += [f"--{key.replace('_', '-')}", str(value)]
        self.lib = lib
        self.timeout = timeout
        self._child = ChildProcess(argv, stdin=True)
        try:
            ready = self._reply(timeout)
            if ready.get("event") != "ready":
                raise PeerError(f"peer did not start: {json.dumps(ready)}")
        except BaseException:
            self._child.close()
            raise
        self.url: str = ready["url"]


@pytest.fixture
def spawn() -> Iterator[Callable[..., TlsPeer]]:
    with closing_all(TlsPeer) as make:
        yield make


def _connect(
    sock: purenng.Socket,
    spawn: Callable[..., TlsPeer],
    files: CertFiles,
    lib: str,
    proto: str,
    role: str,
) -> TlsPeer:
    """purenng does ``role``; the dialing side verifies the listener's certificate."""
    if role == "listen":
        lst = sock.listen("tls+tcp://127.0.0.1:0", tls_config=files.server_config())
        return spawn(lib, proto, dial=lst.url, ca=files.ca, server_name="localhost")
    peer = spawn(
        lib, proto, listen="tls+tcp://127.0.0.1:0", cert=files.server, key=files.server_key
    )
    sock.dial(peer.url, block=True, tls_config=purenng.TLSConfig(ca_file=files.ca))
    return peer


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("lib", LIBS)
def test_pair0(lib: str, role: str, spawn: Callable[..., TlsPeer], files: CertFiles) -> None:
    with purenng.Pair0(recv_timeout=T, send_timeout=T) as sock:
        peer = _connect(sock, spawn, files, lib, "pair0", role)
        # The peer's dial may return before purenng has attached its side.
        wait_for(lambda: sock.pipes, "purenng's pipe")
        pipe = sock.pipes[0]
        assert pipe.transport == "tls+tcp"
        if role == "dial":
            assert stream_pipe(pipe).extra("tls_peer_cn") == "localhost"
        for i in range(3):
            out = b"purenng %d \x00\xff" % i
            sock.send(out)
            assert peer.recv().data == out
            back = b"%s %d" % (lib.encode(), i)
            peer.send(back)
            assert sock.recv() == back
        peer.send_pattern(300_000, seed=7)
        assert sock.recv() == pattern(300_000, seed=7)


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("lib", LIBS)
def test_push_pull(lib: str, role: str, spawn: Callable[..., TlsPeer], files: CertFiles) -> None:
    """purenng pushes to the peer's pull when it listens, pulls from its push when it dials."""
    if role == "listen":
        with purenng.Push0(send_timeout=T) as push:
            peer = _connect(push, spawn, files, lib, "pull0", role)
            for i in range(5):
                push.send(b"job %d" % i)
            assert [peer.recv().data for _ in range(5)] == [b"job %d" % i for i in range(5)]
    else:
        with purenng.Pull0(recv_timeout=T) as pull:
            peer = _connect(pull, spawn, files, lib, "push0", role)
            for i in range(5):
                peer.send(b"work %d" % i)
            assert [pull.recv() for _ in range(5)] == [b"work %d" % i for i in range(5)]


@pytest.mark.parametrize("lib", LIBS)
def test_mutual_auth_purenng_listens(
    lib: str, spawn: Callable[..., TlsPeer], files: CertFiles
) -> None:
    with purenng.Pair0(recv_timeout=T) as sock:
        lst = sock.listen(
            "tls+tcp://127.0.0.1:0", tls_config=files.server_config(auth_mode="required")
        )
        common = {"dial": lst.url, "ca": files.ca, "server_name": "localhost"}
        peer = spawn(lib, "pair0", cert=files.client, key=files.client_key, **common)
        peer.send(b"with a client certificate")
        assert sock.recv() == b"with a client certificate"
        assert stream_pipe(sock.pipes[0]).extra("tls_peer_cn") == "purenng client"
        # An untrusted client certificate is refused: the peer's dial fails
        # (or, now and then with pynng, never completes: a short limit).
        with pytest.raises(PeerError):
            spawn(
                lib,
                "pair0",
                cert=files.other_client,
                key=files.other_client_key,
                timeout=3.0,
                **common,
            )
        assert len(sock.pipes) == 1


@pytest.mark.parametrize("lib", LIBS)
def test_mutual_auth_peer_listens(
    lib: str, spawn: Callable[..., TlsPeer], files: CertFiles
) -> None:
    peer = spawn(
        lib,
        "pair0",
        listen="tls+tcp://127.0.0.1:0",
        cert=files.server,
        key=files.server_key,
        ca=files.ca,
        auth_mode="required",
    )
    with purenng.Pair0(recv_timeout=T) as sock:
        sock.dial(peer.url, block=True, tls_config=files.client_config())
        sock.send(b"mutual")
        assert peer.recv().data == b"mutual"
    with purenng.Pair0() as sock, pytest.raises(purenng.TLSError) as info:
        sock.dial(peer.url, block=True, tls_config=purenng.TLSConfig(ca_file=files.ca))
    # NNG's Mbed TLS sends an alert; purenng names what it says.
    assert "certificate" in str(info.value)


@pytest.mark.parametrize("lib", LIBS)
def test_verification_failures(lib: str, spawn: Callable[..., TlsPeer], files: CertFiles) -> None:
    # purenng dials a peer whose certificate our CA did not sign.
    peer = spawn(
        lib,
        "pair0",
        listen="tls+tcp://127.0.0.1:0",
        cert=files.other_server,
        key=files.other_server_key,
    )
    with purenng.Pair0() as sock, pytest.raises(purenng.TLSError) as info:
        sock.dial(peer.url, block=True, tls_config=purenng.TLSConfig(ca_file=files.ca))
    assert info.value.verify_code == 20
    # The peer dials purenng, whose certificate its CA did not sign.
    with purenng.Pair0() as sock:
        lst = sock.listen("tls+tcp://127.0.0.1:0", tls_config=files.server_config())
        with pytest.raises(PeerError, match=r"did not start"):
            spawn(lib, "pair0", dial=lst.url, ca=files.other_ca, server_name="localhost")
        assert not sock.pipes


# ---------------------------------------------------------------- nngcat


def _nngcat_tls_args(files: CertFiles, *, server: bool) -> list[str]:
    if server:
        return ["--cert", str(files.server), "--key", str(files.server_key)]
    return ["--cacert", str(files.ca)]


def test_nngcat_dials_purenng(
    spawn_cli: Callable[..., CliPeer], files: CertFiles, tmp_path: Path
) -> None:
    with purenng.Pull0(recv_timeout=T) as pull:
        lst = pull.listen("tls+tcp://127.0.0.1:0", tls_config=files.server_config())
        url = lst.url.replace("127.0.0.1", "localhost")
        cat = spawn_cli(
            "nngcat", "--push0", "--dial", url, *_nngcat_tls_args(files, server=False),
            "--data", "from nngcat",
        )  # fmt: skip
        assert pull.recv() == b"from nngcat"
        assert cat.wait() == 0


def test_purenng_dials_nngcat(spawn_cli: Callable[..., CliPeer], files: CertFiles) -> None:
    port = free_tcp_port()
    url = f"tls+tcp://127.0.0.1:{port}"
    cat = spawn_cli(
        "nngcat", "--pull0", "--listen", url, *_nngcat_tls_args(files, server=True), "--hex"
    )
    with purenng.Push0(send_timeout=T) as push:
        # nngcat may not be bound yet: dial in the background, send when connected.
        push.dial(url, block=False, tls_config=purenng.TLSConfig(ca_file=files.ca))
        push.send(b"to nngcat over tls")
        assert cat.messages(1) == [b"to nngcat over tls"]
