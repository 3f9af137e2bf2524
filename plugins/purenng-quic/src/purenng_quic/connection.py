"""One QUIC connection as an SP pipe needs it: aioquic's state machine, adjusted.

aioquic's :class:`~aioquic.quic.connection.QuicConnection` is sans-IO and
does the protocol; this subclass changes four things an SP pipe depends on,
each at the smallest seam aioquic offers:

* **Receive flow control follows the application.**  aioquic raises a
  stream's receive limit (MAX_STREAM_DATA) whenever the peer has sent half of
  it, whatever the application has read, so a peer can fill our memory while
  the pipe is paused (``recv_buffer`` full).  Here the limit is what the
  application has taken plus :attr:`window`: a paused pipe stops granting
  credit and the peer stops sending within one window.
* **One stream.**  A listener lets the client open exactly one
  bidirectional stream (stream 0) and no unidirectional one; a dialer lets
  the server open none.  A peer that opens another fails with QUIC's own
  STREAM_LIMIT_ERROR.
* **Client certificates.**  aioquic's server never asks for one; when the
  listener's ``auth_mode`` wants one it is requested here (and verified
  by :mod:`purenng_quic.tls_setup` once the handshake is over).
* **Who closed.**  :attr:`closed_by_peer` tells a CONNECTION_CLOSE we
  received from one we sent, so errors can say "the peer refused our
  certificate" rather than "our check failed".

The names used of aioquic's internals (``_write_stream_limits``,
``_initialize``, ``_handle_connection_close_frame``, ``_streams``, the
stream limits) are all here and nowhere else, so a change in aioquic breaks
one module.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from aioquic.quic.connection import QuicConnection
from aioquic.quic.packet import QuicFrameType

from .wire import SP_STREAM_ID

if TYPE_CHECKING:
    from aioquic.quic.configuration import QuicConfiguration
    from aioquic.quic.stream import QuicStream

__all__ = ["SPQuicConnection"]

# aioquic logs every connection error of its peers at WARNING on the "quic"
# logger; with no logging set up, Python would print those to stderr.  A
# library stays quiet by default: the errors reach the application as
# purenng errors, and handlers configured on the root logger still get them.
logging.getLogger("quic").addHandler(logging.NullHandler())

#: Room a MAX_STREAM_DATA frame needs: type, stream id, limit (varints).
_MAX_STREAM_DATA_FRAME_CAPACITY = 1 + 8 + 8


class SPQuicConnection(QuicConnection):
    """A QUIC connection carrying one SP pipe on stream 0.

    Args:
        configuration: aioquic's configuration (its ``max_stream_data`` is
            the initial window).
        window: Bytes the peer may send beyond what the application took.
        request_client_certificate: (listeners) ask the client for a certificate.
        **kwargs: For :class:`~aioquic.quic.connection.QuicConnection`.
    """

    def __init__(
        self,
        *,
        configuration: QuicConfiguration,
        window: int,
        request_client_certificate: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(configuration=configuration, **kwargs)
        self.window = window
        #: Bytes of stream 0 the application has taken (credit is granted from here).
        self.consumed = 0
        #: True once a CONNECTION_CLOSE arrived from the peer.
        self.closed_by_peer = False
        self._want_client_certificate = request_client_certificate
        bidi = 0 if configuration.is_client else 1
        for limit, value in (
            (self._local_max_streams_bidi, bidi),
            (self._local_max_streams_uni, 0),
        ):
            limit.value = value
            limit.sent = value

    # ------------------------------------------------------------ what the driver asks

    def sp_stream(self) -> QuicStream | None:
        """Stream 0, once it exists (opened by the client, not yet discarded)."""
        stream: QuicStream | None = self._streams.get(SP_STREAM_ID)
        return stream

    def open_sp_stream(self) -> None:
        """(Dialer) open stream 0 now, before any data: the listener can then write first.

        The stream is announced with a MAX_STREAM_DATA frame for it (legal
        for the receiving half of our own stream, and it opens the stream at
        the listener, RFC 9000 §3.2), so a byte-stream dialer that only
        reads still lets the listener talk.
        """
        self.send_stream_data(SP_STREAM_ID, b"")
        stream = self.sp_stream()
        if stream is not None:
            stream.max_stream_data_local_sent = 0  # makes the frame go out

    def has_peer(self) -> bool:
        """True once a packet from the peer has decrypted (the connection is real)."""
        return getattr(self._state, "name", "") != "FIRSTFLIGHT"

    def unsent_bytes(self) -> int:
        """Bytes written to stream 0 that the peer has not acknowledged yet."""
        stream = self.sp_stream()
        if stream is None:
            return 0
        return len(stream.sender._buffer)

    def send_finished(self) -> bool:
        """True once everything we wrote on stream 0, and its FIN, has been acknowledged."""
        stream = self.sp_stream()
        return stream is None or stream.sender.is_finished

    def credit_due(self) -> bool:
        """True when consumption has moved far enough to grant the peer more credit."""
        stream = self.sp_stream()
        if stream is None or not stream.max_stream_data_local:
            return False
        return self.consumed + self.window - stream.max_stream_data_local >= self.window // 2

    def peer_certificate(self) -> tuple[Any, list[Any]]:
        """The peer's certificate and chain (cryptography objects), once the handshake ran."""
        tls = getattr(self, "tls", None)
        if tls is None:
            return None, []
        return tls._peer_certificate, list(tls._peer_certificate_chain)

    def cipher_name(self) -> str | None:
        """The negotiated TLS 1.3 cipher suite, e.g. ``"AES_128_GCM_SHA256"``."""
        tls = getattr(self, "tls", None)
        suite = getattr(getattr(tls, "key_schedule", None), "cipher_suite", None)
        return getattr(suite, "name", None)

    # ------------------------------------------------------------ aioquic seams

    def _initialize(self, peer_cid: bytes) -> None:
        super()._initialize(peer_cid)
        if self._want_client_certificate:
            self.tls._request_client_certificate = True

    def _handle_connection_close_frame(self, context: Any, frame_type: int, buf: Any) -> None:
        if self._close_event is None:
            self.closed_by_peer = True
        super()._handle_connection_close_frame(context, frame_type, buf)

    def _write_stream_limits(self, builder: Any, space: Any, stream: QuicStream) -> None:
        if stream.stream_id != SP_STREAM_ID or not stream.max_stream_data_local:
            super()._write_stream_limits(builder=builder, space=space, stream=stream)
            return
        target = self.consumed + self.window
        if target - stream.max_stream_data_local >= self.window // 2:
            stream.max_stream_data_local = target
        if stream.max_stream_data_local_sent != stream.max_stream_data_local:
            buf = builder.start_frame(
                QuicFrameType.MAX_STREAM_DATA,
                capacity=_MAX_STREAM_DATA_FRAME_CAPACITY,
                handler=self._on_max_stream_data_delivery,
                handler_args=(stream,),
            )
            buf.push_uint_var(stream.stream_id)
            buf.push_uint_var(stream.max_stream_data_local)
            stream.max_stream_data_local_sent = stream.max_stream_data_local
