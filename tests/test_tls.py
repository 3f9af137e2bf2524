"""tls+tcp://, purenng.TLSConfig and the TLS engine hook.

Certificates are made per module by :mod:`purenng.testing.certs` (ECDSA,
milliseconds each).  The scenarios that depend on the event loop's SSL
implementation (adopting the SSL transport, a server's silent rejection, the
handshake timeout) run on asyncio and, when installed, on uvloop.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import pickle
import socket
import ssl
from typing import TYPE_CHECKING, Any

import pytest

import purenng
from purenng.certs import DevCerts, make_dev_certs
from purenng.core import registry as registry_mod
from purenng.core.hookspecs import hookimpl
from purenng.tls_config import SSLEngine, TLSConfig, TLSEngine
from support.pipes import stream_pipe
from support.waiting import await_for

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Iterator
    from pathlib import Path

T = 10.0  # only stops hangs


@pytest.fixture(scope="module")
def certs() -> DevCerts:
    return make_dev_certs()


@pytest.fixture(scope="module")
def other() -> DevCerts:
    """A second, unrelated CA with its own certificates."""
    return make_dev_certs()


@pytest.fixture
def global_registry() -> Iterator[None]:
    saved = registry_mod._registry
    yield
    registry_mod._registry = saved


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


async def _pair(
    server: TLSConfig, client: TLSConfig | None, host: str = "127.0.0.1", **dial_kw: Any
) -> tuple[purenng.Pair0, purenng.Pair0]:
    """A listening and a dialing Pair0 over tls+tcp (the caller closes both)."""
    a = purenng.Pair0(recv_timeout=T)
    b = purenng.Pair0(recv_timeout=T)
    try:
        lst = await a.alisten("tls+tcp://127.0.0.1:0", tls_config=server)
        url = lst.url.replace("127.0.0.1", host)
        if client is not None:
            dial_kw["tls_config"] = client
        await b.adial(url, block=True, **dial_kw)
    except BaseException:
        await a.aclose()
        await b.aclose()
        raise
    return a, b


async def _dial_error(
    server: TLSConfig, client: TLSConfig | None, good: TLSConfig | None = None, **kw: Any
) -> BaseException:
    """The error of a blocking dial; then ``good`` (if given) proves the listener still serves."""
    a = purenng.Pair0(recv_timeout=T)
    b = purenng.Pair0(recv_timeout=T)
    async with a, b:
        lst = await a.alisten("tls+tcp://127.0.0.1:0", tls_config=server)
        host = kw.pop("host", "127.0.0.1")
        if client is not None:
            kw["tls_config"] = client
        with pytest.raises(purenng.Error) as info:
            await b.adial(lst.url.replace("127.0.0.1", host), block=True, **kw)
        assert not a.pipes
        if good is not None:
            async with purenng.Pair0(recv_timeout=T) as c:
                await c.adial(lst.url, block=True, tls_config=good)
                await c.asend(b"still serving")
                assert await a.arecv() == b"still serving"
    return info.value


# ---------------------------------------------------------------- exchange


async def test_pair0_exchange_and_peer_details(certs: DevCerts) -> None:
    a, b = await _pair(certs.server_config(), certs.client_config(), host="localhost")
    async with a, b:
        await b.asend(b"hello over tls")
        assert await a.arecv() == b"hello over tls"
        await a.asend(b"x" * 300_000)
        assert await b.arecv() == b"x" * 300_000
        pb = stream_pipe(b.pipes[0])
        assert pb.transport == "tls+tcp"
        assert pb.extra("tls_version") in ("TLSv1.2", "TLSv1.3")
        # The dialer verified the server: its certificate is there.
        assert pb.extra("tls_verified") is True
        assert pb.extra("tls_peer_cn") == "localhost"
        cert = pb.peer_certificate
        assert cert is not None
        assert (("commonName", "localhost"),) in cert["subject"]
        assert pb.remote_address[1] == a.listeners[0].port
        # The listener asked for no client certificate (NNG's default).
        pa = stream_pipe(a.pipes[0])
        assert pa.peer_certificate is None
        assert pa.extra("tls_verified") is False


def test_push_pull_blocking_api_socket_wide_config(certs: DevCerts) -> None:
    """Blocking API on the background loop (uvloop when installed), options socket-wide."""
    with (
        purenng.Pull0(tls_config=certs.server_config(), recv_timeout=T) as pull,
        purenng.Push0(tls_config=certs.client_config(), send_timeout=T) as push,
    ):
        lst = pull.listen("tls+tcp://127.0.0.1:0")
        assert lst.url.startswith("tls+tcp://127.0.0.1:")
        push.dial(lst.url, block=True)
        sizes = [0, 1, 1000, 70_000, 1 << 20]
        for n in sizes:
            push.send(bytes([n % 251]) * n)
        for n in sizes:
            assert pull.recv() == bytes([n % 251]) * n


async def _flood(certs: DevCerts, n: int = 400) -> None:
    """A sender far ahead of a slow receiver: back-pressure over the SSL transport."""
    async with (
        purenng.Pull0(recv_timeout=T, recv_buffer=4) as pull,
        purenng.Push0(send_timeout=T) as push,
    ):
        lst = await pull.alisten("tls+tcp://127.0.0.1:0", tls_config=certs.server_config())
        await push.adial(lst.url, block=True, tls_config=certs.client_config())

        async def send_all() -> None:
            for i in range(n):
                await push.asend(i.to_bytes(4, "big") * 2048)

        sender = asyncio.create_task(send_all())
        # Let the sender run ahead until buffers fill and reading pauses.
        await await_for(lambda: pull.pipes[0].msgs_in >= 4, "the first messages")
        for i in range(n):
            assert await pull.arecv() == i.to_bytes(4, "big") * 2048
        async with asyncio.timeout(T):
            await sender


async def test_flow_control_under_load(certs: DevCerts) -> None:
    await _flood(certs)


async def test_tls_tcp6_and_family_checks(certs: DevCerts) -> None:
    if not socket.has_ipv6:
        pytest.skip("no IPv6 on this host")
    async with purenng.Pair0(recv_timeout=T) as a, purenng.Pair0(recv_timeout=T) as b:
        try:
            lst = await a.alisten("tls+tcp6://[::1]:0", tls_config=certs.server_config())
        except purenng.BadAddress:
            pytest.skip("::1 not available")
        assert lst.url.startswith("tls+tcp6://[::1]:")
        await b.adial(lst.url, block=True, tls_config=certs.client_config())
        await b.asend(b"v6")
        assert await a.arecv() == b"v6"
        with pytest.raises(purenng.BadAddress, match="tcp4"):
            await b.adial("tls+tcp4://[::1]:5555", tls_config=certs.client_config())
        with pytest.raises(purenng.BadAddress, match="tcp6"):
            await b.adial("tls+tcp6://127.0.0.1:5555", tls_config=certs.client_config())


# ---------------------------------------------------------------- verification


async def test_untrusted_server_is_refused(certs: DevCerts, other: DevCerts) -> None:
    err = await _dial_error(certs.server_config(), other.client_config(), certs.client_config())
    assert isinstance(err, purenng.TLSError)
    assert isinstance(err, purenng.ProtocolError)
    assert err.verify_code == 20
    assert "unable to get local issuer certificate" in str(err)


async def test_expired_server_certificate(certs: DevCerts) -> None:
    old = certs.ca.issue(
        "localhost", not_before=_now() - dt.timedelta(days=10), not_after=_now() - dt.timedelta(1)
    )
    server = TLSConfig(cert_data=old.cert_pem, key_data=old.key_pem, ca_data=certs.ca.cert_pem)
    err = await _dial_error(server, certs.client_config())
    assert isinstance(err, purenng.TLSError)
    assert err.verify_code == 10
    assert "certificate has expired" in str(err)


async def test_wrong_host_and_server_name(certs: DevCerts) -> None:
    elsewhere = certs.ca.issue("example.org", hosts=("example.org",))
    server = TLSConfig(
        cert_data=elsewhere.cert_pem, key_data=elsewhere.key_pem, ca_data=certs.ca.cert_pem
    )
    err = await _dial_error(server, certs.client_config(), host="localhost")
    assert isinstance(err, purenng.TLSError)
    assert "Hostname mismatch" in str(err)
    assert "localhost" in str(err)
    good = certs.client_config(server_name="example.org")
    err = await _dial_error(server, certs.client_config(), good)
    assert isinstance(err, purenng.TLSError)
    assert "IP address mismatch" in str(err)
    # server_name overrides the URL's host, for verification and SNI.
    a, b = await _pair(server, certs.client_config(server_name="example.org"))
    async with a, b:
        assert stream_pipe(b.pipes[0]).extra("tls_peer_cn") == "example.org"


async def test_dialer_without_verification(certs: DevCerts, other: DevCerts) -> None:
    """auth_mode "none" (or "optional") on a dialer: encrypted, any certificate accepted."""
    for mode in ("none", "optional"):
        a, b = await _pair(certs.server_config(), TLSConfig(auth_mode=mode))
        async with a, b:
            await b.asend(b"unverified")
            assert await a.arecv() == b"unverified"
            assert stream_pipe(b.pipes[0]).extra("tls_verified") is False


async def test_default_dialer_uses_system_trust(certs: DevCerts) -> None:
    """No tls_config on a dialer: the system store, which does not know our dev CA."""
    err = await _dial_error(certs.server_config(), None, certs.client_config())
    assert isinstance(err, purenng.TLSError)
    assert err.verify_code == 20


async def test_mutual_auth_required(certs: DevCerts) -> None:
    a, b = await _pair(certs.server_config(auth_mode="required"), certs.client_config())
    async with a, b:
        await b.asend(b"mutual")
        assert await a.arecv() == b"mutual"
        pa = stream_pipe(a.pipes[0])
        assert pa.extra("tls_verified") is True
        assert pa.extra("tls_peer_cn") == "purenng client"
        assert pa.peer_certificate is not None


async def test_mutual_auth_required_without_client_cert(certs: DevCerts) -> None:
    err = await _dial_error(
        certs.server_config(auth_mode="required"),
        TLSConfig(ca_data=certs.ca.cert_pem),
        certs.client_config(),
    )
    assert isinstance(err, purenng.TLSError)
    assert "client certificate" in str(err)


async def test_mutual_auth_required_untrusted_client(certs: DevCerts, other: DevCerts) -> None:
    err = await _dial_error(
        certs.server_config(auth_mode="required"),
        other.client_config(ca_data=certs.ca.cert_pem),
        certs.client_config(),
    )
    assert isinstance(err, purenng.TLSError)


async def test_mutual_auth_optional(certs: DevCerts, other: DevCerts) -> None:
    server = certs.server_config(auth_mode="optional")
    a, b = await _pair(server, TLSConfig(ca_data=certs.ca.cert_pem))
    async with a, b:
        await b.asend(b"anonymous")
        assert await a.arecv() == b"anonymous"
        assert a.pipes[0].peer_certificate is None
    a, b = await _pair(server, certs.client_config())
    async with a, b:
        await b.asend(b"known")
        assert await a.arecv() == b"known"
        assert stream_pipe(a.pipes[0]).extra("tls_peer_cn") == "purenng client"
    # A certificate that is presented must still verify.
    err = await _dial_error(
        server, other.client_config(ca_data=certs.ca.cert_pem), certs.client_config()
    )
    assert isinstance(err, purenng.TLSError)


async def test_no_common_version(certs: DevCerts) -> None:
    err = await _dial_error(
        certs.server_config(min_version="1.3"), certs.client_config(max_version="1.2")
    )
    assert isinstance(err, purenng.TLSError)
    # Python's server drops its alert and closes; the client can say no more than that.
    assert "closed the connection" in str(err)


async def test_nonblocking_dial_keeps_the_reason(certs: DevCerts, other: DevCerts) -> None:
    async with purenng.Pair0() as a, purenng.Pair0() as b:
        lst = await a.alisten("tls+tcp://127.0.0.1:0", tls_config=certs.server_config())
        d = await b.adial(
            lst.url, block=False, tls_config=other.client_config(), reconnect_time_min=0.05
        )
        await await_for(lambda: d.last_error is not None, "a failed attempt")
        assert isinstance(d.last_error, purenng.TLSError)
        assert not b.pipes


# ---------------------------------------------------------------- not TLS on one side


async def test_tls_dialer_to_plaintext_listener(certs: DevCerts) -> None:
    async with purenng.Pair0() as a, purenng.Pair0() as b:
        lst = await a.alisten("tcp://127.0.0.1:0")
        url = lst.url.replace("tcp://", "tls+tcp://")
        with pytest.raises(purenng.TLSError, match="does not speak TLS"):
            await b.adial(url, block=True, tls_config=certs.client_config())
        assert not a.pipes


async def test_plaintext_dialer_to_tls_listener(certs: DevCerts) -> None:
    async with purenng.Pair0(recv_timeout=T) as a, purenng.Pair0() as b:
        lst = await a.alisten("tls+tcp://127.0.0.1:0", tls_config=certs.server_config())
        with pytest.raises((purenng.ProtocolError, purenng.ConnectionReset)):
            await b.adial(lst.url.replace("tls+tcp://", "tcp://"), block=True)
        assert not a.pipes
        async with purenng.Pair0() as c:
            await c.adial(lst.url, block=True, tls_config=certs.client_config())
            await c.asend(b"after plaintext")
            assert await a.arecv() == b"after plaintext"


# ---------------------------------------------------------------- handshake timeouts


async def _silent_server_dial(certs: DevCerts) -> BaseException:
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen()
    try:
        async with purenng.Pair0() as b:
            port = srv.getsockname()[1]
            with pytest.raises(purenng.Timeout) as info:
                await b.adial(
                    f"tls+tcp://127.0.0.1:{port}",
                    block=True,
                    tls_config=certs.client_config(),
                    tls_handshake_timeout=0.2,
                )
    finally:
        srv.close()
    return info.value


async def test_dialer_handshake_timeout(certs: DevCerts) -> None:
    err = await _silent_server_dial(certs)
    assert "TLS handshake" in str(err)


async def test_listener_drops_a_silent_client(certs: DevCerts) -> None:
    """A client that connects and never says hello is cut off after the timeout."""
    async with purenng.Pair0() as a:
        lst = await a.alisten(
            "tls+tcp://127.0.0.1:0", tls_config=certs.server_config(), tls_handshake_timeout=0.2
        )
        loop = asyncio.get_running_loop()
        raw = socket.socket()
        raw.setblocking(False)
        try:
            await loop.sock_connect(raw, ("127.0.0.1", lst.port))
            async with asyncio.timeout(T):
                assert await loop.sock_recv(raw, 100) == b""  # closed by the listener
        finally:
            raw.close()
        assert not a.pipes


async def test_listener_speaks_sp_inside_tls(certs: DevCerts) -> None:
    """A plain ssl client sees the listener's SP header as the first bytes inside TLS."""
    ctx = certs.client_config().client_context("127.0.0.1")
    async with purenng.Pair0() as a:
        lst = await a.alisten("tls+tcp://127.0.0.1:0", tls_config=certs.server_config())
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", lst.port, ssl=ctx, server_hostname="127.0.0.1"
        )
        try:
            # The listener speaks first: its SP header arrives over TLS.
            async with asyncio.timeout(T):
                assert await reader.readexactly(8) == b"\x00SP\x00\x00\x10\x00\x00"
        finally:
            writer.close()
            try:
                await writer.wait_closed()
            except (ssl.SSLError, ConnectionError):
                pass


# ---------------------------------------------------------------- the same on uvloop


def _on_uvloop(coro: Callable[[], Awaitable[None]]) -> None:
    uvloop = pytest.importorskip("uvloop")
    uvloop.run(coro())


def test_uvloop_exchange_rejection_and_timeout(certs: DevCerts, other: DevCerts) -> None:
    async def scenario() -> None:
        a, b = await _pair(certs.server_config(), certs.client_config())
        async with a, b:
            await b.asend(b"uv" * 100_000)
            assert await a.arecv() == b"uv" * 100_000
            await a.asend(b"back")
            assert await b.arecv() == b"back"
        err = await _dial_error(
            certs.server_config(auth_mode="required"), TLSConfig(ca_data=certs.ca.cert_pem)
        )
        assert isinstance(err, purenng.TLSError)
        assert "client certificate" in str(err)
        err = await _dial_error(certs.server_config(), other.client_config())
        assert isinstance(err, purenng.TLSError)
        assert err.verify_code == 20
        await _silent_server_dial(certs)
        await _flood(certs)

    _on_uvloop(scenario)


# ---------------------------------------------------------------- TLSConfig


def test_config_defaults_follow_nng() -> None:
    cfg = TLSConfig()
    assert cfg.mode_for(server_side=False) == "required"
    assert cfg.mode_for(server_side=True) == "none"
    assert cfg.server_hostname("[::1]") == "::1"
    assert cfg.server_hostname("host.example") == "host.example"
    assert TLSConfig(server_name="x").server_hostname("y") == "x"
    ctx = cfg.client_context("host.example")
    assert ctx.verify_mode == ssl.CERT_REQUIRED
    assert ctx.check_hostname
    assert ctx.minimum_version == ssl.TLSVersion.TLSv1_2
    assert cfg.client_context("host.example") is ctx  # cached


def test_config_server_context_modes(certs: DevCerts) -> None:
    assert certs.server_config().server_context().verify_mode == ssl.CERT_NONE
    opt = certs.server_config(auth_mode="optional").server_context()
    assert opt.verify_mode == ssl.CERT_OPTIONAL
    req = certs.server_config(auth_mode="required", min_version="1.3").server_context()
    assert req.verify_mode == ssl.CERT_REQUIRED
    assert req.minimum_version == ssl.TLSVersion.TLSv1_3


def test_config_from_files(tmp_path: Path, certs: DevCerts) -> None:
    paths = certs.write(tmp_path)
    cfg = TLSConfig(cert_file=paths["server"], key_file=paths["server_key"], ca_file=paths["ca"])
    assert cfg.cert_file == str(paths["server"])
    cfg.check(server_side=True)
    # A combined cert-and-key file (NNG's "cert-key file").
    both = tmp_path / "both.pem"
    both.write_bytes(certs.server.cert_pem + certs.server.key_pem)
    TLSConfig(cert_file=both).check(server_side=True)


@pytest.mark.parametrize(
    ("fields", "needle"),
    [
        ({"cert_file": "/nonexistent/cert.pem"}, "cert_file: no such file"),
        ({"ca_file": "/nonexistent/ca.pem"}, "ca_file: no such file"),
        ({"cert_data": "not a certificate"}, "cert_data: no PEM certificate"),
        (
            {"cert_data": b"-----BEGIN CERTIFICATE-----\n@@@\n-----END CERTIFICATE-----\n"},
            "cert_data",
        ),
        ({"ca_data": "garbage -----BEGIN nothing"}, "ca_data"),
        ({"auth_mode": "maybe"}, "auth_mode"),
        ({"min_version": "1.1"}, "min_version"),
        ({"min_version": "1.3", "max_version": "1.2"}, "max_version"),
        ({"server_name": ""}, "server_name"),
        ({"cert_file": 42}, "cert_file"),
        ({"cert_data": 42}, "cert_data"),
    ],
)
def test_config_errors_name_the_field(fields: dict[str, Any], needle: str) -> None:
    with pytest.raises(purenng.BadOption, match=needle):
        TLSConfig(**fields)


def test_config_errors_found_when_loading(tmp_path: Path, certs: DevCerts, other: DevCerts) -> None:
    with pytest.raises(purenng.BadOption, match="key_data: the private key does not match"):
        TLSConfig(cert_data=certs.server.cert_pem, key_data=other.server.key_pem).check()
    with pytest.raises(purenng.BadOption, match="key_data: no PEM private key"):
        TLSConfig(cert_data=certs.server.cert_pem, key_data="nope")
    with pytest.raises(purenng.BadOption, match="cert_data: holds no private key"):
        TLSConfig(cert_data=certs.server.cert_pem).check()
    bad_ca = tmp_path / "ca.pem"
    bad_ca.write_text("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")
    with pytest.raises(purenng.BadOption, match="ca_file"):
        TLSConfig(ca_file=bad_ca).check()
    with pytest.raises(purenng.BadOption, match="not both"):
        TLSConfig(ca_file=bad_ca, ca_data=certs.ca.cert_pem)
    with pytest.raises(purenng.BadOption, match="without cert_file"):
        TLSConfig(key_data=certs.server.key_pem)
    with pytest.raises(purenng.BadOption, match="listener needs a certificate"):
        TLSConfig().server_context()


def test_config_as_option(certs: DevCerts) -> None:
    with pytest.raises(purenng.BadOption, match="tls_config"):
        purenng.Pair0(tls_config="cert.pem")
    with pytest.raises(purenng.BadOption, match="cert_file: no such file"):
        purenng.Pair0(tls_config={"cert_file": "/nonexistent"})
    with pytest.raises(purenng.BadOption, match="unknown TLSConfig field"):
        purenng.Pair0(tls_config={"certfile": "x"})
    with purenng.Pair0(tls_config={"ca_data": certs.ca.cert_pem.decode()}) as s:
        assert isinstance(s.tls_config, TLSConfig)
        with pytest.raises(purenng.BadOption, match="listener needs a certificate"):
            s.listen("tls+tcp://127.0.0.1:0")
        with pytest.raises(purenng.BadOption, match="tls_handshake_timeout"):
            s.dial("tls+tcp://127.0.0.1:5555", tls_handshake_timeout=-1)


def test_config_repr_hides_secrets(certs: DevCerts) -> None:
    cfg = certs.server_config(key_password="hunter2", auth_mode="required")
    text = repr(cfg)
    assert "PRIVATE" not in text
    assert "hunter2" not in text
    assert "auth_mode='required'" in text
    assert cfg.replace(auth_mode=None).auth_mode is None
    assert cfg.as_dict()["key_data"] == certs.server.key_pem
    cfg.server_context()
    copy = pickle.loads(pickle.dumps(cfg))
    assert copy.as_dict() == cfg.as_dict()
    assert copy.server_context() is not cfg.server_context()  # contexts are not shared


def test_encrypted_key(tmp_path: Path, certs: DevCerts) -> None:
    from cryptography.hazmat.primitives import serialization

    key = serialization.load_pem_private_key(certs.server.key_pem, None)
    enc = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"s3cret"),
    )
    TLSConfig(cert_data=certs.server.cert_pem, key_data=enc, key_password="s3cret").check()
    with pytest.raises(purenng.BadOption, match=r"key_password|cannot"):
        TLSConfig(cert_data=certs.server.cert_pem, key_data=enc, key_password="wrong").check()


# ---------------------------------------------------------------- plugins.toml and engines


def test_plugins_toml_defaults(tmp_path: Path, certs: DevCerts, global_registry: None) -> None:
    paths = certs.write(tmp_path / "certs")
    cfg = tmp_path / "plugins.toml"
    cfg.write_text(
        '[transport."tls+tcp"]\n'
        "tls_handshake_timeout = 2.5\n"
        "tcp_nodelay = false\n"
        '[transport."tls+tcp".tls_config]\n'
        f'cert_file = "{paths["server"]}"\n'
        f'key_file = "{paths["server_key"]}"\n'
        f'ca_file = "{paths["ca"]}"\n'
    )
    purenng.configure_plugins(cfg)
    with purenng.Pair0(recv_timeout=T) as a, purenng.Pair0() as b:
        lst = a.listen("tls+tcp://127.0.0.1:0")  # no tls_config given: plugins.toml's
        assert lst.options["tls_handshake_timeout"] == 2.5
        assert lst.options["tcp_nodelay"] is False
        assert lst.options["tls_config"].cert_file == str(paths["server"])
        b.dial(lst.url, block=True)  # the same defaults trust the CA
        b.send(b"configured")
        assert a.recv() == b"configured"


def test_plugins_toml_bad_tls_default(tmp_path: Path, global_registry: None) -> None:
    cfg = tmp_path / "plugins.toml"
    cfg.write_text('[transport."tls+tcp".tls_config]\nauth_mode = "sometimes"\n')
    purenng.configure_plugins(cfg)
    with purenng.Pair0() as s, pytest.raises(purenng.ConfigError, match="auth_mode"):
        s.dial("tls+tcp://127.0.0.1:5555", block=False)


def test_plugins_toml_tls_table(tmp_path: Path, global_registry: None) -> None:
    cfg = tmp_path / "plugins.toml"
    cfg.write_text('[tls]\nengine = "nosuch"\n')
    reg = purenng.configure_plugins(cfg)
    assert reg.config.tls_engine == "nosuch"
    with pytest.raises(purenng.PluginError, match="TLS engine 'nosuch'"):
        TLSConfig().client_context("x")
    # A config naming its engine does not need the default.
    TLSConfig(engine="ssl").client_context("x")
    cfg.write_text("[tls]\nengines = 1\n")
    with pytest.raises(purenng.ConfigError, match=r"\[tls\]"):
        purenng.configure_plugins(cfg)
    cfg.write_text("[tls]\nengine = 3\n")
    with pytest.raises(purenng.ConfigError, match=r"tls\.engine"):
        purenng.configure_plugins(cfg)


class _CountingEngine(TLSEngine):
    def __init__(self) -> None:
        self.calls: list[str] = []
        self._ssl = SSLEngine()

    def server_context(self, config: TLSConfig) -> ssl.SSLContext:
        self.calls.append("server")
        return self._ssl.server_context(config)

    def client_context(self, config: TLSConfig, server_hostname: str | None) -> ssl.SSLContext:
        self.calls.append(f"client:{server_hostname}")
        return self._ssl.client_context(config, server_hostname)


def test_engine_plugin(certs: DevCerts, global_registry: None) -> None:
    engine = _CountingEngine()

    class Plugin:
        @hookimpl
        def purenng_register_tls_engines(self, registry: registry_mod.Registry) -> None:
            registry.add_tls_engine("counting", engine)

    reg = purenng.configure_plugins()
    reg.register_module(Plugin(), "test:counting")
    assert reg.tls_engine("counting") is engine
    assert isinstance(reg.tls_engine(), SSLEngine)  # the default is still "ssl"
    server = certs.server_config(engine="counting")
    client = certs.client_config(engine="counting")
    with purenng.Pair0(recv_timeout=T) as a, purenng.Pair0() as b:
        lst = a.listen("tls+tcp://127.0.0.1:0", tls_config=server)
        b.dial(lst.url, block=True, tls_config=client)
        b.send(b"engine")
        assert a.recv() == b"engine"
    assert "server" in engine.calls
    assert "client:127.0.0.1" in engine.calls
    with pytest.raises(purenng.PluginError, match="no plugin provides TLS engine 'nope'"):
        TLSConfig(engine="nope").client_context("x")


def test_engine_must_make_ssl_contexts(global_registry: None) -> None:
    class Bad(TLSEngine):
        def server_context(self, config: TLSConfig) -> ssl.SSLContext:
            return "nope"  # type: ignore[return-value]

        def client_context(self, config: TLSConfig, server_hostname: str | None) -> Any:
            return object()

    class Plugin:
        @hookimpl
        def purenng_register_tls_engines(self, registry: registry_mod.Registry) -> None:
            registry.add_tls_engine("bad", Bad())

    purenng.configure_plugins().register_module(Plugin(), "test:bad")
    with pytest.raises(purenng.BadOption, match=r"not ssl\.SSLContext"):
        TLSConfig(engine="bad").client_context("x")


def test_option_prefix_names_a_scheme_family(global_registry: None) -> None:
    """tls_config is found through the prefix "tls" although no scheme is called "tls"."""
    reg = purenng.configure_plugins()
    assert "tls+tcp" not in reg._transports
    spec = reg.option_spec("tls_config")
    assert spec.name == "tls_config"
    assert "tls+tcp" in reg._transports
    with pytest.raises(purenng.BadOption, match="tls_nonsense"):
        reg.option_spec("tls_nonsense")


def test_tls_engines_are_listed(global_registry: None) -> None:
    reg = purenng.configure_plugins()
    rows = [st for st in reg.describe() if st.kind == "tls_engine"]
    assert [(st.name, st.value) for st in rows] == [("ssl", "purenng.tls_config")]


# ---------------------------------------------------------------- conformance kit


async def test_conformance_kit(certs: DevCerts) -> None:
    from purenng.testing import check_transport

    # One config serves both ends: the server certificate, and the CA to verify it.
    report = await check_transport(
        "tls+tcp://127.0.0.1:0",
        tls_config=certs.server_config(),
        skip=("bad_frames",),  # it speaks plain TCP to the port
    )
    assert "exchange" in report.passed
    assert "bad_frames" in report.skipped


# ---------------------------------------------------------------- purenng cert


def test_cert_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from purenng.cli.main import main

    out = tmp_path / "certs"
    assert main(["cert", "-o", str(out), "--host", "localhost", "--host", "127.0.0.1"]) == 0
    first = capsys.readouterr().out
    assert "made a development CA" in first
    assert "TLSConfig(" in first
    assert sorted(p.name for p in out.iterdir()) == ["ca.key", "ca.pem", "server.key", "server.pem"]
    assert (out / "server.key").stat().st_mode & 0o077 == 0
    ca_before = (out / "ca.pem").read_bytes()
    # A second run reuses the CA, keeps the server certificate, adds a client one.
    assert main(["cert", "-o", str(out), "--client"]) == 0
    second = capsys.readouterr().out
    assert "using the existing CA" in second
    assert "keeping the existing server certificate" in second
    assert (out / "ca.pem").read_bytes() == ca_before
    server = TLSConfig(
        cert_file=out / "server.pem",
        key_file=out / "server.key",
        ca_file=out / "ca.pem",
        auth_mode="required",
    )
    client = TLSConfig(
        cert_file=out / "client.pem", key_file=out / "client.key", ca_file=out / "ca.pem"
    )
    with purenng.Pair0(recv_timeout=T) as a, purenng.Pair0() as b:
        lst = a.listen("tls+tcp://127.0.0.1:0", tls_config=server)
        b.dial(lst.url, block=True, tls_config=client)
        b.send(b"made by purenng cert")
        assert a.recv() == b"made by purenng cert"
        assert stream_pipe(a.pipes[0]).extra("tls_peer_cn") == "purenng client"
    old = (out / "server.pem").read_bytes()
    assert main(["cert", "-o", str(out), "--force"]) == 0
    assert (out / "server.pem").read_bytes() != old
    assert main(["cert", "-o", str(out), "--days", "0"]) == 2
