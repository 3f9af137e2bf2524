"""The protocol plugin interface.

A protocol decides where messages go (round robin, broadcast, to the pipe a
backtrace names...) and what header they carry.  It does no I/O: it talks to
:class:`~purenng.core.pipe.Pipe` objects (``write``, ``writable``,
``pause_reading``) and to its socket's :class:`~purenng.core.channel.Channel`
(``deliver``, ``send_ready``), and everything runs on the socket's loop, so it
needs no locks.

Inputs, called by the socket:

* :meth:`Protocol.add_pipe` / :meth:`Protocol.remove_pipe`: a peer came or went.
  ``add_pipe`` may refuse the pipe (PAIR takes one peer).
* :meth:`Protocol.pipe_message`: a payload arrived, SP header at the front.
* :meth:`Protocol.pipe_writable`: a pipe that was full has room again.
* :meth:`Protocol.try_send` / :meth:`Protocol.can_send`: the application sends.
* :meth:`Protocol.recv_space`: the application drained the receive queue.

The ids and names are those of ``reference/wire-protocols.md`` §1.1.  This
mirrors NNG's ``nni_proto`` operations (``src/core/protocol.h``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar
from typing import Protocol as _Protocol

from .errors import NotSupported

if TYPE_CHECKING:
    import asyncio
    from collections.abc import Mapping

    from .channel import Channel
    from .message import Message
    from .options import OptionSpec
    from .pipe import Pipe

__all__ = ["Protocol", "ProtocolHost"]


class ProtocolHost(_Protocol):
    """What a protocol may use of its socket."""

    loop: asyncio.AbstractEventLoop
    channel: Channel
    options: dict[str, Any]

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

    def close(self) -> None:
        """The socket is closing."""
