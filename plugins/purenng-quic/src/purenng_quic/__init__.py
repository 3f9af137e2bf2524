"""purenng-quic: the ``quic://`` transport for purenng, on aioquic.

Each SP pipe is one QUIC connection carrying one bidirectional stream
(stream 0, opened by the dialer) with SP's ordinary stream mapping on it:
the 8-byte SP header each way, then 64-bit length-prefixed messages.
TLS 1.3 is QUIC's own; it is configured with purenng's
:class:`~purenng.TLSConfig` (the ``tls_config`` option) exactly as
``tls+tcp://`` is.  README.md has the wire format and the options.

Modules, from the top down:

* :mod:`~purenng_quic.transport`: the transport (URLs, options);
* :mod:`~purenng_quic.dialer`, :mod:`~purenng_quic.listener`: making
  connections and accepting them on one UDP socket;
* :mod:`~purenng_quic.stream_transport`: stream 0 as an asyncio transport
  and a purenng byte stream;
* :mod:`~purenng_quic.driver`: one connection on the event loop;
* :mod:`~purenng_quic.connection`: aioquic's connection, adjusted for SP;
* :mod:`~purenng_quic.tls_setup`, :mod:`~purenng_quic.tickets`: TLS and 0-RTT;
* :mod:`~purenng_quic.wire`: the ALPN token, error codes and their meaning.

This module is the plugin's entry point (``purenng.transports``: ``quic``,
``quic4``, ``quic6``); it is imported only when a ``quic`` URL is first used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from purenng.plugin import hookimpl

from .driver import QuicHandle
from .listener import QuicListener, listener_for
from .transport import OPTIONS, QuicTransport
from .wire import ALPN, APP_HANDSHAKE_TIMEOUT, APP_NO_ERROR, APP_PROTOCOL_ERROR, SP_STREAM_ID

if TYPE_CHECKING:
    from purenng.plugin import Registry

__version__ = "0.1.0"
#: The purenng plugin API this plugin is written for.
PURENNG_PLUGIN_API = "1.0"

__all__ = [
    "ALPN",
    "APP_HANDSHAKE_TIMEOUT",
    "APP_NO_ERROR",
    "APP_PROTOCOL_ERROR",
    "OPTIONS",
    "PURENNG_PLUGIN_API",
    "SP_STREAM_ID",
    "QuicHandle",
    "QuicListener",
    "QuicTransport",
    "listener_stats",
    "purenng_register_transports",
]


def listener_stats(listener: Any) -> dict[str, int]:
    """The QUIC counters of a listener: a socket's ``Listener`` or a ``purenng.stream`` one.

    Found by the listener's bound address (``listener.local_address``), so it
    works on the public objects alone.

    Raises:
        LookupError: no live QUIC listener is bound there.
    """
    lst = listener if isinstance(listener, QuicListener) else listener_for(listener.local_address)
    if lst is None:
        raise LookupError(f"no QUIC listener at {getattr(listener, 'local_address', listener)!r}")
    return lst.stats()


@hookimpl
def purenng_register_transports(registry: Registry) -> None:
    """Register ``quic``, ``quic4`` and ``quic6``."""
    registry.add_transport(QuicTransport())
