"""SURVEYOR v0 (0x62) and RESPONDENT v0 (0x63): ask everyone, collect answers until a deadline.

Wire format (``reference/wire-protocols.md`` §1.2): a survey carries a
*backtrace* in front of its body, a stack of 32-bit big-endian words.  The
surveyor pushes one word, the survey id, with bit 31 set: it ends the stack.
Every device on the way pushes the 31-bit id of the pipe the survey came in
on (bit 31 clear).  A respondent sends the whole stack back in front of its
response; each device pops its word to find the pipe to forward on, and the
surveyor matches the id.  Protocol numbers 0x60/0x61 were the old surveyor
without a backtrace; purenng speaks only 0x62/0x63, as NNG, nanomsg >= 1.0
and mangos do (§4 item 14).

Cooked SURVEYOR (NNG ``src/sp/protocol/survey0/survey.c``):

* A send starts a survey: a fresh id (bit 31 set, from a counter with a
  random start; no two live surveys share one) goes in front of the body,
  and the survey is offered to every connected pipe.  It never waits: a pipe
  that cannot take it now gets it through its own queue of ``send_buffer``
  surveys (default :data:`SEND_BUFFER`, 8 as NNG), and when that is full the
  survey is dropped for that pipe only (``drops``).  A survey with no pipe
  at all goes nowhere, and its deadline still runs.
* The survey lasts ``survey_time`` seconds (default 1.0 as NNG, nanomsg and
  mangos; None: no deadline).  Responses carrying its id are delivered with
  the id removed from the body (it is kept in ``Message.header``, as NNG
  keeps it) and ``Message.pipe`` set; at most ``recv_buffer`` of them wait
  for the application, more are dropped.  Responses with any other id
  (late, from a cancelled survey, or never asked for) are dropped and
  counted (``stale_responses``, ``drops``); a response shorter than 4 bytes
  closes its pipe.
* At the deadline a receive waiting for a response raises
  :class:`~purenng.Timeout` (NNG_ETIMEDOUT).  The survey is then over:
  responses not yet received are dropped, and every later receive raises
  :class:`~purenng.BadState` (NNG_ESTATE) until the next survey.  A receive
  before any survey raises :class:`~purenng.BadState` too.
* A new survey cancels the previous one of the same context: its unread
  responses are dropped, a receive waiting for it raises
  :class:`~purenng.BadState` (NNG: ECANCELED), and its late responses are
  stale.
* Contexts (``sock.new_context()``) each run their own survey with their
  own id, deadline and ``survey_time`` (copied from the socket when the
  context is made, then set per context).  ``ttl_max`` exists for NNG
  parity; a surveyor does not check hops (§1.3).

Cooked RESPONDENT (NNG ``respond.c``):

* A survey's backtrace is moved out of the body word by word up to and
  including the first word with bit 31 set.  More than ``ttl_max`` words
  (1..15, default 8) drops the survey (``ttl_drops``, ``drops``) and keeps
  the pipe; a body that ends before such a word closes the pipe.
* Surveys wait in arrival order until a receive (of the socket or of any
  context) asks; each receive gets exactly one, and its context remembers
  the backtrace and the pipe.  When ``recv_buffer`` surveys wait, the pipe
  that delivers more pauses.  Surveys whose pipe closed meanwhile are
  dropped.
* Send answers the last survey the context received, on the pipe it came
  from, and forgets it: a send with no survey raises
  :class:`~purenng.BadState`.  If that pipe is gone the response is dropped
  silently (the send succeeds, as NNG's does); if it is full the send waits.

Raw mode (devices; NNG ``xsurvey.c``, ``xrespond.c``; no contexts):

* Raw SURVEYOR sends ``msg.header + msg.body`` to every pipe, each through
  a queue of :data:`RAW_QUEUE` messages, dropping for a full one.  On
  receive the header is the backtrace words up to and including the first
  with bit 31 set (a body that runs out closes the pipe); no hop limit, as
  NNG.
* Raw RESPONDENT puts the 4-byte id of the pipe a survey came from first in
  the header, then the backtrace (TTL and malformed rules as cooked).  A
  send takes the first header word as the pipe id, strips it and writes the
  rest of the header and the body to that pipe through a queue of
  :data:`RAW_QUEUE` messages.  A header shorter than 4 bytes, an unknown
  pipe or a full queue drops the message silently (``drops``).
* Raw receives apply back-pressure (the pipe pauses while the application
  is ``recv_buffer`` messages behind), as NNG's shared receive queue does.

Theory of operation: received messages are handed to the application on
demand.  Cooked sockets and contexts set ``channel.on_recv_wait``; the
channel calls it when a receive waits (or polls) with nothing queued, and
the protocol delivers one message only while that receive still waits.  A
surveyor context so keeps its responses itself, where a new survey or the
deadline can drop them, and a respondent context knows exactly which survey
the application got.  Cooked sends never get the channel's batching credit
(``can_send`` is False), so every send reaches ``try_send`` while its
caller waits: a survey has started (and the receive state changed) before
``send`` returns, and a :class:`~purenng.BadState` reaches the caller.  The
survey deadline is one ``loop.call_later`` per survey, cancelled by the
next survey or by close.
"""

from __future__ import annotations

import random
from collections import deque
from typing import TYPE_CHECKING, Any, ClassVar

from ..core.errors import BadState, NotSupported, Timeout
from ..plugin import Message, OptionSpec, Protocol, duration, hookimpl, integer

if TYPE_CHECKING:
    import asyncio
    from collections.abc import Mapping

    from ..core.channel import Channel
    from ..core.message import BytesLike
    from ..plugin import Pipe, ProtocolHost, Registry

__all__ = [
    "RAW_QUEUE",
    "SEND_BUFFER",
    "SURVEY_TIME",
    "Respondent0Protocol",
    "Surveyor0Protocol",
    "backtrace_length",
]

#: Surveys queued per pipe behind the pipe's own buffer by a cooked surveyor
#: (NNG's send-buffer default for SURVEYOR, wire-protocols.md §1.4, §3.1).
SEND_BUFFER = 8
#: Messages queued per pipe by a raw surveyor or raw respondent (NNG's
#: xsurveyor queue depth, wire-protocols.md §1.4).
RAW_QUEUE = 16
#: Default survey duration in seconds (NNG, nanomsg, mangos: 1 s; §3.1).
SURVEY_TIME = 1.0
#: The bit that ends a backtrace (set in survey ids).
END_BIT = 0x80000000

#: :func:`backtrace_length` results that are not lengths.
MALFORMED = -1
TOO_MANY_HOPS = -2

_TTL = OptionSpec(
    "ttl_max",
    integer(1, 15),
    8,
    "most backtrace words (hops) a survey may carry (NNG: 1..15, default 8)",
)
_SURVEY_TIME = OptionSpec(
    "survey_time",
    duration(),
    SURVEY_TIME,
    "seconds a survey collects responses; None: no deadline (default 1.0)",
)
_SEND_BUFFER = OptionSpec(
    "send_buffer",
    integer(0, 8192),
    SEND_BUFFER,
    "surveys queued per peer before the surveyor drops for that peer (NNG default 8)",
)
_SURVEYOR_OPTIONS: Mapping[str, OptionSpec] = {
    s.name: s for s in (_SURVEY_TIME, _TTL, _SEND_BUFFER)
}
_SURVEY_CONTEXT_OPTIONS: Mapping[str, OptionSpec] = {_SURVEY_TIME.name: _SURVEY_TIME}
_RESPONDENT_OPTIONS: Mapping[str, OptionSpec] = {_TTL.name: _TTL}


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


def _split(payload: bytes | bytearray, n: int) -> tuple[bytes, BytesLike]:
    """Header and body of ``payload`` cut at ``n``.

    A small payload is bytes (slicing copies little); a large one arrived in
    its own bytearray, and its body is viewed rather than copied again.
    """
    if type(payload) is bytes:
        return payload[:n], payload[n:]
    return bytes(payload[:n]), memoryview(payload)[n:]


def _no_survey() -> BadState:
    return BadState("no survey in progress: send a survey before receiving")


def _survey_over() -> BadState:
    return BadState("the survey is over (its deadline passed): send a new survey")


class _Queues:
    """Per-pipe send queues behind each pipe's own buffer (best effort)."""

    def __init__(self, host: ProtocolHost) -> None:
        self.host = host
        self.pipes: dict[int, Pipe] = {}
        self.queues: dict[int, deque[tuple[BytesLike, BytesLike]]] = {}

    def add(self, pipe: Pipe) -> None:
        self.pipes[pipe.id] = pipe
        self.queues[pipe.id] = deque()

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


class _Pauser:
    """Pipes paused because the application is behind."""

    def __init__(self) -> None:
        self.paused: dict[int, Pipe] = {}

    def pause(self, pipe: Pipe) -> None:
        if pipe.id not in self.paused:
            pipe.pause_reading()
            self.paused[pipe.id] = pipe

    def resume_all(self) -> None:
        paused, self.paused = self.paused, {}
        for pipe in paused.values():
            if not pipe.closed:
                pipe.resume_reading()


# ---------------------------------------------------------------- SURVEYOR


class _SurveyContext:
    """One conversation of a cooked surveyor: at most one survey running."""

    option_specs: ClassVar[Mapping[str, OptionSpec]] = _SURVEY_CONTEXT_OPTIONS

    def __init__(self, proto: Surveyor0Protocol, channel: Channel) -> None:
        self.proto = proto
        self.channel = channel
        self.survey_time: float | None = proto.host.options.get("survey_time", SURVEY_TIME)
        self.closed = False
        #: The running survey's id (0: none) and its deadline timer.
        self.survey_id = 0
        self.timer: asyncio.TimerHandle | None = None
        #: Responses received and not yet asked for.
        self.held: deque[Message] = deque()
        channel.recv_error = _no_survey()
        channel.on_recv_wait = self.recv_wait

    # -- application side -------------------------------------------------

    def try_send(self, msg: Message) -> bool:
        self.proto.start_survey(self, msg.body)
        return True

    def can_send(self) -> bool:
        return False  # no batching credit: see the module header

    def recv_wait(self, poll: bool) -> None:
        """A receive asks for a response (channel hook, on the loop)."""
        ch = self.channel
        if ch.recv_queued or self.closed or not (poll or ch.has_receiver):
            return
        if self.held:
            ch.deliver(self.held.popleft())
        elif not poll and not self.survey_id and ch.recv_error is not None:
            # The receive looked before the deadline and waited after it.
            ch.fail_receivers(Timeout("the survey timed out"))

    def close(self) -> None:
        self.closed = True
        self.end()
        self.proto.contexts.pop(self, None)

    # -- protocol side ------------------------------------------------------

    def end(self) -> None:
        """Forget the running survey: its id, timer and unread responses."""
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        if self.survey_id:
            self.proto.surveys.pop(self.survey_id, None)
            self.survey_id = 0
        if self.held:
            self.proto.host.count("drops", len(self.held))
            self.held.clear()

    def begin(self, survey_id: int) -> None:
        """A new survey replaces the running one (already sent to the pipes)."""
        ch = self.channel
        if self.survey_id and ch.has_receiver:
            ch.fail_receivers(BadState("survey canceled by a newer survey on the same context"))
        self.end()
        self.survey_id = survey_id
        self.proto.surveys[survey_id] = self
        ch.recv_error = None
        if self.survey_time is not None:
            self.timer = self.proto.host.loop.call_later(self.survey_time, self.expire, survey_id)

    def expire(self, survey_id: int) -> None:
        """The deadline of survey ``survey_id`` passed."""
        if survey_id != self.survey_id:
            return
        self.timer = None
        self.end()
        ch = self.channel
        # recv_error first: a receive that raced this sees it (or recv_wait).
        ch.recv_error = _survey_over()
        ch.fail_receivers(Timeout("the survey timed out"))

    def got_response(self, msg: Message) -> None:
        ch = self.channel
        if not self.held and not ch.recv_queued and ch.has_receiver:
            ch.deliver(msg)
        elif len(self.held) < ch.recv_capacity:
            self.held.append(msg)
        else:
            self.proto.host.count("drops")


class Surveyor0Protocol(Protocol):
    """SURVEYOR v0, cooked (contexts, deadlines) or raw."""

    name = "surveyor0"
    self_id = 0x62
    peer_id = 0x63
    self_name = "surveyor"
    peer_name = "respondent"
    option_specs = _SURVEYOR_OPTIONS

    def __init__(self, host: ProtocolHost, raw: bool) -> None:
        super().__init__(host, raw)
        self._out = _Queues(host)
        self._send_buffer: int = host.options.get("send_buffer", SEND_BUFFER)
        self._pauser = _Pauser()
        #: Cooked mode: running surveys by id, and every live context.
        self.surveys: dict[int, _SurveyContext] = {}
        self.contexts: dict[_SurveyContext, None] = {}
        self._next_id = random.randrange(0, END_BIT)
        self._default: _SurveyContext | None = None
        if not raw:
            self._default = _SurveyContext(self, host.channel)
            self.contexts[self._default] = None

    # ------------------------------------------------------------ pipes

    def add_pipe(self, pipe: Pipe) -> bool:
        self._out.add(pipe)
        if self.raw and self._pauser.paused:
            self._pauser.pause(pipe)  # the application is behind: start paused too
        return True

    def remove_pipe(self, pipe: Pipe) -> None:
        self._out.remove(pipe)
        self._pauser.paused.pop(pipe.id, None)

    def pipe_writable(self, pipe: Pipe) -> None:
        self._out.drain(pipe)

    # ------------------------------------------------------------ send

    def alloc_id(self) -> int:
        """A fresh survey id: bit 31 set, not used by a running survey."""
        n = self._next_id
        surveys = self.surveys
        while True:
            sid = END_BIT | n
            n = (n + 1) & (END_BIT - 1)
            if sid not in surveys:
                break
        self._next_id = n
        return sid

    def start_survey(self, ctx: _SurveyContext, body: BytesLike) -> None:
        """Send a new survey for ``ctx`` to every pipe and start its deadline."""
        sid = self.alloc_id()
        ctx.begin(sid)  # first: a response may come back before broadcast returns
        self._out.broadcast(sid.to_bytes(4, "big"), body, self._send_buffer)

    def try_send(self, msg: Message) -> bool:
        if self._default is not None:
            return self._default.try_send(msg)
        self._out.broadcast(msg.header, msg.body, RAW_QUEUE)
        return True

    def can_send(self) -> bool:
        return self.raw  # a raw send never waits and changes no state

    def new_context(self, channel: Channel) -> _SurveyContext:
        """A context running its own surveys (cooked only, as NNG).

        Raises:
            NotSupported: the socket is raw.
        """
        if self.raw:
            raise NotSupported("raw SURVEYOR sockets have no contexts")
        ctx = _SurveyContext(self, channel)
        self.contexts[ctx] = None
        return ctx

    # ------------------------------------------------------------ receive

    def pipe_message(self, pipe: Pipe, payload: bytes | bytearray) -> None:
        if self.raw:
            n = backtrace_length(payload, None)
            if n < 0:
                self.host.reject_pipe(pipe, "malformed RESPONDENT response: no end of backtrace")
                return
            header, body = _split(payload, n)
            if not self.host.channel.deliver(Message(body, header, pipe)):
                self._pauser.pause(pipe)
            return
        if len(payload) < 4:
            self.host.reject_pipe(pipe, "malformed RESPONDENT response: shorter than a survey id")
            return
        ctx = self.surveys.get(int.from_bytes(payload[:4], "big"))
        if ctx is None:
            self.host.count("stale_responses")
            self.host.count("drops")
            return
        header, body = _split(payload, 4)
        ctx.got_response(Message(body, header, pipe))

    def recv_space(self) -> None:
        self._pauser.resume_all()

    # ------------------------------------------------------------ options

    def set_option(self, name: str, value: Any) -> None:
        if name == "survey_time" and self._default is not None:
            self._default.survey_time = value
        elif name == "send_buffer":
            self._send_buffer = value

    def close(self) -> None:
        for ctx in list(self.contexts):
            ctx.end()
        self._out.clear()


# ---------------------------------------------------------------- RESPONDENT


class _RespondContext:
    """One conversation of a cooked respondent: the survey it must answer."""

    option_specs: ClassVar[Mapping[str, OptionSpec]] = {}

    def __init__(self, proto: Respondent0Protocol, channel: Channel) -> None:
        self.proto = proto
        self.channel = channel
        self.closed = False
        #: The survey to answer: its pipe and backtrace.
        self.pipe: Pipe | None = None
        self.backtrace: bytes | None = None
        channel.on_recv_wait = self.recv_wait

    def recv_wait(self, poll: bool) -> None:
        """A receive asks for a survey (channel hook, on the loop)."""
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
            raise BadState("no survey to respond to: receive one first")
        pipe = self.pipe
        if pipe is None or pipe.closed:
            # The surveyor went away: nobody is left to hear the response.
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
        return False  # no batching credit: see the module header

    def close(self) -> None:
        self.closed = True
        self.proto.wanting.pop(self, None)
        pipe = self.pipe
        if pipe is not None:
            self.proto.waiting.get(pipe.id, {}).pop(self, None)
        self.backtrace = self.pipe = None


class Respondent0Protocol(Protocol):
    """RESPONDENT v0, cooked (contexts) or raw."""

    name = "respondent0"
    self_id = 0x63
    peer_id = 0x62
    self_name = "respondent"
    peer_name = "surveyor"
    option_specs = _RESPONDENT_OPTIONS

    def __init__(self, host: ProtocolHost, raw: bool) -> None:
        super().__init__(host, raw)
        self._ttl: int = host.options.get("ttl_max", 8)
        self._pipes: dict[int, Pipe] = {}
        self._out = _Queues(host)
        self._pauser = _Pauser()
        #: Cooked mode: surveys nobody asked for yet, contexts asking, and
        #: contexts whose response waits for a full pipe.
        self._pending: deque[tuple[Pipe, bytes, BytesLike]] = deque()
        self.wanting: dict[_RespondContext, None] = {}
        self.waiting: dict[int, dict[_RespondContext, None]] = {}
        self._default: _RespondContext | None = None
        if not raw:
            self._default = _RespondContext(self, host.channel)

    # ------------------------------------------------------------ pipes

    def add_pipe(self, pipe: Pipe) -> bool:
        self._pipes[pipe.id] = pipe
        if self.raw:
            self._out.add(pipe)
        if self._pauser.paused:
            self._pauser.pause(pipe)  # the application is behind: start paused too
        return True

    def remove_pipe(self, pipe: Pipe) -> None:
        self._pipes.pop(pipe.id, None)
        self._pauser.paused.pop(pipe.id, None)
        self._out.remove(pipe)
        for ctx in list(self.waiting.pop(pipe.id, {})):
            ctx.channel.send_ready()  # its try_send now drops the response

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
                self.host.reject_pipe(pipe, "malformed SURVEYOR survey: no end of backtrace")
            return
        header, body = _split(payload, n)
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
        """The oldest survey whose pipe is still open (cooked mode)."""
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
        # Cooked: surveys wait in _pending, not in the application's queue.
        if self.raw or len(self._pending) <= self.host.channel.recv_capacity // 2:
            self._pauser.resume_all()

    # ------------------------------------------------------------ send

    def try_send(self, msg: Message) -> bool:
        if self._default is not None:
            return self._default.try_send(msg)
        header = msg.header
        pipe = self._pipes.get(int.from_bytes(header[:4], "big")) if len(header) >= 4 else None
        if pipe is None:
            # No pipe id, or the surveyor is gone: dropped, as NNG does.
            self.host.count("drops")
            return True
        self._out.put(pipe, bytes(header[4:]), msg.body, RAW_QUEUE)
        return True

    def can_send(self) -> bool:
        return self.raw  # a raw send never waits and changes no state

    def new_context(self, channel: Channel) -> _RespondContext:
        """A context that receives one survey and answers it (cooked only).

        Raises:
            NotSupported: the socket is raw.
        """
        if self.raw:
            raise NotSupported("raw RESPONDENT sockets have no contexts")
        return _RespondContext(self, channel)

    # ------------------------------------------------------------ options

    def set_option(self, name: str, value: Any) -> None:
        if name == "ttl_max":
            self._ttl = value

    def close(self) -> None:
        self._pending.clear()
        self.wanting.clear()
        self.waiting.clear()
        self._out.clear()


@hookimpl
def purenng_register_protocols(registry: Registry) -> None:
    registry.add_protocol(Surveyor0Protocol)
    registry.add_protocol(Respondent0Protocol)
