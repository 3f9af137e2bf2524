"""purenng.stream over ws:// and wss://: plain WebSocket byte streams, no SP."""

from __future__ import annotations

import asyncio
import os
from typing import TYPE_CHECKING, Any

import pytest

import purenng
import purenng.stream
from purenng.certs import DevCerts, make_dev_certs

if TYPE_CHECKING:
    from purenng.core.byte_stream import Stream

try:
    import websockets  # noqa: F401 - the ws extra, also the interop peer
except ImportError:
    if os.environ.get("PURENNG_REQUIRE_PEERS"):
        raise
    pytest.skip("the ws extra (websockets) is not installed", allow_module_level=True)

T = 10.0
MiB = 1 << 20


@pytest.fixture(scope="module")
def certs() -> DevCerts:
    return make_dev_certs()


async def _echo(lst: purenng.stream.Listener) -> Stream:
    """Echo one accepted stream until its peer closes; return it."""
    conn = await lst.accept()
    async with conn:
        while data := await conn.read():
            conn.write(data)
            await conn.drain()
    return conn


def _opts(certs: DevCerts, scheme: str) -> tuple[dict[str, Any], dict[str, Any]]:
    if scheme == "ws":
        return {}, {}
    return {"tls_config": certs.server_config()}, {"tls_config": certs.client_config()}


@pytest.mark.parametrize("scheme", ["ws", "wss"])
async def test_echo(certs: DevCerts, scheme: str) -> None:
    lopts, dopts = _opts(certs, scheme)
    async with asyncio.timeout(T):
        async with await purenng.stream.listen(f"{scheme}://127.0.0.1:0/echo", **lopts) as lst:
            assert lst.url.startswith(f"{scheme}://127.0.0.1:")
            assert lst.url.endswith("/echo")
            assert lst.port
            server = asyncio.create_task(_echo(lst))
            conn = await purenng.stream.dial(lst.url.replace("127.0.0.1", "localhost"), **dopts)
            async with conn:
                conn.write(b"hello")
                assert await conn.read_exactly(5) == b"hello"
                assert conn.remote_address[1] == lst.port
                assert conn.local_address is not None
                assert conn.extra("ws_protocol") is None
                if scheme == "wss":
                    assert conn.extra("peercert") is not None
            accepted = await server
            assert accepted.remote_address == conn.local_address


async def test_read_exactly_across_messages() -> None:
    async with asyncio.timeout(T):
        async with await purenng.stream.listen("ws://127.0.0.1:0/s") as lst:
            conn = await purenng.stream.dial(lst.url)
            peer = await lst.accept()
            for part in (b"ab", b"cde", b"fghij", b"k"):  # one message each
                conn.write(part)
            assert await peer.read_exactly(4) == b"abcd"
            assert await peer.read_exactly(6) == b"efghij"
            assert await peer.read(100) == b"k"
            conn.close()
            assert await peer.read() == b""
            with pytest.raises(purenng.ConnectionReset):
                await peer.read_exactly(1)
            peer.close()


async def test_large_payload_both_ways() -> None:
    payload = bytes(range(251)) * (MiB // 251 + 1)
    payload = payload[:MiB]
    async with asyncio.timeout(T):
        async with await purenng.stream.listen("ws://127.0.0.1:0/big") as lst:
            server = asyncio.create_task(_echo(lst))
            async with await purenng.stream.dial(lst.url) as conn:
                conn.write(payload)  # one message in 16 frames of 64 KiB
                await conn.drain()
                assert await conn.read_exactly(MiB) == payload
            await server


async def test_writes_are_fragmented_by_send_frame_max() -> None:
    """A listener taking frames of 64 KiB at most gets a 200 kB write whole, in pieces,
    and closes (1009) on the same write sent as one frame."""
    data = b"z" * 200_000
    async with asyncio.timeout(T):
        async with await purenng.stream.listen(
            "ws://127.0.0.1:0/f", ws_recv_frame_max=64 * 1024
        ) as lst:
            async with await purenng.stream.dial(lst.url, ws_send_frame_max=64 * 1024) as conn:
                peer = await lst.accept()
                conn.write(data)
                assert await peer.read_exactly(len(data)) == data
                peer.close()
            async with await purenng.stream.dial(lst.url, ws_send_frame_max=0) as conn:
                peer = await lst.accept()
                conn.write(data)
                with pytest.raises(purenng.ConnectionReset, match="1009"):
                    await peer.read()
                assert await conn.read() == b""  # the listener's close frame ends it
                peer.close()


async def test_close_ends_the_peer_and_closes_locally() -> None:
    async with asyncio.timeout(T):
        async with await purenng.stream.listen("ws://127.0.0.1:0/") as lst:
            conn = await purenng.stream.dial(lst.url)
            peer = await lst.accept()
            conn.write(b"last words")
            await conn.aclose()
            assert await peer.read_exactly(10) == b"last words"
            assert await peer.read() == b""
            with pytest.raises(purenng.ConnectionReset):
                peer.write(b"too late")
            with pytest.raises(purenng.Closed):
                await conn.read()
            with pytest.raises(purenng.Closed):
                conn.write(b"x")
            peer.close()
            # And the other way round: the listener's side closes first.
            conn = await purenng.stream.dial(lst.url)
            peer = await lst.accept()
            peer.close()
            assert await conn.read() == b""
            conn.close()


async def test_stream_and_sp_paths_share_a_port() -> None:
    async with asyncio.timeout(T):
        async with purenng.Pair0(recv_timeout=T) as a, purenng.Pair0(recv_timeout=T) as b:
            sp = await a.alisten("ws://127.0.0.1:0/sp")
            port = sp.port
            assert port
            lst = await purenng.stream.listen(f"ws://127.0.0.1:{port}/raw")
            async with lst:
                assert lst.port == port
                await b.adial(f"ws://127.0.0.1:{port}/sp", block=True)
                async with await purenng.stream.dial(f"ws://127.0.0.1:{port}/raw") as conn:
                    peer = await lst.accept()
                    await b.asend(b"sp message")
                    conn.write(b"stream bytes")
                    assert await a.arecv() == b"sp message"
                    assert await peer.read_exactly(12) == b"stream bytes"
                    peer.close()
                # An SP socket dialing the stream path is refused (no SP subprotocol
                # there), and a stream dialing the SP path likewise.
                with pytest.raises(purenng.ProtocolError, match="subprotocol"):
                    await b.adial(f"ws://127.0.0.1:{port}/raw", block=True)
                with pytest.raises(purenng.ProtocolError, match="mismatch"):
                    await purenng.stream.dial(f"ws://127.0.0.1:{port}/sp")
            # The port lives on for the SP path after the stream listener left.
            await b.asend(b"still here")
            assert await a.arecv() == b"still here"


async def test_websockets_client_interop() -> None:
    from websockets.asyncio.client import connect

    async with asyncio.timeout(T):
        async with await purenng.stream.listen("ws://127.0.0.1:0/plain") as lst:
            server = asyncio.create_task(_echo(lst))
            async with connect(lst.url, compression=None) as ws:
                assert ws.subprotocol is None
                await ws.send(b"one")
                await ws.send(b"two")
                got = b""
                while len(got) < 6:
                    msg = await ws.recv()
                    assert isinstance(msg, bytes)
                    got += msg
                assert got == b"onetwo"
                big = bytes(300_000)
                await ws.send(big)
                got = b""
                while len(got) < len(big):
                    msg = await ws.recv()
                    assert isinstance(msg, bytes)
                    got += msg
                assert got == big
            assert (await server).remote_address is not None


async def test_ws_protocol_option() -> None:
    from websockets.asyncio.client import connect

    async with asyncio.timeout(T):
        async with await purenng.stream.listen(
            "ws://127.0.0.1:0/chat", ws_protocol="chat.example"
        ) as lst:
            async with connect(lst.url, subprotocols=["chat.example"]) as ws:  # type: ignore[list-item]
                assert ws.subprotocol == "chat.example"
                peer = await lst.accept()
                assert peer.extra("ws_protocol") == "chat.example"
                peer.close()
            async with await purenng.stream.dial(lst.url, ws_protocol="chat.example") as conn:
                assert conn.extra("ws_protocol") == "chat.example"
                (await lst.accept()).close()
            with pytest.raises(purenng.ProtocolError, match="subprotocol mismatch"):
                await purenng.stream.dial(lst.url)
    with pytest.raises(purenng.BadOption, match="ws_protocol"):
        await purenng.stream.dial("ws://127.0.0.1:1/", ws_protocol="two words")
    with pytest.raises(purenng.BadOption, match="ws_ping_interval"):
        await purenng.stream.dial("ws://127.0.0.1:1/", ws_ping_interval=1.0)
    with pytest.raises(purenng.BadOption, match="certificate"):
        await purenng.stream.listen("wss://127.0.0.1:0/")
