"""The socket classes users name: ``Pair0``, ``Push0``, ``Req0``...

Each is a :class:`~purenng.core.socket.Socket` bound to a protocol *name*;
the protocol itself is found through the registry when a socket is made, so
this module imports no protocol code.  Each declares its protocol's options
(``Req0.resend_time``...) as typed :class:`~purenng.core.options.Option`
attributes, next to the socket options every class has; a test checks that
they match the protocol's ``option_specs``.
"""

from __future__ import annotations

from typing import ClassVar

from .context import ReqContext, SubContext, SurveyorContext
from .errors import NotSupported
from .options import Option
from .socket import Socket

__all__ = [
    "Bus0",
    "Pair0",
    "Pair1",
    "Pub0",
    "Pull0",
    "Push0",
    "Rep0",
    "Req0",
    "Respondent0",
    "Sub0",
    "Surveyor0",
]


class Pair0(Socket):
    """PAIR v0: one peer, both directions, no header (nanomsg compatible)."""

    protocol_name: ClassVar[str | None] = "pair0"


class Pair1(Socket):
    """PAIR v1: one peer (or many with ``polyamorous=True``), hop-counted."""

    protocol_name: ClassVar[str | None] = "pair1"

    ttl_max: Option[int] = Option()
    polyamorous: Option[bool] = Option()


class Push0(Socket):
    """PUSH: round-robin to pullers, with back-pressure."""

    protocol_name: ClassVar[str | None] = "push0"


class Pull0(Socket):
    """PULL: fair-queued receive from pushers."""

    protocol_name: ClassVar[str | None] = "pull0"


class Pub0(Socket):
    """PUB: broadcast to subscribers."""

    protocol_name: ClassVar[str | None] = "pub0"


class Sub0(Socket):
    """SUB: receive what matches the subscribed prefixes."""

    protocol_name: ClassVar[str | None] = "sub0"

    prefer_new: Option[bool] = Option()

    def new_context(self) -> SubContext:
        """A new :class:`~purenng.core.context.SubContext`, with no subscriptions."""
        return self._new_context(SubContext)

    def subscribe(self, topic: bytes | str) -> None:
        """Receive messages whose body starts with ``topic`` (``str``: UTF-8).

        ``b""`` subscribes to everything; with no subscription nothing is
        received.  Applied before returning; callable from any thread.

        Raises:
            NotSupported: the socket is raw (it does not filter).
        """
        _sub_call(self, "subscribe", topic)

    def unsubscribe(self, topic: bytes | str) -> None:
        """Undo :meth:`subscribe`; queued messages that no longer match go.

        Raises:
            BadOption: ``topic`` is not subscribed.
            NotSupported: the socket is raw.
        """
        _sub_call(self, "unsubscribe", topic)


class Req0(Socket):
    """REQ: send requests, receive replies."""

    protocol_name: ClassVar[str | None] = "req0"

    ttl_max: Option[int] = Option()
    resend_time: Option[float | None] = Option()

    def new_context(self) -> ReqContext:
        """A new :class:`~purenng.core.context.ReqContext` (its own ``resend_time``)."""
        return self._new_context(ReqContext)


class Rep0(Socket):
    """REP: receive requests, send replies."""

    protocol_name: ClassVar[str | None] = "rep0"

    ttl_max: Option[int] = Option()


class Surveyor0(Socket):
    """SURVEYOR: broadcast a survey, collect responses until a deadline."""

    protocol_name: ClassVar[str | None] = "surveyor0"

    survey_time: Option[float | None] = Option()
    ttl_max: Option[int] = Option()

    def new_context(self) -> SurveyorContext:
        """A new :class:`~purenng.core.context.SurveyorContext` (its own ``survey_time``)."""
        return self._new_context(SurveyorContext)


class Respondent0(Socket):
    """RESPONDENT: answer surveys."""

    protocol_name: ClassVar[str | None] = "respondent0"

    ttl_max: Option[int] = Option()


class Bus0(Socket):
    """BUS: every message to every directly connected peer."""

    protocol_name: ClassVar[str | None] = "bus0"


def _sub_call(sock: Socket, what: str, topic: bytes | str) -> None:
    """Run a subscription change in the protocol, on the socket's loop (any thread)."""
    fn = getattr(sock._protocol, what, None)
    if fn is None:
        raise NotSupported(f"{sock.protocol_cls.name} sockets have no {what}")
    sock._call_on_loop(fn, (topic,), what)
