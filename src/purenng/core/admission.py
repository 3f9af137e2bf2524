"""Pipe admission: which pipes a socket takes, and what happens when they go.

A pipe that finished its handshake is offered to its socket once
(:meth:`PipeAdmission.attach`).  It gets in only past every check, in this
order, and a refusal closes it and is counted:

1. the socket is open;
2. the peer speaks the protocol this socket's protocol pairs with
   (``protocol_mismatch``; the pipe's ``error`` says which numbers met);
3. no ``add_pre`` callback closed it;
4. the protocol accepts it (a PAIR socket with a peer already refuses a
   second one: ``pipes_rejected``).

Admitted pipes report to the admission (it is their ``owner``): a pipe
with room again goes to the protocol, a closed one is removed from the
protocol first and everything after that (counters, logging, the dialer's
redial, ``remove_post`` callbacks) is guarded so that nothing can leave a
dead pipe behind.  Pipes with ``recv_idle_timeout`` are watched here too.

Listeners admit connections earlier as well, before any handshake: a
:class:`PipeLimit` is the listener's ``max_pipes``, handed to its stream
listener as a :class:`~purenng.core.byte_stream.ConnectionGate`.

Everything here runs on the socket's loop.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Protocol

from .byte_stream import ConnectionSlot
from .errors import MessageTooLarge, ProtocolError, Timeout
from .pipe import PipeEvent

if TYPE_CHECKING:
    import asyncio
    from collections.abc import Callable, Iterable

    from .pipe import Pipe
    from .protocol import Protocol as SPProtocol

__all__ = ["AdmissionHost", "PipeAdmission", "PipeLimit"]

log: logging.Logger = logging.getLogger("purenng")


class AdmissionHost(Protocol):
    """What a :class:`PipeAdmission` needs of its socket."""

    id: int
    loop: asyncio.AbstractEventLoop

    @property
    def closed(self) -> bool: ...

    def count(self, name: str, n: int = 1) -> None: ...


class _Endpoint(Protocol):
    """A dialer or listener, as far as admission is concerned."""

    options: dict[str, Any]

    def _pipe_closed(self, pipe: Pipe) -> None: ...


class PipeAdmission:
    """The pipes of one socket: admission, removal, events and idle watching.

    Args:
        host: The socket.
        protocol: The socket's protocol instance.
        deliver: What admitted pipes call with each message (the protocol's
            ``pipe_message``, possibly followed by a timer update).
        after_input: Called after each protocol input made here (the
            socket's timer update; a no-op for protocols without deadlines).
        options: The socket's options (``recv_idle_timeout`` when the
            endpoint has none of its own).
    """

    def __init__(
        self,
        host: AdmissionHost,
        protocol: SPProtocol,
        deliver: Callable[[Pipe, bytes | bytearray], None],
        after_input: Callable[[], None],
        options: dict[str, Any],
    ) -> None:
        self._host = host
        self._protocol = protocol
        self._deliver = deliver
        self._after_input = after_input
        self._options = options
        #: The admitted pipes by id.
        self.pipes: dict[int, Pipe] = {}
        self._callbacks: dict[PipeEvent, list[Callable[[Pipe, PipeEvent], Any]]] = {
            e: [] for e in PipeEvent
        }
        #: Messages in/out and bytes in/out of pipes already removed.
        self.retired: list[int] = [0, 0, 0, 0]
        self._logged: set[str] = set()
        #: Ids of pipes closed by :meth:`reject` (counted there, not again on close).
        self._rejected: set[int] = set()
        self._idle: dict[int, list[Any]] = {}
        self._idle_timer: asyncio.TimerHandle | None = None

    # ------------------------------------------------------------ logging

    def log_once(self, key: str, msg: str, *args: Any) -> None:
        """Log a warning the first time ``key`` is seen on this socket."""
        if key not in self._logged:
            self._logged.add(key)
            log.warning(msg + " (logged once per socket)", *args)

    # ------------------------------------------------------------ admission

    def attach(self, pipe: Pipe, dialer: Any = None, listener: Any = None) -> bool:
        """Admit a ready pipe, or close it; True when admitted."""
        host = self._host
        if host.closed:
            pipe.close()
            return False
        pipe.dialer = dialer
        pipe.listener = listener
        pipe.socket = host
        proto = type(self._protocol)
        if pipe.peer_id != proto.peer_id:
            host.count("protocol_mismatch")
            host.count("pipes_rejected")
            self.log_once(
                f"mismatch:{pipe.peer_id}",
                "socket %s (%s): refused a peer speaking protocol %#x, expected %#x (%s)",
                host.id,
                proto.name,
                pipe.peer_id,
                proto.peer_id,
                proto.peer_name,
            )
            pipe.error = ProtocolError(
                f"peer speaks SP protocol {pipe.peer_id:#x}, a {proto.name} socket needs "
                f"{proto.peer_id:#x} ({proto.peer_name})"
            )
            pipe.close()
            return False
        self.fire(PipeEvent.ADD_PRE, pipe)
        if pipe.closed or host.closed:
            host.count("pipes_rejected")
            pipe.close()
            return False
        pipe.owner = self
        pipe.attach(self._deliver)
        accepted = self._protocol.add_pipe(pipe)
        self._after_input()
        if not accepted:
            pipe.owner = None
            host.count("pipes_rejected")
            pipe.close()
            self._rejected.discard(pipe.id)  # never admitted: pipe_closed will not see it
            return False
        self.pipes[pipe.id] = pipe
        host.count("pipes_added")
        endpoint = dialer or listener
        idle = (endpoint.options if endpoint is not None else self._options).get(
            "recv_idle_timeout"
        )
        if idle is not None:
            self._watch_idle(pipe, idle)
        self.fire(PipeEvent.ADD_POST, pipe)
        return True

    def reject(self, pipe: Pipe, reason: str) -> None:
        """Close ``pipe`` for a protocol violation; counted and logged once."""
        host = self._host
        host.count("protocol_errors")
        self.log_once("proto:" + reason, "socket %s: closing pipe %s: %s", host.id, pipe.id, reason)
        if pipe.error is None:
            pipe.error = ProtocolError(reason)
        self._rejected.add(pipe.id)
        pipe.close()

    def failed(self, pipe: Pipe) -> None:
        """A pipe failed before it was ready (its handshake)."""
        self._host.count("handshake_failures")
        self._note_error(pipe)

    # ------------------------------------------------------------ PipeOwner

    def pipe_writable(self, pipe: Pipe) -> None:
        """A pipe has room again."""
        self._protocol.pipe_writable(pipe)
        self._after_input()

    def pipe_closed(self, pipe: Pipe) -> None:
        """An admitted pipe is gone.

        The protocol forgets the pipe first, and nothing after that may
        stop the rest: a failure in logging, in a transport's address
        lookup or in a dialer hook is logged, never raised into the pipe's
        close path, where it would leave a PAIR socket "busy" with a dead
        pipe or a dialer that never redials.
        """
        if self.pipes.pop(pipe.id, None) is None:
            return
        host = self._host
        self._idle.pop(pipe.id, None)
        try:
            self._protocol.remove_pipe(pipe)
            self._after_input()
        except Exception:
            log.exception("socket %s: protocol failed to remove pipe %s", host.id, pipe.id)
        r = self.retired
        r[0] += pipe.msgs_in
        r[1] += pipe.msgs_out
        r[2] += pipe.bytes_in
        r[3] += pipe.bytes_out
        host.count("pipes_removed")
        try:
            self._note_error(pipe)
        except Exception:
            log.exception("socket %s: noting why pipe %s closed failed", host.id, pipe.id)
        self._rejected.discard(pipe.id)
        if pipe.dialer is not None:
            try:
                pipe.dialer._pipe_closed(pipe)
            except Exception:
                log.exception("socket %s: dialer of pipe %s failed to redial", host.id, pipe.id)
        self.fire(PipeEvent.REMOVE_POST, pipe)

    def _note_error(self, pipe: Pipe) -> None:
        host = self._host
        err = pipe.error
        if isinstance(err, MessageTooLarge):
            host.count("oversize")
            self.log_once(
                "oversize",
                "socket %s: closed pipe %s from %s: %s",
                host.id,
                pipe.id,
                _address_of(pipe),
                err,
            )
        elif isinstance(err, ProtocolError | Timeout) and "refused" not in str(err):
            if isinstance(err, ProtocolError) and pipe.id not in self._rejected:
                # A framing error found by the transport (a bad ipc type byte,
                # a WebSocket text frame); reject() counted its own already.
                host.count("protocol_errors")
            self.log_once(
                f"err:{type(err).__name__}", "socket %s: closed pipe %s: %s", host.id, pipe.id, err
            )

    # ------------------------------------------------------------ events

    def fire(self, event: PipeEvent, pipe: Pipe) -> None:
        """Run the callbacks for ``event``; a failing one is logged and skipped."""
        for cb in list(self._callbacks[event]):
            try:
                cb(pipe, event)
            except Exception:
                log.exception("pipe %s callback %r failed", event.value, cb)

    def add_callback(
        self, callback: Callable[[Pipe, PipeEvent], Any], events: Iterable[PipeEvent]
    ) -> None:
        for e in events:
            self._callbacks[e].append(callback)

    def remove_callback(self, callback: Callable[[Pipe, PipeEvent], Any]) -> None:
        for cbs in self._callbacks.values():
            while callback in cbs:
                cbs.remove(callback)

    # ------------------------------------------------------------ idle pipes

    def _watch_idle(self, pipe: Pipe, timeout: float) -> None:
        """Close ``pipe`` once nothing has arrived on it for ``timeout`` seconds.

        One timer per socket sweeps every watched pipe and compares its
        counters (raw bytes read, where the transport counts them, and
        messages) with the last sweep's, so the receive path pays one
        addition per read at most.  A large message arriving slowly keeps
        its pipe open.  A pipe is closed between ``timeout`` and 1.25 x
        ``timeout`` after the last bytes arrived.
        """
        self._idle[pipe.id] = [timeout, pipe.rx_bytes + pipe.msgs_in, self._host.loop.time()]
        self._arm_idle_sweep()

    def _arm_idle_sweep(self) -> None:
        if self._idle_timer is not None or not self._idle or self._host.closed:
            return
        step = max(0.005, min(rec[0] for rec in self._idle.values()) / 4)
        self._idle_timer = self._host.loop.call_later(step, self._idle_sweep)

    def _idle_sweep(self) -> None:
        self._idle_timer = None
        host = self._host
        now = host.loop.time()
        for pid, rec in list(self._idle.items()):
            pipe = self.pipes.get(pid)
            if pipe is None:
                del self._idle[pid]
                continue
            progress = pipe.rx_bytes + pipe.msgs_in  # both only grow
            if progress != rec[1]:
                rec[1] = progress
                rec[2] = now
            elif now - rec[2] >= rec[0]:
                del self._idle[pid]
                host.count("idle_timeouts")
                self.log_once(
                    "idle",
                    "socket %s: closing pipe %s: nothing received for %g s (recv_idle_timeout)",
                    host.id,
                    pid,
                    rec[0],
                )
                if pipe.error is None:
                    pipe.error = Timeout(f"nothing received for {rec[0]:g} s (recv_idle_timeout)")
                pipe.close()
        self._arm_idle_sweep()

    # ------------------------------------------------------------ close

    def close(self) -> None:
        """Stop watching and close every pipe (the socket is closing)."""
        if self._idle_timer is not None:
            self._idle_timer.cancel()
            self._idle_timer = None
        self._idle.clear()
        for pipe in list(self.pipes.values()):
            pipe.close()


class _Gated(Protocol):
    """The listener a :class:`PipeLimit` counts for."""

    pipes_refused: int

    @property
    def url(self) -> str: ...

    @property
    def socket(self) -> Any: ...


class PipeLimit:
    """A listener's ``max_pipes``: a :class:`~purenng.core.byte_stream.ConnectionGate`.

    A slot is taken when a connection is accepted, before its handshake, and
    given back when it fails or, once attached, when the pipe is removed.
    A refusal closes the new connection at once and is counted
    (``pipes_rejected`` on the socket, ``pipes_refused`` on the listener);
    one warning is logged per episode at the limit.
    """

    def __init__(self, listener: _Gated, limit: int) -> None:
        self._listener = listener
        self.limit = limit
        #: Connections holding a slot: accepted, in a handshake, or attached.
        self.used: int = 0
        self._episode = 0  # refusals since the limit was last reached; 0: not at it

    def admit(self) -> ConnectionSlot | None:
        if self.used >= self.limit:
            self._refuse()
            return None
        self.used += 1
        return ConnectionSlot(self._release)

    def _refuse(self) -> None:
        lst = self._listener
        lst.pipes_refused += 1
        lst.socket.count("pipes_rejected")
        if not self._episode:
            log.warning(
                "listener %s: at max_pipes=%d, closing new connections until pipes go "
                "(logged once per episode)",
                lst.url,
                self.limit,
            )
        self._episode += 1

    def _release(self) -> None:
        self.used -= 1
        # Hysteresis: with dialers queueing for every freed slot, "below the
        # limit" flaps at each close, and a line per flap is a log flood.
        if self._episode and self.used <= self.limit * 3 // 4:
            log.info(
                "listener %s: below max_pipes=%d again, after refusing %d connections",
                self._listener.url,
                self.limit,
                self._episode,
            )
            self._episode = 0


def _address_of(pipe: Pipe) -> Any:
    """The pipe's remote address for a log line; never raises."""
    try:
        return pipe.remote_address
    except Exception as exc:
        return f"<unknown address: {type(exc).__name__}>"
