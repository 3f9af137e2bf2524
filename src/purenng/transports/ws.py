"""The WebSocket transports: ``ws://``, ``ws4://``, ``ws6://``, ``wss://``, ``wss4://``, ``wss6://``.

SP over WebSocket as NNG, nanomsg and mangos speak it
(``reference/wire-protocols.md`` §2.4, §3.2, §4 items 5 to 9 and 24).

URL forms: ``ws://host[:port][/path][?query]``.  The port defaults to 80
(``ws``) or 443 (``wss``), the path to ``/``.  IPv6 hosts go in brackets.
Listeners accept a wildcard host (empty, ``*``, ``0.0.0.0``, ``[::]``) and
port 0 (the bound port is in ``listener.url`` and ``listener.port``).
``ws4``/``wss4`` and ``ws6``/``wss6`` restrict the address family.  A
dialer sends the path and query as its request target; a listener serves
exactly its path (the query is ignored).

Options (dialer, listener or socket):

* ``ws_recv_frame_max``: largest frame accepted, bytes (1 MiB, NNG's
  ``ws:rxframe-max``); 0: no limit.  Over it: close 1009.
* ``ws_send_frame_max``: larger messages go out in frames of this many
  bytes (64 KiB, NNG's ``ws:txframe-max``); 0: one frame per message.
* ``recv_max_size`` (the socket option) limits the reassembled message;
  over it: close 1009, counted as ``oversize``.
* ``ws_request_headers`` / ``ws_response_headers``: extra headers (a dict of
  str) for the dialer's upgrade request / the listener's 101 answer.
* ``ws_ping_interval``: seconds between pings a pipe sends (None: never).
  A pipe whose previous ping is still unanswered when the next is due
  closes with :class:`~purenng.core.errors.Timeout`.
* ``ws_handshake_timeout``: seconds for the connection, TLS and the HTTP
  upgrade together (10).  The dialer reads an upgrade answer of at most
  16 KiB (a longer head fails with ``ProtocolError``).
* ``tls_config`` (wss only): a :class:`purenng.TLSConfig`.  A listener
  needs one with a certificate; a dialer without one checks the server
  against the system trust store.
* ``ws_protocol`` (byte streams only): the subprotocol a stream dialer
  asks for and a stream listener requires; None (default): none.

Rules:

* The dialer asks for the **listener's** protocol as subprotocol
  (``rep.sp.nanomsg.org`` from a REQ socket), the listener answers with its
  own; a mismatch gets HTTP 400.  No SP header is exchanged: the peer
  protocol follows from the subprotocol.
* One SP message is one binary WebSocket message.  Text frames close the
  pipe with 1003, bad framing with 1002, oversize with 1009.  Pings are
  answered.  Closing a pipe sends a close frame (1000) before the TCP close;
  a close frame from the peer is echoed, then the connection ends.
* **Bounded against the peer**: a message being reassembled by
  ``recv_max_size``, a frame by ``ws_recv_frame_max``, and the pongs owed
  by **one**: a newer ping replaces an unanswered one (RFC 6455 §5.5.3),
  and while the write buffer is full (``pause_writing``) the pong waits in
  the codec rather than in that buffer.  Reading goes on while writes are
  blocked: what else fills the buffer is our own messages, which the
  protocols stop sending to a pipe that is not writable, and stopping
  reads as well deadlocks two peers sending large messages to each other.
  The listener's HTTP side has the shared service's limits
  (:class:`purenng.http.service.Limits`).
* A pipe's addresses and peer certificate are taken when it starts and stay
  readable after it closes; :meth:`WSPipe.extra` never raises.  The
  connection is closed once (a second ``close()`` breaks an asyncio TLS
  transport).  :meth:`WSPipe.pending_bytes` counts what has not reached
  the kernel yet.
* **Port sharing**: every listener joins the process' HTTP service for its
  ``host:port`` (:mod:`purenng.http`), so several sockets can listen on one
  port with different paths, next to static files and REST handlers of a
  :class:`purenng.http.Server`, in either order.  A request for a path
  nobody listens on gets 404 (the dialer raises ``ConnectionRefused``).

**Byte streams** (``purenng.stream.dial``/``listen`` over ws/wss, through
:meth:`WSTransport.dial_stream` and :meth:`WSTransport.listen_stream`): a
plain WebSocket connection, no SP subprotocol, no SP header.  Each write is
one binary message (fragmented by ``ws_send_frame_max``); reads return the
payloads of received binary frames in order as they arrive, so message
boundaries carry no meaning.  The subprotocol is the application's
(``ws_protocol``): a stream listener without one accepts any upgrade and
answers none (a browser or ``websockets`` client offering none connects).
Stream paths share ports with SP paths like any other.  ``ws_ping_interval``
is for SP pipes; a stream refuses it.

Dependencies: the ``ws`` extra (``pip install 'purenng[ws]'``): websockets'
sans-I/O framing and h11; why these is explained in
:mod:`purenng.transports._ws_codec`.  They are imported on the first dial or
listen, not when the plugin loads, so a missing extra breaks ws only, with
an error that says what to install.

Theory of operation: a dialer connects (TLS first for wss), writes the
upgrade request and reads the answer with a small handshake protocol, then
hands the transport to a :class:`WSPipe`.  A listener registers its path on
the shared service, which runs the upgrade and calls :meth:`_WSListener.on_upgrade`
with the transport.  A :class:`WSPipe` is the transport's
``asyncio.Protocol``: received bytes go through the pure codec and
complete messages straight to the socket; small frames written in one loop
turn go out in one write.  Mirrors NNG's ``src/sp/transport/ws/websocket.c``.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import socket
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from ..plugin import (
    TLS_CONFIG_OPTION,
    BadAddress,
    BadOption,
    Closed,
    ConnectionRefused,
    ConnectionReset,
    NotSupported,
    OptionSpec,
    Pipe,
    PipeListener,
    PipeTransport,
    Stream,
    StreamListener,
    Timeout,
    TLSConfig,
    TLSError,
    duration,
    hookimpl,
    integer,
    parse_host_port,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from ..http.service import Service
    from ..http.upgrade import ClientHandshake
    from ..plugin import URL, BytesLike, ProtocolInfo, Registry
    from ._ws_codec import WSCodec

__all__ = ["WSURL", "WSPipe", "WSStream", "WSTransport", "parse_ws_url"]

#: The purenng plugin API this module is written for (purenng.plugin.API_VERSION).
PURENNG_PLUGIN_API: str = "1.0"

log: logging.Logger = logging.getLogger("purenng")

#: Seconds for the connection and upgrade unless ``ws_handshake_timeout`` says otherwise.
HANDSHAKE_TIMEOUT = 10.0
#: Frames of at least this size are written on their own, not coalesced.
BIG_WRITE = 64 * 1024
#: asyncio write buffer limits per pipe.
WRITE_HIGH = 1 << 20
WRITE_LOW = 256 * 1024
#: A byte stream stops reading while this many bytes wait unread, and reads
#: again below :data:`READ_LOW`.
READ_HIGH = 1 << 20
READ_LOW = 256 * 1024

_FAMILY = {
    "ws": socket.AF_UNSPEC,
    "ws4": socket.AF_INET,
    "ws6": socket.AF_INET6,
    "wss": socket.AF_UNSPEC,
    "wss4": socket.AF_INET,
    "wss6": socket.AF_INET6,
}


def _require_extra() -> None:
    """Import the ``ws`` extra's libraries, or say what to install."""
    missing = []
    for name in ("h11", "websockets"):
        try:
            __import__(name)
        except ImportError:
            missing.append(name)
    if missing:
        raise NotSupported(
            f"ws:// and wss:// need {' and '.join(missing)}: pip install 'purenng[ws]'"
        )


def _headers_value(value: Any) -> dict[str, str] | None:
    """Option check: a dict of header names to values, both str, or None."""
    if value is None:
        return None
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise TypeError("expected a dict of str header names to str values, or None")
    for k, v in value.items():
        if not k or any(c in k for c in ":\r\n ") or any(c in v for c in "\r\n"):
            raise ValueError(f"bad header {k!r}: {v!r}")
    return dict(value)


_TOKEN_CHARS = frozenset(
    "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
)


def _subprotocol_value(value: Any) -> str | None:
    """Option check: one HTTP token (RFC 9110 §5.6.2), or None."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise TypeError("expected a str (one subprotocol name) or None")
    if not value or not set(value) <= _TOKEN_CHARS:
        raise ValueError(f"{value!r} is not a valid subprotocol name (an HTTP token)")
    return value


# ---------------------------------------------------------------- URLs


@dataclass(frozen=True, slots=True)
class WSURL:
    """A parsed ws/wss URL.

    Attributes:
        host: The host as written, without IPv6 brackets ("" for the wildcard).
        port: The port (default 80 or 443).
        path: The path, ``/`` when none is given.
        target: Path and query: the request target a dialer sends.
        tls: True for wss.
        family: The address family the scheme asks for.
        wildcard: The host means every interface.
    """

    host: str
    port: int
    path: str
    target: str
    tls: bool
    family: int
    wildcard: bool

    @property
    def host_header(self) -> str:
        """The ``Host`` header value (``host:port``, IPv6 in brackets)."""
        return f"{_format_host(self.host)}:{self.port}"


def _format_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def parse_ws_url(url: URL) -> WSURL:
    """Split a ws/wss URL (see the module header for the forms).

    Raises:
        BadAddress: the URL is malformed, with the reason.
    """
    rest = url.rest.split("#", 1)[0]
    if any(c in rest for c in " \r\n\t"):
        raise BadAddress(f"{url.raw!r}: white space in a URL; percent-encode it")
    cut = len(rest)
    for sep in ("/", "?"):
        i = rest.find(sep)
        if i >= 0:
            cut = min(cut, i)
    authority, target = rest[:cut], rest[cut:]
    if target.startswith("?") or not target:
        target = "/" + target
    tls = url.scheme.startswith("wss")
    hp = parse_host_port(url.with_rest(authority), default_port=443 if tls else 80)
    family = _FAMILY.get(url.scheme, socket.AF_UNSPEC)
    if family == socket.AF_INET and ":" in hp.host:
        raise BadAddress(f"{url.raw!r}: {url.scheme} needs an IPv4 address")
    if family == socket.AF_INET6 and hp.host.replace(".", "").isdigit() and "." in hp.host:
        raise BadAddress(f"{url.raw!r}: {url.scheme} needs an IPv6 address")
    path = target.split("?", 1)[0]
    return WSURL(hp.host, hp.port, path, target, tls, family, hp.wildcard)


# ---------------------------------------------------------------- the pipe


class WSPipe(Pipe, asyncio.Protocol):
    """A pipe that carries SP messages as WebSocket messages over one connection.

    Made by :class:`WSTransport` (never by hand).  It is the asyncio protocol
    of its connection from :meth:`start` on.

    Attributes:
        error: Why the pipe closed, if not normally (``MessageTooLarge``,
            ``ProtocolError``, ``Timeout``, ``ConnectionResetError``...).
        close_code: The close code the peer sent, if it sent a close frame.
    """

    #: As in :class:`Pipe`; set by the protocol callbacks below.
    error: BaseException | None

    def __init__(
        self,
        peer_id: int,
        scheme: str,
        codec: WSCodec,
        loop: asyncio.AbstractEventLoop,
        *,
        ping_interval: float | None = None,
    ) -> None:
        Pipe.__init__(self, peer_id, scheme)
        self._codec = codec
        self._loop = loop
        self._tr: Any = None
        # Closed once only: a second close() of an asyncio TLS transport
        # drops its protocol, after which get_extra_info() and write() raise.
        self._tr_closed = False
        # Addresses and certificate, kept: a closed TLS transport no longer
        # answers get_extra_info (and Socket.pipe_closed logs the address).
        self._info: dict[str, Any] = {}
        # The transport's write buffer is over its high-water mark.
        self._write_paused = False
        # Bytes read past the handshake, fed once the socket has admitted us.
        self._trailing = b""
        self._begun = False
        self._paused = False
        self._flush_handle: asyncio.Handle | None = None
        self._begin_handle: asyncio.Handle | None = None
        self._ping_interval = ping_interval
        self._ping_timer: asyncio.TimerHandle | None = None
        self._ping_outstanding = False
        self._ping_seq = 0
        self._ping_waiters: list[tuple[bytes, asyncio.Future[None]]] = []

    @property
    def close_code(self) -> int | None:
        """The close code the peer sent, or None."""
        return self._codec.close_code

    # ------------------------------------------------------------ start

    def start(self, transport: asyncio.BaseTransport, trailing: bytes = b"") -> None:
        """Become ``transport``'s protocol (its reading paused until :meth:`attach`).

        Args:
            transport: The connection, reading paused by the handshake.
            trailing: Bytes read past the handshake (the first frames).
        """
        tr: Any = transport
        self._tr = tr
        self._trailing = trailing
        self._info = _connection_info(tr)
        _adopt(tr, self)
        if tr.is_closing():
            self._tr_closed = True
            self._closed_now()

    def attach(self, deliver: Callable[[Pipe, bytes | bytearray], None]) -> None:
        """Route received messages to ``deliver`` (the socket calls this).

        Reading starts from a callback, once the socket has finished admitting
        the pipe, with the bytes that came with the handshake first.
        """
        self._deliver = deliver
        if not self.closed and self._begin_handle is None:
            self._begin_handle = self._loop.call_soon(self._begin)

    def _begin(self) -> None:
        self._begin_handle = None
        if self.closed:
            return
        self._begun = True
        trailing, self._trailing = self._trailing, b""
        if trailing:
            self.data_received(trailing)
        if self.closed:
            return
        if not self._paused:
            self._tr.resume_reading()
        if self._ping_interval:
            self._ping_timer = self._loop.call_later(self._ping_interval, self._ping_due)

    # ------------------------------------------------------------ receiving

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        pass  # adopted in start()

    def data_received(self, data: bytes) -> None:
        if self.closed:
            return
        self.rx_bytes += len(data)  # recv_idle_timeout: a large message in progress counts
        codec = self._codec
        msgs = codec.receive(data)
        deliver = self._deliver
        if msgs and deliver is not None:
            # Like the SP stream adapter: every message of a read is delivered
            # (a pause stops further reads), so nothing waits here.
            for msg in msgs:
                if self.closed:
                    return  # closed by the protocol mid-read: the rest is void
                self.msgs_in += 1
                self.bytes_in += len(msg)
                deliver(self, msg)
        if codec.pongs:
            self._got_pongs()
        if codec.closing:
            if codec.error is not None:
                self._fail(codec.error)
            else:
                self._finish()  # the peer's close frame: echo it, then end
        elif self._flush_handle is None:
            self._flush()  # a pong goes out at once (unless writes are blocked)

    def eof_received(self) -> bool:
        self._codec.receive_eof()
        return False  # the transport closes; connection_lost follows

    def connection_lost(self, exc: Exception | None) -> None:
        if exc is not None and self.error is None:
            self.error = exc
        self._tr_closed = True
        self._closed_now()

    # ------------------------------------------------------------ Pipe

    def write(self, header: BytesLike, body: BytesLike) -> None:
        """Queue one message: the first of a loop turn goes out at once, the
        ones after it in the same turn together in one write at its end."""
        if self.closed:
            return
        n = len(header) + len(body)
        self.msgs_out += 1
        self.bytes_out += n
        self._codec.send_message(header, body)
        if n >= BIG_WRITE:
            self._flush()
        elif self._flush_handle is None:
            self._flush()
            self._flush_handle = self._loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_handle = None
        tr = self._tr
        if tr is None or self._tr_closed:
            return
        # While the write buffer is full a pong waits in the codec, where a
        # newer ping replaces it, instead of piling up behind the data.
        chunks = self._codec.data_to_send(pong=not self._write_paused)
        if not chunks:
            return
        buf = bytearray()
        eof = False
        for chunk in chunks:
            if not chunk:
                eof = True  # the codec's end-of-stream mark
            elif len(chunk) >= BIG_WRITE:
                if buf:
                    tr.write(buf)
                    buf = bytearray()
                tr.write(chunk)
            else:
                buf += chunk
        if buf:
            tr.write(buf)
        if eof:
            self._close_transport()

    def _close_transport(self) -> None:
        """Close the connection after what is written, once."""
        if not self._tr_closed:
            self._tr_closed = True
            if self._tr is not None:
                self._tr.close()

    def pause_writing(self) -> None:
        """The write buffer is full: no more messages, and pongs wait (coalesced).

        Reading goes on: a pipe that stopped reading whenever its writes are
        blocked deadlocks with a peer doing the same (both send large
        messages at once, neither reads, neither buffer drains).  What the
        peer can make us write unasked is bounded instead: one pong.
        """
        self._write_paused = True
        Pipe.pause_writing(self)

    def resume_writing(self) -> None:
        """The buffer drained: the waiting pong goes out, the owner may send."""
        self._write_paused = False
        if self._codec.pong_pending and self._flush_handle is None and not self.closed:
            self._flush()
        Pipe.resume_writing(self)

    def pending_bytes(self) -> int:
        """Bytes queued for the peer that have not reached the kernel yet.

        The transport's write buffer (for wss: plaintext waiting for TLS plus
        the TLS records not yet written) and the frames held in the codec
        for the end of the loop turn; 0 once the pipe is closed.
        """
        if self.closed:
            return 0
        n = self._codec.pending_bytes()
        tr = self._tr
        if tr is not None and not self._tr_closed:
            try:
                n += int(tr.get_write_buffer_size())
            except (AttributeError, RuntimeError):
                pass  # a transport that no longer knows
        return n

    def pause_reading(self) -> None:
        """Stop reading from the connection (the current read is delivered whole)."""
        if self.closed or self._paused:
            return
        self._paused = True
        if self._begun:
            self._tr.pause_reading()

    def resume_reading(self) -> None:
        """Read from the connection again."""
        if self.closed or not self._paused:
            return
        self._paused = False
        if self._begun:
            self._tr.resume_reading()

    def close(self) -> None:
        """Send a close frame (1000) and close the connection; idempotent."""
        if self.closed:
            return
        self._codec.close()
        self._finish()

    def _finish(self) -> None:
        """Write what is queued (close frames included) and end the connection."""
        if self._flush_handle is not None:
            self._flush_handle.cancel()
        self._flush()
        self._close_transport()
        self._closed_now()

    def _fail(self, exc: BaseException) -> None:
        if self.error is None:
            self.error = exc
        self._finish()

    def _closed_now(self) -> None:
        if self.closed:
            return
        self.closed = True
        self.writable = False
        self._trailing = b""
        for handle in (self._flush_handle, self._begin_handle, self._ping_timer):
            if handle is not None:
                handle.cancel()
        self._flush_handle = self._begin_handle = self._ping_timer = None
        waiters, self._ping_waiters = self._ping_waiters, []
        for _, fut in waiters:
            if not fut.done():
                fut.set_exception(ConnectionReset("the pipe closed before the pong"))
        self._notify_closed()

    # ------------------------------------------------------------ pings

    async def aping(self, payload: bytes = b"", timeout: float | None = 10.0) -> float:
        """Send a ping and wait for its pong (on the pipe's loop).

        Returns:
            The round-trip time in seconds.

        Raises:
            Timeout: no pong within ``timeout`` seconds.
            ConnectionReset: the pipe closed meanwhile.
        """
        if self.closed:
            raise ConnectionReset("the pipe is closed")
        if len(payload) > 125:
            raise ValueError("a ping payload has at most 125 bytes")
        fut: asyncio.Future[None] = self._loop.create_future()
        entry = (bytes(payload), fut)
        self._ping_waiters.append(entry)
        started = self._loop.time()
        self._codec.ping(payload)
        self._flush()
        try:
            async with asyncio.timeout(timeout):
                await fut
        except TimeoutError:
            raise Timeout(f"no pong within {timeout:g} s") from None
        finally:
            if entry in self._ping_waiters:
                self._ping_waiters.remove(entry)
        return self._loop.time() - started

    def _got_pongs(self) -> None:
        pongs = self._codec.pongs
        self._ping_outstanding = False
        for payload in pongs:
            for entry in list(self._ping_waiters):
                if entry[0] == payload and not entry[1].done():
                    entry[1].set_result(None)
                    self._ping_waiters.remove(entry)
                    break
        pongs.clear()

    def _ping_due(self) -> None:
        self._ping_timer = None
        if self.closed:
            return
        if self._ping_outstanding:
            self._fail(Timeout(f"no pong within ws_ping_interval ({self._ping_interval:g} s)"))
            return
        self._ping_outstanding = True
        self._ping_seq += 1
        self._codec.ping(b"purenng %d" % self._ping_seq)
        self._flush()
        assert self._ping_interval is not None
        self._ping_timer = self._loop.call_later(self._ping_interval, self._ping_due)

    # ------------------------------------------------------------ info

    def extra(self, name: str, default: Any = None) -> Any:
        """Connection information (``peername``, ``sockname``, ``peercert``...).

        The addresses and the certificate stay readable after the pipe closed
        (taken when it started); other names give ``default`` once closed.
        Never raises.
        """
        if name in self._info:
            value = self._info[name]
            return default if value is None else value
        tr = self._tr
        if tr is None or self._tr_closed:
            return default
        return _extra_info(tr, name, default)

    @property
    def local_address(self) -> Any:
        return self.extra("sockname")

    @property
    def remote_address(self) -> Any:
        return self.extra("peername")

    @property
    def peer_certificate(self) -> dict[str, Any] | None:
        """wss: the peer's verified certificate (``getpeercert()`` form), else None."""
        cert: dict[str, Any] | None = self.extra("peercert") or None
        return cert


# ---------------------------------------------------------------- dialing


class _HandshakeProtocol(asyncio.Protocol):
    """Writes the upgrade request and reads the answer, then steps aside."""

    def __init__(self, hs: ClientHandshake, done: asyncio.Future[None]) -> None:
        self.hs = hs
        self.done = done
        self.extra = b""
        self.tr: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.tr = transport  # type: ignore[assignment]
        transport.write(self.hs.request_bytes())  # type: ignore[attr-defined]

    def data_received(self, data: bytes) -> None:
        if self.done.done():
            self.extra += data  # frames that came before the pipe took over
            return
        if self.hs.feed(data):
            if self.tr is not None:
                self.tr.pause_reading()
            self.done.set_result(None)

    def eof_received(self) -> bool:
        self.hs.eof()
        if not self.done.done():
            self.done.set_result(None)
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.done.done():
            self.hs.eof()
            self.done.set_result(None)


def _make_codec(options: Mapping[str, Any], *, client: bool, stream: bool = False) -> WSCodec:
    """A codec with the options' limits; a byte stream's has no message limit."""
    from ._ws_codec import WSCodec

    return WSCodec(
        client=client,
        recv_max_size=0 if stream else int(options.get("recv_max_size", 0) or 0),
        recv_frame_max=int(options.get("ws_recv_frame_max", 1 << 20) or 0),
        send_frame_max=int(options.get("ws_send_frame_max", 64 * 1024) or 0),
        fragments=stream,
    )


def _tls_config(options: Mapping[str, Any]) -> TLSConfig:
    cfg = options.get("tls_config")
    return cfg if isinstance(cfg, TLSConfig) else TLSConfig()


async def _connect(
    url: URL, options: Mapping[str, Any], want_subprotocol: str | None
) -> tuple[asyncio.Transport, bytes]:
    """Connect (TLS first for wss) and run the upgrade; reading is left paused.

    Returns:
        The transport and the bytes received after the 101 (the first frames).
    """
    from ..http.upgrade import ClientHandshake

    u = parse_ws_url(url)
    loop = asyncio.get_running_loop()
    timeout = float(options.get("ws_handshake_timeout") or HANDSHAKE_TIMEOUT)
    # One deadline for connecting, TLS and the upgrade together: a server
    # that drips its answer cannot stretch the sum.
    deadline = loop.time() + timeout
    hs = ClientHandshake(
        u.host_header,
        u.target,
        want_subprotocol,
        options.get("ws_request_headers"),
    )
    done: asyncio.Future[None] = loop.create_future()
    kwargs: dict[str, Any] = {"family": u.family}
    if u.tls:
        cfg = _tls_config(options)
        hostname = cfg.server_hostname(u.host)
        kwargs.update(
            ssl=cfg.client_context(hostname),
            server_hostname=hostname,
            ssl_handshake_timeout=timeout,
        )
    try:
        async with asyncio.timeout_at(deadline):
            tr, pr = await loop.create_connection(
                lambda: _HandshakeProtocol(hs, done), u.host, u.port, **kwargs
            )
    except TimeoutError:
        raise Timeout(f"{url.raw}: no connection within {timeout:g} s") from None
    except socket.gaierror as exc:
        raise BadAddress(f"{url.raw!r}: cannot resolve {u.host!r}: {exc.strerror}") from exc
    except OSError as exc:
        if u.tls:
            from .tls_tcp import tls_error

            err = tls_error(exc, url.raw)
            if err is not exc:
                raise err from exc
        if exc.errno == errno.ECONNREFUSED or f"[Errno {errno.ECONNREFUSED}]" in str(exc):
            raise ConnectionRefused(f"{url.raw}: connection refused") from exc
        raise
    try:
        async with asyncio.timeout_at(deadline):
            await done
    except TimeoutError:
        tr.abort()
        raise Timeout(f"{url.raw}: no WebSocket upgrade answer within {timeout:g} s") from None
    except BaseException:
        tr.abort()
        raise
    if hs.error is not None:
        tr.abort()
        err = hs.error
        if u.tls and isinstance(err, ConnectionReset) and hs.status is None:
            # TLS 1.3: a server that refuses our certificate does so after
            # the handshake, by closing before it answers the upgrade.
            raise TLSError(
                f"{url.raw}: the server closed the connection right after the TLS "
                "handshake, before answering (did it reject our client certificate?)",
                reason="connection closed right after the TLS handshake",
            ) from err
        raise type(err)(f"{url.raw}: {err}") from err
    return tr, hs.trailing + pr.extra


class WSTransport(PipeTransport):
    """SP over WebSocket, plain (ws) and over TLS (wss)."""

    schemes: ClassVar[tuple[str, ...]] = ("ws", "ws4", "ws6", "wss", "wss4", "wss6")
    option_prefix = "ws"
    option_specs: ClassVar[Mapping[str, OptionSpec]] = {
        "ws_recv_frame_max": OptionSpec(
            "ws_recv_frame_max",
            integer(0),
            1 << 20,
            "largest WebSocket frame accepted, bytes; 0: no limit (NNG ws:rxframe-max)",
        ),
        "ws_send_frame_max": OptionSpec(
            "ws_send_frame_max",
            integer(0),
            64 * 1024,
            "messages are sent in frames of at most this many bytes; 0: one frame "
            "(NNG ws:txframe-max)",
        ),
        "ws_request_headers": OptionSpec(
            "ws_request_headers", _headers_value, None, "extra headers of a dialer's request"
        ),
        "ws_response_headers": OptionSpec(
            "ws_response_headers", _headers_value, None, "extra headers of a listener's 101"
        ),
        "ws_ping_interval": OptionSpec(
            "ws_ping_interval",
            duration(minimum=0.001),
            None,
            "seconds between keep-alive pings; None: no pings",
        ),
        "ws_handshake_timeout": OptionSpec(
            "ws_handshake_timeout",
            duration(allow_none=False, minimum=0.001),
            HANDSHAKE_TIMEOUT,
            "seconds for connecting and the HTTP upgrade",
        ),
        "ws_protocol": OptionSpec(
            "ws_protocol",
            _subprotocol_value,
            None,
            "byte streams only: the WebSocket subprotocol to ask for (dialer) or "
            "require (listener); None: none.  SP sockets ignore it",
        ),
        "tls_config": TLS_CONFIG_OPTION,
    }

    def check_url(self, url: URL) -> None:
        parse_ws_url(url)

    def check_dial_url(self, url: URL) -> None:
        u = parse_ws_url(url)
        if u.wildcard:
            raise BadAddress(f"{url.raw!r}: cannot dial a wildcard address")
        if u.port == 0:
            raise BadAddress(f"{url.raw!r}: cannot dial port 0")

    async def dial(self, url: URL, options: Mapping[str, Any], proto: ProtocolInfo) -> Pipe:
        """Connect, upgrade to WebSocket asking for the peer's protocol, return the pipe.

        Raises:
            ConnectionRefused: nobody listens, or the server answered 401,
                403, 404, 405 or 501 (nobody serves SP at that path).
            ProtocolError: another refusal (400: wrong subprotocol...) or a
                bad answer; ``TLSError`` for TLS failures (wss).
            Timeout: the connection or upgrade took too long.
        """
        _require_extra()
        from ._ws_codec import subprotocol

        self.check_dial_url(url)
        tr, trailing = await _connect(url, options, subprotocol(proto.peer_name))
        pipe = WSPipe(
            proto.peer_id,
            url.scheme,
            _make_codec(options, client=True),
            asyncio.get_running_loop(),
            ping_interval=options.get("ws_ping_interval"),
        )
        pipe.start(tr, trailing)
        if pipe.closed:
            raise pipe.error or ConnectionReset(f"{url.raw}: closed right after the upgrade")
        return pipe

    async def listen(
        self,
        url: URL,
        options: Mapping[str, Any],
        proto: ProtocolInfo,
        on_pipe: Callable[[Pipe], None],
    ) -> PipeListener:
        """Serve SP at the URL's path on the shared HTTP service of its host and port.

        Raises:
            AddressInUse: the port is taken by something else, served on
                another loop or with other TLS settings, or the path is taken.
            BadAddress: the URL cannot be used.
            BadOption: wss without a ``tls_config`` that has a certificate.
        """
        _require_extra()
        from ._ws_codec import subprotocol

        svc, u = await self._acquire(url, options)
        lst = _WSListener(svc, u, url, options, proto, on_pipe, subprotocol(proto.self_name))
        try:
            svc.add_ws_route(u.path, lst, url.raw)
        except BaseException:
            svc.release()
            raise
        return lst

    async def dial_stream(self, url: URL, options: Mapping[str, Any]) -> Stream:
        """Connect and upgrade to a plain WebSocket for ``purenng.stream.dial``.

        No SP subprotocol: ``ws_protocol`` is asked for if set (and must be
        answered), else none is offered and none may be answered.

        Raises:
            ConnectionRefused: nobody listens, or the server answered 401,
                403, 404, 405 or 501.
            ProtocolError: another refusal or a bad answer; ``TLSError``
                for TLS failures (wss).
            Timeout: the connection or upgrade took too long.
        """
        _require_extra()
        self.check_dial_url(url)
        _check_stream_options(url, options)
        want = options.get("ws_protocol")
        tr, trailing = await _connect(url, options, want)
        stream = WSStream(_make_codec(options, client=True, stream=True), want)
        stream.start(tr, trailing)
        return stream

    async def listen_stream(self, url: URL, options: Mapping[str, Any]) -> StreamListener:
        """Serve byte streams at the URL's path on the shared HTTP service.

        The path shares its port with SP paths, REST handlers and static
        files exactly as an SP listener does.  With ``ws_protocol`` set a
        client must offer it; without, any upgrade is accepted and no
        subprotocol is answered.

        Raises:
            AddressInUse: the port is taken by something else, served on
                another loop or with other TLS settings, or the path is taken.
            BadAddress: the URL cannot be used.
            BadOption: wss without a ``tls_config`` that has a certificate.
        """
        _require_extra()
        _check_stream_options(url, options)
        svc, u = await self._acquire(url, options)
        lst = _WSStreamListener(svc, u, url, options)
        try:
            svc.add_ws_route(u.path, lst, url.raw)
        except BaseException:
            svc.release()
            raise
        return lst

    async def _acquire(self, url: URL, options: Mapping[str, Any]) -> tuple[Service, WSURL]:
        """Join (or start) the shared HTTP service for the URL's host and port."""
        from ..http.service import acquire, bind_host

        u = parse_ws_url(url)
        ssl_context = None
        if u.tls:
            cfg = options.get("tls_config")
            if not isinstance(cfg, TLSConfig) or not cfg.has_certificate:
                raise BadOption(f"{url.raw}: a wss listener needs tls_config with a certificate")
            ssl_context = cfg.server_context()
        svc = await acquire(
            bind_host(u.host, u.family),
            u.port,
            family=u.family,
            ssl_context=ssl_context,
            where=url.raw,
        )
        return svc, u


class _WSListener(PipeListener):
    """An SP path on a shared HTTP service; makes a pipe per accepted upgrade."""

    def __init__(
        self,
        svc: Service,
        u: WSURL,
        url: URL,
        options: Mapping[str, Any],
        proto: ProtocolInfo,
        on_pipe: Callable[[Pipe], None],
        subprotocol: str,
    ) -> None:
        self.svc = svc
        self.loop = svc.loop
        self._u = u
        self._scheme = url.scheme
        self._options = options
        self._proto = proto
        self._on_pipe = on_pipe
        self.subprotocol: str | None = subprotocol
        self.response_headers: Mapping[str, str] | None = options.get("ws_response_headers")
        self.closed = False
        shown = _format_host(u.host) if u.host != "*" else u.host
        self._url = f"{url.scheme}://{shown}:{svc.port}{u.target}"

    def on_upgrade(self, transport: asyncio.Transport, trailing: bytes) -> None:
        """The service accepted an upgrade on our path: make the pipe and hand it over."""

        if self.closed:
            transport.abort()
            return
        pipe = WSPipe(
            self._proto.peer_id,
            self._scheme,
            _make_codec(self._options, client=False),
            self.loop,
            ping_interval=self._options.get("ws_ping_interval"),
        )
        pipe.start(transport, trailing)
        if not pipe.closed:
            self._on_pipe(pipe)

    def close(self) -> None:
        """Stop serving the path; the service closes with its last user."""
        if self.closed:
            return
        self.closed = True
        self.svc.remove_ws_route(self._u.path, self)
        self.svc.release()

    @property
    def url(self) -> str:
        return self._url

    @property
    def local_address(self) -> Any:
        return self.svc.sockname


# ---------------------------------------------------------------- byte streams


class WSStream(Stream, asyncio.Protocol):
    """A byte stream over one WebSocket connection (``purenng.stream`` over ws/wss).

    Made by :meth:`WSTransport.dial_stream` or a stream listener, never by
    hand.  Each :meth:`write` is one binary message (in frames of at most
    ``ws_send_frame_max`` bytes); :meth:`read` returns the payloads of
    received binary frames in order, as one byte stream.  Message boundaries
    carry no meaning.  A close frame or the end of the connection makes
    :meth:`read` return ``b""`` once the buffer is empty; a protocol failure
    (a text frame, bad framing, a frame over ``ws_recv_frame_max``) makes it
    raise :class:`~purenng.core.errors.ConnectionReset`.

    Reading is paused while more than :data:`READ_HIGH` bytes wait unread, so
    a slow reader holds the sender back through TCP.
    """

    def __init__(self, codec: WSCodec, subprotocol: str | None) -> None:
        self._codec = codec
        self._tr: Any = None
        self._info: dict[str, Any] = {"ws_protocol": subprotocol}
        self._buffer = bytearray()
        self._eof = False
        self._error: BaseException | None = None
        self._closed = False
        self._reading_paused = False
        self._write_paused = False
        self._tr_closed = False  # closed once only (see WSPipe)
        self._read_waiter: asyncio.Future[None] | None = None
        self._drain_waiters: list[asyncio.Future[None]] = []

    def start(self, transport: asyncio.BaseTransport, trailing: bytes) -> None:
        """Become ``transport``'s protocol and start reading (``trailing`` first)."""
        tr: Any = transport
        self._tr = tr
        # Kept: a closed TLS transport no longer answers get_extra_info.
        self._info.update(_connection_info(tr))
        _adopt(tr, self)
        if tr.is_closing():
            self._tr_closed = True
            self._ended()
            return
        if trailing:
            self.data_received(trailing)
        if not self._eof and not self._reading_paused:
            tr.resume_reading()

    # ------------------------------------------------------------ asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        pass  # adopted in start()

    def data_received(self, data: bytes) -> None:
        if self._eof:
            return
        codec = self._codec
        for chunk in codec.receive(data):
            self._buffer += chunk
        if codec.closing:
            if codec.error is not None and self._error is None:
                self._error = codec.error
            self._finish()  # echo the peer's close frame (or send ours), then end
            return
        self._flush()  # a pong (unless writes are blocked)
        if len(self._buffer) >= READ_HIGH and not self._reading_paused:
            self._reading_paused = True
            self._tr.pause_reading()
        self._wake()

    def eof_received(self) -> bool:
        self._codec.receive_eof()
        return False  # the transport closes; connection_lost follows

    def connection_lost(self, exc: Exception | None) -> None:
        if exc is not None and self._error is None and not self._codec.closing:
            self._error = exc
        self._tr_closed = True
        self._ended()

    def pause_writing(self) -> None:
        """The write buffer is full: :meth:`drain` waits, a pong waits (coalesced).

        Reading goes on, for the reason :meth:`WSPipe.pause_writing` gives.
        """
        self._write_paused = True

    def resume_writing(self) -> None:
        self._write_paused = False
        if self._codec.pong_pending and not self._eof:
            self._flush()
        self._release_drainers()

    # ------------------------------------------------------------ Stream

    async def read(self, max_bytes: int = 65536) -> bytes:
        while True:
            if self._closed:
                raise Closed("stream is closed")
            buf = self._buffer
            if buf:
                data = bytes(buf[:max_bytes])
                del buf[:max_bytes]
                if self._reading_paused and len(buf) < READ_LOW and not self._eof:
                    self._reading_paused = False
                    self._tr.resume_reading()
                return data
            if self._eof:
                if self._error is not None:
                    raise ConnectionReset(f"WebSocket stream failed: {self._error}") from (
                        self._error
                    )
                return b""
            self._read_waiter = asyncio.get_running_loop().create_future()
            try:
                await self._read_waiter
            finally:
                self._read_waiter = None

    def write(self, data: BytesLike) -> None:
        """Send ``data`` as one binary message; ``b""`` sends nothing."""
        if self._closed:
            raise Closed("stream is closed")
        if self._eof or self._codec.closing:
            raise ConnectionReset("the WebSocket connection has ended")
        if not data:
            return
        self._codec.send_message(b"", data)
        self._flush()

    async def drain(self) -> None:
        if self._write_paused and not self._eof and not self._closed:
            fut = asyncio.get_running_loop().create_future()
            self._drain_waiters.append(fut)
            await fut

    def close(self) -> None:
        """Send a close frame (1000) and close the connection; idempotent."""
        if self._closed:
            return
        self._closed = True
        self._codec.close()
        self._finish()
        self._wake()

    def extra(self, name: str, default: Any = None) -> Any:
        """Connection details; ``"ws_protocol"`` is the agreed subprotocol (or None)."""
        if name in self._info:
            value = self._info[name]
            return default if value is None else value
        tr = self._tr
        if tr is None or self._eof or self._tr_closed:
            return default
        return _extra_info(tr, name, default)

    def pending_bytes(self) -> int:
        """Bytes written and not yet handed to the kernel (0 once closed)."""
        if self._tr is None or self._tr_closed:
            return 0
        try:
            buffered = int(self._tr.get_write_buffer_size())
        except (AttributeError, RuntimeError):
            buffered = 0
        return buffered + self._codec.pending_bytes()

    # ------------------------------------------------------------ internals

    def _flush(self) -> None:
        tr = self._tr
        if tr is None or self._tr_closed:
            return
        chunks = self._codec.data_to_send(pong=not self._write_paused)
        for chunk in chunks:
            if chunk:
                tr.write(chunk)
            else:
                self._close_transport()  # the codec's end-of-stream mark
                return

    def _close_transport(self) -> None:
        if not self._tr_closed:
            self._tr_closed = True
            if self._tr is not None:
                self._tr.close()

    def _finish(self) -> None:
        self._flush()
        self._close_transport()
        self._ended()

    def _ended(self) -> None:
        self._eof = True
        self._write_paused = False
        self._wake()
        self._release_drainers()

    def _wake(self) -> None:
        w = self._read_waiter
        if w is not None and not w.done():
            w.set_result(None)

    def _release_drainers(self) -> None:
        waiters, self._drain_waiters = self._drain_waiters, []
        for fut in waiters:
            if not fut.done():
                fut.set_result(None)

    def __repr__(self) -> str:
        return f"<WSStream {self.remote_address}>"


class _WSStreamListener(StreamListener):
    """A byte-stream path on a shared HTTP service; queues a stream per upgrade."""

    def __init__(self, svc: Service, u: WSURL, url: URL, options: Mapping[str, Any]) -> None:
        self.svc = svc
        self.loop = svc.loop
        self._u = u
        self._options = options
        self.subprotocol: str | None = options.get("ws_protocol")
        self.response_headers: Mapping[str, str] | None = options.get("ws_response_headers")
        self.closed = False
        self._queue: deque[WSStream] = deque()
        self._waiter: asyncio.Future[None] | None = None
        shown = _format_host(u.host) if u.host != "*" else u.host
        self._url = f"{url.scheme}://{shown}:{svc.port}{u.target}"

    def on_upgrade(self, transport: asyncio.Transport, trailing: bytes) -> None:
        """The service accepted an upgrade on our path: queue the stream."""
        if self.closed:
            transport.abort()
            return
        stream = WSStream(_make_codec(self._options, client=False, stream=True), self.subprotocol)
        stream.start(transport, trailing)
        self._queue.append(stream)
        w = self._waiter
        if w is not None and not w.done():
            w.set_result(None)

    async def accept(self) -> Stream:
        while not self._queue:
            if self.closed:
                raise Closed("listener is closed")
            self._waiter = self.loop.create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        return self._queue.popleft()

    def close(self) -> None:
        """Stop serving the path; the service closes with its last user."""
        if self.closed:
            return
        self.closed = True
        self.svc.remove_ws_route(self._u.path, self)
        self.svc.release()
        while self._queue:
            self._queue.popleft().close()
        w = self._waiter
        if w is not None and not w.done():
            w.set_result(None)

    async def aclose(self) -> None:
        self.close()
        server = self.svc.server
        if self.svc.closed and server is not None:
            await server.wait_closed()

    @property
    def url(self) -> str:
        return self._url

    @property
    def local_address(self) -> Any:
        return self.svc.sockname


def _check_stream_options(url: URL, options: Mapping[str, Any]) -> None:
    if options.get("ws_ping_interval") is not None:
        raise BadOption(f"{url.raw}: ws_ping_interval applies to SP sockets, not byte streams")


@hookimpl
def purenng_register_transports(registry: Registry) -> None:
    registry.add_transport(WSTransport())


def _extra_info(tr: Any, name: str, default: Any) -> Any:
    """``tr.get_extra_info(name, default)``, or ``default`` if the transport cannot say."""
    try:
        return tr.get_extra_info(name, default)
    except Exception:  # a TLS transport closed twice has no protocol left
        return default


def _connection_info(tr: Any) -> dict[str, Any]:
    """The details worth keeping past the close: addresses and the peer certificate."""
    return {name: _extra_info(tr, name, None) for name in ("sockname", "peername", "peercert")}


def _adopt(tr: Any, protocol: asyncio.BaseProtocol) -> None:
    """Take over an upgraded connection: write limits, no Nagle, our protocol."""
    try:
        tr.set_write_buffer_limits(high=WRITE_HIGH, low=WRITE_LOW)
    except (AttributeError, NotImplementedError):
        pass
    sock = tr.get_extra_info("socket")
    if sock is not None:
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass
    tr.set_protocol(protocol)
