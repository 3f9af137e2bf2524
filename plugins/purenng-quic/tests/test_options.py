"""URLs and options of quic://: families, wildcards, idle timeout, keep-alive, 0-RTT."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import purenng
import pytest

import purenng_quic
from conftest import has_ipv6_loopback
from support import T, extra, until

if TYPE_CHECKING:
    from purenng.testing import DevCerts


async def test_ipv6_and_family_checks(certs: DevCerts, purenng_leak_check: None) -> None:
    async with purenng.Pair0(recv_timeout=T) as a, purenng.Pair0(recv_timeout=T) as b:
        with pytest.raises(purenng.BadAddress, match="quic4"):
            await a.alisten("quic4://[::1]:0", tls_config=certs.server_config())
        with pytest.raises(purenng.BadAddress, match="quic6"):
            await a.alisten("quic6://127.0.0.1:0", tls_config=certs.server_config())
        with pytest.raises(purenng.BadAddress, match="wildcard"):
            await b.adial("quic://0.0.0.0:5555")
        with pytest.raises(purenng.BadAddress, match="port 0"):
            await b.adial("quic://127.0.0.1:0")
        if not has_ipv6_loopback():
            pytest.skip("no IPv6 loopback (::1) on this host")
        lst = await a.alisten("quic://[::1]:0", tls_config=certs.server_config())
        assert lst.url == f"quic://[::1]:{lst.port}"
        await b.adial(lst.url, block=True, tls_config=certs.client_config())
        await b.asend(b"over ipv6")
        assert await a.arecv() == b"over ipv6"
        assert b.pipes[0].remote_address[0] == "::1"


async def test_fixed_port_is_released(certs: DevCerts, purenng_leak_check: None) -> None:
    async with purenng.Pair0() as a:
        lst = await a.alisten("quic4://127.0.0.1:0", tls_config=certs.server_config())
        port = lst.port
        with pytest.raises(purenng.AddressInUse):
            await a.alisten(f"quic://127.0.0.1:{port}", tls_config=certs.server_config())
        await lst.aclose()
        again = await a.alisten(f"quic://127.0.0.1:{port}", tls_config=certs.server_config())
        assert again.port == port


async def test_idle_timeout_without_keepalive(certs: DevCerts, purenng_leak_check: None) -> None:
    async with (
        purenng.Pair0(quic_idle_timeout=0.3, quic_keepalive=None) as a,
        purenng.Pair0(quic_idle_timeout=0.3, quic_keepalive=None) as b,
    ):
        lst = await a.alisten("quic://127.0.0.1:0", tls_config=certs.server_config())
        await b.adial(lst.url, block=True, tls_config=certs.client_config(), reconnect_time_min=5)
        await until(lambda: bool(a.pipes), "the listener's pipe")
        await until(lambda: not a.pipes and not b.pipes, "the idle pipes to close")


async def test_keepalive_outlives_the_idle_timeout(
    certs: DevCerts, purenng_leak_check: None
) -> None:
    async with (
        purenng.Pair0(recv_timeout=T, quic_idle_timeout=0.3, quic_keepalive=0.05) as a,
        purenng.Pair0(quic_idle_timeout=0.3, quic_keepalive=0.05) as b,
    ):
        lst = await a.alisten("quic://127.0.0.1:0", tls_config=certs.server_config())
        await b.adial(lst.url, block=True, tls_config=certs.client_config())
        await until(lambda: bool(a.pipes), "the listener's pipe")
        pipe = b.pipes[0]
        sent_before = extra(pipe, "quic").datagrams[1]
        await asyncio.sleep(1.0)  # three idle timeouts with nothing to say
        assert b.pipes == [pipe]
        assert extra(pipe, "quic").datagrams[1] > sent_before  # the PINGs
        await b.asend(b"still here")
        assert await a.arecv() == b"still here"


@pytest.mark.parametrize("on", [False, True])
async def test_zero_rtt(certs: DevCerts, on: bool, purenng_leak_check: None) -> None:
    client = certs.client_config()
    async with purenng.Pair0(recv_timeout=T, quic_0rtt=on) as a:
        lst = await a.alisten("quic://127.0.0.1:0", tls_config=certs.server_config())
        for round_ in (1, 2):
            async with purenng.Pair0(recv_timeout=T, quic_0rtt=on) as b:
                await b.adial(lst.url, block=True, tls_config=client)
                await b.asend(b"round %d" % round_)
                assert await a.arecv() == b"round %d" % round_
                await until(lambda: bool(a.pipes), "the listener's pipe")
                early = extra(a.pipes[0], "quic_early_data")
                resumed = extra(a.pipes[0], "quic_session_resumed")
                await a.asend(b"ok")
                assert await b.arecv() == b"ok"
            await until(lambda: not a.pipes, "the pipe to go")
            if round_ == 1 or not on:
                assert not early
            else:
                assert early  # the second dial's first bytes were 0-RTT
                assert resumed


async def test_option_validation() -> None:
    with pytest.raises(purenng.BadOption):
        purenng.Pair0(quic_alpn="")
    with pytest.raises(purenng.BadOption):
        purenng.Pair0(quic_max_datagram_size=1000)
    with pytest.raises(purenng.BadOption):
        purenng.Pair0(quic_handshake_timeout=None)
    assert purenng_quic.OPTIONS["quic_idle_timeout"].default == 30.0
