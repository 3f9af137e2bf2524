"""A hand-made SP peer over a plain socket: every byte under the test's control.

:class:`RawSP` wraps a blocking socket (tcp, or a Unix socket with ipc
framing): it does the 8-byte SP handshake (``00 53 50 00``, the protocol
number as a big-endian u16, ``00 00``) and reads and writes length-prefixed
frames.  :class:`RawSPListener` is a tcp listener that hands out such peers,
for a purenng socket that dials.  Every read is bounded by the socket's
timeout, so a silent purenng side fails the test instead of hanging it.

The header and prefix bytes come from :mod:`purenng.core.sp_codec`, whose
exact layout ``tests/test_sp_codec.py`` pins down byte by byte.
"""

from __future__ import annotations

import socket
import struct
import threading
from typing import TYPE_CHECKING

from purenng.core.sp_codec import IPC_MSG_TYPE, encode_handshake, frame_prefix

from .waiting import TIMEOUT

if TYPE_CHECKING:
    from collections.abc import Callable
    from types import TracebackType

__all__ = [
    "BUS",
    "PAIR0",
    "PAIR1",
    "PUB",
    "PULL",
    "PUSH",
    "REP",
    "REQ",
    "RESPONDENT",
    "SUB",
    "SURVEYOR",
    "RawSP",
    "RawSPListener",
    "frame",
    "recv_exactly",
    "sp_header",
]

#: SP protocol numbers (wire-protocols.md §1.2).
PAIR0, PAIR1 = 0x10, 0x11
PUB, SUB = 0x20, 0x21
REQ, REP = 0x30, 0x31
PUSH, PULL = 0x50, 0x51
SURVEYOR, RESPONDENT = 0x62, 0x63
BUS = 0x70


def sp_header(proto: int) -> bytes:
    """The 8-byte SP header announcing protocol ``proto``."""
    return encode_handshake(proto)


def frame(payload: bytes, *, ipc: bool = False) -> bytes:
    """``payload`` with its length prefix (and the ipc message type byte)."""
    return frame_prefix(len(payload), ipc) + payload


def recv_exactly(sock: socket.socket, n: int) -> bytes:
    """Exactly ``n`` bytes from ``sock``; each read is bounded by its timeout.

    Raises:
        EOFError: the peer closed the connection first.
        TimeoutError: a read waited longer than the socket's timeout.
    """
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise EOFError(f"connection closed after {len(buf)} of {n} bytes")
        buf += chunk
    return bytes(buf)


def _connect(where: int | str, rcvbuf: int | None, timeout: float) -> tuple[socket.socket, bool]:
    """A socket connected to ``where``, and whether it speaks ipc framing."""
    address: tuple[str, int] | str
    if isinstance(where, int):
        family, address, ipc = socket.AF_INET, ("127.0.0.1", where), False
    elif where.startswith("tcp://"):
        host, _, port = where.removeprefix("tcp://").rpartition(":")
        family, address, ipc = socket.AF_INET, (host, int(port)), False
    elif where.startswith("ipc://"):
        family, address, ipc = socket.AF_UNIX, where.removeprefix("ipc://"), True
    else:
        raise ValueError(f"RawSP connects to a tcp port, tcp:// or ipc://, not {where!r}")
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        if rcvbuf is not None:
            # Before connect: a small window makes the sender's buffers fill quickly.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        sock.settimeout(timeout)
        sock.connect(address)
    except BaseException:
        sock.close()
        raise
    return sock, ipc


class RawSP:
    """An SP peer that is just a blocking socket.

    Args:
        sock: The connection (its timeout is set to ``timeout``).
        ipc: Frames carry the ipc transport's message type byte.
        timeout: Bound (seconds) on every read and write.
    """

    def __init__(self, sock: socket.socket, *, ipc: bool = False, timeout: float = TIMEOUT) -> None:
        self.sock = sock
        self.ipc = ipc
        sock.settimeout(timeout)

    @classmethod
    def connect(
        cls,
        where: int | str,
        proto: int,
        peer: int,
        *,
        rcvbuf: int | None = None,
        timeout: float = TIMEOUT,
    ) -> RawSP:
        """Connect to ``where`` and shake hands as ``proto``, expecting ``peer``.

        ``where`` is a tcp port on 127.0.0.1 or a ``tcp://`` or ``ipc://``
        URL; ``rcvbuf`` sets ``SO_RCVBUF`` before connecting.
        """
        sock, ipc = _connect(where, rcvbuf, timeout)
        raw = cls(sock, ipc=ipc, timeout=timeout)
        try:
            raw.handshake(proto, peer)
        except BaseException:
            raw.close()
            raise
        return raw

    def handshake(self, proto: int, peer: int) -> None:
        """Send the SP header of ``proto``; the other side's must be ``peer``'s."""
        self.sock.sendall(sp_header(proto))
        got = recv_exactly(self.sock, 8)
        assert got == sp_header(peer), f"SP header {got.hex()}, expected {sp_header(peer).hex()}"

    def recv_exactly(self, n: int) -> bytes:
        """Exactly ``n`` bytes (see :func:`recv_exactly`)."""
        return recv_exactly(self.sock, n)

    def send(self, *payloads: bytes) -> None:
        """Send each payload as one frame, all in a single write."""
        self.sock.sendall(b"".join(frame(p, ipc=self.ipc) for p in payloads))

    def recv(self) -> bytes:
        """The payload of the next frame."""
        if self.ipc:
            kind, n = struct.unpack(">BQ", self.recv_exactly(9))
            assert kind == IPC_MSG_TYPE, f"ipc message type {kind}"
        else:
            (n,) = struct.unpack(">Q", self.recv_exactly(8))
        return self.recv_exactly(n)

    def closed_by_peer(self) -> bool:
        """Wait (bounded by the timeout) for the other side to close the connection.

        True at end of file or a reset, False when the timeout passed first;
        whatever arrives before the end is read and dropped.
        """
        try:
            while self.sock.recv(65536):
                pass
        except ConnectionResetError:
            return True
        except TimeoutError:
            return False
        return True

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> RawSP:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class RawSPListener:
    """A plain tcp listener on 127.0.0.1 that does the SP handshake by hand.

    Each accepted connection sends the header of ``proto`` first and checks
    that the dialer's is ``peer``'s.  :meth:`close` also closes every peer it
    handed out.
    """

    def __init__(self, proto: int, peer: int, *, timeout: float = TIMEOUT) -> None:
        self.proto = proto
        self.peer = peer
        self.timeout = timeout
        self.server = socket.create_server(("127.0.0.1", 0))
        self.server.settimeout(timeout)
        self.port: int = self.server.getsockname()[1]
        self.url = f"tcp://127.0.0.1:{self.port}"
        self._accepted: list[RawSP] = []
        self._threads: list[threading.Thread] = []

    def accept(self) -> RawSP:
        """The next connection, after the handshake (bounded by the timeout)."""
        conn, _ = self.server.accept()
        raw = RawSP(conn, timeout=self.timeout)
        self._accepted.append(raw)
        raw.handshake(self.proto, self.peer)
        return raw

    def accept_in_thread(self) -> Callable[[], RawSP]:
        """Accept one connection in a thread; the call returned waits for it.

        For a purenng socket whose dial blocks until its handshake is
        answered: the answer must come while the dial is still under way.
        The call re-raises what the accept raised.
        """
        accepted: list[RawSP] = []
        errors: list[BaseException] = []

        def run() -> None:
            try:
                accepted.append(self.accept())
            except BaseException as exc:  # re-raised by the call returned
                errors.append(exc)

        thread = threading.Thread(target=run, daemon=True)
        self._threads.append(thread)
        thread.start()

        def result() -> RawSP:
            thread.join(self.timeout)
            if errors:
                raise errors[0]
            assert accepted, "nobody connected"
            return accepted[0]

        return result

    def close(self) -> None:
        for thread in self._threads:
            thread.join(self.timeout)
        for raw in self._accepted:
            raw.close()
        self.server.close()

    def __enter__(self) -> RawSPListener:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
