"""Devices: forward messages between two raw sockets (NNG's ``nng_device``).

A device joins two raw sockets of peer protocols and copies every message
one receives to the other, header and all.  Chained through devices, SP
topologies grow beyond one hop: a REQ reaches a REP through a raw REP that
faces the requesters and a raw REQ that faces the repliers, and the raw
headers carry the way back (each raw REP pushes the id of the pipe a request
came from; the raw REP on the reply path pops it and routes by it).  The
device itself knows nothing of headers.

Rules (``reference/wire-protocols.md`` §1.5; NNG ``src/core/device.c``,
``src/sp/device_test.c``):

* **Raw sockets only.**  A cooked socket would strip and rebuild headers
  and lose the way back, so it is refused with :class:`BadState`, as NNG
  refuses it (NNG_EINVAL).
* **Peer protocols only.**  Each socket's peer protocol must be the other's
  own protocol (REP with REQ, SUB with PUB, PULL with PUSH, PAIR with PAIR,
  BUS with BUS, RESPONDENT with SURVEYOR), else :class:`NotSupported`.
* **Directions.**  A message is forwarded from a socket that can receive to
  one that can send: both ways for REQ/REP, PAIR, BUS and SURVEY; one way
  for PULL -> PUSH and SUB -> PUB.  The order of the two arguments does
  not matter.
* **Reflector.**  ``device(sock)`` (or ``device(sock, sock)``) sends what
  ``sock`` receives back out of ``sock``; only a protocol that is its own
  peer (PAIR, BUS) can do that.  A raw BUS skips the pipe a message came
  from, so a BUS reflector does not echo to the sender.
* **Loss semantics stay the protocols'.**  The device waits as long as the
  destination needs (no timeout, whatever ``send_timeout`` and
  ``recv_timeout`` say), so back-pressure protocols (PUSH, PAIR) slow the
  source down and best-effort ones (PUB, BUS, SURVEYOR, a raw REP routing to
  a vanished pipe) drop in their own send, as they would for an application.
  A message the destination refuses outright (for instance a header its
  raw mode rejects) is dropped and logged, and forwarding goes on.
  ``Message.pipe`` is cleared before forwarding: it names a pipe of the
  source socket, meaningless to the destination; routing state lives in
  the header.
* **End.**  The device runs until either socket is closed, then returns
  (None), as ``nng_device`` returns when a socket closes.  Cancelling
  :func:`adevice` stops forwarding; Ctrl-C interrupts :func:`device`.
  Neither closes the sockets.

Theory of operation: one forwarding task per direction, each running on
its *source* socket's loop (receive is then a local await); a send to a
socket on another loop is bridged to that loop.  So the two sockets may
live on different loops and threads, and on any transports.  Under trio
(no asyncio loop in the caller) :func:`adevice` runs itself on ``a``'s
loop and waits for it there.  A watcher polls ``closed`` every
:data:`CLOSE_POLL` seconds to end the device when a socket closes while no
forwarding operation is waiting on it (a PUSH closed while the device
waits for a message from the PULL); every other close ends the device at
once, through the ``Closed`` its waiting operation raises.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from typing import TYPE_CHECKING, Any

from .core.bridge import bridge, running_loop
from .core.errors import BadState, Closed, Error, NotSupported
from .core.loop import run_sync
from .core.socket import Socket

if TYPE_CHECKING:
    from collections.abc import Callable, Coroutine

__all__ = ["CLOSE_POLL", "adevice", "device"]

log: logging.Logger = logging.getLogger("purenng")

#: Seconds between the watcher's checks for a closed socket (see above).
CLOSE_POLL = 0.2


def _paths(a: Socket, b: Socket | None) -> list[tuple[Socket, Socket]]:
    """The (source, destination) pairs a device between ``a`` and ``b`` runs.

    Raises:
        TypeError: an argument is not a purenng socket.
        Closed: a socket is closed.
        BadState: a socket is cooked.
        NotSupported: the protocols are not peers, or cannot be reflected.
    """
    if b is None:
        b = a
    for s in (a, b):
        if not isinstance(s, Socket):
            raise TypeError(f"device() takes purenng sockets, not {type(s).__name__}")
        if s.closed:
            raise Closed(f"device(): {s!r} is closed")
        if not s.raw:
            name = type(s).__name__
            raise BadState(
                f"device() needs raw sockets, but {s!r} is cooked: open it with "
                f"raw=True (purenng.{name}(raw=True)); a cooked socket would lose the "
                f"routing headers"
            )
    pa, pb = a.protocol_cls, b.protocol_cls
    if a is b:
        if pa.peer_id != pa.self_id:
            raise NotSupported(
                f"device() with one socket reflects messages back into it, which needs a "
                f"protocol that is its own peer (pair0, pair1, bus0), not {pa.name} "
                f"(whose peer is {pa.peer_name})"
            )
        return [(a, a)]
    if pa.peer_id != pb.self_id or pb.peer_id != pa.self_id:
        raise NotSupported(
            f"device() joins peer protocols, and {pa.name} and {pb.name} are not peers: "
            f"a {pa.name} socket talks to {pa.peer_name}, a {pb.name} socket to {pb.peer_name}"
        )
    paths = []
    if pa.can_recv_messages and pb.can_send_messages:
        paths.append((a, b))
    if pb.can_recv_messages and pa.can_send_messages:
        paths.append((b, a))
    if not paths:  # pragma: no cover - peers always have one direction
        raise NotSupported(f"device(): nothing can flow between {pa.name} and {pb.name}")
    return paths


async def _on_loop(
    loop: asyncio.AbstractEventLoop,
    fn: Callable[[Socket, Socket], Coroutine[Any, Any, None]],
    src: Socket,
    dst: Socket,
) -> None:
    """Run ``fn(src, dst)`` on ``loop``, directly when it is the running loop.

    The coroutine is made here, not by the caller, so that a task cancelled
    before it starts leaves no coroutine that was never awaited.

    Raises:
        Closed: ``loop`` is closed (its sockets are unusable).
    """
    if running_loop() is loop:
        await fn(src, dst)
        return
    coro = fn(src, dst)
    try:
        await bridge(loop, coro)
    except RuntimeError:
        if not loop.is_closed():
            raise
        if inspect.getcoroutinestate(coro) == inspect.CORO_CREATED:
            coro.close()  # never scheduled: no "never awaited" warning
        raise Closed(f"device: the event loop of {src!r} or {dst!r} is closed") from None


async def _forward(src: Socket, dst: Socket) -> None:
    """Copy messages from ``src`` to ``dst`` until one closes (on ``src.loop``).

    Raises:
        Closed: either socket closed (the normal end).
    """
    recv = src.channel.arecv
    send = dst.channel.asend
    local = dst.loop is src.loop
    warned = False
    while True:
        msg = await recv(None)
        msg.pipe = None
        try:
            if local:
                await send(msg, None)
            else:
                await bridge(dst.loop, send(msg, None))
        except Closed:
            raise
        except Error as exc:
            if not warned:
                warned = True
                log.warning(
                    "device %r -> %r: dropped a message the destination refused: %s "
                    "(logged once per device direction)",
                    src,
                    dst,
                    exc,
                )


async def _until_closed(socks: list[Socket]) -> None:
    """Return once any of ``socks`` is closed (polled; see the module header)."""
    # No close event exists to wait on; this poll is the fallback only.
    while not any(s.closed for s in socks):  # noqa: ASYNC110
        await asyncio.sleep(CLOSE_POLL)


async def adevice(a: Socket, b: Socket | None = None) -> None:
    """Forward messages between raw sockets ``a`` and ``b`` until one closes.

    With ``b`` omitted, ``a`` is a reflector: what it receives goes back out
    of it (PAIR, BUS).  The sockets may live on any loops; call this from
    any asyncio loop, or from trio (the device then runs on ``a``'s loop).

    Args:
        a: A raw socket.
        b: A raw socket of ``a``'s peer protocol, or None to reflect.

    Returns:
        None, once either socket is closed.  The sockets are never closed
        by the device.

    Raises:
        BadState: a socket is cooked (open it with ``raw=True``).
        NotSupported: the protocols are not peers (or, with one socket,
            not their own peer).
        Closed: a socket was closed already.
        asyncio.CancelledError: the coroutine was cancelled; forwarding has
            stopped (a message received but not yet sent is lost).
    """
    paths = _paths(a, b)
    if running_loop() is None:  # trio: run the device on a's loop
        await bridge(a.loop, adevice(a, b))
        return
    socks = [a] if b is None or b is a else [a, b]
    tasks: list[asyncio.Future[None]] = [
        asyncio.ensure_future(_on_loop(src.loop, _forward, src, dst)) for src, dst in paths
    ]
    tasks.append(asyncio.ensure_future(_until_closed(socks)))
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.wait(tasks)
    for t in done:
        if t.cancelled():
            continue
        exc = t.exception()
        if exc is not None and not isinstance(exc, Closed):
            raise exc


def device(a: Socket, b: Socket | None = None) -> None:
    """Blocking form of :func:`adevice`: forward until either socket closes.

    Call it from a thread that is not ``a``'s loop (usually the main thread
    or a thread of its own).  Ctrl-C (KeyboardInterrupt) stops it.

    Raises:
        BadState: a socket is cooked.
        NotSupported: the protocols are not peers.
        Closed: a socket was closed already.
        WrongThread: called on the event loop that owns ``a``.
    """
    _paths(a, b)  # refuse bad arguments here, in the caller's thread
    run_sync(a.loop, adevice(a, b), "device")
