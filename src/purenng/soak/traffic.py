"""The traffic child of ``purenng soak``: one side (or both) of six SP patterns.

A child runs one *side* of every pattern over one transport: side ``A``
listens, side ``B`` dials; over ``inproc`` one child runs both (``--side
AB``), because inproc peers must share a process.  Each pattern has its own
URL (``--urls``, a JSON object pattern -> URL).

=========  =================================  =================================
pattern    side A (listens)                   side B (dials)
=========  =================================  =================================
pipeline   PULL: receives ``push``            PUSH: sends ``push``
reqrep     REP: answers every request         REQ: ``--req-contexts`` contexts,
                                              each one request at a time
pubsub     PUB: sends ``pub`` (topic t0) and  SUB: subscribed to t0 only
           the same number on topic t1
survey     SURVEYOR: one survey a second      RESPONDENT: answers each survey
bus        BUS: sends ``bus.a``, receives     BUS: sends ``bus.b``, receives
pair       PAIR1: sends ``pair.a``, receives  PAIR1: sends ``pair.b``, receives
=========  =================================  =================================

Rules:

* Every message is ``HDR`` (topic, generation, sequence number, body length,
  CRC-32 of the body) and a body cut from a fixed random pool: any size from
  0 to almost 1 MiB (:data:`SIZES`) is built and checked without copying
  more than once.  A receiver checks each message whole (length, CRC,
  topic); a bad one is ``corrupt``.
* A *generation* is one sender's life: a random 32-bit id chosen when the
  sender starts, sequence numbers from 0.  A receiver keeps, per generation,
  the first and last number it saw, how many, and which numbers in between
  are missing (:class:`Checker`: a missing number may still come late,
  from the old pipe of a redialed sender; one that comes twice is a
  duplicate).  Whether what is missing is lost is the runner's decision
  (:mod:`purenng.soak.runner`), which knows who was killed when.
* A blocked send that times out has not taken the message (the socket's
  contract), so the sender retries the same number: a sequence number is
  consumed only by a send that returned.
* ``--api sync`` runs every worker in its own thread with the blocking API
  (the sockets live on purenng's background loop: ``PURENNG_LOOP`` picks
  asyncio or uvloop); ``--api async`` runs them as tasks on the child's own
  loop (``--loop asyncio`` or ``uvloop``).
* Senders keep a rate (messages/s per pattern, times ``--rate``), so the
  load is the same on a fast and a slow machine.

Lines to the runner (stdout): ``READY {..}`` once the endpoints are up,
``STAT {..}`` every ``--stat`` seconds (counters, the generations sent and
the per-generation ranges received, events since the last STAT), ``FINAL {..}`` after
``STOP`` (the senders have stopped: their last numbers), ``BYE {}`` after
``EXIT`` closed every socket.  Commands (stdin): ``DIALERS`` (close every
dialer and dial again), ``RESTART`` (inproc: close side B and start a new
one, as if its process had been killed), ``STOP``, ``EXIT``.  End of stdin
is ``EXIT``: a child never outlives its runner.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import os
import random
import select
import struct
import sys
import threading
import time
import traceback
import zlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Coroutine

__all__ = [
    "HDR",
    "PATTERNS",
    "RELIABLE_STREAMS",
    "SIZES",
    "STREAMS",
    "Corrupt",
    "check",
    "main",
    "make",
]

#: topic (2 bytes), generation, sequence number, body length, CRC-32 of the body.
HDR = struct.Struct("!2sIQII")

#: Body sizes and their weights: mostly small, now and then up to ~1 MiB.
SIZES: tuple[tuple[int, int], ...] = (
    (0, 20),
    (16, 25),
    (200, 20),
    (1500, 15),
    (16 << 10, 10),
    (64 << 10, 6),
    (256 << 10, 3),
    ((1 << 20) - 64, 1),
)

#: The patterns, in table order.
PATTERNS = ("pipeline", "reqrep", "pubsub", "survey", "bus", "pair")

#: Stream name -> (pattern, side that sends, side that receives).
STREAMS: dict[str, tuple[str, str, str]] = {
    "push": ("pipeline", "B", "A"),
    "req": ("reqrep", "B", "B"),
    "pub": ("pubsub", "A", "B"),
    "survey": ("survey", "A", "A"),
    "bus.a": ("bus", "A", "B"),
    "bus.b": ("bus", "B", "A"),
    "pair.a": ("pair", "A", "B"),
    "pair.b": ("pair", "B", "A"),
}

#: Streams on which no message may be lost (the runner fails the soak otherwise).
RELIABLE_STREAMS = ("push", "req")

#: Messages per second of each sender at ``--rate 1`` (a survey: one a second).
RATES = {
    "push": 150.0,
    "req": 40.0,  # per context
    "pub": 60.0,  # per topic
    "survey": 1.0,
    "bus": 20.0,
    "pair": 40.0,
}

#: Seconds a receiver waits before it looks at the stop flags again.
RECV_POLL = 2.0
#: Seconds a blocked send waits before it retries (the message was not taken).
SEND_POLL = 5.0
#: How long one survey lasts (the SURVEYOR's ``survey_time``), seconds.
SURVEY_TIME = 0.5
#: REQ resends an unanswered request after this many seconds.
RESEND_TIME = 2.0
#: A number missing this long (seconds) is not coming late any more.
LATE_GRACE = 30.0
#: Missing numbers a receiver follows per stream and generation.
MISSING_MAX = 100_000

_POOL_SIZE = 1 << 20
_POOL = memoryview(random.Random(20261207).randbytes(2 * _POOL_SIZE))
_TOPIC_PUB, _TOPIC_OTHER = b"t0", b"t1"


class Corrupt(Exception):
    """A message that is not what its header says."""


def make(topic: bytes, gen: int, seq: int, size: int) -> bytes:
    """One message: ``HDR`` and ``size`` bytes of the pool chosen by ``seq``."""
    off = (seq * 7919) % _POOL_SIZE
    body = _POOL[off : off + size]
    return HDR.pack(topic, gen, seq, size, zlib.crc32(body)) + body


def check(data: bytes) -> tuple[bytes, int, int]:
    """``(topic, generation, sequence number)`` of a whole, intact message.

    Raises:
        Corrupt: too short, wrong length or CRC.
    """
    if len(data) < HDR.size:
        raise Corrupt(f"{len(data)} bytes is shorter than the header")
    topic, gen, seq, size, crc = HDR.unpack_from(data)
    if len(data) - HDR.size != size:
        raise Corrupt(f"body of {len(data) - HDR.size} bytes, header says {size}")
    if zlib.crc32(memoryview(data)[HDR.size :]) != crc:
        raise Corrupt(f"CRC mismatch in gen {gen:08x} seq {seq}")
    return topic, gen, seq


# ---------------------------------------------------------------- counting


@dataclass
class Counter:
    """One worker's counts for one stream (one writer: no lock needed)."""

    stream: str
    sent: int = 0
    sent_bytes: int = 0
    recv: int = 0
    recv_bytes: int = 0
    gaps: int = 0
    missing: int = 0
    dups: int = 0
    corrupt: int = 0
    timeouts: int = 0
    errors: int = 0
    other: int = 0
    late: int = 0
    untracked: int = 0


@dataclass
class Generation:
    """A sender's life: its id, when it began (wall clock) and how far it got."""

    stream: str
    gen: int
    t0: float
    sent: int = 0


class Recorder:
    """What one side has counted and seen; read by the STAT line."""

    def __init__(self, side: str, inc: int) -> None:
        self.side = side
        self.inc = inc
        self.t0: float = time.time()
        self.counters: list[Counter] = []
        self.gens: list[Generation] = []
        #: stream -> generation -> [first, last, count] of what this side received.
        self.ranges: dict[str, dict[int, list[int]]] = {}
        #: stream -> generation -> missing number -> wall time it went missing.
        self.missing: dict[str, dict[int, dict[int, float]]] = {}
        self._events: list[dict[str, Any]] = []

    def counter(self, stream: str) -> Counter:
        c = Counter(stream)
        self.counters.append(c)
        return c

    def generation(self, stream: str) -> Generation:
        g = Generation(stream, random.getrandbits(32), time.time())
        self.gens.append(g)
        return g

    def event(self, kind: str, **info: Any) -> None:
        self._events.append(
            {"t": round(time.time(), 3), "kind": kind, "side": self.side, "inc": self.inc, **info}
        )

    def error(self, where: str, exc: BaseException) -> None:
        last = traceback.format_exception_only(type(exc), exc)[-1].strip()
        self.event("error", where=where, error=last[:300])

    def _holes(self, stream: str, gen: int) -> tuple[int, int]:
        """(numbers missing now, of those missing for more than :data:`LATE_GRACE` s)."""
        miss = self.missing.get(stream, {}).get(gen)
        if not miss:
            return 0, 0
        old = time.time() - LATE_GRACE
        return len(miss), sum(1 for t in list(miss.values()) if t < old)

    def report(self) -> dict[str, Any]:
        events, self._events = self._events, []
        totals: dict[str, dict[str, int]] = {}
        for c in self.counters:
            t = totals.setdefault(c.stream, {})
            for k, v in vars(c).items():
                if k != "stream" and v:  # zeros are left out: the lines stay short
                    t[k] = t.get(k, 0) + v
        return {
            "side": self.side,
            "inc": self.inc,
            "t0": self.t0,
            "pid": os.getpid(),
            "streams": totals,
            "gens": [vars(g) for g in self.gens],
            "ranges": {
                s: {str(g): [*r, *self._holes(s, g)] for g, r in by_gen.items()}
                for s, by_gen in self.ranges.items()
            },
            "events": events,
        }


class Checker:
    """A receiver's bookkeeping: per-generation order, holes, late arrivals, duplicates.

    A number above the next expected one opens a hole (its numbers are
    *missing*, with the time they went missing); a number below it that is
    missing fills the hole (a *late* arrival: PUSH/PULL and the others keep
    order per pipe only, so a message still in the old pipe of a redialed
    sender may arrive after newer ones from the new pipe); any other number
    below it is a duplicate.  What is still missing at the end is lost.
    """

    def __init__(self, rec: Recorder, c: Counter, topic: bytes) -> None:
        self.rec = rec
        self.c = c
        self.topic = topic
        self.reliable: bool = c.stream in RELIABLE_STREAMS
        self.ranges: dict[int, list[int]] = rec.ranges.setdefault(c.stream, {})
        self.missing: dict[int, dict[int, float]] = rec.missing.setdefault(c.stream, {})

    def _hole(self, gen: int, lo: int, hi: int) -> None:
        """Numbers ``lo`` to ``hi - 1`` of ``gen`` went missing now."""
        miss = self.missing.setdefault(gen, {})
        now = time.time()
        if len(miss) + (hi - lo) > MISSING_MAX:
            self.c.untracked += hi - lo  # counted, no longer followed one by one
            return
        for s in range(lo, hi):
            miss[s] = now

    def take(self, data: bytes) -> None:
        c = self.c
        try:
            topic, gen, seq = check(data)
            if topic != self.topic:
                raise Corrupt(f"topic {topic!r}, subscribed to {self.topic!r}")
        except Corrupt as e:
            c.corrupt += 1
            self.rec.event("corrupt", stream=c.stream, error=str(e))
            return
        c.recv += 1
        c.recv_bytes += len(data)
        r = self.ranges.get(gen)
        if r is None:
            self.ranges[gen] = [seq, seq, 1]
            return
        expected = r[1] + 1
        if seq == expected:
            r[1] = seq
            r[2] += 1
        elif seq > expected:
            c.gaps += seq - expected
            self._hole(gen, expected, seq)
            if self.reliable:
                self.rec.event("gap", stream=c.stream, gen=gen, expected=expected, got=seq)
            r[1] = seq
            r[2] += 1
        elif seq < r[0]:  # from before the first one seen: the start was late
            self._hole(gen, seq + 1, r[0])
            r[0] = seq
            r[2] += 1
            c.late += 1
        elif self.missing.get(gen, {}).pop(seq, None) is not None:
            r[2] += 1
            c.late += 1
        else:
            c.dups += 1
            if self.reliable:
                self.rec.event("dup", stream=c.stream, gen=gen, expected=expected, got=seq)


class Pacer:
    """Sizes and send times of one sender: ``rate`` messages/s, sizes per :data:`SIZES`."""

    def __init__(self, rate: float, seed: int, max_size: int) -> None:
        self.interval: float = 1.0 / rate if rate > 0 else 1.0
        self.rng: random.Random = random.Random(seed)
        sizes = [s for s, _ in SIZES if s <= max_size] or [0]
        self._sizes = sizes
        self._weights = [w for s, w in SIZES if s <= max_size] or [1]
        self.next: float = time.monotonic()

    def size(self) -> int:
        return self.rng.choices(self._sizes, self._weights)[0]

    def delay(self) -> float:
        """Seconds to wait before the next send (and book it)."""
        now = time.monotonic()
        if self.next < now - 1.0:  # fell behind (blocked): do not burst to catch up
            self.next = now
        wait = self.next - now
        self.next += self.interval
        return max(0.0, wait)


# ---------------------------------------------------------------- one side


@dataclass
class Config:
    """What a child was told on its command line."""

    transport: str
    urls: dict[str, str]
    api: str
    loop: str
    rate: float
    req_contexts: int
    req_timeout: float
    stat: float
    tls_dir: str | None
    max_size: int
    inject_loss: int
    patterns: tuple[str, ...] = PATTERNS


def _tls_options(cfg: Config, side: str) -> dict[str, Any]:
    if cfg.transport not in ("tls", "wss"):
        return {}
    import purenng

    d = cfg.tls_dir or "."
    if side == "A":
        return {
            "tls_config": purenng.TLSConfig(
                cert_file=os.path.join(d, "server.pem"), key_file=os.path.join(d, "server.key")
            )
        }
    return {
        "tls_config": purenng.TLSConfig(ca_file=os.path.join(d, "ca.pem"), server_name="localhost")
    }


def _socket_options(pattern: str, side: str, cfg: Config) -> tuple[str, dict[str, Any]]:
    """(class name, constructor options) of one pattern's socket on one side."""
    common: dict[str, Any] = {
        "reconnect_time_min": 0.1,
        "reconnect_time_max": 1.0,
        "recv_timeout": RECV_POLL,
        "send_timeout": SEND_POLL,
    }
    name = {
        ("pipeline", "A"): "Pull0",
        ("pipeline", "B"): "Push0",
        ("reqrep", "A"): "Rep0",
        ("reqrep", "B"): "Req0",
        ("pubsub", "A"): "Pub0",
        ("pubsub", "B"): "Sub0",
        ("survey", "A"): "Surveyor0",
        ("survey", "B"): "Respondent0",
        ("bus", "A"): "Bus0",
        ("bus", "B"): "Bus0",
        ("pair", "A"): "Pair1",
        ("pair", "B"): "Pair1",
    }[pattern, side]
    if name == "Req0":
        common.update(resend_time=RESEND_TIME, recv_timeout=cfg.req_timeout)
    elif name == "Surveyor0":
        common.update(survey_time=SURVEY_TIME, recv_timeout=None)
    return name, common


class Side:
    """One side's sockets and workers (threads or tasks), and how to stop them."""

    def __init__(self, cfg: Config, side: str, inc: int) -> None:
        self.cfg = cfg
        self.side = side
        self.rec: Recorder = Recorder(side, inc)
        self.sockets: dict[str, Any] = {}
        self.tx_stop: bool = False
        self.closing: bool = False
        self.threads: list[threading.Thread] = []
        self.tasks: list[asyncio.Task[None]] = []
        self.finals: list[Generation] = []
        self._rng = random.Random()
        self._injected = False

    # -- endpoints --------------------------------------------------------

    def _new_socket(self, pattern: str) -> Any:
        import purenng

        name, opts = _socket_options(pattern, self.side, self.cfg)
        sock = getattr(purenng, name)(**opts)
        if name == "Sub0":
            sock.subscribe(_TOPIC_PUB)
        return sock

    def _endpoint_options(self) -> dict[str, Any]:
        return _tls_options(self.cfg, self.side)

    def open_sync(self) -> None:
        """Make the sockets and start the worker threads (blocking API)."""
        for p in self.cfg.patterns:
            sock = self._new_socket(p)
            self.sockets[p] = sock
            url = self.cfg.urls[p]
            if self.side == "A":
                sock.listen(url, **self._endpoint_options())
            else:
                sock.dial(url, block=False, **self._endpoint_options())
        for name, fn in self._workers_sync():
            t = threading.Thread(target=self._guard_sync, args=(name, fn), name=name, daemon=True)
            t.start()
            self.threads.append(t)

    async def open_async(self) -> None:
        """Make the sockets on the running loop and start the worker tasks."""
        for p in self.cfg.patterns:
            sock = self._new_socket(p)
            self.sockets[p] = sock
            url = self.cfg.urls[p]
            if self.side == "A":
                await sock.alisten(url, **self._endpoint_options())
            else:
                await sock.adial(url, block=False, **self._endpoint_options())
        for name, coro_fn in self._workers_async():
            self.tasks.append(asyncio.create_task(self._guard_async(name, coro_fn), name=name))

    def redial_sync(self) -> None:
        """Close every dialer and dial its URL again (the socket stays)."""
        for p, sock in self.sockets.items():
            for d in list(sock.dialers):
                d.close()
            sock.dial(self.cfg.urls[p], block=False, **self._endpoint_options())
        self.rec.event("redialed")

    async def redial_async(self) -> None:
        """Coroutine form of :meth:`redial_sync`."""
        for p, sock in self.sockets.items():
            for d in list(sock.dialers):
                await d.aclose()
            await sock.adial(self.cfg.urls[p], block=False, **self._endpoint_options())
        self.rec.event("redialed")

    def close_sync(self) -> None:
        """Stop every worker and close every socket."""
        self.tx_stop = self.closing = True
        for sock in self.sockets.values():
            sock.close()
        for t in self.threads:
            t.join(timeout=10)
            if t.is_alive():
                self.rec.event("error", where=t.name, error="worker did not stop in 10 s")

    async def close_async(self) -> None:
        """Coroutine form of :meth:`close_sync`."""
        self.tx_stop = self.closing = True
        for sock in self.sockets.values():
            await sock.aclose()
        if self.tasks:
            _, pending = await asyncio.wait(self.tasks, timeout=10)
            for t in pending:
                self.rec.event("error", where=t.get_name(), error="worker did not stop in 10 s")
                t.cancel()

    # -- guards -----------------------------------------------------------

    def _guard_sync(self, name: str, fn: Callable[[], None]) -> None:
        while not self.closing:
            try:
                fn()
                return
            except Exception as e:
                if self.closing:
                    return
                self.rec.error(name, e)
                time.sleep(1.0)

    async def _guard_async(self, name: str, fn: Callable[[], Awaitable[None]]) -> None:
        while not self.closing:
            try:
                await fn()
                return
            except Exception as e:
                if self.closing:
                    return
                self.rec.error(name, e)
                await asyncio.sleep(1.0)

    # -- the workers, described once --------------------------------------

    def _plan(self) -> list[tuple[str, str, Any]]:
        """(kind, name, arguments) of every worker of this side."""
        plan: list[tuple[str, str, Any]] = []
        s = self.side
        for p in self.cfg.patterns:
            sock = self.sockets[p]
            if p == "pipeline":
                plan.append(
                    ("tx", "push", (sock, "push", b"pp"))
                    if s == "B"
                    else ("rx", "pull", (sock, "push", b"pp"))
                )
            elif p == "reqrep":
                for i in range(self.cfg.req_contexts):
                    kind = "req" if s == "B" else "rep"
                    plan.append((kind, f"{kind}{i}", (sock.new_context(),)))
            elif p == "pubsub":
                if s == "A":
                    plan.append(("tx", "pub", (sock, "pub", _TOPIC_PUB)))
                else:
                    plan.append(("rx", "sub", (sock, "pub", _TOPIC_PUB)))
            elif p == "survey":
                plan.append(
                    ("surveyor", "surveyor", (sock,))
                    if s == "A"
                    else ("respondent", "respondent", (sock,))
                )
            elif p in ("bus", "pair"):
                mine, theirs = (f"{p}.a", f"{p}.b") if s == "A" else (f"{p}.b", f"{p}.a")
                plan.append(("tx", f"{p}-tx", (sock, mine, p.encode()[:2])))
                plan.append(("rx", f"{p}-rx", (sock, theirs, p.encode()[:2])))
        return plan  # fmt: skip

    def _rate(self, stream: str) -> float:
        return RATES[stream.partition(".")[0]] * self.cfg.rate

    def _workers_sync(self) -> list[tuple[str, Callable[[], None]]]:
        fns: dict[str, Callable[..., None]] = {
            "tx": self._tx_sync,
            "rx": self._rx_sync,
            "req": self._req_sync,
            "rep": self._rep_sync,
            "surveyor": self._surveyor_sync,
            "respondent": self._respondent_sync,
        }
        out: list[tuple[str, Callable[[], None]]] = []
        for kind, name, args in self._plan():
            out.append((f"{self.side}-{name}", functools.partial(fns[kind], *args)))
        return out

    def _workers_async(self) -> list[tuple[str, Callable[[], Coroutine[Any, Any, None]]]]:
        fns: dict[str, Callable[..., Coroutine[Any, Any, None]]] = {
            "tx": self._tx_async,
            "rx": self._rx_async,
            "req": self._req_async,
            "rep": self._rep_async,
            "surveyor": self._surveyor_async,
            "respondent": self._respondent_async,
        }
        out: list[tuple[str, Callable[[], Coroutine[Any, Any, None]]]] = []
        for kind, name, args in self._plan():
            out.append((f"{self.side}-{name}", functools.partial(fns[kind], *args)))
        return out

    # -- shared steps -------------------------------------------------------

    def _next_seq(self, g: Generation) -> int:
        """The number of the next message; ``--inject-loss N`` skips one once."""
        seq = g.sent
        n = self.cfg.inject_loss
        if n and g.stream == "push" and self.rec.inc == 1 and not self._injected and seq == n:
            self._injected = True
            seq = g.sent = seq + 1  # never sent: the receiver must see a gap
        return seq

    def _sent(self, c: Counter, g: Generation, n: int) -> None:
        g.sent += 1
        c.sent += 1
        c.sent_bytes += n

    # -- blocking workers ---------------------------------------------------

    def _tx_sync(self, sock: Any, stream: str, topic: bytes) -> None:
        import purenng

        rec = self.rec
        c, g = rec.counter(stream), rec.generation(stream)
        other = rec.counter(stream) if stream == "pub" else None
        pace = Pacer(self._rate(stream), g.gen, self.cfg.max_size)
        try:
            while not self.tx_stop:
                time.sleep(pace.delay())
                seq = self._next_seq(g)
                size = pace.size()
                msg = make(topic, g.gen, seq, size)
                try:
                    sock.send(msg)
                except purenng.Timeout:
                    c.timeouts += 1
                    continue
                self._sent(c, g, len(msg))
                if other is not None:  # the same on the topic SUB did not subscribe to
                    sock.send(make(_TOPIC_OTHER, g.gen, seq, size))
                    other.other += 1
        finally:
            self.finals.append(g)

    def _rx_sync(self, sock: Any, stream: str, topic: bytes) -> None:
        import purenng

        chk = Checker(self.rec, self.rec.counter(stream), topic)
        while not self.closing:
            try:
                data = sock.recv()
            except purenng.Timeout:
                continue
            chk.take(data)

    def _req_sync(self, ctx: Any) -> None:
        import purenng

        rec = self.rec
        c, g = rec.counter("req"), rec.generation("req")
        pace = Pacer(self._rate("req"), g.gen, self.cfg.max_size)
        try:
            while not self.tx_stop:
                time.sleep(pace.delay())
                seq = g.sent
                msg = make(b"rq", g.gen, seq, pace.size())
                try:
                    ctx.send(msg)
                except purenng.Timeout:
                    c.timeouts += 1
                    continue
                self._sent(c, g, len(msg))
                try:
                    reply = ctx.recv()
                except purenng.Timeout:
                    c.missing += 1  # no reply after every resend: lost
                    rec.event("req_timeout", stream="req", gen=g.gen, seq=seq)
                    continue
                self._reply(c, g, seq, reply)
        finally:
            self.finals.append(g)

    def _reply(self, c: Counter, g: Generation, seq: int, reply: bytes) -> None:
        try:
            topic, gen, rseq = check(reply)
            if (topic, gen, rseq) != (b"rp", g.gen, seq):
                raise Corrupt(f"reply {topic!r} {gen:08x}/{rseq} to request {g.gen:08x}/{seq}")
        except Corrupt as e:
            c.corrupt += 1
            self.rec.event("corrupt", stream="req", error=str(e))
            return
        c.recv += 1
        c.recv_bytes += len(reply)

    def _answer(self, c: Counter, data: bytes, want: bytes, topic: bytes) -> bytes | None:
        """The reply to a request or survey, or None (counted corrupt)."""
        try:
            t, gen, seq = check(data)
            if t != want:
                raise Corrupt(f"topic {t!r}, expected {want!r}")
        except Corrupt as e:
            c.corrupt += 1
            self.rec.event("corrupt", stream=c.stream, error=str(e))
            return None
        c.other += 1
        size = min(len(data) - HDR.size, 64 << 10) if self._rng.random() < 0.5 else 16
        return make(topic, gen, seq, size)

    def _rep_sync(self, ctx: Any) -> None:
        import purenng

        c = self.rec.counter("req")
        while not self.closing:
            try:
                data = ctx.recv()
            except purenng.Timeout:
                continue
            reply = self._answer(c, data, b"rq", b"rp")
            if reply is not None:
                try:
                    ctx.send(reply)
                except purenng.Timeout:
                    c.timeouts += 1

    def _surveyor_sync(self, sock: Any) -> None:
        import purenng

        rec = self.rec
        c, g = rec.counter("survey"), rec.generation("survey")
        pace = Pacer(self._rate("survey"), g.gen, 1500)
        while not self.tx_stop:
            time.sleep(pace.delay())
            seq = g.sent
            msg = make(b"sv", g.gen, seq, pace.size())
            sock.send(msg)
            self._sent(c, g, len(msg))
            got = 0
            while True:
                try:
                    data = sock.recv()
                except purenng.Timeout:
                    break
                got += self._response(c, g, seq, data)
            if not got:
                c.missing += 1

    def _response(self, c: Counter, g: Generation, seq: int, data: bytes) -> int:
        try:
            topic, gen, rseq = check(data)
            if (topic, gen) != (b"sr", g.gen):
                raise Corrupt(f"response {topic!r} {gen:08x} to a survey of {g.gen:08x}")
        except Corrupt as e:
            c.corrupt += 1
            self.rec.event("corrupt", stream="survey", error=str(e))
            return 0
        if rseq != seq:
            c.other += 1  # an answer to an earlier survey: the core drops those
            return 0
        c.recv += 1
        c.recv_bytes += len(data)
        return 1

    def _respondent_sync(self, sock: Any) -> None:
        import purenng

        c = self.rec.counter("survey")
        while not self.closing:
            try:
                data = sock.recv()
            except purenng.Timeout:
                continue
            reply = self._answer(c, data, b"sv", b"sr")
            if reply is not None:
                try:
                    sock.send(reply)
                except purenng.Timeout:
                    c.timeouts += 1

    # -- asyncio workers ------------------------------------------------------

    async def _tx_async(self, sock: Any, stream: str, topic: bytes) -> None:
        import purenng

        rec = self.rec
        c, g = rec.counter(stream), rec.generation(stream)
        other = rec.counter(stream) if stream == "pub" else None
        pace = Pacer(self._rate(stream), g.gen, self.cfg.max_size)
        try:
            while not self.tx_stop:
                await asyncio.sleep(pace.delay())
                seq = self._next_seq(g)
                size = pace.size()
                msg = make(topic, g.gen, seq, size)
                try:
                    await sock.asend(msg)
                except purenng.Timeout:
                    c.timeouts += 1
                    continue
                self._sent(c, g, len(msg))
                if other is not None:
                    await sock.asend(make(_TOPIC_OTHER, g.gen, seq, size))
                    other.other += 1
        finally:
            self.finals.append(g)

    async def _rx_async(self, sock: Any, stream: str, topic: bytes) -> None:
        import purenng

        chk = Checker(self.rec, self.rec.counter(stream), topic)
        while not self.closing:
            try:
                data = await sock.arecv()
            except purenng.Timeout:
                continue
            chk.take(data)

    async def _req_async(self, ctx: Any) -> None:
        import purenng

        rec = self.rec
        c, g = rec.counter("req"), rec.generation("req")
        pace = Pacer(self._rate("req"), g.gen, self.cfg.max_size)
        try:
            while not self.tx_stop:
                await asyncio.sleep(pace.delay())
                seq = g.sent
                msg = make(b"rq", g.gen, seq, pace.size())
                try:
                    await ctx.asend(msg)
                except purenng.Timeout:
                    c.timeouts += 1
                    continue
                self._sent(c, g, len(msg))
                try:
                    reply = await ctx.arecv()
                except purenng.Timeout:
                    c.missing += 1  # no reply after every resend: lost
                    rec.event("req_timeout", stream="req", gen=g.gen, seq=seq)
                    continue
                self._reply(c, g, seq, reply)
        finally:
            self.finals.append(g)

    async def _rep_async(self, ctx: Any) -> None:
        import purenng

        c = self.rec.counter("req")
        while not self.closing:
            try:
                data = await ctx.arecv()
            except purenng.Timeout:
                continue
            reply = self._answer(c, data, b"rq", b"rp")
            if reply is not None:
                try:
                    await ctx.asend(reply)
                except purenng.Timeout:
                    c.timeouts += 1

    async def _surveyor_async(self, sock: Any) -> None:
        import purenng

        rec = self.rec
        c, g = rec.counter("survey"), rec.generation("survey")
        pace = Pacer(self._rate("survey"), g.gen, 1500)
        while not self.tx_stop:
            await asyncio.sleep(pace.delay())
            seq = g.sent
            msg = make(b"sv", g.gen, seq, pace.size())
            await sock.asend(msg)
            self._sent(c, g, len(msg))
            got = 0
            while True:
                try:
                    data = await sock.arecv()
                except purenng.Timeout:
                    break
                got += self._response(c, g, seq, data)
            if not got:
                c.missing += 1

    async def _respondent_async(self, sock: Any) -> None:
        import purenng

        c = self.rec.counter("survey")
        while not self.closing:
            try:
                data = await sock.arecv()
            except purenng.Timeout:
                continue
            reply = self._answer(c, data, b"sv", b"sr")
            if reply is not None:
                try:
                    await sock.asend(reply)
                except purenng.Timeout:
                    c.timeouts += 1


# ---------------------------------------------------------------- the child


def _say(word: str, obj: dict[str, Any]) -> None:
    sys.stdout.write(f"{word} {json.dumps(obj, separators=(',', ':'))}\n")
    sys.stdout.flush()


@dataclass
class Child:
    """The sides of one child process and the runner's commands to them."""

    cfg: Config
    sides: dict[str, Side]
    incs: dict[str, int] = field(default_factory=dict)

    def stat(self) -> dict[str, Any]:
        return {"t": round(time.time(), 3), "sides": [s.rec.report() for s in self.sides.values()]}

    def final(self) -> dict[str, Any]:
        return {
            "t": round(time.time(), 3),
            "finals": [
                {"side": s.side, "inc": s.rec.inc, **vars(g)}
                for s in self.sides.values()
                for g in s.finals
                if g.stream in RELIABLE_STREAMS
            ],
        }

    # -- blocking API: the main thread reads commands, workers are threads

    def run_sync(self) -> int:
        for s in self.sides.values():
            s.open_sync()
        _say("READY", {"pid": os.getpid()})
        fd = sys.stdin.fileno()
        buf = b""
        next_stat = time.monotonic() + self.cfg.stat
        while True:
            left = max(0.0, next_stat - time.monotonic())
            ready, _, _ = select.select([fd], [], [], left)
            if ready:
                chunk = os.read(fd, 4096)
                buf += chunk if chunk else b"\nEXIT\n"
                while b"\n" in buf:
                    line, buf = buf.split(b"\n", 1)
                    if self._command_sync(line.decode().strip()):
                        return 0
            if time.monotonic() >= next_stat:
                _say("STAT", self.stat())
                next_stat += self.cfg.stat

    def _command_sync(self, cmd: str) -> bool:
        if cmd == "DIALERS" and "B" in self.sides:
            self.sides["B"].redial_sync()
        elif cmd == "RESTART" and "B" in self.sides:
            old = self.sides["B"]
            _say("STAT", self.stat())  # the old side's last counts
            old.close_sync()
            _say("STAT", self.stat())
            new = Side(self.cfg, "B", old.rec.inc + 1)
            self.sides["B"] = new
            new.open_sync()
        elif cmd == "STOP":
            for s in self.sides.values():
                s.tx_stop = True
            for s in self.sides.values():
                for t in s.threads:
                    if t.name.startswith(f"{s.side}-") and _is_sender(t.name):
                        t.join(timeout=self.cfg.req_timeout + 5)
            _say("STAT", self.stat())
            _say("FINAL", self.final())
        elif cmd == "EXIT":
            _say("STAT", self.stat())
            for s in self.sides.values():
                s.close_sync()
            _say("STAT", self.stat())
            _say("BYE", {})
            return True
        return False

    # -- asyncio API: everything on the child's own loop

    async def run_async(self) -> int:
        for s in self.sides.values():
            await s.open_async()
        _say("READY", {"pid": os.getpid()})
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader()
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
        next_stat = loop.time() + self.cfg.stat
        while True:
            try:
                line = await asyncio.wait_for(
                    reader.readline(), timeout=max(0.0, next_stat - loop.time())
                )
            except TimeoutError:
                line = None
            if line is not None:
                cmd = line.decode().strip() if line else "EXIT"
                if await self._command_async(cmd):
                    return 0
            if loop.time() >= next_stat:
                _say("STAT", self.stat())
                next_stat += self.cfg.stat

    async def _command_async(self, cmd: str) -> bool:
        if cmd == "DIALERS" and "B" in self.sides:
            await self.sides["B"].redial_async()
        elif cmd == "RESTART" and "B" in self.sides:
            old = self.sides["B"]
            _say("STAT", self.stat())
            await old.close_async()
            _say("STAT", self.stat())
            new = Side(self.cfg, "B", old.rec.inc + 1)
            self.sides["B"] = new
            await new.open_async()
        elif cmd == "STOP":
            for s in self.sides.values():
                s.tx_stop = True
            senders = [t for s in self.sides.values() for t in s.tasks if _is_sender(t.get_name())]
            if senders:
                await asyncio.wait(senders, timeout=self.cfg.req_timeout + 5)
            _say("STAT", self.stat())
            _say("FINAL", self.final())
        elif cmd == "EXIT":
            _say("STAT", self.stat())
            for s in self.sides.values():
                await s.close_async()
            _say("STAT", self.stat())
            _say("BYE", {})
            return True
        return False


def _is_sender(worker: str) -> bool:
    """Workers that end by themselves once ``tx_stop`` is set (senders, REQ, SURVEYOR)."""
    name = worker.partition("-")[2]
    return name in ("push", "pub", "surveyor") or name.startswith("req") or name.endswith("-tx")


def _parse(argv: list[str] | None) -> tuple[Config, str, int]:
    p = argparse.ArgumentParser(prog="purenng.soak.traffic")
    p.add_argument("--transport", required=True)
    p.add_argument("--side", choices=("A", "B", "AB"), required=True)
    p.add_argument("--inc", type=int, default=1)
    p.add_argument("--urls", required=True, help="JSON object: pattern -> URL")
    p.add_argument("--api", choices=("sync", "async"), default="sync")
    p.add_argument("--loop", choices=("asyncio", "uvloop"), default="asyncio")
    p.add_argument("--rate", type=float, default=1.0)
    p.add_argument("--req-contexts", type=int, default=2)
    p.add_argument("--req-timeout", type=float, default=30.0)
    p.add_argument("--stat", type=float, default=2.0)
    p.add_argument("--tls-dir")
    p.add_argument("--max-size", type=int, default=SIZES[-1][0])
    p.add_argument("--inject-loss", type=int, default=0)
    p.add_argument("--patterns", default=",".join(PATTERNS))
    a = p.parse_args(argv)
    cfg = Config(
        transport=a.transport,
        urls=json.loads(a.urls),
        api=a.api,
        loop=a.loop,
        rate=a.rate,
        req_contexts=a.req_contexts,
        req_timeout=a.req_timeout,
        stat=a.stat,
        tls_dir=a.tls_dir,
        max_size=a.max_size,
        inject_loss=a.inject_loss,
        patterns=tuple(x for x in a.patterns.split(",") if x),
    )
    return cfg, a.side, a.inc


def main(argv: list[str] | None = None) -> int:
    """Run one traffic child until the runner says ``EXIT`` (or stdin ends)."""
    cfg, side, inc = _parse(argv)
    child = Child(cfg, {s: Side(cfg, s, inc) for s in side})
    if cfg.api == "sync":
        return child.run_sync()

    from purenng.bench.proc import run_on_loop

    return run_on_loop(child.run_async(), cfg.loop)


if __name__ == "__main__":
    sys.exit(main())
