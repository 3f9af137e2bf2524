"""Host-side helpers for the interop tests: peer processes, URLs, skips.

The rules every peer follows (a child process per peer, deadlines on every
wait, kill on close, skip or fail when missing) are in :mod:`support.peers`,
whose pieces this module re-exports for the interop tests.  NNG bindings run
through :mod:`nngpeer` (why is explained there) in a :class:`NngPeerProcess`,
nngcat and nanocat as they are in a :class:`CliPeer`.

Addresses: purenng and the NNG bindings listen on tcp port 0 and report the
bound port; only the CLI tools, which cannot report it, get a port picked in
advance (:func:`free_tcp_port`).  ipc paths live in one short temporary
directory (nanomsg keeps paths under 122 bytes), abstract names carry the
process id and a counter.
"""

from __future__ import annotations

import itertools
import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from support.peers import (
    REQUIRE_ENV,
    ChildProcess,
    PeerError,
    closing_all,
    free_tcp_port,
    peer_missing,
    require_peer,
)
from support.waiting import TIMEOUT, wait_for

from .nngpeer import pattern

if TYPE_CHECKING:
    from collections.abc import Callable

    import purenng

__all__ = [
    "LIBS",
    "REQUIRE_ENV",
    "ROLES",
    "TRANSPORTS",
    "Addresses",
    "ChildProcess",
    "CliPeer",
    "NngPeerProcess",
    "PeerError",
    "Received",
    "T",
    "closing_all",
    "connect_peer",
    "free_tcp_port",
    "parse_cli_line",
    "pattern",
    "peer_missing",
    "require_peer",
    "wait_for",
]

#: Generous limit (seconds) for any single wait; only there to stop hangs.
T = TIMEOUT
PEER_SCRIPT = Path(__file__).with_name("nngpeer.py")
#: The NNG bindings run through nngpeer.py.
LIBS = ("pynng", "nng")
#: Transports every binding and purenng share (abstract: Linux, NNG >= 1.4).
TRANSPORTS = ("tcp", "ipc", "abstract")
#: What purenng does in a test; the peer does the other.
ROLES = ("dial", "listen")


class Addresses:
    """URLs for one test: tcp on 127.0.0.1, ipc in a short directory, abstract."""

    _counter = itertools.count()

    def __init__(self, ipc_dir: Path) -> None:
        self.ipc_dir = ipc_dir

    def _name(self) -> str:
        return f"{os.getpid()}-{next(self._counter)}"

    def listen_url(self, transport: str) -> str:
        """A URL for a listener that reports its bound address (tcp port 0)."""
        if transport == "tcp":
            return "tcp://127.0.0.1:0"
        return self.fixed_url(transport)

    def fixed_url(self, transport: str) -> str:
        """A complete URL, tcp port included, for a listener that cannot report it."""
        if transport == "tcp":
            return f"tcp://127.0.0.1:{free_tcp_port()}"
        if transport == "ipc":
            return f"ipc://{self.ipc_dir / (self._name() + '.sock')}"
        if transport == "abstract":
            return f"abstract://purenng-interop-{self._name()}"
        raise ValueError(f"unknown transport {transport!r}")


@dataclass
class Received:
    """A message an NNG peer received."""

    length: int
    sha256: str
    pipe: int | None
    data: bytes | None
    """The body, for messages up to 64 KiB."""
    header: bytes | None
    """The SP header NNG kept apart (the ``nng`` package shows it; pynng does not)."""


class NngPeerProcess:
    """pynng or nng in a child process (:mod:`nngpeer`), one socket.

    Args:
        lib: ``"pynng"`` or ``"nng"``.
        proto: ``pair0``, ``pair1``, ``pair1poly``, ``push0`` or ``pull0``.
        listen / dial: Where the peer's socket listens or dials (one of them).
        nonblock_dial: Dial in the background instead of waiting for the
            connection (for peers that will be refused).
        recv_max_size: The peer's receive limit in bytes.
    """

    def __init__(
        self,
        lib: str,
        proto: str,
        *,
        listen: str | None = None,
        dial: str | None = None,
        nonblock_dial: bool = False,
        recv_max_size: int | None = None,
        timeout: float = T,
    ) -> None:
        argv = [sys.executable, str(PEER_SCRIPT), "--lib", lib, "--proto", proto]
        if listen is not None:
            argv += ["--listen", listen]
        if dial is not None:
            argv += ["--dial", dial]
        if nonblock_dial:
            argv.append("--nonblock-dial")
        if recv_max_size is not None:
            argv += ["--recv-max-size", str(recv_max_size)]
        argv += ["--timeout", str(timeout), "--lifetime", str(6 * timeout)]
        self.lib = lib
        self.timeout = timeout
        self._child = ChildProcess(argv, stdin=True)
        try:
            ready = self._reply(timeout)
            if ready.get("event") != "ready":
                raise PeerError(self._child.describe(f"peer did not start: {ready}"))
        except BaseException:
            self._child.close()
            raise
        self.url: str = ready["url"]

    def _reply(self, timeout: float) -> dict[str, Any]:
        line = self._child.readline(timeout)
        if line is None:
            raise PeerError(self._child.describe("peer exited"))
        try:
            obj: dict[str, Any] = json.loads(line)
        except ValueError:
            raise PeerError(self._child.describe(f"bad line from peer: {line!r}")) from None
        return obj

    def request(self, *, check: bool = True, **cmd: Any) -> dict[str, Any]:
        """Send one command, return its reply (raising PeerError on ``ok: false``)."""
        stdin = self._child.proc.stdin
        assert stdin is not None
        try:
            stdin.write((json.dumps(cmd) + "\n").encode())
            stdin.flush()
        except OSError as exc:
            raise PeerError(self._child.describe(f"cannot write to peer: {exc}")) from None
        # The peer's own socket timeout fires first; this one catches a stuck peer.
        reply = self._reply(self.timeout + 5)
        if check and not reply.get("ok"):
            raise PeerError(f"{self.lib} peer: {cmd.get('op')} failed: {reply.get('error')}")
        return reply

    def send(self, data: bytes, pipe: int | None = None) -> None:
        """Make the peer send ``data`` (on ``pipe`` for a polyamorous socket)."""
        cmd: dict[str, Any] = {"op": "send", "data": data.hex()}
        if pipe is not None:
            cmd["pipe"] = pipe
        self.request(**cmd)

    def send_pattern(self, size: int, seed: int = 0) -> None:
        """Make the peer send ``pattern(size, seed)`` (cheap for big messages)."""
        self.request(op="send", size=size, seed=seed)

    def recv(self) -> Received:
        """Make the peer receive one message."""
        r = self.request(op="recv")
        data = bytes.fromhex(r["data"]) if "data" in r else None
        header = bytes.fromhex(r["header"]) if "header" in r else None
        return Received(r["len"], r["sha256"], r.get("pipe"), data, header)

    def wait_pipes(self, n: int) -> None:
        """Wait until the peer has at least ``n`` pipes."""
        self.request(op="wait_pipes", n=n)

    def close(self) -> None:
        """Ask the peer to close and exit; kill it if it does not; idempotent."""
        if self._child.proc.poll() is None and not self._child.closed:
            try:
                self.request(op="close", check=False)
                self._child.wait(self.timeout)
            except PeerError:
                pass
        self._child.close()

    def __enter__(self) -> NngPeerProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def parse_cli_line(line: bytes) -> bytes:
    """Decode one message printed by ``nngcat``/``nanocat --hex``: ``"\\x61\\x62"``."""
    text = line.decode("ascii").strip()
    if len(text) < 2 or text[0] != '"' or text[-1] != '"':
        raise ValueError(f"not a --hex line: {line!r}")
    inner = text[1:-1]
    if not inner:
        return b""
    parts = inner.split("\\x")
    if parts[0] != "" or any(len(p) != 2 for p in parts[1:]):
        raise ValueError(f"not a --hex line: {line!r}")
    return bytes(int(p, 16) for p in parts[1:])


class CliPeer:
    """nngcat or nanocat in a child process.

    Messages the tool receives are printed with ``--hex`` (one quoted line
    each, zero-length included) and read back with :meth:`messages`.
    """

    def __init__(self, argv: list[str]) -> None:
        self._child = ChildProcess(argv, stdin=False)

    def messages(self, n: int, timeout: float = T) -> list[bytes]:
        """The next ``n`` messages the tool printed."""
        out: list[bytes] = []
        deadline = time.monotonic() + timeout
        while len(out) < n:
            line = self._child.readline(max(0.0, deadline - time.monotonic()))
            if line is None:
                raise PeerError(self._child.describe(f"tool exited after {len(out)} of {n}"))
            out.append(parse_cli_line(line))
        return out

    def wait(self, timeout: float = T) -> int:
        """Wait for the tool to exit by itself; its exit status."""
        return self._child.wait(timeout)

    def stderr_text(self) -> str:
        return self._child.stderr_text()

    def close(self) -> None:
        """Kill the tool if it still runs (they keep receiving); idempotent."""
        self._child.close()


def connect_peer(
    sock: purenng.Socket,
    spawn_peer: Callable[..., NngPeerProcess],
    addr: Addresses,
    lib: str,
    proto: str,
    transport: str,
    role: str,
    **peer_kw: Any,
) -> NngPeerProcess:
    """Join ``sock`` and a new NNG peer; purenng does ``role`` (dial or listen).

    The listener always starts first.  When the peer dials, its ready line
    comes after its blocking dial returned; when purenng dials, the peer
    reported ready after it was bound, so purenng's dial blocks until the
    connection is up.
    """
    if role == "listen":
        lst = sock.listen(addr.listen_url(transport))
        return spawn_peer(lib, proto, dial=lst.url, **peer_kw)
    if role != "dial":
        raise ValueError(f"unknown role {role!r}")
    peer = spawn_peer(lib, proto, listen=addr.listen_url(transport), **peer_kw)
    sock.dial(peer.url, block=True)
    return peer
