"""Best-effort broadcast to every pipe, with a bounded queue per pipe (PUB, BUS).

Rules shared by the protocols that send each message to every connected
pipe and never wait:

* A message goes straight to a pipe that is writable and has nothing queued;
  otherwise it is queued behind that pipe's earlier messages, so each pipe
  sees the messages in send order.
* Each pipe's queue holds at most ``limit`` messages (the ``send_buffer``
  option).  When it is full one message is dropped for that pipe only and
  counted in the socket's ``drops``: the oldest queued one when
  ``drop_oldest`` (PUB: subscribers want fresh data), else the new one
  (BUS).  One slow pipe never holds up the others.
* Messages still queued for a pipe that goes away count as drops too.
* A sender may name one pipe to skip (raw BUS does not echo a message to
  the pipe it came from).

:class:`BroadcastProtocol` is the base of such a protocol: it owns the
:class:`Broadcast` (``self._out``) and does the pipe bookkeeping, so a
subclass says only which message goes out (``try_send``), what to do with
what arrives, and how ``send_buffer`` changes apply.

Theory of operation: :meth:`Broadcast.send` walks the pipe table once; the
queues hold ``(header, body)`` pairs whose body object is shared by all
pipes, never copied.  :meth:`Broadcast.drain` is the protocol's
``pipe_writable``: it writes a pipe's queue until the pipe is busy again.
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING, ClassVar

from ..plugin import OptionSpec, Protocol, integer

if TYPE_CHECKING:
    from collections.abc import Mapping

    from ..plugin import BytesLike, Pipe, ProtocolHost

__all__ = ["Broadcast", "BroadcastProtocol", "send_buffer_options"]


def send_buffer_options(default: int, doc: str) -> Mapping[str, OptionSpec]:
    """The ``send_buffer`` option (messages queued per pipe; NNG's range 1..8192)."""
    return {"send_buffer": OptionSpec("send_buffer", integer(1, 8192), default, doc)}


class Broadcast:
    """The pipes of one broadcasting socket and a send queue for each."""

    __slots__ = ("_drop_oldest", "_host", "_pipes", "_queues", "limit")

    def __init__(self, host: ProtocolHost, limit: int, *, drop_oldest: bool) -> None:
        self._host = host
        self._pipes: dict[int, Pipe] = {}
        self._queues: dict[int, deque[tuple[BytesLike, BytesLike]]] = {}
        self._drop_oldest = drop_oldest
        #: Most messages queued per pipe (``send_buffer``).
        self.limit = limit

    def add(self, pipe: Pipe) -> None:
        """Start sending to ``pipe``, with an empty queue."""
        self._pipes[pipe.id] = pipe
        self._queues[pipe.id] = deque()

    def remove(self, pipe: Pipe) -> None:
        """Stop sending to ``pipe``; what was still queued for it counts as drops."""
        self._pipes.pop(pipe.id, None)
        queued = self._queues.pop(pipe.id, None)
        if queued:
            self._host.count("drops", len(queued))

    def send(self, header: BytesLike, body: BytesLike, skip: int = -1) -> None:
        """Offer one message to every pipe but the one whose id is ``skip``."""
        limit = self.limit
        queues = self._queues
        for pid, pipe in self._pipes.items():
            if pid == skip:
                continue
            queue = queues[pid]
            if not queue and pipe.writable:
                pipe.write(header, body)
            elif len(queue) < limit:
                queue.append((header, body))
            else:
                self._host.count("drops")
                if self._drop_oldest:
                    queue.popleft()
                    queue.append((header, body))

    def drain(self, pipe: Pipe) -> None:
        """Write ``pipe``'s queue while the pipe takes more (``pipe_writable``)."""
        queue = self._queues.get(pipe.id)
        while queue and pipe.writable:
            header, body = queue.popleft()
            pipe.write(header, body)

    def pending(self) -> int:
        """Messages queued for all pipes together."""
        return sum(len(q) for q in self._queues.values())

    def trim(self) -> None:
        """Drop the oldest queued messages above :attr:`limit` (after it shrank)."""
        for queue in self._queues.values():
            while len(queue) > self.limit:
                queue.popleft()
                self._host.count("drops")

    def clear(self) -> None:
        """Forget every pipe and queue (socket closing; nothing is counted)."""
        self._queues.clear()
        self._pipes.clear()


class BroadcastProtocol(Protocol):
    """A protocol that offers every message to every pipe and never waits to send."""

    #: ``send_buffer`` when the socket sets none.
    default_send_buffer: ClassVar[int]
    #: On a full queue: drop the oldest queued message (True) or the new one.
    drop_oldest: ClassVar[bool]

    def __init__(self, host: ProtocolHost, raw: bool) -> None:
        super().__init__(host, raw)
        limit: int = host.options.get("send_buffer", self.default_send_buffer)
        self._out = Broadcast(host, limit, drop_oldest=self.drop_oldest)

    def add_pipe(self, pipe: Pipe) -> bool:
        self._out.add(pipe)
        return True

    def remove_pipe(self, pipe: Pipe) -> None:
        self._out.remove(pipe)

    def can_send(self) -> bool:
        return True  # never waits: best effort

    def pipe_writable(self, pipe: Pipe) -> None:
        self._out.drain(pipe)

    def pending_messages(self) -> int:
        return self._out.pending()

    def close(self) -> None:
        self._out.clear()
