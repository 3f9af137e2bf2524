"""Shared pieces of the fault tests: peer processes, figures, resource baselines.

* :class:`FaultPeer` runs :mod:`faultpeer` (purenng, pynng or nng) in a
  child process; every wait on it has a deadline and :meth:`FaultPeer.close`
  ends it (a kill through its own ``Popen`` handle when it does not leave).
  Tests close their peers inside the test body, with ``with``, so that the
  leak check (``purenng_leak_check``, which compares before fixture
  teardown) sees their pipes closed; the ``fault_peers`` fixture is only a
  safety net for a failing test.
* :func:`record` adds a proxy's counters (faults per kind, bytes) and the
  messages a test checked to the session's figures, printed at the end of
  the run (``fault injection:`` in the terminal summary).
* The autouse ``_rss_bound`` fixture fails a test whose resident set grew by
  more than :data:`RSS_BOUND` bytes (generous: it catches a runaway buffer,
  not a few pages), and the summary shows the fd, thread and RSS deltas of
  the whole fault run.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import subprocess
import sys
import threading
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import pytest

from purenng.core.loop import background_loop
from purenng.testing.faultproxy import _in_thread
from support.peers import REQUIRE_ENV, ChildProcess, PeerError, require_peer
from support.waiting import TIMEOUT

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from purenng.testing import ProxyStats

#: Generous bound (seconds) on any single wait; only there to stop hangs.
T = TIMEOUT
PEER_SCRIPT = Path(__file__).with_name("faultpeer.py")
#: Libraries a peer process can use.
LIBS = ("purenng", "pynng", "nng")
#: Largest RSS growth (bytes) one test may leave behind.
RSS_BOUND = 128 * 1024 * 1024

__all__ = ["LIBS", "REQUIRE_ENV", "FaultPeer", "T", "record", "rss"]

R = TypeVar("R")
FIGURES: Counter[str] = Counter()
_start: dict[str, int] = {}


async def in_thread(fn: Callable[..., R], *args: Any) -> R:
    """``await`` ``fn(*args)`` run in a thread of its own that ends with the call.

    The fault proxy's own helper: no default-executor worker stays behind
    for the leak check to weigh.
    """
    return await _in_thread(functools.partial(fn, *args))


def rss() -> int:
    """This process's resident set size in bytes (``/proc/self/statm``; 0 elsewhere)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


def _fd_count() -> int:
    try:
        return len(os.listdir("/proc/self/fd"))
    except OSError:
        return 0


def record(stats: ProxyStats | None = None, *, messages: int = 0, **extra: int) -> None:
    """Add a proxy's counters and the messages a test checked to the session figures."""
    if stats is not None:
        for kind, n in stats.faults.items():
            FIGURES[f"fault:{kind}"] += n
        FIGURES["proxy connections"] += stats.connections
        FIGURES["proxy bytes"] += stats.bytes_up + stats.bytes_down
        FIGURES["proxy pieces"] += stats.pieces
    FIGURES["messages checked"] += messages
    for k, v in extra.items():
        FIGURES[k.replace("_", " ")] += v


@pytest.fixture(autouse=True)
def _rss_bound() -> Iterator[None]:
    if not _start:
        # The background loop is process-wide (its thread and fds are no test's).
        background_loop()
        _start.update(rss=rss(), fds=_fd_count(), threads=threading.active_count())
    before = rss()
    yield
    grown = rss() - before
    FIGURES["max rss growth in one test (KiB)"] = max(
        FIGURES["max rss growth in one test (KiB)"], grown // 1024
    )
    assert grown < RSS_BOUND, f"RSS grew by {grown / 2**20:.1f} MiB in this test"


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not FIGURES:
        return
    tr = terminalreporter
    tr.section("fault injection")
    for k in sorted(FIGURES):
        tr.write_line(f"{k}: {FIGURES[k]}")
    if _start:
        tr.write_line(
            f"since the first fault test: fds {_fd_count() - _start['fds']:+d}, "
            f"threads {threading.active_count() - _start['threads']:+d}, "
            f"rss {(rss() - _start['rss']) / 2**20:+.1f} MiB"
        )


class FaultPeer:
    """:mod:`faultpeer` in a child process (see its docstring for ``cfg``).

    Args:
        lib: ``purenng``, ``pynng`` or ``nng`` (a missing one skips the test,
            or fails it with ``PURENNG_REQUIRE_PEERS`` set).
        role: ``push``, ``pull``, ``req`` or ``rep``.
        loop: For ``purenng``: ``"asyncio"`` forces the standard loop in the
            child (``PURENNG_LOOP``); None lets it pick (uvloop when installed).
        **cfg: The rest of the peer's configuration (``listen=``, ``dial=``,
            ``count=``...).
    """

    def __init__(self, lib: str, role: str, *, loop: str | None = None, **cfg: Any) -> None:
        if lib != "purenng":
            require_peer(lib)
        cfg = {"lib": lib, "role": role, "timeout": T, "lifetime": 12 * T, **cfg}
        env = dict(os.environ)
        if loop is not None:
            env["PURENNG_LOOP"] = loop
        self.lib = lib
        self.role = role
        self._child = ChildProcess(
            [sys.executable, str(PEER_SCRIPT), json.dumps(cfg)],
            stdin=True,
            env=env,
            name=f"{lib} {role} peer",
        )
        self.proc = self._child.proc
        try:
            ready = self.event("ready")
        except BaseException:
            self.close()
            raise
        self.url: str = ready["url"]
        self.pid: int = ready["pid"]

    def describe(self, problem: str) -> str:
        return self._child.describe(problem)

    def event(self, name: str, timeout: float = T) -> dict[str, Any]:
        """Read lines until the event ``name``; return it (``error`` raises)."""
        while True:
            line = self._child.readline(timeout, repr(name))
            if line is None:
                raise PeerError(self.describe(f"exited before {name!r}"))
            obj: dict[str, Any] = json.loads(line)
            if obj.get("event") == "error":
                raise PeerError(self.describe(f"peer failed: {obj.get('error')}"))
            if obj.get("event") == name:
                return obj

    def done(self, timeout: float = T) -> dict[str, Any]:
        """The peer's final report; fails the test if it lists errors."""
        out = self.event("done", timeout)
        assert out["error_count"] == 0, f"{self.lib} {self.role} peer: {out['errors']}"
        return out

    async def adone(self, timeout: float = T) -> dict[str, Any]:
        """:meth:`done` in a thread, so the test's loop (and a proxy on it) runs."""
        return await in_thread(self.done, timeout)

    async def aevent(self, name: str, timeout: float = T) -> dict[str, Any]:
        """:meth:`event` in a thread."""
        return await in_thread(self.event, name, timeout)

    def kill(self) -> None:
        """SIGKILL (kill -9) the peer and reap it."""
        self._child.kill()

    def close(self) -> None:
        """Close its stdin (it then closes its socket and exits), kill it if it stays."""
        if self._child.closed:
            return
        try:
            if self.proc.stdin is not None:
                with contextlib.suppress(OSError):
                    self.proc.stdin.close()
            try:
                self.proc.wait(T)
            except subprocess.TimeoutExpired:
                pass
        finally:
            self._child.close()

    def __enter__(self) -> FaultPeer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@pytest.fixture
def fault_peers() -> Iterator[list[FaultPeer]]:
    """A list tests append their peers to; whatever is still running is closed."""
    peers: list[FaultPeer] = []
    yield peers
    for p in peers:
        p.close()
