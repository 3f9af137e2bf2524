"""The transport plugin interfaces.

Two kinds of transport exist (DESIGN.md, "Layers"):

* A :class:`StreamTransport` makes byte :class:`~purenng.core.byte_stream.Stream`
  objects (tcp, ipc, tls...).  It never sees SP: the shared adapter in
  :mod:`purenng.core.sp_stream` does the handshake and framing on top.
* A :class:`PipeTransport` makes message :class:`~purenng.core.pipe.Pipe`
  objects itself (inproc, ws, udp), because its medium already frames
  messages.

A transport object is registered once, under one or more URL schemes, and
used by every socket: it must keep no per-socket state.  Every coroutine here
runs on the loop of the socket that called it.  Modelled on NNG's
``src/sp/transport.h``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from .byte_stream import Stream, StreamListener
    from .options import OptionSpec
    from .pipe import Pipe
    from .url import URL

__all__ = ["PipeListener", "PipeTransport", "ProtocolInfo", "StreamTransport", "Transport"]


@dataclass(frozen=True, slots=True)
class ProtocolInfo:
    """What a message transport needs to know of the socket's protocol.

    Attributes:
        self_id: The socket's SP protocol number.
        peer_id: The protocol number it expects from peers.
        self_name: E.g. ``"req"`` (NNG's name, used for ws subprotocols).
        peer_name: E.g. ``"rep"``.
    """

    self_id: int
    peer_id: int
    self_name: str
    peer_name: str


class Transport(ABC):
    """Common part of both transport kinds.

    Attributes:
        schemes: The URL schemes this object serves, e.g. ``("tcp", "tcp4", "tcp6")``.
        option_specs: Options this transport understands, by name.  Names
            start with the option prefix (:attr:`option_prefix`) and ``_``.
        option_prefix: Prefix of this transport's option names (``"tcp"``).
    """

    schemes: ClassVar[tuple[str, ...]] = ()
    option_specs: ClassVar[Mapping[str, OptionSpec]] = {}
    option_prefix: ClassVar[str] = ""

    def check_url(self, url: URL) -> None:  # noqa: B027 - optional override
        """Raise :class:`~purenng.core.errors.BadAddress` if ``url`` is unusable.

        Called before dial and listen so that a bad URL fails at once, even
        for a non-blocking dial.
        """

    def check_dial_url(self, url: URL) -> None:
        """Like :meth:`check_url`, for dialing (e.g. no wildcard host, no port 0).

        Called instead of :meth:`check_url` before a dial, so that a
        non-blocking dial to an address nobody can connect to fails at once
        rather than retrying for ever.  Defaults to :meth:`check_url`.
        """
        self.check_url(url)


class StreamTransport(Transport):
    """A transport that produces byte streams.

    Attributes:
        ipc_framing: Put ipc's one-byte message type before each length.
    """

    ipc_framing: ClassVar[bool] = False

    @abstractmethod
    async def dial(self, url: URL, options: Mapping[str, Any]) -> Stream:
        """Connect to ``url``.

        Raises:
            ConnectionRefused: nobody listens there.
            BadAddress: the URL cannot be used.
        """

    @abstractmethod
    async def listen(self, url: URL, options: Mapping[str, Any]) -> StreamListener:
        """Bind ``url`` and return a listener whose ``url`` has the real port.

        Raises:
            AddressInUse: the address is taken.
            BadAddress: the URL cannot be used.
        """


class PipeListener(ABC):
    """A bound endpoint of a message transport."""

    @abstractmethod
    def close(self) -> None:
        """Stop accepting; idempotent.  Pipes already made live on."""

    @property
    @abstractmethod
    def url(self) -> str:
        """The bound URL."""

    @property
    def local_address(self) -> Any:
        """The bound address, transport-specific."""
        return None


class PipeTransport(Transport):
    """A transport that produces message pipes itself."""

    @abstractmethod
    async def dial(self, url: URL, options: Mapping[str, Any], proto: ProtocolInfo) -> Pipe:
        """Connect to ``url`` and return a pipe whose ``peer_id`` is set.

        The pipe has no owner yet; the socket attaches it.
        """

    @abstractmethod
    async def listen(
        self,
        url: URL,
        options: Mapping[str, Any],
        proto: ProtocolInfo,
        on_pipe: Callable[[Pipe], None],
    ) -> PipeListener:
        """Bind ``url``; call ``on_pipe`` (on the listener's loop) for each new pipe."""
