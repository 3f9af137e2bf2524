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
``send`` returns, and a :class:`~purenng.BadState` reaches the caller.

Time: SURVEYOR reads no clock and arms no timer.  Starting a survey with
``survey_time`` set gives its context the deadline ``now + survey_time``
(``now`` from the host); a new survey or close replaces or clears it.  The
protocol reports the earliest deadline of all its contexts
(``next_deadline``) and the socket's one timer calls ``on_timer(now)``,
which ends every survey whose deadline passed.

The backtrace parsing, id allocation, per-pipe queues, the SURVEYOR receive
path and all of RESPONDENT are shared with REQ/REP in :mod:`._backtrace`;
this module keeps the surveys (broadcast, deadlines, held responses), the
names, ids and options.
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING, Any, ClassVar

from ..plugin import BadState, Message, OptionSpec, Timeout, duration, hookimpl, integer
from ._backtrace import END_BIT as END_BIT
from ._backtrace import MALFORMED as MALFORMED
from ._backtrace import TOO_MANY_HOPS as TOO_MANY_HOPS
from ._backtrace import Requester, Responder, SendQueues, backtrace_length

if TYPE_CHECKING:
    from collections.abc import Mapping

    from ..plugin import BytesLike, Channel, Pipe, ProtocolHost, Registry

__all__ = [
    "RAW_QUEUE",
    "SEND_BUFFER",
    "SURVEY_TIME",
    "Respondent0Protocol",
    "Surveyor0Protocol",
    "backtrace_length",
]

#: The purenng plugin API this module is written for (purenng.plugin.API_VERSION).
PURENNG_PLUGIN_API: str = "1.0"

#: Surveys queued per pipe behind the pipe's own buffer by a cooked surveyor
#: (NNG's send-buffer default for SURVEYOR, wire-protocols.md §1.4, §3.1).
SEND_BUFFER = 8
#: Messages queued per pipe by a raw surveyor or raw respondent (NNG's
#: xsurveyor queue depth, wire-protocols.md §1.4).
RAW_QUEUE = 16
#: Default survey duration in seconds (NNG, nanomsg, mangos: 1 s; §3.1).
SURVEY_TIME = 1.0

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


def _no_survey() -> BadState:
    return BadState("no survey in progress: send a survey before receiving")


def _survey_over() -> BadState:
    return BadState("the survey is over (its deadline passed): send a new survey")


# ---------------------------------------------------------------- SURVEYOR


class _SurveyContext:
    """One conversation of a cooked surveyor: at most one survey running."""

    option_specs: ClassVar[Mapping[str, OptionSpec]] = _SURVEY_CONTEXT_OPTIONS

    def __init__(self, proto: Surveyor0Protocol, channel: Channel) -> None:
        self.proto = proto
        self.channel = channel
        self.survey_time: float | None = proto.host.options.get("survey_time", SURVEY_TIME)
        self.closed: bool = False
        #: The running survey's id (0: none); its deadline is in proto.deadlines.
        self.survey_id: int = 0
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
        """Forget the running survey: its id, deadline and unread responses."""
        self.proto.deadlines.clear(self)
        if self.survey_id:
            self.proto.outstanding.pop(self.survey_id, None)
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
        self.proto.outstanding[survey_id] = self
        ch.recv_error = None
        if self.survey_time is not None:
            proto = self.proto
            proto.deadlines.set(self, proto.host.now() + self.survey_time)

    def expire(self) -> None:
        """The deadline of the running survey passed."""
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


class Surveyor0Protocol(Requester[_SurveyContext]):
    """SURVEYOR v0, cooked (contexts, deadlines) or raw."""

    name = "surveyor0"
    self_id = 0x62
    peer_id = 0x63
    self_name = "surveyor"
    peer_name = "respondent"
    option_specs: ClassVar[Mapping[str, OptionSpec]] = _SURVEYOR_OPTIONS
    first_id = 0
    answer_name = "response"
    id_name = "survey id"
    stale_counter = "stale_responses"

    def __init__(self, host: ProtocolHost, raw: bool) -> None:
        super().__init__(host, raw)
        self._out = SendQueues(host)
        self._send_buffer: int = host.options.get("send_buffer", SEND_BUFFER)

    def make_context(self, channel: Channel) -> _SurveyContext:
        return _SurveyContext(self, channel)

    # ------------------------------------------------------------ pipes

    def add_pipe(self, pipe: Pipe) -> bool:
        self._out.add(pipe)
        self.pauser.join(pipe)  # raw: the application is behind, start paused too
        return True

    def remove_pipe(self, pipe: Pipe) -> None:
        self._out.remove(pipe)
        self.pauser.paused.pop(pipe.id, None)

    def pipe_writable(self, pipe: Pipe) -> None:
        self._out.drain(pipe)

    # ------------------------------------------------------------ send

    def start_survey(self, ctx: _SurveyContext, body: BytesLike) -> None:
        """Send a new survey for ``ctx`` to every pipe and start its deadline."""
        sid = self.ids.take(self.outstanding)
        ctx.begin(sid)  # first: a response may come back before broadcast returns
        self._out.broadcast(sid.to_bytes(4, "big"), body, self._send_buffer)

    def try_send(self, msg: Message) -> bool:
        if self._default is not None:
            return self._default.try_send(msg)
        self._out.broadcast(msg.header, msg.body, RAW_QUEUE)
        return True

    def can_send(self) -> bool:
        return self.raw  # a raw send never waits and changes no state

    # ------------------------------------------------------------ receive

    def matched(self, ctx: _SurveyContext, pipe: Pipe, header: bytes, body: BytesLike) -> None:
        ctx.got_response(Message(body, header, pipe))

    def deadline_passed(self, ctx: _SurveyContext, now: float) -> None:
        ctx.expire()

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


class Respondent0Protocol(Responder):
    """RESPONDENT v0, cooked (contexts) or raw: the rest lives in :class:`Responder`."""

    name = "respondent0"
    self_id = 0x63
    peer_id = 0x62
    self_name = "respondent"
    peer_name = "surveyor"
    option_specs: ClassVar[Mapping[str, OptionSpec]] = _RESPONDENT_OPTIONS
    raw_queue = RAW_QUEUE
    request_name = "survey"
    nothing_to_answer = "no survey to respond to: receive one first"

    def close(self) -> None:
        super().close()
        self._out.clear()


@hookimpl
def purenng_register_protocols(registry: Registry) -> None:
    registry.add_protocol(Surveyor0Protocol)
    registry.add_protocol(Respondent0Protocol)
