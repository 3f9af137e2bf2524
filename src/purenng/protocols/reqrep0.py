"""REQ v0 (0x30) and REP v0 (0x31): request/reply, cooked and raw, with contexts.

Wire format (``reference/wire-protocols.md`` §1.2): a request carries a
*backtrace* in front of its body, a stack of 32-bit big-endian words.  The
requester pushes one word, the request id, with bit 31 set: it marks the
bottom of the stack.  Every device on the way pushes the 31-bit id of the
pipe the request came in on (bit 31 clear).  The replier sends the whole
stack back in front of its reply; each device pops its word to find the pipe
to forward on, and the requester matches the id.

Cooked REQ (NNG ``src/sp/protocol/reqrep0/req.c``):

* Each context (the socket itself is one) has at most one request
  outstanding.  Request ids come from a per-socket counter with a random
  start; the low 31 bits are never 0 and no two outstanding requests share
  an id.
* Send picks a ready pipe round robin and writes ``id + body``.  With no
  ready pipe it waits (back-pressure) and, once taken, the request is on the
  wire: a send returns only after that.
* A new send abandons the previous request of its context: a receive
  waiting for it fails with :class:`BadState` (NNG: ECANCELED), and its
  reply, should one come, is dropped like any unknown id.
* Receive before any request, or a second receive after the reply was
  taken, raises :class:`BadState` at once (NNG_ESTATE).
* Replies are matched by id; unknown or stale ids are dropped and counted
  (``stale_replies``, ``drops``).  A reply shorter than 4 bytes closes the
  pipe.  A 4-byte word without bit 31 is just an unknown id: dropped, as NNG
  does.
* ``resend_time`` (seconds, default 60, per socket and per context; None or
  0 disables) resends a request that got no reply in that time, and a
  request whose pipe goes away is resent at once on another pipe (or on
  the next one to come).  Both are counted in ``resends``.  NNG checks
  resends on a 1 s tick, so its resends come up to a second late; purenng
  keeps a deadline per request and resends on time.  With resends disabled,
  losing the pipe fails the receive with :class:`ConnectionReset` (a waiting
  receive at once, else the next ones until the next send).
* The reply is held by the context until a receive asks for it, so that a
  new send can still discard a reply nobody took (NNG keeps it the same way).

Cooked REP (NNG ``rep.c``):

* A request's backtrace is moved out of the body word by word up to and
  including the first word with bit 31 set.  More than ``ttl_max`` words
  (1..15, default 8) drops the message (``ttl_drops``, ``drops``) and keeps
  the pipe, a body that ends before such a word closes the pipe (a
  malformed request).
* Requests wait in arrival order until a receive (of the socket or of any
  context) asks; each receive gets exactly one and its context remembers the
  backtrace and the pipe.  Requests whose pipe closed meanwhile are dropped.
  When ``recv_buffer`` requests wait, the pipe that delivers more pauses.
* Send replies to the last request the context received, on its pipe, and
  forgets it: a send with no request raises :class:`BadState`.  If the pipe
  is gone the reply is dropped silently (the send succeeds, as NNG's does);
  if it is full the send waits for it.

Raw mode (for devices, as NNG's ``xreq.c`` and ``xrep.c``; no contexts):

* Raw REQ sends ``msg.header + msg.body`` unchanged, round robin with
  back-pressure.  On receive the header is the backtrace words up to and
  including the first with bit 31 set (a body that runs out closes the pipe).
* Raw REP puts the 4-byte id of the pipe a request came from first in the
  header, then the backtrace (TTL and malformed rules as cooked).  A send
  takes the first header word as the pipe id, strips it and writes the rest
  of the header and the body to that pipe through a per-pipe queue of
  :data:`XREP_QUEUE` messages.  A header shorter than 4 bytes, an unknown
  pipe or a full queue drops the message silently (``drops``): a raw REP
  never blocks on one slow requester.

Theory of operation: requests and replies are handed to the application on
demand.  Cooked sockets and contexts set ``channel.on_recv_wait``; the
channel calls it when a receive waits (or polls) with nothing queued, and
the protocol delivers one message only while that receive is still waiting.
This is what binds "the request this context received" to exactly the
message the application got.  Cooked sends never get the channel's batching
credit (:meth:`can_send` is False) so that every send reaches ``try_send``
while its caller waits, and a :class:`BadState` reaches the caller.

Time: REQ reads no clock and arms no timer.  Writing a request with
``resend_time`` set gives its context the deadline ``now + resend_time``
(``now`` from the host, or the one ``on_timer`` was handed); the protocol
reports the earliest deadline of all its contexts (``next_deadline``) and
the socket's one timer calls ``on_timer(now)``, which resends every request
whose deadline passed.

The backtrace parsing, id allocation, the REQ receive path and all of REP
are shared with SURVEYOR/RESPONDENT in :mod:`._backtrace`; this module keeps
REQ's sending, resends and contexts, and the names, ids and options.
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING, Any, ClassVar

from ..plugin import BadState, ConnectionReset, Message, OptionSpec, duration, hookimpl, integer
from ._backtrace import END_BIT as END_BIT
from ._backtrace import MALFORMED as MALFORMED
from ._backtrace import TOO_MANY_HOPS as TOO_MANY_HOPS
from ._backtrace import Requester, Responder, backtrace_length

if TYPE_CHECKING:
    from collections.abc import Mapping

    from ..plugin import BytesLike, Channel, Pipe, ProtocolHost, Registry

__all__ = ["XREP_QUEUE", "Rep0Protocol", "Req0Protocol", "backtrace_length"]

#: The purenng plugin API this module is written for (purenng.plugin.API_VERSION).
PURENNG_PLUGIN_API: str = "1.0"

#: Messages a raw REP queues per pipe behind the pipe's own buffer (NNG: 64).
XREP_QUEUE = 64

_TTL = OptionSpec(
    "ttl_max",
    integer(1, 15),
    8,
    "most backtrace words (hops) a request may carry (NNG: 1..15, default 8)",
)
_RESEND = OptionSpec(
    "resend_time",
    duration(),
    60.0,
    "seconds before an unanswered request is sent again; None or 0: never",
)
_REQ_OPTIONS: Mapping[str, OptionSpec] = {s.name: s for s in (_TTL, _RESEND)}
_REQ_CONTEXT_OPTIONS: Mapping[str, OptionSpec] = {_RESEND.name: _RESEND}
_REP_OPTIONS: Mapping[str, OptionSpec] = {_TTL.name: _TTL}


def _no_request() -> BadState:
    return BadState("no request outstanding: send one before receiving")


# ---------------------------------------------------------------- REQ


class _ReqContext:
    """One conversation of a cooked REQ socket: at most one request outstanding."""

    option_specs: ClassVar[Mapping[str, OptionSpec]] = _REQ_CONTEXT_OPTIONS

    def __init__(self, proto: Req0Protocol, channel: Channel) -> None:
        self.proto = proto
        self.channel = channel
        self.resend_time: float | None = proto.host.options.get("resend_time", 60.0)
        self.closed: bool = False
        #: The outstanding request: its id, wire header and body.
        self.req_id: int = 0
        self.request: tuple[bytes, BytesLike] | None = None
        #: The pipe the request was last written to.
        self.pipe: Pipe | None = None
        #: A reply not yet taken by a receive.
        self.reply: Message | None = None
        #: The message of a send waiting for a pipe (see :meth:`try_send`).
        self.offered: Message | None = None
        channel.recv_error = _no_request()
        channel.on_recv_wait = self.recv_wait

    # -- application side -------------------------------------------------

    def try_send(self, msg: Message) -> bool:
        proto = self.proto
        if msg is not self.offered:
            # A new request: the previous one is abandoned now, even if this
            # one has to wait for a pipe (as NNG does).
            self.abandon("request canceled by a newer request on the same context")
            self.offered = msg
        pipe = proto.pick_pipe()
        if pipe is None:
            proto.blocked[self] = None
            return False
        self.offered = None
        rid = proto.alloc_id(self)
        self.req_id = rid
        self.request = (rid.to_bytes(4, "big"), msg.body)
        self.channel.recv_error = None
        self.transmit(pipe)
        return True

    def can_send(self) -> bool:
        return False  # no batching credit: see the module header

    def recv_wait(self, poll: bool) -> None:
        """A receive asks for the reply (channel hook, on the loop)."""
        ch = self.channel
        if ch.recv_queued or self.closed or not (poll or ch.has_receiver):
            return
        reply = self.reply
        if reply is not None:
            self.reply = None
            ch.recv_error = _no_request()
            ch.deliver(reply)
        elif not poll and ch.recv_error is not None:
            # The state changed after the receiver looked (a thread race).
            ch.fail_receivers(ch.recv_error)

    def close(self) -> None:
        self.closed = True
        self.reset()
        self.proto.blocked.pop(self, None)
        self.proto.contexts.pop(self, None)

    # -- protocol side ------------------------------------------------------

    def transmit(self, pipe: Pipe, now: float | None = None) -> None:
        """Write the outstanding request to ``pipe`` and set its resend deadline.

        ``now`` is the host's time if the caller has it (``on_timer``);
        otherwise it is asked for only when a resend is due at all.
        """
        assert self.request is not None
        header, body = self.request
        pipe.write(header, body)
        proto = self.proto
        self.pipe = pipe
        proto.by_pipe.setdefault(pipe.id, {})[self] = None
        resend_time = self.resend_time
        if resend_time:
            if now is None:
                now = proto.host.now()
            proto.deadlines.set(self, now + resend_time)
        else:
            proto.deadlines.clear(self)

    def detach(self) -> None:
        """Forget the pipe the request was written to."""
        pipe = self.pipe
        if pipe is not None:
            self.pipe = None
            on_pipe = self.proto.by_pipe.get(pipe.id)
            if on_pipe is not None:
                on_pipe.pop(self, None)

    def reset(self) -> None:
        """Drop the outstanding request and any untaken reply."""
        self.proto.deadlines.clear(self)
        if self.req_id:
            self.proto.outstanding.pop(self.req_id, None)
            self.req_id = 0
        self.request = None
        self.reply = None
        self.detach()
        self.proto.resend_queue.pop(self, None)

    def abandon(self, reason: str) -> None:
        """Forget the current request; a receive waiting for it fails."""
        ch = self.channel
        if (self.request is not None or self.reply is not None) and ch.has_receiver:
            ch.fail_receivers(BadState(reason))
        self.reset()
        ch.recv_error = _no_request()

    def got_reply(self, msg: Message) -> None:
        self.reset()
        ch = self.channel
        if not ch.recv_queued and ch.has_receiver:
            ch.recv_error = _no_request()
            ch.deliver(msg)
        else:
            self.reply = msg  # recv_error stays None: the next receive takes it

    def connection_lost(self, pipe: Pipe) -> None:
        """The request's pipe closed and resends are off (NNG: ECONNRESET)."""
        ch = self.channel
        self.reset()
        exc = ConnectionReset(f"pipe {pipe.id} closed before the reply came (resends are off)")
        if ch.has_receiver:
            ch.fail_receivers(exc)
            ch.recv_error = _no_request()
        else:
            ch.recv_error = exc


class Req0Protocol(Requester[_ReqContext]):
    """REQ v0, cooked (contexts, resends) or raw."""

    name = "req0"
    self_id = 0x30
    peer_id = 0x31
    self_name = "req"
    peer_name = "rep"
    option_specs: ClassVar[Mapping[str, OptionSpec]] = _REQ_OPTIONS
    first_id = 1  # the low 31 bits of a request id are never 0
    answer_name = "reply"
    id_name = "request id"
    stale_counter = "stale_replies"

    def __init__(self, host: ProtocolHost, raw: bool) -> None:
        super().__init__(host, raw)
        self._ready: deque[Pipe] = deque()
        self._in_ready: set[int] = set()
        #: Cooked mode state, shared by the contexts (with ``outstanding``).
        self.by_pipe: dict[int, dict[_ReqContext, None]] = {}
        self.blocked: dict[_ReqContext, None] = {}
        self.resend_queue: dict[_ReqContext, None] = {}

    def make_context(self, channel: Channel) -> _ReqContext:
        return _ReqContext(self, channel)

    # ------------------------------------------------------------ pipes

    def add_pipe(self, pipe: Pipe) -> bool:
        self.pauser.join(pipe)  # raw: the application is behind, start paused too
        self._mark_ready(pipe)
        return True

    def _mark_ready(self, pipe: Pipe) -> None:
        if pipe.id not in self._in_ready and not pipe.closed:
            self._in_ready.add(pipe.id)
            self._ready.append(pipe)
        self._serve_waiting()

    def remove_pipe(self, pipe: Pipe) -> None:
        self.pauser.paused.pop(pipe.id, None)
        if pipe.id in self._in_ready:
            self._in_ready.discard(pipe.id)
            try:
                self._ready.remove(pipe)
            except ValueError:
                pass
        for ctx in self.by_pipe.pop(pipe.id, {}):
            ctx.pipe = None
            if ctx.request is None:
                continue
            if ctx.resend_time:
                self.resend(ctx)
            else:
                ctx.connection_lost(pipe)

    def pipe_writable(self, pipe: Pipe) -> None:
        self._mark_ready(pipe)

    def pick_pipe(self) -> Pipe | None:
        """The next ready pipe, round robin, or None."""
        ready = self._ready
        while ready:
            pipe = ready.popleft()
            if pipe.closed or not pipe.writable:
                self._in_ready.discard(pipe.id)
                continue
            ready.append(pipe)
            return pipe
        return None

    def _serve_waiting(self) -> None:
        """A pipe is ready: queued resends first, then waiting senders."""
        queue = self.resend_queue
        while queue:
            ctx = next(iter(queue))
            if ctx.closed or ctx.request is None:
                del queue[ctx]
                continue
            pipe = self.pick_pipe()
            if pipe is None:
                return
            del queue[ctx]
            ctx.transmit(pipe)
            self.host.count("resends")
        if self.raw:
            self.host.channel.send_ready()
            return
        for ctx in list(self.blocked):
            if not self._ready:
                break
            # try_send puts it back if it still cannot go.
            del self.blocked[ctx]
            ctx.channel.send_ready()

    def resend(self, ctx: _ReqContext, now: float | None = None) -> None:
        """Send ``ctx``'s request again, on the next ready pipe."""
        ctx.detach()
        pipe = self.pick_pipe()
        if pipe is None:
            self.resend_queue[ctx] = None
            return
        ctx.transmit(pipe, now)
        self.host.count("resends")

    def deadline_passed(self, ctx: _ReqContext, now: float) -> None:
        """``resend_time`` passed without a reply: send the request again."""
        if not ctx.closed and ctx.request is not None:
            self.resend(ctx, now)

    def alloc_id(self, ctx: _ReqContext) -> int:
        """A fresh request id (bit 31 set, low bits never 0) owned by ``ctx``."""
        rid = self.ids.take(self.outstanding)
        self.outstanding[rid] = ctx
        return rid

    # ------------------------------------------------------------ receive

    def matched(self, ctx: _ReqContext, pipe: Pipe, header: bytes, body: BytesLike) -> None:
        ctx.got_reply(Message(body, b"", pipe))

    # ------------------------------------------------------------ send

    def try_send(self, msg: Message) -> bool:
        if self._default is not None:
            return self._default.try_send(msg)
        pipe = self.pick_pipe()
        if pipe is None:
            return False
        pipe.write(msg.header, msg.body)
        return True

    def can_send(self) -> bool:
        return self.raw and bool(self._ready)

    # ------------------------------------------------------------ options

    def set_option(self, name: str, value: Any) -> None:
        if name == "resend_time" and self._default is not None:
            self._default.resend_time = value

    def close(self) -> None:
        for ctx in list(self.contexts):
            ctx.reset()
        self.blocked.clear()


# ---------------------------------------------------------------- REP


class Rep0Protocol(Responder):
    """REP v0, cooked (contexts) or raw: all of it lives in :class:`Responder`."""

    name = "rep0"
    self_id = 0x31
    peer_id = 0x30
    self_name = "rep"
    peer_name = "req"
    option_specs: ClassVar[Mapping[str, OptionSpec]] = _REP_OPTIONS
    raw_queue = XREP_QUEUE
    request_name = "request"
    nothing_to_answer = "no request to reply to: receive one first"


@hookimpl
def purenng_register_protocols(registry: Registry) -> None:
    registry.add_protocol(Req0Protocol)
    registry.add_protocol(Rep0Protocol)
