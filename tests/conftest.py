"""Shared test setup.

* Only purenng's own plugins load by themselves (CONVENTIONS §3).
* **Both event loops.**  uvloop, the background loop's default when it is
  installed, hides bugs that the standard asyncio loop shows, and a user's
  own ``asyncio.run()`` uses the standard one.  So the transport, protocol
  and reliability modules below run every test on both: async tests once per
  loop factory (``pytest_asyncio_loop_factories``), blocking tests once per
  kind of background loop (the ``background_loop_kind`` parameter restarts
  purenng's background loop between tests when the kind changes).  Tests
  that choose a loop themselves are left alone.
"""

from __future__ import annotations

import asyncio
import importlib.util
import inspect
import os
from typing import TYPE_CHECKING, Any

import pytest

from purenng.core import loop as loop_mod

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Mapping

os.environ["PURENNG_DISABLE_PLUGIN_AUTOLOAD"] = "1"

HAVE_UVLOOP = importlib.util.find_spec("uvloop") is not None

#: Test modules (file stems) whose tests run on both loops.
BOTH_LOOPS = frozenset(
    {
        "test_bad_input",
        "test_bus",
        "test_conformance",
        "test_device",
        "test_http",
        "test_http_limits",
        "test_inproc",
        "test_ipc",
        "test_linger_idle",
        "test_listener_limits",
        "test_pair0",
        "test_pair1",
        "test_pipeline",
        "test_pubsub",
        "test_reliability_core",
        "test_reqrep",
        "test_stream_api",
        "test_stream_ws",
        "test_survey",
        "test_tls",
        "test_ws",
        "test_ws_reliability",
    }
)


def _both_loops(node: Any) -> bool:
    path = getattr(node, "path", None)
    if path is None:
        return False
    return path.stem in BOTH_LOOPS or "faults" in path.parts


def pytest_asyncio_loop_factories(
    config: pytest.Config, item: pytest.Item
) -> Mapping[str, Callable[[], asyncio.AbstractEventLoop]]:
    if not HAVE_UVLOOP or not _both_loops(item):
        return {"asyncio": asyncio.new_event_loop}  # one factory: ids unchanged
    import uvloop

    return {"asyncio": asyncio.new_event_loop, "uvloop": uvloop.new_event_loop}


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    fn = metafunc.function
    if (
        not HAVE_UVLOOP
        or not _both_loops(metafunc.definition)
        or inspect.iscoroutinefunction(fn)
        or "loop" in metafunc.fixturenames
    ):
        return
    if "background_loop_kind" not in metafunc.fixturenames:
        metafunc.fixturenames.append("background_loop_kind")
    metafunc.parametrize(
        "background_loop_kind", ["uvloop", "asyncio"], indirect=True, scope="module"
    )


@pytest.fixture(scope="module")
def background_loop_kind(request: pytest.FixtureRequest) -> Iterator[str]:
    """Run this module's blocking tests on the named kind of background loop."""
    kind: str = request.param
    _use_background_loop(kind)
    try:
        yield kind
    finally:
        _use_background_loop(None)


def _use_background_loop(kind: str | None) -> None:
    """Switch the next background loop to ``kind`` (None: the default)."""
    before = os.environ.get("PURENNG_LOOP")
    if kind is None:
        os.environ.pop("PURENNG_LOOP", None)
    else:
        os.environ["PURENNG_LOOP"] = kind
    if os.environ.get("PURENNG_LOOP") != before:
        loop_mod.reset_background_loop()
