"""Testing helpers shipped with purenng: a pytest plugin and the transport conformance kit.

* :func:`check_transport` / :func:`check_transport_sync`: the conformance kit
  every transport runs on itself (:mod:`purenng.testing.conformance`).
* :func:`snapshot_resources`, :func:`assert_no_leaks`, :func:`aassert_no_leaks`,
  :func:`no_leaks`, :func:`ano_leaks`: leak checks for fds, threads and tasks
  (:mod:`purenng.testing.leaks`).
* :class:`FaultProxy`: a tcp/ipc proxy that delays, splits, stalls,
  corrupts and cuts the bytes between two peers, for fault-injection tests
  (:mod:`purenng.testing.faultproxy`).
* :class:`FakeProtocolHost`, :class:`FakeClock`, :class:`FakePipe`: drive a
  protocol (built-in or third-party) by hand, with fake pipes and a fake
  clock, no loop, no socket and no sleep (:mod:`purenng.testing.protocol_host`).
* :func:`make_dev_certs`: a throwaway CA with server and client
  certificates for TLS tests (from the public :mod:`purenng.certs`, needs
  ``cryptography``).
* The pytest plugin (:mod:`purenng.testing.pytest_plugin`, loaded through the
  ``pytest11`` entry point) gives ``purenng_*`` fixtures.

Names load on first use: pytest imports this package in every session of an
environment where purenng is installed, and that must stay cheap.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_LAZY: dict[str, str] = {
    "CHECKS": "purenng.testing.conformance",
    "ConformanceError": "purenng.testing.conformance",
    "ConformanceReport": "purenng.testing.conformance",
    "check_pipe_transport": "purenng.testing.conformance",
    "check_stream_transport": "purenng.testing.conformance",
    "check_transport": "purenng.testing.conformance",
    "check_transport_sync": "purenng.testing.conformance",
    "LeakError": "purenng.testing.leaks",
    "Leaks": "purenng.testing.leaks",
    "ResourceSnapshot": "purenng.testing.leaks",
    "aassert_no_leaks": "purenng.testing.leaks",
    "ano_leaks": "purenng.testing.leaks",
    "assert_no_leaks": "purenng.testing.leaks",
    "find_leaks": "purenng.testing.leaks",
    "no_leaks": "purenng.testing.leaks",
    "snapshot_resources": "purenng.testing.leaks",
    "FaultProxy": "purenng.testing.faultproxy",
    "ProxyStats": "purenng.testing.faultproxy",
    "FakeClock": "purenng.testing.protocol_host",
    "FakeContext": "purenng.testing.protocol_host",
    "FakePipe": "purenng.testing.protocol_host",
    "FakeProtocolHost": "purenng.testing.protocol_host",
    "DevCerts": "purenng.certs",
    "make_dev_certs": "purenng.certs",
}

__all__ = [
    "CHECKS",
    "ConformanceError",
    "ConformanceReport",
    "DevCerts",
    "FakeClock",
    "FakeContext",
    "FakePipe",
    "FakeProtocolHost",
    "FaultProxy",
    "LeakError",
    "Leaks",
    "ProxyStats",
    "ResourceSnapshot",
    "aassert_no_leaks",
    "ano_leaks",
    "assert_no_leaks",
    "check_pipe_transport",
    "check_stream_transport",
    "check_transport",
    "check_transport_sync",
    "find_leaks",
    "make_dev_certs",
    "no_leaks",
    "snapshot_resources",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'purenng.testing' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


if TYPE_CHECKING:
    from ..certs import DevCerts as DevCerts
    from ..certs import make_dev_certs as make_dev_certs
    from .conformance import CHECKS as CHECKS
    from .conformance import ConformanceError as ConformanceError
    from .conformance import ConformanceReport as ConformanceReport
    from .conformance import check_pipe_transport as check_pipe_transport
    from .conformance import check_stream_transport as check_stream_transport
    from .conformance import check_transport as check_transport
    from .conformance import check_transport_sync as check_transport_sync
    from .faultproxy import FaultProxy as FaultProxy
    from .faultproxy import ProxyStats as ProxyStats
    from .leaks import LeakError as LeakError
    from .leaks import Leaks as Leaks
    from .leaks import ResourceSnapshot as ResourceSnapshot
    from .leaks import aassert_no_leaks as aassert_no_leaks
    from .leaks import ano_leaks as ano_leaks
    from .leaks import assert_no_leaks as assert_no_leaks
    from .leaks import find_leaks as find_leaks
    from .leaks import no_leaks as no_leaks
    from .leaks import snapshot_resources as snapshot_resources
    from .protocol_host import FakeClock as FakeClock
    from .protocol_host import FakeContext as FakeContext
    from .protocol_host import FakePipe as FakePipe
    from .protocol_host import FakeProtocolHost as FakeProtocolHost
