"""Stream 0 of a QUIC connection, dressed as an asyncio transport.

purenng's SP adapter is fastest on an asyncio transport it can adopt: it
installs itself as the transport's ``BufferedProtocol`` and parses frames
from each chunk as it arrives (``Stream.detach_transport``).
:class:`QuicStreamTransport` gives it exactly that over a QUIC stream, and
:class:`QuicStream` is the :class:`~purenng.plugin.Stream` around it, so SP
pipes and ``purenng.stream`` byte streams share one code path.

How the asyncio transport calls map onto QUIC:

* ``write`` appends to stream 0 (aioquic copies it); the datagrams go out at
  the end of the loop turn, so a burst of writes shares packets.
  ``get_write_buffer_size`` is what the peer has not acknowledged yet;
  ``pause_writing``/``resume_writing`` follow it across the
  ``set_write_buffer_limits`` marks, as on a TCP transport.
* Received bytes go to the protocol as they are decrypted, in order.
  ``pause_reading`` holds them here and stops granting the peer flow-control
  credit (:mod:`purenng_quic.connection`), so the peer stops within one window.
* The peer's FIN is ``eof_received``; a reset stream or a closed connection
  is ``connection_lost`` with the reason as a purenng error.
* ``close`` sends FIN after what is buffered, and the connection is closed
  (CONNECTION_CLOSE, application code 0) once the peer has acknowledged it
  all; ``abort`` closes the connection at once, with application code 1
  (SP protocol error) or 2 (SP handshake timeout) when the protocol failed
  the pipe for such a reason (its ``error``), else 0.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import TYPE_CHECKING, Any

from purenng.plugin import AsyncioStream, StreamProtocol

if TYPE_CHECKING:
    from purenng.plugin import BytesLike

    from .driver import ConnectionDriver

__all__ = ["QuicStream", "QuicStreamTransport"]

#: asyncio's default write buffer limits (the SP adapter sets its own).
_HIGH = 64 * 1024


class QuicStreamTransport(asyncio.Transport):
    """The asyncio face of one connection's stream 0 (see the module docstring)."""

    def __init__(self, driver: ConnectionDriver) -> None:
        super().__init__()
        self._driver = driver
        self._protocol: asyncio.BaseProtocol | None = None
        self._inbox: deque[memoryview] = deque()
        self._eof = False
        self._eof_delivered = False
        self._paused = False
        self._flush_handle: asyncio.Handle | None = None
        self._closing = False
        self._lost = False
        self._write_paused = False
        self._high = _HIGH
        self._low = _HIGH // 4

    # ------------------------------------------------------------ from the driver

    def feed(self, data: bytes, fin: bool) -> None:
        """Bytes (and maybe the FIN) that arrived on stream 0."""
        if self._lost:
            return
        if data:
            self._inbox.append(memoryview(data))
        if fin:
            self._eof = True
        if not self._paused and self._flush_handle is None:
            self._deliver()

    def lost(self, exc: BaseException | None) -> None:
        """The connection is over: tell the protocol (once, on a later loop turn)."""
        if self._lost:
            return
        self._lost = True
        self._closing = True
        self._driver.loop.call_soon(self._call_lost, exc)

    def check_writable(self) -> None:
        """Acknowledgements came: resume a paused writer below the low mark."""
        if self._write_paused and self.get_write_buffer_size() <= self._low:
            self._write_paused = False
            p = self._protocol
            if p is not None and not self._lost:
                p.resume_writing()

    # ------------------------------------------------------------ delivery

    def _deliver(self) -> None:
        p = self._protocol
        if p is None:
            return
        inbox = self._inbox
        buffered = isinstance(p, asyncio.BufferedProtocol)
        taken = 0
        while inbox and not self._paused and p is self._protocol:
            chunk = inbox[0]
            if buffered:
                assert isinstance(p, asyncio.BufferedProtocol)
                buf = memoryview(p.get_buffer(len(chunk)))
                n = min(len(buf), len(chunk))
                if n == 0:
                    break  # the protocol takes nothing now (it failed, or is closing)
                buf[:n] = chunk[:n]
                if n == len(chunk):
                    inbox.popleft()
                else:
                    inbox[0] = chunk[n:]
                taken += n
                p.buffer_updated(n)
            else:
                assert isinstance(p, asyncio.Protocol)
                inbox.popleft()
                taken += len(chunk)
                p.data_received(bytes(chunk))
        if taken:
            self._driver.consumed(taken)
        if (
            self._eof
            and not inbox
            and not self._eof_delivered
            and not self._paused
            and p is self._protocol
            and not self._lost
        ):
            self._eof_delivered = True
            keep_open = p.eof_received() if isinstance(p, asyncio.Protocol) else False
            if not keep_open:
                self.close()

    def _flush_soon(self) -> None:
        if self._flush_handle is None:
            self._flush_handle = self._driver.loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_handle = None
        if not self._paused:
            self._deliver()

    def _call_lost(self, exc: BaseException | None) -> None:
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush_handle = None
        p = self._protocol
        if p is None:
            return
        if not self._paused:
            lost, self._lost = self._lost, False
            self._deliver()  # what arrived before the close still counts
            self._lost = lost
        self._inbox.clear()
        self._protocol = None
        p.connection_lost(exc if isinstance(exc, Exception) else None)

    # ------------------------------------------------------------ asyncio.BaseTransport

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self._protocol = protocol
        if self._inbox or self._eof:
            self._flush_soon()

    def get_protocol(self) -> asyncio.BaseProtocol:
        assert self._protocol is not None
        return self._protocol

    def is_closing(self) -> bool:
        return self._closing

    def close(self) -> None:
        if self._closing:
            return
        self._closing = True
        self._driver.finish()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self._driver.extra(name, default)

    # ------------------------------------------------------------ asyncio.ReadTransport

    def is_reading(self) -> bool:
        return not self._paused and not self._closing

    def pause_reading(self) -> None:
        self._paused = True

    def resume_reading(self) -> None:
        if not self._paused:
            return
        self._paused = False
        if self._inbox or self._eof:
            self._flush_soon()

    # ------------------------------------------------------------ asyncio.WriteTransport

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        if high is None:
            high = _HIGH if low is None else 4 * low
        if low is None:
            low = high // 4
        if not 0 <= low <= high:
            raise ValueError(f"high ({high!r}) must be >= low ({low!r}) must be >= 0")
        self._high, self._low = high, low

    def get_write_buffer_limits(self) -> tuple[int, int]:
        return self._low, self._high

    def get_write_buffer_size(self) -> int:
        return self._driver.unsent_bytes()

    def write(self, data: BytesLike) -> None:
        if self._closing or not data:
            return
        self._driver.send(data)
        if not self._write_paused and self.get_write_buffer_size() > self._high:
            self._write_paused = True
            p = self._protocol
            if p is not None:
                p.pause_writing()

    def writelines(self, list_of_data: Any) -> None:
        for data in list_of_data:
            self.write(data)

    def write_eof(self) -> None:
        if not self._closing:
            self._driver.send_fin()

    def can_write_eof(self) -> bool:
        return True

    def abort(self) -> None:
        self._closing = True
        p = self._protocol
        self._driver.close_now(getattr(p, "error", None))


class QuicStream(AsyncioStream):
    """A :class:`~purenng.plugin.Stream` over stream 0 of a QUIC connection.

    Extras (``stream.extra(name)``, and ``pipe.extra(name)`` on SP pipes):
    ``peername``, ``sockname``, ``peercert`` (the verified certificate, as
    ``ssl.SSLSocket.getpeercert()`` gives it), ``tls_verified``,
    ``tls_peer_cn``, ``tls_version``, ``cipher``, ``alpn``,
    ``quic_peer_address`` (the peer's address now: it changes when a client
    migrates), ``quic_early_data`` (0-RTT accepted) and ``quic``, a
    :class:`~purenng_quic.driver.QuicHandle` to the connection.
    """

    def __init__(self, transport: QuicStreamTransport) -> None:
        protocol = StreamProtocol()
        transport.set_protocol(protocol)
        protocol.connection_made(transport)
        super().__init__(transport, protocol)
