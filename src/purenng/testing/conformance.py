"""The transport conformance kit: one call that every transport runs on itself.

A transport, built-in or third-party, proves it behaves like the others by
passing :func:`check_transport` on a listen URL of its own::

    from purenng.testing import check_transport

    async def test_conformance():
        await check_transport("foo://127.0.0.1:0")

Rules:

* Every check is a named coroutine run with fresh PAIR v0 sockets (the
  simplest protocol that sends both ways), under its own timeout, and closes
  everything it opened whether it passes or not.
* A failure raises :class:`ConformanceError`, an ``AssertionError`` that
  names the check (``"many_in_order"``...), the URL and the step that failed,
  so a red test says what is wrong without reading the kit.
* Checks about the byte-stream framing (``over_recv_max_size``,
  ``bad_frames``) run only for stream transports: message transports such as
  inproc carry Python objects and ignore ``recv_max_size``, as NNG's inproc
  does.  Whether a transport is a stream transport is read from the
  registry unless ``stream=`` says so.
* Checks the kit cannot run on a transport (``bad_frames`` needs an address
  Python's :mod:`socket` can connect to) are reported as skipped, not passed.
* The listen URL is reused by every check, so a transport must release its
  address when a listener is closed (ipc must remove its socket file).

The checks, in order: ``listen_url_readback``, ``exchange``,
``dialer_sends_first``, ``listener_sends_first``, ``many_in_order``,
``large_message``, ``at_recv_max_size``, ``over_recv_max_size``,
``close_while_busy``, ``peer_vanishes``, ``bad_frames``, ``pipe_addresses``.

Theory of operation: this is the shape of mangos' shared transport suite
(``internal/test/transport.go``) and of trio's public stream checks: the kit
drives the transport only through the public socket API, so it tests what
users get, and the transport's own tests keep its edge cases.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import socket as pysocket
import struct
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..core.errors import Closed
from ..core.pipe import PipeEvent
from ..core.registry import get_registry
from ..core.socket_classes import Pair0
from ..core.sp_codec import HANDSHAKE_SIZE, IPC_MSG_TYPE, encode_handshake
from ..core.transport import StreamTransport
from ..core.url import parse_url

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Collection, Coroutine

    from ..core.endpoint import Listener
    from ..core.socket import Socket

__all__ = [
    "CHECKS",
    "ConformanceError",
    "ConformanceReport",
    "check_pipe_transport",
    "check_stream_transport",
    "check_transport",
    "check_transport_sync",
]

#: Seconds each check may take before it fails (generous: only stops hangs).
DEFAULT_TIMEOUT = 10.0
#: Messages sent each way by ``many_in_order``.
MANY = 1000
#: Size of the message sent by ``large_message``.
LARGE = 1 << 20
#: ``recv_max_size`` used by ``at_recv_max_size`` and ``over_recv_max_size``:
#: above the adapter's 64 KiB big-body threshold, so both receive paths count.
LIMIT = 100_000
#: PAIR v0's protocol number, sent in a raw connection's SP header.
_PAIR0 = 0x10
#: A length with reserved bits set (wire-protocols.md §2.1: at most 2**60 - 1).
_BAD_LENGTH = 0xF000_0000_0000_0001
#: How often waits on a condition look again.
_POLL = 0.005


class ConformanceError(AssertionError):
    """A transport failed one check of the kit.

    Attributes:
        check: The check's name, e.g. ``"many_in_order"``.
        url: The listen URL under test.
        detail: What went wrong, including the step that was running.
    """

    def __init__(self, check: str, url: str, detail: str) -> None:
        self.check = check
        self.url = url
        self.detail = detail
        super().__init__(f"transport check {check!r} failed for {url}: {detail}")


class _Skip(Exception):
    """Raised by a check that cannot run on this transport."""


@dataclass
class ConformanceReport:
    """What :func:`check_transport` did.

    Attributes:
        url: The listen URL under test.
        stream: Whether it was checked as a stream transport.
        passed: Names of the checks that passed, in order.
        skipped: Checks not run, with the reason.
    """

    url: str
    stream: bool
    passed: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)


@dataclass
class _Ctx:
    url: str
    scheme: str
    stream: bool
    ipc_framing: bool
    options: dict[str, Any]
    stack: contextlib.AsyncExitStack
    step: str = "starting"

    async def socket(self, **options: Any) -> Socket:
        """A PAIR v0 socket on this loop, closed when the check ends."""
        sock = Pair0(**{**self.options, **options})
        self.stack.push_async_callback(sock.aclose)
        return sock

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        """A task cancelled (and awaited) when the check ends."""
        task = asyncio.get_running_loop().create_task(coro)

        async def stop() -> None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

        self.stack.push_async_callback(stop)
        return task

    async def until(self, what: str, cond: Callable[[], bool]) -> None:
        """Poll ``cond`` until it holds (the check's timeout bounds the wait)."""
        self.step = f"waiting for {what}"
        # Polling: these conditions span sockets, pipes and counters that
        # share no event to wait on.
        while not cond():  # noqa: ASYNC110
            await asyncio.sleep(_POLL)

    async def listen(self, **options: Any) -> tuple[Socket, Listener]:
        self.step = f"listening on {self.url}"
        a = await self.socket(**options)
        lst = await a.alisten(self.url)
        return a, lst

    async def connect(
        self, listen_options: dict[str, Any] | None = None, **dial_options: Any
    ) -> tuple[Socket, Listener, Socket]:
        """A listening socket and a socket dialed to it, both with their pipe."""
        a, lst = await self.listen(**(listen_options or {}))
        b = await self.dial(lst, **dial_options)
        await self.until("the listener's pipe", lambda: len(a.pipes) == 1)
        return a, lst, b

    async def dial(self, lst: Listener, **options: Any) -> Socket:
        self.step = f"dialing {lst.url}"
        b = await self.socket(**options)
        await b.adial(lst.url, block=True)
        return b

    async def transfer(self, src: Socket, dst: Socket, data: bytes, what: str) -> None:
        """Send ``data`` from ``src`` and require ``dst`` to receive it intact."""
        self.step = f"sending {what} ({len(data)} bytes)"
        await src.asend(data)
        self.step = f"receiving {what} ({len(data)} bytes)"
        msg = await dst.arecv_msg()
        got = msg.bytes
        if got != data:
            raise AssertionError(f"{what}: sent {_show(data)}, received {_show(got)}")
        if msg.pipe is None or msg.pipe not in dst.pipes:
            raise AssertionError(f"{what}: Message.pipe is {msg.pipe!r}, not a live pipe")

    async def ping_pong(self, a: Socket, b: Socket, tag: str) -> None:
        await self.transfer(
            b, a, f"{tag}: dialer to listener".encode(), f"{tag} (dialer->listener)"
        )
        await self.transfer(
            a, b, f"{tag}: listener to dialer".encode(), f"{tag} (listener->dialer)"
        )


def _show(data: bytes) -> str:
    return repr(data) if len(data) <= 40 else f"{len(data)} bytes starting {data[:16]!r}"


def _payload(n: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(n)


# ---------------------------------------------------------------- the checks


async def _check_listen_url_readback(ctx: _Ctx) -> None:
    """``listener.url`` names the bound address (port 0 replaced) and is dialable."""
    a, lst = await ctx.listen()
    ctx.step = f"reading back listener.url {lst.url!r}"
    got = parse_url(lst.url)
    if got.scheme != ctx.scheme:
        raise AssertionError(f"listener.url {lst.url!r} changed the scheme {ctx.scheme!r}")
    if ctx.url.endswith(":0"):
        if lst.url.endswith(":0"):
            raise AssertionError(f"listener.url {lst.url!r} still has port 0")
        port = lst.port
        if not port or not lst.url.endswith(f":{port}"):
            raise AssertionError(f"listener.port {port!r} does not match listener.url {lst.url!r}")
    b = await ctx.dial(lst)
    await ctx.until("the listener's pipe", lambda: len(a.pipes) == 1)
    await ctx.ping_pong(a, b, "readback")


async def _check_exchange(ctx: _Ctx) -> None:
    """One message each way over a fresh connection."""
    a, _, b = await ctx.connect()
    await ctx.ping_pong(a, b, "exchange")


async def _check_dialer_sends_first(ctx: _Ctx) -> None:
    """A send started before the dial completes arrives once connected."""
    a, lst = await ctx.listen()
    b = await ctx.socket()
    sent = ctx.spawn(b.asend(b"dialer first"))
    ctx.step = f"dialing {lst.url} in the background"
    await b.adial(lst.url, block=False)
    ctx.step = "receiving the dialer's first message"
    got = await a.arecv()
    if got != b"dialer first":
        raise AssertionError(f"listener received {_show(got)}")
    await sent
    await ctx.transfer(a, b, b"listener reply", "the listener's reply")


async def _check_listener_sends_first(ctx: _Ctx) -> None:
    """A send started on the listener before anyone dials arrives once connected."""
    a, lst = await ctx.listen()
    sent = ctx.spawn(a.asend(b"listener first"))
    b = await ctx.dial(lst)
    ctx.step = "receiving the listener's first message"
    got = await b.arecv()
    if got != b"listener first":
        raise AssertionError(f"dialer received {_show(got)}")
    await sent
    await ctx.transfer(b, a, b"dialer reply", "the dialer's reply")


async def _stream_of(ctx: _Ctx, src: Socket, dst: Socket, direction: str) -> None:
    async def send_all() -> None:
        for i in range(MANY):
            await src.asend(b"%d" % i)

    sender = ctx.spawn(send_all())
    for i in range(MANY):
        ctx.step = f"receiving message {i} of {MANY} ({direction})"
        got = await dst.arecv()
        if got != b"%d" % i:
            raise AssertionError(f"{direction}: message {i} of {MANY} is {_show(got)}")
    await sender


async def _check_many_in_order(ctx: _Ctx) -> None:
    """A thousand messages each way, none lost, duplicated or reordered."""
    a, _, b = await ctx.connect()
    await _stream_of(ctx, b, a, "dialer->listener")
    await _stream_of(ctx, a, b, "listener->dialer")


async def _check_large_message(ctx: _Ctx) -> None:
    """A 1 MiB message each way, with ``recv_max_size`` raised above it."""
    size = {"recv_max_size": 4 * LARGE}
    a, _, b = await ctx.connect(size, **size)
    await ctx.transfer(b, a, _payload(LARGE, 1), "1 MiB (dialer->listener)")
    await ctx.transfer(a, b, _payload(LARGE, 2), "1 MiB (listener->dialer)")


async def _check_at_recv_max_size(ctx: _Ctx) -> None:
    """A message of exactly ``recv_max_size`` bytes is accepted."""
    size = {"recv_max_size": LIMIT}
    a, _, b = await ctx.connect(size, **size)
    await ctx.transfer(b, a, _payload(LIMIT, 3), "recv_max_size bytes (dialer->listener)")
    await ctx.transfer(a, b, _payload(LIMIT, 4), "recv_max_size bytes (listener->dialer)")


async def _check_over_recv_max_size(ctx: _Ctx) -> None:
    """One byte over ``recv_max_size`` closes that pipe only; the socket lives on."""
    events: list[tuple[PipeEvent, int]] = []
    a, _, b = await ctx.connect({"recv_max_size": LIMIT}, reconnect_time_min=0.05)
    b.on_pipe_event(lambda p, e: events.append((e, p.id)))
    first = b.pipes[0].id
    ctx.step = "sending recv_max_size + 1 bytes"
    await b.asend(_payload(LIMIT + 1, 5))
    await ctx.until("stats()['oversize'] == 1 on the listener", lambda: a.stats()["oversize"] == 1)
    await ctx.until(
        "the dialer to lose its pipe and redial",
        lambda: (
            (PipeEvent.REMOVE_POST, first) in events
            and any(e is PipeEvent.ADD_POST and pid != first for e, pid in events)
        ),
    )
    await ctx.until("the listener's new pipe", lambda: len(a.pipes) == 1)
    # The oversized message must not have been delivered: the next one is this.
    await ctx.ping_pong(a, b, "after an oversized message")
    if a.stats()["oversize"] != 1:
        raise AssertionError(f"stats()['oversize'] is {a.stats()['oversize']}, expected 1")


async def _close_one_side(ctx: _Ctx, closing: str) -> None:
    a, _, b = await ctx.connect()
    closer, survivor = (a, b) if closing == "listener" else (b, a)
    gone = asyncio.Event()
    survivor.on_pipe_event(lambda p, e: gone.set(), PipeEvent.REMOVE_POST)
    blocked = ctx.spawn(closer.arecv())
    waiting = ctx.spawn(survivor.arecv())
    await asyncio.sleep(0)  # let both receives start and block
    if blocked.done() or waiting.done():
        raise AssertionError("arecv returned although nothing was sent")
    ctx.step = f"closing the {closing} socket while it is blocked in arecv"
    await closer.aclose()
    ctx.step = f"waiting for the blocked arecv on the closed {closing} to fail"
    try:
        got = await blocked
    except Closed:
        pass
    else:
        raise AssertionError(f"arecv on the closed {closing} returned {_show(got)}")
    ctx.step = f"waiting for the peer of the closed {closing} to see REMOVE_POST"
    await gone.wait()
    await ctx.until(f"the {closing}'s peer to have no pipe", lambda: not survivor.pipes)
    if waiting.done():
        raise AssertionError(f"the open peer's arecv ended: {waiting.exception()!r}")
    waiting.cancel()
    # The survivor may be a dialer that keeps redialing this URL: close it
    # before the next round listens there again.
    await survivor.aclose()


async def _check_close_while_busy(ctx: _Ctx) -> None:
    """Closing a socket fails its blocked ``arecv`` with Closed; the peer loses its pipe."""
    await _close_one_side(ctx, "listener")
    await _close_one_side(ctx, "dialer")


async def _check_peer_vanishes(ctx: _Ctx) -> None:
    """When the dialer goes away the listener drops its pipe and takes a new dialer."""
    a, lst, b = await ctx.connect()
    await ctx.ping_pong(a, b, "before the dialer closes")
    ctx.step = "closing the dialer socket"
    await b.aclose()
    await ctx.until("the listener to drop the pipe of the closed dialer", lambda: not a.pipes)
    c = await ctx.dial(lst)
    await ctx.until("the listener's pipe to the new dialer", lambda: len(a.pipes) == 1)
    await ctx.ping_pong(a, c, "with a new dialer")


def _raw_address(lst: Listener) -> tuple[int, Any]:
    """The family and address Python's socket module connects to for ``lst``."""
    addr = lst.local_address
    if isinstance(addr, tuple) and len(addr) in (2, 4) and isinstance(addr[1], int):
        family = pysocket.AF_INET if len(addr) == 2 else pysocket.AF_INET6
        host = addr[0]
        if host in ("0.0.0.0", ""):
            host = "127.0.0.1"
        elif host == "::":
            host = "::1"
        return family, (host, *addr[1:])
    if isinstance(addr, str | bytes) and addr and hasattr(pysocket, "AF_UNIX"):
        return pysocket.AF_UNIX, addr
    raise _Skip(f"listener.local_address {addr!r} is not an address the socket module can use")


async def _read_until_eof(loop: asyncio.AbstractEventLoop, raw: pysocket.socket) -> None:
    while True:
        try:
            data = await loop.sock_recv(raw, 65536)
        except (ConnectionResetError, BrokenPipeError):
            return
        if not data:
            return


async def _check_bad_frames(ctx: _Ctx) -> None:
    """A length with reserved bits set closes that connection; the listener lives on."""
    a, lst = await ctx.listen()
    family, address = _raw_address(lst)
    loop = asyncio.get_running_loop()
    raw = pysocket.socket(family, pysocket.SOCK_STREAM)
    ctx.stack.callback(raw.close)
    raw.setblocking(False)
    ctx.step = f"connecting a raw socket to {address!r}"
    await loop.sock_connect(raw, address)
    ctx.step = "reading the listener's SP header"
    header = b""
    while len(header) < HANDSHAKE_SIZE:
        chunk = await loop.sock_recv(raw, HANDSHAKE_SIZE - len(header))
        if not chunk:
            raise AssertionError(f"connection closed after {len(header)} header bytes")
        header += chunk
    if header != encode_handshake(_PAIR0):
        raise AssertionError(f"listener sent SP header {header!r}")
    await loop.sock_sendall(raw, encode_handshake(_PAIR0))
    await ctx.until("the listener to accept the raw connection as a pipe", lambda: bool(a.pipes))
    if ctx.ipc_framing:
        prefix = struct.pack(">BQ", IPC_MSG_TYPE, _BAD_LENGTH)
    else:
        prefix = struct.pack(">Q", _BAD_LENGTH)
    ctx.step = "sending a length with reserved bits set"
    await loop.sock_sendall(raw, prefix + b"garbage")
    ctx.step = "waiting for the listener to close the raw connection"
    await _read_until_eof(loop, raw)
    await ctx.until("the listener to drop the bad pipe", lambda: not a.pipes)
    b = await ctx.dial(lst)
    await ctx.until("the listener's pipe to a good dialer", lambda: len(a.pipes) == 1)
    await ctx.ping_pong(a, b, "after a bad frame")


async def _check_pipe_addresses(ctx: _Ctx) -> None:
    """Pipes report their transport and, for stream transports, both addresses."""
    a, lst, b = await ctx.connect()
    pa, pb = a.pipes[0], b.pipes[0]
    ctx.step = "reading the pipes' transport and addresses"
    for side, pipe in (("listener", pa), ("dialer", pb)):
        if pipe.transport != ctx.scheme:
            raise AssertionError(f"{side} pipe.transport is {pipe.transport!r}")
        local, remote = pipe.local_address, pipe.remote_address
        if ctx.stream and (local is None or remote is None):
            raise AssertionError(f"{side} pipe: local_address={local!r}, remote_address={remote!r}")
    if isinstance(pa.local_address, tuple) and isinstance(pb.remote_address, tuple):
        port = lst.port
        if not (pa.local_address[1] == pb.remote_address[1] == port):
            raise AssertionError(
                f"listener port {port}: listener pipe local {pa.local_address!r}, "
                f"dialer pipe remote {pb.remote_address!r}"
            )
        if pa.remote_address[1] != pb.local_address[1]:
            raise AssertionError(
                f"listener pipe remote {pa.remote_address!r} is not "
                f"dialer pipe local {pb.local_address!r}"
            )


_Check = tuple[str, "Callable[[_Ctx], Awaitable[None]]", bool]

_CHECKS: tuple[_Check, ...] = (
    ("listen_url_readback", _check_listen_url_readback, False),
    ("exchange", _check_exchange, False),
    ("dialer_sends_first", _check_dialer_sends_first, False),
    ("listener_sends_first", _check_listener_sends_first, False),
    ("many_in_order", _check_many_in_order, False),
    ("large_message", _check_large_message, False),
    ("at_recv_max_size", _check_at_recv_max_size, False),
    ("over_recv_max_size", _check_over_recv_max_size, True),
    ("close_while_busy", _check_close_while_busy, False),
    ("peer_vanishes", _check_peer_vanishes, False),
    ("bad_frames", _check_bad_frames, True),
    ("pipe_addresses", _check_pipe_addresses, False),
)

#: The names of the checks, in the order they run.
CHECKS: tuple[str, ...] = tuple(name for name, _, _ in _CHECKS)


async def check_transport(
    listen_url: str,
    *,
    stream: bool | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    skip: Collection[str] = (),
    **socket_options: Any,
) -> ConformanceReport:
    """Run the conformance checks against the transport of ``listen_url``.

    Call it on a running loop (any test's loop will do); the sockets it makes
    live there.  Checks run one after another and stop at the first failure.

    Args:
        listen_url: A URL the transport can listen on repeatedly; use port 0
            for tcp-like transports.
        stream: Check as a stream transport (True) or a message transport
            (False); None asks the registry.
        timeout: Seconds each check may take.
        skip: Names from :data:`CHECKS` not to run (reported as skipped).
        **socket_options: Options for every socket the kit makes (e.g. TLS
            settings); checks that need ``recv_max_size`` override it.

    Returns:
        What passed and what was skipped.

    Raises:
        ConformanceError: a check failed; it names the check.
        PluginError: the scheme's plugin is missing or broken.
        ValueError: ``skip`` names an unknown check.
    """
    unknown = set(skip) - set(CHECKS)
    if unknown:
        raise ValueError(f"unknown checks {sorted(unknown)}; known: {', '.join(CHECKS)}")
    url = parse_url(listen_url)
    transport = get_registry().transport(url.scheme)
    is_stream = isinstance(transport, StreamTransport) if stream is None else stream
    ipc_framing = bool(getattr(transport, "ipc_framing", False))
    report = ConformanceReport(listen_url, is_stream)
    for name, check, stream_only in _CHECKS:
        if name in skip:
            report.skipped[name] = "skipped by the caller"
            continue
        if stream_only and not is_stream:
            report.skipped[name] = "stream transports only"
            continue
        stack = contextlib.AsyncExitStack()
        ctx = _Ctx(listen_url, url.scheme, is_stream, ipc_framing, socket_options, stack)
        deadline = asyncio.timeout(timeout)
        try:
            async with deadline, stack:
                await check(ctx)
        except _Skip as exc:
            report.skipped[name] = str(exc)
            continue
        except TimeoutError as exc:
            if deadline.expired():
                detail = f"timed out after {timeout:g} s {ctx.step}"
                raise ConformanceError(name, listen_url, detail) from exc
            raise ConformanceError(name, listen_url, f"{exc!r} while {ctx.step}") from exc
        except Exception as exc:
            detail = f"{type(exc).__name__}: {exc} (while {ctx.step})"
            raise ConformanceError(name, listen_url, detail) from exc
        report.passed.append(name)
    return report


def check_transport_sync(
    listen_url: str,
    *,
    stream: bool | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    skip: Collection[str] = (),
    **socket_options: Any,
) -> ConformanceReport:
    """:func:`check_transport` for code without a loop: runs it on a new one.

    Call it from a thread with no running asyncio loop (a plain test function).

    Raises:
        ConformanceError: a check failed; it names the check.
        RuntimeError: a loop is already running in this thread.
    """
    return asyncio.run(
        check_transport(listen_url, stream=stream, timeout=timeout, skip=skip, **socket_options)
    )


def check_stream_transport(listen_url: str, **kwargs: Any) -> ConformanceReport:
    """:func:`check_transport_sync` for a stream transport (tcp-like).

    The one-line conformance test of a third-party stream transport::

        def test_conformance():
            check_stream_transport("foo://127.0.0.1:0")
    """
    return check_transport_sync(listen_url, stream=True, **kwargs)


def check_pipe_transport(listen_url: str, **kwargs: Any) -> ConformanceReport:
    """:func:`check_transport_sync` for a message transport (inproc-like)."""
    return check_transport_sync(listen_url, stream=False, **kwargs)
