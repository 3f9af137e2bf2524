"""pynng's public surface on top of purenng: ``import purenng.compat.pynng as pynng``.

Programs written for pynng 0.9 run unchanged against this module: the same
class names (``Pair0`` ... ``Bus0``, ``Socket``, ``Context``, ``Dialer``,
``Listener``, ``Pipe``, ``Message``, ``TLSConfig``), the same constructor
keywords, the same attribute options in pynng's units, the same exception
names, and the same blocking, ``asyncio`` (and, where purenng supports it,
trio) behaviour.  ``install()`` makes a plain ``import pynng`` resolve here.

Rules:

* **Units.** Every duration is an ``int`` of milliseconds, as in pynng: a
  negative timeout means "forever" and reads back as ``-1``; a value that is
  not a whole number raises ``ValueError`` as pynng does.  purenng's own API
  uses seconds; the conversion happens only here.
* **Names.** pynng's option attributes map onto purenng's options:
  ``recv_buffer_size`` is ``recv_buffer``, ``send_buffer_size`` is
  ``send_buffer``, the others keep their names.  An option the socket does
  not have raises :class:`NotSupported` (as NNG's ``ENOTSUP``), a bad value
  :class:`InvalidOperation`, a read-only one :class:`ReadOnly`.
* **Errors.** Every purenng error crossing this module is translated into
  the pynng-named class (``purenng.Timeout`` -> :class:`Timeout`,
  ``purenng.BadAddress`` -> :class:`AddressInvalid` ...).  Each compat class
  derives from :class:`NNGException` *and* from the matching purenng error
  (and hence from ``purenng.Error``), so ``except pynng.Timeout``,
  ``except purenng.Timeout`` and ``except TimeoutError`` all catch it.  The
  ``errno`` attribute holds NNG's error number, as pynng's does.
* **Loops.** pynng sockets are driven by NNG's own threads, so a pynng
  program may call blocking methods (``dial``, ``send``, ``recv``) from inside
  a coroutine.  To keep that working, a compat socket always lives on
  purenng's background loop, even when it is created inside a running
  ``asyncio`` loop; ``asend``/``arecv`` reach it from any loop.
* **Objects.** Pipes, dialers and listeners are wrapped once and the
  wrappers are reused, so ``msg.pipe is sock.pipes[0]`` holds as in pynng.
  The purenng object behind each wrapper is its ``socket`` / ``pipe`` /
  ``dialer`` / ``listener`` / ``context`` attribute (pynng exposes the
  matching NNG handle under the same names).

Theory of operation: a compat :class:`Socket` owns one purenng socket.  It
registers a single pipe-event callback with it (on the loop, before any
dial or listen) that maintains the pipe table and runs pynng's pre-connect,
post-connect and post-remove callbacks with a compat :class:`Pipe`.  Sends
and receives call the purenng socket directly; only the exception path does
extra work.

Not provided: ``pynng.lib`` / ``pynng.ffi`` (there is no C library),
``recv_fd`` / ``send_fd`` (purenng uses no notification descriptors; they
raise :class:`NotSupported`), and certificate revocation lists in
:class:`TLSConfig` (``crl_string`` raises :class:`NotSupported`).
:func:`device` is an addition (pynng 0.9 has none); it forwards to
:func:`purenng.device` and needs ``raw`` purenng sockets.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno as _errno
import logging
import os
import socket as _socket
import struct
import sys
import threading
import types
import urllib.parse
import weakref
from typing import TYPE_CHECKING, Any, ClassVar, Literal, NoReturn, Self

from ..core import errors as _err

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable
    from types import TracebackType

    from ..core.context import Context as CoreContext
    from ..core.endpoint import Dialer as CoreDialer
    from ..core.endpoint import Listener as CoreListener
    from ..core.message import Message as CoreMessage
    from ..core.pipe import Pipe as CorePipe
    from ..core.pipe import PipeEvent
    from ..core.socket import Socket as CoreSocket
    from ..core.socket_classes import Sub0 as CoreSub0

#: The pynng release whose API this module presents.
PYNNG_API_VERSION = "0.9.0"
__version__ = PYNNG_API_VERSION + "+purenng"

log: logging.Logger = logging.getLogger("purenng.compat.pynng")

__all__ = [
    "AddressInUse",
    "AddressInvalid",
    "AlreadyExists",
    "Ambiguous",
    "AuthenticationError",
    "BadState",
    "BadType",
    "Bus0",
    "Busy",
    "Canceled",
    "Closed",
    "ConnectionAborted",
    "ConnectionRefused",
    "ConnectionReset",
    "Context",
    "CryptoError",
    "DestinationUnreachable",
    "Dialer",
    "Internal",
    "Interrupted",
    "InvalidOperation",
    "Listener",
    "Message",
    "MessageStateError",
    "MessageTooLarge",
    "NNGException",
    "NoArgument",
    "NoEntry",
    "NoMemory",
    "NotSupported",
    "OutOfFiles",
    "OutOfSpace",
    "Pair0",
    "Pair1",
    "PermissionDenied",
    "Pipe",
    "ProtocolError",
    "Pub0",
    "Pull0",
    "Push0",
    "ReadOnly",
    "Rep0",
    "Req0",
    "Respondent0",
    "Socket",
    "Sub0",
    "Surveyor0",
    "TLSConfig",
    "Timeout",
    "TryAgain",
    "WriteOnly",
    "check_err",
    "device",
    "install",
]


# =====================================================================
# Exceptions
# =====================================================================


class NNGException(_err.Error):
    """The base of every pynng-named exception.

    Args:
        msg: The message.
        errno: NNG's error number (``pynng.Timeout`` is 5, as ``NNG_ETIMEDOUT``).
    """

    #: NNG's error number for the class (0 for the base class).
    nng_errno: ClassVar[int] = 0
    #: NNG's text for the error (``nng_strerror``).
    nng_text: ClassVar[str] = "Unknown error"

    errno: Any

    def __init__(self, msg: str, errno: int | None = None) -> None:
        super().__init__(msg)
        self.errno = self.nng_errno if errno is None else errno


class Interrupted(NNGException):
    """Interrupted (NNG error 1)."""

    nng_errno = 1
    nng_text = "Interrupted"


class NoMemory(NNGException):
    """Out of memory (NNG error 2)."""

    nng_errno = 2
    nng_text = "Out of memory"


class InvalidOperation(NNGException, _err.BadOption):
    """Invalid argument (NNG error 3). Also a ``purenng.BadOption``."""

    nng_errno = 3
    nng_text = "Invalid argument"


class Busy(NNGException):
    """Resource busy (NNG error 4)."""

    nng_errno = 4
    nng_text = "Resource busy"


class Timeout(NNGException, _err.Timeout):
    """Timed out (NNG error 5). Also a ``purenng.Timeout``."""

    nng_errno = 5
    nng_text = "Timed out"


class ConnectionRefused(NNGException, _err.ConnectionRefused):
    """Connection refused (NNG error 6). Also a ``purenng.ConnectionRefused``."""

    nng_errno = 6
    nng_text = "Connection refused"


class Closed(NNGException, _err.Closed):
    """Object closed (NNG error 7). Also a ``purenng.Closed``."""

    nng_errno = 7
    nng_text = "Object closed"


class TryAgain(NNGException, _err.TryAgain):
    """Try again (NNG error 8). Also a ``purenng.TryAgain``."""

    nng_errno = 8
    nng_text = "Try again"


class NotSupported(NNGException, _err.NotSupported):
    """Not supported (NNG error 9). Also a ``purenng.NotSupported``."""

    nng_errno = 9
    nng_text = "Not supported"


class AddressInUse(NNGException, _err.AddressInUse):
    """Address in use (NNG error 10). Also a ``purenng.AddressInUse``."""

    nng_errno = 10
    nng_text = "Address in use"


class BadState(NNGException, _err.BadState):
    """Incorrect state (NNG error 11). Also a ``purenng.BadState``."""

    nng_errno = 11
    nng_text = "Incorrect state"


class NoEntry(NNGException):
    """Entry not found (NNG error 12)."""

    nng_errno = 12
    nng_text = "Entry not found"


class ProtocolError(NNGException, _err.ProtocolError):
    """Protocol error (NNG error 13). Also a ``purenng.ProtocolError``."""

    nng_errno = 13
    nng_text = "Protocol error"


class DestinationUnreachable(NNGException):
    """Destination unreachable (NNG error 14)."""

    nng_errno = 14
    nng_text = "Destination unreachable"


class AddressInvalid(NNGException, _err.BadAddress):
    """Address invalid (NNG error 15). Also a ``purenng.BadAddress``."""

    nng_errno = 15
    nng_text = "Address invalid"


class PermissionDenied(NNGException):
    """Permission denied (NNG error 16)."""

    nng_errno = 16
    nng_text = "Permission denied"


class MessageTooLarge(NNGException, _err.MessageTooLarge):
    """Message too large (NNG error 17). Also a ``purenng.MessageTooLarge``."""

    nng_errno = 17
    nng_text = "Message too large"


class ConnectionAborted(NNGException):
    """Connection aborted (NNG error 18)."""

    nng_errno = 18
    nng_text = "Connection aborted"


class ConnectionReset(NNGException, _err.ConnectionReset):
    """Connection reset (NNG error 19). Also a ``purenng.ConnectionReset``."""

    nng_errno = 19
    nng_text = "Connection reset"


class Canceled(NNGException):
    """Operation canceled (NNG error 20)."""

    nng_errno = 20
    nng_text = "Operation canceled"


class OutOfFiles(NNGException):
    """Out of files (NNG error 21)."""

    nng_errno = 21
    nng_text = "Out of files"


class OutOfSpace(NNGException):
    """Out of space (NNG error 22)."""

    nng_errno = 22
    nng_text = "Out of space"


class AlreadyExists(NNGException):
    """Resource already exists (NNG error 23)."""

    nng_errno = 23
    nng_text = "Resource already exists"


class ReadOnly(NNGException):
    """Read only resource (NNG error 24)."""

    nng_errno = 24
    nng_text = "Read only resource"


class WriteOnly(NNGException):
    """Write only resource (NNG error 25)."""

    nng_errno = 25
    nng_text = "Write only resource"


class CryptoError(NNGException):
    """Cryptographic error (NNG error 26)."""

    nng_errno = 26
    nng_text = "Cryptographic error"


class AuthenticationError(NNGException):
    """Peer could not be authenticated (NNG error 27)."""

    nng_errno = 27
    nng_text = "Peer could not be authenticated"


class NoArgument(NNGException):
    """Option requires argument (NNG error 28)."""

    nng_errno = 28
    nng_text = "Option requires argument"


class Ambiguous(NNGException):
    """Ambiguous option (NNG error 29)."""

    nng_errno = 29
    nng_text = "Ambiguous option"


class BadType(NNGException):
    """Incorrect type (NNG error 30)."""

    nng_errno = 30
    nng_text = "Incorrect type"


class Internal(NNGException):
    """Internal error detected (NNG error 1000)."""

    nng_errno = 1000
    nng_text = "Internal error detected"


class MessageStateError(Exception):
    """A :class:`Message` was used in an invalid way (sent twice)."""


#: NNG error number -> class, as ``pynng.exceptions.EXCEPTION_MAP``.
EXCEPTION_MAP: dict[int, type[NNGException]] = {
    c.nng_errno: c
    for c in (
        Interrupted,
        NoMemory,
        InvalidOperation,
        Busy,
        Timeout,
        ConnectionRefused,
        Closed,
        TryAgain,
        NotSupported,
        AddressInUse,
        BadState,
        NoEntry,
        ProtocolError,
        DestinationUnreachable,
        AddressInvalid,
        PermissionDenied,
        MessageTooLarge,
        ConnectionAborted,
        ConnectionReset,
        Canceled,
        OutOfFiles,
        OutOfSpace,
        AlreadyExists,
        ReadOnly,
        WriteOnly,
        CryptoError,
        AuthenticationError,
        NoArgument,
        Ambiguous,
        BadType,
        Internal,
    )
}


def check_err(err: int) -> None:
    """Raise the pynng exception for the NNG error number ``err``; 0 is success."""
    if not err:
        return
    cls = EXCEPTION_MAP.get(err, NNGException)
    raise cls(cls.nng_text if cls is not NNGException else f"Unknown error #{err}", err)


# purenng error -> pynng class.  The most derived purenng class wins (the
# lookup walks the MRO), so WrongThread, a BadState, becomes BadState, and
# ConfigError, a BadOption, becomes InvalidOperation.
_FROM_PURENNG: dict[type[BaseException], type[NNGException]] = {
    _err.Timeout: Timeout,
    _err.Closed: Closed,
    _err.TryAgain: TryAgain,
    _err.ConnectionRefused: ConnectionRefused,
    _err.ConnectionReset: ConnectionReset,
    _err.AddressInUse: AddressInUse,
    _err.BadAddress: AddressInvalid,
    _err.BadOption: InvalidOperation,
    _err.BadState: BadState,
    _err.ProtocolError: ProtocolError,
    _err.MessageTooLarge: MessageTooLarge,
    _err.NotSupported: NotSupported,
    _err.Error: NNGException,
}

# OS errors that reach the caller unwrapped (an ipc listen in a missing
# directory, a host name that does not resolve...), by errno.
_FROM_ERRNO: dict[int, type[NNGException]] = {
    _errno.ENOENT: NoEntry,
    _errno.ENOTDIR: NoEntry,
    _errno.EACCES: PermissionDenied,
    _errno.EPERM: PermissionDenied,
    _errno.EADDRINUSE: AddressInUse,
    _errno.EADDRNOTAVAIL: AddressInvalid,
    _errno.ECONNREFUSED: ConnectionRefused,
    _errno.ECONNRESET: ConnectionReset,
    _errno.ECONNABORTED: ConnectionAborted,
    _errno.EHOSTUNREACH: DestinationUnreachable,
    _errno.ENETUNREACH: DestinationUnreachable,
    _errno.ETIMEDOUT: Timeout,
    _errno.EMFILE: OutOfFiles,
    _errno.ENFILE: OutOfFiles,
    _errno.ENOSPC: OutOfSpace,
    _errno.ENOMEM: NoMemory,
    _errno.EEXIST: AlreadyExists,
    _errno.EINTR: Interrupted,
}


def _translate(exc: BaseException) -> BaseException:
    """The pynng-named exception for ``exc`` (``exc`` itself if none fits)."""
    if isinstance(exc, NNGException):
        return exc
    cls: type[NNGException] | None = None
    if isinstance(exc, _err.Error):
        for base in type(exc).__mro__:
            cls = _FROM_PURENNG.get(base)
            if cls is not None:
                break
    elif isinstance(exc, _socket.gaierror):
        cls = AddressInvalid
    elif isinstance(exc, OSError) and exc.errno is not None:
        cls = _FROM_ERRNO.get(exc.errno)
    if cls is None:
        return exc
    return cls(str(exc) or cls.nng_text, cls.nng_errno)


class _Translate:
    """``with _nng_errors:`` re-raises purenng errors under pynng's names."""

    __slots__ = ()

    def __enter__(self) -> None:
        return None

    def __exit__(
        self,
        typ: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> Literal[False]:
        if exc is not None:
            new = _translate(exc)
            if new is not exc:
                raise new from exc
        return False


_nng_errors = _Translate()


# =====================================================================
# Option plumbing: pynng units <-> purenng units
# =====================================================================


def _whole(value: Any) -> int:
    """pynng's check for integer options: a number equal to an int."""
    try:
        as_int = int(value)
    except OverflowError:  # inf: not a whole number either
        raise ValueError(f"Invalid value {value} of type {type(value)}.  Expected int.") from None
    if as_int != value:
        raise ValueError(f"Invalid value {value} of type {type(value)}.  Expected int.")
    return as_int


def _seconds(ms: int) -> float:
    try:
        return ms / 1000.0
    except OverflowError:  # more milliseconds than a float holds
        raise InvalidOperation(f"Invalid argument: {ms} ms", InvalidOperation.nng_errno) from None


def _ms_to_timeout(value: Any) -> float | None:
    """Milliseconds (negative: forever) -> purenng seconds (None: forever)."""
    ms = _whole(value)
    return None if ms < 0 else _seconds(ms)


def _ms_to_seconds(value: Any) -> float:
    """Milliseconds -> seconds for durations that have no 'forever'."""
    ms = _whole(value)
    if ms < 0:
        raise InvalidOperation(f"Invalid argument: {value} ms", InvalidOperation.nng_errno)
    return _seconds(ms)


def _to_ms(seconds: float | None) -> int:
    """purenng seconds -> pynng milliseconds (-1: forever)."""
    if seconds is None:
        return -1
    return round(seconds * 1000)


#: How an option's value converts, per kind: (to purenng, from purenng).
_KINDS: dict[str, tuple[Callable[[Any], Any], Callable[[Any], Any]]] = {
    "timeout": (_ms_to_timeout, _to_ms),
    "ms": (_ms_to_seconds, _to_ms),
    "int": (_whole, lambda v: v),
    "bool": (lambda v: v, lambda v: v),
    "str": (lambda v: v, lambda v: v),
}


class _Option:
    """A data descriptor mapping one pynng attribute onto a purenng option.

    The owner class provides ``_get_option(name)`` and
    ``_set_option(name, value)`` in purenng's names and units.
    """

    def __init__(self, core_name: str, kind: str = "int", *, readonly: bool = False) -> None:
        self.core_name = core_name
        self.to_core: Callable[[Any], Any]
        self.from_core: Callable[[Any], Any]
        self.to_core, self.from_core = _KINDS[kind]
        self.readonly = readonly
        self.attr: str = core_name

    def __set_name__(self, owner: type, name: str) -> None:
        self.attr = name

    def __get__(self, instance: Any, owner: type | None = None) -> Any:
        if instance is None:
            return self
        return self.from_core(instance._get_option(self.core_name))

    def __set__(self, instance: Any, value: Any) -> None:
        if self.readonly:
            raise ReadOnly(f"option {self.attr!r} is read-only", ReadOnly.nng_errno)
        instance._set_option(self.core_name, self.to_core(value))


class _Unavailable:
    """An attribute pynng has that purenng cannot offer: raises NotSupported."""

    def __init__(self, why: str) -> None:
        self.why = why

    def __set_name__(self, owner: type, name: str) -> None:
        self.attr = name

    def __get__(self, instance: Any, owner: type | None = None) -> Any:
        if instance is None:
            return self
        raise NotSupported(f"{self.attr}: {self.why}", NotSupported.nng_errno)

    def __set__(self, instance: Any, value: Any) -> None:
        raise NotSupported(f"{self.attr}: {self.why}", NotSupported.nng_errno)


def _ensure_can_send(data: Any) -> None:
    """pynng's friendly refusal of ``str`` payloads."""
    if isinstance(data, str):
        raise ValueError('Cannot send type str. Maybe you left out a ".encode()" somewhere?')


def _on_loop(loop: asyncio.AbstractEventLoop) -> bool:
    return asyncio._get_running_loop() is loop


# =====================================================================
# Socket addresses (pynng.sockaddr)
# =====================================================================

#: NNG's address families (``NNG_AF_*``).
AF_UNSPEC, AF_INPROC, AF_IPC, AF_INET, AF_INET6, AF_ZT, AF_ABSTRACT = range(7)


class SockAddr:
    """An address as pynng reports one (``pynng.sockaddr.SockAddr``).

    ``str()`` gives the readable form; ``family`` is NNG's family number.
    """

    family: int = AF_UNSPEC
    type_to_str: ClassVar[dict[int, str]] = {
        AF_UNSPEC: "Unspecified",
        AF_INPROC: "inproc",
        AF_IPC: "ipc",
        AF_INET: "inet",
        AF_INET6: "inetv6",
        AF_ZT: "zerotier",
        AF_ABSTRACT: "abstract",
    }

    @property
    def family_as_str(self) -> str:
        """The family's name (``"inet"``, ``"ipc"`` ...)."""
        return self.type_to_str[self.family]

    def __repr__(self) -> str:
        return f"nng_sockaddr {{.family = {self.family}}}"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SockAddr):
            return NotImplemented
        return self.family == other.family and str(self) == str(other)

    def __hash__(self) -> int:
        return hash((self.family, str(self)))


class InprocAddr(SockAddr):
    """An inproc address: its name is the whole URL, as NNG reports it."""

    family = AF_INPROC

    def __init__(self, name: str) -> None:
        self._name = name

    @property
    def name_bytes(self) -> bytes:
        return self._name.encode()

    @property
    def name(self) -> str:
        return self._name

    def __str__(self) -> str:
        return self._name


class IPCAddr(SockAddr):
    """An ipc (UNIX domain socket) path."""

    family = AF_IPC

    def __init__(self, path: str) -> None:
        self._path = path

    @property
    def path_bytes(self) -> bytes:
        return self._path.encode()

    @property
    def path(self) -> str:
        return self._path

    def __str__(self) -> str:
        return self._path


class InAddr(SockAddr):
    """An IPv4 address.  ``port`` and ``addr`` are in network byte order, as
    pynng gives them (``socket.ntohs(a.port)`` is the port number)."""

    family = AF_INET

    def __init__(self, host: str, port: int) -> None:
        self._host = host
        self._port = port

    @property
    def port(self) -> int:
        """The port, big-endian style (as NNG stores it)."""
        return _socket.htons(self._port)

    @property
    def addr(self) -> int:
        """The address as NNG stores it (network order in a native int)."""
        value: int = struct.unpack("I", _socket.inet_aton(self._host))[0]
        return value

    def __str__(self) -> str:
        return f"{self._host}:{self._port}"


class In6Addr(SockAddr):
    """An IPv6 address; ``port`` in network byte order, ``addr`` 16 bytes."""

    family = AF_INET6

    def __init__(self, host: str, port: int) -> None:
        self._host = host
        self._port = port

    @property
    def port(self) -> int:
        return _socket.htons(self._port)

    @property
    def addr(self) -> bytes:
        return _socket.inet_pton(_socket.AF_INET6, self._host.split("%", 1)[0])

    def __str__(self) -> str:
        return f"[{self._host}]:{self._port}"


class AbstractAddr(SockAddr):
    """A Linux abstract-namespace socket name."""

    family = AF_ABSTRACT

    def __init__(self, name: bytes) -> None:
        self._name = name

    @property
    def name_bytes(self) -> bytes:
        return self._name

    @property
    def name(self) -> str:
        try:
            return urllib.parse.unquote(self._name.decode())
        except UnicodeDecodeError:
            return repr(self._name)

    def __str__(self) -> str:
        try:
            return "abstract://" + urllib.parse.quote(self._name.decode())
        except UnicodeDecodeError:
            return "abstract://" + self._name.hex()


def _url_parts(url: str | None) -> tuple[str, str]:
    if not url or "://" not in url:
        return "", ""
    scheme, rest = url.split("://", 1)
    return scheme.lower(), rest


def _sockaddr(value: Any, url: str | None) -> SockAddr:
    """A pynng address object for a purenng address (``value``) on ``url``.

    tcp addresses come as ``(host, port, ...)`` tuples; inproc, ipc and
    abstract addresses are taken from the URL, because NNG reports the bound
    path (or name) on both ends of such a connection.
    """
    if isinstance(value, tuple) and len(value) >= 2 and isinstance(value[0], str):
        host, port = value[0], int(value[1])
        return In6Addr(host, port) if ":" in host else InAddr(host, port)
    scheme, rest = _url_parts(url)
    if scheme == "inproc":
        return InprocAddr(url or "")
    if scheme in ("ipc", "unix"):
        return IPCAddr(value if isinstance(value, str) and value else rest)
    if scheme == "abstract":
        return AbstractAddr(urllib.parse.unquote_to_bytes(rest))
    return SockAddr()


# =====================================================================
# TLS configuration
# =====================================================================


class TLSConfig:
    """pynng's TLS configuration object.

    It keeps pynng's constructor and checks.  Given to a socket, dialer or
    listener as ``tls_config`` it becomes a :class:`purenng.TLSConfig` for
    the ``tls+tcp://`` and ``wss://`` endpoints.
    """

    MODE_CLIENT = 0
    MODE_SERVER = 1
    AUTH_MODE_NONE = 0
    AUTH_MODE_OPTIONAL = 1
    AUTH_MODE_REQUIRED = 2

    def __init__(
        self,
        mode: int,
        server_name: str | None = None,
        ca_string: str | None = None,
        own_key_string: str | None = None,
        own_cert_string: str | None = None,
        auth_mode: int | None = None,
        ca_files: str | list[str] | None = None,
        cert_key_file: str | None = None,
        passwd: str | None = None,
    ) -> None:
        if ca_string and ca_files:
            raise ValueError("Cannot set both ca_string and ca_files!")
        if (own_cert_string or own_key_string) and cert_key_file:
            raise ValueError("Cannot set both own_{key,cert}_string an cert_key_file!")
        if bool(own_cert_string) != bool(own_key_string):
            raise ValueError("own_key_string and own_cert_string must be both set or unset")
        if mode not in (self.MODE_CLIENT, self.MODE_SERVER):
            raise InvalidOperation(f"bad TLS mode {mode!r}", InvalidOperation.nng_errno)
        self.mode = mode
        self.server_name: str | None = None
        self.ca_string: str | None = None
        self.crl_string: str | None = None
        self.own_cert_string: str | None = None
        self.own_key_string: str | None = None
        self.auth_mode: int | None = None
        self.ca_files: list[str] = []
        self.cert_key_file: str | None = None
        self.passwd = passwd
        if server_name:
            self.set_server_name(server_name)
        if ca_string:
            self.set_ca_chain(ca_string)
        if own_key_string and own_cert_string:
            self.set_own_cert(own_cert_string, own_key_string, passwd)
        if auth_mode:
            self.set_auth_mode(auth_mode)
        for f in [ca_files] if isinstance(ca_files, str) else list(ca_files or ()):
            self.add_ca_file(f)
        if cert_key_file:
            self.set_cert_key_file(cert_key_file, passwd)

    def set_server_name(self, server_name: str) -> None:
        """The name the server's certificate must carry (client side)."""
        self.server_name = server_name

    def set_ca_chain(self, chain: str, crl: str | None = None) -> None:
        """Trust the PEM certificate chain ``chain``."""
        self.ca_string = chain
        self.crl_string = crl

    def set_own_cert(self, cert: str, key: str, passwd: str | None = None) -> None:
        """Present the PEM certificate ``cert`` with its private ``key``."""
        self.own_cert_string = cert
        self.own_key_string = key
        self.passwd = passwd

    def set_auth_mode(self, mode: int) -> None:
        """``AUTH_MODE_NONE``, ``AUTH_MODE_OPTIONAL`` or ``AUTH_MODE_REQUIRED``."""
        if mode not in (self.AUTH_MODE_NONE, self.AUTH_MODE_OPTIONAL, self.AUTH_MODE_REQUIRED):
            raise InvalidOperation(f"bad TLS auth mode {mode!r}", InvalidOperation.nng_errno)
        self.auth_mode = mode

    def add_ca_file(self, path: str) -> None:
        """Trust the certificates in the PEM file ``path``."""
        self.ca_files.append(path)

    def set_cert_key_file(self, path: str, passwd: str | None = None) -> None:
        """Present the certificate and key in the PEM file ``path``."""
        self.cert_key_file = path
        self.passwd = passwd

    def _to_purenng(self) -> Any:
        """The equivalent :class:`purenng.tls_config.TLSConfig`.

        purenng picks the TLS role from the endpoint (a listener is the
        server), so ``mode`` needs no counterpart.  Several ``ca_files`` are
        read and joined into one PEM bundle.

        Raises:
            NotSupported: a CRL was given.
            InvalidOperation: a field purenng rejects.
        """
        from ..tls_config import TLSConfig as PureTLSConfig

        if self.crl_string is not None:
            raise NotSupported("certificate revocation lists", NotSupported.nng_errno)
        modes = {
            self.AUTH_MODE_NONE: "none",
            self.AUTH_MODE_OPTIONAL: "optional",
            self.AUTH_MODE_REQUIRED: "required",
        }
        kwargs: dict[str, Any] = {"server_name": self.server_name}
        if self.auth_mode is not None:
            kwargs["auth_mode"] = modes[self.auth_mode]
        if self.ca_string:
            kwargs["ca_data"] = self.ca_string
        elif len(self.ca_files) == 1:
            kwargs["ca_file"] = self.ca_files[0]
        elif self.ca_files:
            bundle = []
            for path in self.ca_files:
                if not isinstance(path, str | bytes | os.PathLike):
                    # open() would take an int as a file descriptor, and close it.
                    raise ValueError(f"ca_files: expected file names, got {path!r}")
                try:
                    with open(path, "rb") as f:
                        bundle.append(f.read())
                except (OSError, ValueError) as exc:
                    err = _translate(exc)
                    if not isinstance(err, NNGException):
                        err = InvalidOperation(
                            f"ca_files: cannot read {path!r}: {exc}", InvalidOperation.nng_errno
                        )
                    raise err from exc
            kwargs["ca_data"] = b"\n".join(bundle)
        if self.own_cert_string:
            kwargs["cert_data"] = self.own_cert_string
            kwargs["key_data"] = self.own_key_string
        if self.cert_key_file:
            kwargs["cert_file"] = self.cert_key_file  # holds the key too, as NNG's
        if self.passwd is not None:
            kwargs["key_password"] = self.passwd
        with _nng_errors:
            return PureTLSConfig(**kwargs)


# =====================================================================
# Messages and pipes
# =====================================================================


class Message:
    """A message with the pipe it came from or should go to (pynng's Message).

    Args:
        data: The body (any bytes-like object; it is copied, messages are
            immutable as in pynng).
        pipe: A :class:`Pipe` to send on (PAIR1 polyamorous), or None.

    Raises:
        TypeError: ``data`` is a ``str``.
        ValueError: ``pipe`` is not a :class:`Pipe`.
    """

    def __init__(self, data: Any, pipe: Pipe | None = None) -> None:
        if isinstance(data, str):
            raise TypeError("Message data must be bytes-like, not str")
        self._data: bytes = data if type(data) is bytes else bytes(data)
        self._mem_freed = False
        self._mem_freed_lock = threading.Lock()
        self._pipe: Pipe | None = None
        if pipe is not None:
            self.pipe = pipe

    @property
    def pipe(self) -> Pipe | None:
        """The pipe the message came from (received) or goes to (sent)."""
        return self._pipe

    @pipe.setter
    def pipe(self, pipe: Pipe) -> None:
        if not isinstance(pipe, Pipe):
            raise ValueError(f"pipe must be type Pipe, not {type(pipe)}")
        self._pipe = pipe

    @property
    def _buffer(self) -> memoryview | None:
        """A read-only view of the body (None once the message was sent)."""
        if self._mem_freed:
            return None
        return memoryview(self._data)

    @property
    def bytes(self) -> bytes:
        """The body."""
        return self._data

    def _claim(self) -> CoreMessage:
        """The purenng message to send; a message is sent at most once."""
        from ..core.message import Message as CoreMessage

        with self._mem_freed_lock:
            if self._mem_freed:
                raise MessageStateError("Attempted to send the same message more than once.")
            pipe = self._pipe
            return CoreMessage(self._data, pipe=pipe._pipe if pipe is not None else None)

    def _sent(self) -> None:
        with self._mem_freed_lock:
            self._mem_freed = True

    def __repr__(self) -> str:
        shown = self._data[:32] + (b"..." if len(self._data) > 32 else b"")
        pipe = self._pipe.id if self._pipe is not None else None
        return f"<pynng-compat Message {shown!r} pipe={pipe}>"


class Pipe:
    """One connection of a socket (pynng's Pipe).  Made by the socket only.

    Attributes:
        socket: The compat :class:`Socket` it belongs to.
        pipe: The purenng pipe.
    """

    def __init__(self, pipe: CorePipe, socket: Socket) -> None:
        self.pipe = pipe
        self._pipe = pipe
        self.socket = socket
        self._closed = False

    @property
    def id(self) -> int:
        return self._pipe.id

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called on this pipe."""
        return self._closed

    @property
    def dialer(self) -> Dialer:
        """The dialer that made the pipe.

        Raises:
            TypeError: the pipe was accepted by a listener.
        """
        d = self._pipe.dialer
        if d is None:
            raise TypeError("This pipe has no associated dialers.")
        return self.socket._wrap_dialer(d)

    @property
    def listener(self) -> Listener:
        """The listener that accepted the pipe.

        Raises:
            TypeError: the pipe was dialed.
        """
        lst = self._pipe.listener
        if lst is None:
            raise TypeError("This pipe has no associated listeners.")
        return self.socket._wrap_listener(lst)

    @property
    def url(self) -> str:
        """The URL of the dialer or listener the pipe belongs to."""
        ep = self._pipe.dialer or self._pipe.listener
        return str(ep.url) if ep is not None else ""

    @property
    def local_address(self) -> Any:
        return _sockaddr(self._pipe.local_address, self.url)

    @property
    def remote_address(self) -> Any:
        return _sockaddr(self._pipe.remote_address, self.url)

    @property
    def protocol(self) -> int:
        return int(self.socket.protocol)

    @property
    def protocol_name(self) -> str:
        return str(self.socket.protocol_name)

    @property
    def peer(self) -> int:
        return int(self._pipe.peer_id)

    @property
    def peer_name(self) -> str:
        return str(self.socket.peer_name)

    def _endpoint_option(self, name: str) -> Any:
        ep = self._pipe.dialer or self._pipe.listener
        if ep is None or name not in ep.options:
            raise NotSupported(f"pipe option {name!r}", NotSupported.nng_errno)
        return ep.options[name]

    @property
    def tcp_nodelay(self) -> bool:
        return bool(self._endpoint_option("tcp_nodelay"))

    @property
    def tcp_keepalive(self) -> bool:
        return bool(self._endpoint_option("tcp_keepalive"))

    def close(self) -> None:
        """Close the pipe (from any thread, callbacks included)."""
        self._closed = True
        pipe = self._pipe
        loop = self.socket._sock.loop
        if _on_loop(loop) or loop.is_closed():
            pipe.close()
        else:
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(pipe.close)

    def send(self, data: Any) -> None:
        """Send ``data`` on this pipe (through the socket, as pynng)."""
        _ensure_can_send(data)
        self.socket.send_msg(Message(data, self))

    def send_msg(self, msg: Message) -> None:
        """Send ``msg`` on this pipe."""
        msg.pipe = self
        self.socket.send_msg(msg)

    async def asend(self, data: Any) -> None:
        """Coroutine form of :meth:`send`."""
        _ensure_can_send(data)
        await self.socket.asend_msg(Message(data, self))

    async def asend_msg(self, msg: Message) -> None:
        """Coroutine form of :meth:`send_msg`."""
        msg.pipe = self
        await self.socket.asend_msg(msg)

    def __repr__(self) -> str:
        return f"<pynng-compat Pipe id={self.id} {self.url}>"


# =====================================================================
# Dialers and listeners
# =====================================================================


class _Endpoint:
    """What dialers and listeners share: id, url, options, close."""

    _endpoint: Any

    def __init__(self, endpoint: Any, socket: Socket) -> None:
        self._endpoint = endpoint
        self.socket = socket

    @property
    def id(self) -> int:
        return int(self._endpoint.id)

    @property
    def url(self) -> str:
        return str(self._endpoint.url)

    @property
    def peer(self) -> int:
        return int(self.socket.peer)

    @property
    def peer_name(self) -> str:
        return str(self.socket.peer_name)

    def _get_option(self, name: str) -> Any:
        opts = self._endpoint.options
        if name not in opts:
            raise NotSupported(f"option {name!r} on this endpoint", NotSupported.nng_errno)
        return opts[name]

    def _set_option(self, name: str, value: Any) -> None:
        from ..core.options import SOCKET_OPTIONS, validate

        opts = self._endpoint.options
        if name not in opts:
            raise NotSupported(f"option {name!r} on this endpoint", NotSupported.nng_errno)
        spec = SOCKET_OPTIONS.get(name)
        with _nng_errors:
            opts[name] = validate(spec, value) if spec is not None else value

    reconnect_time_min: _Option = _Option("reconnect_time_min", "ms")
    reconnect_time_max: _Option = _Option("reconnect_time_max", "ms")
    recv_max_size: _Option = _Option("recv_max_size", "int")
    tcp_nodelay: _Option = _Option("tcp_nodelay", "bool")
    tcp_keepalive: _Option = _Option("tcp_keepalive", "bool")
    tls_config: _Unavailable = _Unavailable("TLS is configured on the socket in purenng")
    tls_ca_file: _Unavailable = _Unavailable("TLS is configured on the socket in purenng")
    tls_cert_key_file: _Unavailable = _Unavailable("TLS is configured on the socket in purenng")
    tls_auth_mode: _Unavailable = _Unavailable("TLS is configured on the socket in purenng")
    tls_server_name: _Unavailable = _Unavailable("TLS is configured on the socket in purenng")

    @property
    def local_address(self) -> Any:
        return SockAddr()

    @property
    def remote_address(self) -> Any:
        raise NotSupported("remote_address of an endpoint", NotSupported.nng_errno)

    def _forget(self) -> None:
        raise NotImplementedError

    def close(self) -> None:
        """Close the endpoint (pipes it made live on, as in NNG)."""
        with _nng_errors:
            self._endpoint.close()
        self._forget()

    async def aclose(self) -> None:
        """Close and wait until the endpoint has let go of its address."""
        with _nng_errors:
            await self._endpoint.aclose()
        self._forget()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


class Dialer(_Endpoint):
    """A dialer (pynng's Dialer), returned by :meth:`Socket.dial`.

    Attributes:
        socket: The compat socket.
        dialer: The purenng dialer.
    """

    def __init__(self, dialer: CoreDialer, socket: Socket) -> None:
        super().__init__(dialer, socket)
        self.dialer = dialer

    def _forget(self) -> None:
        self.socket._dialers.pop(self.id, None)

    def __repr__(self) -> str:
        return f"<pynng-compat Dialer id={self.id} {self.url}>"


class Listener(_Endpoint):
    """A listener (pynng's Listener), returned by :meth:`Socket.listen`.

    Attributes:
        socket: The compat socket.
        listener: The purenng listener.
    """

    def __init__(self, listener: CoreListener, socket: Socket) -> None:
        super().__init__(listener, socket)
        self.listener = listener

    @property
    def local_address(self) -> Any:
        """The bound address (with the real port when port 0 was asked for)."""
        return _sockaddr(self._endpoint.local_address, self.url)

    def _forget(self) -> None:
        self.socket._listeners.pop(self.id, None)

    def __repr__(self) -> str:
        return f"<pynng-compat Listener id={self.id} {self.url}>"


# =====================================================================
# Sockets
# =====================================================================


def _core_class(protocol: str) -> Callable[..., CoreSocket]:
    """purenng's socket class for ``protocol`` (``purenng.Sub0`` has ``subscribe``)."""
    from ..core import socket_classes
    from ..core.socket import Socket as CoreSocket

    for name in socket_classes.__all__:
        cls = getattr(socket_classes, name)
        if getattr(cls, "protocol_name", None) == protocol:
            made: Callable[..., CoreSocket] = cls
            return made
    return lambda **options: CoreSocket(protocol, **options)


def _open_core(protocol: str, options: dict[str, Any]) -> CoreSocket:
    """A purenng socket on the background loop, wherever we are called from.

    pynng programs call blocking methods from coroutines; a socket owned by
    the caller's loop would refuse them, so the socket goes to the background
    loop even when an asyncio loop is running here.
    """
    from ..core.loop import background_loop, run_sync

    cls = _core_class(protocol)
    loop = background_loop()
    running = asyncio._get_running_loop()
    with _nng_errors:
        if running is None or running is loop:
            return cls(**options)

        async def make() -> CoreSocket:
            return cls(**options)

        return run_sync(loop, make(), "socket")


def _pipe_event_handler(ref: weakref.ref[Socket]) -> Callable[[CorePipe, PipeEvent], None]:
    """The purenng pipe callback of a compat socket (holds it weakly)."""

    def handler(pipe: CorePipe, event: PipeEvent) -> None:
        sock = ref()
        if sock is not None:
            sock._pipe_event(pipe, str(event))

    return handler


class Socket:
    """A socket with pynng's interface.  Use a subclass (``Pair0`` ...).

    Keyword Args:
        dial: An address to dial after the options are set.
        listen: An address to listen on after the options are set.
        recv_timeout: Receive timeout in ms (negative: forever).
        send_timeout: Send timeout in ms (negative: forever).
        recv_buffer_size: Messages queued for receiving.
        send_buffer_size: Messages queued for sending.
        recv_max_size: Largest message accepted, bytes (0: no limit).
        reconnect_time_min: First redial delay, ms.
        reconnect_time_max: Largest redial delay, ms (0: no back-off).
        opener: A purenng protocol name (``"pair0"``), to open a base
            :class:`Socket` directly (pynng takes an NNG open function).
        block_on_dial: ``block`` for the ``dial`` address (see :meth:`dial`).
        name: The socket's name.
        tls_config: A :class:`TLSConfig`.
        async_backend: Accepted for compatibility; purenng detects the
            async library itself.

    Raises:
        TypeError: a base Socket without ``opener``, or an unknown keyword.
    """

    #: The purenng protocol name a subclass opens.
    _protocol: ClassVar[str | None] = None

    _sock: CoreSocket

    name: _Option = _Option("name", "str")
    raw: _Option = _Option("raw", "bool", readonly=True)
    protocol: _Option = _Option("protocol", "int", readonly=True)
    protocol_name: _Option = _Option("protocol_name", "str", readonly=True)
    peer: _Option = _Option("peer", "int", readonly=True)
    peer_name: _Option = _Option("peer_name", "str", readonly=True)
    recv_buffer_size: _Option = _Option("recv_buffer", "int")
    send_buffer_size: _Option = _Option("send_buffer", "int")
    recv_timeout: _Option = _Option("recv_timeout", "timeout")
    send_timeout: _Option = _Option("send_timeout", "timeout")
    ttl_max: _Option = _Option("ttl_max", "int")
    recv_max_size: _Option = _Option("recv_max_size", "int")
    reconnect_time_min: _Option = _Option("reconnect_time_min", "ms")
    reconnect_time_max: _Option = _Option("reconnect_time_max", "ms")
    tcp_nodelay: _Option = _Option("tcp_nodelay", "bool")
    tcp_keepalive: _Option = _Option("tcp_keepalive", "bool")
    recv_fd: _Unavailable = _Unavailable("purenng has no notification descriptors; use arecv()")
    send_fd: _Unavailable = _Unavailable("purenng has no notification descriptors; use asend()")

    def __init__(
        self,
        *,
        dial: str | None = None,
        listen: str | None = None,
        recv_timeout: int | None = None,
        send_timeout: int | None = None,
        recv_buffer_size: int | None = None,
        send_buffer_size: int | None = None,
        recv_max_size: int | None = None,
        reconnect_time_min: int | None = None,
        reconnect_time_max: int | None = None,
        opener: str | None = None,
        block_on_dial: bool | None = None,
        name: str | None = None,
        tls_config: TLSConfig | None = None,
        async_backend: str | None = None,
        **_protocol_options: Any,
    ) -> None:
        # Keys pynng subclasses add (polyamorous, ...) arrive through
        # _protocol_options from the subclasses only; anything else is a
        # TypeError as in pynng.
        allowed = self._protocol_keywords()
        for key in _protocol_options:
            if key not in allowed:
                raise TypeError(f"Socket.__init__() got an unexpected keyword argument {key!r}")
        protocol = opener if opener is not None else self._protocol
        if protocol is None:
            raise TypeError("Cannot directly instantiate a Socket.  Try a subclass.")
        if not isinstance(protocol, str):
            raise TypeError("opener must be a purenng protocol name such as 'pair0'")
        self._async_backend = async_backend
        self._pipes: dict[int, Pipe] = {}
        self._dialers: dict[int, Dialer] = {}
        self._listeners: dict[int, Listener] = {}
        self._on_pre_pipe_add: list[Callable[[Pipe], Any]] = []
        self._on_post_pipe_add: list[Callable[[Pipe], Any]] = []
        self._on_post_pipe_remove: list[Callable[[Pipe], Any]] = []
        self._pipe_notify_lock = threading.RLock()
        self._sock = _open_core(protocol, dict(_protocol_options))
        try:
            # Before any dial or listen, so that no pipe escapes the table.
            self._sock.on_pipe_event(_pipe_event_handler(weakref.ref(self)))
            if tls_config is not None:
                self.tls_config = tls_config
            for attr, value in (
                ("recv_timeout", recv_timeout),
                ("send_timeout", send_timeout),
                ("recv_max_size", recv_max_size),
                ("reconnect_time_min", reconnect_time_min),
                ("reconnect_time_max", reconnect_time_max),
                ("recv_buffer_size", recv_buffer_size),
                ("send_buffer_size", send_buffer_size),
                ("name", name),
            ):
                if value is not None:
                    setattr(self, attr, value)
            self._connect(dial, listen, block_on_dial)
        except BaseException:
            self.close()
            raise

    @classmethod
    def _protocol_keywords(cls) -> frozenset[str]:
        """Constructor keywords a subclass passes to the purenng socket."""
        return frozenset()

    def _connect(self, dial: str | None, listen: str | None, block: bool | None) -> None:
        """The constructor's ``listen`` then ``dial``."""
        if listen is not None:
            self.listen(listen)
        if dial is not None:
            self.dial(dial, block=block)

    # ---------------------------------------------------------- options

    @property
    def socket(self) -> CoreSocket:
        """The purenng socket behind this one."""
        return self._sock

    def _get_option(self, name: str) -> Any:
        sock = self._sock
        proto = sock.protocol_cls
        if name == "raw":
            return sock.raw
        if name == "protocol":
            return proto.self_id
        if name == "peer":
            return proto.peer_id
        if name == "protocol_name":
            return proto.self_name
        if name == "peer_name":
            return proto.peer_name
        opts = sock.options
        if name in opts:
            value = opts[name]
            if name == "name" and not value:
                return str(sock.id)  # NNG names a socket by its id
            return value
        try:
            return sock._spec(name).default
        except _err.BadOption:
            raise NotSupported(
                f"{proto.name} sockets have no option {name!r}", NotSupported.nng_errno
            ) from None

    def _set_option(self, name: str, value: Any) -> None:
        sock = self._sock
        if name not in sock.options:
            try:
                sock._spec(name)
            except _err.BadOption:
                raise NotSupported(
                    f"{sock.protocol_cls.name} sockets have no option {name!r}",
                    NotSupported.nng_errno,
                ) from None
        if sock.closed:
            raise Closed("the socket is closed", Closed.nng_errno)
        with _nng_errors:
            setattr(sock, name, value)

    @property
    def tls_config(self) -> NoReturn:
        raise WriteOnly("tls_config is write-only", WriteOnly.nng_errno)

    @tls_config.setter
    def tls_config(self, value: TLSConfig) -> None:
        if not isinstance(value, TLSConfig):
            raise ValueError(f"Invalid value {value} of type {type(value)}.  Expected TLSConfig.")
        self._set_option("tls_config", value._to_purenng())

    # ---------------------------------------------------------- endpoints

    def dial(self, address: str, *, block: bool | None = None) -> Dialer:
        """Dial ``address``.

        Args:
            address: The URL.
            block: True: wait for the connection and raise its error.
                False: connect in the background, retrying.  None (default):
                try once; if that is refused, log it and go on in the
                background (pynng's behaviour).

        Raises:
            ConnectionRefused: ``block=True`` and nobody listens.
            AddressInvalid: a malformed address.
            NotSupported: an unknown scheme.
        """
        if block is None:
            try:
                return self.dial(address, block=True)
            except ConnectionRefused as exc:
                log.info("Synchronous dial failed (%s); attempting asynchronous now", exc)
                return self.dial(address, block=False)
        with _nng_errors:
            core = self._sock.dial(address, block=bool(block))
        return self._wrap_dialer(core)

    def listen(self, address: str, flags: int = 0) -> Listener:
        """Listen on ``address``.

        Raises:
            AddressInUse: the address is taken.
            AddressInvalid: a malformed address.
        """
        with _nng_errors:
            core = self._sock.listen(address)
        return self._wrap_listener(core)

    def _wrap_dialer(self, core: CoreDialer) -> Dialer:
        d = self._dialers.get(core.id)
        if d is None or d.dialer is not core:
            d = Dialer(core, self)
            if not core.closed:
                self._dialers[core.id] = d
        return d

    def _wrap_listener(self, core: CoreListener) -> Listener:
        lst = self._listeners.get(core.id)
        if lst is None or lst.listener is not core:
            lst = Listener(core, self)
            if not core.closed:
                self._listeners[core.id] = lst
        return lst

    @property
    def dialers(self) -> tuple[Dialer, ...]:
        """The active dialers."""
        return tuple(self._wrap_dialer(d) for d in self._sock.dialers)

    @property
    def listeners(self) -> tuple[Listener, ...]:
        """The active listeners."""
        return tuple(self._wrap_listener(lst) for lst in self._sock.listeners)

    # ---------------------------------------------------------- pipes

    @property
    def pipes(self) -> tuple[Pipe, ...]:
        """The active pipes."""
        with self._pipe_notify_lock:
            return tuple(self._pipes.values())

    def _pipe_for(self, core: CorePipe | None) -> Pipe | None:
        """The compat pipe of a purenng pipe (made if a message outran the
        pipe's add event, or arrived from a pipe already removed)."""
        if core is None:
            return None
        with self._pipe_notify_lock:
            pipe = self._pipes.get(core.id)
            if pipe is None or pipe._pipe is not core:
                pipe = Pipe(core, self)
                if not core.closed:
                    self._pipes[core.id] = pipe
            return pipe

    def _pipe_event(self, core: CorePipe, event: str) -> None:
        """purenng's pipe callback (on the loop): table upkeep, then pynng's."""
        with self._pipe_notify_lock:
            if event == "add_pre":
                pipe = self._pipe_for(core)
                assert pipe is not None
                _run_callbacks(pipe, self._on_pre_pipe_add, "pre pipe connect")
                if pipe.closed or core.closed:
                    self._pipes.pop(core.id, None)
            elif event == "add_post":
                pipe = self._pipe_for(core)
                assert pipe is not None
                _run_callbacks(pipe, self._on_post_pipe_add, "post pipe connect")
            elif event == "remove_post":
                found = self._pipes.get(core.id)
                if found is None:
                    return
                try:
                    _run_callbacks(found, self._on_post_pipe_remove, "post pipe remove")
                finally:
                    self._pipes.pop(core.id, None)

    def add_pre_pipe_connect_cb(self, callback: Callable[[Pipe], Any]) -> None:
        """Call ``callback(pipe)`` before a pipe joins the socket.

        Closing the pipe in the callback refuses it; then neither the
        post-connect nor the post-remove callbacks run for it.  Callbacks run
        on purenng's loop thread: they must not block.
        """
        self._on_pre_pipe_add.append(callback)

    def add_post_pipe_connect_cb(self, callback: Callable[[Pipe], Any]) -> None:
        """Call ``callback(pipe)`` after a pipe joined the socket."""
        self._on_post_pipe_add.append(callback)

    def add_post_pipe_remove_cb(self, callback: Callable[[Pipe], Any]) -> None:
        """Call ``callback(pipe)`` after a pipe left the socket."""
        self._on_post_pipe_remove.append(callback)

    def remove_pre_pipe_connect_cb(self, callback: Callable[[Pipe], Any]) -> None:
        """Stop calling ``callback`` before pipes connect (ValueError if absent)."""
        self._on_pre_pipe_add.remove(callback)

    def remove_post_pipe_connect_cb(self, callback: Callable[[Pipe], Any]) -> None:
        """Stop calling ``callback`` after pipes connect (ValueError if absent)."""
        self._on_post_pipe_add.remove(callback)

    def remove_post_pipe_remove_cb(self, callback: Callable[[Pipe], Any]) -> None:
        """Stop calling ``callback`` after pipes are removed (ValueError if absent)."""
        self._on_post_pipe_remove.remove(callback)

    # ---------------------------------------------------------- messages

    def send(self, data: Any, block: bool = True) -> None:
        """Send ``data`` (bytes-like), waiting up to ``send_timeout``.

        Raises:
            ValueError: ``data`` is a ``str``.
            TryAgain: ``block=False`` and it cannot be sent now.
            Timeout: ``send_timeout`` passed.
            NotSupported: the protocol cannot send (PULL, SUB).
            Closed: the socket is closed.
        """
        _ensure_can_send(data)
        with _nng_errors:
            self._sock.send(data, block=block)

    def recv(self, block: bool = True) -> bytes:
        """Receive one message body, waiting up to ``recv_timeout``.

        Raises:
            TryAgain: ``block=False`` and nothing is waiting.
            Timeout: ``recv_timeout`` passed.
            NotSupported: the protocol cannot receive (PUSH, PUB).
            BadState: a REQ socket with no request out, and the like.
            Closed: the socket is closed.
        """
        with _nng_errors:
            return self._sock.recv(block=block)

    def send_msg(self, msg: Message, block: bool = True) -> None:
        """Send a :class:`Message` (to ``msg.pipe`` where the protocol routes by pipe).

        Raises:
            MessageStateError: the message was sent already.
        """
        core = msg._claim()
        with _nng_errors:
            self._sock.send_msg(core, block=block)
        msg._sent()

    def recv_msg(self, block: bool = True) -> Message:
        """Receive a :class:`Message`, with ``pipe`` set to where it came from."""
        with _nng_errors:
            core = self._sock.recv_msg(block=block)
        return self._message(core)

    def _message(self, core: CoreMessage) -> Message:
        msg = Message(core.body)
        msg._pipe = self._pipe_for(core.pipe)
        return msg

    async def asend(self, data: Any) -> None:
        """Coroutine form of :meth:`send` (asyncio; trio where purenng supports it)."""
        _ensure_can_send(data)
        with _nng_errors:
            await self._sock.asend(data)

    async def arecv(self) -> bytes:
        """Coroutine form of :meth:`recv`."""
        with _nng_errors:
            return await self._sock.arecv()

    async def asend_msg(self, msg: Message) -> None:
        """Coroutine form of :meth:`send_msg`."""
        core = msg._claim()
        with _nng_errors:
            await self._sock.asend_msg(core)
        msg._sent()

    async def arecv_msg(self) -> Message:
        """Coroutine form of :meth:`recv_msg`."""
        with _nng_errors:
            core = await self._sock.arecv_msg()
        return self._message(core)

    # ---------------------------------------------------------- contexts

    def new_context(self) -> Context:
        """A new :class:`Context` (REQ, REP, SURVEYOR, RESPONDENT).

        Raises:
            NotSupported: the protocol has no contexts.
        """
        return Context(self)

    # ---------------------------------------------------------- close

    def close(self) -> None:
        """Close the socket, its dialers, listeners and pipes; idempotent."""
        sock = self.__dict__.get("_sock")
        if sock is not None:
            with _nng_errors:
                sock.close()
        self._listeners = {}
        self._dialers = {}

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        # Dropped without close(): release it on its loop, without blocking
        # here (a finalizer may run on any thread, the loop's included).
        sock = self.__dict__.get("_sock")
        try:
            if sock is not None and not sock.closed and not sock.loop.is_closed():
                sock.loop.call_soon_threadsafe(sock._close_now)
        except Exception:
            pass

    def __repr__(self) -> str:
        sock = self.__dict__.get("_sock")
        state = " closed" if sock is not None and sock.closed else ""
        return f"<pynng-compat {type(self).__name__} id={getattr(sock, 'id', '?')}{state}>"


def _run_callbacks(pipe: Pipe, callbacks: list[Callable[[Pipe], Any]], what: str) -> None:
    for cb in list(callbacks):
        try:
            cb(pipe)
        except Exception:
            log.exception("Exception raised in %s callback %r", what, cb)


class Bus0(Socket):
    """BUS: every message goes to every directly connected peer."""

    _protocol = "bus0"


class Pair0(Socket):
    """PAIR v0: one peer, both directions."""

    _protocol = "pair0"


class Pair1(Socket):
    """PAIR v1; ``polyamorous=True`` (keyword-only) allows many peers.

    As in pynng, with ``dial`` and ``listen`` both given the dial comes first.
    """

    _protocol = "pair1"

    def __init__(self, *, polyamorous: bool = False, **kwargs: Any) -> None:
        super().__init__(polyamorous=bool(polyamorous), **kwargs)

    @classmethod
    def _protocol_keywords(cls) -> frozenset[str]:
        return frozenset({"polyamorous"})

    def _connect(self, dial: str | None, listen: str | None, block: bool | None) -> None:
        if dial is not None:
            self.dial(dial, block=block)
        if listen is not None:
            self.listen(listen)

    polyamorous: _Option = _Option("polyamorous", "bool")


class Push0(Socket):
    """PUSH: the sending end of a pipeline (round robin)."""

    _protocol = "push0"


class Pull0(Socket):
    """PULL: the receiving end of a pipeline."""

    _protocol = "pull0"


class Pub0(Socket):
    """PUB: broadcast to subscribers."""

    _protocol = "pub0"


class Sub0(Socket):
    """SUB: receive what matches a subscribed prefix.

    Args:
        topics: A ``str``, ``bytes`` or an iterable of them, subscribed at once.
    """

    _protocol = "sub0"
    #: ``_open_core`` makes a :class:`purenng.Sub0` for ``"sub0"``.
    _sock: CoreSub0

    def __init__(self, *, topics: Any = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if topics is None:
            return
        if isinstance(topics, str | bytes | bytearray | memoryview):
            topics = [topics]
        try:
            for topic in topics:
                self.subscribe(topic)
        except BaseException:
            self.close()
            raise

    def subscribe(self, topic: str | bytes) -> None:
        """Receive messages starting with ``topic`` (a ``str`` is UTF-8 encoded)."""
        with _nng_errors:
            self._sock.subscribe(_topic(topic))

    def unsubscribe(self, topic: str | bytes) -> None:
        """Undo :meth:`subscribe`.

        Raises:
            NoEntry: not subscribed to ``topic``.
        """
        data = _topic(topic)
        try:
            self._sock.unsubscribe(data)
        except _err.BadOption as exc:
            raise NoEntry(str(exc), NoEntry.nng_errno) from exc
        except _err.Error as exc:
            raise _translate(exc) from exc


def _topic(topic: Any) -> bytes:
    if isinstance(topic, str):
        return topic.encode()
    if isinstance(topic, bytes | bytearray | memoryview):
        return bytes(topic)
    raise TypeError(f"a topic is str or bytes, not {type(topic).__name__}")


class Req0(Socket):
    """REQ; ``resend_time`` (ms) re-sends an unanswered request."""

    _protocol = "req0"

    def __init__(self, *, resend_time: int | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if resend_time is not None:
            try:
                self.resend_time = resend_time
            except BaseException:
                self.close()
                raise

    resend_time: _Option = _Option("resend_time", "timeout")


class Rep0(Socket):
    """REP: receive requests, send replies."""

    _protocol = "rep0"


class Surveyor0(Socket):
    """SURVEYOR; ``survey_time`` (ms) is how long a survey collects answers."""

    _protocol = "surveyor0"

    def __init__(self, *, survey_time: int | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if survey_time is not None:
            try:
                self.survey_time = survey_time
            except BaseException:
                self.close()
                raise

    survey_time: _Option = _Option("survey_time", "ms")


class Respondent0(Socket):
    """RESPONDENT: answer surveys."""

    _protocol = "respondent0"


# =====================================================================
# Contexts
# =====================================================================


class Context:
    """An independent conversation on a socket (pynng's Context).

    Made by :meth:`Socket.new_context`.  ``recv_timeout``/``send_timeout``
    (ms) start as the socket's and may be changed per context.

    Raises:
        NotSupported: the socket's protocol has no contexts.
    """

    def __init__(self, socket: Socket) -> None:
        self._context: CoreContext | None = None
        self._socket = socket
        with _nng_errors:
            self._context = socket._sock.new_context()

    @property
    def context(self) -> CoreContext:
        """The purenng context.

        Raises:
            Closed: the context was closed.
        """
        ctx = self._context
        if ctx is None:
            raise Closed("the context is closed", Closed.nng_errno)
        return ctx

    @property
    def recv_timeout(self) -> int:
        return _to_ms(self.context.recv_timeout)

    @recv_timeout.setter
    def recv_timeout(self, value: int) -> None:
        self.context.recv_timeout = _ms_to_timeout(value)

    @property
    def send_timeout(self) -> int:
        return _to_ms(self.context.send_timeout)

    @send_timeout.setter
    def send_timeout(self, value: int) -> None:
        self.context.send_timeout = _ms_to_timeout(value)

    def send(self, data: Any) -> None:
        """Send ``data`` on this context (blocking)."""
        _ensure_can_send(data)
        with _nng_errors:
            self.context.send(data)

    def recv(self) -> bytes:
        """Receive on this context (blocking)."""
        with _nng_errors:
            return self.context.recv()

    def send_msg(self, msg: Message) -> None:
        """Send a :class:`Message` on this context."""
        core = msg._claim()
        with _nng_errors:
            self.context.send_msg(core)
        msg._sent()

    def recv_msg(self) -> Message:
        """Receive a :class:`Message` on this context."""
        with _nng_errors:
            core = self.context.recv_msg()
        return self._socket._message(core)

    async def asend(self, data: Any) -> None:
        """Coroutine form of :meth:`send`."""
        _ensure_can_send(data)
        with _nng_errors:
            await self.context.asend(data)

    async def arecv(self) -> bytes:
        """Coroutine form of :meth:`recv`."""
        with _nng_errors:
            return await self.context.arecv()

    async def asend_msg(self, msg: Message) -> None:
        """Coroutine form of :meth:`send_msg`."""
        core = msg._claim()
        with _nng_errors:
            await self.context.asend_msg(core)
        msg._sent()

    async def arecv_msg(self) -> Message:
        """Coroutine form of :meth:`recv_msg`."""
        with _nng_errors:
            core = await self.context.arecv_msg()
        return self._socket._message(core)

    def close(self) -> None:
        """Close the context; idempotent."""
        ctx, self._context = self._context, None
        if ctx is not None:
            with _nng_errors:
                ctx.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        ctx = self.__dict__.get("_context")
        if ctx is not None and not ctx.closed:
            loop = ctx.socket.loop
            try:
                if not loop.is_closed():
                    loop.call_soon_threadsafe(ctx._close_now)
            except Exception:
                pass


# =====================================================================
# Devices
# =====================================================================


def device(sock1: Socket | CoreSocket, sock2: Socket | CoreSocket | None = None) -> None:
    """Forward messages between two raw sockets until one is closed.

    An addition to pynng 0.9's surface (NNG's ``nng_device``), forwarding to
    :func:`purenng.device`.  pynng sockets cannot be raw, so pass raw
    purenng sockets (``purenng.Rep0(raw=True)``).  With ``sock2`` omitted,
    ``sock1`` (PAIR or BUS) reflects what it receives.  Blocks until either
    socket is closed; run it in a thread.

    Raises:
        BadState: a socket is cooked.
        NotSupported: the protocols are not peers.
        Closed: a socket was closed already.
    """
    from ..devices import device as forward

    a = sock1._sock if isinstance(sock1, Socket) else sock1
    b = sock2._sock if isinstance(sock2, Socket) else sock2
    with _nng_errors:
        forward(a, b)


# =====================================================================
# Submodules and install()
# =====================================================================


def _submodule(name: str, doc: str, members: Iterable[str]) -> types.ModuleType:
    mod = types.ModuleType(f"{__name__}.{name}", doc)
    here = sys.modules[__name__]
    for member in members:
        setattr(mod, member, getattr(here, member))
    return mod


_EXCEPTION_NAMES = (
    "NNGException",
    *(c.__name__ for c in EXCEPTION_MAP.values()),
    "MessageStateError",
    "EXCEPTION_MAP",
    "check_err",
)

#: ``pynng.exceptions``.
exceptions: types.ModuleType = _submodule(
    "exceptions", "pynng's exception names.", _EXCEPTION_NAMES
)
#: ``pynng.sockaddr``.
sockaddr: types.ModuleType = _submodule(
    "sockaddr",
    "pynng's address classes.",
    ("SockAddr", "InprocAddr", "IPCAddr", "InAddr", "In6Addr", "AbstractAddr"),
)
#: ``pynng.tls``.
tls: types.ModuleType = _submodule("tls", "pynng's TLS configuration.", ("TLSConfig",))
#: ``pynng.nng``: the classes, as pynng's implementation module has them.
nng: types.ModuleType = _submodule(
    "nng",
    "pynng's socket classes.",
    (
        "Socket",
        "Bus0",
        "Pair0",
        "Pair1",
        "Pull0",
        "Push0",
        "Pub0",
        "Sub0",
        "Req0",
        "Rep0",
        "Surveyor0",
        "Respondent0",
        "Context",
        "Dialer",
        "Listener",
        "Pipe",
        "Message",
    ),
)
_SUBMODULES = {"exceptions": exceptions, "sockaddr": sockaddr, "tls": tls, "nng": nng}
for _sub_name, _sub in _SUBMODULES.items():
    sys.modules.setdefault(f"{__name__}.{_sub_name}", _sub)


def install(name: str = "pynng") -> types.ModuleType:
    """Make ``import pynng`` (and ``pynng.exceptions`` ...) resolve to this module.

    Call it before the program imports pynng; it replaces any pynng already
    imported under ``name`` in :data:`sys.modules`.

    Args:
        name: The module name to answer to.

    Returns:
        This module.
    """
    here = sys.modules[__name__]
    sys.modules[name] = here
    for sub_name, sub in _SUBMODULES.items():
        sys.modules[f"{name}.{sub_name}"] = sub
    return here
