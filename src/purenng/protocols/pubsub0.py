"""PUB v0 (0x20) and SUB v0 (0x21): best-effort broadcast with subscriber-side filtering.

Rules (``reference/wire-protocols.md`` §1.4 "PUB / SUB", §1.5, §4 items 16
and 22; NNG ``src/sp/protocol/pubsub0/pub.c``, ``sub.c``, ``xsub.c``):

* **No header on the wire, and SUB never writes.**  Subscriptions are local
  to the subscriber: the publisher sends everything to everyone and each SUB
  throws away what it did not ask for.  There is no upstream subscription
  message (unlike ZeroMQ), so a SUB peer that writes anything is broken.
* **PUB** sends every message to every pipe and never waits: ``send``
  succeeds at once even with no pipe at all (the message goes nowhere).  A
  pipe that cannot take a message now gets it through its own queue of
  ``send_buffer`` messages (default :data:`SEND_BUFFER`, 16 as NNG, range
  1..8192); when that queue is full **the oldest queued message is dropped**
  (counted in ``drops``), so a slow subscriber always gets the newest data
  and never slows the publisher or the other subscribers.  Messages still
  queued for a pipe that goes away are counted as drops too.
* **PUB cannot receive** (:class:`NotSupported`).  A peer that sends it
  anything has its pipe closed (counted in ``protocol_errors``), as NNG
  does (§4 item 22); PUSH, by contrast, discards silently.
* **SUB filters by byte prefix.**  A message matches a topic when its body
  starts with the topic's bytes; the empty topic matches everything.  With
  no subscription nothing is received (§4 item 16).  ``subscribe(topic)``
  and ``unsubscribe(topic)`` take ``bytes`` or ``str`` (encoded as UTF-8, as
  pynng does); subscribing twice to the same topic is the same as once, and
  a message that matches several topics is delivered once.  Unsubscribing
  from a topic that is not subscribed raises :class:`BadOption` (NNG:
  ``NNG_ENOENT``).  Unsubscribing also discards queued messages that no
  longer match any subscription, as NNG does.
* **SUB never applies back-pressure**: it reads every pipe as fast as it
  can.  Its queue for the application holds ``recv_buffer`` messages
  (default :data:`RECV_BUFFER`, 128 as NNG); when it is full, ``prefer_new``
  (NNG ``sub:prefnew``, default True) drops the oldest queued message to
  make room, and ``prefer_new=False`` drops the new one instead.  Either is
  counted in ``drops``.  Messages that match no subscription are not drops:
  they are simply not wanted.
* **SUB contexts** (``sub.new_context()``) each have their own
  subscriptions, queue, ``recv_buffer`` and ``prefer_new`` (copied from the
  socket when the context is made, settable on the context afterwards).  A
  message goes to every context whose subscriptions match it.  The socket's
  own ``recv``/``subscribe`` use a default context.  PUB has no contexts
  (NotSupported, as NNG).
* **Raw mode.**  Raw PUB behaves as cooked PUB, except that
  ``Message.header`` goes on the wire in front of the body.  Raw SUB (NNG's
  xsub, used by devices) does no filtering: every message is delivered, with
  ``Message.pipe`` set, and ``subscribe``/``unsubscribe`` raise
  :class:`NotSupported`; raw SUB has no contexts.  NNG's raw SUB always drops
  the new message when its queue is full; purenng applies ``prefer_new`` in
  both modes (default: the oldest goes).

Theory of operation: PUB's pipes and send queues are a
:class:`~purenng.protocols._broadcast.BroadcastProtocol` that drops the oldest
queued message when a queue is full; it walks the pipe table once per send,
writing to each pipe that is writable with nothing queued and queueing
``(header, body)`` behind the others; ``pipe_writable`` drains a queue.  The body object is
shared by all pipes, never copied.  SUB keeps each context's topics as a
tuple, so matching is one ``bytes.startswith(tuple)`` call in C, and a
filtered message costs no allocation beyond the payload the pipe already
made.  Delivery goes through the context's
:class:`~purenng.core.channel.Channel`; a full queue is trimmed with
``Channel.drop_oldest`` instead of pausing the pipe.

``subscribe``/``unsubscribe`` here run on the socket's loop, like every
other input.  Applications may call them from any thread: the socket
(``Sub0.subscribe``) and the context (``Context.subscribe``, through
:attr:`Sub0Context.context_methods`) carry the call to the loop and return
once it is applied, so the next message received is filtered by the new
set.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from ..plugin import (
    SOCKET_OPTIONS,
    BadOption,
    Message,
    NotSupported,
    OptionSpec,
    Protocol,
    boolean,
    hookimpl,
    validate,
)
from ._broadcast import BroadcastProtocol, send_buffer_options

if TYPE_CHECKING:
    from collections.abc import Mapping

    from ..plugin import BytesLike, Channel, Pipe, ProtocolHost, Registry

__all__ = ["RECV_BUFFER", "SEND_BUFFER", "Pub0Protocol", "Sub0Context", "Sub0Protocol"]

#: The purenng plugin API this module is written for (purenng.plugin.API_VERSION).
PURENNG_PLUGIN_API: str = "1.0"

#: Messages queued per pipe behind the pipe's own buffer (NNG's PUB
#: send-buffer default, wire-protocols.md §1.4 "PUB / SUB").
SEND_BUFFER = 16
#: Messages a SUB context holds for the application (NNG: 128).
RECV_BUFFER = 128

_PUB_OPTIONS = send_buffer_options(
    SEND_BUFFER, "messages queued per subscriber before PUB drops the oldest (NNG default 16)"
)

_SUB_OPTIONS: Mapping[str, OptionSpec] = {
    s.name: s
    for s in (
        OptionSpec(
            "prefer_new",
            boolean,
            True,
            "when the receive queue is full, drop the oldest message (True) or the new one",
        ),
    )
}


def _topic_bytes(topic: Any) -> bytes:
    """A topic as bytes: ``str`` is encoded as UTF-8, bytes-like is copied.

    Raises:
        BadOption: ``topic`` is neither.
    """
    if isinstance(topic, str):
        return topic.encode()
    if isinstance(topic, bytes | bytearray | memoryview):
        return bytes(topic)
    raise BadOption(f"a topic is bytes or str, not {type(topic).__name__}")


def _starts(body: BytesLike, match: tuple[bytes, ...]) -> bool:
    """Whether ``body`` starts with one of the topics in ``match``."""
    if isinstance(body, memoryview):
        body = body.tobytes()
    return body.startswith(match)


# ---------------------------------------------------------------- PUB


class Pub0Protocol(BroadcastProtocol):
    """PUB v0, cooked or raw."""

    name = "pub0"
    self_id = 0x20
    peer_id = 0x21
    self_name = "pub"
    peer_name = "sub"
    option_specs = _PUB_OPTIONS
    can_recv_messages = False
    default_send_buffer = SEND_BUFFER
    drop_oldest = True  # subscribers want fresh data

    def pipe_message(self, pipe: Pipe, payload: bytes | bytearray) -> None:
        # A SUB never writes; whatever sent this is not a well-behaved peer.
        self.host.reject_pipe(pipe, "PUB received a message; a SUB peer must never send")

    def try_send(self, msg: Message) -> bool:
        self._out.send(bytes(msg.header) if self.raw else b"", msg.body)
        return True

    def set_option(self, name: str, value: Any) -> None:
        if name == "send_buffer":
            self._out.limit = value
            self._out.trim()  # the oldest go, as on a full queue


# ---------------------------------------------------------------- SUB


class Sub0Context:
    """One SUB context: its subscriptions and its queue (the channel).

    The socket's default context is one of these bound to the socket's own
    channel; ``sub.new_context()`` makes more.  The
    :class:`~purenng.core.context.Context` object forwards the names in
    :attr:`option_specs` (``ctx.prefer_new``, ``ctx.recv_buffer``) and
    :attr:`context_methods` (``ctx.subscribe``...) to it.
    """

    #: Per-context options, read and set through the Context object.
    option_specs: Mapping[str, OptionSpec] = {
        "prefer_new": _SUB_OPTIONS["prefer_new"],
        "recv_buffer": SOCKET_OPTIONS["recv_buffer"],
    }
    #: Methods and read-only attributes the Context object exposes (it
    #: calls the methods on the socket's loop, from any thread).
    context_methods: ClassVar[frozenset[str]] = frozenset({"subscribe", "unsubscribe", "topics"})

    def __init__(self, proto: Sub0Protocol, channel: Channel, prefer_new: bool) -> None:
        self._proto = proto
        self.channel = channel
        self._prefer_new = prefer_new
        self._topics: list[bytes] = []
        #: The topics as a tuple for ``startswith``.
        self.match: tuple[bytes, ...] = ()

    # -- application side (on the loop; Context and Sub0 bring other threads) --

    def subscribe(self, topic: bytes | str) -> None:
        """Receive messages whose body starts with ``topic`` (b"" : everything).

        Raises:
            NotSupported: the socket is raw.
            BadOption: ``topic`` is neither bytes nor str.
        """
        self._proto.check_cooked("subscribe")
        topic = _topic_bytes(topic)
        if topic not in self._topics:
            self._topics.append(topic)
            self.match = tuple(self._topics)

    def unsubscribe(self, topic: bytes | str) -> None:
        """Stop receiving ``topic``; queued messages that no longer match go.

        Raises:
            NotSupported: the socket is raw.
            BadOption: ``topic`` is not subscribed (NNG: ENOENT), or is
                neither bytes nor str.
        """
        self._proto.check_cooked("unsubscribe")
        topic = _topic_bytes(topic)
        try:
            self._topics.remove(topic)
        except ValueError:
            raise BadOption(f"not subscribed to topic {topic!r}") from None
        match = self.match = tuple(self._topics)
        # As NNG: what is queued must still match what is subscribed.
        self.channel.discard_queued(lambda m: _starts(m.body, match))

    @property
    def topics(self) -> list[bytes]:
        """The subscribed topics, in the order they were added."""
        return list(self._topics)

    @property
    def prefer_new(self) -> bool:
        """When the queue is full: drop the oldest (True) or the new message."""
        return self._prefer_new

    @prefer_new.setter
    def prefer_new(self, value: bool) -> None:
        self._prefer_new = validate(_SUB_OPTIONS["prefer_new"], value)

    @property
    def recv_buffer(self) -> int:
        """Messages this context holds for the application."""
        return self.channel.recv_capacity

    @recv_buffer.setter
    def recv_buffer(self, value: int) -> None:
        self.channel.recv_capacity = max(1, validate(SOCKET_OPTIONS["recv_buffer"], value))

    # -- protocol side --------------------------------------------------------

    def put(self, payload: BytesLike, pipe: Pipe) -> None:
        """Queue a received message, making room as ``prefer_new`` says."""
        channel = self.channel
        if channel.recv_queued >= channel.recv_capacity:
            if not self._prefer_new:
                self._proto.host.count("drops")
                return
            while channel.recv_queued >= channel.recv_capacity:
                if channel.drop_oldest() is None:
                    break
                self._proto.host.count("drops")
        channel.deliver(Message(payload, b"", pipe))

    def try_send(self, msg: Message) -> bool:
        raise NotSupported("sub0 contexts cannot send")

    def can_send(self) -> bool:
        return False

    def close(self) -> None:
        self._proto.forget_context(self)


class Sub0Protocol(Protocol):
    """SUB v0, cooked (filtering, contexts) or raw (no filtering)."""

    name = "sub0"
    self_id = 0x21
    peer_id = 0x20
    self_name = "sub"
    peer_name = "pub"
    option_specs: ClassVar[Mapping[str, OptionSpec]] = _SUB_OPTIONS
    can_send_messages = False
    default_recv_buffer: ClassVar[int | None] = RECV_BUFFER

    def __init__(self, host: ProtocolHost, raw: bool) -> None:
        super().__init__(host, raw)
        self.default: Sub0Context = Sub0Context(
            self, host.channel, host.options.get("prefer_new", True)
        )
        #: Every open context, the default one first.
        self._contexts: list[Sub0Context] = [self.default]

    def check_cooked(self, what: str) -> None:
        """Raises NotSupported on a raw socket (NNG: xsub has no subscriptions)."""
        if self.raw:
            raise NotSupported(f"a raw sub0 socket does not filter: {what} is not supported")

    # -- subscriptions of the socket (its default context) ---------------------

    def subscribe(self, topic: bytes | str) -> None:
        """The socket's ``subscribe``: see :meth:`Sub0Context.subscribe`."""
        self.default.subscribe(topic)

    def unsubscribe(self, topic: bytes | str) -> None:
        """The socket's ``unsubscribe``: see :meth:`Sub0Context.unsubscribe`."""
        self.default.unsubscribe(topic)

    # -- contexts -----------------------------------------------------------

    def new_context(self, channel: Channel) -> Sub0Context:
        """A context with no subscriptions and the socket's ``prefer_new``.

        Raises:
            NotSupported: the socket is raw.
        """
        if self.raw:
            raise NotSupported("raw sub0 sockets have no contexts")
        ctx = Sub0Context(self, channel, self.default.prefer_new)
        self._contexts.append(ctx)
        return ctx

    def forget_context(self, ctx: Sub0Context) -> None:
        if ctx in self._contexts and ctx is not self.default:
            self._contexts.remove(ctx)

    # -- pipes --------------------------------------------------------------

    def add_pipe(self, pipe: Pipe) -> bool:
        return True

    def remove_pipe(self, pipe: Pipe) -> None:
        pass

    def pipe_message(self, pipe: Pipe, payload: bytes | bytearray) -> None:
        if self.raw:
            self.default.put(payload, pipe)
            return
        contexts = self._contexts
        if len(contexts) == 1:
            ctx = contexts[0]
            if payload.startswith(ctx.match):
                ctx.put(payload, pipe)
            return
        body: BytesLike = payload
        for ctx in contexts:
            if payload.startswith(ctx.match):
                if type(body) is not bytes:
                    body = bytes(body)  # shared by several contexts: make it immutable
                ctx.put(body, pipe)

    # -- options ------------------------------------------------------------

    def set_option(self, name: str, value: Any) -> None:
        if name == "prefer_new":
            self.default.prefer_new = value

    def close(self) -> None:
        # The socket is going: so are its contexts (their receivers get Closed).
        others = self._contexts[1:]
        del self._contexts[1:]
        for ctx in others:
            ctx.channel.close()


@hookimpl
def purenng_register_protocols(registry: Registry) -> None:
    registry.add_protocol(Pub0Protocol)
    registry.add_protocol(Sub0Protocol)
