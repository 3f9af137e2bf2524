"""The ipc transport: ``ipc://``, ``unix://`` and ``abstract://`` (UNIX domain sockets).

URL forms (``reference/wire-protocols.md`` §2.2 and §3.2):

* ``ipc://<path>``: the path is taken literally, relative to the working
  directory unless it starts with ``/`` (so ``ipc:///tmp/x.sock`` is
  absolute).  No percent-decoding.  ``unix://`` is the same thing.
* ``abstract://<name>`` (Linux only): a socket in the abstract namespace.  The
  name is percent-decoded, so ``abstract://a%00b`` is the three bytes
  ``a \\0 b``; the kernel's leading NUL is not part of the name.  There is no
  automatic naming (an empty name is refused, as in NNG 2.0).

Rules:

* Wire format: the SP header, then each message as a type byte (always 1),
  a 64-bit big-endian length and the payload.  The shared adapter does all of
  it; this module only sets :attr:`IPCTransport.ipc_framing`.
* A path must fit ``sockaddr_un`` with its terminating NUL:
  :data:`MAX_PATH_BYTES` bytes (107 on Linux).  Longer ones are refused up
  front with the limit in the message, never silently truncated.
* **Stale socket files.**  A listener whose path already exists looks before it
  leaps: if it is a socket and a probe ``connect`` is refused, the file is left
  over from a dead process and is removed; if someone answers, or the path is
  not a socket at all, the listen fails with ``AddressInUse`` and nothing is
  deleted.  (asyncio's and uvloop's ``create_unix_server(path)`` unlink any
  socket file without probing, stealing a live listener's address, which is
  why this module binds its sockets itself and hands them over with ``sock=``.)
* A closing listener removes its socket file, but only if the file is still
  the one it bound (same device and inode): a later listener that replaced it
  keeps its address.
* ``ipc_permissions`` (e.g. ``0o600``) is applied with ``chmod`` between
  ``bind`` and ``listen``.  A bound socket that does not listen yet refuses
  connections, so there is no window with the umask's mode.  Abstract sockets
  have no file and therefore no mode: asking for one is an error rather than
  a silent no-op, because it is a security setting.
* ``ipc_buffer_size`` (default :data:`DEFAULT_BUFFER_SIZE`, 1 MiB) sets
  ``SO_SNDBUF`` and ``SO_RCVBUF`` of every connection, both ends.  Linux's
  default for UNIX sockets (about 208 KiB) made a 1 MiB message cross in
  five hand-offs between the processes; with 1 MiB, 1 MiB messages with
  the async API went from about 2k to 5.5k msg/s and 64 B ones from about
  330k to 550k msg/s (the blocking API: about the same at 1 MiB, +20 % at
  64 B).  None keeps the system default (as NNG does).
* Both ends of every connection carry the peer's credentials
  (:class:`PeerCredentials`, from ``SO_PEERCRED`` on Linux) as the stream
  extra ``"peer_credentials"``, which the SP pipe exposes as
  ``pipe.peer_credentials``.  Elsewhere that extra is None.

Theory of operation: dial makes a non-blocking ``AF_UNIX`` socket, connects it
with ``loop.sock_connect`` and wraps it with ``loop.create_unix_connection(
sock=...)``; listen binds as above and serves the socket with purenng's own
accept loop (:class:`~purenng.core.stream_server.SocketServer`, which backs off
instead of spinning when file descriptors run out, and applies the
endpoint's ``max_pipes`` before anything is spent on a connection).  Going
through ``sock=`` also makes abstract names with any bytes work under
uvloop, whose ``create_unix_connection(path)`` cannot connect to them.
Windows named pipes are not implemented.  Mirrors NNG's
``src/sp/transport/ipc/ipc.c`` and ``src/platform/posix/posix_ipc*.c``.
"""

from __future__ import annotations

import asyncio
import errno
import os
import socket
import stat
import struct
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import unquote_to_bytes

from ..plugin import (
    AddressInUse,
    AsyncioStream,
    AsyncioStreamListener,
    BadAddress,
    ConnectionRefused,
    NotSupported,
    OptionSpec,
    StreamProtocol,
    StreamTransport,
    hookimpl,
)

if TYPE_CHECKING:
    from collections.abc import Mapping

    from ..plugin import URL, Registry

__all__ = ["MAX_PATH_BYTES", "IPCTransport", "PeerCredentials"]

#: The purenng plugin API this module is written for (purenng.plugin.API_VERSION).
PURENNG_PLUGIN_API: str = "1.0"

_LINUX = sys.platform.startswith("linux")
_HAS_AF_UNIX = hasattr(socket, "AF_UNIX")

#: Size of ``sockaddr_un.sun_path``: 108 bytes on Linux, 104 on the BSDs and macOS.
SUN_PATH_SIZE = 108 if _LINUX else 104
#: Longest usable path (or abstract name), in bytes: ``sun_path`` less one byte
#: for the terminating NUL (or, for abstract names, the leading NUL).
MAX_PATH_BYTES = SUN_PATH_SIZE - 1
#: Listen backlog; the kernel caps it at ``somaxconn``.
BACKLOG = 4096
#: ``struct ucred`` as ``SO_PEERCRED`` returns it on Linux: pid, uid, gid.
_UCRED = struct.Struct("3i")
#: Bind attempts when stale files keep reappearing (a race with another listener).
_BIND_ATTEMPTS = 3


@dataclass(frozen=True, slots=True)
class PeerCredentials:
    """Who is at the other end of an ipc connection, as the kernel saw it at connect time.

    Attributes:
        pid: The peer's process id.
        uid: The peer's effective user id.
        gid: The peer's effective group id.
    """

    pid: int
    uid: int
    gid: int


def _file_mode(value: Any) -> int | None:
    """Validator for ``ipc_permissions``: None, or permission bits in 0..0o7777."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError("expected a file mode as an int, e.g. 0o600, or None")
    if not 0 <= value <= 0o7777:
        raise ValueError("expected a file mode in 0o0..0o7777")
    return value


#: Default kernel buffer (each of ``SO_SNDBUF`` and ``SO_RCVBUF``) of an ipc
#: connection.  Linux's default for UNIX stream sockets, about 208 KiB, keeps
#: a 1 MiB message bouncing between the two processes five times; 1 MiB
#: lets most writes go whole (2 MiB measured no better).  The kernel caps it
#: at ``net.core.wmem_max`` and ``rmem_max`` and spends the memory only on
#: data actually queued.
DEFAULT_BUFFER_SIZE = 1024 * 1024


def _buffer_size(value: Any) -> int | None:
    """Validator for ``ipc_buffer_size``: None (the system default), or bytes >= 4096."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError("expected a size in bytes as an int, or None for the system default")
    if not 4096 <= value <= 1 << 30:
        raise ValueError("expected a size in 4096..1073741824 bytes")
    return value


def _set_buffers(transport: asyncio.BaseTransport, size: int | None) -> None:
    """Ask for ``size``-byte kernel buffers (the kernel may give less)."""
    if size is None:
        return
    sock = transport.get_extra_info("socket")
    if sock is None:
        return
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, size)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, size)
    except OSError:
        pass  # a platform that refuses: the default buffers still work


def _peer_credentials(transport: asyncio.BaseTransport) -> PeerCredentials | None:
    """The connected peer's credentials, or None where the platform has no ``SO_PEERCRED``.

    Only Linux is read: other systems that name an ``SO_PEERCRED`` lay the
    structure out differently (OpenBSD puts uid first).
    """
    if not _LINUX:
        return None
    sock = transport.get_extra_info("socket")
    if sock is None:
        return None
    try:
        raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _UCRED.size)
    except OSError:
        return None  # the connection is already gone; the pipe will notice
    pid, uid, gid = _UCRED.unpack(raw)
    return PeerCredentials(pid, uid, gid)


def _make_stream(
    transport: asyncio.Transport, protocol: StreamProtocol, buffer_size: int | None
) -> AsyncioStream:
    _set_buffers(transport, buffer_size)
    stream = AsyncioStream(transport, protocol)
    stream.set_extra("peer_credentials", _peer_credentials(transport))
    return stream


def _describe(addr: str | bytes) -> str:
    """An address for error messages: the path, or the abstract name."""
    if isinstance(addr, bytes):
        return f"abstract name {addr[1:]!r}"
    return repr(addr)


def _address(url: URL) -> str | bytes:
    """The ``AF_UNIX`` address for ``url``: a path (str) or ``b"\\0" + name``.

    Raises:
        BadAddress: empty, too long, a NUL in a path, or the scheme is not
            available on this platform.
    """
    if not _HAS_AF_UNIX:
        raise BadAddress(f"{url.raw!r}: this platform has no UNIX domain sockets")
    if url.scheme == "abstract":
        if not _LINUX:
            raise BadAddress(f"{url.raw!r}: abstract sockets exist on Linux only")
        try:
            # Surrogate escapes stand for the bytes they came from, as in
            # paths (os.fsencode); any other lone surrogate names nothing.
            name = unquote_to_bytes(url.rest.encode("utf-8", "surrogateescape"))
        except UnicodeEncodeError:
            raise BadAddress(
                f"{url.raw!r}: an abstract name must be text or %-escaped bytes"
            ) from None
        if not name:
            raise BadAddress(
                f"{url.raw!r}: an abstract socket needs a name, e.g. abstract://my-service"
            )
        if len(name) > MAX_PATH_BYTES:
            raise BadAddress(
                f"{url.raw!r}: abstract name is {len(name)} bytes, longer than the "
                f"{MAX_PATH_BYTES}-byte limit of sockaddr_un"
            )
        return b"\0" + name
    path = url.rest
    if not path:
        raise BadAddress(f"{url.raw!r}: empty path, e.g. {url.scheme}:///tmp/example.sock")
    if "\0" in path:
        raise BadAddress(f"{url.raw!r}: a path cannot contain NUL (abstract names use abstract://)")
    try:
        size = len(os.fsencode(path))
    except UnicodeError as exc:
        raise BadAddress(f"{url.raw!r}: path cannot be encoded for the file system") from exc
    if size > MAX_PATH_BYTES:
        raise BadAddress(
            f"{url.raw!r}: path is {size} bytes, longer than the {MAX_PATH_BYTES}-byte limit "
            f"of sockaddr_un on this system; use a shorter (e.g. relative) path"
        )
    return path


def _someone_listens(path: str) -> bool:
    """Probe ``path`` with a connect: False only if it is certainly stale.

    A refused or vanished connection means nobody listens.  Success, a full
    backlog (EAGAIN) or anything we cannot interpret (EACCES...) counts as
    alive, so that a file we do not understand is never removed.
    """
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.setblocking(False)
        probe.connect(path)
    except (ConnectionRefusedError, FileNotFoundError):
        return False
    except OSError:
        return True
    finally:
        probe.close()
    return True


def _bind(url: URL, addr: str | bytes) -> socket.socket:
    """A non-blocking ``AF_UNIX`` socket bound to ``addr``, removing a stale file first.

    Raises:
        AddressInUse: someone listens there, or the path is not a socket.
        BadAddress: the directory does not exist.
    """
    shown = _describe(addr)
    for _ in range(_BIND_ATTEMPTS):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.setblocking(False)
            sock.bind(addr)
        except OSError as exc:
            sock.close()
            if exc.errno in (errno.ENOENT, errno.ENOTDIR):
                raise BadAddress(f"{url.raw}: the directory of {shown} does not exist") from exc
            if exc.errno != errno.EADDRINUSE:
                raise
            if isinstance(addr, bytes):
                raise AddressInUse(f"{url.raw}: {shown} is already in use") from exc
        else:
            return sock
        assert isinstance(addr, str)
        try:
            st = os.lstat(addr)
        except FileNotFoundError:
            continue  # removed meanwhile: try again
        if not stat.S_ISSOCK(st.st_mode):
            raise AddressInUse(f"{url.raw}: {shown} exists and is not a socket; not removing it")
        if _someone_listens(addr):
            raise AddressInUse(f"{url.raw}: another listener is active on {shown}")
        try:
            # Only remove the very file that was probed, not one that a new
            # listener put there since.
            now = os.lstat(addr)
            if (now.st_dev, now.st_ino) == (st.st_dev, st.st_ino):
                os.unlink(addr)
        except FileNotFoundError:
            pass
    raise AddressInUse(
        f"{url.raw}: {shown} keeps being taken; gave up after {_BIND_ATTEMPTS} tries"
    )


def _file_identity(path: str) -> tuple[int, int, int] | None:
    """Device, inode and change time of ``path``.

    File systems reuse a freed inode at once, so the change time is part of
    the identity: a socket file made by someone else in place of ours differs
    there even when it got our inode back.
    """
    try:
        st = os.lstat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino, st.st_ctime_ns


class _IPCListener(AsyncioStreamListener):
    """Accepts ipc connections; removes its socket file on close if still its own."""

    def __init__(self, url: str, addr: str | bytes, buffer_size: int | None) -> None:
        super().__init__(url)
        self._addr = addr
        self._buffer_size = buffer_size
        # Absolute form of a relative path, so that close() finds the file even
        # if the working directory changed in between.
        self._file: str | None = os.path.abspath(addr) if isinstance(addr, str) else None
        self._identity: tuple[int, int, int] | None = None

    def bound(self) -> None:
        """Remember which file is ours (call after bind and chmod)."""
        if self._file is not None:
            self._identity = _file_identity(self._file)

    def make_stream(self, transport: asyncio.Transport, protocol: StreamProtocol) -> AsyncioStream:
        return _make_stream(transport, protocol, self._buffer_size)

    def remove_file(self) -> None:
        """Unlink the socket file if it is still the one this listener bound."""
        path, ident = self._file, self._identity
        self._identity = None
        if path is None or ident is None:
            return
        if _file_identity(path) == ident:
            try:
                os.unlink(path)
            except OSError:
                pass  # gone or not ours to remove: nothing to clean up

    def close(self) -> None:
        super().close()
        self.remove_file()

    @property
    def local_address(self) -> str | bytes:
        """The bound path as given, or ``b"\\0" + name`` for an abstract socket."""
        return self._addr


class IPCTransport(StreamTransport):
    """SP over UNIX domain sockets (ipc framing: a type byte before each length)."""

    schemes: ClassVar[tuple[str, ...]] = ("ipc", "unix", "abstract")
    option_prefix = "ipc"
    ipc_framing = True
    option_specs: ClassVar[Mapping[str, OptionSpec]] = {
        "ipc_permissions": OptionSpec(
            "ipc_permissions",
            _file_mode,
            None,
            "listener socket file mode, e.g. 0o600; None: the umask decides",
        ),
        "ipc_buffer_size": OptionSpec(
            "ipc_buffer_size",
            _buffer_size,
            DEFAULT_BUFFER_SIZE,
            "kernel send and receive buffer of each connection, in bytes (capped by "
            "net.core.wmem_max/rmem_max); None: the system default",
        ),
    }

    def check_url(self, url: URL) -> None:
        _address(url)

    async def dial(self, url: URL, options: Mapping[str, Any]) -> AsyncioStream:
        addr = _address(url)
        loop = asyncio.get_running_loop()
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.setblocking(False)
            await loop.sock_connect(sock, addr)
            tr, pr = await loop.create_unix_connection(StreamProtocol, sock=sock)
        except BaseException as exc:
            sock.close()
            if isinstance(exc, FileNotFoundError | NotADirectoryError):
                raise ConnectionRefused(f"{url.raw}: no socket at {_describe(addr)}") from exc
            if isinstance(exc, ConnectionRefusedError):
                raise ConnectionRefused(
                    f"{url.raw}: connection refused, nobody listens on {_describe(addr)}"
                ) from exc
            if isinstance(exc, PermissionError):
                raise PermissionError(
                    exc.errno, f"{url.raw}: permission denied to connect to {_describe(addr)}"
                ) from exc
            raise
        return _make_stream(tr, pr, options.get("ipc_buffer_size", DEFAULT_BUFFER_SIZE))

    async def listen(self, url: URL, options: Mapping[str, Any]) -> _IPCListener:
        addr = _address(url)
        mode = options.get("ipc_permissions")
        if mode is not None and isinstance(addr, bytes):
            raise NotSupported(
                f"{url.raw}: ipc_permissions does not apply to abstract sockets (they have "
                f"no file); restrict access by checking pipe.peer_credentials instead"
            )
        lst = _IPCListener(url.raw, addr, options.get("ipc_buffer_size", DEFAULT_BUFFER_SIZE))
        sock = _bind(url, addr)
        try:
            if mode is not None:
                os.chmod(addr, mode)
            lst.bound()
            sock.listen(BACKLOG)
            lst.serve(sock)
        except BaseException:
            sock.close()
            lst.bound()  # chmod may have failed before bound() ran
            lst.remove_file()
            raise
        return lst


@hookimpl
def purenng_register_transports(registry: Registry) -> None:
    registry.add_transport(IPCTransport())
