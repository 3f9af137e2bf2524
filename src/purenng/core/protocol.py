"""The protocol plugin interface.

A protocol decides where messages go (round robin, broadcast, to the pipe a
backtrace names...) and what header they carry.  It is a sans-IO state
machine: it talks to :class:`~purenng.core.pipe.Pipe` objects (``write``,
``writable``, ``pause_reading``) and to its host's
:class:`~purenng.core.channel.Channel` (``deliver``, ``send_ready``), and it
never calls an event loop, a clock or another thread.  Its host (the
socket) calls it on one thread only, the socket's loop, so it needs no
locks.

Inputs, called by the socket:

* :meth:`Protocol.add_pipe` / :meth:`Protocol.remove_pipe`: a peer came or went.
  ``add_pipe`` may refuse the pipe (PAIR takes one peer).
* :meth:`Protocol.pipe_message`: a payload arrived, SP header at the front.
* :meth:`Protocol.pipe_writable`: a pipe that was full has room again.
* :meth:`Protocol.try_send` / :meth:`Protocol.can_send`: the application sends.
* :meth:`Protocol.recv_space`: the application drained the receive queue.
* :meth:`Protocol.set_option`: a protocol option changed.
* :meth:`Protocol.on_timer`: the protocol's deadline passed.

Time (REQ resends, survey deadlines): a protocol that needs it overrides
:meth:`Protocol.next_deadline` and :meth:`Protocol.on_timer`.  The host
keeps one timer for the protocol (contexts included: the protocol reports
the earliest deadline of all of them) and, after every input above, asks
``next_deadline()`` again and re-arms it if the deadline moved earlier
(:class:`ProtocolTimer`).  An input that arms a deadline reads the time from
:meth:`ProtocolHost.now`; ``on_timer`` is handed ``now``.  A protocol that
does not override ``next_deadline`` pays nothing for this: its host calls
it directly, as before, with no timer bookkeeping on the message path.

Channel hooks (``on_recv_wait``, ``check_send``) are not inputs: they must
not arm deadlines.

The ids and names are those of ``reference/wire-protocols.md`` §1.1.  This
mirrors NNG's ``nni_proto`` operations (``src/core/protocol.h``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar
from typing import Protocol as _Protocol

from .errors import NotSupported

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from .channel import Channel
    from .message import Message
    from .options import OptionSpec
    from .pipe import Pipe

__all__ = ["Protocol", "ProtocolHost", "ProtocolTimer", "has_timer"]


class ProtocolHost(_Protocol):
    """What a protocol may use of its socket (or of a test's fake host).

    Attributes:
        channel: The socket's own channel (its default context).
        options: The socket's option values by name (read them; the host
            calls :meth:`Protocol.set_option` when one changes).
    """

    channel: Channel
    options: dict[str, Any]

    def now(self) -> float:
        """The host's clock, in seconds (the socket's ``loop.time()``).

        For inputs that arm a deadline; only protocols with a deadline need
        it.  A test's fake host returns its fake clock.
        """
        ...

    def count(self, name: str, n: int = 1) -> None:
        """Add ``n`` to the socket counter ``name`` (e.g. ``"drops"``)."""

    def reject_pipe(self, pipe: Pipe, reason: str) -> None:
        """Close ``pipe`` for a protocol violation, counted and logged."""


class Protocol:
    """Base class of protocol implementations.

    Class attributes:
        name: Entry-point name, e.g. ``"push0"``.
        self_id / peer_id: SP protocol numbers.
        self_name / peer_name: NNG's names (``"push"`` / ``"pull"``).
        option_specs: Protocol-specific options.
        can_send_messages / can_recv_messages: False where NNG refuses the
            operation with NNG_ENOTSUP (PULL cannot send, PUSH cannot receive).
    """

    name: ClassVar[str]
    self_id: ClassVar[int]
    peer_id: ClassVar[int]
    self_name: ClassVar[str]
    peer_name: ClassVar[str]
    option_specs: ClassVar[Mapping[str, OptionSpec]] = {}
    can_send_messages: ClassVar[bool] = True
    can_recv_messages: ClassVar[bool] = True
    #: The socket's recv_buffer default for this protocol, if not the core's.
    default_recv_buffer: ClassVar[int | None] = None

    def __init__(self, host: ProtocolHost, raw: bool) -> None:
        self.host = host
        self.raw = raw

    def add_pipe(self, pipe: Pipe) -> bool:
        """A new peer.  Return False to refuse it (the socket closes it)."""
        raise NotImplementedError

    def remove_pipe(self, pipe: Pipe) -> None:
        """A peer went away (the pipe is closed already)."""
        raise NotImplementedError

    def pipe_message(self, pipe: Pipe, payload: bytes | bytearray) -> None:
        """A message arrived on ``pipe``; the SP header is still in front."""
        raise NotImplementedError

    def pipe_writable(self, pipe: Pipe) -> None:
        """``pipe`` can take messages again."""

    def try_send(self, msg: Message) -> bool:
        """Take ``msg`` now and return True, or return False to make the caller wait.

        Raises:
            NotSupported: this protocol cannot send.
        """
        raise NotSupported(f"{self.name} sockets cannot send")

    def can_send(self) -> bool:
        """Whether :meth:`try_send` would take a message now."""
        return False

    def recv_space(self) -> None:
        """The receive queue has room again: resume paused pipes."""

    def pending_messages(self) -> int:
        """Messages the protocol accepted and still holds for its pipes.

        A socket closing with ``linger`` waits until this is 0 (and the
        pipes' own buffers are empty).  Protocols that never hold a message
        once :meth:`try_send` returned (they send it at once or refuse it)
        keep the default.
        """
        return 0

    def check_option(self, name: str, value: Any) -> None:
        """Refuse a new option value before it is stored, in the caller's thread.

        Called from any thread; it may only read state.  Raise
        :class:`~purenng.core.errors.BadState` (or ``BadOption``) to refuse.
        """

    def set_option(self, name: str, value: Any) -> None:
        """A protocol option changed (the value is validated already)."""

    def next_deadline(self) -> float | None:
        """When :meth:`on_timer` should run next (host clock), or None: never.

        The earliest deadline of the protocol and all its contexts.  It may
        be early (a deadline since cancelled): ``on_timer`` then finds
        nothing due, and the host asks again.  Must be cheap: the host calls
        it after every input of a protocol that overrides it.
        """
        return None

    def on_timer(self, now: float) -> None:
        """The deadline :meth:`next_deadline` reported has passed.

        Handle every deadline at or before ``now`` and ignore the rest (the
        host may call early or late; ``now`` is the time to act on).
        """

    def close(self) -> None:
        """The socket is closing."""


def has_timer(cls: type[Protocol]) -> bool:
    """Whether ``cls`` keeps deadlines (overrides :meth:`Protocol.next_deadline`)."""
    return cls.next_deadline is not Protocol.next_deadline


class ProtocolTimer:
    """The one timer a host keeps for its protocol (aioquic's adapter, in small).

    Args:
        protocol: The protocol whose :meth:`Protocol.next_deadline` it follows.
        now: The host's clock.
        call_at: Schedules ``callback()`` at a time of that clock and returns
            a handle with ``cancel()`` (``loop.call_at``, or a fake clock's).

    :meth:`update` runs after each input.  It arms the timer when the
    protocol's deadline is earlier than the one armed (or none is); a later
    or vanished deadline leaves the armed timer alone, since waking early
    is harmless and cheaper than cancelling and re-arming on every request.
    When the timer fires the protocol gets ``on_timer(now)`` with ``now`` no
    earlier than the time it was armed for (an event loop may run a timer a
    clock tick early), and the timer is armed again from ``next_deadline``.
    """

    __slots__ = ("_call_at", "_handle", "_next_deadline", "_now", "_on_timer", "_when", "closed")

    def __init__(
        self,
        protocol: Protocol,
        now: Callable[[], float],
        call_at: Callable[[float, Callable[[], None]], Any],
    ) -> None:
        self._next_deadline = protocol.next_deadline
        self._on_timer = protocol.on_timer
        self._now = now
        self._call_at = call_at
        self._handle: Any = None
        self._when = 0.0
        self.closed: bool = False

    @property
    def armed_for(self) -> float | None:
        """When the timer will fire, or None."""
        return self._when if self._handle is not None else None

    def update(self) -> None:
        """Re-arm if the protocol's next deadline is earlier than the armed one."""
        when = self._next_deadline()
        if when is None or self.closed:
            return
        handle = self._handle
        if handle is not None:
            if when >= self._when:
                return
            handle.cancel()
        self._when = when
        self._handle = self._call_at(when, self._fire)

    def _fire(self) -> None:
        self._handle = None
        if self.closed:
            return
        now = self._now()
        if now < self._when:
            now = self._when
        try:
            self._on_timer(now)
        finally:
            self.update()

    def cancel(self) -> None:
        """Disarm for good (the socket is closing)."""
        self.closed = True
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
