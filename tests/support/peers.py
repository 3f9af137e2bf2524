"""External peers in child processes, for the interop and fault suites.

Rules (both suites keep them):

* Every external peer (pynng, nng, nngcat, nanocat, or a purenng peer that
  must be killable) runs in its own child process, started by
  :class:`ChildProcess`.  Every wait on it has a deadline, and ``close()``
  (run by the fixtures even when a test fails) ends it, killing it through
  its own ``Popen`` handle when it does not leave by itself.
* A child's stdout is read with ``selectors`` against a deadline
  (:class:`LineReader`), never with a bare blocking read, so a silent peer
  turns into a :class:`PeerError` with the peer's stderr attached instead of
  a hang.
* A test needing a peer calls :func:`require_peer`: a missing peer skips the
  test, unless ``PURENNG_REQUIRE_PEERS`` is set, in which case it fails.
* A fixture that starts peers hands out a factory from :func:`closing_all`,
  which closes every peer it made at teardown, newest first.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import selectors
import shutil
import socket
import subprocess
import tempfile
import time
from typing import IO, TYPE_CHECKING, ParamSpec, Protocol, TypeVar

import pytest

from .waiting import TIMEOUT

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Mapping

__all__ = [
    "REQUIRE_ENV",
    "ChildProcess",
    "LineReader",
    "PeerError",
    "closing_all",
    "free_tcp_port",
    "peer_missing",
    "require_peer",
]

#: Set to make a missing peer a failure instead of a skip.
REQUIRE_ENV = "PURENNG_REQUIRE_PEERS"

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
    """A tcp port on 127.0.0.1 that was free a moment ago (for peers that cannot report one)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class PeerError(AssertionError):
    """A peer process failed, answered with an error or went silent."""


class LineReader:
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


class ChildProcess:
    """A child process with piped stdout, its stderr in a temporary file.

    Args:
        argv: The command line.
        stdin: Give the child a pipe as stdin (else ``/dev/null``).
        env: The child's environment (default: this process's).
        name: How :meth:`describe` names the child (default: ``argv``).
    """

    def __init__(
        self,
        argv: list[str],
        *,
        stdin: bool,
        env: Mapping[str, str] | None = None,
        name: str | None = None,
    ) -> None:
        self.argv = argv
        self.name = name if name is not None else " ".join(argv)
        # Closed in close(): it must outlive this call, as long as the child.
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115
        self.proc = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            env=env,
        )
        assert self.proc.stdout is not None
        self._reader = LineReader(self.proc.stdout)
        self._closed = False

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` has run."""
        return self._closed

    def readline(self, timeout: float, awaited: str = "output") -> bytes | None:
        """The child's next line (None at end of file).

        Raises:
            PeerError: no line within ``timeout`` seconds (naming ``awaited``).
        """
        try:
            return self._reader.readline(timeout)
        except TimeoutError:
            raise PeerError(self.describe(f"no {awaited} within {timeout} s")) from None

    def stderr_text(self) -> str:
        self._stderr.seek(0)
        return self._stderr.read().decode(errors="replace")[-2000:]

    def describe(self, problem: str) -> str:
        rc = self.proc.poll()
        state = "running" if rc is None else f"exit status {rc}"
        return f"{problem}; {self.name} ({state}); stderr: {self.stderr_text()!r}"

    def wait(self, timeout: float) -> int:
        """Wait for the child to exit on its own; kill it and fail if it does not."""
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise PeerError(self.describe(f"did not exit within {timeout} s")) from None

    def kill(self) -> None:
        """SIGKILL the child (when still running) and reap it."""
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(TIMEOUT)

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


class _Closable(Protocol):
    def close(self) -> None: ...


P = ParamSpec("P")
C = TypeVar("C", bound=_Closable)


@contextlib.contextmanager
def closing_all(make: Callable[P, C]) -> Iterator[Callable[P, C]]:
    """A factory calling ``make``; on exit everything it made is closed, newest first.

    For fixtures::

        @pytest.fixture
        def spawn_cli() -> Iterator[Callable[..., CliPeer]]:
            def start(tool: str, *args: str) -> CliPeer:
                require_peer(tool)
                return CliPeer([tool, *args])

            with closing_all(start) as spawn:
                yield spawn
    """
    made: list[C] = []

    def factory(*args: P.args, **kwargs: P.kwargs) -> C:
        thing = make(*args, **kwargs)
        made.append(thing)
        return thing

    try:
        yield factory
    finally:
        for thing in reversed(made):
            thing.close()
