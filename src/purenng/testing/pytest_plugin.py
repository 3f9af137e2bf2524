"""purenng's pytest plugin (loaded through the ``pytest11`` entry point).

Fixtures, all prefixed ``purenng_``:

* ``purenng_free_port``: a tcp port on 127.0.0.1 that was free a moment ago.
  For external peers (nngcat, pynng) only: where purenng listens itself,
  listen on port 0 and read ``listener.port``, which cannot race.
* ``purenng_tcp_url``: ``tcp://127.0.0.1:<free port>``.
* ``purenng_ipc_url``: ``ipc://`` + a fresh path under ``tmp_path``, or under
  a short directory in ``/tmp`` (removed afterwards) when ``tmp_path`` would
  make the path too long for a unix socket address (107 bytes).
* ``purenng_abstract_url``: a unique ``abstract://`` name (Linux).
* ``purenng_inproc_url``: an ``inproc://`` name made of the test id and a
  counter, so it says which test it belongs to.
* ``purenng_url``: parametrised over the built-in transports (tcp, ipc,
  abstract, inproc), each a *listen* URL; tcp's uses port 0, so read the bound
  address back from ``listener.url``.
* ``purenng_leak_check``: fails the test if it leaves more file descriptors,
  threads or (async tests) tasks of its loop open than it found
  (:mod:`purenng.testing.leaks` has the rules).

Theory of operation of the leak check: the fixture wraps the test function
itself, so the snapshot is taken after every fixture is set up and compared
before any is torn down, and, for an async test, both happen inside the
test's own loop, where its tasks can be seen and given time to finish.  A
test that fails is not checked again (its own failure says more).  The
grace period, polled, is the ini option ``purenng_leak_timeout`` (seconds,
default 2).  purenng's background loop thread is started before the
snapshot: it is process-wide and its descriptors are not a test's leak.

The module imports nothing of purenng at import time: pytest loads it in
every session of an environment where purenng is installed.
"""

from __future__ import annotations

import functools
import inspect
import itertools
import os
import re
import secrets
import shutil
import socket
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

__all__ = [
    "BUILTIN_TRANSPORTS",
    "SUN_PATH_MAX",
    "ipc_url_in",
    "purenng_abstract_url",
    "purenng_free_port",
    "purenng_inproc_url",
    "purenng_ipc_url",
    "purenng_leak_check",
    "purenng_tcp_url",
    "purenng_url",
]

#: The transports ``purenng_url`` is parametrised over.
BUILTIN_TRANSPORTS = ("tcp", "ipc", "abstract", "inproc")
#: Longest unix socket path (``sun_path`` is 108 bytes on Linux, NUL included).
SUN_PATH_MAX = 107

_counter = itertools.count(1)
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addini(
        "purenng_leak_timeout",
        "seconds purenng_leak_check waits for fds, threads and tasks to go away",
        default="2.0",
    )


# ---------------------------------------------------------------- addresses


@pytest.fixture
def purenng_free_port() -> int:
    """A tcp port on 127.0.0.1 that was free when the fixture ran."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture
def purenng_tcp_url(purenng_free_port: int) -> str:
    """``tcp://127.0.0.1:<free port>``, for external peers."""
    return f"tcp://127.0.0.1:{purenng_free_port}"


@contextmanager
def ipc_url_in(directory: Path) -> Iterator[str]:
    """An ``ipc://`` URL for a fresh socket path in ``directory``.

    If that path would not fit a unix socket address, the path is placed in a
    new short directory under the system's temp dir instead, removed on exit.
    """
    name = f"sp{next(_counter)}.ipc"
    path = Path(directory) / name
    if len(os.fsencode(path)) <= SUN_PATH_MAX:
        yield f"ipc://{path}"
        return
    base = "/tmp" if os.path.isdir("/tmp") else None
    short = tempfile.mkdtemp(prefix="purenng-", dir=base)
    try:
        yield f"ipc://{short}/{name}"
    finally:
        shutil.rmtree(short, ignore_errors=True)


@pytest.fixture
def purenng_ipc_url(tmp_path: Path) -> Iterator[str]:
    """``ipc://`` + a fresh socket path short enough for ``sun_path``."""
    with ipc_url_in(tmp_path) as url:
        yield url


@pytest.fixture
def purenng_abstract_url() -> str:
    """A unique ``abstract://`` name (Linux's abstract unix socket namespace)."""
    return f"abstract://purenng-{os.getpid()}-{next(_counter)}-{secrets.token_hex(4)}"


@pytest.fixture
def purenng_inproc_url(request: pytest.FixtureRequest) -> str:
    """``inproc://`` + the test id and a counter (unique within the process)."""
    return f"inproc://{_UNSAFE.sub('-', request.node.nodeid).strip('-')}-{next(_counter)}"


_linux_only = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="abstract sockets exist on Linux only"
)
_unix_only = pytest.mark.skipif(not hasattr(socket, "AF_UNIX"), reason="no unix sockets")


@pytest.fixture(
    params=[
        pytest.param("tcp", id="tcp"),
        pytest.param("ipc", id="ipc", marks=_unix_only),
        pytest.param("abstract", id="abstract", marks=_linux_only),
        pytest.param("inproc", id="inproc"),
    ]
)
def purenng_url(request: pytest.FixtureRequest) -> str:
    """A listen URL for each built-in transport (tcp's has port 0)."""
    kind: str = request.param
    if kind == "tcp":
        return "tcp://127.0.0.1:0"
    url: str = request.getfixturevalue(f"purenng_{kind}_url")
    return url


# ---------------------------------------------------------------- leak check


def _leak_checked(fn: Callable[..., Any], timeout: float) -> Callable[..., Any]:
    """``fn`` wrapped so that it fails if it leaves resources open."""
    from .leaks import aassert_no_leaks, assert_no_leaks, snapshot_resources

    if inspect.iscoroutinefunction(fn):

        @functools.wraps(fn)
        async def run_async(*args: Any, **kwargs: Any) -> Any:
            __tracebackhide__ = True
            before = snapshot_resources()
            result = await fn(*args, **kwargs)
            await aassert_no_leaks(before, timeout=timeout)
            return result

        return run_async

    @functools.wraps(fn)
    def run(*args: Any, **kwargs: Any) -> Any:
        __tracebackhide__ = True
        before = snapshot_resources()
        result = fn(*args, **kwargs)
        assert_no_leaks(before, timeout=timeout)
        return result

    return run


@pytest.fixture
def purenng_leak_check(request: pytest.FixtureRequest) -> Iterator[None]:
    """Fail the test if it leaves fds, threads or tasks of its loop open."""
    from ..core.loop import background_loop
    from .leaks import assert_no_leaks, snapshot_resources

    background_loop()  # process-wide: its thread and fds are nobody's leak
    timeout = float(request.config.getini("purenng_leak_timeout"))
    item = request.node
    if isinstance(item, pytest.Function):
        original = item.obj
        item.obj = _leak_checked(original, timeout)
        try:
            yield
        finally:
            item.obj = original
        return
    # Not a plain test function (a doctest...): check around setup/teardown.
    before = snapshot_resources()
    yield
    assert_no_leaks(before, timeout=timeout)
