"""The wire constants of SP over QUIC, and what a peer's CONNECTION_CLOSE means.

Everything another implementation must agree on to talk to this one is here
(README.md, "Wire format", says the same in prose): the ALPN token, the one
stream an SP pipe uses, and the application error codes of CONNECTION_CLOSE.
The rest of the wire is SP's own stream mapping (the 8-byte header, then
64-bit length-prefixed messages), untouched, on that stream.

:func:`close_error` turns the reason a QUIC connection ended into the purenng
error a pipe, a dialer or a byte-stream reader reports, so that "the server
rejected our certificate" and "the peer broke SP" read as such rather than
as a bare number.
"""

from __future__ import annotations

from purenng.plugin import ConnectionRefused, ConnectionReset, ProtocolError, Timeout, TLSError

__all__ = [
    "ALPN",
    "APP_HANDSHAKE_TIMEOUT",
    "APP_NO_ERROR",
    "APP_PROTOCOL_ERROR",
    "SP_STREAM_ID",
    "app_code_for",
    "close_error",
]

#: The ALPN token an SP-over-QUIC endpoint offers and requires: "SP over one
#: QUIC stream, mapping version 1".  No NNG or mangos token exists yet
#: (nanomsg/nng#230, nanomsg/mangos#40 propose none); ``quic_alpn`` changes it.
ALPN = "nng-sp/1"

#: The client-initiated bidirectional stream that carries the SP pipe.
SP_STREAM_ID = 0

#: Application error codes of CONNECTION_CLOSE (frame type 0x1d).
#: The pipe was closed on purpose (the socket, dialer or listener closed it).
APP_NO_ERROR = 0x0
#: The peer broke the SP stream mapping: a bad SP header, a message above
#: ``recv_max_size``, a length with reserved bits set, a refused peer protocol.
APP_PROTOCOL_ERROR = 0x1
#: The SP header exchange did not finish within ``sp_handshake_timeout``
#: (e.g. the peer never opened stream 0).
APP_HANDSHAKE_TIMEOUT = 0x2

_APP_NAMES = {
    APP_NO_ERROR: "no error",
    APP_PROTOCOL_ERROR: "SP protocol error",
    APP_HANDSHAKE_TIMEOUT: "SP handshake timeout",
}

#: QUIC transport error codes (RFC 9000 §20.1) this module names.
_TRANSPORT_NO_ERROR = 0x0
_TRANSPORT_INTERNAL_ERROR = 0x1
_TRANSPORT_CONNECTION_REFUSED = 0x2
_TRANSPORT_NAMES = {
    0x0: "NO_ERROR",
    0x1: "INTERNAL_ERROR",
    0x2: "CONNECTION_REFUSED",
    0x3: "FLOW_CONTROL_ERROR",
    0x4: "STREAM_LIMIT_ERROR",
    0x5: "STREAM_STATE_ERROR",
    0x6: "FINAL_SIZE_ERROR",
    0x7: "FRAME_ENCODING_ERROR",
    0x8: "TRANSPORT_PARAMETER_ERROR",
    0x9: "CONNECTION_ID_LIMIT_ERROR",
    0xA: "PROTOCOL_VIOLATION",
    0xB: "INVALID_TOKEN",
    0xC: "APPLICATION_ERROR",
    0xD: "CRYPTO_BUFFER_EXCEEDED",
    0xE: "KEY_UPDATE_ERROR",
    0xF: "AEAD_LIMIT_REACHED",
    0x10: "NO_VIABLE_PATH",
}
#: CRYPTO_ERROR (0x100 + TLS alert): the TLS alerts worth a plain word.
_ALERTS = {
    40: "the handshake failed",
    42: "bad certificate",
    43: "unsupported certificate",
    44: "certificate revoked",
    45: "certificate expired",
    46: "certificate unknown",
    48: "unknown CA",
    50: "decode error",
    51: "decrypt error",
    70: "no TLS version in common",
    80: "internal error",
    109: "missing extension",
    116: "certificate required",
    120: "no common application protocol (ALPN)",
}


def app_code_for(error: BaseException | None) -> int:
    """The application error code that tells the peer why we closed a pipe."""
    if error is None:
        return APP_NO_ERROR
    if isinstance(error, Timeout):
        return APP_HANDSHAKE_TIMEOUT
    return APP_PROTOCOL_ERROR


def close_error(
    error_code: int, frame_type: int | None, reason: str, *, by_peer: bool, where: str
) -> BaseException | None:
    """The purenng error for a connection that ended; None for a clean close.

    Args:
        error_code: The CONNECTION_CLOSE error code.
        frame_type: None for an application close, else the transport
            close's frame type.
        reason: The reason phrase.
        by_peer: The peer closed (False: our side closed, e.g. our TLS
            layer refused the peer's certificate, or the idle timer).
        where: What to name in the message (the URL or peer address).
    """
    who = "the peer" if by_peer else "we"
    said = f": {reason}" if reason else ""
    if frame_type is None:  # an application close (frame type 0x1d)
        if error_code == APP_NO_ERROR:
            return None
        name = _APP_NAMES.get(error_code, f"application error 0x{error_code:x}")
        if error_code == APP_HANDSHAKE_TIMEOUT:
            return Timeout(f"{where}: {who} closed the connection: {name}{said}")
        if error_code == APP_PROTOCOL_ERROR:
            return ProtocolError(f"{where}: {who} closed the connection: {name}{said}")
        return ConnectionReset(f"{where}: {who} closed the connection: {name}{said}")
    if 0x100 <= error_code <= 0x1FF:
        alert = error_code - 0x100
        what = _ALERTS.get(alert, f"TLS alert {alert}")
        if by_peer:
            detail = f"the peer refused the TLS handshake: {what}{said}"
        else:
            detail = f"the peer's certificate did not verify: {reason or what}"
            if alert not in (42, 43, 44, 45, 46, 48, 116):
                detail = f"{what}{said}"
        return TLSError(f"{where}: TLS handshake failed: {detail}", reason=reason or what)
    if error_code == _TRANSPORT_CONNECTION_REFUSED:
        return ConnectionRefused(f"{where}: connection refused{said}")
    if error_code == _TRANSPORT_NO_ERROR:
        return None
    if error_code == _TRANSPORT_INTERNAL_ERROR and reason == "Idle timeout":
        return Timeout(f"{where}: QUIC idle timeout: nothing heard from the peer")
    name = _TRANSPORT_NAMES.get(error_code, f"0x{error_code:x}")
    return ProtocolError(f"{where}: {who} closed the QUIC connection: {name}{said}")
