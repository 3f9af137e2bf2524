"""The :class:`Socket`: options, endpoints, pipes, events and the public API.

A socket binds one protocol (resolved once through the registry, then held
by direct reference) to any number of dialers, listeners and pipes.  It owns
no I/O itself: pipes do the I/O, the protocol routes, and a
:class:`~purenng.core.channel.Channel` carries messages to and from the
application on the blocking and async paths.

Rules:

* A socket lives on the loop it was created in, or on the background loop
  when created outside one (:mod:`purenng.core.loop`).  Pipes, protocol and
  callbacks run only there.
* ``send``/``recv``/``dial``/``listen``/``close`` may be called from any
  thread; the blocking ones refuse to run on the owning loop (use the ``a``
  forms there).
* ``close()`` is idempotent and fails every pending operation with
  :class:`~purenng.core.errors.Closed`.
* Pipe events (``add_pre``, ``add_post``, ``remove_post``) are plain
  callbacks on the loop; an ``add_pre`` callback may close the pipe to refuse
  it.
* The socket is its protocol's host (:class:`~purenng.core.protocol.ProtocolHost`):
  it feeds the protocol its inputs on the loop and, for a protocol with
  deadlines, owns its one timer (a :class:`~purenng.core.protocol.ProtocolTimer`
  on ``loop.call_at``), updated after each input.  Protocols without
  deadlines are called directly, with nothing in between.  Calls that cross
  threads (``set_option``, SUB ``subscribe``) are carried to the loop here
  (:meth:`Socket._call_on_loop`), never by the protocol.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from asyncio import _get_running_loop
from typing import TYPE_CHECKING, Any, ClassVar, Self, TypeVar

from .admission import PipeAdmission
from .bridge import acall, bridge, running_loop
from .channel import Channel
from .errors import (
    BadOption,
    BadState,
    Closed,
    NotSupported,
    ProtocolError,
    WrongThread,
)
from .loop import _FORK_ADVICE, current_loop, on_fork_in_child, run_sync
from .message import Message
from .options import (
    ENDPOINT_OPTIONS,
    SOCKET_OPTIONS,
    Option,
    OptionSpec,
    declared_options,
    unknown_option,
    validate,
)
from .pipe import PipeEvent, next_id
from .protocol import ProtocolTimer, has_timer
from .registry import get_registry
from .transport import ProtocolInfo
from .url import parse_url

if TYPE_CHECKING:
    from collections.abc import Callable

    from ..tls_config import TLSConfig
    from .context import Context
    from .endpoint import Dialer, Listener
    from .message import BytesLike
    from .pipe import Pipe
    from .protocol import Protocol
    from .registry import Registry
    from .url import URL

__all__ = ["PipeEvent", "Socket"]

T = TypeVar("T")
C = TypeVar("C", bound="Context")

log: logging.Logger = logging.getLogger("purenng")


_STAT_NAMES = (
    "pipes_added",
    "pipes_removed",
    "pipes_rejected",
    "pipes_busy",
    "protocol_mismatch",
    "oversize",
    "protocol_errors",
    "handshake_failures",
    "drops",
    "idle_timeouts",
)


class Socket:
    """An SP socket.

    Args:
        protocol: The protocol name (``"push0"``...).  The subclasses
            (``purenng.Push0``...) fill it in.
        raw: Open the protocol in raw mode (for devices), as
            ``nng_*_open_raw``.
        dial: A URL (or list of URLs) to dial at once.
        listen: A URL (or list of URLs) to listen on at once.
        **options: Socket, protocol and transport options
            (``recv_timeout=1.0``, ``tcp_nodelay=False``...).

    Raises:
        BadOption: an unknown option or a bad value.
        PluginError: the protocol's plugin is missing, disabled or broken.
    """

    protocol_name: ClassVar[str | None] = None
    #: The names of the class's Option attributes (set for each subclass).
    _option_attrs: ClassVar[frozenset[str]] = frozenset()

    # Set in __init__ through __dict__ (attribute writes are option writes).
    id: int
    loop: asyncio.AbstractEventLoop
    raw: bool
    closed: bool
    protocol_cls: type[Protocol]
    protocol_info: ProtocolInfo
    channel: Channel
    options: dict[str, Any]
    _protocol: Protocol
    _registry: Registry
    _dialers: list[Dialer]
    _listeners: list[Listener]
    _stats: dict[str, int]
    _specs: dict[str, OptionSpec]
    _setup: list[asyncio.Task[Any]]
    _contexts: weakref.WeakSet[Context]
    _recv_timeout: float | None
    _send_timeout: float | None
    _timer: ProtocolTimer | None
    _admission: PipeAdmission

    # Options, as typed attributes (see ``_get_option``/``_set_option``).
    # Socket options (SOCKET_OPTIONS):
    recv_timeout: Option[float | None] = Option()
    send_timeout: Option[float | None] = Option()
    recv_max_size: Option[int] = Option()
    recv_buffer: Option[int] = Option()
    send_buffer: Option[int] = Option()
    reconnect_time_min: Option[float] = Option()
    reconnect_time_max: Option[float] = Option()
    name: Option[str] = Option()
    linger: Option[float] = Option()
    recv_idle_timeout: Option[float | None] = Option()
    max_pipes: Option[int] = Option()
    sp_handshake_timeout: Option[float] = Option()
    # The built-in transports' options, passed on to the socket's endpoints
    # (a plugin transport's are reached at run time only, see __getattr__):
    tcp_nodelay: Option[bool] = Option()
    tcp_keepalive: Option[bool] = Option()
    ipc_permissions: Option[int | None] = Option()
    ipc_buffer_size: Option[int | None] = Option()
    tls_config: Option[TLSConfig | None] = Option()
    tls_handshake_timeout: Option[float] = Option()
    ws_recv_frame_max: Option[int] = Option()
    ws_send_frame_max: Option[int] = Option()
    ws_request_headers: Option[dict[str, str] | None] = Option()
    ws_response_headers: Option[dict[str, str] | None] = Option()
    ws_ping_interval: Option[float | None] = Option()
    ws_handshake_timeout: Option[float] = Option()
    ws_protocol: Option[str | None] = Option()
    # Protocol options are declared on the classes of socket_classes.

    def __init__(
        self,
        protocol: str | None = None,
        *,
        raw: bool = False,
        dial: str | list[str] | None = None,
        listen: str | list[str] | None = None,
        **options: Any,
    ) -> None:
        name = protocol or self.protocol_name
        if not name:
            raise BadState("Socket() needs a protocol name, e.g. Socket('pair0')")
        reg = get_registry()
        proto_cls = reg.protocol(name)
        d = self.__dict__
        d["_registry"] = reg
        d["protocol_cls"] = proto_cls
        d["id"] = next_id()
        d["loop"] = current_loop()
        d["raw"] = raw
        d["closed"] = True  # until fully built: nothing to close before that
        d["_dialers"] = []
        d["_listeners"] = []
        d["_stats"] = dict.fromkeys(_STAT_NAMES, 0)
        d["_specs"] = {**SOCKET_OPTIONS, **proto_cls.option_specs}
        d["_setup"] = []
        d["_contexts"] = weakref.WeakSet()
        opts: dict[str, Any] = {name: spec.default for name, spec in self._specs.items()}
        if proto_cls.default_recv_buffer is not None:
            opts["recv_buffer"] = proto_cls.default_recv_buffer
        d["options"] = opts
        for key, value in options.items():
            self._set_option(key, value, initial=True)
        d["protocol_info"] = ProtocolInfo(
            proto_cls.self_id, proto_cls.peer_id, proto_cls.self_name, proto_cls.peer_name
        )
        d["channel"] = Channel(
            self.loop,
            recv_capacity=max(1, opts["recv_buffer"]),
            name=f"{proto_cls.name} socket {self.id}",
        )
        d["_timer"] = None
        impl = d["_protocol"] = proto_cls(self, raw)
        # Direct references: no socket method on the per-message path.
        deliver = impl.pipe_message
        if has_timer(proto_cls):
            # Deadlines: the inputs that may move one re-arm the one timer.
            d["_timer"] = ProtocolTimer(impl, self.loop.time, self.loop.call_at)
            deliver = self._timed(impl.pipe_message)
            self.channel.bind(
                self._timed(impl.try_send), impl.can_send, self._timed(impl.recv_space)
            )
        else:
            self.channel.bind(impl.try_send, impl.can_send, impl.recv_space)
        d["_admission"] = PipeAdmission(self, impl, deliver, self._update_timer, opts)
        d["closed"] = False
        _live_sockets.add(self)
        d["_recv_timeout"] = opts["recv_timeout"]
        d["_send_timeout"] = opts["send_timeout"]
        try:
            for url in [listen] if isinstance(listen, str) else list(listen or ()):
                self._constructor_endpoint(url, listen=True)
            for url in [dial] if isinstance(dial, str) else list(dial or ()):
                self._constructor_endpoint(url, listen=False)
        except BaseException:
            self.close()
            raise

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls._option_attrs = declared_options(cls)

    def _constructor_endpoint(self, url: str, *, listen: bool) -> None:
        """``listen=``/``dial=`` given to the constructor.

        Inside the owning loop they cannot block: they run as tasks that
        ``async with`` awaits (dialing in the background).  Elsewhere they
        run at once, dialing as ``dial(url)`` does.
        """
        if running_loop() is self.loop:
            coro = self.alisten(url) if listen else self.adial(url, block=False)
            self._setup.append(self.loop.create_task(coro))
        elif listen:
            self.listen(url)
        else:
            self.dial(url)

    # ------------------------------------------------------------ options

    def _spec(self, name: str) -> OptionSpec:
        spec = self._specs.get(name)
        if spec is None:
            spec = self._registry.option_spec(name)
        return spec

    def _known_options(self) -> set[str]:
        """Every option name this socket takes that is known now (for suggestions)."""
        known = set(type(self)._option_attrs) | set(self._specs)
        for t in list(getattr(self._registry, "_transports", {}).values()):
            known.update(getattr(t, "option_specs", ()))
        return known

    def _unknown_option(self, name: str) -> BadOption:
        # The socket classes that declare it (Req0's resend_time set on a Push0).
        classes, elsewhere = [Socket], set()
        while classes:
            for sub in classes.pop().__subclasses__():
                classes.append(sub)
                if name in sub._option_attrs and not isinstance(self, sub):
                    elsewhere.add(sub.__name__)
        return unknown_option(type(self).__name__, name, self._known_options(), elsewhere)

    def _get_option(self, name: str) -> Any:
        """An option's value; a transport option not set here reads as its default."""
        try:
            return self.options[name]
        except KeyError:
            return self._spec(name).default

    def _set_option(self, name: str, value: Any, initial: bool = False) -> None:
        if name.startswith("_") or name in ("raw", "dial", "listen"):
            raise self._unknown_option(name)
        try:
            spec = self._spec(name)
        except BadOption:
            raise self._unknown_option(name) from None
        v = validate(spec, value)
        if not initial and name in self.protocol_cls.option_specs:
            self._protocol.check_option(name, v)
        self.options[name] = v
        if not initial:
            if name == "recv_timeout":
                self.__dict__["_recv_timeout"] = v
            elif name == "send_timeout":
                self.__dict__["_send_timeout"] = v
            elif name == "recv_buffer":
                self.channel.recv_capacity = max(1, v)
            elif name in self.protocol_cls.option_specs:
                # Applied before returning, so the next message sees it.
                self._call_on_loop(self._set_protocol_option, (name, v), "set option")

    def _set_protocol_option(self, name: str, value: Any) -> None:
        self._protocol.set_option(name, value)
        self._update_timer()

    # Hidden from type checkers, so that a misspelt option is a type error:
    # the declared options are descriptors and need neither method.
    if not TYPE_CHECKING:

        def __getattr__(self, name: str) -> Any:
            # Only names the class does not have: an option the class does
            # not declare (a plugin transport's ``foo_window``, a plugin
            # protocol's option on ``Socket("...")``), else a BadOption (an
            # AttributeError) naming the closest valid option.
            opts = self.__dict__.get("options")
            if opts is None or name.startswith("_"):
                raise AttributeError(f"{type(self).__name__} has no attribute {name!r}")
            if name in opts:
                return opts[name]
            try:
                return self._spec(name).default
            except BadOption:
                raise self._unknown_option(name) from None

        def __setattr__(self, name: str, value: Any) -> None:
            # A declared option goes straight where its descriptor's __set__
            # would; another class attribute (a property...) is set as usual;
            # anything else is an option the class does not declare, or a typo.
            cls = type(self)
            if name not in cls._option_attrs and hasattr(cls, name):
                object.__setattr__(self, name, value)
            else:
                self._set_option(name, value)

    # ------------------------------------------------------------ protocol host

    def now(self) -> float:
        """The socket's clock (``loop.time()``), for protocols arming a deadline."""
        return self.loop.time()

    def _timed(self, fn: Callable[..., T]) -> Callable[..., T]:
        """``fn`` followed by a timer update: an input of a protocol with deadlines."""
        timer = self._timer
        assert timer is not None
        update = timer.update

        def timed(*args: Any) -> T:
            try:
                return fn(*args)
            finally:
                update()

        return timed

    def _update_timer(self) -> None:
        """After an input that is not on the message path."""
        timer = self._timer
        if timer is not None:
            timer.update()

    def _call_on_loop(self, fn: Callable[..., T], args: tuple[Any, ...], what: str) -> T:
        """Run ``fn(*args)`` on the socket's loop and return its result (any thread).

        Its exception, if any, is raised here.  On the loop (or once the
        loop is closed) it runs at once.
        """
        if running_loop() is self.loop or self.loop.is_closed():
            return fn(*args)
        return run_sync(self.loop, acall(fn, args), what)

    def count(self, name: str, n: int = 1) -> None:
        """Add ``n`` to the socket counter ``name``."""
        self._stats[name] = self._stats.get(name, 0) + n

    def reject_pipe(self, pipe: Pipe, reason: str) -> None:
        """Close ``pipe`` for a protocol violation; counted and logged once."""
        self._admission.reject(pipe, reason)

    def on_pipe_event(
        self, callback: Callable[[Pipe, PipeEvent], Any], events: Any = None
    ) -> Callable[[Pipe, PipeEvent], Any]:
        """Call ``callback(pipe, event)`` on pipe events (on the socket's loop).

        Args:
            callback: The function; it must not block.
            events: A :class:`PipeEvent` or iterable of them; default all three.

        Returns:
            ``callback``, so it can be used as a decorator.
        """
        if events is None:
            chosen = list(PipeEvent)
        elif isinstance(events, PipeEvent | str):
            chosen = [PipeEvent(events)]
        else:
            chosen = [PipeEvent(e) for e in events]
        self._admission.add_callback(callback, chosen)
        return callback

    def remove_pipe_event(self, callback: Callable[[Pipe, PipeEvent], Any]) -> None:
        """Stop calling ``callback``."""
        self._admission.remove_callback(callback)

    @property
    def pipes(self) -> list[Pipe]:
        """The live pipes."""
        return list(self._admission.pipes.values())

    @property
    def dialers(self) -> list[Dialer]:
        """The live dialers."""
        return list(self._dialers)

    @property
    def listeners(self) -> list[Listener]:
        """The live listeners."""
        return list(self._listeners)

    def _forget_dialer(self, d: Dialer) -> None:
        if d in self._dialers:
            self._dialers.remove(d)

    def _forget_listener(self, lst: Listener) -> None:
        if lst in self._listeners:
            self._listeners.remove(lst)

    # ------------------------------------------------------------ endpoints

    def _endpoint_options(
        self, url: URL, overrides: dict[str, Any], *, dial: bool
    ) -> tuple[Any, dict[str, Any]]:
        transport = self._registry.transport(url.scheme)
        if dial:
            transport.check_dial_url(url)
        else:
            transport.check_url(url)
        opts: dict[str, Any] = {k: self.options[k] for k in ENDPOINT_OPTIONS}
        opts.update(self._registry.transport_defaults(transport))
        for k, spec in transport.option_specs.items():
            opts.setdefault(k, spec.default)
            if k in self.options:
                opts[k] = self.options[k]
        for k, v in overrides.items():
            if k in ENDPOINT_OPTIONS:
                opts[k] = validate(SOCKET_OPTIONS[k], v)
            elif k in transport.option_specs:
                opts[k] = validate(transport.option_specs[k], v)
            else:
                raise BadOption(f"unknown option {k!r} for a {url.scheme} endpoint")
        return transport, opts

    async def adial(self, url: str, *, block: bool | None = None, **options: Any) -> Dialer:
        """Dial ``url`` (on the owning loop).

        Args:
            block: True: wait for the first connection and raise its error.
                False: connect in the background, retrying.  None (default):
                try once, and on failure keep retrying in the background.
            **options: Dialer options (``reconnect_time_min``, ``tcp_nodelay``...).

        Raises:
            BadAddress: ``url`` is malformed.
            ConnectionRefused: with ``block=True``, nobody listens.
        """
        from .endpoint import Dialer

        if running_loop() is not self.loop:  # another loop, or trio
            return await bridge(self.loop, self.adial(url, block=block, **options))
        self._check_open()
        u = parse_url(url)
        transport, opts = self._endpoint_options(u, options, dial=True)
        d = Dialer(self, u, transport, opts)
        self._dialers.append(d)
        try:
            if block is None:
                try:
                    await d.start(block=True)
                except (OSError, ProtocolError) as exc:
                    log.debug("dial %s failed (%s); retrying in the background", url, exc)
                    d.last_error = exc
                    await d.start(block=False)
            else:
                await d.start(block=block)
        except BaseException:
            d.close()
            raise
        return d

    def dial(self, url: str, *, block: bool | None = None, **options: Any) -> Dialer:
        """Blocking form of :meth:`adial`, callable from any other thread."""
        return run_sync(self.loop, self.adial(url, block=block, **options), "dial")

    async def alisten(self, url: str, **options: Any) -> Listener:
        """Listen on ``url`` (on the owning loop).

        Raises:
            BadAddress: ``url`` is malformed.
            AddressInUse: the address is taken.
        """
        from .endpoint import Listener

        if running_loop() is not self.loop:  # another loop, or trio
            return await bridge(self.loop, self.alisten(url, **options))
        self._check_open()
        u = parse_url(url)
        transport, opts = self._endpoint_options(u, options, dial=False)
        lst = Listener(self, u, transport, opts)
        self._listeners.append(lst)
        try:
            await lst.start()
        except BaseException:
            lst.close()
            raise
        return lst

    def listen(self, url: str, **options: Any) -> Listener:
        """Blocking form of :meth:`alisten`, callable from any other thread."""
        return run_sync(self.loop, self.alisten(url, **options), "listen")

    # ------------------------------------------------------------ messages

    def send(self, data: BytesLike, *, block: bool = True) -> None:
        """Send ``data``, waiting up to ``send_timeout`` for the protocol to take it.

        Raises:
            TryAgain: ``block=False`` and it cannot be sent now.
            Timeout: ``send_timeout`` passed.
            Closed: the socket is closed.
            WrongThread: called on the loop that owns the socket.
        """
        self.channel.send(Message(data), self._send_timeout, block)

    def send_msg(self, msg: Message, *, block: bool = True) -> None:
        """Send a :class:`Message` (header, body and optionally the pipe)."""
        self.channel.send(msg, self._send_timeout, block)

    def recv(self, *, block: bool = True) -> bytes:
        """Receive the next message body, waiting up to ``recv_timeout``.

        Raises:
            TryAgain: ``block=False`` and nothing is waiting.
            Timeout: ``recv_timeout`` passed.
            Closed: the socket is closed.
            WrongThread: called on the loop that owns the socket.
        """
        if not self.protocol_cls.can_recv_messages:
            raise NotSupported(f"{self.protocol_cls.name} sockets cannot receive")
        body = self.channel.recv(self._recv_timeout, block).body
        return body if type(body) is bytes else bytes(body)

    def recv_msg(self, *, block: bool = True) -> Message:
        """Receive the next :class:`Message` (with ``pipe`` set)."""
        if not self.protocol_cls.can_recv_messages:
            raise NotSupported(f"{self.protocol_cls.name} sockets cannot receive")
        return self.channel.recv(self._recv_timeout, block)

    async def asend(self, data: BytesLike, *, block: bool = True) -> None:
        """Coroutine form of :meth:`send`; works on any asyncio loop and trio."""
        if _get_running_loop() is self.loop:  # the common case, inlined
            msg = Message(data)
            channel = self.channel
            if not channel.send_now(msg):
                await channel.asend(msg, self._send_timeout, block)
        else:
            await self._async_send(Message(data), block)

    async def asend_msg(self, msg: Message, *, block: bool = True) -> None:
        """Coroutine form of :meth:`send_msg`."""
        await self._async_send(msg, block)

    async def arecv(self, *, block: bool = True) -> bytes:
        """Coroutine form of :meth:`recv`."""
        if _get_running_loop() is self.loop and self.protocol_cls.can_recv_messages:
            channel = self.channel
            msg = channel.take_now()
            if msg is None:
                msg = await channel.arecv(self._recv_timeout, block)
            body = msg.body
        else:
            body = (await self._async_recv(block)).body
        return body if type(body) is bytes else bytes(body)

    async def arecv_msg(self, *, block: bool = True) -> Message:
        """Coroutine form of :meth:`recv_msg`."""
        return await self._async_recv(block)

    async def _async_send(self, msg: Message, block: bool) -> None:
        if running_loop() is self.loop:
            await self.channel.asend(msg, self._send_timeout, block)
        else:
            await bridge(self.loop, self.channel.asend(msg, self._send_timeout, block))

    async def _async_recv(self, block: bool) -> Message:
        if not self.protocol_cls.can_recv_messages:
            raise NotSupported(f"{self.protocol_cls.name} sockets cannot receive")
        if running_loop() is self.loop:
            return await self.channel.arecv(self._recv_timeout, block)
        return await bridge(
            self.loop, self.channel.arecv(self._recv_timeout, block), self.channel.requeue
        )

    # ------------------------------------------------------------ contexts

    def new_context(self) -> Context:
        """A new :class:`~purenng.core.context.Context` on this socket.

        The context is made on the socket's loop (its protocol state lives
        there), so from another thread this is one round trip to the loop.
        ``Req0``, ``Surveyor0`` and ``Sub0`` return a subclass with their
        context options and methods.

        Raises:
            NotSupported: the protocol has no contexts (NNG: ENOTSUP).
            Closed: the socket is closed.
        """
        from .context import Context

        return self._new_context(Context)

    def _new_context(self, cls: type[C]) -> C:
        """A new context of class ``cls``, made on the socket's loop."""
        self._check_open()
        if running_loop() is self.loop or self.loop.is_closed():
            return cls(self)
        return run_sync(self.loop, self._anew_context(cls), "new_context")

    async def _anew_context(self, cls: type[C]) -> C:
        self._check_open()  # closed while the request crossed threads
        return cls(self)

    # ------------------------------------------------------------ stats

    def stats(self) -> dict[str, Any]:
        """Counters: messages and bytes in and out, pipes, rejects, drops.

        Returns:
            A dict with the socket totals and ``"pipes"``, a list of the
            live pipes' own counters.
        """
        pipes = list(self._admission.pipes.values())
        r = self._admission.retired
        out: dict[str, Any] = {
            "id": self.id,
            "protocol": self.protocol_cls.name,
            "messages_in": r[0] + sum(p.msgs_in for p in pipes),
            "messages_out": r[1] + sum(p.msgs_out for p in pipes),
            "bytes_in": r[2] + sum(p.bytes_in for p in pipes),
            "bytes_out": r[3] + sum(p.bytes_out for p in pipes),
            **self._stats,
            "pipes": [p.stats() for p in pipes],
        }
        return out

    # ------------------------------------------------------------ close

    def _check_open(self) -> None:
        if self.closed:
            why = self.__dict__.get("_closed_why", "")
            raise Closed(f"{self.protocol_cls.name} socket {self.id} is closed{why}")

    def _orphaned_by_fork(self) -> None:
        """In a forked child: the loop this socket lived on is not running here.

        Nothing on that loop may be touched (no thread runs it), so the
        socket, its channels and contexts are only marked closed, with the
        reason, and every later call raises :class:`Closed` at once.
        """
        d = self.__dict__
        d["closed"] = True
        d["_closed_why"] = f": {_FORK_ADVICE}"
        for channel in [self.channel, *(ctx.channel for ctx in list(self._contexts))]:
            channel.closed = True
            channel.name += " (made before os.fork(): make new sockets in the child)"

    def _close_now(self) -> None:
        if self.closed:
            return
        self.__dict__["closed"] = True
        if self._timer is not None:
            self._timer.cancel()
        self.channel.close()
        for ctx in list(self._contexts):
            ctx._close_now()
        for t in self._setup:
            t.cancel()
        for d in list(self._dialers):
            d.close()
        for lst in list(self._listeners):
            lst.close()
        self._admission.close()
        self._protocol.close()

    async def _linger(self, seconds: float) -> None:
        """Let accepted messages reach the kernel before closing, for at most ``seconds``.

        New sends are refused (``Closed``) from now on; messages already
        accepted (in the channels' hand-off queues, the protocol's per-pipe
        queues and the pipes' write buffers) keep flowing while the peers
        read.  It ends as soon as all of them are empty, or at the deadline;
        what is left then is dropped by the close, as without linger.  Empty
        buffers mean the kernel has the bytes, not that the peer read them:
        this is no acknowledgement.
        """
        channels = [self.channel, *(ctx.channel for ctx in list(self._contexts))]
        refuse = _refuse_send(f"{self.protocol_cls.name} socket {self.id} is closing")
        for ch in channels:
            ch.check_send = refuse
        deadline = self.loop.time() + seconds
        while not self._drained(channels):
            left = deadline - self.loop.time()
            if left <= 0 or self.closed:
                break
            await asyncio.sleep(min(_LINGER_POLL, left))

    def _drained(self, channels: list[Channel]) -> bool:
        if any(ch._handoff for ch in channels) or self._protocol.pending_messages():
            return False
        return not any(p.pending_bytes() for p in self._admission.pipes.values())

    def close(self) -> None:
        """Close the socket, its endpoints and pipes; idempotent, any thread.

        From another thread this waits for ``linger``; on the owning loop it
        cannot wait (``await aclose()`` does).
        """
        if self.closed:
            return
        if running_loop() is self.loop:
            self._close_now()
            return
        if self.loop.is_closed():
            self.__dict__["closed"] = True
            return
        try:
            run_sync(self.loop, self.aclose(), "close")
        except WrongThread:  # pragma: no cover - guarded above
            self._close_now()

    async def aclose(self) -> None:
        """Close and wait until endpoints have released their addresses.

        With ``linger`` set, first wait up to that many seconds for the
        messages already accepted to leave (see :meth:`_linger`).
        """
        if running_loop() is not self.loop:
            await bridge(self.loop, self.aclose())
            return
        linger = self.options.get("linger") or 0.0
        if linger > 0 and not self.closed:
            await self._linger(linger)
        dialers, listeners, setup = list(self._dialers), list(self._listeners), list(self._setup)
        self._close_now()
        for d in dialers:
            await d.aclose()
        for lst in listeners:
            await lst.aclose()
        for t in setup:
            try:
                await t
            except (asyncio.CancelledError, Exception):
                pass

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def __aenter__(self) -> Self:
        setup, self.__dict__["_setup"] = self._setup, []
        try:
            for t in setup:
                await t
        except BaseException:
            await self.aclose()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        state = " closed" if self.closed else ""
        raw = " raw" if self.raw else ""
        return f"<{type(self).__name__} id={self.id} {self.protocol_cls.name}{raw}{state}>"

    def __del__(self) -> None:
        # A socket dropped without close(): release its resources on its loop.
        try:
            if not self.__dict__.get("closed", True) and not self.loop.is_closed():
                self.loop.call_soon_threadsafe(self._close_now)
        except Exception:
            pass


Socket._option_attrs = declared_options(Socket)

#: Every socket not yet garbage collected, for :func:`_after_fork`.
_live_sockets: weakref.WeakSet[Socket] = weakref.WeakSet()


def _after_fork(old: asyncio.AbstractEventLoop) -> None:
    for sock in list(_live_sockets):
        if sock.loop is old and not sock.closed:
            sock._orphaned_by_fork()


on_fork_in_child(_after_fork)

#: Seconds between two looks at the buffers while lingering.
_LINGER_POLL = 0.01


def _refuse_send(why: str) -> Callable[[Message], None]:
    def refuse(msg: Message) -> None:
        raise Closed(why)

    return refuse
