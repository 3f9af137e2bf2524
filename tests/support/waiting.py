"""Polling until a condition holds, with a deadline and a clear failure.

For conditions that span sockets, pipes and threads and so share no event to
wait on (a pipe attached, a counter reached).  ``wait_for`` blocks the
calling thread; ``await_for`` yields to the running loop between polls, so
the loop that must make the condition true keeps running.  Either raises an
``AssertionError`` naming ``what`` once ``timeout`` seconds have passed.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["INTERVAL", "TIMEOUT", "await_for", "wait_for"]

#: Generous bound (seconds) on a single wait; only there to stop hangs.
TIMEOUT = 10.0
#: Seconds between two polls.
INTERVAL = 0.005


def _timed_out(what: str, timeout: float) -> AssertionError:
    return AssertionError(f"timed out after {timeout} s waiting for {what}")


def wait_for(
    cond: Callable[[], object],
    what: str = "the condition",
    *,
    timeout: float = TIMEOUT,
    interval: float = INTERVAL,
) -> None:
    """Poll ``cond()`` from this thread until it is true.

    Raises:
        AssertionError: ``cond()`` was still false after ``timeout`` seconds.
    """
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise _timed_out(what, timeout)
        time.sleep(interval)


async def await_for(
    cond: Callable[[], object],
    what: str = "the condition",
    *,
    timeout: float = TIMEOUT,
    interval: float = INTERVAL,
) -> None:
    """Poll ``cond()`` on the running loop until it is true.

    Raises:
        AssertionError: ``cond()`` was still false after ``timeout`` seconds.
    """
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise _timed_out(what, timeout)
        await asyncio.sleep(interval)
