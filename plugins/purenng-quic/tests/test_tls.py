"""TLS over quic://: purenng.TLSConfig with the same fields and defaults as tls+tcp://."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

import purenng
import pytest

import purenng_quic
from support import T, extra, until

if TYPE_CHECKING:
    from pathlib import Path

    from purenng.testing import DevCerts


async def _dial_error(
    server: purenng.TLSConfig,
    client: purenng.TLSConfig | None,
    good: purenng.TLSConfig | None = None,
    host: str = "127.0.0.1",
    **kw: Any,
) -> BaseException:
    """The error of a blocking dial; then ``good`` (if given) proves the listener still serves."""
    async with purenng.Pair0(recv_timeout=T) as a, purenng.Pair0(recv_timeout=T) as b:
        lst = await a.alisten("quic://127.0.0.1:0", tls_config=server)
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


async def test_peer_details(certs: DevCerts, purenng_leak_check: None) -> None:
    async with purenng.Pair0(recv_timeout=T) as a, purenng.Pair0(recv_timeout=T) as b:
        lst = await a.alisten("quic://127.0.0.1:0", tls_config=certs.server_config())
        await b.adial(
            lst.url.replace("127.0.0.1", "localhost"), block=True, tls_config=certs.client_config()
        )
        await until(lambda: bool(a.pipes), "the listener's pipe")
        pb, pa = b.pipes[0], a.pipes[0]
        assert extra(pb, "tls_verified") is True
        assert extra(pb, "tls_peer_cn") == "localhost"
        assert extra(pb, "tls_version") == "TLSv1.3"
        assert extra(pb, "alpn") == purenng_quic.ALPN == "nng-sp/1"
        cert = pb.peer_certificate
        assert cert is not None
        assert (("commonName", "localhost"),) in cert["subject"]
        assert ("IP Address", "127.0.0.1") in cert["subjectAltName"]
        assert pb.remote_address[1] == lst.port
        # The listener asked for no client certificate (NNG's default).
        assert pa.peer_certificate is None
        assert extra(pa, "tls_verified") is False
        assert extra(pa, "cipher")[1] == "TLSv1.3"


async def test_untrusted_server_is_refused(
    certs: DevCerts, other: DevCerts, purenng_leak_check: None
) -> None:
    err = await _dial_error(certs.server_config(), other.client_config(), certs.client_config())
    assert isinstance(err, purenng.TLSError)
    assert "did not verify" in str(err)


async def test_default_dialer_verifies_against_the_system_store(
    certs: DevCerts, purenng_leak_check: None
) -> None:
    err = await _dial_error(certs.server_config(), None, certs.client_config())
    assert isinstance(err, purenng.TLSError)


async def test_wrong_host_and_server_name(certs: DevCerts, purenng_leak_check: None) -> None:
    named = certs.ca.issue("example.org", hosts=("example.org",))
    server = purenng.TLSConfig(cert_data=named.cert_pem, key_data=named.key_pem)
    # The certificate names example.org only; the dialer checks the address it dialed.
    err = await _dial_error(
        server, certs.client_config(), certs.client_config(server_name="example.org")
    )
    assert isinstance(err, purenng.TLSError)
    assert "127.0.0.1" in str(err)
    # A server_name the certificate does not carry fails the same way.
    err = await _dial_error(certs.server_config(), certs.client_config(server_name="example.org"))
    assert isinstance(err, purenng.TLSError)
    assert "example.org" in str(err)
    # The name to check can differ from the address dialed.
    async with purenng.Pair0(recv_timeout=T) as a, purenng.Pair0(recv_timeout=T) as b:
        lst = await a.alisten("quic://127.0.0.1:0", tls_config=server)
        await b.adial(
            lst.url, block=True, tls_config=certs.client_config(server_name="example.org")
        )
        await b.asend(b"named")
        assert await a.arecv() == b"named"


async def test_expired_server_certificate(certs: DevCerts, purenng_leak_check: None) -> None:
    now = dt.datetime.now(dt.UTC)
    old = certs.ca.issue(
        "localhost", not_before=now - dt.timedelta(days=3), not_after=now - dt.timedelta(days=1)
    )
    server = purenng.TLSConfig(cert_data=old.cert_pem, key_data=old.key_pem)
    err = await _dial_error(server, certs.client_config())
    assert isinstance(err, purenng.TLSError)
    assert "valid" in str(err).lower()


async def test_dialer_without_verification(
    certs: DevCerts, other: DevCerts, purenng_leak_check: None
) -> None:
    for mode in ("none", "optional"):
        async with purenng.Pair0(recv_timeout=T) as a, purenng.Pair0(recv_timeout=T) as b:
            lst = await a.alisten("quic://127.0.0.1:0", tls_config=certs.server_config())
            await b.adial(lst.url, block=True, tls_config=purenng.TLSConfig(auth_mode=mode))
            await b.asend(b"unverified")
            assert await a.arecv() == b"unverified"
            assert extra(b.pipes[0], "tls_verified") is False


async def test_mutual_auth_required(certs: DevCerts, purenng_leak_check: None) -> None:
    server = certs.server_config(auth_mode="required")
    async with purenng.Pair0(recv_timeout=T) as a, purenng.Pair0(recv_timeout=T) as b:
        lst = await a.alisten("quic://127.0.0.1:0", tls_config=server)
        await b.adial(lst.url, block=True, tls_config=certs.client_config())
        await until(lambda: bool(a.pipes), "the listener's pipe")
        pa = a.pipes[0]
        assert extra(pa, "tls_verified") is True
        assert extra(pa, "tls_peer_cn") == "purenng client"
        assert pa.peer_certificate is not None


async def test_mutual_auth_required_without_client_cert(
    certs: DevCerts, purenng_leak_check: None
) -> None:
    server = certs.server_config(auth_mode="required")
    no_cert = purenng.TLSConfig(ca_data=certs.ca.cert_pem)
    err = await _dial_error(server, no_cert, certs.client_config())
    assert isinstance(err, purenng.TLSError)
    assert "certificate required" in str(err)


async def test_mutual_auth_required_untrusted_client(
    certs: DevCerts, other: DevCerts, purenng_leak_check: None
) -> None:
    server = certs.server_config(auth_mode="required")
    stranger = other.client_config(ca_data=certs.ca.cert_pem)
    async with purenng.Pair0(recv_timeout=T) as a, purenng.Pair0(recv_timeout=T) as b:
        lst = await a.alisten("quic://127.0.0.1:0", tls_config=server)
        with pytest.raises(purenng.TLSError, match="bad certificate"):
            await b.adial(lst.url, block=True, tls_config=stranger)
        stats = purenng_quic.listener_stats(lst)
        assert stats["handshake_failures"] == 1
        assert not a.pipes


async def test_mutual_auth_optional(
    certs: DevCerts, other: DevCerts, purenng_leak_check: None
) -> None:
    server = certs.server_config(auth_mode="optional")
    async with purenng.Pair0(recv_timeout=T) as a:
        lst = await a.alisten("quic://127.0.0.1:0", tls_config=server)
        # No certificate: let in, unverified.
        async with purenng.Pair0() as b:
            await b.adial(
                lst.url, block=True, tls_config=purenng.TLSConfig(ca_data=certs.ca.cert_pem)
            )
            await until(lambda: bool(a.pipes), "the listener's pipe")
            assert extra(a.pipes[0], "tls_verified") is False
        await until(lambda: not a.pipes, "the pipe to go")
        # A good certificate: verified.
        async with purenng.Pair0() as b:
            await b.adial(lst.url, block=True, tls_config=certs.client_config())
            await until(lambda: bool(a.pipes), "the listener's pipe")
            assert extra(a.pipes[0], "tls_verified") is True
        # A bad one: refused.
        async with purenng.Pair0() as b:
            with pytest.raises(purenng.TLSError):
                await b.adial(
                    lst.url, block=True, tls_config=other.client_config(ca_data=certs.ca.cert_pem)
                )


async def test_listener_needs_a_certificate(purenng_leak_check: None) -> None:
    async with purenng.Pair0() as a:
        with pytest.raises(purenng.BadOption, match="needs a certificate"):
            await a.alisten("quic://127.0.0.1:0")
        with pytest.raises(purenng.BadOption, match="needs a certificate"):
            await a.alisten("quic://127.0.0.1:0", tls_config=purenng.TLSConfig())


async def test_tls_12_only_is_refused(certs: DevCerts, purenng_leak_check: None) -> None:
    async with purenng.Pair0() as a:
        with pytest.raises(purenng.BadOption, match=r"TLS 1\.3"):
            await a.alisten("quic://127.0.0.1:0", tls_config=certs.server_config(max_version="1.2"))


async def test_config_from_files(tmp_path: Path, certs: DevCerts, purenng_leak_check: None) -> None:
    paths = certs.write(tmp_path)
    server = purenng.TLSConfig(cert_file=paths["server"], key_file=paths["server_key"])
    client = purenng.TLSConfig(ca_file=paths["ca"])
    # A cert-key file (NNG's form): the key after the certificate.
    both = tmp_path / "both.pem"
    both.write_bytes(paths["server"].read_bytes() + paths["server_key"].read_bytes())
    for cfg in (server, purenng.TLSConfig(cert_file=both)):
        async with purenng.Pair0(recv_timeout=T) as a, purenng.Pair0(recv_timeout=T) as b:
            lst = await a.alisten("quic://127.0.0.1:0", tls_config=cfg)
            await b.adial(lst.url, block=True, tls_config=client)
            await b.asend(b"from files")
            assert await a.arecv() == b"from files"


async def test_mismatched_key_names_the_field(
    certs: DevCerts, other: DevCerts, purenng_leak_check: None
) -> None:
    bad = purenng.TLSConfig(cert_data=certs.server.cert_pem, key_data=other.server.key_pem)
    async with purenng.Pair0() as a:
        with pytest.raises(purenng.BadOption, match="key_data"):
            await a.alisten("quic://127.0.0.1:0", tls_config=bad)


async def test_socket_wide_config(certs: DevCerts, purenng_leak_check: None) -> None:
    """tls_config set on the socket applies to its quic endpoints."""
    async with (
        purenng.Pull0(recv_timeout=T, tls_config=certs.server_config()) as pull,
        purenng.Push0(tls_config=certs.client_config()) as push,
    ):
        lst = await pull.alisten("quic://127.0.0.1:0")
        await push.adial(lst.url, block=True)
        await push.asend(b"socket-wide")
        assert await pull.arecv() == b"socket-wide"
