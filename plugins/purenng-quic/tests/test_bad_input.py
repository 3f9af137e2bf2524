"""Bad input at a quic:// listener: each one fails alone, clearly, counted; the listener serves on.

The listener's own counters are read with ``purenng_quic.listener_stats``;
the SP-level failures land in the socket's ``stats()`` as over any stream
transport.
"""

from __future__ import annotations

import asyncio
import os
import socket
import struct
from typing import TYPE_CHECKING, Any

import purenng
import pytest
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.connection import QuicConnection

import purenng_quic
from support import T, raw_client, until

if TYPE_CHECKING:
    from purenng.testing import DevCerts

PAIR0 = 0x10
SP_HEADER = b"\x00SP\x00" + struct.pack(">H", PAIR0) + b"\x00\x00"


async def _still_serves(certs: DevCerts, a: purenng.Pair0, url: str) -> None:
    """A good dialer still gets a pipe and a message through."""
    async with purenng.Pair0(recv_timeout=T) as c:
        await c.adial(url, block=True, tls_config=certs.client_config())
        await c.asend(b"still serving")
        assert await a.arecv() == b"still serving"


async def _listening(
    certs: DevCerts, a: purenng.Pair0, **options: Any
) -> tuple[Any, dict[str, int]]:
    lst = await a.alisten("quic://127.0.0.1:0", tls_config=certs.server_config(), **options)
    return lst, purenng_quic.listener_stats(lst)


def _initial_shaped(size: int = 1200) -> bytes:
    """A datagram with a long-header Initial's shape and garbage inside."""
    dcid, scid = os.urandom(8), os.urandom(8)
    head = bytes([0xC3]) + struct.pack(">I", 1) + bytes([8]) + dcid + bytes([8]) + scid + b"\x00"
    body = os.urandom(size - len(head) - 2)
    return head + struct.pack(">H", 0x4000 | len(body)) + body


async def test_garbage_datagrams(certs: DevCerts, purenng_leak_check: None) -> None:
    async with purenng.Pair0(recv_timeout=T) as a:
        lst, _ = await _listening(certs, a)
        junk = [
            b"",
            b"\x00",
            b"hello, are you QUIC?",
            os.urandom(50),
            bytes([0x40]) + os.urandom(30),  # short header, unknown connection id
            _initial_shaped(1200),  # shaped like an Initial, does not decrypt
            _initial_shaped(600),  # an Initial too small to start a connection
            bytes([0xC0]) + struct.pack(">I", 0x0A0A0A0A) + os.urandom(1195),  # unknown version
        ]
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as raw:
            for datagram in junk:
                raw.sendto(datagram, ("127.0.0.1", lst.port))
            await until(
                lambda: purenng_quic.listener_stats(lst)["datagrams_in"] == len(junk),
                "the listener to read every datagram",
            )
        stats = purenng_quic.listener_stats(lst)
        assert stats["datagrams_dropped"] == len(junk)
        assert stats["connections"] == 0
        assert not a.pipes
        await _still_serves(certs, a, lst.url)


async def test_flood_of_garbage_initials_keeps_nothing(
    certs: DevCerts, purenng_leak_check: None
) -> None:
    n = 2000
    async with purenng.Pair0(recv_timeout=T) as a:
        lst, _ = await _listening(certs, a)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as raw:
            raw.setblocking(False)
            sent = 0
            for _ in range(n):
                try:
                    raw.sendto(_initial_shaped(), ("127.0.0.1", lst.port))
                    sent += 1
                except BlockingIOError:
                    await asyncio.sleep(0.001)
                if sent % 100 == 0:
                    await asyncio.sleep(0)  # let the listener read
            await asyncio.sleep(0.05)
        stats = purenng_quic.listener_stats(lst)
        assert stats["connections"] == 0
        assert stats["datagrams_dropped"] == stats["datagrams_in"] > 0
        await _still_serves(certs, a, lst.url)


async def test_wrong_alpn_from_a_bare_client(certs: DevCerts, purenng_leak_check: None) -> None:
    async with purenng.Pair0(recv_timeout=T) as a:
        lst, _ = await _listening(certs, a)
        client = await raw_client(lst.port, alpn="h3", connect=False)
        try:
            ended = await asyncio.wait_for(client.terminated, T)
        finally:
            await client.aclose()
        # CRYPTO_ERROR: no_application_protocol (0x178; aioquic before 1.3 sends
        # handshake_failure, 0x128, instead)
        assert ended.error_code in (0x100 + 120, 0x100 + 40)
        await until(lambda: purenng_quic.listener_stats(lst)["handshake_failures"] == 1, "count")
        await _still_serves(certs, a, lst.url)


async def test_wrong_alpn_from_a_purenng_dialer(certs: DevCerts, purenng_leak_check: None) -> None:
    async with purenng.Pair0(recv_timeout=T) as a, purenng.Pair0() as b:
        lst, _ = await _listening(certs, a)
        with pytest.raises(purenng.TLSError, match="ALPN"):
            await b.adial(lst.url, block=True, tls_config=certs.client_config(), quic_alpn="not-sp")
        assert purenng_quic.listener_stats(lst)["handshake_failures"] == 1
        await _still_serves(certs, a, lst.url)


async def test_untrusted_certificate_is_counted(
    certs: DevCerts, other: DevCerts, purenng_leak_check: None
) -> None:
    async with purenng.Pair0(recv_timeout=T) as a, purenng.Pair0() as b:
        lst, _ = await _listening(certs, a)
        with pytest.raises(purenng.TLSError, match="did not verify"):
            await b.adial(lst.url, block=True, tls_config=other.client_config())
        await until(lambda: purenng_quic.listener_stats(lst)["handshake_failures"] == 1, "count")
        await _still_serves(certs, a, lst.url)


async def test_peer_that_never_opens_the_stream(certs: DevCerts, purenng_leak_check: None) -> None:
    """TLS completes, no stream: the SP handshake times out, counted as the socket counts it."""
    async with purenng.Pair0(recv_timeout=T, sp_handshake_timeout=0.3) as a:
        lst, _ = await _listening(certs, a)
        client = await raw_client(lst.port)
        try:
            ended = await asyncio.wait_for(client.terminated, T)
        finally:
            await client.aclose()
        assert ended.frame_type is None  # an application close
        assert ended.error_code == purenng_quic.APP_HANDSHAKE_TIMEOUT
        assert a.stats()["handshake_failures"] == 1
        assert not a.pipes
        await _still_serves(certs, a, lst.url)


async def test_bad_frame_closes_with_protocol_error(
    certs: DevCerts, purenng_leak_check: None
) -> None:
    async with purenng.Pair0(recv_timeout=T) as a:
        lst, _ = await _listening(certs, a)
        client = await raw_client(lst.port)
        try:
            client.send(0, SP_HEADER)
            assert await client.bytes_on(0, 8) == SP_HEADER  # the listener's own header
            await until(lambda: bool(a.pipes), "the listener's pipe")
            client.send(0, struct.pack(">Q", 0xF000_0000_0000_0001) + b"garbage")
            ended = await asyncio.wait_for(client.terminated, T)
        finally:
            await client.aclose()
        assert ended.frame_type is None
        assert ended.error_code == purenng_quic.APP_PROTOCOL_ERROR
        assert ended.reason_phrase  # says what was wrong
        await until(lambda: not a.pipes, "the bad pipe to go")
        assert a.stats()["oversize"] == 1  # a reserved-bits length counts as oversize
        await _still_serves(certs, a, lst.url)


async def test_wrong_sp_header(certs: DevCerts, purenng_leak_check: None) -> None:
    async with purenng.Pair0(recv_timeout=T) as a:
        lst, _ = await _listening(certs, a)
        client = await raw_client(lst.port)
        try:
            client.send(0, b"GET / HTTP/1.1\r\n\r\n")
            ended = await asyncio.wait_for(client.terminated, T)
        finally:
            await client.aclose()
        assert ended.error_code == purenng_quic.APP_PROTOCOL_ERROR
        assert a.stats()["handshake_failures"] == 1
        await _still_serves(certs, a, lst.url)


async def test_second_stream_is_refused(certs: DevCerts, purenng_leak_check: None) -> None:
    async with purenng.Pair0(recv_timeout=T) as a:
        lst, _ = await _listening(certs, a)
        client = await raw_client(lst.port)
        try:
            client.send(0, SP_HEADER)
            await until(lambda: bool(a.pipes), "the listener's pipe")
            # A well-behaved client would wait for credit to open stream 4 (the
            # listener allows one stream); this one ignores the limit.
            client._quic._remote_max_streams_bidi = 10
            client._quic.send_stream_data(4, b"another stream")
            client._quic._streams[4].is_blocked = False
            client.transmit()
            ended = await asyncio.wait_for(client.terminated, T)
        finally:
            await client.aclose()
        assert ended.error_code == 0x4  # STREAM_LIMIT_ERROR
        await until(lambda: not a.pipes, "the pipe to go")
        await _still_serves(certs, a, lst.url)


async def test_peer_resets_the_stream(certs: DevCerts, purenng_leak_check: None) -> None:
    async with purenng.Pair0(recv_timeout=T) as a:
        lst, _ = await _listening(certs, a)
        client = await raw_client(lst.port)
        try:
            client.send(0, SP_HEADER)
            await until(lambda: bool(a.pipes), "the listener's pipe")
            client.reset(0, 7)
            await until(lambda: not a.pipes, "the pipe to close")
        finally:
            await client.aclose()
        await _still_serves(certs, a, lst.url)


async def test_peer_fin_closes_the_pipe(certs: DevCerts, purenng_leak_check: None) -> None:
    async with purenng.Pair0(recv_timeout=T) as a:
        lst, _ = await _listening(certs, a)
        client = await raw_client(lst.port)
        try:
            client.send(0, SP_HEADER)
            await until(lambda: bool(a.pipes), "the listener's pipe")
            client.send(0, struct.pack(">Q", 5) + b"hello", end=True)
            assert await a.arecv() == b"hello"
            await until(lambda: not a.pipes, "the pipe to close")
            ended = await asyncio.wait_for(client.terminated, T)
        finally:
            await client.aclose()
        assert ended.error_code == purenng_quic.APP_NO_ERROR


async def test_dial_nobody_is_refused(purenng_leak_check: None) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    async with purenng.Pair0() as b:
        with pytest.raises(purenng.ConnectionRefused):
            await b.adial(f"quic://127.0.0.1:{port}", block=True)


async def test_dial_a_silent_port_times_out(purenng_leak_check: None) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:
        silent.bind(("127.0.0.1", 0))
        async with purenng.Pair0() as b:
            with pytest.raises(purenng.Timeout, match="handshake"):
                await b.adial(
                    f"quic://127.0.0.1:{silent.getsockname()[1]}",
                    block=True,
                    quic_handshake_timeout=0.3,
                )


def _half_open(port: int, raw: socket.socket) -> None:
    """Send a client's first flight, then never answer."""
    quic = QuicConnection(
        configuration=QuicConfiguration(is_client=True, alpn_protocols=[purenng_quic.ALPN])
    )
    quic.connect(("127.0.0.1", port), now=0.0)
    for data, _ in quic.datagrams_to_send(now=0.0):
        raw.sendto(data, ("127.0.0.1", port))


async def test_connection_limit_and_handshake_timeout(
    certs: DevCerts, purenng_leak_check: None
) -> None:
    """A flood of half-open handshakes: bounded, refused past the limit, expired in time."""
    limit, flood = 4, 12
    async with purenng.Pair0(recv_timeout=T) as a:
        lst, _ = await _listening(certs, a, quic_max_connections=limit, quic_handshake_timeout=0.5)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as raw:
            raw.bind(("127.0.0.1", 0))
            for _ in range(flood):
                _half_open(lst.port, raw)
            await until(
                lambda: purenng_quic.listener_stats(lst)["connections_refused"] == flood - limit,
                "the refusals",
            )
            assert purenng_quic.listener_stats(lst)["connections"] == limit
            # Full: a real dialer is refused at once, not left to time out.
            async with purenng.Pair0() as b:
                with pytest.raises(purenng.ConnectionRefused):
                    await b.adial(lst.url, block=True, tls_config=certs.client_config())
            await until(
                lambda: purenng_quic.listener_stats(lst)["handshake_timeouts"] == limit,
                "the half-open handshakes to expire",
            )
            await until(lambda: purenng_quic.listener_stats(lst)["connections"] == 0, "room")
        await _still_serves(certs, a, lst.url)


async def test_max_pipes_refuses_before_the_handshake(
    certs: DevCerts, purenng_leak_check: None
) -> None:
    async with purenng.Bus0(recv_timeout=T) as a:
        lst = await a.alisten("quic://127.0.0.1:0", tls_config=certs.server_config(), max_pipes=1)
        async with purenng.Bus0() as b, purenng.Bus0() as c:
            await b.adial(lst.url, block=True, tls_config=certs.client_config())
            with pytest.raises(purenng.ConnectionRefused):
                await c.adial(lst.url, block=True, tls_config=certs.client_config())
            assert purenng_quic.listener_stats(lst)["connections_refused"] == 1
            assert lst.pipes_refused == 1
