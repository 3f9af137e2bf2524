"""Runs one QUIC connection on the event loop: datagrams in and out, one timer, events.

aioquic's connection is sans-IO: it is fed datagrams and the time, and asked
for datagrams to send and for its next deadline.  :class:`ConnectionDriver`
is that loop for one connection, dialer or listener side alike; where the
datagrams come from and go to (a connected UDP socket of its own, or a
listener's shared socket) is the caller's ``send`` function.

Theory of operation:

* **Sending** is deferred to the end of the loop turn (``transmit_soon``):
  everything written, acknowledged and granted in one turn leaves in as few
  packets as possible.  That is also how a dialer's SP header shares the
  flight that completes the handshake: the handshake completes while a
  datagram is being read, the dial coroutine resumes and the SP adapter
  writes its header, and only then does the turn's transmit run.
* **One timer**, re-armed only when aioquic's deadline moves earlier (a
  later deadline lets the armed timer fire, find nothing due, and re-arm),
  so a busy connection does not cancel and re-create a timer per packet.
* **Closing is reported at once.**  aioquic announces a closed connection
  only after the closing period (three probe timeouts); the driver looks at
  the pending close after every input, so the stream, a waiting dialer and
  the listener hear of it immediately, while aioquic finishes the closing
  period (it answers late packets with CONNECTION_CLOSE) before the driver
  lets go of the socket.
* **Keep-alive**: with ``keepalive`` set, a PING goes out whenever nothing
  was heard for that long, so a quiet pipe outlives the idle timeout.
"""

from __future__ import annotations

import itertools
import logging
from typing import TYPE_CHECKING, Any

from aioquic.quic import events
from purenng.plugin import ConnectionReset, NotSupported

from .stream_transport import QuicStreamTransport
from .wire import SP_STREAM_ID, app_code_for, close_error

if TYPE_CHECKING:
    import asyncio
    from collections.abc import Awaitable, Callable

    from purenng.plugin import BytesLike

    from .connection import SPQuicConnection

__all__ = ["ConnectionDriver", "QuicHandle"]

log: logging.Logger = logging.getLogger("purenng.quic")

#: Seconds a closed pipe waits for the peer to acknowledge what it still had
#: to send before the connection is closed anyway.
LINGER = 10.0
#: Longest closing (or draining) period, in seconds.  QUIC's is three probe
#: timeouts, and a probe timeout grows with the round-trip estimate: a
#: handshake made while the peer was busy could keep a closed pipe's socket
#: for seconds.  Late packets after this get no CONNECTION_CLOSE in reply
#: (a dialer's then get ICMP errors; the peer's idle timer ends it anyway).
CLOSING_MAX = 0.5

_ping_ids = itertools.count(1)


class ConnectionDriver:
    """Drives one :class:`~purenng_quic.connection.SPQuicConnection`.

    Args:
        quic: The connection.
        loop: The loop it runs on.
        send: Sends one datagram to an address.
        where: Names the connection in errors (the URL, or the peer's address).
        keepalive: Seconds of silence before a PING; None: no keep-alive.
        extras: Fixed stream extras (``sockname``...).
    """

    def __init__(
        self,
        quic: SPQuicConnection,
        loop: asyncio.AbstractEventLoop,
        send: Callable[[bytes, Any], None],
        *,
        where: str,
        keepalive: float | None,
        extras: dict[str, Any] | None = None,
    ) -> None:
        self.quic = quic
        self.loop = loop
        self.send_datagram = send
        self.where = where
        self.is_client = quic.configuration.is_client
        self.stream = QuicStreamTransport(self)
        self.handshake_done = False
        self.stream_open = False
        self.early_data_accepted = False
        #: Why the connection ended (None: a clean close); set once it is closing.
        self.error: BaseException | None = None
        self.closing = False
        self.terminated = False
        self.extras: dict[str, Any] = dict(extras or {})
        #: Whoever runs the connection keeps its own record here (the listener's).
        self.owner: Any = None
        #: Called once, when the TLS handshake is complete.
        self.on_handshake: Callable[[ConnectionDriver], None] | None = None
        #: Called once, as soon as the connection is closing (with its error).
        self.on_closing: Callable[[ConnectionDriver], None] | None = None
        #: Called once, when aioquic is done with the connection.
        self.on_terminated: Callable[[ConnectionDriver], None] | None = None
        #: Listener side: connection ids issued and retired by aioquic.
        self.on_cid_issued: Callable[[bytes], None] | None = None
        self.on_cid_retired: Callable[[bytes], None] | None = None
        self.datagrams_in = 0
        self.datagrams_out = 0
        #: How many datagrams had been read when the handshake completed and
        #: when the first stream data arrived (equal: same flight).
        self.handshake_at_datagram = 0
        self.stream_data_at_datagram = 0
        self._prebuffer = bytearray()
        self._fin_pending = False
        self._close_when_flushed: int | None = None
        self._linger: asyncio.TimerHandle | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        self._tx: asyncio.Handle | None = None
        self._keepalive = keepalive or None
        self._keepalive_timer: asyncio.TimerHandle | None = None
        self._closing_cap: asyncio.TimerHandle | None = None
        self._last_heard = loop.time()
        self.handle = QuicHandle(self)

    # ------------------------------------------------------------ inputs

    def connect(self, addr: Any) -> None:
        """(Dialer) start the handshake towards ``addr`` (stream 0 opens with the 1-RTT data)."""
        self.quic.connect(addr, now=self.loop.time())
        self.quic.open_sp_stream()
        self.stream_open = True
        self._start_keepalive()
        self.transmit()

    def datagram_received(self, data: bytes, addr: Any) -> None:
        """One datagram from the network."""
        if self.terminated:
            return
        self.datagrams_in += 1
        self._last_heard = self.loop.time()
        self.quic.receive_datagram(data, addr, now=self._last_heard)
        self._after_input()
        self.transmit_soon()

    def _handle_timer(self) -> None:
        at = self._timer_at if self._timer_at is not None else self.loop.time()
        self._timer = None
        self._timer_at = None
        if self.terminated:
            return
        self.quic.handle_timer(now=max(at, self.loop.time()))
        self._after_input()
        self.transmit()

    def _after_input(self) -> None:
        self._process_events()
        if not self.stream_open and not self.is_client and self.quic.sp_stream() is not None:
            self._opened()
        self.stream.check_writable()
        if self._close_when_flushed is not None and self.quic.send_finished():
            self._close_connection(self._close_when_flushed, "")
        self._check_closing()

    def _process_events(self) -> None:
        quic = self.quic
        event = quic.next_event()
        while event is not None:
            if isinstance(event, events.StreamDataReceived):
                if event.stream_id == SP_STREAM_ID:
                    if not self.stream_open:
                        self._opened()
                    self.stream.feed(event.data, event.end_stream)
            elif isinstance(event, events.HandshakeCompleted):
                self.handshake_done = True
                self.handshake_at_datagram = self.datagrams_in
                self.early_data_accepted = event.early_data_accepted
                self.extras["alpn"] = event.alpn_protocol
                self.extras["quic_early_data"] = event.early_data_accepted
                self.extras["quic_session_resumed"] = event.session_resumed
                if self.on_handshake is not None:
                    self.on_handshake(self)
            elif isinstance(event, events.StreamReset | events.StopSendingReceived):
                if event.stream_id == SP_STREAM_ID:
                    self._stream_reset(event.error_code)
            elif isinstance(event, events.ConnectionIdIssued):
                if self.on_cid_issued is not None:
                    self.on_cid_issued(event.connection_id)
            elif isinstance(event, events.ConnectionIdRetired):
                if self.on_cid_retired is not None:
                    self.on_cid_retired(event.connection_id)
            elif isinstance(event, events.ConnectionTerminated):
                self._check_closing()
                self._terminate()
                return
            event = quic.next_event()

    def _opened(self) -> None:
        """(Listener) the client opened stream 0: what we wrote before can go."""
        self.stream_open = True
        self.stream_data_at_datagram = self.datagrams_in
        if self._prebuffer:
            data, self._prebuffer = bytes(self._prebuffer), bytearray()
            self._send_stream(data, end=False)
        if self._fin_pending:
            self._fin_pending = False
            self._send_stream(b"", end=True)

    def _stream_reset(self, code: int) -> None:
        err = ConnectionReset(f"{self.where}: the peer reset the SP stream (code {code})")
        self._close_connection(app_code_for(None), "stream reset", error=err)

    # ------------------------------------------------------------ outputs

    def transmit_soon(self) -> None:
        """Send what is due at the end of this loop turn."""
        if self._tx is None and not self.terminated:
            self._tx = self.loop.call_soon(self.transmit)

    def transmit(self) -> None:
        """Send what is due now and re-arm the timer."""
        if self._tx is not None:
            self._tx.cancel()
            self._tx = None
        if self.terminated:
            return
        send = self.send_datagram
        n = 0
        for data, addr in self.quic.datagrams_to_send(now=self.loop.time()):
            send(data, addr)
            n += 1
        self.datagrams_out += n
        self._arm_timer()

    def _arm_timer(self) -> None:
        at = self.quic.get_timer()
        if at is None:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
                self._timer_at = None
            return
        if self._timer is not None and self._timer_at is not None and self._timer_at <= at:
            return  # fires early, finds nothing due, re-arms
        if self._timer is not None:
            self._timer.cancel()
        self._timer_at = at
        self._timer = self.loop.call_at(at, self._handle_timer)

    # ------------------------------------------------------------ the stream's calls

    def send(self, data: BytesLike) -> None:
        """Append to stream 0 (held until the client opens it, on a listener)."""
        if self.closing:
            return
        if not self.stream_open:
            self._prebuffer += data
            return
        self._send_stream(data, end=False)

    def _send_stream(self, data: Any, *, end: bool) -> None:
        try:
            self.quic.send_stream_data(SP_STREAM_ID, data, end_stream=end)
        except (ValueError, RuntimeError) as exc:  # the stream is finished or reset
            log.debug("%s: cannot write to the SP stream: %s", self.where, exc)
            return
        self.transmit_soon()

    def send_fin(self) -> None:
        """End our half of stream 0 after what is buffered."""
        if self.closing:
            return
        if not self.stream_open:
            self._fin_pending = True
            return
        self._send_stream(b"", end=True)

    def unsent_bytes(self) -> int:
        """Bytes written that the peer has not acknowledged."""
        return len(self._prebuffer) + (0 if self.closing else self.quic.unsent_bytes())

    def consumed(self, n: int) -> None:
        """The application took ``n`` bytes: grant the peer more credit when due."""
        quic = self.quic
        quic.consumed += n
        if quic.credit_due():
            self.transmit_soon()

    def finish(self) -> None:
        """Close gracefully: FIN, then CONNECTION_CLOSE once the peer acknowledged everything."""
        if self.closing:
            return
        code = app_code_for(getattr(self.stream._protocol, "error", None))
        if not self.handshake_done or not self.stream_open:
            self._close_connection(code, "")
            return
        self.send_fin()
        self._close_when_flushed = code
        self._linger = self.loop.call_later(LINGER, self._close_connection, code, "linger")
        if self.quic.send_finished():
            self._close_connection(code, "")
        else:
            self.transmit_soon()

    def close_now(self, error: BaseException | None = None) -> None:
        """Close the connection at once, telling the peer why (``error``: the pipe's)."""
        reason = str(error) if error is not None else ""
        self._close_connection(app_code_for(error), reason[:200])

    def _close_connection(
        self, code: int, reason: str, *, error: BaseException | None = None
    ) -> None:
        if self.closing and self._close_when_flushed is None:
            return
        self._close_when_flushed = None
        if self._linger is not None:
            self._linger.cancel()
            self._linger = None
        if error is not None and self.error is None:
            self.error = error
        self.quic.close(error_code=code, reason_phrase=reason)
        self.transmit()
        self._check_closing()

    def fail(self, error: BaseException) -> None:
        """Give the connection up without a word (the path is gone: ICMP, socket error)."""
        if self.terminated:
            return
        if self.error is None:
            self.error = error
        self._report_closing()
        self._terminate()

    # ------------------------------------------------------------ ending

    def _check_closing(self) -> None:
        if self.closing:
            return
        ev = getattr(self.quic, "_close_event", None)
        if ev is None:
            return
        if self.error is None:
            self.error = close_error(
                ev.error_code,
                ev.frame_type,
                ev.reason_phrase,
                by_peer=self.quic.closed_by_peer,
                where=self.where,
            )
        self._report_closing()

    def _report_closing(self) -> None:
        if self.closing:
            return
        self.closing = True
        self._stop_keepalive()
        if not self.terminated:
            self._closing_cap = self.loop.call_later(CLOSING_MAX, self._terminate)
        self.stream.lost(self.error)
        if self.on_closing is not None:
            self.on_closing(self)

    def _terminate(self) -> None:
        if self.terminated:
            return
        self._report_closing()
        self.terminated = True
        for handle in (self._timer, self._tx, self._linger, self._closing_cap):
            if handle is not None:
                handle.cancel()
        self._timer = self._tx = self._linger = self._closing_cap = None
        self._timer_at = None
        cb, self.on_terminated = self.on_terminated, None
        self.on_handshake = self.on_closing = None
        self.on_cid_issued = self.on_cid_retired = None
        if cb is not None:
            cb(self)

    # ------------------------------------------------------------ keep-alive

    def _start_keepalive(self) -> None:
        if self._keepalive is not None and self._keepalive_timer is None and not self.closing:
            self._keepalive_timer = self.loop.call_later(self._keepalive, self._keepalive_tick)

    def _stop_keepalive(self) -> None:
        if self._keepalive_timer is not None:
            self._keepalive_timer.cancel()
            self._keepalive_timer = None

    def _keepalive_tick(self) -> None:
        self._keepalive_timer = None
        if self.closing or self._keepalive is None:
            return
        quiet = self.loop.time() - self._last_heard
        if quiet >= self._keepalive * 0.99:
            self.quic.send_ping(next(_ping_ids))
            self.transmit()
            wait = self._keepalive
        else:
            wait = self._keepalive - quiet
        self._keepalive_timer = self.loop.call_later(wait, self._keepalive_tick)

    def start_keepalive(self) -> None:
        """(Listener) start keep-alive once the connection is up."""
        self._start_keepalive()

    # ------------------------------------------------------------ info

    def extra(self, name: str, default: Any = None) -> Any:
        """Stream extras (see :class:`~purenng_quic.stream_transport.QuicStream`)."""
        if name in ("peername", "quic_peer_address"):
            if name == "peername" and "peername" in self.extras:
                return self.extras["peername"]
            addr = self.quic.get_peer_address()
            return default if addr is None else addr
        if name == "quic":
            return self.handle
        return self.extras.get(name, default)


class QuicHandle:
    """A handle on a pipe's QUIC connection (``pipe.extra("quic")``).

    For diagnostics and for moving a dialer to a new local address; the
    connection itself stays owned by its pipe.
    """

    def __init__(self, driver: ConnectionDriver) -> None:
        self._driver = driver
        #: Set by the dialer: moves the connection to a new UDP socket.
        self._rebind: Callable[[], Awaitable[Any]] | None = None

    @property
    def is_client(self) -> bool:
        """True on the dialer's side."""
        return self._driver.is_client

    @property
    def closed(self) -> bool:
        """True once the connection is closing or closed."""
        return self._driver.closing

    @property
    def peer_address(self) -> Any:
        """The address datagrams go to now."""
        return self._driver.quic.get_peer_address()

    @property
    def local_address(self) -> Any:
        """Our UDP socket's address (the dialer's changes on :meth:`rebind`)."""
        return self._driver.extras.get("sockname")

    @property
    def datagrams(self) -> tuple[int, int]:
        """Datagrams received and sent so far."""
        return self._driver.datagrams_in, self._driver.datagrams_out

    @property
    def first_flight_carried_sp(self) -> bool:
        """(Listener) whether stream 0's first bytes came with the handshake's last flight."""
        d = self._driver
        return d.handshake_at_datagram > 0 and d.stream_data_at_datagram == d.handshake_at_datagram

    def ping(self) -> None:
        """Send a PING now."""
        d = self._driver
        if not d.closing:
            d.quic.send_ping(next(_ping_ids))
            d.transmit()

    async def rebind(self) -> Any:
        """(Dialer) move the connection to a fresh UDP socket (a new local port).

        The connection migrates (RFC 9000 §9): the next packets leave from
        the new address, under a new connection id; the listener validates
        the new path and answers there.  Returns the new local address.

        Raises:
            NotSupported: on the listener's side.
        """
        if self._rebind is None:
            raise NotSupported("only a dialer's connection can move to a new local address")
        return await self._rebind()
