"""Awaiting a socket's work from another asyncio loop, or from trio.

A socket lives on one loop (:mod:`purenng.core.loop`).  Its ``a``-methods
called from a coroutine on that loop run directly; called from another
asyncio loop or from trio they run as a task on the socket's loop and are
awaited here, through :func:`bridge`.  This is the only place that crosses
loops for the async API; the blocking API crosses threads with
:func:`purenng.core.loop.run_sync`.

Theory of operation: :func:`bridge` starts the coroutine on the socket's
loop with ``call_soon_threadsafe`` and waits on a future of the caller's
loop, which the task's done callback completes from the other thread.
Cancellation loses nothing: the remote task is cancelled and its real end
awaited, and a result that was ready first (a message already taken off a
queue) goes to ``orphan`` on the socket's loop, where a receive puts it back
at the head of its queue.  Under trio the same contract is kept by
:mod:`purenng.core.bridge_trio`, without a thread per call.
"""

from __future__ import annotations

import asyncio
import sys
from asyncio import _get_running_loop
from typing import TYPE_CHECKING, Any, TypeVar

from . import loop as _loop_mod
from .errors import Closed
from .loop import _FORK_ADVICE, forked_away

if TYPE_CHECKING:
    from collections.abc import Callable, Coroutine

__all__ = ["acall", "bridge", "running_loop"]

T = TypeVar("T")

#: The running loop or None, without raising: it runs on every asend/arecv.
running_loop: Callable[[], asyncio.AbstractEventLoop | None] = _get_running_loop


async def bridge(
    loop: asyncio.AbstractEventLoop,
    coro: Coroutine[Any, Any, T],
    orphan: Callable[[T], None] | None = None,
) -> T:
    """Run ``coro`` on ``loop`` and await it from another asyncio loop or trio.

    Cancellation loses nothing: the task on ``loop`` is cancelled and its real
    end awaited.  If it finished first (a message was already received), its
    result goes to ``orphan`` on ``loop`` (a receive puts the message back at
    the head of the queue) and the cancellation propagates.
    """
    if _loop_mod._orphans and forked_away(loop):
        coro.close()
        raise Closed(_FORK_ADVICE)
    if "trio" in sys.modules:
        from .bridge_trio import in_trio, run_on_loop

        if in_trio():
            return await run_on_loop(loop, coro)
    here = asyncio.get_running_loop()
    result: asyncio.Future[T] = here.create_future()
    tasks: list[asyncio.Task[T]] = []

    def copy(task: asyncio.Task[T]) -> None:  # on the caller's loop
        if result.done():
            return
        if task.cancelled():
            result.cancel()
        elif (exc := task.exception()) is not None:
            result.set_exception(exc)
        else:
            result.set_result(task.result())

    def done(task: asyncio.Task[T]) -> None:  # on ``loop``
        try:
            here.call_soon_threadsafe(copy, task)
        except RuntimeError:  # the caller's loop is gone: keep what we got
            if orphan is not None and not task.cancelled() and task.exception() is None:
                orphan(task.result())

    def start() -> None:  # on ``loop``
        task = loop.create_task(coro)
        tasks.append(task)
        task.add_done_callback(done)

    try:
        loop.call_soon_threadsafe(start)
    except RuntimeError as exc:
        coro.close()
        raise Closed("the socket's event loop is closed") from exc
    try:
        return await asyncio.shield(result)
    except asyncio.CancelledError:
        if result.done() and not result.cancelled():
            pass  # finished in the same turn: handled below
        else:
            try:
                loop.call_soon_threadsafe(lambda: tasks and tasks[0].cancel())
            except RuntimeError:
                raise
            while not result.done():
                try:
                    await asyncio.shield(result)
                except asyncio.CancelledError:
                    continue  # still waiting for the task's real end
                except Exception:
                    break
        if (
            orphan is not None
            and result.done()
            and not result.cancelled()
            and result.exception() is None
        ):
            try:
                loop.call_soon_threadsafe(orphan, result.result())
            except RuntimeError:
                pass
        raise


async def acall(fn: Callable[..., T], args: tuple[Any, ...]) -> T:
    return fn(*args)
