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

from typing import TYPE_CHECKING, Any

from .cli.command import Command as Command
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
from .core.channel import Channel as Channel
from .core.errors import (
    AddressInUse as AddressInUse,
)
from .core.errors import (
    BadAddress as BadAddress,
)
from .core.errors import BadOption as BadOption
from .core.errors import BadState as BadState
from .core.errors import (
    Closed as Closed,
)
from .core.errors import (
    ConnectionRefused as ConnectionRefused,
)
from .core.errors import (
    ConnectionReset as ConnectionReset,
)
from .core.errors import Error as Error
from .core.errors import (
    MessageTooLarge as MessageTooLarge,
)
from .core.errors import NotSupported as NotSupported
from .core.errors import (
    ProtocolError as ProtocolError,
)
from .core.errors import Timeout as Timeout
from .core.errors import TLSError as TLSError
from .core.hookspecs import hookimpl as hookimpl
from .core.message import BytesLike as BytesLike
from .core.message import Message as Message
from .core.options import SOCKET_OPTIONS as SOCKET_OPTIONS
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
from .core.options import validate as validate
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

if TYPE_CHECKING:
    from .tls_config import TLS_CONFIG_OPTION as TLS_CONFIG_OPTION
    from .tls_config import SSLEngine as SSLEngine
    from .tls_config import TLSConfig as TLSConfig
    from .tls_config import TLSEngine as TLSEngine

#: Loaded on first use: TLS configuration costs an import that plain tcp and
#: every protocol plugin can do without.
_TLS_NAMES = frozenset({"TLS_CONFIG_OPTION", "SSLEngine", "TLSConfig", "TLSEngine"})


def __getattr__(name: str) -> Any:
    if name in _TLS_NAMES:
        from . import tls_config

        return getattr(tls_config, name)
    raise AttributeError(f"module 'purenng.plugin' has no attribute {name!r}")


__all__ = [
    "SOCKET_OPTIONS",
    "TLS_CONFIG_OPTION",
    "URL",
    "AddressInUse",
    "AsyncioStream",
    "AsyncioStreamListener",
    "BadAddress",
    "BadOption",
    "BadState",
    "BytesLike",
    "Channel",
    "Closed",
    "Command",
    "ConnectionRefused",
    "ConnectionReset",
    "Error",
    "HostPort",
    "Message",
    "MessageTooLarge",
    "NotSupported",
    "OptionSpec",
    "Pipe",
    "PipeListener",
    "PipeTransport",
    "Protocol",
    "ProtocolError",
    "ProtocolHost",
    "ProtocolInfo",
    "Registry",
    "SSLEngine",
    "Stream",
    "StreamListener",
    "StreamProtocol",
    "StreamTransport",
    "TLSConfig",
    "TLSEngine",
    "TLSError",
    "Timeout",
    "Transport",
    "boolean",
    "duration",
    "hookimpl",
    "integer",
    "listening_socket",
    "next_id",
    "parse_host_port",
    "string",
    "validate",
]
