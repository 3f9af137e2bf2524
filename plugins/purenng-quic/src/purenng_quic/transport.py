"""The ``quic://`` transport: SP pipes over QUIC, one connection per pipe.

URL forms are tcp's: ``quic://127.0.0.1:5555``, ``quic://[::1]:5555``,
``quic://host.name:5555``; listeners take a wildcard host (``quic://:5555``,
``quic://*:5555``, ``quic://0.0.0.0:5555``, ``quic://[::]:5555``) and port
0 (the bound port is in ``listener.url`` and ``listener.port``);
``quic4://`` and ``quic6://`` restrict the address family.

This is a stream transport: it makes byte streams (stream 0 of each
connection, :mod:`purenng_quic.stream_transport`) and purenng's shared
adapter runs the SP header exchange and message framing on them, exactly as
over TCP.  The options, their defaults and why, are in :data:`OPTIONS`
(and README.md).
"""

from __future__ import annotations

import socket
from typing import TYPE_CHECKING, Any, ClassVar

from purenng.plugin import (
    TLS_CONFIG_OPTION,
    BadAddress,
    BadOption,
    OptionSpec,
    StreamTransport,
    TLSConfig,
    boolean,
    duration,
    integer,
    parse_host_port,
)

from .wire import ALPN

if TYPE_CHECKING:
    from collections.abc import Mapping

    from purenng.plugin import URL, HostPort

    from .listener import QuicListener
    from .stream_transport import QuicStream

__all__ = ["OPTIONS", "QuicTransport"]

_FAMILY = {"quic": socket.AF_UNSPEC, "quic4": socket.AF_INET, "quic6": socket.AF_INET6}


def _alpn(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError("expected a str")
    raw = value.encode("utf-8")
    if not 1 <= len(raw) <= 255:
        raise ValueError("an ALPN token is 1 to 255 bytes")
    return value


#: The options of ``quic://`` (set them on a socket, per endpoint, or in
#: plugins.toml under ``[transport.quic]``).
OPTIONS: Mapping[str, OptionSpec] = {
    s.name: s
    for s in (
        TLS_CONFIG_OPTION,
        OptionSpec(
            "quic_handshake_timeout",
            duration(allow_none=False, minimum=0.001),
            10.0,
            "seconds allowed for the QUIC (TLS 1.3) handshake",
        ),
        OptionSpec(
            "quic_idle_timeout",
            duration(allow_none=False, minimum=0.01),
            30.0,
            "seconds of silence after which a connection is dropped",
        ),
        OptionSpec(
            "quic_keepalive",
            duration(),
            10.0,
            "seconds of silence before a PING keeps the connection alive; None or 0: never",
        ),
        OptionSpec(
            "quic_max_connections",
            integer(1),
            1024,
            "connections a listener holds at most, handshakes included",
        ),
        OptionSpec(
            "quic_0rtt",
            boolean,
            False,
            "send and accept 0-RTT early data (replayable: off for at-most-once REQ)",
        ),
        OptionSpec("quic_alpn", _alpn, ALPN, "the ALPN token offered and required"),
        OptionSpec(
            "quic_max_datagram_size",
            integer(1200, 65527),
            1200,
            "largest UDP payload sent (1200 is safe on any path)",
        ),
        OptionSpec(
            "quic_stream_window",
            integer(16 * 1024, 1 << 30),
            1 << 20,
            "bytes the peer may send ahead of what the application has read",
        ),
    )
}


def _format_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _tls(options: Mapping[str, Any]) -> TLSConfig:
    cfg = options.get("tls_config")
    return cfg if isinstance(cfg, TLSConfig) else TLSConfig()


class QuicTransport(StreamTransport):
    """SP over QUIC (IPv4 and IPv6), on aioquic."""

    schemes: ClassVar[tuple[str, ...]] = ("quic", "quic4", "quic6")
    option_prefix = "quic"
    option_specs: ClassVar[Mapping[str, OptionSpec]] = OPTIONS

    def _host_port(self, url: URL) -> HostPort:
        hp = parse_host_port(url)
        family = _FAMILY.get(url.scheme, socket.AF_UNSPEC)
        if family == socket.AF_INET and ":" in hp.host:
            raise BadAddress(f"{url.raw!r}: quic4 needs an IPv4 address")
        if (
            family == socket.AF_INET6
            and hp.host
            and "." in hp.host
            and hp.host.replace(".", "").isdigit()
        ):
            raise BadAddress(f"{url.raw!r}: quic6 needs an IPv6 address")
        return hp

    def check_url(self, url: URL) -> None:
        self._host_port(url)

    def check_dial_url(self, url: URL) -> None:
        self._dial_host_port(url)

    def _dial_host_port(self, url: URL) -> HostPort:
        hp = self._host_port(url)
        if hp.wildcard:
            raise BadAddress(f"{url.raw!r}: cannot dial a wildcard address")
        if hp.port == 0:
            raise BadAddress(f"{url.raw!r}: cannot dial port 0")
        return hp

    async def dial(self, url: URL, options: Mapping[str, Any]) -> QuicStream:
        from .dialer import dial

        hp = self._dial_host_port(url)
        return await dial(
            url, hp, _FAMILY.get(url.scheme, socket.AF_UNSPEC), _tls(options), dict(options)
        )

    async def listen(self, url: URL, options: Mapping[str, Any]) -> QuicListener:
        from .listener import QuicListener, bind_udp
        from .tickets import TicketStore
        from .tls_setup import server_configuration

        hp = self._host_port(url)
        cfg = options.get("tls_config")
        if not isinstance(cfg, TLSConfig):
            raise BadOption(
                "a QUIC listener needs a certificate: set tls_config=purenng.TLSConfig("
                "cert_file=..., key_file=...) (or cert_data/key_data)"
            )
        configuration = server_configuration(
            cfg,
            alpn=options["quic_alpn"],
            idle_timeout=float(options["quic_idle_timeout"]),
            max_datagram_size=int(options["quic_max_datagram_size"]),
            window=int(options["quic_stream_window"]),
        )
        family = _FAMILY.get(url.scheme, socket.AF_UNSPEC)
        host = hp.host
        if hp.wildcard:
            host = "::" if family == socket.AF_INET6 or hp.host == "::" else "0.0.0.0"
        sock = await bind_udp(host, hp.port, family, url.raw)
        port = sock.getsockname()[1]
        shown = _format_host(hp.host) if hp.host not in ("", "*") else hp.host
        tickets = TicketStore() if options["quic_0rtt"] else None
        lst = QuicListener(
            f"{url.scheme}://{shown}:{port}", configuration, cfg, dict(options), tickets
        )
        await lst.start(sock)
        return lst
