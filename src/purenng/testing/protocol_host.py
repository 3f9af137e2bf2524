"""A fake protocol host and a fake clock: test a protocol with no loop, socket or sleep.

A protocol (built-in or third-party) is a sans-IO state machine, so it can be
driven by hand.  :class:`FakeProtocolHost` is what a socket is to it (a
channel, options, counters, ``now()``, ``reject_pipe``) without an event loop:
its pipes are :class:`FakePipe` objects that record what the protocol writes,
and its one timer runs on a :class:`FakeClock` that moves only when the test
calls :meth:`FakeClock.advance`::

    from purenng.protocols.reqrep0 import Req0Protocol
    from purenng.testing import FakeClock, FakeProtocolHost

    clock = FakeClock()
    req = FakeProtocolHost(Req0Protocol, clock=clock, resend_time=5.0)
    pipe = req.add_pipe()
    req.send(b"ping")
    assert pipe.take()[0][4:] == b"ping"     # request id, then the body
    clock.advance(5.0)                       # the resend timer fires
    assert pipe.take()[0][4:] == b"ping"
    assert req.counters["resends"] == 1

Rules and theory of operation:

* The host feeds the protocol exactly the inputs a socket does (``add_pipe``,
  ``remove_pipe``, ``pipe_message``, ``pipe_writable``, ``try_send``,
  ``recv_space``, ``set_option``, ``on_timer``), on the test's thread, and
  after each one updates the protocol's timer through the same
  :class:`~purenng.core.protocol.ProtocolTimer` the socket uses.  A protocol
  that reaches for ``host.loop`` fails here with ``AttributeError``: there is
  none.
* The channel is a real :class:`~purenng.core.channel.Channel` (so the
  protocol sees the real ``deliver``, ``has_receiver``, ``fail_receivers``,
  ``send_ready`` ...) whose waiters are ``concurrent.futures.Future`` objects
  resolved synchronously, never on a loop.  :meth:`FakeEndpoint.send` and
  :meth:`FakeEndpoint.recv` are the non-blocking forms (they raise
  :class:`~purenng.TryAgain`); :meth:`FakeEndpoint.send_later` and
  :meth:`FakeEndpoint.recv_later` are a send or receive that waits, as a
  future to look at later.
* A :class:`FakePipe` records each write as one ``bytes`` (header + body).
  ``pipe.receive(payload)`` is the peer sending; while the protocol has the
  pipe paused, payloads wait in the pipe and are delivered once it resumes
  (at the end of the input that resumed it, as a real pipe delivers on a
  later loop turn).  ``pipe.set_writable(False)`` fills it;
  ``set_writable(True)`` tells the protocol (``pipe_writable``).  ``close()``
  removes it from the protocol at once.
* :meth:`FakeClock.advance` moves time forward, firing every due timer in
  time order with the clock set to that timer's time, including timers armed
  while it runs.  One clock can drive several hosts.
* Counters are a :class:`collections.Counter` (missing names read 0).

Not thread-safe, and not meant to be: everything runs on the caller's thread.
"""

from __future__ import annotations

import concurrent.futures
import heapq
from collections import Counter, deque
from itertools import count as _count
from typing import TYPE_CHECKING, Any, cast

from ..core.channel import Channel
from ..core.errors import BadOption, Closed, NotSupported, ProtocolError, TryAgain
from ..core.message import Message, check_message
from ..core.options import SOCKET_OPTIONS, validate
from ..core.pipe import Pipe
from ..core.protocol import Protocol, ProtocolTimer, has_timer

if TYPE_CHECKING:
    import asyncio
    from collections.abc import Callable

    from ..core.message import BytesLike

__all__ = ["FakeClock", "FakeContext", "FakeEndpoint", "FakePipe", "FakeProtocolHost", "FakeTimer"]


# ---------------------------------------------------------------- clock


class FakeTimer:
    """A callback armed on a :class:`FakeClock`; ``cancel()`` disarms it."""

    __slots__ = ("_callback", "cancelled", "when")

    def __init__(self, when: float, callback: Callable[[], Any]) -> None:
        self.when: float = when
        self._callback = callback
        self.cancelled: bool = False

    def cancel(self) -> None:
        self.cancelled = True

    def __repr__(self) -> str:
        state = " cancelled" if self.cancelled else ""
        return f"<FakeTimer at {self.when:g}{state}>"


class FakeClock:
    """Time that moves only when told to.

    Args:
        start: The time it starts at (seconds; any origin).
    """

    def __init__(self, start: float = 0.0) -> None:
        self._now = float(start)
        self._timers: list[tuple[float, int, FakeTimer]] = []
        self._serial = _count()

    def time(self) -> float:
        """The current fake time."""
        return self._now

    def call_at(self, when: float, callback: Callable[[], Any]) -> FakeTimer:
        """Run ``callback()`` once the clock reaches ``when`` (``loop.call_at``)."""
        timer = FakeTimer(when, callback)
        heapq.heappush(self._timers, (when, next(self._serial), timer))
        return timer

    def call_later(self, delay: float, callback: Callable[[], Any]) -> FakeTimer:
        """Run ``callback()`` ``delay`` seconds from now (``loop.call_later``)."""
        return self.call_at(self._now + delay, callback)

    @property
    def pending(self) -> list[float]:
        """When the armed (not cancelled) timers will fire, earliest first."""
        return sorted(when for when, _, t in self._timers if not t.cancelled)

    def advance(self, seconds: float) -> int:
        """Move time forward by ``seconds``, firing due timers in order.

        Each timer runs with the clock at its own time; timers it arms that
        fall within the window run too.  Returns how many ran.

        Raises:
            ValueError: ``seconds`` is negative.
        """
        if seconds < 0:
            raise ValueError("a clock does not go back")
        target = self._now + seconds
        fired = 0
        timers = self._timers
        while timers and timers[0][0] <= target:
            when, _, timer = heapq.heappop(timers)
            if timer.cancelled:
                continue
            self._now = max(self._now, when)
            timer.cancelled = True  # it ran: cancel() is a no-op from now on
            fired += 1
            timer._callback()
        self._now = target
        return fired

    def run_due(self) -> int:
        """Fire the timers due now (those armed for now or earlier)."""
        return self.advance(0.0)


# ---------------------------------------------------------------- pipes


class FakePipe(Pipe):
    """A pipe to nobody: writes are recorded, received payloads come from the test.

    Attributes:
        written: Every message the protocol wrote, as ``header + body`` bytes.
        paused: Whether the protocol paused reading.
        accepted: Whether ``add_pipe`` took it.
        error: Why the host closed it (``reject_pipe``), or None.
    """

    #: As in :class:`Pipe`; the test sets it through :meth:`set_writable`.
    writable: bool

    def __init__(self, host: FakeProtocolHost, peer_id: int) -> None:
        super().__init__(peer_id, "fake")
        self.host = host
        self.written: list[bytes] = []
        self.paused: bool = False
        self.accepted = False
        self.error: BaseException | None = None
        self._inbound: deque[bytes | bytearray] = deque()

    # -- what the protocol calls ---------------------------------------------

    def write(self, header: BytesLike, body: BytesLike) -> None:
        if self.closed:
            return
        data = bytes(header) + bytes(body)
        self.written.append(data)
        self.msgs_out += 1
        self.bytes_out += len(data)

    def pause_reading(self) -> None:
        self.paused = True

    def resume_reading(self) -> None:
        if self.paused:
            self.paused = False
            if self._inbound:
                self.host._resumed.append(self)

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self.writable = False
        self._inbound.clear()
        self._notify_closed()

    # -- what the test calls ---------------------------------------------------

    def receive(self, payload: bytes | bytearray) -> None:
        """The peer sends ``payload`` (SP header in front); delivered unless paused."""
        if self.closed:
            raise Closed(f"fake pipe {self.id} is closed")
        self._inbound.append(payload)
        if not self.paused:
            self.host._deliver_inbound(self)

    @property
    def waiting(self) -> int:
        """Payloads received while paused, not yet delivered."""
        return len(self._inbound)

    def take(self) -> list[bytes]:
        """What was written since the last ``take()``, oldest first."""
        out, self.written = self.written, []
        return out

    def set_writable(self, writable: bool) -> None:
        """Fill the pipe (False) or drain it (True: the protocol hears ``pipe_writable``)."""
        self.writable = writable
        if writable and not self.closed and self.owner is not None:
            self.owner.pipe_writable(self)


# ---------------------------------------------------------------- channel


class _NoLoop:
    """Stands in for the event loop a fake channel does not have."""

    def __getattr__(self, name: str) -> Any:
        raise AttributeError(
            f"a fake protocol host has no event loop (the protocol or test used loop.{name})"
        )


_NO_LOOP = cast("asyncio.AbstractEventLoop", _NoLoop())


class FakeEndpoint:
    """The application's end of a fake host or fake context: send and receive.

    The non-blocking calls raise at once; the ``_later`` ones return a future
    that the protocol completes (or fails) during later inputs.
    """

    channel: Channel

    def __init__(self, host: FakeProtocolHost, name: str, recv_capacity: int) -> None:
        self._host = host
        self.channel = Channel(_NO_LOOP, recv_capacity=recv_capacity, name=name)

    @staticmethod
    def _message(data: BytesLike | Message, header: BytesLike, pipe: Pipe | None) -> Message:
        msg = data if isinstance(data, Message) else Message(data, header, pipe)
        check_message(msg)
        return msg

    def send(
        self, data: BytesLike | Message, *, header: BytesLike = b"", pipe: Pipe | None = None
    ) -> None:
        """Send now (``send(block=False)``).

        Raises:
            TryAgain: the protocol cannot take it now.
            Closed: the endpoint is closed.
            Exception: whatever the protocol raised (``BadState``...).
        """
        msg = self._message(data, header, pipe)
        ch = self.channel
        if ch.closed:
            raise Closed(f"{ch.name} is closed")
        if ch.check_send is not None:
            ch.check_send(msg)
        if ch._handoff or ch._send_waiters or not ch.try_send(msg):
            raise TryAgain(f"{ch.name} cannot send now")

    def send_later(
        self, data: BytesLike | Message, *, header: BytesLike = b"", pipe: Pipe | None = None
    ) -> concurrent.futures.Future[None]:
        """A send that waits until the protocol takes the message (``send()``).

        Returns:
            A future: done once taken, failed with what the protocol raised.
        """
        fut: concurrent.futures.Future[None] = concurrent.futures.Future()
        ch = self.channel
        try:
            msg = self._message(data, header, pipe)
            if ch.closed:
                raise Closed(f"{ch.name} is closed")
            if ch.check_send is not None:
                ch.check_send(msg)
            if not ch._handoff and not ch._send_waiters and ch.try_send(msg):
                fut.set_result(None)
                return fut
        except Exception as exc:
            fut.set_exception(exc)
            return fut
        ch._send_waiters.append((msg, fut, None))
        ch._revoke_credit()
        return fut

    def recv(self) -> Message:
        """Receive now (``recv(block=False)``).

        Raises:
            TryAgain: nothing to receive.
            Closed: the endpoint is closed.
            Exception: the protocol's receive error (``BadState``...).
        """
        ch = self.channel
        host = self._host
        if not ch.recv_queued and ch.on_recv_wait is not None and not ch.closed:
            host._run(ch.on_recv_wait, True)
        msg = ch.take_now()
        if msg is not None:
            host._settle()
            return msg
        if ch.closed:
            raise Closed(f"{ch.name} is closed")
        if ch.recv_error is not None:
            raise ch.recv_error.with_traceback(None)
        raise TryAgain(f"nothing to receive on {ch.name}")

    def recv_later(self) -> concurrent.futures.Future[Message]:
        """A receive that waits (``recv()``): a future for its message or error."""
        fut: concurrent.futures.Future[Message] = concurrent.futures.Future()
        ch = self.channel
        msg = ch.take_now()
        if msg is not None:
            fut.set_result(msg)
            self._host._settle()
        elif ch.closed:
            fut.set_exception(Closed(f"{ch.name} is closed"))
        elif ch.recv_error is not None:
            fut.set_exception(ch.recv_error.with_traceback(None))
        else:
            ch._recv_waiters.append((fut, None))
            if ch.on_recv_wait is not None:
                self._host._run(ch.on_recv_wait, False)
        return fut

    def recv_all(self) -> list[bytes]:
        """Bodies of every message that can be received now."""
        out: list[bytes] = []
        while True:
            try:
                out.append(bytes(self.recv().body))
            except TryAgain:
                return out


class FakeContext(FakeEndpoint):
    """A context of a fake host (``Socket.new_context``), with its protocol object.

    Protocol options and methods the context object offers (``option_specs``,
    ``context_methods``) are attributes here too; methods run as inputs.
    """

    def __init__(self, host: FakeProtocolHost) -> None:
        factory = getattr(host.protocol, "new_context", None)
        if factory is None:
            raise NotSupported(f"{host.protocol.name} sockets have no contexts")
        super().__init__(host, f"fake context of {host.protocol.name}", host.options["recv_buffer"])
        self.impl: Any = factory(self.channel)
        self.channel.bind(host._input(self.impl.try_send), self.impl.can_send)
        self.closed: bool = False

    def __getattr__(self, name: str) -> Any:
        impl = self.__dict__.get("impl")
        if name in getattr(impl, "option_specs", ()):
            return getattr(impl, name)
        if name in getattr(impl, "context_methods", ()):
            value = getattr(impl, name)
            return self._host._input(value) if callable(value) else value
        raise AttributeError(f"{type(self).__name__} has no attribute or option {name!r}")

    def __setattr__(self, name: str, value: Any) -> None:
        impl = self.__dict__.get("impl")
        specs = getattr(impl, "option_specs", None)
        if specs and name in specs:
            setattr(impl, name, validate(specs[name], value))
            self._host._settle()
        else:
            object.__setattr__(self, name, value)

    def close(self) -> None:
        """Close the context: its waiters get Closed, the protocol forgets it."""
        if self.closed:
            return
        self.closed = True
        self.channel.close()
        self._host._run(self.impl.close)


# ---------------------------------------------------------------- host


class FakeProtocolHost(FakeEndpoint):
    """A protocol's host with no event loop: what a socket is to the protocol.

    Args:
        protocol: The protocol class, or its registered name (``"req0"``).
        raw: Open it in raw mode.
        clock: The clock for ``now()`` and the timer; a new one by default.
        **options: Socket and protocol options (``resend_time=5.0``,
            ``recv_buffer=4``...), validated as a socket validates them.

    Attributes:
        protocol: The protocol instance.
        clock: Its :class:`FakeClock`.
        options: Option values by name (what the protocol reads).
        counters: What the protocol counted (``drops``, ``resends``...).
        pipes: The live pipes by id.
        rejected: ``(pipe, reason)`` for every ``reject_pipe``.

    Raises:
        BadOption: an unknown option or a bad value.
    """

    def __init__(
        self,
        protocol: type[Protocol] | str,
        *,
        raw: bool = False,
        clock: FakeClock | None = None,
        **options: Any,
    ) -> None:
        if isinstance(protocol, str):
            from ..core.registry import get_registry

            protocol = get_registry().protocol(protocol)
        cls = protocol
        self.clock: FakeClock = clock if clock is not None else FakeClock()
        specs = {**SOCKET_OPTIONS, **cls.option_specs}
        opts: dict[str, Any] = {name: spec.default for name, spec in specs.items()}
        if cls.default_recv_buffer is not None:
            opts["recv_buffer"] = cls.default_recv_buffer
        for name, value in options.items():
            if name not in specs:
                raise BadOption(f"unknown option {name!r} for a {cls.name} socket")
            opts[name] = validate(specs[name], value)
        self._specs = specs
        self.options = opts
        self.counters: Counter[str] = Counter()
        self.pipes: dict[int, FakePipe] = {}
        self.rejected: list[tuple[FakePipe, str]] = []
        self.closed: bool = False
        self._depth = 0
        self._resumed: list[FakePipe] = []
        super().__init__(self, f"fake {cls.name} host", max(1, opts["recv_buffer"]))
        self.timer: ProtocolTimer | None = None
        self.protocol: Protocol = cls(self, raw)
        proto = self.protocol
        if has_timer(cls):
            clock_ = self.clock
            self.timer = ProtocolTimer(
                proto, clock_.time, lambda when, cb: clock_.call_at(when, self._input(cb))
            )
        self.channel.bind(
            self._input(proto.try_send), proto.can_send, self._input(proto.recv_space)
        )

    # -- ProtocolHost -----------------------------------------------------------

    def now(self) -> float:
        """The fake clock's time."""
        return self.clock.time()

    def count(self, name: str, n: int = 1) -> None:
        self.counters[name] += n

    def reject_pipe(self, pipe: Pipe, reason: str) -> None:
        """Close ``pipe`` for a protocol violation (recorded in :attr:`rejected`)."""
        self.count("protocol_errors")
        if isinstance(pipe, FakePipe):
            self.rejected.append((pipe, reason))
            if pipe.error is None:
                pipe.error = ProtocolError(reason)
        pipe.close()

    # -- PipeOwner (the fake pipes call these) ------------------------------------

    def pipe_message(self, pipe: Pipe, payload: bytes | bytearray) -> None:
        self._run(self.protocol.pipe_message, pipe, payload)

    def pipe_writable(self, pipe: Pipe) -> None:
        self._run(self.protocol.pipe_writable, pipe)

    def pipe_closed(self, pipe: Pipe) -> None:
        if self.pipes.pop(pipe.id, None) is None:
            return
        self.count("pipes_removed")
        self._run(self.protocol.remove_pipe, pipe)

    # -- what the test calls --------------------------------------------------------

    def add_pipe(self, peer_id: int | None = None) -> FakePipe:
        """A new peer (speaking the protocol's peer id unless told otherwise).

        Returns:
            The pipe; ``pipe.accepted`` is False (and it is closed) if the
            protocol refused it.
        """
        pipe = FakePipe(self, self.protocol.peer_id if peer_id is None else peer_id)
        pipe.owner = self
        if self.closed or not self._run(self.protocol.add_pipe, pipe):
            pipe.owner = None
            self.count("pipes_rejected")
            pipe.close()
            return pipe
        pipe.accepted = True
        self.pipes[pipe.id] = pipe
        self.count("pipes_added")
        return pipe

    def new_context(self) -> FakeContext:
        """A context (``Socket.new_context``).

        Raises:
            NotSupported: the protocol has none.
        """
        return FakeContext(self)

    def call(self, name: str, *args: Any) -> Any:
        """Call the protocol's method ``name`` as an input (``subscribe``...)."""
        return self._run(getattr(self.protocol, name), *args)

    def set_option(self, name: str, value: Any) -> None:
        """Set an option as ``setattr(socket, name, value)`` does.

        Raises:
            BadOption: unknown name or bad value.
            BadState: the protocol refused it (``check_option``).
        """
        spec = self._specs.get(name)
        if spec is None:
            raise BadOption(f"unknown option {name!r} for a {self.protocol.name} socket")
        v = validate(spec, value)
        if name in self.protocol.option_specs:
            self.protocol.check_option(name, v)
        self.options[name] = v
        if name == "recv_buffer":
            self.channel.recv_capacity = max(1, v)
        if name in self.protocol.option_specs:
            self._run(self.protocol.set_option, name, v)

    def advance(self, seconds: float) -> int:
        """``clock.advance(seconds)``: fire the timers that come due."""
        return self.clock.advance(seconds)

    @property
    def next_deadline(self) -> float | None:
        """The protocol's own next deadline (None: no timer wanted)."""
        return self.protocol.next_deadline()

    def stats(self) -> dict[str, int]:
        """The counters, as a plain dict."""
        return dict(self.counters)

    def close(self) -> None:
        """Close as a socket does: channel, pipes, timer, then the protocol."""
        if self.closed:
            return
        self.closed = True
        if self.timer is not None:
            self.timer.cancel()
        self.channel.close()
        for pipe in list(self.pipes.values()):
            pipe.close()
        self.protocol.close()

    # -- machinery ---------------------------------------------------------------

    def _run(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Call ``fn`` as an input: then update the timer and deliver to resumed pipes."""
        self._depth += 1
        try:
            return fn(*args)
        finally:
            self._depth -= 1
            if self.timer is not None:
                self.timer.update()
            if self._depth == 0:
                self._settle()

    def _input(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        def run(*args: Any) -> Any:
            return self._run(fn, *args)

        return run

    def _deliver_inbound(self, pipe: FakePipe) -> None:
        if self._depth:
            self._resumed.append(pipe)  # after the current input, as a loop would
            return
        self._depth += 1
        try:
            while pipe._inbound and not pipe.paused and not pipe.closed:
                payload = pipe._inbound.popleft()
                pipe.msgs_in += 1
                pipe.bytes_in += len(payload)
                self.protocol.pipe_message(pipe, payload)
                if self.timer is not None:
                    self.timer.update()
        finally:
            self._depth -= 1
        self._settle()

    def _settle(self) -> None:
        if self._depth:
            return
        while self._resumed:
            pipe = self._resumed.pop(0)
            if pipe._inbound and not pipe.paused and not pipe.closed:
                self._deliver_inbound(pipe)
