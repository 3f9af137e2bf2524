"""The socket classes users name: ``Pair0``, ``Push0``, ``Req0``...

Each is a :class:`~purenng.core.socket.Socket` bound to a protocol *name*;
the protocol itself is found through the registry when a socket is made, so
this module imports no protocol code.
"""

from __future__ import annotations

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
