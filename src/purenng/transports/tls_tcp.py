"""The TLS transport: ``tls+tcp://``, ``tls+tcp4://``, ``tls+tcp6://``.

The SP stream framing (8-byte header exchange, 64-bit lengths) inside a TLS
session over TCP, as NNG and mangos (``reference/wire-protocols.md`` §2.1,
§2.3).  The TLS handshake runs first, then the SP header exchange; the SP
part is the shared adapter's job, this module only makes TLS streams.

URL forms are tcp's (:mod:`purenng.transports.tcp`): ``tls+tcp://host:port``,
``tls+tcp://[::1]:port``, port 0 and wildcard hosts on listeners,
``tls+tcp4``/``tls+tcp6`` to restrict the family.

Options:

* ``tls_config``: a :class:`purenng.TLSConfig` (or, in plugins.toml, a table
  of its fields).  A listener needs one with a certificate.  A dialer
  without one verifies the server against the system trust store.
* ``tls_handshake_timeout``: seconds allowed for the TLS handshake (10).
* ``tcp_nodelay``, ``tcp_keepalive``: as tcp.

Defaults (NNG's): a dialer requires a valid server certificate whose name is
``server_name`` or the URL's host; a listener asks for no client
certificate unless ``auth_mode`` says so.

Errors: a handshake that fails raises :class:`purenng.TLSError` (a
:class:`~purenng.core.errors.ProtocolError`) whose message says why
("certificate has expired", "Hostname mismatch...", "unable to get local
issuer certificate", "peer did not return a certificate", "peer does not
speak TLS"); one that does not finish in time raises
:class:`~purenng.core.errors.Timeout`.  A listener drops failed handshakes
silently (logged at debug level), as it does bad SP headers.

Theory of operation: the streams are plain asyncio SSL transports made by
``loop.create_connection(ssl=...)`` and, on a listener, by
``loop.connect_accepted_socket(ssl=...)`` from purenng's own accept loop
(:class:`~purenng.core.stream_server.SocketServer`, shared with tcp and ipc: it
backs off when file descriptors run out, and a listener at ``max_pipes``
closes a new connection before spending a TLS handshake on it), so the
SP adapter adopts them with ``set_protocol`` exactly as it does tcp's (the
SSL transport feeds its ``BufferedProtocol`` from decrypted records, on
asyncio and uvloop alike).  The peer's certificate and the verification
result are kept as stream extras: ``peercert`` (the verified certificate as
``ssl.SSLSocket.getpeercert()`` gives it, ``{}`` when not verified),
``tls_verified``, ``tls_peer_cn``, ``tls_version``, ``cipher``.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
from dataclasses import replace
from typing import TYPE_CHECKING, Any, ClassVar, cast

from ..plugin import (
    TLS_CONFIG_OPTION,
    AsyncioStream,
    OptionSpec,
    StreamProtocol,
    Timeout,
    TLSConfig,
    TLSError,
    duration,
    hookimpl,
)
from .tcp import TCPTransport, _apply_options, _TCPListener, bind_listener, connect

if TYPE_CHECKING:
    from collections.abc import Mapping

    from ..plugin import URL, HostPort, Registry

__all__ = ["TLSTransport", "tls_error", "tls_extras"]

#: The purenng plugin API this module is written for (purenng.plugin.API_VERSION).
PURENNG_PLUGIN_API: str = "1.0"

log: logging.Logger = logging.getLogger("purenng")

#: Seconds allowed for the TLS handshake unless ``tls_handshake_timeout`` says otherwise.
TLS_HANDSHAKE_TIMEOUT = 10.0

_FAMILY = {
    "tls+tcp": socket.AF_UNSPEC,
    "tls+tcp4": socket.AF_INET,
    "tls+tcp6": socket.AF_INET6,
}


def tls_error(exc: BaseException, where: str) -> BaseException:
    """Turn an error of a TLS handshake into a purenng error naming the reason.

    Returns ``exc`` itself when it is not about TLS.
    """
    if isinstance(exc, ssl.SSLCertVerificationError):
        reason = exc.verify_message or exc.reason or str(exc)
        err: BaseException = TLSError(
            f"{where}: TLS handshake failed: the peer's certificate did not verify: {reason}",
            reason=reason,
            verify_code=exc.verify_code,
        )
    elif isinstance(exc, ssl.SSLError):
        raw = exc.reason or exc.strerror or str(exc)
        reason = _REASONS.get(raw, raw.replace("_", " ").lower() if raw.isupper() else raw)
        err = TLSError(f"{where}: TLS handshake failed: {reason} ({raw})", reason=reason)
    elif isinstance(exc, ConnectionAbortedError) and "handshake" in str(exc).lower():
        err = Timeout(f"{where}: TLS handshake not completed in time: {exc}")
    else:
        return exc
    err.__cause__ = exc
    return err


#: OpenSSL reasons worth a plainer word.
_REASONS = {
    "WRONG_VERSION_NUMBER": "the peer does not speak TLS",
    "HTTP_REQUEST": "the peer speaks HTTP, not TLS",
    "PEER_DID_NOT_RETURN_A_CERTIFICATE": "the peer sent no client certificate",
    "TLSV13_ALERT_CERTIFICATE_REQUIRED": "the server requires a client certificate",
    "SSLV3_ALERT_BAD_CERTIFICATE": "the peer rejected our certificate",
    "TLSV1_ALERT_UNKNOWN_CA": "the peer does not trust our certificate's issuer",
    "SSLV3_ALERT_CERTIFICATE_EXPIRED": "the peer says our certificate has expired",
    "TLSV1_ALERT_PROTOCOL_VERSION": "no TLS version in common",
    "UNSUPPORTED_PROTOCOL": "no TLS version in common",
    "NO_PROTOCOLS_AVAILABLE": "no TLS version in common",
    "SSLV3_ALERT_HANDSHAKE_FAILURE": "the peer aborted the handshake",
    "UNEXPECTED_EOF_WHILE_READING": "the peer closed the connection during the TLS handshake",
    "EOF occurred in violation of protocol": "the peer closed the connection mid-handshake",
}


def tls_extras(transport: asyncio.BaseTransport) -> dict[str, Any]:
    """What a finished handshake tells about the peer, as stream extras."""
    obj = transport.get_extra_info("ssl_object")
    cert = transport.get_extra_info("peercert") or {}
    cn = None
    for rdn in cert.get("subject", ()):
        for key, value in rdn:
            if key == "commonName":
                cn = value
    return {
        "peercert": cert,
        "tls_verified": bool(cert),
        "tls_peer_cn": cn,
        "tls_version": obj.version() if obj is not None else None,
    }


class _TLSStream(AsyncioStream):
    """A TLS stream; a dialer's also explains a server's silent rejection.

    With TLS 1.3 a client's handshake is over before the server has checked
    the client's certificate.  A server that then rejects it sends an alert
    (NNG, OpenSSL) or simply closes (Python's asyncio drops the alert), and
    the client learns of it only at its first read.  When the SP adapter
    takes the transport over before anything has been read, the guard below
    sits between them until the first bytes arrive, turning "closed before a
    single byte" into a :class:`~purenng.core.errors.TLSError` that says so;
    then it steps aside (``set_protocol`` back to the adapter).
    """

    def __init__(
        self, transport: asyncio.Transport, protocol: StreamProtocol, where: str, dialer: bool
    ) -> None:
        super().__init__(transport, protocol)
        self._where = where
        self._dialer = dialer
        for k, v in tls_extras(transport).items():
            self.set_extra(k, v)

    def detach_transport(self) -> tuple[asyncio.Transport, bytes] | None:
        detached = super().detach_transport()
        if detached is None:
            return None
        tr, leftover = detached
        guard = self._dialer and not leftover
        return cast("asyncio.Transport", _TransportProxy(tr, self._where, guard)), leftover


class _TransportProxy:
    """Forwards to an SSL transport.

    * ``get_extra_info`` keeps working after the connection is lost (asyncio's
      SSL transport raises AttributeError then, and the socket asks for the
      peer's address when it reports why a pipe closed);
    * with ``guard``, ``set_protocol`` puts a :class:`_FirstReadGuard` in front.
    """

    def __init__(self, transport: asyncio.Transport, where: str, guard: bool) -> None:
        self._tr = transport
        self._where = where
        self._guard = guard
        self._extra: dict[str, Any] = {
            k: transport.get_extra_info(k) for k in ("peername", "sockname", "peercert")
        }
        #: Set when our side closes: then a close is not the server's doing.
        self.closed_here = False
        # Bound once: the adapter calls these on every flush.
        self.write = transport.write
        self.is_closing = transport.is_closing
        self.pause_reading = transport.pause_reading
        self.resume_reading = transport.resume_reading
        self.set_write_buffer_limits = transport.set_write_buffer_limits

    def get_write_buffer_size(self) -> int:
        """The SSL layer's unsent bytes, plus the TCP transport's under it when reachable.

        asyncio's SSL transport counts only what is not yet encrypted or not
        yet passed down; records already in the TCP transport's buffer (up to
        its 64 KiB high-water mark and one write) are not the kernel's yet
        either.  uvloop's layers are not reachable from Python: there the
        SSL transport's own count is all there is.
        """
        n = self._tr.get_write_buffer_size()
        inner = getattr(getattr(self._tr, "_ssl_protocol", None), "_transport", None)
        if inner is not None:
            try:
                n += inner.get_write_buffer_size()
            except (AttributeError, RuntimeError):
                pass
        return n

    def close(self) -> None:
        self.closed_here = True
        self._tr.close()

    def abort(self) -> None:
        self.closed_here = True
        self._tr.abort()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        if name in self._extra:
            value = self._extra[name]
            return default if value is None else value
        try:
            return self._tr.get_extra_info(name, default)
        except AttributeError:  # the SSL transport is gone
            return default

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        if self._guard:
            protocol = _FirstReadGuard(self, protocol, self._where)
        self._tr.set_protocol(protocol)

    def get_protocol(self) -> asyncio.BaseProtocol:
        return self._tr.get_protocol()


class _FirstReadGuard(asyncio.BufferedProtocol):
    def __init__(self, proxy: _TransportProxy, inner: Any, where: str) -> None:
        self._proxy = proxy
        self._inner = inner
        self._where = where

    def get_buffer(self, sizehint: int) -> Any:
        return self._inner.get_buffer(sizehint)

    def buffer_updated(self, nbytes: int) -> None:
        self._proxy._tr.set_protocol(self._inner)  # bytes arrived: the server accepted us
        self._inner.buffer_updated(nbytes)

    def eof_received(self) -> bool:
        if self._proxy.closed_here:
            return bool(self._inner.eof_received())
        self._rejected(None)
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        if self._proxy.closed_here:
            self._inner.connection_lost(exc)
        else:
            self._rejected(exc)

    def _rejected(self, exc: BaseException | None) -> None:
        mapped = tls_error(exc, self._where) if exc is not None else None
        if isinstance(mapped, TLSError):
            # E.g. Mbed TLS's alert, sent under keys OpenSSL has already left
            # behind, reads as "bad record mac": say where it happened.
            detail = f": {mapped.reason}"
            reason = mapped.reason
        else:
            detail = ""
            reason = "connection closed right after the TLS handshake"
        err = TLSError(
            f"{self._where}: the server ended the connection right after the TLS handshake, "
            f"before sending anything (did it reject our client certificate?){detail}",
            reason=reason,
        )
        if exc is not None:
            err.__cause__ = exc
        self._inner.connection_lost(err)

    def pause_writing(self) -> None:
        self._inner.pause_writing()

    def resume_writing(self) -> None:
        self._inner.resume_writing()


def _make_stream(
    tr: asyncio.Transport, pr: StreamProtocol, where: str = "", dialer: bool = False
) -> AsyncioStream:
    return _TLSStream(tr, pr, where, dialer)


class _TLSListener(_TCPListener):
    def make_stream(self, transport: asyncio.Transport, protocol: StreamProtocol) -> AsyncioStream:
        _apply_options(transport, self._options)
        return _make_stream(transport, protocol)


def _config(options: Mapping[str, Any]) -> TLSConfig:
    cfg = options.get("tls_config")
    return cfg if isinstance(cfg, TLSConfig) else TLSConfig()


def _handshake_timeout(options: Mapping[str, Any]) -> float:
    t = options.get("tls_handshake_timeout", TLS_HANDSHAKE_TIMEOUT)
    return TLS_HANDSHAKE_TIMEOUT if t is None else float(t)


class TLSTransport(TCPTransport):
    """SP over TLS over TCP (IPv4 and IPv6)."""

    schemes: ClassVar[tuple[str, ...]] = ("tls+tcp", "tls+tcp4", "tls+tcp6")
    option_prefix = "tls"
    option_specs: ClassVar[Mapping[str, OptionSpec]] = {
        "tls_config": TLS_CONFIG_OPTION,
        "tls_handshake_timeout": OptionSpec(
            "tls_handshake_timeout",
            duration(allow_none=False, minimum=0.001),
            TLS_HANDSHAKE_TIMEOUT,
            "seconds allowed for the TLS handshake",
        ),
        **TCPTransport.option_specs,
    }

    @staticmethod
    def _tcp_url(url: URL) -> URL:
        # The tcp checks key the address family on the scheme: tls+tcp4 -> tcp4.
        return replace(url, scheme=url.scheme.removeprefix("tls+"))

    def _host_port(self, url: URL) -> HostPort:
        return super()._host_port(self._tcp_url(url))

    async def dial(self, url: URL, options: Mapping[str, Any]) -> AsyncioStream:
        hp = self._dial_host_port(url)
        cfg = _config(options)
        hostname = cfg.server_hostname(hp.host)

        def translate(exc: OSError) -> BaseException | None:
            err = tls_error(exc, url.raw)
            if err is not exc:
                return err
            if isinstance(exc, ConnectionResetError | BrokenPipeError):
                return TLSError(
                    f"{url.raw}: TLS handshake failed: the peer closed the connection",
                    reason="the peer closed the connection during the TLS handshake",
                )
            return None

        tr, pr = await connect(
            url,
            hp,
            _FAMILY.get(url.scheme, socket.AF_UNSPEC),
            translate,
            ssl=cfg.client_context(hostname),
            server_hostname=hostname,
            ssl_handshake_timeout=_handshake_timeout(options),
        )
        _apply_options(tr, options)
        return _make_stream(tr, pr, url.raw, dialer=True)

    async def listen(self, url: URL, options: Mapping[str, Any]) -> _TLSListener:
        hp = self._host_port(url)
        ctx = _config(options).server_context()
        lst = _TLSListener(url.raw, options)
        await bind_listener(
            lst,
            url,
            hp,
            _FAMILY.get(url.scheme, socket.AF_UNSPEC),
            ssl=ctx,
            ssl_handshake_timeout=_handshake_timeout(options),
        )
        return lst


@hookimpl
def purenng_register_transports(registry: Registry) -> None:
    registry.add_transport(TLSTransport())
