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

from .core.byte_stream import (
    AsyncioStream as AsyncioStream,
)
from .core.byte_stream import (
    Stream as Stream,
)
from .core.byte_stream import (
    StreamListener as StreamListener,
)
from .core.byte_stream import (
    StreamProtocol as StreamProtocol,
)
from .core.errors import (
    AddressInUse as AddressInUse,
)
from .core.errors import (
    BadAddress as BadAddress,
)
from .core.errors import (
    Closed as Closed,
)
from .core.errors import (
    ConnectionRefused as ConnectionRefused,
)
from .core.errors import (
    ConnectionReset as ConnectionReset,
)
from .core.errors import (
    MessageTooLarge as MessageTooLarge,
)
from .core.errors import (
    ProtocolError as ProtocolError,
)
from .core.hookspecs import hookimpl as hookimpl
from .core.message import Message as Message
from .core.options import (
    OptionSpec as OptionSpec,
)
from .core.options import (
    boolean as boolean,
)
from .core.options import (
    duration as duration,
)
from .core.options import (
    integer as integer,
)
from .core.options import (
    string as string,
)
from .core.pipe import Pipe as Pipe
from .core.pipe import next_id as next_id
from .core.protocol import Protocol as Protocol
from .core.protocol import ProtocolHost as ProtocolHost
from .core.registry import Registry as Registry
from .core.stream_server import (
    AsyncioStreamListener as AsyncioStreamListener,
)
from .core.stream_server import (
    listening_socket as listening_socket,
)
from .core.transport import (
    PipeListener as PipeListener,
)
from .core.transport import (
    PipeTransport as PipeTransport,
)
from .core.transport import (
    ProtocolInfo as ProtocolInfo,
)
from .core.transport import (
    StreamTransport as StreamTransport,
)
from .core.transport import (
    Transport as Transport,
)
from .core.url import URL as URL
from .core.url import HostPort as HostPort
from .core.url import parse_host_port as parse_host_port

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
    "listening_socket",
    "next_id",
    "parse_host_port",
    "string",
]
