"""Everything a plugin author imports.

A third-party transport or protocol needs nothing else from purenng::

    from purenng.plugin import hookimpl, StreamTransport

    class FooTransport(StreamTransport):
        schemes = ("foo",)
        ...

    @hookimpl
    def purenng_register_transports(registry):
        registry.add_transport(FooTransport())

and one entry point in its ``pyproject.toml``::

    [project.entry-points."purenng.transports"]
    foo = "purenng_foo"
"""

from __future__ import annotations

from .core.errors import (
    AddressInUse as AddressInUse,
    BadAddress as BadAddress,
    Closed as Closed,
    ConnectionRefused as ConnectionRefused,
    ConnectionReset as ConnectionReset,
    MessageTooLarge as MessageTooLarge,
    ProtocolError as ProtocolError,
)
from .core.hookspecs import hookimpl as hookimpl
from .core.message import Message as Message
from .core.options import (
    OptionSpec as OptionSpec,
    boolean as boolean,
    duration as duration,
    integer as integer,
    string as string,
)
from .core.pipe import Pipe as Pipe, next_id as next_id
from .core.protocol import Protocol as Protocol, ProtocolHost as ProtocolHost
from .core.registry import Registry as Registry
from .core.stream import (
    AsyncioStream as AsyncioStream,
    AsyncioStreamListener as AsyncioStreamListener,
    Stream as Stream,
    StreamListener as StreamListener,
    StreamProtocol as StreamProtocol,
)
from .core.transport import (
    PipeListener as PipeListener,
    PipeTransport as PipeTransport,
    ProtocolInfo as ProtocolInfo,
    StreamTransport as StreamTransport,
    Transport as Transport,
)
from .core.url import URL as URL, HostPort as HostPort, parse_host_port as parse_host_port

__all__ = [
    "URL",
    "AddressInUse",
    "AsyncioStream",
    "AsyncioStreamListener",
    "BadAddress",
    "Closed",
    "ConnectionRefused",
    "ConnectionReset",
    "HostPort",
    "Message",
    "MessageTooLarge",
    "OptionSpec",
    "Pipe",
    "PipeListener",
    "PipeTransport",
    "Protocol",
    "ProtocolError",
    "ProtocolHost",
    "ProtocolInfo",
    "Registry",
    "Stream",
    "StreamListener",
    "StreamProtocol",
    "StreamTransport",
    "Transport",
    "boolean",
    "duration",
    "hookimpl",
    "integer",
    "next_id",
    "parse_host_port",
    "string",
]
