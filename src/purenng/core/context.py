"""Contexts: independent conversations on one socket (NNG's ``nng_ctx``).

A context has its own send/receive state in the protocol (a REQ context
tracks its own outstanding request) and its own
:class:`~purenng.core.channel.Channel`, so many requests can be in flight on
one socket without raw mode.  Protocols that support contexts implement
``Protocol.new_context(channel)`` and return an object with ``try_send``,
``can_send`` and ``close``; the others raise
:class:`~purenng.core.errors.NotSupported`, as NNG does for PAIR or PUSH.

A context's sends are inputs of its socket's protocol like the socket's
own: for a protocol with deadlines they update the socket's one timer (the
protocol reports the earliest deadline of all its contexts).  The protocol's
context object is called on the socket's loop only; methods it exposes
through ``context_methods`` (SUB ``subscribe``...) are carried there from
other threads by this class, and return once they have run.

``Req0``, ``Surveyor0`` and ``Sub0`` make the subclasses :class:`ReqContext`,
:class:`SurveyorContext` and :class:`SubContext`, which declare those
options and methods for type checkers (a ``Context`` made by
``Socket("req0")`` reaches the same ones at run time).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Self

from .bridge import bridge, running_loop
from .channel import Channel
from .errors import BadOption, NotSupported
from .loop import run_sync
from .message import Message
from .options import Option, unknown_option, validate
from .pipe import next_id

if TYPE_CHECKING:
    from collections.abc import Callable

    from .message import BytesLike
    from .socket import Socket

__all__ = ["Context", "ReqContext", "SubContext", "SurveyorContext"]


class Context:
    """One conversation on a socket: ``send``/``recv``/``asend``/``arecv``.

    Made with :meth:`Socket.new_context`, on the socket's loop.

    Raises:
        NotSupported: the socket's protocol has no contexts.
        Closed: the socket is closed.
    """

    def __init__(self, sock: Socket) -> None:
        factory = getattr(sock._protocol, "new_context", None)
        if factory is None:
            raise NotSupported(f"{sock.protocol_cls.name} sockets have no contexts")
        sock._check_open()
        self.id: int = next_id()
        self.socket: Socket = sock
        self.closed: bool = False
        self.channel: Channel = Channel(
            sock.loop,
            recv_capacity=max(1, sock.options["recv_buffer"]),
            name=f"context {self.id} of {sock.protocol_cls.name} socket {sock.id}",
        )
        self._impl: Any = factory(self.channel)
        try_send = self._impl.try_send
        self.channel.bind(
            sock._timed(try_send) if sock._timer is not None else try_send,
            self._impl.can_send,
        )
        self.recv_timeout: float | None = sock.options["recv_timeout"]
        self.send_timeout: float | None = sock.options["send_timeout"]
        # Closing the socket closes its contexts (their waiters get Closed).
        sock._contexts.add(self)

    def _option_specs(self) -> Any:
        return getattr(self.__dict__.get("_impl"), "option_specs", None) or {}

    def _get_option(self, name: str) -> Any:
        """A per-context protocol option, read from the protocol's context object."""
        if name not in self._option_specs():
            raise self._unknown_option(name)
        return getattr(self._impl, name)

    def _set_option(self, name: str, value: Any) -> None:
        """Validate and set a per-context protocol option."""
        spec = self._option_specs().get(name)
        if spec is None:
            raise self._unknown_option(name)
        setattr(self._impl, name, validate(spec, value))

    def _unknown_option(self, name: str) -> BadOption:
        known = [*self._option_specs(), "recv_timeout", "send_timeout"]
        return unknown_option(type(self).__name__, name, known)

    # Hidden from type checkers, so that a misspelt attribute is a type error;
    # the subclasses declare their protocol's options and methods.
    if not TYPE_CHECKING:

        def __getattr__(self, name: str) -> Any:
            # Per-context protocol options (REQ ``resend_time``...) live on the
            # protocol's context object, which lists them in ``option_specs``;
            # its methods (SUB ``subscribe``...) are listed in ``context_methods``.
            impl = self.__dict__.get("_impl")
            if name in getattr(impl, "option_specs", ()):
                return getattr(impl, name)
            if name in getattr(impl, "context_methods", ()):
                value = getattr(impl, name)
                if callable(value):
                    return self._on_loop(value, name)
                return value
            raise AttributeError(f"{type(self).__name__} has no attribute or option {name!r}")

        def __setattr__(self, name: str, value: Any) -> None:
            impl = self.__dict__.get("_impl")
            specs = getattr(impl, "option_specs", None)
            if specs and name in specs:
                setattr(impl, name, validate(specs[name], value))
            else:
                object.__setattr__(self, name, value)

    def _on_loop(self, fn: Callable[..., Any], what: str) -> Callable[..., Any]:
        """``fn`` made callable from any thread: it runs on the socket's loop."""
        sock = self.socket

        def call(*args: Any) -> Any:
            return sock._call_on_loop(fn, args, what)

        call.__name__ = what
        call.__doc__ = fn.__doc__
        return call

    def send(self, data: BytesLike, *, block: bool = True) -> None:
        """Send on this context (blocking; not on the owning loop)."""
        self.channel.send(Message(data), self.send_timeout, block)

    def send_msg(self, msg: Message, *, block: bool = True) -> None:
        """Send a :class:`Message` on this context."""
        self.channel.send(msg, self.send_timeout, block)

    def recv(self, *, block: bool = True) -> bytes:
        """Receive on this context (blocking; not on the owning loop)."""
        return self.channel.recv(self.recv_timeout, block).bytes

    def recv_msg(self, *, block: bool = True) -> Message:
        """Receive a :class:`Message` on this context."""
        return self.channel.recv(self.recv_timeout, block)

    async def asend(self, data: BytesLike, *, block: bool = True) -> None:
        """Coroutine form of :meth:`send`."""
        await self.asend_msg(Message(data), block=block)

    async def asend_msg(self, msg: Message, *, block: bool = True) -> None:
        """Coroutine form of :meth:`send_msg`."""
        coro = self.channel.asend(msg, self.send_timeout, block)
        if running_loop() is self.socket.loop:
            await coro
        else:
            await bridge(self.socket.loop, coro)

    async def arecv(self, *, block: bool = True) -> bytes:
        """Coroutine form of :meth:`recv`."""
        return (await self.arecv_msg(block=block)).bytes

    async def arecv_msg(self, *, block: bool = True) -> Message:
        """Coroutine form of :meth:`recv_msg`."""
        coro = self.channel.arecv(self.recv_timeout, block)
        if running_loop() is self.socket.loop:
            return await coro
        result: Message = await bridge(self.socket.loop, coro, self.channel.requeue)
        return result

    def close(self) -> None:
        """Close the context; pending operations fail with Closed.  Idempotent."""
        if self.closed:
            return
        self.closed = True
        if running_loop() is self.socket.loop or self.socket.loop.is_closed():
            self._close_now()
        else:
            run_sync(self.socket.loop, self._aclose(), "close")

    async def _aclose(self) -> None:
        self._close_now()

    def _close_now(self) -> None:
        self.__dict__["closed"] = True
        if self.channel.closed:
            return
        self.channel.close()
        self._impl.close()
        self.socket._contexts.discard(self)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class ReqContext(Context):
    """A REQ context: one request outstanding, resent after its own ``resend_time``."""

    resend_time: Option[float | None] = Option()


class SurveyorContext(Context):
    """A SURVEYOR context: one survey running, for its own ``survey_time``."""

    survey_time: Option[float | None] = Option()


class SubContext(Context):
    """A SUB context: its own subscriptions, queue size and ``prefer_new``."""

    prefer_new: Option[bool] = Option()
    recv_buffer: Option[int] = Option()

    def subscribe(self, topic: bytes | str) -> None:
        """Receive messages whose body starts with ``topic`` (``str``: UTF-8).

        Applied on the socket's loop before returning; callable from any thread.
        """
        self.socket._call_on_loop(self._impl.subscribe, (topic,), "subscribe")

    def unsubscribe(self, topic: bytes | str) -> None:
        """Undo :meth:`subscribe`; queued messages that no longer match go.

        Raises:
            BadOption: ``topic`` is not subscribed.
        """
        self.socket._call_on_loop(self._impl.unsubscribe, (topic,), "unsubscribe")

    @property
    def topics(self) -> list[bytes]:
        """The subscribed topics, in the order they were added."""
        topics: list[bytes] = self._impl.topics
        return topics
