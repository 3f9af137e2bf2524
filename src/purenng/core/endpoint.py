"""Dialers and listeners: the endpoints that make pipes for a socket.

A :class:`Dialer` connects to one URL and keeps a pipe there: when the pipe
drops or a connection attempt fails it redials after ``reconnect_time_min``
seconds, doubling the delay up to ``reconnect_time_max`` when that is set
(0: no back-off, NNG's default).  A blocking dial reports the first attempt's
error to the caller and leaves nothing running; a non-blocking one retries in
the background until the dialer or socket is closed.

A :class:`Listener` binds one URL and turns each accepted connection into a
pipe.  Stream transports go through the SP adapter
(:mod:`purenng.core.sp_stream`); message transports hand over pipes.

``max_pipes`` (0: no limit, NNG has none) bounds what one listener holds:
every connection takes a slot from the moment it is accepted, through the
TLS and SP handshakes, until its pipe is gone, so a flood of connections
that never finish their handshake is bounded too.  Beyond the limit a new
connection is accepted and closed at once, before any handshake, rather
than left in the kernel's backlog: the dialer sees the close within a round
trip and applies its own redial back-off (``reconnect_time_min``/``max``),
where a listener that stopped accepting would leave it waiting out a
handshake timeout on a connection nobody serves, and would keep the
connections that gave up meanwhile for a later ``accept()``.  Refusals count
in the socket's ``pipes_rejected`` and the listener's :attr:`Listener.pipes_refused`;
the first refusal of an episode is logged as a warning, and its end (usage
back to three quarters of the limit) as one info line.

Both run on the socket's loop.  Each owns at most one task, cancelled and
awaited on close, so nothing outlives the socket.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from typing import TYPE_CHECKING, Any, Protocol

from .admission import PipeLimit
from .bridge import bridge
from .errors import Closed, ConnectionRefused, ConnectionReset, Error, ProtocolError
from .loop import run_sync
from .options import SOCKET_OPTIONS
from .pipe import PipeEvent, next_id
from .sp_stream import SPStreamPipe, start_sp_pipe
from .transport import PipeTransport, StreamTransport

if TYPE_CHECKING:
    from collections.abc import Callable

    from .admission import PipeAdmission
    from .byte_stream import ConnectionSlot, Stream, StreamListener
    from .pipe import Pipe
    from .protocol import Protocol as SPProtocol
    from .transport import PipeListener, ProtocolInfo, Transport
    from .url import URL

__all__ = ["Dialer", "EndpointOwner", "Listener"]

log: logging.Logger = logging.getLogger("purenng")


class EndpointOwner(Protocol):
    """What a dialer or listener needs of the socket it belongs to."""

    loop: asyncio.AbstractEventLoop
    protocol_cls: type[SPProtocol]
    protocol_info: ProtocolInfo
    _admission: PipeAdmission

    def _forget_dialer(self, d: Dialer) -> None: ...
    def _forget_listener(self, lst: Listener) -> None: ...
    def on_pipe_event(
        self, callback: Callable[[Pipe, PipeEvent], Any], events: Any = None
    ) -> Callable[[Pipe, PipeEvent], Any]: ...
    def remove_pipe_event(self, callback: Callable[[Pipe, PipeEvent], Any]) -> None: ...


def _off_loop(loop: asyncio.AbstractEventLoop) -> bool:
    """True when called outside ``loop`` (another thread or another loop)."""
    try:
        return asyncio.get_running_loop() is not loop
    except RuntimeError:
        return not loop.is_closed()


def _as_error(exc: BaseException) -> BaseException:
    """Map OS errors of connection attempts onto purenng errors."""
    if isinstance(exc, Error):
        return exc
    if isinstance(exc, ConnectionRefusedError | FileNotFoundError):
        err: Error = ConnectionRefused(str(exc) or "connection refused")
    elif isinstance(exc, ConnectionError):
        err = ConnectionReset(str(exc) or "connection reset")
    else:
        return exc
    err.__cause__ = exc
    return err


def _handshake_timeout(options: dict[str, Any]) -> float | None:
    """The endpoint's ``sp_handshake_timeout``; None when it is the declared default.

    None lets :func:`start_sp_pipe` apply :data:`~purenng.core.sp_stream.HANDSHAKE_TIMEOUT`,
    which tests shorten by patching the module constant.
    """
    t: float | None = options.get("sp_handshake_timeout")
    return None if t == SOCKET_OPTIONS["sp_handshake_timeout"].default else t


def _sp_pipe(
    endpoint: Dialer | Listener,
    stream: Stream,
    on_ready: Callable[[SPStreamPipe], None],
    on_failed: Callable[[SPStreamPipe], None],
) -> SPStreamPipe:
    """Start the SP handshake on a new stream of ``endpoint``: the one place pipes are made.

    Dialers and listeners of stream transports both come here, so a pipe's
    framing (ipc or not), size limit and handshake deadline always come from
    the endpoint's own options and transport.
    """
    sock = endpoint.socket
    transport = endpoint._transport
    assert isinstance(transport, StreamTransport)
    return start_sp_pipe(
        stream,
        sock.loop,
        self_id=sock.protocol_cls.self_id,
        transport_name=endpoint._url.scheme,
        on_ready=on_ready,
        on_failed=on_failed,
        recv_max_size=endpoint.options["recv_max_size"],
        ipc=transport.ipc_framing,
        handshake_timeout=_handshake_timeout(endpoint.options),
    )


class Dialer:
    """Connects a socket to one URL, and reconnects.

    Attributes:
        id: Never reused in the process.
        url: The URL as given.
        socket: The owning socket.
    """

    def __init__(
        self, sock: EndpointOwner, url: URL, transport: Transport, options: dict[str, Any]
    ) -> None:
        self.id: int = next_id()
        self.socket = sock
        self._url = url
        self._transport = transport
        self.options = options
        self.closed: bool = False
        self.pipe: Pipe | None = None
        self._task: asyncio.Task[None] | None = None
        self._pipe_gone: asyncio.Future[None] | None = None
        self._delay = options["reconnect_time_min"]
        #: The last connection error, for diagnostics.
        self.last_error: BaseException | None = None

    @property
    def url(self) -> str:
        """The URL this dialer connects to."""
        return self._url.raw

    async def start(self, block: bool) -> None:
        """Dial; with ``block`` the first attempt's failure is raised."""
        if block:
            await self._connect()
        self._task = self.socket.loop.create_task(self._run(connected=block))

    async def _connect(self) -> None:
        sock = self.socket
        loop = sock.loop
        try:
            if isinstance(self._transport, StreamTransport):
                stream = await self._transport.dial(self._url, self.options)
                done: asyncio.Future[None] = loop.create_future()

                def ready(pipe: SPStreamPipe) -> None:
                    if sock._admission.attach(pipe, dialer=self):
                        self._attached(pipe)
                        if not done.done():
                            done.set_result(None)
                    elif not done.done():
                        done.set_exception(
                            pipe.error or ProtocolError("pipe refused by the socket")
                        )

                def failed(pipe: SPStreamPipe) -> None:
                    if not done.done():
                        done.set_exception(
                            _as_error(
                                pipe.error
                                or ConnectionReset("connection closed during SP handshake")
                            )
                        )

                sp_pipe = _sp_pipe(self, stream, ready, failed)
                try:
                    await done
                except asyncio.CancelledError:
                    sp_pipe.abort()
                    raise
            elif isinstance(self._transport, PipeTransport):
                made = await self._transport.dial(self._url, self.options, sock.protocol_info)
                if not sock._admission.attach(made, dialer=self):
                    raise getattr(made, "error", None) or ProtocolError(
                        "pipe refused by the socket"
                    )
                self._attached(made)
            else:  # pragma: no cover - registry only holds the two kinds
                raise TypeError(f"{self._transport!r} is not a transport")
        except asyncio.CancelledError:
            raise
        except BaseException as exc:
            err = _as_error(exc)
            self.last_error = err
            if err is exc:
                raise
            raise err from exc
        self._delay = self.options["reconnect_time_min"]
        self.last_error = None

    def _attached(self, pipe: Pipe) -> None:
        """The socket took ``pipe``: it is this dialer's pipe from now on.

        Set at once, not when the dial coroutine resumes, because messages
        may already flow through the pipe in the same loop turn.  A pipe
        closed while it was being attached (by an ``add_post`` callback, or
        by the protocol) is lost already: the dialer redials.
        """
        gone: asyncio.Future[None] = self.socket.loop.create_future()
        self._pipe_gone = gone
        if pipe.closed:
            gone.set_result(None)
        else:
            self.pipe = pipe

    def _pipe_closed(self, pipe: Pipe) -> None:
        if self.pipe is pipe:
            self.pipe = None
            fut = self._pipe_gone
            if fut is not None and not fut.done():
                fut.set_result(None)

    async def _run(self, connected: bool) -> None:
        opts = self.options
        while not self.closed:
            if connected:
                fut = self._pipe_gone
                if fut is not None:
                    await fut
                connected = False
                if self.closed:
                    return
                await asyncio.sleep(opts["reconnect_time_min"])
                continue
            try:
                await self._connect()
            except (Error, OSError) as exc:
                log.debug("dialer %s: %s failed: %s", self.id, self.url, exc)
                await asyncio.sleep(self._delay)
                hi = opts["reconnect_time_max"]
                if hi > 0:
                    self._delay = min(self._delay * 2, hi)
                continue
            connected = True

    def close(self) -> None:
        """Stop dialing and close the dialer's pipe; idempotent, any thread."""
        if self.closed:
            return
        if _off_loop(self.socket.loop):
            run_sync(self.socket.loop, self.aclose(), "close")
            return
        self.closed = True
        if self.socket.loop.is_closed():  # nothing runs there any more: only forget
            self._forget()
            return
        task = self._task
        if task is not None and not task.done():
            task.cancel()
        if self.pipe is not None:
            self.pipe.close()
        self._forget()

    def _forget(self) -> None:
        self.socket._forget_dialer(self)

    async def aclose(self) -> None:
        """Close and wait for the dialer's task to end."""
        if _off_loop(self.socket.loop):
            await bridge(self.socket.loop, self.aclose())
            return
        self.close()
        task = self._task
        if task is not None:
            try:
                await task
            except asyncio.CancelledError:
                pass

    def __repr__(self) -> str:
        return f"<Dialer id={self.id} {self.url}{' closed' if self.closed else ''}>"


class Listener:
    """Accepts connections on one URL for a socket.

    Attributes:
        id: Never reused in the process.
        socket: The owning socket.
        pipes_refused: Connections closed at once because the listener held
            ``max_pipes`` already.
    """

    def __init__(
        self, sock: EndpointOwner, url: URL, transport: Transport, options: dict[str, Any]
    ) -> None:
        self.id: int = next_id()
        self.socket = sock
        self._url = url
        self._transport = transport
        self.options = options
        self.closed: bool = False
        self._stream_listener: StreamListener | None = None
        self._pipe_listener: PipeListener | None = None
        self._task: asyncio.Task[None] | None = None
        self._pending: set[SPStreamPipe] = set()
        self.pipes_refused = 0
        limit = options.get("max_pipes", 0)
        self._limit = PipeLimit(self, limit) if limit else None
        #: The slot of each attached pipe, given back when the pipe is removed.
        self._slots: dict[Pipe, ConnectionSlot] = {}

    async def start(self) -> None:
        """Bind the URL (errors are raised) and start accepting."""
        sock = self.socket
        if self._limit is not None:
            sock.on_pipe_event(self._pipe_removed, PipeEvent.REMOVE_POST)
        if isinstance(self._transport, StreamTransport):
            sl = await self._transport.listen(self._url, self.options)
            self._stream_listener = sl
            # Set before the loop runs again: no connection gets past it.
            sl.set_gate(self._limit)
            self._task = sock.loop.create_task(self._accept_loop())
        elif isinstance(self._transport, PipeTransport):
            self._pipe_listener = await self._transport.listen(
                self._url, self.options, sock.protocol_info, self._on_pipe
            )
        else:  # pragma: no cover
            raise TypeError(f"{self._transport!r} is not a transport")

    @property
    def pipe_count(self) -> int | None:
        """Connections held against ``max_pipes`` (handshaking or attached); None: no limit."""
        return None if self._limit is None else self._limit.used

    def _on_pipe(self, pipe: Pipe) -> None:
        if self.closed:
            pipe.close()
            return
        slot = None
        if self._limit is not None:
            slot = self._limit.admit()
            if slot is None:
                pipe.close()
                return
        self._hold(pipe, slot, self.socket._admission.attach(pipe, listener=self))

    def _hold(self, pipe: Pipe, slot: ConnectionSlot | None, attached: bool) -> None:
        """Keep ``slot`` while the attached ``pipe`` lives; give it back otherwise."""
        if slot is None:
            return
        if attached and not pipe.closed:
            self._slots[pipe] = slot
        else:
            slot.release()

    def _pipe_removed(self, pipe: Pipe, event: Any) -> None:
        slot = self._slots.pop(pipe, None)
        if slot is not None:
            slot.release()

    async def _accept_loop(self) -> None:
        sl = self._stream_listener
        assert sl is not None
        while not self.closed:
            try:
                stream = await sl.accept()
            except Closed:
                return
            except OSError as exc:  # a third-party listener's: back off instead of spinning
                log.warning("listener %s: accept failed: %s", self.url, exc)
                await asyncio.sleep(0.1)
                continue
            slot = stream.slot
            if slot is None and self._limit is not None:
                # A listener that does not apply the gate itself.
                slot = self._limit.admit()
                if slot is None:
                    stream.close()
                    continue
            if slot is None:
                on_ready, on_failed = self._ready, self._failed
            else:
                on_ready = functools.partial(self._ready, slot=slot)
                on_failed = functools.partial(self._failed, slot=slot)
            pipe = _sp_pipe(self, stream, on_ready, on_failed)
            if not pipe.closed and not pipe.ready:
                self._pending.add(pipe)
            # Held across the next wait, these would keep the last pipe (and
            # what it holds) alive after it closed, until the next accept.
            del stream, pipe, on_ready, on_failed

    def _ready(self, pipe: SPStreamPipe, slot: ConnectionSlot | None = None) -> None:
        self._pending.discard(pipe)
        if self.closed:
            pipe.close()
            if slot is not None:
                slot.release()
            return
        self._hold(pipe, slot, self.socket._admission.attach(pipe, listener=self))

    def _failed(self, pipe: SPStreamPipe, slot: ConnectionSlot | None = None) -> None:
        self._pending.discard(pipe)
        if slot is not None:
            slot.release()
        if pipe.error is not None:
            self.socket._admission.failed(pipe)

    @property
    def url(self) -> str:
        """The bound URL, with the real port when port 0 was asked for."""
        if self._stream_listener is not None:
            return self._stream_listener.url
        if self._pipe_listener is not None:
            return self._pipe_listener.url
        return self._url.raw

    @property
    def local_address(self) -> Any:
        """The bound address as the transport reports it."""
        if self._stream_listener is not None:
            return self._stream_listener.local_address
        if self._pipe_listener is not None:
            return self._pipe_listener.local_address
        return None

    @property
    def port(self) -> int | None:
        """The bound port (tcp-like transports), else None."""
        addr = self.local_address
        if isinstance(addr, tuple) and len(addr) >= 2 and isinstance(addr[1], int):
            return addr[1]
        return None

    def close(self) -> None:
        """Stop listening and close pipes still in their handshake; idempotent.

        Pipes already attached belong to the socket and live on.  Callable
        from any thread.
        """
        if self.closed:
            return
        if _off_loop(self.socket.loop):
            run_sync(self.socket.loop, self.aclose(), "close")
            return
        self.closed = True
        if self.socket.loop.is_closed():  # nothing runs there any more: only forget
            self._forget()
            return
        if self._task is not None and not self._task.done():
            self._task.cancel()
        if self._stream_listener is not None:
            self._stream_listener.close()
        if self._pipe_listener is not None:
            self._pipe_listener.close()
        for pipe in list(self._pending):
            pipe.abort()
        self._pending.clear()
        if self._limit is not None:
            self.socket.remove_pipe_event(self._pipe_removed)
            self._slots.clear()
        self._forget()

    def _forget(self) -> None:
        self.socket._forget_listener(self)

    async def aclose(self) -> None:
        """Close and wait until the address is released."""
        if _off_loop(self.socket.loop):
            await bridge(self.socket.loop, self.aclose())
            return
        self.close()
        if self._task is not None:
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        if self._stream_listener is not None:
            await self._stream_listener.aclose()

    def __repr__(self) -> str:
        return f"<Listener id={self.id} {self.url}{' closed' if self.closed else ''}>"
