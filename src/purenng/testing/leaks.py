"""Leak checks: file descriptors, threads and asyncio tasks left behind by a test.

A test that closes its sockets must leave the process as it found it: no
extra open file descriptors, no extra threads, no extra pending tasks on its
loop.  This module takes a :class:`ResourceSnapshot` before the code under
test and compares the process against it afterwards.

Rules:

* **File descriptors** are read from ``/proc/self/fd`` (``/dev/fd``
  elsewhere) with what each one points to (``socket:[1234]``, a path...).  An
  fd counts as leaked when it is open afterwards and was not open, pointing to
  the same thing, before.  Descriptors open on ``/dev/null`` are ignored:
  libuv (under uvloop) reserves one per loop on the loop's first listen, to
  recover from EMFILE, and keeps it as long as the loop.  Where neither
  directory exists fds are not checked.
* **Threads** are compared by identity.  Two kinds are never leaks: purenng's
  background loop thread (``purenng-loop``, :mod:`purenng.core.loop`), which
  is process-wide and lives as long as the process, and the idle workers of
  the loop's default executor (``asyncio_N``, or ``uvloop_N`` under uvloop),
  which live as long as their loop.
* **Tasks** are those of the loop running in the calling thread when the
  snapshot was taken (none if no loop was running).  The task doing the
  check is never counted, and finished tasks are not leaks.

Theory of operation: closing is often asynchronous (an asyncio transport
closes its fd on the next loop turn, a pipe's task ends after its
cancellation is delivered), so a check polls for up to ``timeout`` seconds
and only fails if something is still open at the end.  The async form lets
the loop run while it waits, which is what lets those closes complete.
"""

from __future__ import annotations

import asyncio
import os
import re
import threading
import time
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterator

__all__ = [
    "LeakError",
    "Leaks",
    "ResourceSnapshot",
    "aassert_no_leaks",
    "ano_leaks",
    "assert_no_leaks",
    "find_leaks",
    "no_leaks",
    "snapshot_resources",
]

#: Seconds a check waits for resources to go away before it fails.
DEFAULT_TIMEOUT = 2.0
#: Pause between two looks at the process while waiting.
POLL_INTERVAL = 0.02

#: The background loop's thread name (core/loop.py): process-wide, never a leak.
_LOOP_THREAD = "purenng-loop"
#: The default executor names its workers ``asyncio_0``, ``asyncio_1``... and
#: ``uvloop_0``... under uvloop.
_EXECUTOR_THREAD = re.compile(r"(asyncio|uvloop)_\d+\Z")
_FD_DIRS = ("/proc/self/fd", "/dev/fd")
#: Descriptor targets that are never a test's leak (see the module docstring).
_IGNORED_FD_TARGETS = frozenset({"/dev/null"})


class LeakError(AssertionError):
    """Resources were still open after the code under test finished.

    Attributes:
        leaks: What was left open.
    """

    def __init__(self, leaks: Leaks, timeout: float) -> None:
        self.leaks = leaks
        super().__init__(f"still open {timeout:g} s after the test: {leaks.describe()}")


@dataclass(frozen=True)
class ResourceSnapshot:
    """What was open at one moment.

    Attributes:
        fds: Open file descriptors and what each points to; None where the
            platform cannot list them.
        threads: The live threads.
        loop: The loop that was running in the thread that took the snapshot.
        tasks: That loop's tasks at the time (empty without a loop).
    """

    fds: dict[int, str] | None
    threads: frozenset[threading.Thread]
    loop: asyncio.AbstractEventLoop | None = None
    tasks: frozenset[asyncio.Task[object]] = field(default_factory=frozenset)


@dataclass(frozen=True)
class Leaks:
    """What is open now and was not in a snapshot.

    Attributes:
        fds: Leaked descriptors and what they point to.
        threads: Names of leaked threads.
        tasks: Reprs of leaked tasks.
    """

    fds: dict[int, str] = field(default_factory=dict)
    threads: list[str] = field(default_factory=list)
    tasks: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.fds or self.threads or self.tasks)

    def describe(self) -> str:
        """One line per kind, for failure messages."""
        parts = []
        if self.fds:
            shown = ", ".join(f"{fd} -> {target}" for fd, target in sorted(self.fds.items()))
            parts.append(f"{len(self.fds)} file descriptor(s) [{shown}]")
        if self.threads:
            parts.append(f"{len(self.threads)} thread(s) {self.threads}")
        if self.tasks:
            parts.append(f"{len(self.tasks)} task(s) {self.tasks}")
        return "; ".join(parts) or "nothing"


def _open_fds() -> dict[int, str] | None:
    for path in _FD_DIRS:
        try:
            names = os.listdir(path)
        except OSError:
            continue
        fds: dict[int, str] = {}
        for name in names:
            try:
                fds[int(name)] = os.readlink(f"{path}/{name}")
            except (OSError, ValueError):
                # The descriptor listdir itself used is closed by now.
                continue
        return fds
    return None


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


def _current_task() -> asyncio.Task[object] | None:
    try:
        return asyncio.current_task()
    except RuntimeError:
        return None


def snapshot_resources() -> ResourceSnapshot:
    """Record the open fds, the threads and the running loop's tasks."""
    loop = _running_loop()
    tasks: frozenset[asyncio.Task[object]] = frozenset()
    if loop is not None:
        tasks = frozenset(asyncio.all_tasks(loop))
    return ResourceSnapshot(_open_fds(), frozenset(threading.enumerate()), loop, tasks)


def find_leaks(before: ResourceSnapshot) -> Leaks:
    """What is open now that was not open in ``before`` (one look, no waiting).

    Tasks are compared only when ``before`` saw a loop and that loop is the
    one running now, or is not running at all (then it can be inspected
    safely from here).
    """
    fds: dict[int, str] = {}
    if before.fds is not None:
        now = _open_fds() or {}
        fds = {
            fd: t
            for fd, t in now.items()
            if before.fds.get(fd) != t and t not in _IGNORED_FD_TARGETS
        }
    threads = [
        t.name
        for t in threading.enumerate()
        if t not in before.threads
        and t.is_alive()
        and t.name != _LOOP_THREAD
        and not _EXECUTOR_THREAD.match(t.name)
    ]
    tasks: list[str] = []
    loop = before.loop
    if loop is not None and not loop.is_closed():
        running = _running_loop()
        if running is loop or not loop.is_running():
            me = _current_task() if running is loop else None
            tasks = [
                repr(t)
                for t in asyncio.all_tasks(loop)
                if t not in before.tasks and t is not me and not t.done()
            ]
    return Leaks(fds, threads, tasks)


def assert_no_leaks(before: ResourceSnapshot, *, timeout: float = DEFAULT_TIMEOUT) -> None:
    """Wait up to ``timeout`` seconds for everything opened since ``before`` to close.

    Blocks the calling thread; inside a running loop use
    :func:`aassert_no_leaks`, which lets the loop finish its closes.

    Raises:
        LeakError: something was still open when the time ran out.
        RuntimeError: called on the running loop that ``before`` watches.
    """
    if before.loop is not None and _running_loop() is before.loop:
        raise RuntimeError("assert_no_leaks() would block the loop; use aassert_no_leaks()")
    deadline = time.monotonic() + timeout
    while True:
        leaks = find_leaks(before)
        if not leaks:
            return
        if time.monotonic() >= deadline:
            raise LeakError(leaks, timeout)
        time.sleep(POLL_INTERVAL)


async def aassert_no_leaks(before: ResourceSnapshot, *, timeout: float = DEFAULT_TIMEOUT) -> None:
    """Coroutine form of :func:`assert_no_leaks`; the loop keeps running while it waits.

    Raises:
        LeakError: something was still open when the time ran out.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        leaks = find_leaks(before)
        if not leaks:
            return
        if loop.time() >= deadline:
            raise LeakError(leaks, timeout)
        await asyncio.sleep(POLL_INTERVAL)


@contextmanager
def no_leaks(timeout: float = DEFAULT_TIMEOUT) -> Iterator[ResourceSnapshot]:
    """Check that the ``with`` body leaves nothing open (when it does not raise).

    Raises:
        LeakError: as :func:`assert_no_leaks`.
    """
    before = snapshot_resources()
    yield before
    assert_no_leaks(before, timeout=timeout)


@asynccontextmanager
async def ano_leaks(timeout: float = DEFAULT_TIMEOUT) -> AsyncIterator[ResourceSnapshot]:
    """Check that the ``async with`` body leaves nothing open, tasks included.

    Raises:
        LeakError: as :func:`aassert_no_leaks`.
    """
    before = snapshot_resources()
    yield before
    await aassert_no_leaks(before, timeout=timeout)
