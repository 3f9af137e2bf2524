"""Dialing ``quic://``: a connected UDP socket of its own per connection.

The dialer's socket is *connected* to the listener's address, for two
reasons: the kernel then drops datagrams from anyone else, and an ICMP
"port unreachable" (nobody listens there) comes back as an error on the
socket, so a dial to a closed port fails at once with
:class:`~purenng.ConnectionRefused` instead of waiting out the handshake
timeout.

The dial returns once the TLS handshake is complete.  Stream 0 opens in the
client's first 1-RTT packets (a MAX_STREAM_DATA frame for it, so that the
listener may write first), and the SP adapter's header write that follows
the dial is sent with the client's Finished, in the same flight (see
:mod:`purenng_quic.driver`), so SP over QUIC costs no round trip beyond
QUIC's own.  With ``quic_0rtt`` and a
ticket from an earlier connection to the same server, the dial returns at
once and the first bytes travel as 0-RTT data.

:meth:`QuicHandle.rebind` moves a live connection to a new socket (a new
local port), which is how a test, or an application that knows its address
changed, migrates the connection.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from typing import TYPE_CHECKING, Any

from purenng.plugin import BadAddress, Closed, ConnectionRefused, Timeout

from .connection import SPQuicConnection
from .driver import ConnectionDriver
from .stream_transport import QuicStream
from .tickets import client_tickets
from .tls_setup import client_configuration, common_name, peer_certificate_dict

if TYPE_CHECKING:
    from purenng.plugin import URL, HostPort, TLSConfig

__all__ = ["dial"]


class _ClientEndpoint(asyncio.DatagramProtocol):
    """One connected UDP socket of a dialer."""

    def __init__(self) -> None:
        self.driver: ConnectionDriver | None = None
        self.transport: asyncio.DatagramTransport | None = None
        self.peer: Any = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: Any) -> None:
        d = self.driver
        if d is not None:
            # The socket is connected: whatever arrives is from the peer (some
            # loops report no address for a connected socket).
            d.datagram_received(data, self.peer)

    def error_received(self, exc: Exception) -> None:
        d = self.driver
        if d is None:
            return
        if isinstance(exc, ConnectionRefusedError):
            err: BaseException = ConnectionRefused(
                f"{d.where}: connection refused (nobody listens)"
            )
        else:
            err = ConnectionRefused(f"{d.where}: {exc}")
        err.__cause__ = exc
        d.fail(err)

    def send(self, data: bytes, addr: Any) -> None:
        tr = self.transport
        if tr is not None and not tr.is_closing():
            tr.sendto(data)

    def close(self) -> None:
        self.driver = None
        tr = self.transport
        if tr is not None:
            tr.close()


async def _open_socket(
    loop: asyncio.AbstractEventLoop, family: int, addr: Any
) -> tuple[_ClientEndpoint, Any]:
    endpoint = _ClientEndpoint()
    endpoint.peer = addr
    sock = socket.socket(family, socket.SOCK_DGRAM)
    try:
        for opt in (socket.SO_RCVBUF, socket.SO_SNDBUF):
            try:
                sock.setsockopt(socket.SOL_SOCKET, opt, 4 << 20)
            except OSError:
                pass
        sock.setblocking(False)
        sock.connect(addr)
        local = sock.getsockname()
        await loop.create_datagram_endpoint(lambda: endpoint, sock=sock)
    except BaseException:
        sock.close()
        raise
    return endpoint, local


async def dial(
    url: URL, hp: HostPort, family: int, tls: TLSConfig, options: dict[str, Any]
) -> QuicStream:
    """Connect to ``hp`` and return the stream once the handshake is complete.

    Raises:
        BadAddress: the host does not resolve.
        ConnectionRefused: nobody listens, or the listener is full.
        TLSError: the TLS handshake failed (the message says why).
        Timeout: no handshake within ``quic_handshake_timeout``.
    """
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(hp.host, hp.port, family=family, type=socket.SOCK_DGRAM)
    except socket.gaierror as exc:
        raise BadAddress(f"{url.raw!r}: cannot resolve {hp.host!r}: {exc.strerror}") from exc
    # Each address in turn (localhost may be ::1 first while the listener is
    # on 127.0.0.1): a refusal (ICMP) moves on at once, anything else is final.
    addresses: list[tuple[int, Any]] = []
    for info in infos:
        if (info[0], info[4]) not in addresses:
            addresses.append((info[0], info[4]))
    refused: ConnectionRefused | None = None
    for af, addr in addresses:
        try:
            return await _dial_address(url, hp, af, addr, tls, options)
        except ConnectionRefused as exc:
            refused = exc
    assert refused is not None  # getaddrinfo returns at least one address
    raise refused


async def _dial_address(
    url: URL, hp: HostPort, af: int, addr: Any, tls: TLSConfig, options: dict[str, Any]
) -> QuicStream:
    loop = asyncio.get_running_loop()
    server_name = tls.server_hostname(hp.host)
    configuration = client_configuration(
        tls,
        server_name,
        alpn=options["quic_alpn"],
        idle_timeout=float(options["quic_idle_timeout"]),
        max_datagram_size=int(options["quic_max_datagram_size"]),
        window=int(options["quic_stream_window"]),
    )
    early = bool(options["quic_0rtt"])
    kwargs: dict[str, Any] = {}
    if early:
        key = (server_name, tuple(addr[:2]), options["quic_alpn"], id(tls))
        configuration.session_ticket = client_tickets.take(key)
        kwargs["session_ticket_handler"] = client_tickets.handler(key)
    quic = SPQuicConnection(
        configuration=configuration, window=int(options["quic_stream_window"]), **kwargs
    )
    endpoint, local = await _open_socket(loop, af, addr)
    driver = ConnectionDriver(
        quic,
        loop,
        endpoint.send,
        where=url.raw,
        keepalive=options["quic_keepalive"] or None,
        extras={"sockname": local, "peername": addr},
    )
    endpoint.driver = driver
    state = {"endpoint": endpoint}
    done: asyncio.Future[None] = loop.create_future()

    def handshake(d: ConnectionDriver) -> None:
        cert, _ = d.quic.peer_certificate()
        verified = cert is not None and configuration.verify_mode != ssl.CERT_NONE
        d.extras.update(
            {
                "peercert": peer_certificate_dict(cert) if verified else {},
                "tls_verified": verified,
                "tls_peer_cn": common_name(cert) if cert is not None else None,
                "tls_version": "TLSv1.3",
                "cipher": (d.quic.cipher_name(), "TLSv1.3", None),
            }
        )
        if not done.done():
            done.set_result(None)

    def closing(d: ConnectionDriver) -> None:
        if not done.done():
            done.set_exception(d.error or ConnectionRefused(f"{url.raw}: connection closed"))

    def terminated(d: ConnectionDriver) -> None:
        state["endpoint"].close()

    async def rebind() -> Any:
        old = state["endpoint"]
        if driver.closing:
            raise Closed("the connection is closed")
        new, new_local = await _open_socket(loop, af, addr)
        if driver.closing:
            new.close()
            raise Closed("the connection is closed")
        new.driver = driver
        driver.send_datagram = new.send
        driver.extras["sockname"] = new_local
        state["endpoint"] = new
        old.close()
        driver.quic.change_connection_id()
        driver.handle.ping()
        return new_local

    driver.on_handshake = handshake
    driver.on_closing = closing
    driver.on_terminated = terminated
    driver.handle._rebind = rebind
    driver.connect(addr)
    if early and configuration.session_ticket is not None:
        done.add_done_callback(_consume)
        return QuicStream(driver.stream)
    timeout = float(options["quic_handshake_timeout"])
    deadline = asyncio.timeout(timeout)
    try:
        async with deadline:
            await done
    except TimeoutError:
        if not deadline.expired():
            raise  # a purenng.Timeout from the peer (it is a TimeoutError too)
        driver.close_now()
        raise Timeout(
            f"{url.raw}: QUIC handshake not completed in {timeout:g} s "
            "(nothing answers there, or it does not speak QUIC)"
        ) from None
    except asyncio.CancelledError:
        driver.close_now()
        raise
    return QuicStream(driver.stream)


def _consume(fut: asyncio.Future[None]) -> None:
    """Retrieve a 0-RTT dial's handshake outcome (the pipe reports failures itself)."""
    if not fut.cancelled():
        fut.exception()
