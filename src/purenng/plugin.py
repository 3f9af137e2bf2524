"""Everything a plugin author imports.

A third-party transport or protocol needs nothing else from purenng::

    from purenng.plugin import hookimpl, StreamTransport

    class FooTransport(StreamTransport):
        schemes = ("foo",)
        ...

    @hookimpl
    def purenng_register_transports(registry):
        registry.add_transport(FooTransport())

a declaration of the plugin API it is written for (the registry refuses a
plugin for another major version, or a newer minor, naming both)::

    PURENNG_PLUGIN_API = "1.0"          # purenng.plugin.API_VERSION when written

and one entry point in its ``pyproject.toml``::

    [project.entry-points."purenng.transports"]
    foo = "purenng_foo"

Every name here is loaded on first use (PEP 562): a plugin that needs only
the errors and the ``Protocol`` base class does not import the asyncio
stream machinery, and a pure codec (``transports/_ws_codec.py``) importing
its errors from here stays free of asyncio.  Type checkers see ordinary
imports.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .cli.command import Command as Command
    from .core.byte_stream import AsyncioStream as AsyncioStream
    from .core.byte_stream import Stream as Stream
    from .core.byte_stream import StreamListener as StreamListener
    from .core.byte_stream import StreamProtocol as StreamProtocol
    from .core.channel import Channel as Channel
    from .core.errors import AddressInUse as AddressInUse
    from .core.errors import BadAddress as BadAddress
    from .core.errors import BadOption as BadOption
    from .core.errors import BadState as BadState
    from .core.errors import Closed as Closed
    from .core.errors import ConnectionRefused as ConnectionRefused
    from .core.errors import ConnectionReset as ConnectionReset
    from .core.errors import Error as Error
    from .core.errors import MessageTooLarge as MessageTooLarge
    from .core.errors import NotSupported as NotSupported
    from .core.errors import ProtocolError as ProtocolError
    from .core.errors import Timeout as Timeout
    from .core.errors import TLSError as TLSError
    from .core.hookspecs import hookimpl as hookimpl
    from .core.message import BytesLike as BytesLike
    from .core.message import Message as Message
    from .core.options import SOCKET_OPTIONS as SOCKET_OPTIONS
    from .core.options import OptionSpec as OptionSpec
    from .core.options import boolean as boolean
    from .core.options import duration as duration
    from .core.options import integer as integer
    from .core.options import string as string
    from .core.options import validate as validate
    from .core.pipe import Pipe as Pipe
    from .core.pipe import next_id as next_id
    from .core.protocol import Protocol as Protocol
    from .core.protocol import ProtocolHost as ProtocolHost
    from .core.registry import API_VERSION as API_VERSION
    from .core.registry import Registry as Registry
    from .core.stream_server import AsyncioStreamListener as AsyncioStreamListener
    from .core.stream_server import listening_socket as listening_socket
    from .core.transport import PipeListener as PipeListener
    from .core.transport import PipeTransport as PipeTransport
    from .core.transport import ProtocolInfo as ProtocolInfo
    from .core.transport import StreamTransport as StreamTransport
    from .core.transport import Transport as Transport
    from .core.url import URL as URL
    from .core.url import HostPort as HostPort
    from .core.url import parse_host_port as parse_host_port
    from .tls_config import TLS_CONFIG_OPTION as TLS_CONFIG_OPTION
    from .tls_config import SSLEngine as SSLEngine
    from .tls_config import TLSConfig as TLSConfig
    from .tls_config import TLSEngine as TLSEngine

#: Exported name -> the module (under ``purenng``) that defines it.
_EXPORTS: dict[str, str] = {
    "API_VERSION": "core.registry",
    "Command": "cli.command",
    "AsyncioStream": "core.byte_stream",
    "Stream": "core.byte_stream",
    "StreamListener": "core.byte_stream",
    "StreamProtocol": "core.byte_stream",
    "Channel": "core.channel",
    "AddressInUse": "core.errors",
    "BadAddress": "core.errors",
    "BadOption": "core.errors",
    "BadState": "core.errors",
    "Closed": "core.errors",
    "ConnectionRefused": "core.errors",
    "ConnectionReset": "core.errors",
    "Error": "core.errors",
    "MessageTooLarge": "core.errors",
    "NotSupported": "core.errors",
    "ProtocolError": "core.errors",
    "TLSError": "core.errors",
    "Timeout": "core.errors",
    "hookimpl": "core.hookspecs",
    "BytesLike": "core.message",
    "Message": "core.message",
    "OptionSpec": "core.options",
    "SOCKET_OPTIONS": "core.options",
    "boolean": "core.options",
    "duration": "core.options",
    "integer": "core.options",
    "string": "core.options",
    "validate": "core.options",
    "Pipe": "core.pipe",
    "next_id": "core.pipe",
    "Protocol": "core.protocol",
    "ProtocolHost": "core.protocol",
    "Registry": "core.registry",
    "AsyncioStreamListener": "core.stream_server",
    "listening_socket": "core.stream_server",
    "PipeListener": "core.transport",
    "PipeTransport": "core.transport",
    "ProtocolInfo": "core.transport",
    "StreamTransport": "core.transport",
    "Transport": "core.transport",
    "HostPort": "core.url",
    "URL": "core.url",
    "parse_host_port": "core.url",
    "SSLEngine": "tls_config",
    "TLSConfig": "tls_config",
    "TLSEngine": "tls_config",
    "TLS_CONFIG_OPTION": "tls_config",
}


if not TYPE_CHECKING:
    # Hidden from type checkers: they see the imports above, so a misspelt
    # name imported from here is a type error instead of an ``Any``.

    def __getattr__(name: str) -> Any:
        module = _EXPORTS.get(name)
        if module is None:
            raise AttributeError(f"module 'purenng.plugin' has no attribute {name!r}")
        value = getattr(importlib.import_module("purenng." + module), name)
        globals()[name] = value  # later lookups skip this function
        return value

    def __dir__() -> list[str]:
        return sorted([*globals(), *_EXPORTS])


__all__ = [
    "API_VERSION",
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
