"""BUS v0 (protocol 0x70): every message to every directly connected peer.

Rules (``reference/wire-protocols.md`` §1.4 "BUS", §1.5; NNG
``src/sp/protocol/bus0/bus.c``):

* **No header on the wire.**  Peers must be BUS (0x70) too.
* **Cooked send** clears the header and offers the message to every
  connected pipe.  It never waits: a pipe that cannot take the message now
  gets it through its own queue of ``send_buffer`` messages (default
  :data:`SEND_BUFFER`, 16 as NNG), and when that queue is full the message is
  dropped for that pipe only and counted in ``drops``.  A send with no pipe
  at all succeeds and goes nowhere, as NNG's does.  Best effort, so one slow
  peer never holds up the others.
* **Cooked receive** delivers what any pipe sends, with ``Message.pipe``
  set.  A cooked BUS socket never forwards: a message goes only to the
  sender's direct peers, so a full mesh or a device is needed for more.
* **Receive buffer**: ``recv_buffer`` defaults to :data:`RECV_BUFFER` (16,
  as NNG).  When it is full a new message is dropped (``drops``) instead of
  slowing the peer down: BUS trades loss for never blocking, like NNG.
* **Raw receive** puts the 4-byte big-endian id of the source pipe in
  ``Message.header`` (purenng-local, never sent) and sets ``Message.pipe``.
* **Raw send**: if the header holds at least 4 bytes, the first 4 name the
  pipe the message came from; it goes to every pipe *except* that one, and
  whatever header follows those 4 bytes goes on the wire in front of the
  body (a shorter header goes on the wire whole, skipping no pipe).  This
  is what makes a raw BUS socket a reflector device
  (``purenng.device(raw_bus)``) that does not echo a message to its origin.
  Pipe ids are never reused within a process, so a header word from another
  socket's pipe (a two-socket device) skips nothing.
* No contexts (NotSupported, as NNG), no TTL, no loop protection.

Theory of operation: the pipes and their send queues are a
:class:`~purenng.protocols._broadcast.BroadcastProtocol` that drops the new message
when a pipe's queue is full; send walks the pipe table once, writing
straight to each pipe that is writable and has nothing queued, queueing
(header, body) behind the others; ``pipe_writable`` drains a pipe's queue.
The body object is shared by all pipes, never copied.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from ..plugin import Message, hookimpl
from ._broadcast import BroadcastProtocol, send_buffer_options

if TYPE_CHECKING:
    from ..plugin import BytesLike, Pipe, Registry

__all__ = ["RECV_BUFFER", "SEND_BUFFER", "Bus0Protocol"]

#: The purenng plugin API this module is written for (purenng.plugin.API_VERSION).
PURENNG_PLUGIN_API: str = "1.0"

#: Messages queued per pipe behind the pipe's own buffer (NNG's send-buffer
#: default for BUS, wire-protocols.md §1.4 "BUS").
SEND_BUFFER = 16
#: Messages held for the application before new ones are dropped (NNG: 16).
RECV_BUFFER = 16

_OPTIONS = send_buffer_options(
    SEND_BUFFER, "messages queued per peer before BUS drops for that peer (NNG: 1..8192, 16)"
)


class Bus0Protocol(BroadcastProtocol):
    """BUS v0, cooked or raw."""

    name = "bus0"
    self_id = 0x70
    peer_id = 0x70
    self_name = "bus"
    peer_name = "bus"
    option_specs = _OPTIONS
    default_recv_buffer: ClassVar[int | None] = RECV_BUFFER
    default_send_buffer = SEND_BUFFER
    drop_oldest = False  # BUS drops the new message for a full pipe

    # ------------------------------------------------------------ receive

    def pipe_message(self, pipe: Pipe, payload: bytes | bytearray) -> None:
        channel = self.host.channel
        if channel.recv_queued >= channel.recv_capacity:
            # Full: drop rather than pause, as NNG does (best effort).
            self.host.count("drops")
            return
        header = pipe.id.to_bytes(4, "big") if self.raw else b""
        channel.deliver(Message(payload, header, pipe))

    # ------------------------------------------------------------ send

    def try_send(self, msg: Message) -> bool:
        origin = -1
        if self.raw:
            header = msg.header
            if len(header) >= 4:
                origin = int.from_bytes(header[:4], "big")
                wire: BytesLike = bytes(header[4:])
            else:
                wire = bytes(header)
        else:
            wire = b""
        self._out.send(wire, msg.body, origin)
        return True

    # ------------------------------------------------------------ options

    def set_option(self, name: str, value: Any) -> None:
        if name == "send_buffer":
            self._out.limit = value  # queues above a smaller limit just drain


@hookimpl
def purenng_register_protocols(registry: Registry) -> None:
    registry.add_protocol(Bus0Protocol)
