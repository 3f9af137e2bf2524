"""A byte-stream proxy that injects faults between two peers, for tests.

:class:`FaultProxy` listens on ``tcp://127.0.0.1:0`` (or an ``ipc://``
path), and for every connection it accepts it opens one to the *target*
(the real listener: purenng, pynng, nng, nngcat...) and forwards bytes both
ways.  Between the two it can, per direction and switchable at run time:

* **delay** every chunk by a fixed time (latency, order kept);
* **split** every chunk into pieces of 1..N bytes drawn from a seeded RNG,
  each written on its own (the byte stream is unchanged, only where the
  receiver's reads end moves);
* **stall**: stop forwarding without closing (a half-open peer or a dead
  path: the connection stays up, nothing arrives);
* **corrupt** bytes: flip the bytes at given offsets of each connection's
  stream, or each byte with a probability, with a seeded RNG;
* **cut** every connection (close both sides, or reset them: ``SO_LINGER``
  0 makes the kernel send RST), now or once a direction has carried N bytes.

It counts what it did (:meth:`FaultProxy.stats`): connections, bytes
forwarded per direction, faults injected per kind, so that a test and its
report can show the figures.

Directions: ``"up"`` is from the side that connected to the proxy (the
dialer) to the target (the listener), ``"down"`` the reverse, ``"both"``
means both.  A fault set for a direction applies to the connections open
now and to those accepted later, until it is switched off.

Threads and loops: the proxy runs on one asyncio loop.

* ``with FaultProxy(target) as proxy`` (or :meth:`FaultProxy.start`) runs
  it on its own daemon thread (``purenng-faultproxy``, the standard asyncio
  loop), for tests of the blocking API.  The thread ends in
  :meth:`FaultProxy.close`.
* ``async with FaultProxy(target) as proxy`` (or
  :meth:`FaultProxy.astart`) runs it on the running loop, for
  pytest-asyncio tests.  Do not block that loop while the proxy must
  forward.

Every control method (:meth:`~FaultProxy.delay`, :meth:`~FaultProxy.cut`,
:meth:`~FaultProxy.stats`...) may be called from any thread: off the proxy's
loop it hands the change to the loop and waits until it is applied, so when
it returns, the fault is in force (a cut connection is closed).  Called from
a thread while the proxy's loop is blocked waiting for that thread, it
deadlocks, as any such hand-over would.

Theory of operation: each connection has, per direction, a reader task
that reads chunks (at most ``max_chunk`` bytes) into a small bounded queue
stamped with their due time (read time + delay), and a writer task that
waits for the due time and for the direction to flow, corrupts, splits and
writes the pieces, waiting after each until the kernel has taken it (the
write buffer limit is 0), so that pieces are never coalesced again in the
proxy.  The bounded queue pushes back on the sender as TCP would.  End of
file on one side is forwarded after the data before it, then the whole
connection closes (SP peers never half-close).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import math
import random
import socket
import struct
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, TypeVar

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable
    from types import TracebackType

__all__ = ["Direction", "FaultProxy", "ProxyStats"]

Direction = Literal["up", "down", "both"]
_DIRS = ("up", "down")

#: Name of the thread a proxy started with :meth:`FaultProxy.start` runs on.
THREAD_NAME = "purenng-faultproxy"
#: Seconds a control call from another thread waits for the proxy's loop.
CONTROL_TIMEOUT = 10.0
#: Seconds allowed to connect to the target.
CONNECT_TIMEOUT = 10.0
#: Chunks queued per direction before the proxy stops reading (backpressure).
QUEUE_CHUNKS = 16

#: The kinds of fault counted in :attr:`ProxyStats.faults`.
FAULT_KINDS = ("delay", "split", "stall", "corrupt", "cut", "reset")

T = TypeVar("T")


@dataclass(frozen=True)
class ProxyStats:
    """What a proxy did so far.

    Attributes:
        connections: Connections accepted.
        open: Connections open now.
        connect_failures: Accepted connections closed because the target
            refused or did not answer.
        bytes_up: Bytes forwarded from the dialer side to the target.
        bytes_down: Bytes forwarded from the target to the dialer side.
        pieces: Writes made by split directions.
        faults: Faults injected per kind: ``delay`` (chunks held back),
            ``split`` (chunks written in more than one piece), ``stall``
            (directions of a connection stopped), ``corrupt`` (bytes
            flipped), ``cut`` (connections closed by the proxy), ``reset``
            (of those, closed with RST).
    """

    connections: int = 0
    open: int = 0
    connect_failures: int = 0
    bytes_up: int = 0
    bytes_down: int = 0
    pieces: int = 0
    faults: dict[str, int] = field(default_factory=dict)

    @property
    def faults_total(self) -> int:
        """All faults injected, every kind together."""
        return sum(self.faults.values())


@dataclass
class _Faults:
    """The faults of one direction (read and written on the proxy's loop only)."""

    delay: float = 0.0
    max_piece: int = 0
    piece_pause: float = 0.0
    stalled: bool = False
    corrupt_rate: float = 0.0
    corrupt_offsets: frozenset[int] = frozenset()
    cut_after: int | None = None
    cut_rst: bool = False
    cut_times: int = 0


class _Endpoint:
    """A ``tcp://host:port`` or ``ipc://path`` address."""

    def __init__(self, address: str | tuple[str, int]) -> None:
        self.path: str | None = None
        self.host = ""
        self.port = 0
        if isinstance(address, tuple):
            self.host, self.port = address
            return
        scheme, sep, rest = address.partition("://")
        if not sep:
            raise ValueError(f"not a URL: {address!r}")
        if scheme in ("tcp", "tcp4", "tcp6"):
            host, sep, port = rest.rpartition(":")
            if not sep or not port.isdigit():
                raise ValueError(f"no port in {address!r}")
            self.host = host[1:-1] if host.startswith("[") else host
            self.port = int(port)
        elif scheme == "ipc":
            self.path = rest
        else:
            raise ValueError(f"the fault proxy speaks tcp:// and ipc://, not {address!r}")

    def url(self) -> str:
        if self.path is not None:
            return f"ipc://{self.path}"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"tcp://{host}:{self.port}"


def _nodelay(writer: asyncio.StreamWriter) -> None:
    sock = writer.get_extra_info("socket")
    if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def _linger_zero(writer: asyncio.StreamWriter) -> None:
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


class _Direction:
    """One direction of one connection: its offset, RNG and flow gate."""

    def __init__(self, name: str, rng: random.Random) -> None:
        self.name = name
        self.rng = rng
        self.offset = 0  # bytes read so far in this direction
        self.sent = 0  # bytes forwarded so far
        self.flowing = asyncio.Event()
        self.flowing.set()
        self.next_random: int | None = None  # next offset the rate-based corruption hits
        self.rate: float = 0.0


class _Conn:
    """One proxied connection."""

    def __init__(self, proxy: FaultProxy, index: int, client: asyncio.StreamWriter) -> None:
        self.proxy = proxy
        self.index = index
        self.client = client
        self.server: asyncio.StreamWriter | None = None
        self.dirs = {d: _Direction(d, random.Random(f"{proxy.seed}:{index}:{d}")) for d in _DIRS}
        self.tasks: list[asyncio.Task[None]] = []
        self.closed = False
        self.done = asyncio.Event()

    def close(self, *, rst: bool = False, cut: bool = False) -> None:
        if self.closed:
            return
        self.closed = True
        if cut:
            self.proxy._count("cut")
            if rst:
                self.proxy._count("reset")
        for w in (self.client, self.server):
            if w is None:
                continue
            if rst:
                _linger_zero(w)
                w.transport.abort()
            else:
                w.close()
        me = asyncio.current_task()
        for t in self.tasks:
            if t is not me:
                t.cancel()
        self.proxy._conns.discard(self)
        self.done.set()


class FaultProxy:
    """A tcp (or ipc) proxy that delays, splits, stalls, corrupts and cuts.

    Args:
        target: Where to forward: ``"tcp://127.0.0.1:5555"``,
            ``("127.0.0.1", 5555)`` or ``"ipc:///path"``.  May change later
            (:attr:`target`), for example when a restarted server listens
            elsewhere.
        listen: Where the proxy listens (``tcp://127.0.0.1:0`` by default;
            read the bound address from :attr:`url`).
        seed: Seeds the piece sizes and the corrupted positions, so a
            failing run can be replayed.
        max_chunk: Largest chunk read at once.

    The module docstring has the threading rules and how faults work.
    """

    def __init__(
        self,
        target: str | tuple[str, int],
        *,
        listen: str = "tcp://127.0.0.1:0",
        seed: int = 0,
        max_chunk: int = 64 * 1024,
    ) -> None:
        self._target = _Endpoint(target)
        self._listen = _Endpoint(listen)
        self.seed = seed
        self.max_chunk = max_chunk
        self._faults = {d: _Faults() for d in _DIRS}
        self._conns: set[_Conn] = set()
        self._counts: dict[str, int] = dict.fromkeys(FAULT_KINDS, 0)
        self._stats: dict[str, int] = {
            "connections": 0,
            "connect_failures": 0,
            "bytes_up": 0,
            "bytes_down": 0,
            "pieces": 0,
        }
        self._corrupt_budget: int | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: asyncio.Server | None = None
        self._closed = False

    # ------------------------------------------------------------ lifecycle

    @property
    def url(self) -> str:
        """The address to dial instead of the target (bound port included)."""
        return self._listen.url()

    @property
    def port(self) -> int:
        """The bound tcp port (0 for ipc)."""
        return self._listen.port

    @property
    def target(self) -> str:
        """Where new connections are forwarded (a URL)."""
        return self._target.url()

    @target.setter
    def target(self, value: str | tuple[str, int]) -> None:
        self._target = _Endpoint(value)

    async def astart(self) -> FaultProxy:
        """Start listening on the running loop; the proxy lives on it.

        Raises:
            OSError: the listen address cannot be bound.
            RuntimeError: already started.
        """
        if self._loop is not None:
            raise RuntimeError("the fault proxy is already started")
        self._loop = asyncio.get_running_loop()
        ep = self._listen
        if ep.path is not None:
            self._server = await asyncio.start_unix_server(self._accept, ep.path)
        else:
            self._server = await asyncio.start_server(self._accept, ep.host, ep.port)
            ep.port = self._server.sockets[0].getsockname()[1]
        return self

    def start(self) -> FaultProxy:
        """Start the proxy on its own loop thread (for blocking tests).

        Raises:
            OSError: the listen address cannot be bound.
            RuntimeError: already started.
        """
        if self._loop is not None:
            raise RuntimeError("the fault proxy is already started")
        loop = asyncio.new_event_loop()
        ready: concurrent.futures.Future[None] = concurrent.futures.Future()

        def run() -> None:
            asyncio.set_event_loop(loop)

            async def begin() -> None:
                try:
                    await self.astart()
                except BaseException as exc:
                    ready.set_exception(exc)
                    loop.stop()
                    return
                ready.set_result(None)

            starting = loop.create_task(begin())
            loop.run_forever()
            del starting
            # Closing: let cancelled tasks finish, then drop the loop.
            pending = asyncio.all_tasks(loop)
            for t in pending:
                t.cancel()
            loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

        self._thread = threading.Thread(target=run, name=THREAD_NAME, daemon=True)
        self._thread.start()
        try:
            ready.result(CONTROL_TIMEOUT)
        except BaseException:
            self._thread.join(CONTROL_TIMEOUT)
            self._thread = None
            self._loop = None
            raise
        return self

    async def aclose(self) -> None:
        """Stop listening and close every connection (on the proxy's loop)."""
        if self._closed:
            return
        self._closed = True
        if self._server is not None:
            self._server.close()
        conns = list(self._conns)
        tasks = [t for c in conns for t in c.tasks if t is not asyncio.current_task()]
        for c in conns:
            c.close()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()
        # Let the transports run their close callbacks (they release the fds).
        await asyncio.sleep(0)

    def close(self) -> None:
        """Stop the proxy from any thread: connections closed, thread ended; idempotent."""
        loop = self._loop
        if loop is None or loop.is_closed():
            self._closed = True
            return
        if self._thread is None:
            # Runs on a loop owned by someone else.
            if _on(loop):
                raise RuntimeError("close() would block the proxy's loop; use aclose()")
            fut = asyncio.run_coroutine_threadsafe(self.aclose(), loop)
            fut.result(CONTROL_TIMEOUT)
            return
        if not self._closed:
            fut = asyncio.run_coroutine_threadsafe(self.aclose(), loop)
            with contextlib.suppress(concurrent.futures.TimeoutError):
                fut.result(CONTROL_TIMEOUT)
        loop.call_soon_threadsafe(loop.stop)
        self._thread.join(CONTROL_TIMEOUT)

    def __enter__(self) -> FaultProxy:
        if self._loop is None:
            self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    async def __aenter__(self) -> FaultProxy:
        if self._loop is None:
            await self.astart()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._thread is not None:
            await _in_thread(self.close)
        else:
            await self.aclose()

    # ------------------------------------------------------------ control

    def _call(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` on the proxy's loop and return its result (any thread)."""
        loop = self._loop
        if loop is None or loop.is_closed() or _on(loop):
            return fn()
        fut: concurrent.futures.Future[T] = concurrent.futures.Future()

        def run() -> None:
            try:
                fut.set_result(fn())
            except BaseException as exc:
                fut.set_exception(exc)

        loop.call_soon_threadsafe(run)
        return fut.result(CONTROL_TIMEOUT)

    def _each(self, direction: Direction) -> list[str]:
        if direction == "both":
            return list(_DIRS)
        if direction not in _DIRS:
            raise ValueError(f"direction must be 'up', 'down' or 'both', not {direction!r}")
        return [direction]

    def delay(self, seconds: float, direction: Direction = "both") -> None:
        """Hold every chunk back ``seconds`` (0 switches it off); order is kept."""
        if seconds < 0:
            raise ValueError("delay must be >= 0")

        def apply() -> None:
            for d in self._each(direction):
                self._faults[d].delay = seconds

        self._call(apply)

    def split(self, max_piece: int, direction: Direction = "both", *, pause: float = 0.0) -> None:
        """Write every chunk as pieces of 1..``max_piece`` bytes (0 switches it off).

        Args:
            max_piece: Largest piece; sizes are drawn uniformly with the
                connection's seeded RNG.
            direction: Which way.
            pause: Seconds to wait after each piece (0: only until the
                kernel took it).
        """
        if max_piece < 0 or pause < 0:
            raise ValueError("max_piece and pause must be >= 0")

        def apply() -> None:
            for d in self._each(direction):
                self._faults[d].max_piece = max_piece
                self._faults[d].piece_pause = pause

        self._call(apply)

    def stall(self, direction: Direction = "both") -> None:
        """Stop forwarding (connections stay open) until :meth:`resume`."""

        def apply() -> None:
            for d in self._each(direction):
                self._faults[d].stalled = True
                for c in self._conns:
                    st = c.dirs[d]
                    if st.flowing.is_set():
                        st.flowing.clear()
                        self._count("stall")

        self._call(apply)

    def resume(self, direction: Direction = "both") -> None:
        """Forward again what :meth:`stall` held back."""

        def apply() -> None:
            for d in self._each(direction):
                self._faults[d].stalled = False
                for c in self._conns:
                    c.dirs[d].flowing.set()

        self._call(apply)

    def corrupt(
        self,
        *,
        offsets: Iterable[int] = (),
        rate: float = 0.0,
        direction: Direction = "both",
        limit: int | None = None,
    ) -> None:
        """Flip bytes: at ``offsets`` of each connection's stream, and/or with probability ``rate``.

        A flipped byte is XORed with a non-zero value from the seeded RNG, so
        it always changes.  Offsets count from the first byte of the
        connection in that direction (0 is the first byte of the SP header).

        Args:
            offsets: Stream offsets to flip, in every connection.
            rate: Probability that any one byte is flipped (0 switches it off).
            direction: Which way.
            limit: Stop after this many bytes were flipped (in total, every
                connection and direction together); None: no limit.
        """
        if not 0.0 <= rate <= 1.0:
            raise ValueError("rate must be between 0 and 1")
        offs = frozenset(offsets)

        def apply() -> None:
            self._corrupt_budget = limit
            for d in self._each(direction):
                f = self._faults[d]
                f.corrupt_offsets = offs
                f.corrupt_rate = rate
                for c in self._conns:
                    c.dirs[d].next_random = None

        self._call(apply)

    def cut(self, *, rst: bool = False) -> int:
        """Close every open connection now, both sides; RST instead of FIN with ``rst``.

        Returns:
            How many connections were cut.
        """

        def apply() -> int:
            conns = list(self._conns)
            for c in conns:
                c.close(rst=rst, cut=True)
            return len(conns)

        return self._call(apply)

    def cut_after(
        self, nbytes: int, direction: Direction = "up", *, rst: bool = False, times: int = 1
    ) -> None:
        """Cut a connection once it has forwarded ``nbytes`` in ``direction``.

        The bytes up to ``nbytes`` are forwarded, the rest never is, so the
        cut can fall in the middle of a message.  It fires ``times`` times
        (over all connections), then disarms itself.
        """
        if nbytes < 0 or times < 0:
            raise ValueError("nbytes and times must be >= 0")

        def apply() -> None:
            for d in self._each(direction):
                f = self._faults[d]
                f.cut_after = nbytes
                f.cut_rst = rst
                f.cut_times = times

        self._call(apply)

    def clear(self, direction: Direction = "both") -> None:
        """Switch every fault off (stalled directions resume)."""

        def apply() -> None:
            self._corrupt_budget = None
            for d in self._each(direction):
                self._faults[d] = _Faults()
                for c in self._conns:
                    c.dirs[d].flowing.set()
                    c.dirs[d].next_random = None

        self._call(apply)

    def stats(self) -> ProxyStats:
        """A snapshot of the counters."""

        def snap() -> ProxyStats:
            s = self._stats
            return ProxyStats(
                connections=s["connections"],
                open=len(self._conns),
                connect_failures=s["connect_failures"],
                bytes_up=s["bytes_up"],
                bytes_down=s["bytes_down"],
                pieces=s["pieces"],
                faults=dict(self._counts),
            )

        return self._call(snap)

    # ------------------------------------------------------------ forwarding

    def _count(self, kind: str, n: int = 1) -> None:
        self._counts[kind] += n

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._closed:
            writer.close()
            return
        self._stats["connections"] += 1
        conn = _Conn(self, self._stats["connections"], writer)
        self._conns.add(conn)
        for d in _DIRS:
            if self._faults[d].stalled:
                conn.dirs[d].flowing.clear()
                self._count("stall")
        _nodelay(writer)
        conn.tasks.append(asyncio.current_task())  # type: ignore[arg-type]
        ep = self._target
        try:
            async with asyncio.timeout(CONNECT_TIMEOUT):
                if ep.path is not None:
                    sreader, swriter = await asyncio.open_unix_connection(ep.path)
                else:
                    sreader, swriter = await asyncio.open_connection(ep.host, ep.port)
        except (OSError, TimeoutError):
            self._stats["connect_failures"] += 1
            conn.close()
            return
        except asyncio.CancelledError:
            conn.close()
            raise
        if conn.closed:
            swriter.close()
            return
        conn.server = swriter
        _nodelay(swriter)
        for w in (writer, swriter):
            w.transport.set_write_buffer_limits(high=0)
        conn.tasks.remove(asyncio.current_task())  # type: ignore[arg-type]
        loop = asyncio.get_running_loop()
        for d, src, dst in (("up", reader, swriter), ("down", sreader, writer)):
            q: asyncio.Queue[tuple[float, bytes | None]] = asyncio.Queue(QUEUE_CHUNKS)
            conn.tasks.append(loop.create_task(self._read(conn, d, src, q)))
            conn.tasks.append(loop.create_task(self._write(conn, d, dst, q)))
        await conn.done.wait()

    async def _read(
        self,
        conn: _Conn,
        d: str,
        src: asyncio.StreamReader,
        q: asyncio.Queue[tuple[float, bytes | None]],
    ) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                data = await src.read(self.max_chunk)
            except OSError:
                data = b""
            delay = self._faults[d].delay
            if data and delay > 0:
                self._count("delay")
            await q.put((loop.time() + delay, data or None))
            if not data:
                return

    async def _write(
        self,
        conn: _Conn,
        d: str,
        dst: asyncio.StreamWriter,
        q: asyncio.Queue[tuple[float, bytes | None]],
    ) -> None:
        loop = asyncio.get_running_loop()
        st = conn.dirs[d]
        try:
            while True:
                due, data = await q.get()
                await st.flowing.wait()
                wait = due - loop.time()
                if wait > 0:
                    await asyncio.sleep(wait)
                if data is None:
                    # The source closed: everything before it went out.
                    conn.close()
                    return
                buf = self._corrupted(st, data)
                st.offset += len(buf)
                await self._send(conn, st, dst, buf)
                if conn.closed:
                    return  # cut while sending, by this task (cut_after)
        except (ConnectionError, OSError):
            conn.close()

    def _corrupted(self, st: _Direction, data: bytes) -> bytes:
        f = self._faults[st.name]
        start, end = st.offset, st.offset + len(data)
        hits = [o - start for o in f.corrupt_offsets if start <= o < end]
        if f.corrupt_rate > 0:
            if st.next_random is None or st.rate != f.corrupt_rate:
                st.rate = f.corrupt_rate
                st.next_random = start + self._gap(st)
            while st.next_random < end:
                hits.append(st.next_random - start)
                st.next_random += 1 + self._gap(st)
        if not hits:
            return data
        buf = bytearray(data)
        for i in sorted(set(hits)):
            if self._corrupt_budget is not None:
                if self._corrupt_budget <= 0:
                    break
                self._corrupt_budget -= 1
            buf[i] ^= st.rng.randrange(1, 256)
            self._count("corrupt")
        if self._corrupt_budget is not None and self._corrupt_budget <= 0:
            # Used up: corruption switches itself off in both directions.
            for other in self._faults.values():
                other.corrupt_rate = 0.0
                other.corrupt_offsets = frozenset()
            self._corrupt_budget = None
        return bytes(buf)

    def _gap(self, st: _Direction) -> int:
        """Bytes until the next random corruption (geometric, seeded)."""
        p = st.rate
        if p >= 1.0:
            return 0
        u = st.rng.random()
        return int(math.log(1.0 - u) / math.log(1.0 - p))

    async def _send(
        self, conn: _Conn, st: _Direction, dst: asyncio.StreamWriter, buf: bytes
    ) -> None:
        f = self._faults[st.name]
        view = memoryview(buf)
        pos = 0
        n = len(buf)
        split = f.max_piece > 0 and n > 1
        if split and f.max_piece < n:
            self._count("split")
        while pos < n:
            await st.flowing.wait()
            if conn.closed:
                return
            size = st.rng.randint(1, f.max_piece) if f.max_piece > 0 else n - pos
            size = min(size, n - pos)
            f = self._faults[st.name]
            if f.cut_after is not None and f.cut_times > 0 and st.sent + size >= f.cut_after:
                size = f.cut_after - st.sent
                if size > 0:
                    dst.write(view[pos : pos + size])
                    self._forwarded(st, size)
                    await dst.drain()
                f.cut_times -= 1
                if f.cut_times == 0:
                    f.cut_after = None
                conn.close(rst=f.cut_rst, cut=True)
                return
            dst.write(view[pos : pos + size])
            self._forwarded(st, size)
            if f.max_piece > 0:
                self._stats["pieces"] += 1
            pos += size
            await dst.drain()
            if f.piece_pause > 0:
                await asyncio.sleep(f.piece_pause)
            elif split:
                # One loop turn per piece, so a reader on this loop sees it alone.
                await asyncio.sleep(0)

    def _forwarded(self, st: _Direction, n: int) -> None:
        st.sent += n
        self._stats["bytes_" + st.name] += n

    def __repr__(self) -> str:
        return f"<FaultProxy {self.url} -> {self.target} open={len(self._conns)}>"


def _on(loop: asyncio.AbstractEventLoop) -> bool:
    try:
        return asyncio.get_running_loop() is loop
    except RuntimeError:
        return False


async def _in_thread(fn: Callable[[], T]) -> T:
    """Run ``fn`` in a thread of its own, ended when it returns.

    Not the loop's default executor: its idle workers outlive the call.
    """
    loop = asyncio.get_running_loop()
    fut: asyncio.Future[T] = loop.create_future()

    def settle(ok: bool, value: Any) -> None:
        if not fut.done():
            if ok:
                fut.set_result(value)
            else:
                fut.set_exception(value)

    def run() -> None:
        try:
            value = fn()
        except BaseException as exc:
            loop.call_soon_threadsafe(settle, False, exc)
        else:
            loop.call_soon_threadsafe(settle, True, value)

    thread = threading.Thread(target=run, name=f"{THREAD_NAME}-close", daemon=True)
    thread.start()
    try:
        return await fut
    finally:
        thread.join(CONTROL_TIMEOUT)
