"""PAIR v1 (protocol 0x11): one peer (or many, polyamorous), hop-counted.

Wire format (``reference/wire-protocols.md`` §1.2, §1.3; NNG
``src/sp/protocol/pair1/pair.c`` and ``pair1_poly.c``): every message starts
with a 4-byte big-endian word whose upper 24 bits are zero and whose low
byte is the hop count.  PAIR v1 does not talk to PAIR v0 (§4 item 1), and
nanomsg has no PAIR v1.

Rules:

* **Hop count on send.** The count goes up by one on every send: a cooked
  socket starts from 0 and so puts 1 on the wire; a raw socket (a device)
  forwards the header it was given plus one.  A raw send needs a header of
  exactly 4 bytes whose value is below 0xFF, else :class:`ProtocolError`
  is raised to the sender and nothing is sent.
* **Receive.** A payload shorter than 4 bytes, or a word above 0xFF
  (reserved bits set), is malformed: the pipe is closed.  A hop count above
  ``ttl_max`` is dropped (counted in ``drops``) and the pipe stays open.
  Hop count 0 is accepted although the RFC says to discard it, because
  mangos sends 0 (§4 item 2).  The word is removed from the body and kept
  as ``Message.header`` in both modes, so applications can see the count.
* **Monogamous** (the default): one peer at a time, a second pipe is
  refused (counted in ``pipes_busy``).  Send waits while there is no peer or
  it is full (back-pressure, like PAIR v0).
* **Polyamorous** (``polyamorous=True``, deprecated in NNG, kept for
  interop with ``nng_pair1_open_poly``): any number of peers.  Received
  messages carry ``Message.pipe``; a send goes to ``msg.pipe`` if set, else
  to the oldest connected pipe.  Each pipe has a send queue of
  :data:`POLY_QUEUE` messages behind the pipe's own buffer; a message for a
  full, unknown or closed pipe is dropped silently (``drops``) so one slow
  peer never holds up the others.  The mode can change only while no pipe
  is attached (:class:`BadState` otherwise), as NNG refused it once its
  socket had started.
* ``ttl_max`` (1..15, default 8) is the receive hop limit; NNG caps it at 15.

Polyamorous send with no pipe at all waits, as monogamous send does.  NNG's
poly socket waits only until its first peer arrives (its distributor starts
then) and afterwards drops messages sent while no peer is connected;
purenng waits in both cases, which loses nothing and makes ``send_timeout``
and ``block=False`` behave the same in both modes.

Theory of operation: a cooked send writes a shared constant header; receive
checks three bytes and an int, slices the word off (a ``memoryview`` for the
large bodies that arrive in their own ``bytearray``, so they are not copied
again) and hands the message to the channel.  When the channel is full the
delivering pipe pauses until :meth:`Pair1Protocol.recv_space`.

Raw sends are checked in the caller's own thread (the channel's
``check_send`` hook) before they can be batched, so a malformed header is
reported to its caller instead of being dropped from the hand-off queue.
"""

from __future__ import annotations

import logging
from collections import deque
from typing import TYPE_CHECKING, Any, ClassVar

from ..plugin import (
    BadState,
    Message,
    OptionSpec,
    Protocol,
    ProtocolError,
    boolean,
    hookimpl,
    integer,
)

if TYPE_CHECKING:
    from collections.abc import Mapping

    from ..plugin import BytesLike, Pipe, ProtocolHost, Registry

__all__ = ["POLY_QUEUE", "Pair1Protocol"]

#: The purenng plugin API this module is written for (purenng.plugin.API_VERSION).
PURENNG_PLUGIN_API: str = "1.0"

log: logging.Logger = logging.getLogger("purenng")

#: Messages queued per pipe in polyamorous mode behind the pipe's own buffer
#: (NNG's per-pipe send queue, wire-protocols.md §1.4 "PAIR v1").
POLY_QUEUE = 2
#: Highest hop count a raw send may carry; the +1 on send must fit in a byte
#: with room to spare, as NNG requires (wire-protocols.md §1.3).
MAX_RAW_HOPS = 0xFE

# The 256 possible hop words, shared so that no header is built per message.
_HOP_WORDS = tuple(bytes((0, 0, 0, n)) for n in range(256))
_HOP_ONE = _HOP_WORDS[1]

_OPTIONS: Mapping[str, OptionSpec] = {
    s.name: s
    for s in (
        OptionSpec(
            "ttl_max",
            integer(1, 15),
            8,
            "largest hop count accepted on receive (NNG: 1..15, default 8)",
        ),
        OptionSpec(
            "polyamorous",
            boolean,
            False,
            "accept many peers; sends go to Message.pipe, best effort",
        ),
    )
}


def _raw_send_header(header: BytesLike) -> bytes:
    """The header a raw send puts on the wire: the given one, hop count + 1.

    Raises:
        ProtocolError: ``header`` is not 4 bytes or its value is 0xFF or more.
    """
    if len(header) != 4:
        raise ProtocolError(
            f"a raw PAIR1 message needs a 4-byte hop header, got {len(header)} bytes"
        )
    word = int.from_bytes(header, "big")
    if word > MAX_RAW_HOPS:
        raise ProtocolError(f"raw PAIR1 hop header {word:#010x} is above {MAX_RAW_HOPS:#x}")
    return _HOP_WORDS[word + 1]


def _check_raw_send(msg: Message) -> None:
    """Refuse a bad raw header in the sender's thread (the channel's check_send)."""
    _raw_send_header(msg.header)


class Pair1Protocol(Protocol):
    """PAIR v1, monogamous or polyamorous, cooked or raw."""

    name = "pair1"
    self_id = 0x11
    peer_id = 0x11
    self_name = "pair1"
    peer_name = "pair1"
    option_specs: ClassVar[Mapping[str, OptionSpec]] = _OPTIONS

    def __init__(self, host: ProtocolHost, raw: bool) -> None:
        super().__init__(host, raw)
        self._poly: bool = host.options.get("polyamorous", False)
        self._ttl: int = host.options.get("ttl_max", 8)
        #: Monogamous mode: the one peer.
        self.peer: Pipe | None = None
        #: Polyamorous mode: every pipe by id, oldest first, and its queue.
        self._pipes: dict[int, Pipe] = {}
        self._queues: dict[int, deque[tuple[bytes, BytesLike]]] = {}
        #: Pipes paused because the receive queue is full.
        self._paused: dict[int, Pipe] = {}
        self._deliver = host.channel.deliver
        if raw:
            host.channel.check_send = _check_raw_send

    # ------------------------------------------------------------ pipes

    def add_pipe(self, pipe: Pipe) -> bool:
        self._deliver = self.host.channel.deliver
        if self._poly:
            self._pipes[pipe.id] = pipe
            self._queues[pipe.id] = deque()
            if self._paused:
                # The application is behind: a new pipe starts paused too.
                pipe.pause_reading()
                self._paused[pipe.id] = pipe
        else:
            if self.peer is not None:
                self.host.count("pipes_busy")
                return False
            self.peer = pipe
        self.host.channel.send_ready()
        return True

    def remove_pipe(self, pipe: Pipe) -> None:
        self._paused.pop(pipe.id, None)
        if pipe is self.peer:
            self.peer = None
        if self._pipes.pop(pipe.id, None) is not None:
            queued = self._queues.pop(pipe.id, None)
            if queued:
                self.host.count("drops", len(queued))

    def _has_pipes(self) -> bool:
        return self.peer is not None or bool(self._pipes)

    # ------------------------------------------------------------ receive

    def pipe_message(self, pipe: Pipe, payload: bytes | bytearray) -> None:
        if len(payload) < 4 or payload[0] or payload[1] or payload[2]:
            self.host.reject_pipe(
                pipe,
                "malformed PAIR1 message: shorter than its 4-byte hop word"
                if len(payload) < 4
                else "malformed PAIR1 message: reserved bits set in the hop word",
            )
            return
        hops = payload[3]
        if hops > self._ttl:
            self.host.count("drops")
            return
        # Small payloads are bytes already (slicing copies little); a large
        # one arrived in its own bytearray and is viewed, not copied.
        body = payload[4:] if type(payload) is bytes else memoryview(payload)[4:]
        if not self._deliver(Message(body, _HOP_WORDS[hops], pipe)) and (
            pipe.id not in self._paused
        ):
            pipe.pause_reading()
            self._paused[pipe.id] = pipe

    def recv_space(self) -> None:
        paused, self._paused = self._paused, {}
        for pipe in paused.values():
            if not pipe.closed:
                pipe.resume_reading()

    # ------------------------------------------------------------ send

    def try_send(self, msg: Message) -> bool:
        header = _raw_send_header(msg.header) if self.raw else _HOP_ONE
        if self._poly:
            return self._send_poly(msg, header)
        peer = self.peer
        if peer is None or not peer.writable:
            return False
        peer.write(header, msg.body)
        return True

    def _send_poly(self, msg: Message, header: bytes) -> bool:
        pipes = self._pipes
        target = msg.pipe
        if target is None:
            if not pipes:
                return False  # nobody yet: wait, as monogamous send does
            pipe = next(iter(pipes.values()))
        else:
            found = pipes.get(target.id)
            if found is not target:
                # Unknown, gone, or another socket's pipe: best effort.
                self.host.count("drops")
                return True
            pipe = found
        queue = self._queues[pipe.id]
        if not queue and pipe.writable:
            pipe.write(header, msg.body)
        elif len(queue) < POLY_QUEUE:
            queue.append((header, msg.body))
        else:
            self.host.count("drops")
        return True

    def can_send(self) -> bool:
        if self._poly:
            return bool(self._pipes)
        peer = self.peer
        return peer is not None and peer.writable

    def pipe_writable(self, pipe: Pipe) -> None:
        queue = self._queues.get(pipe.id)
        if queue:
            while queue and pipe.writable:
                header, body = queue.popleft()
                pipe.write(header, body)
        if not self._poly:
            self.host.channel.send_ready()

    # ------------------------------------------------------------ options

    def check_option(self, name: str, value: Any) -> None:
        """Refuse a mode change while pipes are attached (any thread).

        Raises:
            BadState: ``polyamorous`` changes while a peer is connected.
        """
        if name == "polyamorous" and value != self._poly and self._has_pipes():
            raise BadState("the PAIR1 mode (polyamorous) cannot change while pipes are connected")

    def set_option(self, name: str, value: Any) -> None:
        if name == "ttl_max":
            self._ttl = value
        elif name == "polyamorous" and value != self._poly:
            if self._has_pipes():
                # A pipe arrived between the check and now: keep the mode.
                log.warning("pair1: polyamorous not changed, pipes are connected")
                self.host.options["polyamorous"] = self._poly
                return
            self._poly = value
            self.host.channel.send_ready()


@hookimpl
def purenng_register_protocols(registry: Registry) -> None:
    registry.add_protocol(Pair1Protocol)
