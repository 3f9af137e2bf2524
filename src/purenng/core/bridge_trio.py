"""Running purenng's async API from trio.

purenng does its I/O on asyncio.  Under trio there is no asyncio loop in the
calling thread, so a socket made in trio code lives on the background loop
(:mod:`purenng.core.loop`) and every ``asend``/``arecv``/``adial``/``aclose``
awaited from trio is run there and waited for here.

Theory of operation:

* **Detection.**  :func:`in_trio` asks sniffio, and only when ``trio`` was
  imported: asyncio programs never pay for it, and neither trio nor sniffio
  is a dependency of purenng (anyone running trio has both, trio depends on
  sniffio).
* **No thread per call.**  :func:`run_on_loop` schedules the coroutine as a
  task on the socket's loop (``call_soon_threadsafe``) and parks the trio
  task with ``wait_task_rescheduled``.  The asyncio task's done callback hands
  its outcome back with the trio token's ``run_sync_soon``, which reschedules
  the trio task.  One wake-up each way, no worker thread.
* **Cancellation loses nothing.**  On trio cancellation the abort function
  asks the loop to cancel the asyncio task and returns ``Abort.FAILED``: the
  trio task keeps waiting for the asyncio task's real end.  If the task was
  cancelled (the channel re-queues a message delivered in that same turn),
  trio gets ``Cancelled``.  If it finished first (a message was received, or
  a send was taken), trio gets that result, and the cancellation is raised at
  its next checkpoint, as trio does for operations that cannot be undone.
  Cancelling the concurrent future of ``run_coroutine_threadsafe`` instead
  would drop a result that was ready but not yet handed over.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any, TypeVar

from .errors import Closed

if TYPE_CHECKING:
    import asyncio
    from collections.abc import Callable, Coroutine

    import trio

__all__ = ["in_trio", "run_on_loop"]

T = TypeVar("T")


def in_trio() -> bool:
    """True when the calling coroutine runs under trio.

    Costs one dict lookup when trio was never imported.
    """
    if "trio" not in sys.modules:
        return False
    import sniffio

    try:
        return sniffio.current_async_library() == "trio"
    except sniffio.AsyncLibraryNotFoundError:
        return False


class _Call:
    """One coroutine run on an asyncio loop for a waiting trio task."""

    __slots__ = ("abandoned", "raise_cancel", "task")

    def __init__(self) -> None:
        #: The asyncio task, set on the loop before anything can cancel it.
        self.task: asyncio.Task[Any] | None = None
        #: Set by trio's abort function: raises the pending Cancelled.
        self.raise_cancel: Callable[[], Any] | None = None
        #: The loop closed under us: nothing will report back.
        self.abandoned = False


async def run_on_loop(loop: asyncio.AbstractEventLoop, coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` on ``loop`` (another thread) and wait for it from trio.

    Raises:
        Closed: ``loop`` is closed.
        trio.Cancelled: the trio task was cancelled and the coroutine was
            cancelled before it finished.
    """
    import outcome
    import trio

    try:
        await trio.lowlevel.checkpoint_if_cancelled()
        token = trio.lowlevel.current_trio_token()
        me = trio.lowlevel.current_task()
    except BaseException:
        coro.close()  # never scheduled: no "coroutine was never awaited" warning
        raise
    call = _Call()

    def finish(task: asyncio.Task[Any]) -> None:  # trio thread
        if call.abandoned:
            return
        result: outcome.Outcome[Any]
        if task.cancelled():
            if call.raise_cancel is not None:
                result = outcome.capture(call.raise_cancel)
            else:
                result = outcome.Error(Closed("the operation was cancelled on the socket's loop"))
        else:
            exc = task.exception()
            result = outcome.Value(task.result()) if exc is None else outcome.Error(exc)
        trio.lowlevel.reschedule(me, result)

    def done(task: asyncio.Task[Any]) -> None:  # loop thread
        try:
            token.run_sync_soon(finish, task)
        except trio.RunFinishedError:  # pragma: no cover - trio waits for its tasks
            pass

    def start() -> None:  # loop thread
        task = loop.create_task(coro)
        call.task = task
        task.add_done_callback(done)

    def cancel() -> None:  # loop thread, always after start() (FIFO)
        if call.task is not None:
            call.task.cancel()

    def abort(raise_cancel: Callable[[], Any]) -> trio.lowlevel.Abort:  # trio thread
        call.raise_cancel = raise_cancel
        try:
            loop.call_soon_threadsafe(cancel)
        except RuntimeError:  # the loop closed: the task will never report
            call.abandoned = True
            return trio.lowlevel.Abort.SUCCEEDED
        return trio.lowlevel.Abort.FAILED

    try:
        loop.call_soon_threadsafe(start)
    except RuntimeError as exc:
        coro.close()
        raise Closed("the socket's event loop is closed") from exc
    result: T = await trio.lowlevel.wait_task_rescheduled(abort)
    return result
