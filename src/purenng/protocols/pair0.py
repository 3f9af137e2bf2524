"""PAIR v0 (protocol 0x10): one peer, both directions, no header.

Rules (``reference/wire-protocols.md`` §1.4 "PAIR v0"; NNG
``src/sp/protocol/pair0/pair.c``):

* One peer at a time: a second pipe is refused (NNG_EBUSY) and closed.
* Send waits (back-pressure) while there is no peer or it is full.
* Raw and cooked are the same on the wire; raw sends ``header + body``.
* This is the only PAIR nanomsg speaks.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..plugin import Message, Protocol, hookimpl

if TYPE_CHECKING:
    from ..plugin import Pipe, ProtocolHost, Registry

__all__ = ["Pair0Protocol"]

#: The purenng plugin API this module is written for (purenng.plugin.API_VERSION).
PURENNG_PLUGIN_API: str = "1.0"


class Pair0Protocol(Protocol):
    """PAIR v0."""

    name = "pair0"
    self_id = 0x10
    peer_id = 0x10
    self_name = "pair"
    peer_name = "pair"

    def __init__(self, host: ProtocolHost, raw: bool) -> None:
        super().__init__(host, raw)
        self.peer: Pipe | None = None
        self._paused = False
        self._deliver = host.channel.deliver

    def add_pipe(self, pipe: Pipe) -> bool:
        if self.peer is not None:
            self.host.count("pipes_busy")
            return False
        self.peer = pipe
        self._deliver = self.host.channel.deliver
        self.host.channel.send_ready()
        return True

    def remove_pipe(self, pipe: Pipe) -> None:
        if pipe is self.peer:
            self.peer = None
            self._paused = False

    def pipe_message(self, pipe: Pipe, payload: bytes | bytearray) -> None:
        if not self._deliver(Message(payload, b"", pipe)):
            pipe.pause_reading()
            self._paused = True

    def recv_space(self) -> None:
        if self._paused:
            self._paused = False
            if self.peer is not None:
                self.peer.resume_reading()

    def pipe_writable(self, pipe: Pipe) -> None:
        self.host.channel.send_ready()

    def try_send(self, msg: Message) -> bool:
        peer = self.peer
        if peer is None or not peer.writable:
            return False
        peer.write(msg.header if self.raw else b"", msg.body)
        return True

    def can_send(self) -> bool:
        peer = self.peer
        return peer is not None and peer.writable


@hookimpl
def purenng_register_protocols(registry: Registry) -> None:
    registry.add_protocol(Pair0Protocol)
