"""Backtrace machinery shared by REQ/REP v0 and SURVEYOR/RESPONDENT v0.

The two protocol pairs differ in how many peers a message goes to and when a
conversation ends (REQ resends to one peer, SURVEYOR asks all until a
deadline), but they carry the same wire format (``reference/wire-protocols.md``
§1.2) and so handle it the same way.  This private module keeps that one
copy; :mod:`.reqrep0` and :mod:`.survey0` keep their own rules, names and
options, and their headers explain those.

The backtrace is a stack of 32-bit big-endian words in front of the body.
The asking side (REQ, SURVEYOR) pushes one word, the id, with bit 31
(:data:`END_BIT`) set: it marks the bottom.  Every device on the way pushes
the 31-bit id of the pipe the message came in on (bit 31 clear).  The
answering side sends the whole stack back in front of its answer.

What is shared here:

* :func:`backtrace_length`: where the backtrace ends.  Words count up to and
  including the first with bit 31 set; before each word, in NNG's order, a
  word beyond ``ttl`` gives :data:`TOO_MANY_HOPS` (the message is dropped,
  the pipe kept) and a body without 4 more bytes gives :data:`MALFORMED`
  (the pipe is closed).  :func:`split_at` cuts header from body without
  copying a large body.
* :class:`IdAllocator`: ids with bit 31 set from a counter with a random
  start, skipping ids still in use.
* :class:`Pauser` and :class:`SendQueues`: receive back-pressure (pipes
  paused while the application is behind) and best-effort per-pipe send
  queues behind each pipe's own buffer.
* :class:`Requester`: the asking side's receive.  Raw: the header is the
  backtrace (no hop limit, as NNG).  Cooked: the first word is an id,
  matched against the conversations outstanding; unknown ids are dropped
  and counted, a payload shorter than 4 bytes closes the pipe.  It also
  keeps its contexts' deadlines (REQ resend, survey end) in one
  :class:`~._deadlines.Deadlines`, reports the earliest to the host
  (``next_deadline``) and hands the due contexts to :meth:`Requester.deadline_passed`.
* :class:`Responder` and :class:`ResponderContext`: the answering side
  whole (REP and RESPONDENT are the same protocol with other names).
  Cooked, each receive of a context gets exactly one waiting message, on
  demand through ``channel.on_recv_wait``, and the context remembers its
  backtrace and pipe; a send answers it there and forgets it.  Raw, the
  header starts with the 4-byte id of the pipe the message came from; a send
  routes by that word through a per-pipe queue of :attr:`Responder.raw_queue`
  messages and never blocks (unknown pipe or full queue: dropped).
"""

from __future__ import annotations

import random
from collections import deque
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar

from ..plugin import BadState, Message, NotSupported, Protocol
from ._deadlines import Deadlines

if TYPE_CHECKING:
    from collections.abc import Container, Mapping

    from ..plugin import BytesLike, Channel, OptionSpec, Pipe, ProtocolHost

__all__ = [
    "END_BIT",
    "MALFORMED",
    "TOO_MANY_HOPS",
    "IdAllocator",
    "Pauser",
    "Requester",
    "Responder",
    "ResponderContext",
    "SendQueues",
    "backtrace_length",
    "split_at",
]

#: The bit that ends a backtrace (set in request and survey ids).
END_BIT = 0x80000000

#: :func:`backtrace_length` results that are not lengths.
MALFORMED = -1
TOO_MANY_HOPS = -2


def backtrace_length(payload: bytes | bytearray, ttl: int | None) -> int:
    """Bytes of backtrace at the front of ``payload``.

    Words count up to and including the first whose bit 31 is set.  Before
    each word, in NNG's order: a word beyond ``ttl`` (None: no limit) gives
    :data:`TOO_MANY_HOPS`, and a body without 4 more bytes gives
    :data:`MALFORMED`.
    """
    n = len(payload)
    words = n // 4 + 1 if ttl is None else ttl
    off = 0
    while words:
        if off + 4 > n:
            return MALFORMED
        if payload[off] & 0x80:
            return off + 4
        off += 4
        words -= 1
    return TOO_MANY_HOPS


def split_at(payload: bytes | bytearray, n: int) -> tuple[bytes, BytesLike]:
    """Header bytes and body of ``payload`` cut at ``n``.

    A small payload is bytes (slicing copies little); a large one arrived in
    its own bytearray, and its body is viewed rather than copied again.
    """
    if type(payload) is bytes:
        return payload[:n], payload[n:]
    return bytes(payload[:n]), memoryview(payload)[n:]


class IdAllocator:
    """Ids with bit 31 set, from a counter with a random start.

    ``first`` is the lowest value of the low 31 bits (REQ never uses 0 there,
    SURVEYOR does); the counter wraps back to it.
    """

    def __init__(self, first: int) -> None:
        self._first = first
        self._next = random.randrange(first, END_BIT)

    def take(self, used: Container[int]) -> int:
        """The next id not in ``used``."""
        n = self._next
        first = self._first
        while True:
            rid = END_BIT | n
            n = n + 1 if n < END_BIT - 1 else first
            if rid not in used:
                break
        self._next = n
        return rid


class Pauser:
    """Pipes paused because the application is behind."""

    def __init__(self) -> None:
        self.paused: dict[int, Pipe] = {}

    def pause(self, pipe: Pipe) -> None:
        if pipe.id not in self.paused:
            pipe.pause_reading()
            self.paused[pipe.id] = pipe

    def join(self, pipe: Pipe) -> None:
        """A new pipe starts paused if the application is behind already."""
        if self.paused:
            self.pause(pipe)

    def resume_all(self) -> None:
        paused, self.paused = self.paused, {}
        for pipe in paused.values():
            if not pipe.closed:
                pipe.resume_reading()


class SendQueues:
    """Per-pipe send queues behind each pipe's own buffer (best effort)."""

    def __init__(self, host: ProtocolHost) -> None:
        self.host = host
        self.pipes: dict[int, Pipe] = {}
        self.queues: dict[int, deque[tuple[BytesLike, BytesLike]]] = {}

    def add(self, pipe: Pipe) -> None:
        self.pipes[pipe.id] = pipe
        self.queues[pipe.id] = deque()

    def pending(self) -> int:
        """Messages queued for all pipes together."""
        return sum(len(q) for q in self.queues.values())

    def remove(self, pipe: Pipe) -> None:
        self.pipes.pop(pipe.id, None)
        queued = self.queues.pop(pipe.id, None)
        if queued:
            self.host.count("drops", len(queued))

    def put(self, pipe: Pipe, header: BytesLike, body: BytesLike, limit: int) -> None:
        """Write now if the pipe can take it, else queue, else drop."""
        queue = self.queues[pipe.id]
        if not queue and pipe.writable:
            pipe.write(header, body)
        elif len(queue) < limit:
            queue.append((header, body))
        else:
            self.host.count("drops")

    def broadcast(self, header: BytesLike, body: BytesLike, limit: int) -> None:
        """Offer one message to every pipe; the body object is shared, not copied."""
        queues = self.queues
        for pid, pipe in self.pipes.items():
            queue = queues[pid]
            if not queue and pipe.writable:
                pipe.write(header, body)
            elif len(queue) < limit:
                queue.append((header, body))
            else:
                self.host.count("drops")

    def drain(self, pipe: Pipe) -> None:
        queue = self.queues.get(pipe.id)
        while queue and pipe.writable:
            header, body = queue.popleft()
            pipe.write(header, body)

    def clear(self) -> None:
        self.pipes.clear()
        self.queues.clear()


# ---------------------------------------------------------------- asking side

C = TypeVar("C")


class Requester(Protocol, Generic[C]):
    """The asking side (REQ, SURVEYOR): ids, contexts and the receive path.

    Subclasses make their contexts (:meth:`make_context`) and take a matched
    answer (:meth:`matched`); the rest of their rules is theirs.
    """

    #: Lowest value of the low 31 bits of an id (see :class:`IdAllocator`).
    first_id: ClassVar[int]
    #: What the answer is called in errors and counters.
    answer_name: ClassVar[str]
    id_name: ClassVar[str]
    stale_counter: ClassVar[str]

    def __init__(self, host: ProtocolHost, raw: bool) -> None:
        super().__init__(host, raw)
        #: Raw mode: pipes paused because the receive queue is full.
        self.pauser: Pauser = Pauser()
        #: Cooked mode: the conversations outstanding by id, and every live context.
        self.outstanding: dict[int, C] = {}
        self.contexts: dict[C, None] = {}
        #: Cooked mode: each context's deadline (host clock), at most one.
        self.deadlines: Deadlines[C] = Deadlines()
        self.ids: IdAllocator = IdAllocator(self.first_id)
        self._default: C | None = None
        if not raw:
            self._default = self.make_context(host.channel)
            self.contexts[self._default] = None

    def make_context(self, channel: Channel) -> C:
        """A cooked context on ``channel``."""
        raise NotImplementedError

    def matched(self, ctx: C, pipe: Pipe, header: bytes, body: BytesLike) -> None:
        """An answer for ``ctx`` came (``header`` is its id word)."""
        raise NotImplementedError

    def deadline_passed(self, ctx: C, now: float) -> None:
        """The deadline of ``ctx`` passed (it has none any more)."""
        raise NotImplementedError

    def next_deadline(self) -> float | None:
        return self.deadlines.next()

    def on_timer(self, now: float) -> None:
        deadlines = self.deadlines
        while (ctx := deadlines.pop_due(now)) is not None:
            self.deadline_passed(ctx, now)

    def new_context(self, channel: Channel) -> C:
        """A context with its own conversation (cooked only, as NNG).

        Raises:
            NotSupported: the socket is raw.
        """
        if self.raw:
            raise NotSupported(f"raw {self.self_name.upper()} sockets have no contexts")
        ctx = self.make_context(channel)
        self.contexts[ctx] = None
        return ctx

    def pipe_message(self, pipe: Pipe, payload: bytes | bytearray) -> None:
        peer = f"malformed {self.peer_name.upper()} {self.answer_name}"
        if self.raw:
            n = backtrace_length(payload, None)
            if n < 0:
                self.host.reject_pipe(pipe, f"{peer}: no end of backtrace")
                return
            header, body = split_at(payload, n)
            if not self.host.channel.deliver(Message(body, header, pipe)):
                self.pauser.pause(pipe)
            return
        if len(payload) < 4:
            self.host.reject_pipe(pipe, f"{peer}: shorter than a {self.id_name}")
            return
        ctx = self.outstanding.get(int.from_bytes(payload[:4], "big"))
        if ctx is None:
            self.host.count(self.stale_counter)
            self.host.count("drops")
            return
        header, body = split_at(payload, 4)
        self.matched(ctx, pipe, header, body)

    def recv_space(self) -> None:
        self.pauser.resume_all()


# ---------------------------------------------------------------- answering side


class ResponderContext:
    """One conversation of a cooked answering socket: the message it must answer."""

    option_specs: ClassVar[Mapping[str, OptionSpec]] = {}

    def __init__(self, proto: Responder, channel: Channel) -> None:
        self.proto = proto
        self.channel = channel
        self.closed: bool = False
        #: The message to answer: its pipe and backtrace.
        self.pipe: Pipe | None = None
        self.backtrace: bytes | None = None
        channel.on_recv_wait = self.recv_wait

    def recv_wait(self, poll: bool) -> None:
        """A receive asks for a message (channel hook, on the loop)."""
        ch = self.channel
        if ch.recv_queued or self.closed or not (poll or ch.has_receiver):
            return
        item = self.proto.next_pending()
        if item is not None:
            self.take(*item)
        elif not poll:
            self.proto.wanting[self] = None

    def take(self, pipe: Pipe, backtrace: bytes, body: BytesLike) -> None:
        self.pipe = pipe
        self.backtrace = backtrace
        self.channel.deliver(Message(body, b"", pipe))

    def try_send(self, msg: Message) -> bool:
        backtrace = self.backtrace
        if backtrace is None:
            raise BadState(self.proto.nothing_to_answer)
        pipe = self.pipe
        if pipe is None or pipe.closed:
            # The asker went away: nobody is left to hear the answer.
            self.backtrace = self.pipe = None
            self.proto.host.count("drops")
            return True
        if not pipe.writable:
            self.proto.waiting.setdefault(pipe.id, {})[self] = None
            return False
        pipe.write(backtrace, msg.body)
        self.backtrace = self.pipe = None
        return True

    def can_send(self) -> bool:
        return False  # no batching credit: see the protocol module's header

    def close(self) -> None:
        self.closed = True
        self.proto.wanting.pop(self, None)
        pipe = self.pipe
        if pipe is not None:
            self.proto.waiting.get(pipe.id, {}).pop(self, None)
        self.backtrace = self.pipe = None


class Responder(Protocol):
    """The answering side (REP, RESPONDENT), cooked (contexts) or raw."""

    #: Messages a raw socket queues per pipe behind the pipe's own buffer.
    raw_queue: ClassVar[int]
    #: What the received message is called in errors ("request", "survey").
    request_name: ClassVar[str]
    #: The :class:`BadState` text of a send with nothing to answer.
    nothing_to_answer: ClassVar[str]

    def __init__(self, host: ProtocolHost, raw: bool) -> None:
        super().__init__(host, raw)
        self._ttl: int = host.options.get("ttl_max", 8)
        self._pipes: dict[int, Pipe] = {}
        #: Raw mode: per-pipe send queues.
        self._out = SendQueues(host)
        self._pauser = Pauser()
        #: Cooked mode: messages nobody asked for yet, contexts asking, and
        #: contexts whose answer waits for a full pipe.
        self._pending: deque[tuple[Pipe, bytes, BytesLike]] = deque()
        self.wanting: dict[ResponderContext, None] = {}
        self.waiting: dict[int, dict[ResponderContext, None]] = {}
        self._default: ResponderContext | None = None
        if not raw:
            self._default = ResponderContext(self, host.channel)

    # ------------------------------------------------------------ pipes

    def add_pipe(self, pipe: Pipe) -> bool:
        self._pipes[pipe.id] = pipe
        if self.raw:
            self._out.add(pipe)
        self._pauser.join(pipe)  # the application is behind: start paused too
        return True

    def remove_pipe(self, pipe: Pipe) -> None:
        self._pipes.pop(pipe.id, None)
        self._pauser.paused.pop(pipe.id, None)
        self._out.remove(pipe)
        for ctx in list(self.waiting.pop(pipe.id, {})):
            ctx.channel.send_ready()  # its try_send now drops the answer

    def pipe_writable(self, pipe: Pipe) -> None:
        if self.raw:
            self._out.drain(pipe)
            return
        for ctx in list(self.waiting.pop(pipe.id, {})):
            ctx.channel.send_ready()

    # ------------------------------------------------------------ receive

    def pipe_message(self, pipe: Pipe, payload: bytes | bytearray) -> None:
        n = backtrace_length(payload, self._ttl)
        if n < 0:
            if n == TOO_MANY_HOPS:
                self.host.count("ttl_drops")
                self.host.count("drops")
            else:
                peer = self.peer_name.upper()
                self.host.reject_pipe(
                    pipe, f"malformed {peer} {self.request_name}: no end of backtrace"
                )
            return
        header, body = split_at(payload, n)
        if self.raw:
            header = pipe.id.to_bytes(4, "big") + header
            if not self.host.channel.deliver(Message(body, header, pipe)):
                self._pauser.pause(pipe)
            return
        wanting = self.wanting
        while wanting:
            ctx = next(iter(wanting))
            del wanting[ctx]
            ch = ctx.channel
            if not ctx.closed and ch.has_receiver and not ch.recv_queued:
                ctx.take(pipe, header, body)
                return
        self._pending.append((pipe, header, body))
        if len(self._pending) >= self.host.channel.recv_capacity:
            self._pauser.pause(pipe)

    def next_pending(self) -> tuple[Pipe, bytes, BytesLike] | None:
        """The oldest waiting message whose pipe is still open (cooked mode)."""
        pending = self._pending
        while pending:
            item = pending.popleft()
            if self._pauser.paused and len(pending) <= self.host.channel.recv_capacity // 2:
                self._pauser.resume_all()
            if item[0].closed:
                self.host.count("drops")  # nobody is left to answer
                continue
            return item
        return None

    def recv_space(self) -> None:
        # Cooked: messages wait in _pending, not in the application's queue.
        if self.raw or len(self._pending) <= self.host.channel.recv_capacity // 2:
            self._pauser.resume_all()

    # ------------------------------------------------------------ send

    def try_send(self, msg: Message) -> bool:
        if self._default is not None:
            return self._default.try_send(msg)
        header = msg.header
        pipe = self._pipes.get(int.from_bytes(header[:4], "big")) if len(header) >= 4 else None
        if pipe is None:
            # No pipe id, or the asker is gone: dropped, as NNG does.
            self.host.count("drops")
            return True
        self._out.put(pipe, bytes(header[4:]), msg.body, self.raw_queue)
        return True

    def can_send(self) -> bool:
        return self.raw  # a raw send never waits and changes no state

    def new_context(self, channel: Channel) -> ResponderContext:
        """A context that receives one message and answers it (cooked only).

        Raises:
            NotSupported: the socket is raw.
        """
        if self.raw:
            raise NotSupported(f"raw {self.self_name.upper()} sockets have no contexts")
        return ResponderContext(self, channel)

    # ------------------------------------------------------------ options

    def set_option(self, name: str, value: Any) -> None:
        if name == "ttl_max":
            self._ttl = value

    def pending_messages(self) -> int:
        """Raw replies queued per pipe, and cooked replies waiting for a full pipe."""
        return self._out.pending() + sum(len(w) for w in self.waiting.values())

    def close(self) -> None:
        self._pending.clear()
        self.wanting.clear()
        self.waiting.clear()
