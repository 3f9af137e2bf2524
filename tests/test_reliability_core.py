"""Careless-user defects of the core, each pinned by a regression test.

* A send of something that is not bytes-like (``str``, ``int``, ``None``, a
  list) raises :class:`TypeError` in the caller, before anything is queued,
  on every send path; the connection stays intact for the next message.
* A socket used in a child made by ``os.fork()`` fails at once with
  :class:`purenng.Closed` saying what to do; new sockets in the child work.
* A context of a closed socket cannot be made, and never hangs.
* No error in a pipe's close path leaves a protocol holding a dead pipe.
"""

from __future__ import annotations

import array
import asyncio
import gc
import os
import subprocess
import sys
import textwrap
import weakref
from typing import Any

import pytest

import purenng
from purenng.core.errors import MessageTooLarge
from purenng.core.message import Message
from purenng.core.pipe import Pipe
from support.waiting import await_for

pytestmark = pytest.mark.usefixtures("purenng_leak_check")

WAIT = 10.0  # generous: only stops a hang
BAD_DATA: list[Any] = ["hello", 7, None, [1, 2], {"a": 1}, 3.5, object()]
TRANSPORTS = ["tcp://127.0.0.1:0", "inproc://reliability-core-{n}"]


def _listen_url(template: str, request: pytest.FixtureRequest) -> str:
    return template.format(n=abs(hash(request.node.nodeid)))


# ---------------------------------------------------------------- both loops


def test_blocking_tests_here_run_on_each_background_loop(background_loop_kind: str) -> None:
    """The suite's both-loops machinery (tests/conftest.py) really switches loops."""
    with purenng.Pair0() as s:
        on_uvloop = type(s.loop).__module__.startswith("uvloop")
    assert on_uvloop == (background_loop_kind == "uvloop")


async def test_async_tests_here_run_on_each_loop(request: pytest.FixtureRequest) -> None:
    loop_kind = "uvloop" if "uvloop" in request.node.name else "asyncio"
    on_uvloop = type(asyncio.get_running_loop()).__module__.startswith("uvloop")
    assert on_uvloop == (loop_kind == "uvloop")


# ---------------------------------------------------------------- send types


@pytest.mark.parametrize("template", TRANSPORTS, ids=["tcp", "inproc"])
def test_blocking_send_of_non_bytes_raises_and_keeps_the_pipe(
    template: str, request: pytest.FixtureRequest
) -> None:
    with (
        purenng.Pair0(listen=_listen_url(template, request), recv_timeout=WAIT) as a,
        purenng.Pair0(dial=a.listeners[0].url, send_timeout=WAIT) as b,
    ):
        for bad in BAD_DATA:
            with pytest.raises(TypeError, match="bytes-like"):
                b.send(bad)
            with pytest.raises(TypeError, match="bytes-like"):
                b.send_msg(Message(bad))
            with pytest.raises(TypeError, match="bytes-like"):
                b.send_msg(Message(b"body", bad))
        with pytest.raises(TypeError, match=r"purenng\.Message"):
            b.send_msg(b"not a message")  # type: ignore[arg-type]
        b.send(b"after")
        b.send(bytearray(b"bytearray"))
        b.send(memoryview(b"view"))
        assert a.recv() == b"after"
        assert a.recv() == b"bytearray"
        assert a.recv() == b"view"
        assert a.stats()["protocol_errors"] == 0
        assert len(a.pipes) == 1


def test_buffers_with_wide_items_go_out_as_their_bytes() -> None:
    ints = array.array("i", [1, 2, 3])
    with (
        purenng.Pair0(listen="tcp://127.0.0.1:0", recv_timeout=WAIT) as a,
        purenng.Pair0(dial=a.listeners[0].url) as b,
    ):
        b.send(ints)  # type: ignore[arg-type]  # any buffer goes; the annotation is narrower
        assert a.recv() == ints.tobytes()


async def test_async_send_of_non_bytes_raises_and_keeps_the_pipe() -> None:
    async with (
        purenng.Pair0(listen="tcp://127.0.0.1:0", recv_timeout=WAIT) as a,
        purenng.Pair0(dial=a.listeners[0].url) as b,
    ):
        await await_for(lambda: b.pipes, "a pipe")
        for bad in BAD_DATA:
            with pytest.raises(TypeError, match="bytes-like"):
                await b.asend(bad)
            with pytest.raises(TypeError, match="bytes-like"):
                await b.asend_msg(Message(bad))
        await b.asend(b"after")
        assert await a.arecv() == b"after"
        assert len(a.pipes) == 1


async def test_async_send_from_another_loop_raises_in_the_caller() -> None:
    """A socket on the background loop, awaited from this loop: the bridge path."""
    with (
        purenng.Pair0(listen="inproc://reliability-core-bridge", recv_timeout=WAIT) as a,
        purenng.Pair0(dial="inproc://reliability-core-bridge") as b,
    ):
        with pytest.raises(TypeError, match="bytes-like"):
            await b.asend("hello")  # type: ignore[arg-type]  # the point: not bytes
        await b.asend(b"ok")
        assert await a.arecv() == b"ok"


def test_context_and_pipe_sends_check_types() -> None:
    with (
        purenng.Rep0(listen="tcp://127.0.0.1:0", recv_timeout=WAIT) as rep,
        purenng.Req0(dial=rep.listeners[0].url, recv_timeout=WAIT) as req,
    ):
        ctx = req.new_context()
        with pytest.raises(TypeError, match="bytes-like"):
            ctx.send("hello")  # type: ignore[arg-type]
        ctx.send(b"question")
        assert rep.recv() == b"question"
        pipe = rep.pipes[0]
        with pytest.raises(TypeError, match="bytes-like"):
            pipe.send(None)  # type: ignore[arg-type]
        rep.send(b"answer")
        assert ctx.recv() == b"answer"
        ctx.close()


# ---------------------------------------------------------------- contexts of closed sockets


def test_new_context_on_a_closed_socket_raises_closed() -> None:
    sock = purenng.Req0()
    sock.close()
    with pytest.raises(purenng.Closed):
        sock.new_context()


async def test_new_context_on_a_closed_socket_raises_closed_on_its_loop() -> None:
    sock = purenng.Rep0()
    await sock.aclose()
    with pytest.raises(purenng.Closed):
        sock.new_context()


def test_context_of_a_socket_closed_later_fails_its_send() -> None:
    sock = purenng.Req0(send_timeout=WAIT)
    ctx = sock.new_context()
    sock.close()
    with pytest.raises(purenng.Closed):
        ctx.send(b"x")
    with pytest.raises(purenng.Closed):
        ctx.recv()


# ---------------------------------------------------------------- fork


FORK_SCRIPT = textwrap.dedent(
    """
    import multiprocessing, os, sys
    import purenng

    def child(url, out):
        try:
            parent_sock.recv()
        except purenng.Closed as exc:
            out.put(("inherited", str(exc)))
        else:
            out.put(("inherited", "no error"))
        with purenng.Push0(dial=url) as push:
            push.send(b"from the child")
        with purenng.Pair0(listen="inproc://child") as a, purenng.Pair0(dial="inproc://child") as b:
            a.send(b"inproc")
            out.put(("new", b.recv()))

    parent_sock = purenng.Pull0(listen="tcp://127.0.0.1:0", recv_timeout=10)
    url = parent_sock.listeners[0].url
    ctx = multiprocessing.get_context("fork")
    out = ctx.Queue()
    p = ctx.Process(target=child, args=(url, out))
    p.start()
    print(out.get(timeout=20))
    print(out.get(timeout=20))
    print(parent_sock.recv())
    p.join(20)
    print("exit", p.exitcode)
    parent_sock.close()
    """
)


def test_forked_child_fails_fast_on_inherited_sockets_and_makes_new_ones() -> None:
    proc = subprocess.run(
        [sys.executable, "-c", FORK_SCRIPT],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("('inherited', "), lines
    assert "os.fork()" in lines[0]
    assert "make new sockets in the child" in lines[0]
    assert lines[1] == "('new', b'inproc')"
    assert lines[2] == "b'from the child'"
    assert lines[3] == "exit 0"


@pytest.mark.parametrize("loop", ["asyncio", "auto"])
def test_forked_child_blocking_dial_on_inherited_socket_does_not_hang(loop: str) -> None:
    script = textwrap.dedent(
        """
        import os, purenng
        s = purenng.Pair0()
        pid = os.fork()
        if pid == 0:
            for call in (lambda: s.dial("tcp://127.0.0.1:1", block=False),
                         lambda: s.listen("tcp://127.0.0.1:0"),
                         lambda: s.send(b"x")):
                try:
                    call()
                except purenng.Closed as exc:
                    assert "os.fork()" in str(exc), exc
                else:
                    os._exit(3)
            os._exit(0)
        _, status = os.waitpid(pid, 0)
        print(os.waitstatus_to_exitcode(status))
        s.close()
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PURENNG_LOOP": loop},
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "0", proc.stdout + proc.stderr


# ---------------------------------------------------------------- close paths


class _BrokenAddressPipe(Pipe):
    """A pipe whose transport can no longer tell its address (a closed TLS one)."""

    def __init__(self, peer_id: int) -> None:
        super().__init__(peer_id, "fake")
        self.error: BaseException | None = MessageTooLarge("over recv_max_size")
        self._deliver: Any = None

    def write(self, header: Any, body: Any) -> None:
        pass

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self._notify_closed()

    @property
    def remote_address(self) -> Any:
        raise OSError("transport is closed")


async def test_a_failing_close_path_never_leaves_pair_busy() -> None:
    async with purenng.Pair0() as sock:
        removed: list[Pipe] = []
        sock.on_pipe_event(lambda p, e: removed.append(p), purenng.PipeEvent.REMOVE_POST)
        peer = sock.protocol_cls.peer_id
        first = _BrokenAddressPipe(peer)
        assert sock._admission.attach(first)
        first.close()
        assert removed == [first]
        second = _BrokenAddressPipe(peer)
        assert sock._admission.attach(second), "PAIR still holds the dead pipe"
        assert sock.pipes == [second]
        assert sock.stats()["oversize"] == 1
        second.error = None
        second.close()


# ---------------------------------------------------------------- closed pipes are freed


@pytest.mark.parametrize("scheme", ["tcp", "ipc", "tls+tcp", "ws"])
async def test_closed_pipes_are_freed_without_the_cycle_collector(
    scheme: str, tmp_path: Any
) -> None:
    """A closed pipe must not wait for the cyclic GC (over TLS it holds OpenSSL buffers).

    The soak saw a TLS listener whose dialer was killed every 20 s grow by
    ~1 MiB per dead pipe until a full collection ran.
    """
    from purenng.certs import make_dev_certs

    opts: dict[str, Any] = {}
    dial_opts: dict[str, Any] = {}
    if scheme == "tls+tcp":
        certs = make_dev_certs()
        opts["tls_config"] = certs.server_config()
        dial_opts["tls_config"] = certs.client_config(server_name="localhost")
    url = f"ipc://{tmp_path}/free.sock" if scheme == "ipc" else f"{scheme}://127.0.0.1:0"
    if scheme == "ws":
        url += "/free"
    refs: list[weakref.ref[Pipe]] = []
    gc.collect()
    gc.disable()
    try:
        async with purenng.Pull0(recv_timeout=WAIT) as pull:
            lst = await pull.alisten(url, **opts)
            async with purenng.Push0() as push:
                for _ in range(3):
                    d = await push.adial(lst.url, block=True, **dial_opts)
                    await push.asend(b"z" * 100_000)
                    msg = await pull.arecv_msg()
                    assert msg.pipe is not None
                    refs.append(weakref.ref(msg.pipe))
                    assert d.pipe is not None
                    refs.append(weakref.ref(d.pipe))
                    del msg
                    await d.aclose()
                    await await_for(lambda: not pull.pipes, "the pipe to go")
                await asyncio.sleep(0.05)  # connection_lost runs a loop turn later
                alive = [r() for r in refs if r() is not None]
                assert not alive, f"{len(alive)} closed pipes still alive: {alive}"
    finally:
        gc.enable()
