"""purenng's pytest plugin fixtures and the leak checks behind ``purenng_leak_check``."""

from __future__ import annotations

import asyncio
import os
import socket
import threading
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

import purenng
from purenng.testing import (
    LeakError,
    aassert_no_leaks,
    ano_leaks,
    assert_no_leaks,
    find_leaks,
    no_leaks,
    snapshot_resources,
)
from purenng.testing.pytest_plugin import SUN_PATH_MAX, ipc_url_in

if TYPE_CHECKING:
    from collections.abc import Iterator

pytest_plugins = ["pytester"]


# ---------------------------------------------------------------- address fixtures


def test_free_port_can_be_bound(purenng_free_port: int) -> None:
    assert 0 < purenng_free_port < 65536
    with socket.socket() as s:
        s.bind(("127.0.0.1", purenng_free_port))


def test_tcp_url_names_the_free_port(purenng_tcp_url: str, purenng_free_port: int) -> None:
    assert purenng_tcp_url == f"tcp://127.0.0.1:{purenng_free_port}"


def test_ipc_url_is_a_fresh_short_path(purenng_ipc_url: str, tmp_path: Path) -> None:
    assert purenng_ipc_url.startswith("ipc:///")
    path = Path(purenng_ipc_url[len("ipc://") :])
    assert len(os.fsencode(path)) <= SUN_PATH_MAX
    assert path.parent.is_dir()
    assert not path.exists()


def test_ipc_url_moves_to_a_short_dir_when_the_path_is_too_long(tmp_path: Path) -> None:
    deep = tmp_path / ("d" * 60) / ("e" * 60)
    deep.mkdir(parents=True)
    with ipc_url_in(deep) as url:
        path = Path(url[len("ipc://") :])
        assert deep not in path.parents
        assert len(os.fsencode(path)) <= SUN_PATH_MAX
        assert path.parent.is_dir()
        with purenng.Pair0(listen=url) as sock:
            assert sock.listeners[0].url == url
    assert not path.parent.exists()


def test_ipc_url_stays_in_a_short_dir(tmp_path: Path) -> None:
    with ipc_url_in(tmp_path) as url:
        assert Path(url[len("ipc://") :]).parent == tmp_path


def test_abstract_and_inproc_urls(purenng_abstract_url: str, purenng_inproc_url: str) -> None:
    assert purenng_abstract_url.startswith("abstract://purenng-")
    assert purenng_inproc_url.startswith(
        "inproc://tests-test_pytest_plugin.py-test_abstract_and_inproc_urls-"
    )


def test_purenng_url_listens(purenng_url: str, request: pytest.FixtureRequest) -> None:
    scheme = request.node.callspec.id
    assert purenng_url.startswith(f"{scheme}://")
    with purenng.Pair0(listen=purenng_url, recv_timeout=5) as a, purenng.Pair0() as b:
        b.dial(a.listeners[0].url, block=True)
        b.send(b"hi")
        assert a.recv() == b"hi"


# ---------------------------------------------------------------- leak helpers


@pytest.fixture
def pipe_fds() -> Iterator[list[int]]:
    fds: list[int] = []
    yield fds
    for fd in fds:
        try:
            os.close(fd)
        except OSError:
            pass


def test_a_leaked_fd_is_found_and_named(pipe_fds: list[int]) -> None:
    before = snapshot_resources()
    pipe_fds.extend(os.pipe())
    with pytest.raises(LeakError) as info:
        assert_no_leaks(before, timeout=0.05)
    assert set(info.value.leaks.fds) == set(pipe_fds)
    assert "pipe:[" in str(info.value)
    for fd in pipe_fds:
        os.close(fd)
    pipe_fds.clear()
    assert_no_leaks(before, timeout=0.05)


def test_a_leaked_thread_is_found() -> None:
    stop = threading.Event()
    before = snapshot_resources()
    t = threading.Thread(target=stop.wait, name="leaky", daemon=True)
    t.start()
    try:
        assert find_leaks(before).threads == ["leaky"]
    finally:
        stop.set()
        t.join()
    assert not find_leaks(before)


def test_the_background_loop_thread_is_not_a_leak() -> None:
    from purenng.core.loop import background_loop, background_thread

    before = snapshot_resources()
    background_loop()
    thread = background_thread()
    assert thread is not None
    assert thread.name == "purenng-loop"
    assert thread.name not in find_leaks(before).threads


async def test_a_leaked_task_is_found_and_a_finished_one_is_not() -> None:
    before = snapshot_resources()
    stuck = asyncio.get_running_loop().create_task(asyncio.Event().wait(), name="stuck")
    try:
        with pytest.raises(LeakError, match="stuck"):
            await aassert_no_leaks(before, timeout=0.05)
    finally:
        stuck.cancel()
    # Cancelled and finished: no longer a leak.
    await aassert_no_leaks(before, timeout=1.0)


async def test_the_grace_period_lets_closes_finish(pipe_fds: list[int]) -> None:
    async with ano_leaks(timeout=5.0):
        r, w = os.pipe()
        pipe_fds.extend((r, w))

        def close_both() -> None:
            for fd in (r, w):
                os.close(fd)
            pipe_fds.clear()

        asyncio.get_running_loop().call_later(0.05, close_both)


def test_no_leaks_raises_after_the_block(pipe_fds: list[int]) -> None:
    with pytest.raises(LeakError), no_leaks(timeout=0.05):
        pipe_fds.extend(os.pipe())


def test_sockets_closed_properly_leave_nothing_behind() -> None:
    with no_leaks(), purenng.Pair0(recv_timeout=5) as a, purenng.Pair0() as b:
        b.dial(a.listen("tcp://127.0.0.1:0").url, block=True)
        b.send(b"x")
        assert a.recv() == b"x"


# ---------------------------------------------------------------- the fixture, from outside

_INNER = """
import asyncio, os, socket, threading
import purenng

KEEP = []

def test_clean_sync(purenng_leak_check):
    with purenng.Pair0(listen="tcp://127.0.0.1:0") as a:
        with purenng.Pair0(dial=a.listeners[0].url, recv_timeout=5) as b:
            b.send(b"x")
            assert a.recv() == b"x"

async def test_clean_async(purenng_leak_check):
    async with purenng.Pair0(listen="tcp://127.0.0.1:0", recv_timeout=5) as a:
        async with purenng.Pair0(dial=a.listeners[0].url) as b:
            await b.asend(b"x")
            assert await a.arecv() == b"x"

def test_leaks_an_fd(purenng_leak_check):
    KEEP.append(socket.socket())

def test_leaks_a_thread(purenng_leak_check):
    t = threading.Thread(target=threading.Event().wait, name="leaky-thread", daemon=True)
    t.start()

async def test_leaks_a_task(purenng_leak_check):
    KEEP.append(asyncio.get_running_loop().create_task(asyncio.Event().wait(), name="leaky-task"))

async def test_leaks_a_socket(purenng_leak_check):
    s = purenng.Pair0()
    KEEP.append(s)
    await s.alisten("tcp://127.0.0.1:0")

def test_fails_by_itself(purenng_leak_check):
    KEEP.append(socket.socket())
    assert False, "own failure"

def test_unchecked_leak():
    KEEP.append(socket.socket())
"""


def test_leak_check_fixture_fails_leaky_tests_only(pytester: pytest.Pytester) -> None:
    pytester.makeini(
        "[pytest]\nasyncio_mode = auto\nasyncio_default_fixture_loop_scope = function\n"
        "purenng_leak_timeout = 0.2\n"
    )
    pytester.makepyfile(test_inner=_INNER)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-W", "ignore")
    result.assert_outcomes(passed=3, failed=5)
    # Failures are reported in file order, each with its own cause.
    result.stdout.fnmatch_lines(
        [
            "*_ test_leaks_an_fd _*",
            "*LeakError: still open 0.2 s after the test: 1 file descriptor(s)*socket:*",
            "*_ test_leaks_a_thread _*",
            "*LeakError: *1 thread(s)*leaky-thread*",
            "*_ test_leaks_a_task _*",
            "*LeakError: *1 task(s)*leaky-task*",
            "*_ test_leaks_a_socket _*",
            "*LeakError: *file descriptor(s)*socket:*Listener._accept_loop*",
            "*_ test_fails_by_itself _*",
            "*AssertionError: own failure*",
        ]
    )
    own = result.stdout.str().split("_ test_fails_by_itself _")[1]
    assert "LeakError" not in own.split("short test summary info")[0]
