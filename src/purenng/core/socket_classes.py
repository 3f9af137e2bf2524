"""The socket classes users name: ``Pair0``, ``Push0``, ``Req0``...

Each is a :class:`~purenng.core.socket.Socket` bound to a protocol *name*;
the protocol itself is found through the registry when a socket is made, so
this module imports no protocol code.
"""

from __future__ import annotations

from .errors import NotSupported
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

    protocol_name = "pair0"


class Pair1(Socket):
    """PAIR v1: one peer (or many with ``polyamorous=True``), hop-counted."""

    protocol_name = "pair1"


class Push0(Socket):
    """PUSH: round-robin to pullers, with back-pressure."""

    protocol_name = "push0"


class Pull0(Socket):
    """PULL: fair-queued receive from pushers."""

    protocol_name = "pull0"


class Pub0(Socket):
    """PUB: broadcast to subscribers."""

    protocol_name = "pub0"


class Sub0(Socket):
    """SUB: receive what matches the subscribed prefixes."""

    protocol_name = "sub0"

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

    protocol_name = "req0"


class Rep0(Socket):
    """REP: receive requests, send replies."""

    protocol_name = "rep0"


class Surveyor0(Socket):
    """SURVEYOR: broadcast a survey, collect responses until a deadline."""

    protocol_name = "surveyor0"


class Respondent0(Socket):
    """RESPONDENT: answer surveys."""

    protocol_name = "respondent0"


class Bus0(Socket):
    """BUS: every message to every directly connected peer."""

    protocol_name = "bus0"


def _sub_call(sock: Socket, what: str, topic: bytes | str) -> None:
    """Run a subscription change in the protocol, on the socket's loop (any thread)."""
    fn = getattr(sock._protocol, what, None)
    if fn is None:
        raise NotSupported(f"{sock.protocol_cls.name} sockets have no {what}")
    sock._call_on_loop(fn, (topic,), what)
