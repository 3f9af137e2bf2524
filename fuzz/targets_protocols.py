"""Target for protocol headers: arbitrary payloads into each protocol's ``pipe_message``.

``protocol_headers``: the input picks a socket type (cooked or raw, PAIR1
polyamorous or not), how many fake pipes to attach (1..3), and a list of
payloads, each for one pipe, optionally after a send from our side so that
REQ and SURVEYOR have a request or survey outstanding whose id the payload
may hit.  Each payload goes to the protocol exactly as a transport delivers
it (``pipe._deliver(pipe, payload)``, SP header still in front).  Then the
socket must still be usable: it is not closed, ``recv(block=False)`` gives
a message or ``TryAgain``, a send either queues or raises one of its
documented errors, and a fresh pipe can still be attached.  Allowed:
nothing may escape ``pipe_message`` (a malformed header closes its pipe).

The sockets belong to one event loop kept for the run; each input builds
and closes its own socket, so no state leaks from one input to the next.
"""

from __future__ import annotations

import asyncio
import atexit
import logging
from typing import Any

import purenng
from purenng.core.errors import BadState, Closed, NotSupported, ProtocolError, TryAgain
from purenng.core.pipe import Pipe

from ._harness import Input, target

_SOCKETS = (
    ("pair0", False, {}),
    ("pair1", False, {}),
    ("pair1", True, {}),
    ("pair1", False, {"polyamorous": True}),
    ("pair1", True, {"polyamorous": True}),
    ("req0", False, {}),
    ("req0", True, {}),
    ("rep0", False, {}),
    ("rep0", True, {}),
    ("surveyor0", False, {}),
    ("surveyor0", True, {}),
    ("respondent0", False, {}),
    ("respondent0", True, {}),
    ("pub0", False, {}),
    ("sub0", False, {}),
    ("sub0", True, {}),
    ("push0", False, {}),
    ("pull0", False, {}),
    ("bus0", False, {}),
    ("bus0", True, {}),
)
_state: dict[str, Any] = {}


class FakePipe(Pipe):
    """A message pipe that records what the socket writes and how it closes."""

    def __init__(self, peer_id: int) -> None:
        super().__init__(peer_id, "fuzz")
        self.sent: list[bytes] = []
        self.error: BaseException | None = None
        self.paused = False
        self._deliver: Any = None

    def write(self, header: Any, body: Any) -> None:
        self.sent.append(bytes(header) + bytes(body))

    def pause_reading(self) -> None:
        self.paused = True

    def resume_reading(self) -> None:
        self.paused = False

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self._notify_closed()


def _loop() -> asyncio.AbstractEventLoop:
    loop = _state.get("loop")
    if loop is None:
        logging.getLogger("purenng").setLevel(logging.CRITICAL)  # rejected pipes are logged
        loop = _state["loop"] = asyncio.new_event_loop()
        atexit.register(shutdown)
    return loop


def shutdown() -> None:
    """Close the loop kept for the run; idempotent."""
    loop = _state.pop("loop", None)
    if loop is not None and not loop.is_closed():
        loop.close()


def _header(inp: Input, proto: str, sent: list[bytes]) -> bytes:
    """A header-ish prefix: random, a hop word, a backtrace, or an id we sent."""
    c = inp.u8() % 6
    if c == 0:
        return b""
    if c == 1:
        return bytes([0, 0, 0, inp.u8() % 20])  # PAIR1 hop word
    if c == 2:
        return (inp.u32() | 0x80000000).to_bytes(4, "big")  # one backtrace entry (end)
    if c == 3:
        hops = [inp.u32() & 0x7FFFFFFF for _ in range(inp.u8() % 4)]
        return b"".join(h.to_bytes(4, "big") for h in hops) + (
            (inp.u32() | 0x80000000).to_bytes(4, "big")
        )
    if c == 4 and sent:
        return sent[-1][:4] if proto in ("req0", "surveyor0") else sent[-1][:8]
    return inp.blob(12)


async def _one(data: bytes) -> object:
    inp = Input(data)
    name, raw, kw = _SOCKETS[inp.u8() % len(_SOCKETS)]
    cls = getattr(purenng, name[0].upper() + name[1:])
    sock = cls(raw=raw, **kw)
    send_errors: tuple[type[BaseException], ...] = (TryAgain, BadState, NotSupported)
    if raw:
        send_errors += (ProtocolError,)  # a raw send without the header the protocol needs
    try:
        peer_id = sock.protocol_cls.peer_id
        pipes = []
        for _ in range(1 + inp.u8() % 3):
            p = FakePipe(peer_id)
            sock._admission.attach(p)
            pipes.append(p)
        if name == "sub0" and not raw:
            sock.subscribe(inp.blob(3))
        delivered = 0
        for _ in range(inp.u8() % 8):
            p = pipes[inp.u8() % len(pipes)]
            if inp.flag():
                try:
                    await sock.asend(b"from us" + inp.blob(4), block=False)
                except send_errors:
                    pass
            sent = [m for q in pipes for m in q.sent]
            payload = _header(inp, name, sent) + inp.blob(40)
            if not p.closed and p._deliver is not None:
                p._deliver(p, payload if inp.flag() else bytearray(payload))
                delivered += 1
        assert not sock.closed, "a payload closed the socket"
        got = 0
        for _ in range(8):
            try:
                msg = await sock.arecv_msg(block=False)
            except (TryAgain, BadState, NotSupported):
                break
            assert isinstance(msg.body, bytes | bytearray | memoryview)
            got += 1
        try:
            await sock.asend(b"still usable", block=False)
        except send_errors:
            pass
        # A fresh peer is still admitted.
        fresh = FakePipe(peer_id)
        sock._admission.attach(fresh)
        closed = sum(p.closed for p in pipes)
        return (name, raw, bool(kw), closed, got > 0, delivered > 0)
    finally:
        sock.close()


@target(
    "protocol_headers",
    allowed=(),
    modules=(
        "purenng.protocols.pair0",
        "purenng.protocols.pair1",
        "purenng.protocols.reqrep0",
        "purenng.protocols.survey0",
        "purenng.protocols._backtrace",
        "purenng.protocols.pubsub0",
        "purenng.protocols.pipeline0",
        "purenng.protocols.bus0",
        "purenng.protocols._broadcast",
    ),
    seeds=tuple(
        bytes([i, 1, 4, 0, 1, 4, 1, 2, 10, 11, 12, 13, 0, 5, 104, 101, 108, 108, 111, 1, 1])
        for i in range(len(_SOCKETS))
    ),
    weight=0.3,
    max_len=512,
)
def protocol_headers(data: bytes) -> object:
    """Socket choice, pipes, then (pipe, maybe a send, header, body, bytes/bytearray) entries."""
    loop = _loop()
    try:
        return loop.run_until_complete(_one(data))
    except Closed as exc:  # never expected: the socket is ours until the end
        raise AssertionError(f"socket closed under us: {exc}") from exc
