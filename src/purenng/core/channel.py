"""Send and receive machinery shared by sockets and contexts.

A :class:`Channel` sits between the application and one protocol context (a
socket's default context, or a :class:`~purenng.core.context.Context`).  The
protocol side is two callables, ``try_send(msg) -> bool`` and
``can_send() -> bool``, and the protocol feeds received messages to
:meth:`Channel.deliver`.

Theory of operation:

* **On the owning loop** (``asend``/``arecv``) a message goes straight to
  ``try_send``, or waits as a future in FIFO order until the protocol calls
  :meth:`Channel.send_ready`.  ``arecv`` pops the receive queue or waits.
* **From another thread** (``send``/``recv``) the channel avoids one thread
  hop per message.  The loop grants *credit*: while the protocol can take
  messages, up to :data:`SEND_WINDOW` messages may be handed over without
  waiting.  A sender with credit appends to a hand-off deque and schedules one
  flush on the loop for the whole batch (``call_soon_threadsafe`` only when no
  flush is pending).  Credit is the one piece of send state that user threads
  and the loop both write; ``_credit_lock`` guards it with this invariant:
  ``0 <= credit`` and ``len(handoff) + credit <= SEND_WINDOW``, so however
  many threads send at once, at most :data:`SEND_WINDOW` messages wait in the
  hand-off deque, and a revocation by the loop (the protocol is full) is
  never undone by a thread that read the credit before it.  ``_flush_scheduled``
  changes under the same lock, so every message appended to the deque is
  seen by a flush that runs after the append.  Without credit it takes the slow path: one request to
  the loop and a wait for its verdict, which keeps ``TryAgain`` and
  ``send_timeout`` exact when the protocol cannot send.  Messages in the
  hand-off deque are accepted: they stay queued across pipe loss and go out as
  soon as the protocol takes them.
* Receivers in other threads pop the shared deque directly (``deque`` appends
  and pops are atomic) and sleep on a condition variable only when it is
  empty; the loop signals it only when a thread is waiting.
* Back-pressure on receive: :meth:`deliver` returns False once the queue
  holds ``recv_capacity`` messages; the protocol then pauses its pipes and
  :meth:`Channel.on_space` is called (on the loop) when the application has
  drained half of it.
* :meth:`close` fails every waiter, in any thread, with ``Closed``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
from asyncio import _get_running_loop
from collections import deque
from time import monotonic
from typing import TYPE_CHECKING, Any

from .errors import Closed, Timeout, TryAgain
from .loop import check_not_on_loop
from .message import Message, check_message

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["SEND_WINDOW", "Channel"]

log: logging.Logger = logging.getLogger("purenng")

#: Messages a foreign thread may hand to the loop without waiting for it.
SEND_WINDOW = 256

_AnyFuture = asyncio.Future[Any] | concurrent.futures.Future[Any]


def _resolve(fut: _AnyFuture, result: Any = None, exc: BaseException | None = None) -> bool:
    """Complete ``fut`` unless it is already done; True if this call did it."""
    if fut.done():
        return False
    try:
        if exc is None:
            fut.set_result(result)
        else:
            fut.set_exception(exc)
    except (asyncio.InvalidStateError, concurrent.futures.InvalidStateError):
        return False
    return True


class Channel:
    """The application-facing end of one protocol context.

    A channel is made first and bound to its protocol context afterwards
    (:meth:`bind`): the protocol's context is built with the channel it
    delivers to, and the channel then sends through that context.  Until
    bound, the protocol takes nothing (sends wait or fail as with a full
    protocol).

    Args:
        loop: The loop that owns the protocol.
        recv_capacity: Messages queued for the application before
            :meth:`deliver` asks the protocol to stop reading.
        name: Used in error messages.
    """

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        *,
        recv_capacity: int = 128,
        name: str = "socket",
    ) -> None:
        self.loop = loop
        #: Offer a message to the protocol; True if it took it (loop only).
        self.try_send: Callable[[Message], bool] = _refuse
        #: Whether ``try_send`` would succeed now (loop only).
        self.can_send: Callable[[], bool] = _never
        self.recv_capacity: int = max(1, recv_capacity)
        self.name = name
        self.closed: bool = False
        #: Called on the loop when a full receive queue has room again.
        self.on_space: Callable[[], None] | None = None
        #: Raised by a receive that finds nothing queued, instead of waiting
        #: (the protocol sets it: e.g. REQ before any request, an expired
        #: survey).  None: wait as usual.
        self.recv_error: BaseException | None = None
        #: Checks a message in the sender's own thread before it is queued,
        #: so that a bad message fails its caller even on the batched path
        #: (e.g. a raw header the protocol refuses).  Raises to refuse.
        self.check_send: Callable[[Message], None] | None = None
        #: For protocols that hand messages out on demand (REQ and REP hold a
        #: reply or request until a receive asks, so that it is the one the
        #: application saw).  Called on the loop as ``on_recv_wait(poll)``
        #: when a receive finds the queue empty: ``poll=False`` once it waits
        #: (deliver only while :attr:`has_receiver` holds), ``poll=True`` for
        #: a non-blocking receive (deliver now, it is taken at once).
        self.on_recv_wait: Callable[[bool], None] | None = None
        self._fail_gen = 0
        self._fail_exc: BaseException | None = None
        # send side
        self._handoff: deque[Message] = deque()
        self._send_waiters: deque[tuple[Message, _AnyFuture, asyncio.TimerHandle | None]] = deque()
        self._credit = 0
        self._flush_scheduled = False
        self._credit_lock = threading.Lock()
        self._kicking = False
        # receive side
        self._rq: deque[Message] = deque()
        self._recv_waiters: deque[tuple[_AnyFuture, asyncio.TimerHandle | None]] = deque()
        self._cond = threading.Condition(threading.Lock())
        self._thread_waiters = 0
        self._send_cond = threading.Condition(threading.Lock())
        self._send_thread_waiters = 0
        self._wants_space = False

    # ------------------------------------------------------------ protocol side

    def bind(
        self,
        try_send: Callable[[Message], bool],
        can_send: Callable[[], bool],
        on_space: Callable[[], None] | None = None,
    ) -> None:
        """Connect the channel to its protocol context (on the loop, before use).

        Args:
            try_send: Offer a message to the protocol; True if it took it.
            can_send: Whether ``try_send`` would succeed now.
            on_space: Called when a full receive queue has room again.
        """
        self.try_send = try_send
        self.can_send = can_send
        self.on_space = on_space

    def deliver(self, msg: Message) -> bool:
        """Hand a received message to the application (loop only).

        Returns:
            False when the queue is now full: the protocol should stop reading
            until :attr:`on_space` is called.
        """
        waiters = self._recv_waiters
        while waiters:
            fut, timer = waiters.popleft()
            if timer is not None:
                timer.cancel()
            if _resolve(fut, msg):
                return True
        rq = self._rq
        rq.append(msg)
        # Wake one sleeping receiver per message only while there are fewer
        # messages than receivers: beyond that every receiver has been woken
        # and takes the next message itself before it sleeps again.  This
        # keeps a burst parsed out of one read to one wake-up, not one lock
        # round per message.
        if self._thread_waiters >= len(rq):
            with self._cond:
                self._cond.notify()
        if len(rq) >= self.recv_capacity:
            self._wants_space = True
            return False
        return True

    @property
    def recv_queued(self) -> int:
        """Messages received and not yet taken by the application."""
        return len(self._rq)

    def drop_oldest(self) -> Message | None:
        """Remove and return the oldest queued message, or None (loop only).

        For protocols that make room by dropping rather than by pausing a
        peer (SUB with ``prefer_new``).  A receiver in another thread taking
        a message at the same moment only means this one finds the next.
        """
        try:
            return self._rq.popleft()
        except IndexError:
            return None

    def discard_queued(self, keep: Callable[[Message], bool]) -> int:
        """Drop the queued messages ``keep`` refuses; how many went (loop only).

        The others keep their order.  Receivers in other threads pop from the
        left while this runs, so positions are counted from the right, which
        only the loop changes: a message taken meanwhile is simply gone.
        """
        rq = self._rq
        snapshot = list(rq)
        n = len(snapshot)
        dropped = 0
        for i in range(n - 1, -1, -1):
            if keep(snapshot[i]):
                continue
            try:
                del rq[i - n + dropped]
            except IndexError:
                break  # this one and all older ones were taken by receivers
            dropped += 1
        return dropped

    @property
    def has_receiver(self) -> bool:
        """Whether someone waits in ``arecv``/``recv`` right now (loop only)."""
        return bool(self._thread_waiters) or any(not f.done() for f, _ in self._recv_waiters)

    def requeue(self, msg: Message) -> None:
        """Give back a message whose receiver was cancelled after taking it (loop only).

        It goes to the next receiver, ahead of everything queued.
        """
        waiters = self._recv_waiters
        while waiters:
            fut, timer = waiters.popleft()
            if timer is not None:
                timer.cancel()
            if _resolve(fut, msg):
                return
        self._rq.appendleft(msg)
        if self._thread_waiters:
            with self._cond:
                self._cond.notify()

    def fail_receivers(self, exc: BaseException) -> None:
        """Fail every receive waiting right now with ``exc`` (loop only).

        Used by protocols whose receive can end without a message (a survey
        deadline).  Later receives are not affected; see :attr:`recv_error`.
        """
        waiters = self._recv_waiters
        while waiters:
            fut, timer = waiters.popleft()
            if timer is not None:
                timer.cancel()
            _resolve(fut, exc=exc)
        if self._thread_waiters:
            with self._cond:
                self._fail_exc = exc
                self._fail_gen += 1
                self._cond.notify_all()

    def send_ready(self) -> None:
        """The protocol may take messages again (loop only)."""
        if self._kicking:
            return
        self._kicking = True
        try:
            self._kick()
        finally:
            self._kicking = False

    def _kick(self) -> None:
        hq = self._handoff
        try_send = self.try_send
        while hq:
            try:
                taken = try_send(hq[0])
            except Exception:
                # Accepted earlier, refused now (e.g. a raw header the
                # protocol rejects): drop it, as a send buffer would.
                log.exception("%s: dropped a queued message", self.name)
                taken = True
            if not taken:
                self._revoke_credit()
                return
            hq.popleft()
        waiters = self._send_waiters
        while waiters:
            msg, fut, timer = waiters[0]
            if fut.done():
                waiters.popleft()
                continue
            try:
                taken = try_send(msg)
            except Exception as exc:
                waiters.popleft()
                if timer is not None:
                    timer.cancel()
                _resolve(fut, exc=exc)
                continue
            if not taken:
                self._revoke_credit()
                return
            waiters.popleft()
            if timer is not None:
                timer.cancel()
            _resolve(fut)
        self._grant_credit()

    def _grant_credit(self) -> None:
        """Let threads hand over messages again, if the protocol can take one (loop only)."""
        can = self.can_send()
        with self._credit_lock:
            self._credit = max(0, SEND_WINDOW - len(self._handoff)) if can else 0

    def _revoke_credit(self) -> None:
        """Send no more through the hand-off deque until the next grant (loop only)."""
        with self._credit_lock:
            self._credit = 0

    # ------------------------------------------------------------ async API (owning loop)

    def send_now(self, msg: Message) -> bool:
        """The fast path of :meth:`asend`, without a coroutine (owning loop only).

        True if the protocol took ``msg`` at once; False if the caller must
        fall back to :meth:`asend` (nothing was done).  A coroutine call and
        its ``await`` cost more than the rest of a small send, so the socket
        tries this first.
        """
        if type(msg.body) is not bytes or type(msg.header) is not bytes:
            check_message(msg)
        return (
            not self.closed
            and self.check_send is None
            and not self._handoff
            and not self._send_waiters
            and self.try_send(msg)
        )

    def take_now(self) -> Message | None:
        """The fast path of :meth:`arecv`: the next queued message, or None (owning loop only)."""
        rq = self._rq
        if not rq:
            return None
        msg = rq.popleft()
        if self._wants_space:
            self._maybe_space()
        return msg

    async def asend(self, msg: Message, timeout: float | None, block: bool = True) -> None:
        """Send on the owning loop."""
        if type(msg) is not Message or type(msg.body) is not bytes or type(msg.header) is not bytes:
            check_message(msg)
        if self.closed:
            raise Closed(f"{self.name} is closed")
        if self.check_send is not None:
            self.check_send(msg)
        if not self._handoff and not self._send_waiters and self.try_send(msg):
            return
        if not block:
            raise TryAgain(f"{self.name} cannot send now")
        fut = self.loop.create_future()
        self._queue_sender(msg, fut, timeout)
        try:
            await fut
        except asyncio.CancelledError:
            # The message was never taken: forget it.
            self._drop_sender(fut)
            raise

    def _queue_sender(self, msg: Message, fut: _AnyFuture, timeout: float | None) -> None:
        timer = None
        if timeout is not None:
            timer = self.loop.call_later(timeout, self._send_timed_out, fut)
        self._send_waiters.append((msg, fut, timer))
        self._revoke_credit()

    def _send_timed_out(self, fut: _AnyFuture) -> None:
        if _resolve(fut, exc=Timeout(f"send on {self.name} timed out")):
            self._drop_sender(fut)

    def _drop_sender(self, fut: _AnyFuture) -> None:
        for i, (_, f, timer) in enumerate(self._send_waiters):
            if f is fut:
                if timer is not None:
                    timer.cancel()
                del self._send_waiters[i]
                break
        # A removed head may unblock the ones behind it.
        if self._send_waiters or self._handoff:
            self.send_ready()

    async def arecv(self, timeout: float | None, block: bool = True) -> Message:
        """Receive on the owning loop."""
        rq = self._rq
        if not rq and not block and self.on_recv_wait is not None and not self.closed:
            self.on_recv_wait(True)
        if rq:
            msg = rq.popleft()
            if self._wants_space:
                self._maybe_space()
            return msg
        if self.closed:
            raise Closed(f"{self.name} is closed")
        if self.recv_error is not None:
            raise self.recv_error.with_traceback(None)  # shared instance: do not grow it
        if not block:
            raise TryAgain(f"nothing to receive on {self.name}")
        fut: asyncio.Future[Message] = self.loop.create_future()
        timer = None
        if timeout is not None:
            timer = self.loop.call_later(timeout, self._recv_timed_out, fut)
        self._recv_waiters.append((fut, timer))
        if self.on_recv_wait is not None:
            self.on_recv_wait(False)
        try:
            return await fut
        except asyncio.CancelledError:
            if timer is not None:
                timer.cancel()
            if fut.done() and not fut.cancelled() and fut.exception() is None:
                # Delivered and cancelled in the same turn: keep the message.
                rq.appendleft(fut.result())
            raise

    def _recv_timed_out(self, fut: _AnyFuture) -> None:
        _resolve(fut, exc=Timeout(f"recv on {self.name} timed out"))

    def _maybe_space(self) -> None:
        if self._wants_space and len(self._rq) <= self.recv_capacity // 2:
            self._wants_space = False
            cb = self.on_space
            if cb is not None:
                cb()

    # ------------------------------------------------------------ blocking API (other threads)

    def send(self, msg: Message, timeout: float | None, block: bool = True) -> None:
        """Send from a thread that is not the owning loop's."""
        if type(msg) is not Message or type(msg.body) is not bytes or type(msg.header) is not bytes:
            check_message(msg)
        if self.closed:
            raise Closed(f"{self.name} is closed")
        if _get_running_loop() is self.loop:  # check_not_on_loop, inlined: once per message
            check_not_on_loop(self.loop, "send")
        if self.check_send is not None:
            self.check_send(msg)
        while True:
            with self._credit_lock:
                if self._credit > 0:
                    self._credit -= 1
                    self._handoff.append(msg)
                    schedule: bool | None = not self._flush_scheduled
                    self._flush_scheduled = True
                else:
                    schedule = None
            if schedule is not None:
                if schedule:
                    try:
                        self.loop.call_soon_threadsafe(self._flush)
                    except RuntimeError as exc:
                        raise Closed(f"{self.name}: its event loop is closed") from exc
                return
            if not (block and self._flush_scheduled and self._wait_for_flush(timeout)):
                break
        cfut: concurrent.futures.Future[None] = concurrent.futures.Future()
        try:
            self.loop.call_soon_threadsafe(self._submit_send, msg, cfut, timeout, block)
        except RuntimeError as exc:
            raise Closed(f"{self.name}: its event loop is closed") from exc
        try:
            cfut.result()
        except BaseException:
            if cfut.cancel():
                # Not taken yet: make sure the loop forgets it.
                try:
                    self.loop.call_soon_threadsafe(self._drop_sender, cfut)
                except RuntimeError:
                    pass
            raise

    def _wait_for_flush(self, timeout: float | None) -> bool:
        """The window is used up but the loop has not taken the batch yet.

        Wait (at most ``timeout``) for it to do so rather than send one request
        per message.  Returns True if credit was granted meanwhile.
        """
        cond = self._send_cond
        deadline = None if timeout is None else monotonic() + timeout
        with cond:
            self._send_thread_waiters += 1
            try:
                while self._flush_scheduled and not self.closed:
                    if deadline is None:
                        cond.wait()
                    else:
                        left = deadline - monotonic()
                        if left <= 0:
                            return False
                        cond.wait(left)
            finally:
                self._send_thread_waiters -= 1
        return self._credit > 0 and not self.closed

    def _flush(self) -> None:
        with self._credit_lock:
            self._flush_scheduled = False
        if not self.closed:
            self.send_ready()
        if self._send_thread_waiters:
            with self._send_cond:
                self._send_cond.notify_all()

    def _submit_send(
        self,
        msg: Message,
        cfut: concurrent.futures.Future[None],
        timeout: float | None,
        block: bool,
    ) -> None:
        if cfut.done():
            return
        if self.closed:
            _resolve(cfut, exc=Closed(f"{self.name} is closed"))
            return
        try:
            taken = not self._handoff and not self._send_waiters and self.try_send(msg)
        except Exception as exc:
            _resolve(cfut, exc=exc)
            return
        if taken:
            _resolve(cfut)
            self._grant_credit()
            return
        if not block:
            _resolve(cfut, exc=TryAgain(f"{self.name} cannot send now"))
            return
        self._queue_sender(msg, cfut, timeout)

    def recv(self, timeout: float | None, block: bool = True) -> Message:
        """Receive from a thread that is not the owning loop's."""
        if _get_running_loop() is self.loop:  # check_not_on_loop, inlined
            check_not_on_loop(self.loop, "recv")
        rq = self._rq
        if not rq and not block and self.on_recv_wait is not None and not self.closed:
            self._demand(poll=True, wait=True)
        try:
            msg = rq.popleft()
        except IndexError:
            pass
        else:
            if self._wants_space:
                self._space_from_thread()
            return msg
        if self.closed:
            raise Closed(f"{self.name} is closed")
        if self.recv_error is not None:
            raise self.recv_error.with_traceback(None)  # shared instance: do not grow it
        if not block:
            raise TryAgain(f"nothing to receive on {self.name}")
        deadline = None
        if timeout is not None:
            deadline = monotonic() + timeout
        cond = self._cond
        with cond:
            self._thread_waiters += 1
            gen = self._fail_gen
            if self.on_recv_wait is not None:
                self._demand(poll=False, wait=False)
            try:
                while True:
                    try:
                        msg = rq.popleft()
                        break
                    except IndexError:
                        pass
                    if self.closed:
                        raise Closed(f"{self.name} is closed")
                    if self._fail_gen != gen and self._fail_exc is not None:
                        raise self._fail_exc
                    if deadline is None:
                        cond.wait()
                    else:
                        left = deadline - monotonic()
                        if left <= 0:
                            raise Timeout(f"recv on {self.name} timed out")
                        cond.wait(left)
            finally:
                self._thread_waiters -= 1
        if self._wants_space:
            self._space_from_thread()
        return msg

    def _demand(self, *, poll: bool, wait: bool) -> None:
        """Run :attr:`on_recv_wait` on the loop for a receiver in another thread."""
        done = threading.Event()

        def run() -> None:
            try:
                hook = self.on_recv_wait
                if hook is not None and not self.closed:
                    hook(poll)
            finally:
                done.set()

        try:
            self.loop.call_soon_threadsafe(run)
        except RuntimeError:
            return
        if wait:
            done.wait()

    def _space_from_thread(self) -> None:
        if len(self._rq) <= self.recv_capacity // 2:
            try:
                self.loop.call_soon_threadsafe(self._maybe_space)
            except RuntimeError:
                pass

    # ------------------------------------------------------------ close

    def close(self) -> None:
        """Fail every pending operation with Closed (loop only)."""
        if self.closed:
            return
        self.closed = True
        self._revoke_credit()
        exc = Closed(f"{self.name} is closed")
        for _, fut, timer in self._send_waiters:
            if timer is not None:
                timer.cancel()
            _resolve(fut, exc=exc)
        self._send_waiters.clear()
        self._handoff.clear()
        for fut, timer in self._recv_waiters:
            if timer is not None:
                timer.cancel()
            _resolve(fut, exc=exc)
        self._recv_waiters.clear()
        self._rq.clear()
        with self._cond:
            self._cond.notify_all()
        with self._send_cond:
            self._send_cond.notify_all()


def _refuse(msg: Message) -> bool:
    """An unbound channel's ``try_send``: the protocol takes nothing yet."""
    return False


def _never() -> bool:
    return False
