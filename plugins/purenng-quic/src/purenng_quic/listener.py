"""A ``quic://`` listener: one UDP socket, many connections, each one SP pipe.

Datagrams are sorted by destination connection id (every id aioquic has
issued to a connection leads to it, so a client that migrates to a new
address is still found).  A datagram for no known connection starts one
only if it can: a long-header Initial of at least 1200 bytes (RFC 9000
§14.1) that decrypts.  Everything else is dropped and counted, and an
Initial that does not decrypt leaves nothing behind, so garbage costs the
listener one failed decryption and no memory.

Bounds (both count against the same connections, from the first Initial
until the connection is gone):

* ``quic_max_connections`` (default 1024) connections per listener, and the
  endpoint's ``max_pipes`` when set.  Past either, a new client is refused
  at once with an Initial CONNECTION_CLOSE (CONNECTION_REFUSED), built from
  the client's own Initial keys: no TLS work is spent on it, and the dialer
  sees :class:`~purenng.ConnectionRefused` within a round trip and backs off.
* ``quic_handshake_timeout`` (default 10 s) for the TLS handshake; the SP
  header exchange that follows has purenng's own ``sp_handshake_timeout``
  (a client that finishes TLS and never opens stream 0 fails there, and is
  counted in the socket's ``stats()["handshake_failures"]``).

A connection is handed to ``accept()`` when its TLS handshake is complete
(and its client certificate verified, if ``auth_mode`` asks for one).  The
UDP socket stays open after :meth:`QuicListener.close` while connections
already accepted live, and closes with the last of them.

Counters (:meth:`QuicListener.stats`, or ``purenng_quic.listener_stats(lst)``
for a socket's listener): ``datagrams_in``, ``datagrams_dropped``,
``connections_refused``, ``handshake_failures``, ``handshake_timeouts``,
``connections_accepted``, ``connections`` (open now); ``last_error`` holds
the reason of the latest failed handshake.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import socket
import weakref
from collections import deque
from typing import TYPE_CHECKING, Any, Protocol

from aioquic.buffer import Buffer
from aioquic.quic.crypto import CryptoPair
from aioquic.quic.packet import (
    QuicErrorCode,
    QuicFrameType,
    QuicPacketType,
    encode_quic_version_negotiation,
    pull_quic_header,
)
from aioquic.quic.packet_builder import QuicPacketBuilder
from purenng.plugin import AddressInUse, BadAddress, Closed, StreamListener, Timeout, TLSError

from .connection import SPQuicConnection
from .driver import ConnectionDriver
from .stream_transport import QuicStream
from .tls_setup import common_name, peer_certificate_dict, verify_client

if TYPE_CHECKING:
    from aioquic.quic.configuration import QuicConfiguration
    from purenng.plugin import Stream, TLSConfig

    from .tickets import TicketStore

__all__ = ["QuicListener", "bind_udp", "listener_for", "refusal_datagram"]

log: logging.Logger = logging.getLogger("purenng.quic")

#: Smallest datagram that may carry a client's first Initial (RFC 9000 §14.1).
MIN_INITIAL = 1200
#: UDP socket buffers asked for (the kernel may give less).
SOCKET_BUFFER = 4 << 20
#: TLS alerts sent as CRYPTO_ERROR (0x100 + alert) when a client certificate fails.
_BAD_CERTIFICATE = 0x100 + 42
_CERTIFICATE_REQUIRED = 0x100 + 116

#: Live listeners by bound address, for :func:`listener_for`.
_by_address: weakref.WeakValueDictionary[tuple[Any, ...], QuicListener] = (
    weakref.WeakValueDictionary()
)


class ConnectionSlot(Protocol):
    """A connection's place under the endpoint's ``max_pipes`` (purenng's ``ConnectionSlot``)."""

    def release(self) -> None: ...


class ConnectionGate(Protocol):
    """The endpoint's admission control (purenng's ``ConnectionGate``, not in purenng.plugin)."""

    def admit(self) -> ConnectionSlot | None: ...


def refusal_datagram(data: bytes, cid_length: int) -> bytes | None:
    """An Initial packet answering the client Initial ``data`` with CONNECTION_REFUSED.

    Built with the Initial keys derived from the client's chosen connection
    id, as any server's first packet is; no handshake state is made.
    """
    try:
        header = pull_quic_header(Buffer(data=data), host_cid_length=cid_length)
    except ValueError:
        return None
    if header.version is None:
        return None
    crypto = CryptoPair()
    crypto.setup_initial(cid=header.destination_cid, is_client=False, version=header.version)
    builder = QuicPacketBuilder(
        host_cid=os.urandom(cid_length),
        peer_cid=header.source_cid,
        version=header.version,
        is_client=False,
        max_datagram_size=MIN_INITIAL,
    )
    builder.start_packet(QuicPacketType.INITIAL, crypto)
    reason = b"too many connections"
    buf = builder.start_frame(QuicFrameType.TRANSPORT_CLOSE, capacity=1 + 8 + 8 + 8 + len(reason))
    buf.push_uint_var(QuicErrorCode.CONNECTION_REFUSED)
    buf.push_uint_var(0)  # no frame caused it
    buf.push_uint_var(len(reason))
    buf.push_bytes(reason)
    datagrams, _ = builder.flush()
    return datagrams[0] if datagrams else None


async def bind_udp(host: str, port: int, family: int, where: str) -> socket.socket:
    """A bound UDP socket for the first address of ``host`` (IPv6 sockets are IPv6 only).

    Raises:
        AddressInUse: the port is taken.
        BadAddress: the address is not one of this host's, or does not resolve.
    """
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(
            host, port, family=family, type=socket.SOCK_DGRAM, flags=socket.AI_PASSIVE
        )
    except socket.gaierror as exc:
        raise BadAddress(f"{where!r}: cannot resolve {host!r}: {exc.strerror}") from exc
    af, kind, proto, _, addr = infos[0]
    sock = socket.socket(af, kind, proto)
    try:
        if af == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        for opt in (socket.SO_RCVBUF, socket.SO_SNDBUF):
            try:
                sock.setsockopt(socket.SOL_SOCKET, opt, SOCKET_BUFFER)
            except OSError:
                pass
        sock.bind(addr)
        sock.setblocking(False)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise AddressInUse(f"{where}: address already in use") from exc
        if exc.errno == errno.EADDRNOTAVAIL:
            raise BadAddress(f"{where}: address not available on this host") from exc
        raise
    return sock


def listener_for(local_address: Any) -> QuicListener | None:
    """The live QUIC listener bound to ``local_address``, if any."""
    if not isinstance(local_address, tuple):
        return None
    return _by_address.get(tuple(local_address[:2]))


class _Endpoint(asyncio.DatagramProtocol):
    """The listener's UDP socket: hands each datagram to its connection."""

    def __init__(self, listener: QuicListener) -> None:
        self.listener = listener
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.listener._datagram(data, addr)

    def error_received(self, exc: Exception) -> None:
        log.debug("listener %s: UDP error: %s", self.listener.url, exc)

    def connection_lost(self, exc: Exception | None) -> None:
        self.listener._udp_lost()


class _Server:
    """The listener's view of one connection."""

    __slots__ = ("accepted", "cids", "driver", "failure_counted", "hs_timer", "slot")

    def __init__(self, driver: ConnectionDriver, slot: ConnectionSlot | None) -> None:
        self.driver = driver
        self.slot = slot
        self.cids: set[bytes] = set()
        self.accepted = False
        self.failure_counted = False
        self.hs_timer: asyncio.TimerHandle | None = None


class QuicListener(StreamListener):
    """Listens on one UDP socket; :meth:`accept` yields a stream per connection.

    Args:
        url: The bound URL (real port).
        configuration: The server's QUIC configuration (shared by its connections).
        tls: The listener's TLS config (client certificate checks).
        options: The endpoint's options.
        tickets: Session tickets, when 0-RTT is on; None: no tickets are issued.
    """

    def __init__(
        self,
        url: str,
        configuration: QuicConfiguration,
        tls: TLSConfig,
        options: dict[str, Any],
        tickets: TicketStore | None,
    ) -> None:
        self._url = url
        self._configuration = configuration
        self._tls = tls
        self._max = int(options["quic_max_connections"])
        self._handshake_timeout = float(options["quic_handshake_timeout"])
        self._keepalive: float | None = options["quic_keepalive"] or None
        self._window = int(options["quic_stream_window"])
        self._tickets = tickets
        self._loop = asyncio.get_running_loop()
        self._endpoint = _Endpoint(self)
        self._sockname: Any = None
        self._cids: dict[bytes, _Server] = {}
        self._servers: set[_Server] = set()
        self._queue: deque[QuicStream] = deque()
        self._waiter: asyncio.Future[None] | None = None
        self._gate: ConnectionGate | None = None
        self._closed = False
        self._udp_closed: asyncio.Future[None] = self._loop.create_future()
        self._stats: dict[str, int] = dict.fromkeys(
            (
                "datagrams_in",
                "datagrams_dropped",
                "connections_refused",
                "handshake_failures",
                "handshake_timeouts",
                "connections_accepted",
            ),
            0,
        )
        #: Why the latest failed handshake failed.
        self.last_error: BaseException | None = None

    async def start(self, sock: socket.socket) -> None:
        """Serve the bound UDP socket ``sock`` (the listener owns it from now on)."""
        try:
            await self._loop.create_datagram_endpoint(lambda: self._endpoint, sock=sock)
        except BaseException:
            sock.close()
            raise
        self._sockname = sock.getsockname()
        _by_address[tuple(self._sockname[:2])] = self

    # ------------------------------------------------------------ datagrams

    def _send(self, data: bytes, addr: Any) -> None:
        tr = self._endpoint.transport
        if tr is not None and not tr.is_closing():
            tr.sendto(data, addr)

    def _datagram(self, data: bytes, addr: Any) -> None:
        stats = self._stats
        stats["datagrams_in"] += 1
        cid_length = self._configuration.connection_id_length
        try:
            header = pull_quic_header(Buffer(data=data), host_cid_length=cid_length)
        except ValueError:
            stats["datagrams_dropped"] += 1
            return
        server = self._cids.get(header.destination_cid)
        if server is not None:
            server.driver.datagram_received(data, addr)
            return
        if (
            header.version is not None
            and header.packet_type != QuicPacketType.VERSION_NEGOTIATION
            and header.version not in self._configuration.supported_versions
        ):
            if len(data) >= MIN_INITIAL:  # never answer more than was sent
                self._send(
                    encode_quic_version_negotiation(
                        source_cid=header.destination_cid,
                        destination_cid=header.source_cid,
                        supported_versions=self._configuration.supported_versions,
                    ),
                    addr,
                )
            stats["datagrams_dropped"] += 1
            return
        if header.packet_type != QuicPacketType.INITIAL or len(data) < MIN_INITIAL:
            stats["datagrams_dropped"] += 1
            return
        self._new_connection(data, addr, header.destination_cid)

    def _refuse(self, data: bytes, addr: Any) -> None:
        self._stats["connections_refused"] += 1
        packet = refusal_datagram(data, self._configuration.connection_id_length)
        if packet is not None:
            self._send(packet, addr)

    def _new_connection(self, data: bytes, addr: Any, original_cid: bytes) -> None:
        if self._closed or len(self._servers) >= self._max:
            self._refuse(data, addr)
            return
        slot: ConnectionSlot | None = None
        if self._gate is not None:
            slot = self._gate.admit()
            if slot is None:
                self._refuse(data, addr)
                return
        mode = self._tls.mode_for(server_side=True)
        kwargs: dict[str, Any] = {}
        if self._tickets is not None:
            kwargs["session_ticket_fetcher"] = self._tickets.pop
            kwargs["session_ticket_handler"] = self._tickets.add
        quic = SPQuicConnection(
            configuration=self._configuration,
            window=self._window,
            request_client_certificate=mode != "none",
            original_destination_connection_id=original_cid,
            **kwargs,
        )
        driver = ConnectionDriver(
            quic,
            self._loop,
            self._send,
            where=f"{self._url} (peer {_show(addr)})",
            keepalive=self._keepalive,
            extras={"sockname": self._sockname, "peername": addr},
        )
        server = _Server(driver, slot)
        driver.on_cid_issued = lambda cid: self._add_cid(server, cid)
        driver.on_cid_retired = lambda cid: self._drop_cid(server, cid)
        driver.datagram_received(data, addr)
        if not quic.has_peer():
            # Did not decrypt: garbage shaped like an Initial.  Nothing is kept.
            self._stats["datagrams_dropped"] += 1
            for cid in list(server.cids):
                self._drop_cid(server, cid)
            if slot is not None:
                slot.release()
            driver.fail(Closed("not a QUIC Initial"))
            return
        driver.on_handshake = self._handshake_done
        driver.on_closing = self._closing
        driver.on_terminated = self._terminated
        driver.owner = server
        self._servers.add(server)
        self._add_cid(server, original_cid)
        self._add_cid(server, quic.host_cid)
        server.hs_timer = self._loop.call_later(
            self._handshake_timeout, self._handshake_timed_out, server
        )
        # Events of the first datagram were processed before the callbacks
        # were set: a closing or finished handshake is looked at again.
        if driver.handshake_done:
            self._handshake_done(driver)
        if driver.closing:
            self._closing(driver)
        if driver.terminated:
            self._terminated(driver)

    def _add_cid(self, server: _Server, cid: bytes) -> None:
        server.cids.add(cid)
        self._cids[cid] = server

    def _drop_cid(self, server: _Server, cid: bytes) -> None:
        server.cids.discard(cid)
        if self._cids.get(cid) is server:
            del self._cids[cid]

    # ------------------------------------------------------------ connection lifecycle

    def _handshake_timed_out(self, server: _Server) -> None:
        server.hs_timer = None
        d = server.driver
        if d.handshake_done or d.closing:
            return
        self._stats["handshake_timeouts"] += 1
        server.failure_counted = True
        self.last_error = Timeout(f"{d.where}: QUIC handshake not completed in time")
        d.close_now(self.last_error)

    def _handshake_done(self, driver: ConnectionDriver) -> None:
        server: _Server = driver.owner
        if server.hs_timer is not None:
            server.hs_timer.cancel()
            server.hs_timer = None
        if server.accepted or driver.closing:
            return
        cert, chain = driver.quic.peer_certificate()
        refused = verify_client(self._tls, cert, chain)
        if refused is not None:
            self._stats["handshake_failures"] += 1
            server.failure_counted = True
            self.last_error = TLSError(
                f"{driver.where}: client certificate refused: {refused}", reason=refused
            )
            code = _CERTIFICATE_REQUIRED if cert is None else _BAD_CERTIFICATE
            driver.quic.close(
                error_code=code, frame_type=QuicFrameType.CRYPTO, reason_phrase=refused
            )
            driver.transmit()
            return
        verified = cert is not None
        driver.extras.update(
            {
                "peercert": peer_certificate_dict(cert) if verified else {},
                "tls_verified": verified,
                "tls_peer_cn": common_name(cert) if verified else None,
                "tls_version": "TLSv1.3",
                "cipher": (driver.quic.cipher_name(), "TLSv1.3", None),
            }
        )
        if self._closed:
            driver.close_now()
            return
        server.accepted = True
        self._stats["connections_accepted"] += 1
        driver.start_keepalive()
        stream = QuicStream(driver.stream)
        # The slot came from the endpoint's gate: it is purenng's own ConnectionSlot.
        stream.slot = server.slot  # type: ignore[assignment]
        server.slot = None  # the endpoint owns it now
        self._queue.append(stream)
        w = self._waiter
        if w is not None and not w.done():
            w.set_result(None)

    def _closing(self, driver: ConnectionDriver) -> None:
        server: _Server = driver.owner
        if server.hs_timer is not None:
            server.hs_timer.cancel()
            server.hs_timer = None
        if not server.accepted:
            if not server.failure_counted:
                server.failure_counted = True
                self._stats["handshake_failures"] += 1
                self.last_error = driver.error
            if driver.error is not None:
                log.debug("listener %s: dropped a connection: %s", self._url, driver.error)
            if server.slot is not None:
                server.slot.release()
                server.slot = None

    def _terminated(self, driver: ConnectionDriver) -> None:
        server: _Server = driver.owner
        driver.owner = None
        for cid in list(server.cids):
            self._drop_cid(server, cid)
        self._servers.discard(server)
        if self._closed and not self._servers:
            self._close_udp()

    # ------------------------------------------------------------ StreamListener

    def set_gate(self, gate: ConnectionGate | None) -> None:
        self._gate = gate

    async def accept(self) -> Stream:
        while not self._queue:
            if self._closed:
                raise Closed("listener is closed")
            self._waiter = self._loop.create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        return self._queue.popleft()

    def close(self) -> None:
        """Stop accepting; handshakes in progress and streams not yet accepted are closed."""
        if self._closed:
            return
        self._closed = True
        while self._queue:
            stream = self._queue.popleft()
            if stream.slot is not None:
                stream.slot.release()
            stream.close()
        for server in list(self._servers):
            if not server.accepted:
                server.driver.close_now()
        w = self._waiter
        if w is not None and not w.done():
            w.set_result(None)
        if not self._servers:
            self._close_udp()

    async def aclose(self) -> None:
        """Stop accepting; when no connection is left, wait until the port is free."""
        self.close()
        if not self._servers:
            await self._udp_closed

    def _close_udp(self) -> None:
        tr = self._endpoint.transport
        if tr is not None:
            tr.close()
        else:
            self._udp_lost()

    def _udp_lost(self) -> None:
        if not self._udp_closed.done():
            self._udp_closed.set_result(None)
        for server in list(self._servers):
            server.driver.fail(Closed("the listener's UDP socket closed"))

    @property
    def local_address(self) -> Any:
        return self._sockname

    @property
    def url(self) -> str:
        return self._url

    def stats(self) -> dict[str, int]:
        """The listener's counters (see the module docstring)."""
        out = dict(self._stats)
        out["connections"] = len(self._servers)
        return out


def _show(addr: Any) -> str:
    if isinstance(addr, tuple) and len(addr) >= 2:
        host = addr[0]
        return f"[{host}]:{addr[1]}" if ":" in str(host) else f"{host}:{addr[1]}"
    return str(addr)
