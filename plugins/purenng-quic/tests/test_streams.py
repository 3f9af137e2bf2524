"""purenng.stream byte streams over quic://, and flow control under an SP pipe."""

from __future__ import annotations

import asyncio
import random
from typing import TYPE_CHECKING

import purenng
import purenng.stream
import pytest

from support import T, until

if TYPE_CHECKING:
    from purenng.testing import DevCerts


async def test_byte_stream_echo(certs: DevCerts, purenng_leak_check: None) -> None:
    lst = await purenng.stream.listen("quic://127.0.0.1:0", tls_config=certs.server_config())
    async with lst:
        assert lst.url == f"quic://127.0.0.1:{lst.port}"
        conn = await purenng.stream.dial(lst.url, tls_config=certs.client_config(), timeout=T)
        async with conn:
            server = await asyncio.wait_for(lst.accept(), T)
            async with server:
                conn.write(b"hello ")
                conn.write(b"stream")
                assert await asyncio.wait_for(server.read_exactly(12), T) == b"hello stream"
                server.write(b"HELLO STREAM")
                await server.drain()
                assert await asyncio.wait_for(conn.read_exactly(12), T) == b"HELLO STREAM"
                assert conn.remote_address[1] == lst.port
                assert server.remote_address[1] == conn.local_address[1]
                assert conn.extra("tls_version") == "TLSv1.3"


async def test_listener_writes_first(certs: DevCerts, purenng_leak_check: None) -> None:
    """The dialer opens stream 0 at once, so a listener can talk before the dialer writes."""
    lst = await purenng.stream.listen("quic://127.0.0.1:0", tls_config=certs.server_config())
    async with lst:
        conn = await purenng.stream.dial(lst.url, tls_config=certs.client_config(), timeout=T)
        async with conn:
            server = await asyncio.wait_for(lst.accept(), T)
            async with server:
                server.write(b"220 ready\r\n")
                assert await asyncio.wait_for(conn.read_exactly(11), T) == b"220 ready\r\n"


async def test_large_transfer_and_close(certs: DevCerts, purenng_leak_check: None) -> None:
    data = random.Random(3).randbytes(8 << 20)
    lst = await purenng.stream.listen("quic://127.0.0.1:0", tls_config=certs.server_config())
    async with lst:
        conn = await purenng.stream.dial(lst.url, tls_config=certs.client_config(), timeout=T)
        server = await asyncio.wait_for(lst.accept(), T)

        async def send() -> None:
            for i in range(0, len(data), 1 << 16):
                conn.write(data[i : i + (1 << 16)])
                await conn.drain()
            await conn.aclose()  # FIN after the last byte

        sender = asyncio.ensure_future(send())
        got = bytearray()
        while True:
            chunk = await asyncio.wait_for(server.read(), T)
            if not chunk:
                break  # the dialer's close reads as the end of the stream
            got += chunk
        await sender
        await server.aclose()
        assert bytes(got) == data


async def test_dial_errors(certs: DevCerts, purenng_leak_check: None) -> None:
    with pytest.raises(purenng.BadAddress):
        await purenng.stream.dial("quic://127.0.0.1:0")
    with pytest.raises(purenng.BadOption):
        await purenng.stream.dial("quic://127.0.0.1:1", tcp_nodelay=True)
    lst = await purenng.stream.listen("quic://127.0.0.1:0", tls_config=certs.server_config())
    async with lst:
        with pytest.raises(purenng.TLSError):
            await purenng.stream.dial(lst.url, timeout=T)  # system trust: our CA is not in it


async def test_paused_receiver_stops_the_sender(certs: DevCerts, purenng_leak_check: None) -> None:
    """A PULL that does not read holds the PUSH back: nothing is lost, little is queued."""
    size, offered = 64 * 1024, 1000
    async with (
        purenng.Pull0(recv_timeout=T, recv_buffer=4) as pull,
        purenng.Push0(send_timeout=0.5) as push,
    ):
        lst = await pull.alisten("quic://127.0.0.1:0", tls_config=certs.server_config())
        await push.adial(lst.url, block=True, tls_config=certs.client_config())
        await until(lambda: bool(pull.pipes), "the listener's pipe")
        accepted = 0
        for i in range(offered):
            try:
                await push.asend(i.to_bytes(4, "big") * (size // 4))
            except purenng.Timeout:
                break
            accepted += 1
        # Bounded by the receive queue, QUIC's window and the pipe's buffers,
        # not by what was offered.
        assert 0 < accepted < 200
        for i in range(accepted):
            msg = await pull.arecv()
            assert msg[:4] == i.to_bytes(4, "big")
            assert len(msg) == size
