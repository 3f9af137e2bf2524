"""PUSH v0 (0x50) and PULL v0 (0x51): load-balanced one-way pipeline.

Rules (``reference/wire-protocols.md`` §1.4 "PUSH / PULL"; NNG
``src/sp/protocol/pipeline0/push.c`` and ``pull.c``):

* No header on the wire.
* PUSH sends each message to the next ready pipe in round-robin order and
  applies back-pressure: with no ready pipe, send waits; nothing is dropped.
  PUSH discards anything a peer sends it and keeps the pipe.  It cannot
  receive (NotSupported).
* PULL fair-queues from all its pipes.  When the application falls behind,
  reading pauses on every pipe until it catches up: back-pressure, not loss.
  It cannot send (NotSupported).
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING

from ..plugin import Message, Protocol, hookimpl

if TYPE_CHECKING:
    from ..plugin import Pipe, ProtocolHost, Registry

__all__ = ["Pull0Protocol", "Push0Protocol"]

#: The purenng plugin API this module is written for (purenng.plugin.API_VERSION).
PURENNG_PLUGIN_API: str = "1.0"


class Push0Protocol(Protocol):
    """PUSH v0."""

    name = "push0"
    self_id = 0x50
    peer_id = 0x51
    self_name = "push"
    peer_name = "pull"
    can_recv_messages = False

    def __init__(self, host: ProtocolHost, raw: bool) -> None:
        super().__init__(host, raw)
        self._ready: deque[Pipe] = deque()
        self._in_ready: set[int] = set()

    def add_pipe(self, pipe: Pipe) -> bool:
        self._mark_ready(pipe)
        return True

    def _mark_ready(self, pipe: Pipe) -> None:
        if pipe.id not in self._in_ready and not pipe.closed:
            self._in_ready.add(pipe.id)
            self._ready.append(pipe)
            self.host.channel.send_ready()

    def remove_pipe(self, pipe: Pipe) -> None:
        if pipe.id in self._in_ready:
            self._in_ready.discard(pipe.id)
            try:
                self._ready.remove(pipe)
            except ValueError:
                pass

    def pipe_writable(self, pipe: Pipe) -> None:
        self._mark_ready(pipe)

    def pipe_message(self, pipe: Pipe, payload: bytes | bytearray) -> None:
        self.host.count("drops")  # PUSH ignores what it receives

    def try_send(self, msg: Message) -> bool:
        ready = self._ready
        while ready:
            pipe = ready.popleft()
            if pipe.closed or not pipe.writable:
                self._in_ready.discard(pipe.id)
                continue
            pipe.write(msg.header if self.raw else b"", msg.body)
            if pipe.writable:
                ready.append(pipe)
            else:
                self._in_ready.discard(pipe.id)
            return True
        return False

    def can_send(self) -> bool:
        return bool(self._ready)


class Pull0Protocol(Protocol):
    """PULL v0."""

    name = "pull0"
    self_id = 0x51
    peer_id = 0x50
    self_name = "pull"
    peer_name = "push"
    can_send_messages = False

    def __init__(self, host: ProtocolHost, raw: bool) -> None:
        super().__init__(host, raw)
        self._paused: dict[int, Pipe] = {}
        self._deliver = host.channel.deliver

    def add_pipe(self, pipe: Pipe) -> bool:
        self._deliver = self.host.channel.deliver
        if self._paused:
            # The application is behind: a new pipe starts paused too.
            pipe.pause_reading()
            self._paused[pipe.id] = pipe
        return True

    def remove_pipe(self, pipe: Pipe) -> None:
        self._paused.pop(pipe.id, None)

    def pipe_message(self, pipe: Pipe, payload: bytes | bytearray) -> None:
        if not self._deliver(Message(payload, b"", pipe)) and pipe.id not in self._paused:
            pipe.pause_reading()
            self._paused[pipe.id] = pipe

    def recv_space(self) -> None:
        paused, self._paused = self._paused, {}
        for pipe in paused.values():
            pipe.resume_reading()


@hookimpl
def purenng_register_protocols(registry: Registry) -> None:
    registry.add_protocol(Push0Protocol)
    registry.add_protocol(Pull0Protocol)
