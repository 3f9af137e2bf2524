"""Pure-Python baselines of the throughput mode, measured in the same run.

Why they exist: a ratio against pynng or pyzmq says where purenng stands
among the libraries, not how much of what Python itself can do it reaches.
Two of purenng's targets are set against pure Python on the machine the
bench runs on: small messages with the asyncio API against the *per-message
asyncio ceiling*, 1 MiB messages against the *raw blocking-socket loopback
bandwidth*.  Numbers taken on another day would not do: on a shared machine
the speed of one cell changes by 10-30 % from run to run and sometimes by
2x.  So the runner starts these references as ordinary bench children,
next to purenng's own runs of the same cell, and the ratio compares runs
made under the same load.

The two kinds (the method of the bench-peers ``ceiling.py``, rewritten here):

* ``ceiling`` (:data:`CEILING`): what a per-message async API over a plain
  asyncio stream can reach, with no SP and no library.  Frames carry an
  8-byte big-endian length (NNG's stream framing minus its handshake).  The
  sender's ``await asend(msg)`` queues header and body and writes the queue
  in one ``write()`` on the next loop turn or at :data:`BATCH` frames,
  whichever comes first; a frame of :data:`BIG` bytes or more is written as
  header + body (two ``write()`` calls: Python 3.11's ``writelines`` would
  copy).  It honours ``pause_writing``/``resume_writing`` with a
  :data:`HIGH_WATER` write buffer limit.  The receiver is a
  ``BufferedProtocol`` that parses frames in a :data:`RXBUF` buffer and
  turns every message into its own ``bytes`` (bodies of :data:`BIG` or more
  are received straight into their own ``bytearray``); ``await arecv()``
  takes them one by one from a deque, and reading pauses while more than
  :data:`QUEUE_MAX` wait.  It runs on the loop of the bench's async runs.
  The end marker is an empty frame.
* ``raw`` (:data:`RAW`): blocking ``sendall()`` of ``size``-byte chunks
  (1 MiB in the bench) into ``recv_into()`` a buffer of the same size: the
  loopback bandwidth one stream gets from Python, the practical limit of
  any messaging library on top.  A chunk counts as a message; the end
  marker is the sender's ``shutdown(SHUT_WR)`` (end of stream).

Counting and bounds are those of every throughput child
(:mod:`purenng.bench.peers`): the sender sends ``--count`` messages or for
``--duration`` seconds, whichever comes first, then the end marker; the
receiver's clock starts at the first message, which is not counted, and
stops at the end marker, or at ``duration`` + ``--grace`` seconds (the run
is then ``capped``).  Nothing waits unbounded: each blocking socket call
of the raw kind has :data:`~purenng.bench.peers.IO_TIMEOUT`; the ceiling
bounds its connect, its accept and its final wait by the same, and its
whole receive by the cap plus that; and the runner kills a child that
outlives its hard limit.

Children speak the runner's protocol: ``--role recv`` listens, prints
``READY``, counts and prints one JSON line (``n``, ``bytes``, ``seconds``,
``capped``, ``msgs_per_s``, ``MB_per_s``, ``cpu_s``; the ceiling adds the
``loop`` it ran on); ``--role send`` dials, sends, waits until the runner
closes its stdin and prints one JSON line (``sent``, ``send_seconds``,
``cpu_s``, ``wall_s``).  Only ``tcp://`` and ``ipc://`` URLs are understood
(:data:`TRANSPORTS`).  No purenng messaging code runs here: a baseline that
shared purenng's code would not be a reference for it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import struct
import sys
import time
from collections import deque
from typing import TYPE_CHECKING, Any, cast

from .peers import IO_TIMEOUT, wait_release
from .proc import run_on_loop

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = [
    "BATCH",
    "BIG",
    "CEILING",
    "HIGH_WATER",
    "KINDS",
    "QUEUE_MAX",
    "RAW",
    "RAW_MIN_SIZE",
    "RXBUF",
    "TRANSPORTS",
    "baseline_kind",
    "main",
]

#: The per-message asyncio ceiling (async rows below :data:`RAW_MIN_SIZE`).
CEILING = "ceiling"

#: The raw blocking-socket bandwidth (rows of :data:`RAW_MIN_SIZE` and up).
RAW = "raw"

#: Every baseline kind, in the order the notes name them.
KINDS = (CEILING, RAW)

#: Transports with a baseline: the plain byte streams.  TLS and WebSocket
#: add work a bare socket does not do, so no baseline would be like for like.
TRANSPORTS = ("tcp", "ipc")

#: Message size from which the raw bandwidth is the reference (the 1 MiB
#: target); below it, the asyncio ceiling is, for the async API only.
RAW_MIN_SIZE = 1 << 20

#: 8-byte big-endian length: the frame header of the ceiling.
HDR = struct.Struct(">Q")

#: Bodies of at least this many bytes are written and received on their own.
BIG = 64 << 10

#: The ceiling receiver's buffer for small frames.
RXBUF = 256 << 10

#: Frames coalesced into one ``write()`` by the ceiling sender.
BATCH = 256

#: Write buffer high-water mark of the ceiling sender (``pause_writing``).
HIGH_WATER = 1 << 20

#: Queued messages above which the ceiling receiver pauses reading.
QUEUE_MAX = 8192

#: How many messages (raw: reads) between two clock reads in the hot loops (masks).
_SEND_CHECK = 15
_RECV_CHECK = 255
_RAW_CHECK = 15


def baseline_kind(transport: str, size: int, api: str) -> str | None:
    """The baseline a thr row of (``transport``, ``size``, ``api``) is compared with.

    :data:`RAW` for :data:`RAW_MIN_SIZE` and up (both APIs: one run serves
    both rows), :data:`CEILING` for the async API below it, None where
    neither applies (the blocking API below 1 MiB, TLS and WebSocket).
    """
    if transport not in TRANSPORTS:
        return None
    if size >= RAW_MIN_SIZE:
        return RAW
    return CEILING if api == "async" else None


def _address(url: str) -> tuple[socket.AddressFamily, str | tuple[str, int]]:
    """``tcp://host:port`` or ``ipc://path`` -> (family, address)."""
    if url.startswith("tcp://"):
        host, _, port = url[6:].rpartition(":")
        return socket.AF_INET, (host, int(port))
    if url.startswith("ipc://"):
        return socket.AF_UNIX, url[6:]
    raise ValueError(f"a baseline runs on tcp:// or ipc:// only, not {url!r}")


def _result(n: int, nbytes: int, seconds: float, capped: bool, size: int) -> dict[str, Any]:
    return {
        "n": n,
        "bytes": nbytes,
        "seconds": seconds,
        "capped": capped,
        "msgs_per_s": nbytes / size / seconds if seconds > 0 else 0.0,
        "MB_per_s": nbytes / seconds / 1e6 if seconds > 0 else 0.0,
    }


# ---------------------------------------------------------------- ceiling: receiver


class _FrameQueue(asyncio.BufferedProtocol):
    """Frame parser feeding a per-message ``await arecv()``.

    :meth:`arecv` returns a message (``bytes``, or ``bytearray`` for big
    bodies), or None once the stream ended; :attr:`ended` then says whether
    the end marker arrived or the connection was lost before it.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._buf = bytearray(RXBUF)
        self._mv = memoryview(self._buf)
        self._r = 0  # start of the unparsed bytes
        self._w = 0  # end of the received bytes
        self._big: bytearray | None = None  # a big body being received in place
        self._big_mv = memoryview(b"")
        self._big_pos = 0
        self._q: deque[bytes | bytearray | None] = deque()
        self._waiter: asyncio.Future[None] | None = None
        self._paused = False
        self._transport: asyncio.Transport | None = None
        self.ended = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast("asyncio.Transport", transport)

    def get_buffer(self, sizehint: int) -> memoryview:
        if self._big is not None:
            return self._big_mv[self._big_pos :]
        return self._mv[self._w :]

    def _push(self, msg: bytes | bytearray | None) -> None:
        self._q.append(msg)
        w = self._waiter
        if w is not None:
            self._waiter = None
            if not w.done():
                w.set_result(None)
        if len(self._q) > QUEUE_MAX and not self._paused and self._transport is not None:
            self._paused = True
            self._transport.pause_reading()

    def buffer_updated(self, nbytes: int) -> None:
        if self._big is not None:
            self._big_pos += nbytes
            if self._big_pos == len(self._big):
                msg, self._big = self._big, None  # the body's own buffer: no copy
                self._big_mv = memoryview(b"")
                self._push(msg)
            return
        buf, mv = self._buf, self._mv
        r = self._r
        w = self._w + nbytes
        unpack_from = HDR.unpack_from
        while w - r >= 8:
            (ln,) = unpack_from(buf, r)
            if ln == 0:  # the end marker
                self._r = self._w = 0
                self.ended = True
                self._push(None)
                if self._transport is not None:
                    self._transport.close()
                return
            if ln >= BIG:
                take = min(w - r - 8, ln)
                body = bytearray(ln)
                body[:take] = mv[r + 8 : r + 8 + take]
                r += 8 + take
                if take == ln:
                    self._push(body)
                    continue
                self._big, self._big_mv, self._big_pos = body, memoryview(body), take
                break
            if w - r - 8 < ln:
                break
            self._push(bytes(mv[r + 8 : r + 8 + ln]))  # each message its own object
            r += 8 + ln
        if r == w:
            r = w = 0
        elif RXBUF - w < BIG + 8:  # too little room: move the partial frame to the front
            buf[: w - r] = buf[r:w]
            w -= r
            r = 0
        self._r, self._w = r, w

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.ended:
            self._push(None)

    def close(self) -> None:
        """Close the connection (a capped or failed run stops reading)."""
        if self._transport is not None:
            self._transport.close()

    async def arecv(self) -> bytes | bytearray | None:
        """The next message; None when the stream is over."""
        q = self._q
        while not q:
            self._waiter = self._loop.create_future()
            await self._waiter
        if self._paused and len(q) < QUEUE_MAX // 2 and self._transport is not None:
            self._paused = False
            self._transport.resume_reading()
        return q.popleft()


async def _ceiling_consume(rx: _FrameQueue, cap: float, size: int) -> dict[str, Any]:
    """The application side: ``m = await arecv()`` and count, as every receiver does."""
    arecv = rx.arecv
    if await arecv() is None:
        raise ConnectionError("the stream ended before the first message")
    now = time.perf_counter
    t0 = now()
    deadline = t0 + cap
    n = nbytes = 0
    capped = False
    while True:
        m = await arecv()
        if m is None:
            break
        n += 1
        nbytes += len(m)
        if not (n & _RECV_CHECK) and now() > deadline:
            capped = True
            break
    seconds = now() - t0
    if not capped and not rx.ended:
        raise ConnectionError("connection lost before the end marker")
    return _result(n, nbytes, seconds, capped, size)


async def _ceiling_recv(url: str, size: int, cap: float) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    family, addr = _address(url)
    accepted: asyncio.Future[_FrameQueue] = loop.create_future()

    def factory() -> _FrameQueue:
        rx = _FrameQueue(loop)
        if not accepted.done():  # the first connection is the run; others get nothing
            accepted.set_result(rx)
        return rx

    if family == socket.AF_UNIX:
        srv = await loop.create_unix_server(factory, cast("str", addr))
    else:
        host, port = cast("tuple[str, int]", addr)
        srv = await loop.create_server(factory, host, port)
    print("READY", flush=True)
    try:
        rx = await asyncio.wait_for(accepted, IO_TIMEOUT)
    finally:
        srv.close()
    try:
        res = await asyncio.wait_for(_ceiling_consume(rx, cap, size), cap + IO_TIMEOUT)
    finally:
        rx.close()
    res["loop"] = type(loop).__module__.partition(".")[0]  # asyncio or uvloop
    return res


# ---------------------------------------------------------------- ceiling: sender


class _FrameSender(asyncio.Protocol):
    """The sending end's protocol: flow control and the end of the connection."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self.paused: asyncio.Future[None] | None = None
        self.lost: asyncio.Future[None] = loop.create_future()

    def pause_writing(self) -> None:
        if self.paused is None:
            self.paused = self._loop.create_future()

    def resume_writing(self) -> None:
        w, self.paused = self.paused, None
        if w is not None and not w.done():
            w.set_result(None)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.lost.done():
            self.lost.set_result(None)
        self.resume_writing()


class _FrameWriter:
    """A per-message ``await asend(msg)`` that coalesces small frames."""

    def __init__(self, transport: asyncio.WriteTransport, proto: _FrameSender) -> None:
        self._tr = transport
        self._proto = proto
        self._loop = asyncio.get_running_loop()
        self._parts: list[bytes] = []
        self._scheduled = False

    def flush(self) -> None:
        """Write the queued frames in one ``write()``."""
        self._scheduled = False
        if self._parts:
            self._tr.write(b"".join(self._parts))
            self._parts.clear()

    async def asend(self, payload: bytes) -> None:
        """Queue one message (or write a big one at once); wait while paused."""
        ln = len(payload)
        if ln >= BIG:
            self.flush()
            self._tr.write(HDR.pack(ln))
            self._tr.write(payload)
        else:
            parts = self._parts
            parts.append(HDR.pack(ln))
            parts.append(payload)
            if len(parts) >= 2 * BATCH:
                self.flush()
            elif not self._scheduled:
                self._scheduled = True
                self._loop.call_soon(self.flush)
        paused = self._proto.paused
        if paused is not None:
            await paused


async def _ceiling_send(url: str, size: int, count: int, duration: float) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    family, addr = _address(url)
    tr: asyncio.BaseTransport
    proto: _FrameSender
    if family == socket.AF_UNIX:
        tr, proto = await asyncio.wait_for(
            loop.create_unix_connection(lambda: _FrameSender(loop), cast("str", addr)),
            IO_TIMEOUT,
        )
    else:
        host, port = cast("tuple[str, int]", addr)
        tr, proto = await asyncio.wait_for(
            loop.create_connection(lambda: _FrameSender(loop), host, port), IO_TIMEOUT
        )
    transport = cast("asyncio.Transport", tr)
    transport.set_write_buffer_limits(high=HIGH_WATER)
    payload = os.urandom(size)
    writer = _FrameWriter(transport, proto)
    asend = writer.asend
    lost = proto.lost
    now = time.perf_counter
    t = now()
    deadline = t + duration
    i = 0
    while i < count:
        await asend(payload)
        i += 1
        if not (i & _SEND_CHECK) and (now() > deadline or lost.done()):
            break
    writer.flush()
    transport.write(HDR.pack(0))  # the end marker
    send_seconds = now() - t
    try:
        await asyncio.wait_for(asyncio.shield(lost), IO_TIMEOUT)  # the receiver closes
    finally:
        transport.close()
    return {"sent": i, "send_seconds": send_seconds}


# ---------------------------------------------------------------- raw blocking socket


def _raw_recv(url: str, size: int, cap: float) -> dict[str, Any]:
    family, addr = _address(url)
    with socket.socket(family, socket.SOCK_STREAM) as ls:
        if family == socket.AF_INET:
            ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        ls.bind(addr)
        ls.listen(1)
        ls.settimeout(IO_TIMEOUT)
        print("READY", flush=True)
        conn, _ = ls.accept()
    with conn:
        conn.settimeout(IO_TIMEOUT)
        mv = memoryview(bytearray(size))
        recv_into = conn.recv_into
        got = 0
        while got < size:  # the first message: not counted, starts the clock
            k = recv_into(mv[got:])
            if not k:
                raise ConnectionError("the stream ended before the first message")
            got += k
        now = time.perf_counter
        t0 = now()
        deadline = t0 + cap
        total = reads = 0
        capped = False
        while k := recv_into(mv):
            total += k
            reads += 1
            if not (reads & _RAW_CHECK) and now() > deadline:
                capped = True
                break
        seconds = now() - t0
    return _result(total // size, total, seconds, capped, size)


def _raw_send(url: str, size: int, count: int, duration: float) -> dict[str, Any]:
    family, addr = _address(url)
    chunk = os.urandom(size)
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.settimeout(IO_TIMEOUT)
        s.connect(addr)
        if family == socket.AF_INET:
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sendall = s.sendall
        now = time.perf_counter
        t = now()
        deadline = t + duration
        i = 0
        try:
            while i < count:
                sendall(chunk)
                i += 1
                if now() > deadline:
                    break
        except (BrokenPipeError, ConnectionResetError):
            pass  # the receiver stopped at its time cap and says so itself
        send_seconds = now() - t
        try:
            s.shutdown(socket.SHUT_WR)  # the end marker
            s.recv(1)  # returns once the receiver has closed: it has everything
        except (BrokenPipeError, ConnectionResetError):
            pass
    return {"sent": i, "send_seconds": send_seconds}


# ---------------------------------------------------------------- child roles


def _recv_role(a: argparse.Namespace) -> dict[str, Any]:
    cap = a.duration + a.grace
    c0 = time.process_time()
    if a.kind == CEILING:
        res = run_on_loop(_ceiling_recv(a.url, a.size, cap), a.loop)
    else:
        res = _raw_recv(a.url, a.size, cap)
    res["cpu_s"] = round(time.process_time() - c0, 3)
    return res


def _send_role(a: argparse.Namespace) -> dict[str, Any]:
    c0 = time.process_time()
    t0 = time.perf_counter()
    if a.kind == CEILING:
        res = run_on_loop(_ceiling_send(a.url, a.size, a.count, a.duration), a.loop)
    else:
        res = _raw_send(a.url, a.size, a.count, a.duration)
    res["cpu_s"] = round(time.process_time() - c0, 3)
    res["wall_s"] = round(time.perf_counter() - t0, 3)
    # The runner's protocol: a sender exits only once released.
    wait_release(a.duration + a.grace + IO_TIMEOUT)
    return res


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m purenng.bench.baselines",
        description="One side of a pure-Python baseline run (started by purenng bench).",
    )
    p.add_argument("--kind", choices=KINDS, required=True)
    p.add_argument("--role", choices=["recv", "send"], required=True)
    p.add_argument("--url", required=True)
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--count", type=int, default=1_000_000)
    p.add_argument("--duration", type=float, default=2.0)
    p.add_argument("--grace", type=float, default=5.0)
    p.add_argument("--loop", choices=["asyncio", "uvloop"], default="asyncio")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Run one role; prints its JSON result line.  Returns the exit status."""
    a = _parser().parse_args(argv)
    if a.size < 1:
        print("--size must be at least 1", file=sys.stderr)
        return 2
    res = _recv_role(a) if a.role == "recv" else _send_role(a)
    print(json.dumps(res), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
