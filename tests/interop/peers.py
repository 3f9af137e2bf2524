"""Host-side helpers for the interop tests: peer processes, URLs, skips.

Rules:

* Every external peer runs in its own child process: the NNG bindings
  through :mod:`nngpeer` (why is explained there), nngcat and nanocat as
  they are.  Each child is started by :class:`NngPeerProcess` or
  :class:`CliPeer`, every wait on it has a deadline, and ``close()`` (run by
  the fixtures even when a test fails) ends it, killing it through its own
  ``Popen`` handle when it does not leave by itself.
* Children's stdout is read with ``selectors`` against a deadline, never
  with a bare blocking read, so a silent peer turns into a test failure
  with the peer's stderr attached instead of a hang.
* A test needing a peer calls :func:`require_peer`: a missing peer skips
  the test, unless ``PURENNG_REQUIRE_PEERS`` is set, in which case it fails.

Addresses: purenng and the NNG bindings listen on tcp port 0 and report the
bound port; only the CLI tools, which cannot report it, get a port picked in
advance (:func:`free_tcp_port`).  ipc paths live in one short temporary
directory (nanomsg keeps paths under 122 bytes), abstract names carry the
process id and a counter.
"""

from __future__ import annotations

import contextlib
import importlib.util
import itertools
import json
import os
import selectors
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import pytest

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
    "CliPeer",
    "NngPeerProcess",
    "PeerError",
    "Received",
    "T",
    "connect_peer",
    "free_tcp_port",
    "parse_cli_line",
    "pattern",
    "peer_missing",
    "require_peer",
    "wait_for",
]

#: Set to make a missing peer a failure instead of a skip.
REQUIRE_ENV = "PURENNG_REQUIRE_PEERS"
#: Generous limit (seconds) for any single wait; only there to stop hangs.
T = 10.0
PEER_SCRIPT = Path(__file__).with_name("nngpeer.py")
#: The NNG bindings run through nngpeer.py.
LIBS = ("pynng", "nng")
#: Transports every binding and purenng share (abstract: Linux, NNG >= 1.4).
TRANSPORTS = ("tcp", "ipc", "abstract")
#: What purenng does in a test; the peer does the other.
ROLES = ("dial", "listen")

_PYTHON_PEERS = {"pynng": "pynng", "nng": "nng"}
_CLI_PEERS = {"nngcat": "nngcat", "nanocat": "nanocat"}


def peer_missing(name: str) -> str | None:
    """Why peer ``name`` cannot be used here, or None when it is installed."""
    if name in _PYTHON_PEERS:
        if importlib.util.find_spec(_PYTHON_PEERS[name]) is None:
            return f"the Python package {name!r} is not installed"
        return None
    if name in _CLI_PEERS:
        if shutil.which(_CLI_PEERS[name]) is None:
            return f"the command {name!r} is not on PATH"
        return None
    raise ValueError(f"unknown peer {name!r}")


def require_peer(name: str) -> None:
    """Skip (or fail, with ``PURENNG_REQUIRE_PEERS`` set) when ``name`` is missing."""
    why = peer_missing(name)
    if why is None:
        return
    if os.environ.get(REQUIRE_ENV):
        pytest.fail(f"{why}, and {REQUIRE_ENV} is set")
    pytest.skip(why)


def free_tcp_port() -> int:
    """A tcp port on 127.0.0.1 that was free a moment ago (for CLI listeners)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def wait_for(cond: Callable[[], object], what: str, timeout: float = T) -> None:
    """Poll ``cond()`` until true; fail naming ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.005)


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


class PeerError(AssertionError):
    """A peer process failed, answered with an error or went silent."""


class _LineReader:
    """Reads lines from a child's stdout against a deadline (no threads)."""

    def __init__(self, stream: IO[bytes]) -> None:
        self._fd = stream.fileno()
        self._buf = b""
        self._eof = False
        self._sel = selectors.DefaultSelector()
        self._sel.register(self._fd, selectors.EVENT_READ)

    def readline(self, timeout: float) -> bytes | None:
        """The next line without its newline; None at end of file.

        Raises:
            TimeoutError: no complete line within ``timeout`` seconds.
        """
        deadline = time.monotonic() + timeout
        while b"\n" not in self._buf:
            if self._eof:
                if self._buf:
                    line, self._buf = self._buf, b""
                    return line
                return None
            left = deadline - time.monotonic()
            if left <= 0 or not self._sel.select(left):
                raise TimeoutError(f"no line within {timeout} s")
            chunk = os.read(self._fd, 1 << 16)
            if chunk:
                self._buf += chunk
            else:
                self._eof = True
        line, _, self._buf = self._buf.partition(b"\n")
        return line

    def close(self) -> None:
        self._sel.close()


class _Child:
    """A child process with piped stdout, stderr in a temporary file."""

    def __init__(self, argv: list[str], *, stdin: bool) -> None:
        self.argv = argv
        # Closed in close(): it must outlive this call, as long as the child.
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115
        self.proc = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
        )
        assert self.proc.stdout is not None
        self._reader = _LineReader(self.proc.stdout)
        self._closed = False

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` has run."""
        return self._closed

    def readline(self, timeout: float) -> bytes | None:
        try:
            return self._reader.readline(timeout)
        except TimeoutError:
            raise PeerError(self.describe(f"no output within {timeout} s")) from None

    def stderr_text(self) -> str:
        self._stderr.seek(0)
        return self._stderr.read().decode(errors="replace")[-2000:]

    def describe(self, problem: str) -> str:
        rc = self.proc.poll()
        state = "running" if rc is None else f"exit status {rc}"
        return f"{problem}; {' '.join(self.argv)} ({state}); stderr: {self.stderr_text()!r}"

    def wait(self, timeout: float) -> int:
        """Wait for the child to exit on its own; kill it and fail if it does not."""
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise PeerError(self.describe(f"did not exit within {timeout} s")) from None

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(T)

    def close(self) -> None:
        """Kill the child if still running and release every handle; idempotent."""
        if self._closed:
            return
        self._closed = True
        try:
            self.kill()
        finally:
            self._reader.close()
            for f in (self.proc.stdin, self.proc.stdout):
                if f is not None:
                    with contextlib.suppress(OSError):
                        f.close()
            self._stderr.close()


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
        self._child = _Child(argv, stdin=True)
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
        self._child = _Child(argv, stdin=False)

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
