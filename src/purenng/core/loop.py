"""The event loop a socket lives on, and purenng's background loop thread.

Rules (DESIGN.md, "Concurrency model"):

* A socket created inside a running asyncio loop belongs to that loop.
* A socket created outside one belongs to the background loop: one per
  process, started lazily in a daemon thread, uvloop when it is installed
  (``PURENNG_LOOP=asyncio`` forces the standard loop).
* Blocking calls made on the loop that owns the socket raise
  :class:`~purenng.core.errors.WrongThread` instead of deadlocking.
* ``os.fork()`` (``multiprocessing``'s default start method on Linux) copies
  the background loop object but not its thread.  The child forgets it and
  starts a fresh one on first use; sockets inherited from the parent are
  marked closed in the child (their hooks run from :func:`on_fork_in_child`),
  so using one raises :class:`~purenng.core.errors.Closed` saying what to
  do instead of waiting forever on a loop nobody runs.
"""

from __future__ import annotations

import asyncio
import atexit
import os
import threading
from asyncio import _get_running_loop
from typing import TYPE_CHECKING, TypeVar

from .errors import WrongThread

if TYPE_CHECKING:
    from collections.abc import Callable, Coroutine
    from typing import Any

__all__ = [
    "background_loop",
    "check_not_on_loop",
    "current_loop",
    "forked_away",
    "on_fork_in_child",
    "run_sync",
]

T = TypeVar("T")

_lock = threading.Lock()
_loop: asyncio.AbstractEventLoop | None = None
_thread: threading.Thread | None = None
#: Loops left behind by ``os.fork()``: they exist in this process, nothing runs them.
_orphans: list[asyncio.AbstractEventLoop] = []
_fork_hooks: list[Callable[[asyncio.AbstractEventLoop], None]] = []


def _new_loop() -> asyncio.AbstractEventLoop:
    choice = os.environ.get("PURENNG_LOOP", "auto").lower()
    if choice in ("auto", "uvloop"):
        try:
            import uvloop
        except ImportError:
            if choice == "uvloop":
                raise
        else:
            return uvloop.new_event_loop()  # type: ignore[no-any-return,unused-ignore]
    return asyncio.new_event_loop()


def background_loop() -> asyncio.AbstractEventLoop:
    """The process-wide background loop, started on first use."""
    global _loop, _thread
    loop = _loop
    if loop is not None and not loop.is_closed():
        return loop
    with _lock:
        if _loop is not None and not _loop.is_closed():
            return _loop
        loop = _new_loop()
        ready = threading.Event()

        def run() -> None:
            asyncio.set_event_loop(loop)
            loop.call_soon(ready.set)
            try:
                loop.run_forever()
            finally:
                asyncio.set_event_loop(None)

        thread = threading.Thread(target=run, name="purenng-loop", daemon=True)
        thread.start()
        ready.wait()
        _loop, _thread = loop, thread
        return loop


def _stop_background_loop() -> None:
    loop, thread = _loop, _thread
    if loop is None or thread is None or loop.is_closed():
        return
    loop.call_soon_threadsafe(loop.stop)
    thread.join(timeout=2.0)


atexit.register(_stop_background_loop)


def on_fork_in_child(hook: Callable[[asyncio.AbstractEventLoop], None]) -> None:
    """Call ``hook(old_loop)`` in a forked child whose parent had a background loop."""
    _fork_hooks.append(hook)


def forked_away(loop: asyncio.AbstractEventLoop) -> bool:
    """Whether ``loop`` is a parent's loop copied into this process by ``fork``."""
    return any(loop is old for old in _orphans)


def _after_fork_in_child() -> None:
    global _lock, _loop, _thread
    old = _loop
    _lock = threading.Lock()  # another thread may have held it at the fork
    _loop = None
    _thread = None
    if old is None:
        return
    _orphans.append(old)
    for hook in _fork_hooks:
        try:
            hook(old)
        except Exception:  # pragma: no cover - a hook must not break the child
            pass


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def reset_background_loop() -> None:
    """Stop and close the background loop; the next use starts a new one.

    For test suites that run the same tests on several loops
    (``PURENNG_LOOP`` is read again when the new loop starts).  Every
    socket on the old loop must be closed already: nothing runs it after.
    """
    global _loop, _thread
    with _lock:
        loop, thread = _loop, _thread
        _loop = _thread = None
    if loop is None or loop.is_closed():
        return
    loop.call_soon_threadsafe(loop.stop)
    if thread is not None:
        thread.join(timeout=10.0)
    if not loop.is_running():
        loop.close()


def background_thread() -> threading.Thread | None:
    """The background loop's thread, if it was started (for leak checks)."""
    return _thread


def current_loop() -> asyncio.AbstractEventLoop:
    """The loop a socket created now belongs to."""
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return background_loop()


def check_not_on_loop(loop: asyncio.AbstractEventLoop, what: str) -> None:
    """Refuse a blocking call made from inside ``loop``'s own thread.

    Raises:
        WrongThread: the caller is running on ``loop``.
    """
    # _get_running_loop() returns None instead of raising: this runs on
    # every blocking send and recv.
    if _get_running_loop() is loop:
        raise WrongThread(
            f"blocking {what}() called on the event loop that owns this socket; "
            f"use 'await a{what}()' instead"
        )


_FORK_ADVICE = (
    "this socket was made before os.fork() and cannot be used in the child; "
    "make new sockets in the child process (or use multiprocessing's 'spawn' "
    "or 'forkserver' start method)"
)


def run_sync(loop: asyncio.AbstractEventLoop, coro: Coroutine[Any, Any, T], what: str) -> T:
    """Run ``coro`` on ``loop`` from another thread and wait for its result.

    A KeyboardInterrupt while waiting cancels the coroutine and propagates.

    Raises:
        Closed: ``loop`` was left behind by ``os.fork()`` (nothing runs it here).
    """
    try:
        check_not_on_loop(loop, what)
        if _orphans and forked_away(loop):
            from .errors import Closed

            raise Closed(_FORK_ADVICE)
        fut = asyncio.run_coroutine_threadsafe(coro, loop)
    except BaseException:
        coro.close()  # never scheduled: no "coroutine was never awaited" warning
        raise
    try:
        return fut.result()
    except BaseException:
        fut.cancel()
        raise
