"""The :class:`Pipe`: a message connection to exactly one peer.

A pipe is what protocols see.  Stream transports never build one themselves:
the shared SP-over-stream adapter (:mod:`purenng.core.sp_stream`) turns their
byte streams into pipes.  Message transports (inproc, ws) subclass
:class:`Pipe` directly.

Contract for implementations.  Every method runs on the loop that owns the
pipe (the socket's), never blocks, and never raises into its caller for an
I/O problem: a broken pipe records why in :attr:`Pipe.error` and closes
itself.

* Lifecycle.  The transport (or the adapter) makes the pipe and hands it,
  ready, to a dialer or listener, which offers it to the socket.  The
  socket's admission (:mod:`purenng.core.admission`) sets :attr:`Pipe.owner`
  and calls :meth:`Pipe.attach` with the function that takes each received
  message, then the protocol's ``add_pipe``.  A pipe refused at any step is
  closed and never attached.
* Receiving.  An attached pipe calls ``deliver(pipe, payload)`` for each
  message, with the SP header still at the front of ``payload`` (the
  protocol peels it off).  ``payload`` is the receiver's from then on: the
  pipe neither reuses nor changes it.  :meth:`Pipe.pause_reading` and
  :meth:`Pipe.resume_reading` give receive back-pressure; no message is
  delivered while paused.
* Sending.  :meth:`Pipe.write` takes ownership of ``header`` and ``body`` (the
  caller does not change them afterwards) and queues them as one message.
  It always accepts the message; :attr:`Pipe.writable` says whether the pipe
  would like more now.  When it turns True again the pipe calls its owner's
  ``pipe_writable``.  :meth:`Pipe.pending_bytes` says how much is still
  queued (``linger`` waits for 0).
* Closing.  :meth:`Pipe.close` is idempotent.  The owner's ``pipe_closed``
  is called exactly once, whoever closed the pipe (:meth:`Pipe._notify_closed`).
  :attr:`Pipe.error` says why, when it was not a normal close:
  ``MessageTooLarge``, ``ProtocolError``, ``Timeout``... (the socket counts
  and logs by its type).
* Describing.  :attr:`Pipe.local_address`, :attr:`Pipe.remote_address`,
  :attr:`Pipe.peer_credentials` and :attr:`Pipe.peer_certificate` stay
  readable after close and never raise; :meth:`Pipe.stats` and the
  counters (``msgs_in``, ``bytes_in``... and ``rx_bytes``) are the pipe's
  own.
"""

from __future__ import annotations

import enum
import itertools
import random
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from collections.abc import Callable

    from .message import BytesLike

__all__ = ["Pipe", "PipeEvent", "PipeOwner", "next_id"]

# Ids start at a random point (as NNG's do) and are never reused in a process.
# Pipe ids are 31-bit: REP and RESPONDENT put them in backtraces, where bit 31
# marks the end of the stack.
_id_counter = itertools.count(random.randrange(1, 1 << 24))


def next_id() -> int:
    """A fresh id for a socket, pipe, dialer or listener (never reused)."""
    return next(_id_counter)


class PipeEvent(enum.StrEnum):
    """When a pipe event callback runs."""

    ADD_PRE = "add_pre"
    """The pipe is connected but not yet in use; closing it refuses it."""
    ADD_POST = "add_post"
    """The pipe is in use."""
    REMOVE_POST = "remove_post"
    """The pipe was removed."""


class PipeOwner(Protocol):
    """What a pipe reports to (its socket's admission)."""

    def pipe_writable(self, pipe: Pipe) -> None: ...
    def pipe_closed(self, pipe: Pipe) -> None: ...


class Pipe:
    """A message pipe to one peer whose SP protocol number is known.

    Attributes:
        id: Unique in the process, never reused, below 2**31.
        peer_id: The peer's SP protocol number (e.g. 0x51 for PULL).
        writable: Whether the pipe wants more messages now.
        dialer: The dialer that made the pipe, or None.
        listener: The listener that accepted it, or None.
        transport: The URL scheme of the transport.
    """

    def __init__(self, peer_id: int, transport: str) -> None:
        self.id: int = next_id()
        self.peer_id = peer_id
        self.transport = transport
        self.writable: bool = True
        self.closed = False
        #: Why the pipe closed, when not normally; None while open or after a clean close.
        self.error: BaseException | None = None
        self.owner: PipeOwner | None = None
        #: Takes each received message once attached (see :meth:`attach`).
        self._deliver: Callable[[Pipe, bytes | bytearray], None] | None = None
        self.dialer: Any = None
        self.listener: Any = None
        #: The socket the pipe belongs to once attached.
        self.socket: Any = None
        self.msgs_in = 0
        self.msgs_out = 0
        self.bytes_in = 0
        self.bytes_out = 0
        #: Raw bytes read from the connection, counted per read by transports
        #: that read bytes (``recv_idle_timeout`` sees a large message arrive
        #: before it is complete); message transports may leave it at 0.
        self.rx_bytes = 0

    # -- transport side (override) --------------------------------------

    def attach(self, deliver: Callable[[Pipe, bytes | bytearray], None]) -> None:
        """Start delivering received messages to ``deliver(pipe, payload)``.

        Called once, by the socket, after the pipe was admitted.  The default
        keeps ``deliver`` in ``self._deliver``; a pipe that read messages
        before it was attached (inproc, or a ws pipe whose peer spoke first)
        overrides this to hand them over now, in order.
        """
        self._deliver = deliver

    def write(self, header: BytesLike, body: BytesLike) -> None:
        """Queue one message (header then body).  Never blocks."""
        raise NotImplementedError

    def pause_reading(self) -> None:
        """Stop delivering messages until :meth:`resume_reading`."""

    def resume_reading(self) -> None:
        """Undo :meth:`pause_reading`."""

    def close(self) -> None:
        """Close the pipe; idempotent.  The owner hears of it once."""
        raise NotImplementedError

    def pending_bytes(self) -> int:
        """Bytes written to the pipe that have not reached the kernel (or the peer) yet.

        A socket closing with ``linger`` waits for this to reach 0 on every
        pipe.  A transport that buffers (an asyncio write buffer, a
        coalescing buffer) overrides it; 0 once closed.
        """
        return 0

    # -- asyncio write flow control, for pipes that are an asyncio protocol --

    def pause_writing(self) -> None:
        """The transport's write buffer is full: take no more messages for now."""
        self.writable = False

    def resume_writing(self) -> None:
        """The buffer drained: writable again, and the owner may send."""
        self.writable = True
        owner = self.owner
        if owner is not None and not self.closed:
            owner.pipe_writable(self)

    @property
    def local_address(self) -> Any:
        """The local address, as the transport reports it."""
        return None

    @property
    def remote_address(self) -> Any:
        """The peer's address, as the transport reports it."""
        return None

    @property
    def peer_credentials(self) -> Any:
        """The peer process' credentials, where the transport knows them."""
        return None

    @property
    def peer_certificate(self) -> dict[str, Any] | None:
        """The peer's verified TLS certificate (``ssl.SSLSocket.getpeercert()`` form), or None."""
        return None

    # -- application side -----------------------------------------------------

    def send(self, data: BytesLike, *, block: bool = True) -> None:
        """Send ``data`` through the socket, addressed to this pipe.

        The socket's protocol decides what the address means: a polyamorous
        PAIR1 or a raw socket sends on exactly this pipe; others route as
        usual.  Blocking, like ``Socket.send``.

        Raises:
            Closed: the pipe belongs to no socket (never attached, or closed).
        """
        self._socket_or_closed().send_msg(_message(data, self), block=block)

    async def asend(self, data: BytesLike, *, block: bool = True) -> None:
        """Coroutine form of :meth:`send`."""
        await self._socket_or_closed().asend_msg(_message(data, self), block=block)

    def _socket_or_closed(self) -> Any:
        sock = self.socket
        if sock is None or self.closed:
            from .errors import Closed

            raise Closed(f"pipe {self.id} is closed")
        return sock

    # -- convenience ----------------------------------------------------------

    def stats(self) -> dict[str, int]:
        """Counters of this pipe."""
        return {
            "id": self.id,
            "messages_in": self.msgs_in,
            "messages_out": self.msgs_out,
            "bytes_in": self.bytes_in,
            "bytes_out": self.bytes_out,
        }

    def _notify_closed(self) -> None:
        owner = self.owner
        self.owner = None
        if owner is not None:
            owner.pipe_closed(self)

    def __repr__(self) -> str:
        state = "closed" if self.closed else "open"
        return (
            f"<{type(self).__name__} id={self.id} {self.transport} peer={self.peer_id:#x} {state}>"
        )


def _message(data: BytesLike, pipe: Pipe) -> Any:
    from .message import Message

    return Message(data, b"", pipe)
