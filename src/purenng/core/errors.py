"""The purenng error hierarchy.

Every error purenng raises derives from :class:`Error`.  Where a built-in
exception already means the same thing, the purenng error subclasses it too, so
``except TimeoutError`` and ``except purenng.Timeout`` both work.  The names
follow NNG's error codes (``NNG_ETIMEDOUT`` -> :class:`Timeout`, ...), which are
also the names pynng uses.
"""

from __future__ import annotations

__all__ = [
    "AddressInUse",
    "BadAddress",
    "BadOption",
    "BadState",
    "Closed",
    "ConfigError",
    "ConnectionRefused",
    "ConnectionReset",
    "Error",
    "MessageTooLarge",
    "NotSupported",
    "PluginError",
    "ProtocolError",
    "TLSError",
    "Timeout",
    "TryAgain",
    "WrongThread",
]


class Error(Exception):
    """Base class of every purenng error."""


class Timeout(Error, TimeoutError):
    """An operation did not finish before its timeout (NNG_ETIMEDOUT)."""


class Closed(Error):
    """The socket, context, dialer, listener or pipe is closed (NNG_ECLOSED)."""


class TryAgain(Error, BlockingIOError):
    """A non-blocking operation could not complete now (NNG_EAGAIN)."""


class ConnectionRefused(Error, ConnectionRefusedError):
    """The remote side refused the connection (NNG_ECONNREFUSED)."""


class ConnectionReset(Error, ConnectionResetError):
    """The connection was reset by the peer (NNG_ECONNRESET)."""


class AddressInUse(Error, OSError):
    """The address is already in use (NNG_EADDRINUSE)."""


class BadAddress(Error, ValueError):
    """A URL or address is malformed or not usable here (NNG_EADDRINVAL)."""


class BadOption(Error, ValueError, AttributeError):
    """An option name is unknown or its value is invalid (NNG_EINVAL).

    It is also an :class:`AttributeError`, since options are attributes: a
    misspelt ``sock.recv_timout`` fails as any unknown attribute does (and
    ``getattr(sock, name, default)`` gives the default).
    """


class BadState(Error):
    """The operation is not valid in the current state (NNG_ESTATE)."""


class ProtocolError(Error):
    """The peer violated the SP protocol (NNG_EPROTO)."""


class TLSError(ProtocolError):
    """A TLS handshake failed (NNG_ECRYPTO / NNG_EPEERAUTH).

    The message names the reason: an untrusted issuer, an expired
    certificate, a host name mismatch, a missing client certificate, a peer
    that does not speak TLS...

    Attributes:
        reason: The short reason, e.g. ``"certificate has expired"``.
        verify_code: OpenSSL's verification code when a certificate did not
            verify (10: expired, 20: untrusted issuer, 62: host mismatch...),
            else None.
    """

    def __init__(self, message: str, reason: str = "", verify_code: int | None = None) -> None:
        super().__init__(message)
        self.reason: str = reason or message
        self.verify_code = verify_code


class MessageTooLarge(Error):
    """A message exceeds the configured size limit (NNG_EMSGSIZE)."""


class NotSupported(Error):
    """The operation, scheme or protocol is not supported (NNG_ENOTSUP)."""


class PluginError(NotSupported):
    """A plugin failed to load or did not register what it promised.

    It derives from :class:`NotSupported` because, from the caller's side, the
    scheme or protocol it asked for is not available.
    """


class WrongThread(BadState, RuntimeError):
    """A blocking call was made on the event loop that must serve it.

    Blocking there would deadlock: the loop cannot run the operation while it
    waits for it.  Use the ``a``-prefixed coroutine instead.
    """


class ConfigError(BadOption):
    """A configuration file (``plugins.toml``) is invalid; the message names
    the file, the key and what was expected."""
