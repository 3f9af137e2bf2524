"""The pluggy hook specifications: the only place hooks are declared.

The hooks are *historic*: the registry calls each once when it starts, and
pluggy replays the call for every plugin module registered later, so a
plugin loaded lazily on first use of its scheme still registers.

A plugin module implements one or more of them::

    from purenng.plugin import hookimpl

    @hookimpl
    def purenng_register_transports(registry):
        registry.add_transport(FooTransport())

Hooks are for registration only; nothing on the per-message path goes through
pluggy (a hook call costs 40-70x a direct call).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from .registry import Registry

__all__ = [
    "PROJECT",
    "hookimpl",
    "hookspec",
    "purenng_register_protocols",
    "purenng_register_tls_engines",
    "purenng_register_transports",
]

#: The pluggy project name.
PROJECT = "purenng"
hookspec: pluggy.HookspecMarker = pluggy.HookspecMarker(PROJECT)
hookimpl: pluggy.HookimplMarker = pluggy.HookimplMarker(PROJECT)


@hookspec(historic=True)
def purenng_register_transports(registry: Registry) -> None:
    """Register transports with ``registry.add_transport(transport)``.

    Args:
        registry: The process-wide plugin registry.
    """


@hookspec(historic=True)
def purenng_register_protocols(registry: Registry) -> None:
    """Register protocols with ``registry.add_protocol(protocol_class)``.

    Args:
        registry: The process-wide plugin registry.
    """


@hookspec(historic=True)
def purenng_register_tls_engines(registry: Registry) -> None:
    """Register TLS engines with ``registry.add_tls_engine(name, engine)``.

    An engine turns a :class:`purenng.TLSConfig` into ``ssl.SSLContext``
    objects (see :mod:`purenng.tls_config`).  Entry-point group: ``purenng.tls_engines``.

    Args:
        registry: The process-wide plugin registry.
    """
