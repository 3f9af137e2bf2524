"""Small helpers shared by the tests."""

from __future__ import annotations

import asyncio
import ssl
from typing import TYPE_CHECKING, Any

from aioquic.asyncio.protocol import QuicConnectionProtocol
from aioquic.quic import events
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.connection import QuicConnection

if TYPE_CHECKING:
    from collections.abc import Callable

#: Seconds a wait may take before the test fails: only stops hangs.
T = 10.0


def extra(pipe: Any, name: str) -> Any:
    """``pipe.extra(name)``: stream pipes have it, the ``Pipe`` interface does not declare it."""
    return pipe.extra(name)


async def until(cond: Callable[[], bool], what: str = "condition", timeout: float = T) -> None:
    """Poll ``cond`` until it holds; fail after ``timeout`` seconds."""
    try:
        async with asyncio.timeout(timeout):
            while not cond():
                await asyncio.sleep(0.005)
    except TimeoutError:
        raise AssertionError(f"timed out waiting for {what}") from None


# ---------------------------------------------------------------- a bare QUIC client


class RawClient(QuicConnectionProtocol):
    """A QUIC client with no SP in it, for feeding a listener bad input.

    It records every event; ``terminated`` resolves with the
    ConnectionTerminated event.
    """

    def __init__(self, quic: QuicConnection, stream_handler: Any = None) -> None:
        super().__init__(quic, stream_handler)
        self.events: list[events.QuicEvent] = []
        self.received: dict[int, bytearray] = {}
        self.terminated: asyncio.Future[events.ConnectionTerminated] = (
            asyncio.get_running_loop().create_future()
        )
        self.udp: asyncio.DatagramTransport | None = None

    def quic_event_received(self, event: events.QuicEvent) -> None:
        self.events.append(event)
        if isinstance(event, events.StreamDataReceived):
            self.received.setdefault(event.stream_id, bytearray()).extend(event.data)
        if isinstance(event, events.ConnectionTerminated) and not self.terminated.done():
            self.terminated.set_result(event)

    def send(self, stream_id: int, data: bytes, end: bool = False) -> None:
        self._quic.send_stream_data(stream_id, data, end_stream=end)
        self.transmit()

    def reset(self, stream_id: int, code: int) -> None:
        self._quic.reset_stream(stream_id, code)
        self.transmit()

    async def bytes_on(self, stream_id: int, n: int) -> bytes:
        await until(lambda: len(self.received.get(stream_id, b"")) >= n, f"{n} bytes")
        return bytes(self.received[stream_id][:n])

    async def aclose(self) -> None:
        if not self.terminated.done():
            self.close()
            try:
                async with asyncio.timeout(T):
                    await asyncio.shield(self.terminated)
            except TimeoutError:
                pass
        if self.udp is not None:
            self.udp.close()


async def raw_client(
    port: int, *, alpn: str = "nng-sp/1", connect: bool = True, host: str = "127.0.0.1"
) -> RawClient:
    """A :class:`RawClient` connected (handshake done, unless ``connect`` is False)."""
    loop = asyncio.get_running_loop()
    cfg = QuicConfiguration(is_client=True, alpn_protocols=[alpn], verify_mode=ssl.CERT_NONE)
    quic = QuicConnection(configuration=cfg)
    tr, proto = await loop.create_datagram_endpoint(
        lambda: RawClient(quic), remote_addr=(host, port)
    )
    client: RawClient = proto
    client.udp = tr
    addr = tr.get_extra_info("peername")
    client.connect(addr)
    if connect:
        async with asyncio.timeout(T):
            await client.wait_connected()
    return client
