"""The inproc transport: ``inproc://<any name>``, messages within one process.

Rules (``reference/wire-protocols.md`` §2.5; NNG
``src/sp/transport/inproc/inproc.c``):

* The name after ``inproc://`` is any string; it is bound process-wide.
  Listening on a bound name raises :class:`AddressInUse`, dialing an
  unbound one :class:`ConnectionRefused`.  Closing the listener frees the
  name; pipes it made live on.
* A dial makes two joined :class:`InprocPipe` objects, one per side.  Each
  knows the other side's SP protocol number; the sockets check it as they do
  for any transport, and a refusal on either side closes both.
* On delivery the SP header is pulled up into the body (one ``bytes``), as
  NNG does, so the receiving protocol parses it as from a network.  A
  message without a header travels as the very body object: no copy.  The
  receiver turns a ``memoryview`` into ``bytes``; ``bytes`` and
  ``bytearray`` pass as they are, so a sender must not reuse a mutable body
  it has sent.
* ``recv_max_size`` is ignored, as in NNG.
* No operating-system resource is used: no socket, no pipe, no file
  descriptor.  A listener is a dictionary entry, a connection two deques.

Theory of operation:

* **Two loops.** The dialing and the listening socket may live on different
  event loops (threads).  Each pipe belongs to its socket's loop, and all of
  its owner's callbacks (``deliver``, ``pipe_writable``, ``pipe_closed``) run
  there.  A side posts work to its peer's loop with ``call_soon`` when both
  share a loop and ``call_soon_threadsafe`` otherwise, chosen once per pipe.
* **Send.** :meth:`InprocPipe.write` appends the payload to the *peer's*
  inbound deque (``deque.append`` and ``popleft`` are atomic, so one writer
  thread and one reader thread need no lock) and posts one drain callback
  to the peer's loop per batch: the ``_scheduled`` flag is set by the writer
  and cleared by the reader only once it finds the deque empty, so a burst
  of writes costs one ``call_soon``, and nothing re-enters protocol code
  synchronously from ``write``.
* **Receive.** The drain callback hands payloads to the owner's deliver
  function until the deque is empty, the pipe is paused, or a batch limit
  is reached (then it re-posts itself so other callbacks get a turn).  While
  paused (or not yet attached) the flag stays set and messages stay queued;
  ``resume_reading`` and ``attach`` post a drain.
* **Flow control.** A pipe is ``writable`` while its peer's inbound deque
  holds fewer than :data:`HIGH_WATER` messages.  Crossing it marks the
  writer blocked (under the pair's lock, the only lock on the path and taken
  only at that crossing); a drain that leaves at most :data:`LOW_WATER`
  messages clears the mark and posts ``pipe_writable`` to the writer's loop.
* **Close.** Closing either side closes both.  The closing side drops its
  inbound messages and tells its owner at once; the other side hears on its
  own loop, delivers what it can still deliver (not while paused), drops
  the rest and tells its owner.  Each owner hears ``pipe_closed`` once.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections import deque
from typing import TYPE_CHECKING, Any, ClassVar

from ..plugin import (
    AddressInUse,
    BadAddress,
    ConnectionRefused,
    Pipe,
    PipeListener,
    PipeTransport,
    hookimpl,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from ..plugin import URL, ProtocolInfo, Registry

__all__ = ["HIGH_WATER", "LOW_WATER", "InprocPipe", "InprocTransport"]

#: The purenng plugin API this module is written for (purenng.plugin.API_VERSION).
PURENNG_PLUGIN_API: str = "1.0"

log: logging.Logger = logging.getLogger("purenng")

#: A pipe stops being writable when its peer holds this many undelivered messages.
HIGH_WATER = 1024
#: ...and becomes writable again once the peer has drained down to this many.
LOW_WATER = 512
#: Messages one drain callback delivers before yielding to the loop.
DRAIN_BATCH = 2048

_Payload = bytes | bytearray | memoryview

# The process-wide table of bound names.  Sockets on any loop or thread use
# it, hence the lock; it is held only for dictionary operations.
_names_lock = threading.Lock()
_names: dict[str, _InprocListener] = {}


class InprocPipe(Pipe):
    """One side of an inproc connection.

    Created in pairs by :meth:`InprocTransport.dial`; never by hand.

    Attributes:
        error: Why the pipe was refused or failed, if it was (set by the socket).
    """

    #: As in :class:`Pipe`; the flow control below sets them.
    writable: bool
    error: BaseException | None

    def __init__(
        self, peer_id: int, loop: asyncio.AbstractEventLoop, name: str, lock: threading.Lock
    ) -> None:
        super().__init__(peer_id, "inproc")
        self._loop = loop
        self._name = name
        self._lock = lock
        self._peer: InprocPipe = self  # replaced by _join
        #: Schedules a callback on the peer's loop.
        self._post: Callable[[Callable[[], object]], object] = loop.call_soon
        self._inq: deque[_Payload] = deque()
        # Set by the peer's write when it posts a drain, cleared by the drain
        # only when it leaves the deque empty; stays set while paused.
        self._scheduled = False
        # Unattached pipes are paused: messages wait for attach().
        self._paused = True
        # The peer's writer crossed HIGH_WATER and waits for a wake-up.
        self._writer_blocked = False

    @staticmethod
    def _join(a: InprocPipe, b: InprocPipe) -> None:
        a._peer = b
        b._peer = a
        if a._loop is b._loop:
            a._post = b._loop.call_soon
            b._post = a._loop.call_soon
        else:
            a._post = b._loop.call_soon_threadsafe
            b._post = a._loop.call_soon_threadsafe

    # ------------------------------------------------------------ owner side

    def attach(self, deliver: Callable[[Pipe, bytes | bytearray], None]) -> None:
        """Route received messages to ``deliver`` (the socket calls this).

        Messages that arrived before are delivered from a callback, after the
        socket has finished admitting the pipe.
        """
        self._deliver = deliver
        if self.closed:
            return
        self._paused = False
        self._scheduled = True
        self._loop.call_soon(self._drain)

    def write(self, header: _Payload, body: _Payload) -> None:
        """Queue one message for the peer; never blocks, never raises.

        The peer receives ``header + body`` as one ``bytes`` when there is a
        header, else ``body`` itself.
        """
        peer = self._peer
        if self.closed or peer.closed:
            return
        payload = b"".join((header, body)) if header else body
        self.msgs_out += 1
        self.bytes_out += len(payload)
        q = peer._inq
        q.append(payload)
        if not peer._scheduled:
            peer._scheduled = True
            try:
                self._post(peer._drain)
            except RuntimeError:  # the peer's loop is closed
                self._peer_loop_gone()
                return
        if len(q) >= HIGH_WATER and self.writable:
            self._block(q)

    def _block(self, q: deque[_Payload]) -> None:
        with self._lock:
            self._peer._writer_blocked = True
            self.writable = False
            if len(q) <= LOW_WATER:  # the peer drained meanwhile (other thread)
                self._peer._writer_blocked = False
                self.writable = True

    def pause_reading(self) -> None:
        """Stop delivering; messages stay queued (and the writer fills up)."""
        self._paused = True

    def resume_reading(self) -> None:
        """Deliver again, from a callback."""
        if self._paused and self._deliver is not None and not self.closed:
            self._paused = False
            self._scheduled = True
            self._loop.call_soon(self._drain)

    def close(self) -> None:
        """Close both sides; idempotent.  Queued inbound messages are dropped."""
        if self.closed:
            return
        peer = self._peer
        self._shut()
        if peer is not self and not peer.closed:
            peer.writable = False  # a hint only: its own loop closes it soon
            try:
                self._post(peer._peer_closed)
            except RuntimeError:  # its loop is gone: nobody is left to tell
                peer.closed = True

    # ------------------------------------------------------------ callbacks on this loop

    def _drain(self) -> None:
        """Deliver queued messages (posted by the peer's write, attach or resume)."""
        if self._paused:
            return  # the flag stays set: resume_reading or attach posts again
        q = self._inq
        deliver = self._deliver
        assert deliver is not None
        n = 0
        nbytes = 0
        try:
            while True:
                while q and not self._paused:
                    payload = q.popleft()
                    if type(payload) is memoryview:
                        payload = payload.tobytes()
                    n += 1
                    nbytes += len(payload)
                    deliver(self, payload)
                    if n >= DRAIN_BATCH:
                        break
                if self._paused:
                    break
                if n >= DRAIN_BATCH and q:
                    self._loop.call_soon(self._drain)
                    break
                self._scheduled = False
                # A write on another thread may have appended after the last
                # look but seen the flag still set: look once more.
                if not q:
                    break
                self._scheduled = True
        except Exception as exc:
            log.exception("inproc pipe %s: delivering a message failed; closing it", self.id)
            if self.error is None:
                self.error = exc
            self.close()
        finally:
            self.msgs_in += n
            self.bytes_in += nbytes
        if self._writer_blocked and len(q) <= LOW_WATER:
            self._unblock_writer()

    def _unblock_writer(self) -> None:
        with self._lock:
            if not self._writer_blocked:
                return
            self._writer_blocked = False
        try:
            self._post(self._peer._wake)
        except RuntimeError:
            self._peer_loop_gone()

    def _wake(self) -> None:
        """Our peer drained below LOW_WATER: tell our owner (on our loop)."""
        if self.closed or self._peer.closed:
            return
        self.writable = True
        owner = self.owner
        if owner is not None:
            owner.pipe_writable(self)

    def _peer_closed(self) -> None:
        """The other side closed: deliver what can be delivered, then close."""
        if self.closed:
            return
        if not self._paused and self._inq:
            deliver = self._deliver
            assert deliver is not None
            q = self._inq
            try:
                while q and not self._paused:
                    payload = q.popleft()
                    if type(payload) is memoryview:
                        payload = payload.tobytes()
                    self.msgs_in += 1
                    self.bytes_in += len(payload)
                    deliver(self, payload)
            except Exception:
                log.exception("inproc pipe %s: delivering a message failed", self.id)
        self._shut()

    def _peer_loop_gone(self) -> None:
        self._peer.closed = True
        self._shut()

    def _shut(self) -> None:
        if self.closed:
            return
        self.closed = True
        self.writable = False
        self._paused = True
        self._inq.clear()
        self._notify_closed()

    # ------------------------------------------------------------ info

    @property
    def local_address(self) -> str:
        """The inproc name (both ends report it, as NNG does)."""
        return self._name

    @property
    def remote_address(self) -> str:
        """The inproc name."""
        return self._name

    @property
    def queued(self) -> int:
        """Messages received and not yet delivered (for tests and stats)."""
        return len(self._inq)


class _InprocListener(PipeListener):
    """A bound name: creates the listening side of each new connection."""

    def __init__(
        self,
        name: str,
        url: str,
        loop: asyncio.AbstractEventLoop,
        proto: ProtocolInfo,
        on_pipe: Callable[[Pipe], None],
    ) -> None:
        self.name = name
        self._url = url
        self.loop = loop
        self.proto = proto
        self._on_pipe = on_pipe
        self.closed = False

    def connect(self, loop: asyncio.AbstractEventLoop, proto: ProtocolInfo) -> InprocPipe:
        """Make a connected pair; return the dialer's side (any thread)."""
        lock = threading.Lock()
        mine = InprocPipe(self.proto.self_id, loop, self.name, lock)
        theirs = InprocPipe(proto.self_id, self.loop, self.name, lock)
        InprocPipe._join(mine, theirs)
        try:
            if self.loop is loop:
                self.loop.call_soon(self._accept, theirs)
            else:
                self.loop.call_soon_threadsafe(self._accept, theirs)
        except RuntimeError:  # the listener's loop is closed
            raise ConnectionRefused(f"{self._url}: connection refused") from None
        return mine

    def _accept(self, pipe: InprocPipe) -> None:
        if pipe.closed:
            return
        if self.closed:
            pipe.close()
            return
        self._on_pipe(pipe)

    def close(self) -> None:
        """Unbind the name; idempotent.  Pipes made live on."""
        with _names_lock:
            self.closed = True
            if _names.get(self.name) is self:
                del _names[self.name]

    @property
    def url(self) -> str:
        return self._url

    @property
    def local_address(self) -> str:
        return self.name


class InprocTransport(PipeTransport):
    """In-process message pipes between sockets on any loops and threads."""

    schemes: ClassVar[tuple[str, ...]] = ("inproc",)
    option_prefix = "inproc"

    def check_url(self, url: URL) -> None:
        if url.scheme != "inproc":
            raise BadAddress(f"{url.raw!r} is not an inproc URL")

    async def dial(self, url: URL, options: Mapping[str, Any], proto: ProtocolInfo) -> Pipe:
        """Connect to the socket listening on ``url``'s name.

        Raises:
            ConnectionRefused: nothing listens on that name.
        """
        with _names_lock:
            lst = _names.get(url.rest)
        if lst is None or lst.closed:
            raise ConnectionRefused(f"{url.raw}: nothing listens on inproc name {url.rest!r}")
        return lst.connect(asyncio.get_running_loop(), proto)

    async def listen(
        self,
        url: URL,
        options: Mapping[str, Any],
        proto: ProtocolInfo,
        on_pipe: Callable[[Pipe], None],
    ) -> PipeListener:
        """Bind ``url``'s name for this process.

        Raises:
            AddressInUse: the name is bound already.
        """
        lst = _InprocListener(url.rest, url.raw, asyncio.get_running_loop(), proto, on_pipe)
        with _names_lock:
            if url.rest in _names:
                raise AddressInUse(f"{url.raw}: inproc name {url.rest!r} is already bound")
            _names[url.rest] = lst
        return lst


def bound_names() -> list[str]:
    """The inproc names bound in this process now (for diagnostics and tests)."""
    with _names_lock:
        return list(_names)


@hookimpl
def purenng_register_transports(registry: Registry) -> None:
    registry.add_transport(InprocTransport())
