"""purenng: the Scalability Protocols of NNG in pure Python.

Public names are loaded on first use, so ``import purenng`` stays cheap and
imports no transport, protocol or optional dependency.

Example::

    import purenng

    with purenng.Pull0(listen="tcp://127.0.0.1:5555") as pull:
        print(pull.recv())
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0.dev0"

_LAZY: dict[str, str] = {
    # sockets
    "Socket": "purenng.core.socket",
    "PipeEvent": "purenng.core.pipe",
    "Bus0": "purenng.core.socket_classes",
    "Pair0": "purenng.core.socket_classes",
    "Pair1": "purenng.core.socket_classes",
    "Pub0": "purenng.core.socket_classes",
    "Pull0": "purenng.core.socket_classes",
    "Push0": "purenng.core.socket_classes",
    "Rep0": "purenng.core.socket_classes",
    "Req0": "purenng.core.socket_classes",
    "Respondent0": "purenng.core.socket_classes",
    "Sub0": "purenng.core.socket_classes",
    "Surveyor0": "purenng.core.socket_classes",
    "Context": "purenng.core.context",
    "ReqContext": "purenng.core.context",
    "SubContext": "purenng.core.context",
    "SurveyorContext": "purenng.core.context",
    "Dialer": "purenng.core.endpoint",
    "Listener": "purenng.core.endpoint",
    "Message": "purenng.core.message",
    "Pipe": "purenng.core.pipe",
    "configure_plugins": "purenng.core.registry",
    # TLS
    "TLSConfig": "purenng.tls_config",
    # devices
    "adevice": "purenng.devices",
    "device": "purenng.devices",
    # errors
    "AddressInUse": "purenng.core.errors",
    "BadAddress": "purenng.core.errors",
    "BadOption": "purenng.core.errors",
    "BadState": "purenng.core.errors",
    "Closed": "purenng.core.errors",
    "ConfigError": "purenng.core.errors",
    "ConnectionRefused": "purenng.core.errors",
    "ConnectionReset": "purenng.core.errors",
    "Error": "purenng.core.errors",
    "MessageTooLarge": "purenng.core.errors",
    "NotSupported": "purenng.core.errors",
    "PluginError": "purenng.core.errors",
    "ProtocolError": "purenng.core.errors",
    "TLSError": "purenng.core.errors",
    "Timeout": "purenng.core.errors",
    "TryAgain": "purenng.core.errors",
    "WrongThread": "purenng.core.errors",
}

__all__ = [
    "AddressInUse",
    "BadAddress",
    "BadOption",
    "BadState",
    "Bus0",
    "Closed",
    "ConfigError",
    "ConnectionRefused",
    "ConnectionReset",
    "Context",
    "Dialer",
    "Error",
    "Listener",
    "Message",
    "MessageTooLarge",
    "NotSupported",
    "Pair0",
    "Pair1",
    "Pipe",
    "PipeEvent",
    "PluginError",
    "ProtocolError",
    "Pub0",
    "Pull0",
    "Push0",
    "Rep0",
    "Req0",
    "ReqContext",
    "Respondent0",
    "Socket",
    "Sub0",
    "SubContext",
    "Surveyor0",
    "SurveyorContext",
    "TLSConfig",
    "TLSError",
    "Timeout",
    "TryAgain",
    "WrongThread",
    "__version__",
    "adevice",
    "configure_plugins",
    "device",
]

#: Submodules reachable as attributes without an explicit import (``purenng.stream.dial``).
_SUBMODULES = frozenset({"stream", "tls_config"})


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None and name in _SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")
    if module is None:
        raise AttributeError(f"module 'purenng' has no attribute {name!r}")
    mod = importlib.import_module(module)
    # Bind every public name of that module at once: importing a submodule
    # binds the *module* to the package attribute of the same name
    # (purenng.device), which must not hide the function of that name.
    for other, where in _LAZY.items():
        if where == module:
            globals()[other] = getattr(mod, other)
    return globals()[name]


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


if TYPE_CHECKING:
    from .core.context import Context as Context
    from .core.context import ReqContext as ReqContext
    from .core.context import SubContext as SubContext
    from .core.context import SurveyorContext as SurveyorContext
    from .core.endpoint import Dialer as Dialer
    from .core.endpoint import Listener as Listener
    from .core.errors import (
        AddressInUse as AddressInUse,
    )
    from .core.errors import (
        BadAddress as BadAddress,
    )
    from .core.errors import (
        BadOption as BadOption,
    )
    from .core.errors import (
        BadState as BadState,
    )
    from .core.errors import (
        Closed as Closed,
    )
    from .core.errors import (
        ConfigError as ConfigError,
    )
    from .core.errors import (
        ConnectionRefused as ConnectionRefused,
    )
    from .core.errors import (
        ConnectionReset as ConnectionReset,
    )
    from .core.errors import (
        Error as Error,
    )
    from .core.errors import (
        MessageTooLarge as MessageTooLarge,
    )
    from .core.errors import (
        NotSupported as NotSupported,
    )
    from .core.errors import (
        PluginError as PluginError,
    )
    from .core.errors import (
        ProtocolError as ProtocolError,
    )
    from .core.errors import (
        Timeout as Timeout,
    )
    from .core.errors import (
        TLSError as TLSError,
    )
    from .core.errors import (
        TryAgain as TryAgain,
    )
    from .core.errors import (
        WrongThread as WrongThread,
    )
    from .core.message import Message as Message
    from .core.pipe import Pipe as Pipe
    from .core.pipe import PipeEvent as PipeEvent
    from .core.registry import configure_plugins as configure_plugins
    from .core.socket import Socket as Socket
    from .core.socket_classes import (
        Bus0 as Bus0,
    )
    from .core.socket_classes import (
        Pair0 as Pair0,
    )
    from .core.socket_classes import (
        Pair1 as Pair1,
    )
    from .core.socket_classes import (
        Pub0 as Pub0,
    )
    from .core.socket_classes import (
        Pull0 as Pull0,
    )
    from .core.socket_classes import (
        Push0 as Push0,
    )
    from .core.socket_classes import (
        Rep0 as Rep0,
    )
    from .core.socket_classes import (
        Req0 as Req0,
    )
    from .core.socket_classes import (
        Respondent0 as Respondent0,
    )
    from .core.socket_classes import (
        Sub0 as Sub0,
    )
    from .core.socket_classes import (
        Surveyor0 as Surveyor0,
    )
    from .devices import adevice as adevice
    from .devices import device as device
    from .tls_config import TLSConfig as TLSConfig
