"""pynng's published examples, ported to tests against purenng.compat.pynng.

Each test keeps the logic of one example from pynng's repository
(``examples/`` and ``docs/snippets/``) and bounds it: fixed message counts
instead of endless loops, short timeouts, addresses in a temporary
directory or on port 0, and polls with deadlines where the example sleeps
to let connections form.  Examples written for trio run under trio (when it
is installed) and asyncio; the curio ones (``pipeline.py``, ``pubsub.py``)
run under asyncio, the curio-only variant (``pair1_async_curio.py``) is
left out.

The last tests run pynng programs unchanged (``pynng_program.py``,
``pynng_echo.py``) in child processes, with the real pynng and with
purenng.compat.pynng made to answer to ``import pynng``, and compare them.
"""

from __future__ import annotations

import asyncio
import datetime
import importlib.util
import os
import selectors
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

import purenng.compat.pynng as pynng
from support.peers import require_peer
from support.waiting import wait_for

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Coroutine

HERE = Path(__file__).parent
#: Generous bound for any wait; only there to stop hangs.
T = 10.0
HAVE_TRIO = importlib.util.find_spec("trio") is not None


class Backend:
    """Just enough of an async library for the examples: run, gather, sleep."""

    def __init__(self, name: str) -> None:
        self.name = name

    def run(self, fn: Callable[[], Coroutine[Any, Any, Any]]) -> Any:
        if self.name == "trio":
            import trio

            return trio.run(fn)
        return asyncio.run(fn())

    async def gather(self, *fns: Callable[[], Awaitable[Any]]) -> None:
        """Run ``fns`` concurrently (a trio nursery or asyncio.gather)."""
        if self.name == "trio":
            import trio

            async with trio.open_nursery() as nursery:
                for fn in fns:
                    nursery.start_soon(fn)
        else:
            await asyncio.gather(*(fn() for fn in fns))

    async def sleep(self, seconds: float) -> None:
        if self.name == "trio":
            import trio

            await trio.sleep(seconds)
        else:
            await asyncio.sleep(seconds)

    async def wait_for(self, cond: Callable[[], Any]) -> None:
        """Poll ``cond`` with a deadline, yielding to the other tasks."""
        deadline = time.monotonic() + T
        while not cond():
            if time.monotonic() > deadline:
                pytest.fail("condition not reached in time")
            await self.sleep(0.005)


BACKENDS = [
    "asyncio",
    pytest.param("trio", marks=pytest.mark.skipif(not HAVE_TRIO, reason="trio is not installed")),
]


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> Backend:
    return Backend(request.param)


def short_ipc(tmp_path: Path, name: str) -> str:
    return f"ipc://{tmp_path / name}"


# ---------------------------------------------------------------- examples/


def test_pair0_two_nodes(tmp_path: Path) -> None:
    # Modelled on pynng's examples/pair0.py: node0 listens, node1 dials, and
    # each keeps receiving (ignoring Timeout) and sending its own name.
    addr = short_ipc(tmp_path, "pair0_example")
    heard: dict[str, list[str]] = {"node0": [], "node1": []}
    ready = threading.Event()

    def node(name: str, rounds: int) -> None:
        with pynng.Pair0(recv_timeout=100, send_timeout=100) as sock:
            if name == "node0":
                sock.listen(addr)
                ready.set()
            else:
                assert ready.wait(T)
                sock.dial(addr)
            for _ in range(rounds):
                try:
                    heard[name].append(sock.recv().decode())
                except pynng.Timeout:
                    pass
                time.sleep(0.02)
                try:
                    sock.send(name.encode())
                except pynng.Timeout:
                    pass
                if heard[name] and len(heard["node0" if name == "node1" else "node1"]) > 0:
                    break

    threads = [threading.Thread(target=node, args=(n, 200)) for n in ("node0", "node1")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(T)
    assert not any(t.is_alive() for t in threads)
    assert set(heard["node0"]) == {"node1"}
    assert set(heard["node1"]) == {"node0"}


def test_pair0_async(backend: Backend) -> None:
    # Modelled on pynng's examples/pair0Async.py.
    async def send_and_recv(sender: pynng.Pair0, receiver: pynng.Pair0, message: bytes) -> bytes:
        await sender.asend(message)
        return await receiver.arecv()

    with (
        pynng.Pair0(listen="tcp://127.0.0.1:0", recv_timeout=5000) as s1,
        pynng.Pair0(dial=s1.listeners[0].url, recv_timeout=5000) as s2,
    ):
        received = backend.run(lambda: send_and_recv(s1, s2, b"hello there old pal!"))
    assert received == b"hello there old pal!"


def test_pair1_polyamorous_async(backend: Backend) -> None:
    # Modelled on pynng's examples/pair1_async.py: a polyamorous listener
    # with connect/remove callbacks; what dialers send arrives with its pipe,
    # and what the listener sends goes to every pipe.
    log: list[str] = []
    removed = threading.Event()

    def pre_connect_cb(pipe: pynng.Pipe) -> None:
        log.append(f"~~~~got connection from {pipe.remote_address}")

    def post_remove_cb(pipe: pynng.Pipe) -> None:
        log.append(f"~~~~goodbye for now from {pipe.remote_address}")
        removed.set()

    async def main() -> None:
        with pynng.Pair1(polyamorous=True, recv_timeout=5000) as sock:
            sock.add_pre_pipe_connect_cb(pre_connect_cb)
            sock.add_post_pipe_remove_cb(post_remove_cb)
            addr = sock.listen("tcp://127.0.0.1:0").url
            dialers = [pynng.Pair1(polyamorous=True, recv_timeout=5000) for _ in range(2)]
            try:
                for d in dialers:
                    d.dial(addr)
                await backend.wait_for(lambda: len(sock.pipes) == 2)
                said: list[str] = []

                async def recv_some() -> None:
                    for _ in range(2):
                        msg = await sock.arecv_msg()
                        assert msg.pipe is not None
                        source_addr = str(msg.pipe.remote_address)
                        said.append(f"{source_addr} says: {msg.bytes.decode()}")

                async def type_lines() -> None:
                    for i, d in enumerate(dialers):
                        await d.asend(f"line {i}".encode())

                await backend.gather(recv_some, type_lines)
                assert sorted(s.split(" says: ")[1] for s in said) == ["line 0", "line 1"]
                local = {str(d.pipes[0].local_address) for d in dialers}
                assert {s.split(" says: ")[0] for s in said} == local
                for pipe in sock.pipes:
                    await pipe.asend(b"to everybody")
                assert [await d.arecv() for d in dialers] == [b"to everybody"] * 2
            finally:
                for d in dialers:
                    d.close()
            assert removed.wait(T)

    backend.run(main)
    assert sum(line.startswith("~~~~got connection from 127.0.0.1:") for line in log) == 2
    assert any(line.startswith("~~~~goodbye for now from 127.0.0.1:") for line in log)


def test_pair1_poly_script() -> None:
    # Modelled on pynng's examples/pair1_PolyAsync.py (a synchronous script).
    # Receive timeouts are longer than the example's 100 ms where a message
    # is expected, so a loaded machine cannot fail the test.
    with pynng.Pair1(listen="tcp://127.0.0.1:0", polyamorous=True, recv_timeout=2000) as s0:
        address = s0.listeners[0].url
        with (
            pynng.Pair1(dial=address, polyamorous=True, recv_timeout=2000) as s1,
            pynng.Pair1(dial=address, polyamorous=True, recv_timeout=2000) as s2,
        ):
            wait_for(lambda: len(s0.pipes) == 2)
            first = s0.pipes[0]
            s0.send(b"hi everybody!")  # no pipe given: one peer gets it
            s1.send(b"hello from s1")
            s2.send(b"hello from s2")
            msgs = {m.bytes: m for m in (s0.recv_msg(), s0.recv_msg())}
            msg1, msg2 = msgs[b"hello from s1"], msgs[b"hello from s2"]
            # The oldest pipe got it; the other peer times out.
            lucky, other = (s1, s2) if first is msg1.pipe else (s2, s1)
            assert lucky.recv() == b"hi everybody!"
            other.recv_timeout = 100
            with pytest.raises(pynng.Timeout):
                other.recv()
            other.recv_timeout = 2000
            assert msg1.pipe is not None
            assert msg2.pipe is not None
            msg1.pipe.send(b"hey s1")
            msg2.pipe.send(b"hey s2")
            assert s2.recv() == b"hey s2"
            assert s1.recv() == b"hey s1"
            # Beyond the first message, repeats share the pipe but not data.
            s1.send(b"more from s1")
            more = s0.recv_msg()
            assert more.pipe == msg1.pipe
            assert msg1.bytes == b"hello from s1"
            s1.send(b"again from s1")
            assert s0.recv() == b"again from s1"
            # Pair1 with both listen and dial: the listen fails.
            with pytest.raises(pynng.AddressInUse):
                pynng.Pair1(dial=address, listen=address, polyamorous=True, recv_timeout=100)


def test_pipeline(tmp_path: Path) -> None:
    # Modelled on pynng's examples/pipeline.py (curio there, asyncio here):
    # node0 pulls forever, node1 dials and pushes, once per message.
    address = short_ipc(tmp_path, "pipeline.ipc")
    received: list[str] = []

    async def main() -> None:
        with pynng.Pull0() as pull, pynng.Push0() as push:

            async def recv_eternally() -> None:
                while True:
                    msg = await pull.arecv_msg()
                    received.append(msg.bytes.decode())

            pull.listen(address)
            n0 = asyncio.ensure_future(recv_eternally())

            async def node1(message: str) -> None:
                push.dial(address)
                await push.asend(message.encode())

            await node1("Hello, World!")
            await node1("Goodbye.")
            await asyncio.gather(*(node1(m) for m in ["A", "B", "C", "D"]))
            deadline = time.monotonic() + T
            while len(received) < 6 and time.monotonic() < deadline:
                await asyncio.sleep(0.005)
            n0.cancel()
            with pytest.raises(asyncio.CancelledError):
                await n0

    asyncio.run(main())
    assert received[:2] == ["Hello, World!", "Goodbye."]
    assert sorted(received[2:]) == ["A", "B", "C", "D"]


def test_reqrep(backend: Backend, tmp_path: Path) -> None:
    # Modelled on pynng's examples/reqprep.py: node0 answers DATE requests
    # until its receive times out; node1 asks once.
    address = short_ipc(tmp_path, "reqrep.ipc")
    log: list[str] = []

    async def node0(sock: pynng.Rep0) -> None:
        while True:
            try:
                msg = await sock.arecv_msg()
            except pynng.Timeout:
                break
            if msg.bytes.decode() == "DATE":
                log.append("NODE0: RECEIVED DATE REQUEST")
                await sock.asend(str(datetime.datetime.now()).encode())

    async def node1() -> None:
        with pynng.Req0(recv_timeout=5000) as sock:
            sock.dial(address)
            await sock.asend(b"DATE")
            msg = await sock.arecv_msg()
            log.append(f"NODE1: RECEIVED DATE {msg.bytes.decode()}")

    async def main() -> None:
        with pynng.Rep0(listen=address, recv_timeout=1000) as rep:
            await backend.gather(lambda: node0(rep), node1)

    backend.run(main)
    assert log[0] == "NODE0: RECEIVED DATE REQUEST"
    stamp = log[1].removeprefix("NODE1: RECEIVED DATE ")
    assert datetime.datetime.fromisoformat(stamp)


def test_pubsub_clients() -> None:
    # Modelled on pynng's examples/pubsub.py (curio there, asyncio here): a
    # publisher sends the date periodically; each client subscribes to
    # everything and reads a few messages.
    got: dict[str, list[str]] = {}

    async def main() -> None:
        with pynng.Pub0() as pub:
            address = pub.listen("tcp://127.0.0.1:0").url

            async def publish_eternally() -> None:
                while True:
                    await pub.asend(str(datetime.datetime.now()).encode())
                    await asyncio.sleep(0.02)

            async def client(name: str, max_msg: int) -> None:
                with pynng.Sub0(recv_timeout=5000) as sock:
                    sock.subscribe("")
                    sock.dial(address)
                    got[name] = []
                    while max_msg:
                        msg = await sock.arecv_msg()
                        got[name].append(msg.bytes.decode())
                        max_msg -= 1

            n0 = asyncio.ensure_future(publish_eternally())
            await asyncio.gather(client("client0", 2), client("client1", 3), client("client2", 4))
            n0.cancel()
            with pytest.raises(asyncio.CancelledError):
                await n0

    asyncio.run(main())
    assert {k: len(v) for k, v in got.items()} == {"client0": 2, "client1": 3, "client2": 4}
    for lines in got.values():
        assert all(datetime.datetime.fromisoformat(line) for line in lines)


def test_pubsub_single_app() -> None:
    # Modelled on pynng's examples/pubsub_1SingleApp.py.
    with pynng.Pub0(listen="tcp://127.0.0.1:0") as pub:
        address = pub.listeners[0].url
        with (
            pynng.Sub0(dial=address, recv_timeout=1000) as sub0,
            pynng.Sub0(dial=address, recv_timeout=1000) as sub1,
            pynng.Sub0(dial=address, recv_timeout=1000) as sub2,
            pynng.Sub0(dial=address, recv_timeout=100) as sub3,
        ):
            sub0.subscribe(b"wolf")
            sub1.subscribe(b"puppy")
            sub2.subscribe(b"")  # the empty string matches everything
            sub2.recv_buffer_size = 2
            # sub3 is not subscribed to anything.
            wait_for(lambda: len(pub.pipes) == 4)
            pub.send(b"puppy: that is a cute dog")
            pub.send(b"wolf: that is a big dog")
            assert sub0.recv() == b"wolf: that is a big dog"
            assert sub1.recv() == b"puppy: that is a cute dog"
            assert sub2.recv() == b"puppy: that is a cute dog"
            assert sub2.recv() == b"wolf: that is a big dog"
            with pytest.raises(pynng.Timeout):
                sub3.recv()


@pytest.mark.slow
def test_survey(backend: Backend, tmp_path: Path) -> None:
    # Modelled on pynng's examples/survey.py: the server runs surveys until
    # its count is spent; each client answers a fixed number of them.
    address = short_ipc(tmp_path, "survey.ipc")
    responses: list[str] = []
    answered: dict[str, int] = {}

    async def server(sock: pynng.Surveyor0, max_survey_request: int) -> None:
        while max_survey_request:
            await sock.asend(b"DATE")
            while True:
                try:
                    msg = await sock.arecv_msg()
                    responses.append(msg.bytes.decode())
                except pynng.Timeout:
                    break
            max_survey_request -= 1

    async def client(name: str, max_survey: int) -> None:
        with pynng.Respondent0(recv_timeout=5000) as sock:
            sock.dial(address)
            answered[name] = 0
            while max_survey:
                await sock.arecv_msg()
                await sock.asend(str(datetime.datetime.now()).encode())
                answered[name] += 1
                max_survey -= 1

    async def main() -> None:
        with pynng.Surveyor0(listen=address, survey_time=400) as surveyor:
            await backend.gather(
                lambda: server(surveyor, 6),
                lambda: client("client0", 3),
                lambda: client("client1", 3),
                lambda: client("client2", 4),
            )

    backend.run(main)
    assert answered == {"client0": 3, "client1": 3, "client2": 4}
    assert len(responses) == 10
    assert all(datetime.datetime.fromisoformat(r) for r in responses)


def test_bus_mesh(backend: Backend, tmp_path: Path) -> None:
    # Modelled on pynng's examples/bus.py: four nodes, each dialing some of
    # the others, end up fully meshed; each announces its address and hears
    # the three others before its receive times out.
    addrs = [short_ipc(tmp_path, f"node{i}.ipc") for i in range(4)]
    contacts = {0: [1, 2], 1: [2, 3], 2: [3], 3: [0]}
    heard: dict[int, list[str]] = {i: [] for i in range(4)}
    timed_out: list[int] = []

    socks = [pynng.Bus0(listen=addrs[i], recv_timeout=600) for i in range(4)]

    async def node(i: int) -> None:
        sock = socks[i]
        for c in contacts[i]:
            sock.dial(addrs[c])
        await backend.wait_for(lambda: all(len(s.pipes) == 3 for s in socks))
        await sock.asend(addrs[i].encode())
        while True:
            try:
                msg = await sock.arecv_msg()
                heard[i].append(msg.bytes.decode())
            except pynng.Timeout:
                timed_out.append(i)
                break

    async def main() -> None:
        await backend.gather(*(lambda i=i: node(i) for i in range(4)))

    try:
        backend.run(main)
    finally:
        for s in socks:
            s.close()
    assert sorted(timed_out) == [0, 1, 2, 3]
    for i in range(4):
        assert sorted(heard[i]) == sorted(a for j, a in enumerate(addrs) if j != i)


@pytest.mark.skipif(sys.platform != "linux", reason="abstract sockets are Linux only")
def test_abstract() -> None:
    # Modelled on pynng's examples/abstract.py.
    url = f"abstract://test%00socket-{os.getpid()}"
    with pynng.Pair0(recv_timeout=1000, send_timeout=1000) as node0:
        listener = node0.listen(url)
        local_addr = listener.local_address
        assert str(local_addr) == url
        assert local_addr.family_as_str == "abstract"
        assert local_addr.name == f"test\0socket-{os.getpid()}"
        with pynng.Pair0(recv_timeout=1000, send_timeout=1000) as node1:
            dialer = node1.dial(url)
            assert dialer.local_address.family_as_str == "Unspecified"
            node1.send(b"Hello from node1")
            assert node0.recv() == b"Hello from node1"
            node0.send(b"Hello from node0")
            assert node1.recv() == b"Hello from node0"


# ---------------------------------------------------------------- docs/snippets/


def test_snippet_reqrep_sync() -> None:
    # Modelled on pynng's docs/snippets/reqrep_sync.py.
    with (
        pynng.Rep0(listen="tcp://127.0.0.1:0", recv_timeout=5000) as rep,
        pynng.Req0(dial=rep.listeners[0].url, recv_timeout=5000) as req,
    ):
        req.send(b"random.random()")
        assert rep.recv() == b"random.random()"
        rep.send(b"4")  # guaranteed to be random
        assert req.recv() == b"4"


def test_snippet_pair0_sync() -> None:
    # Modelled on pynng's docs/snippets/pair0_sync.py.
    with (
        pynng.Pair0(listen="tcp://127.0.0.1:0", recv_timeout=5000) as s1,
        pynng.Pair0(dial=s1.listeners[0].url, recv_timeout=5000) as s2,
    ):
        s1.send(b"hello s1")
        assert s2.recv() == b"hello s1"
        s2.send(b"hi old buddy s0, great to see ya")
        assert s1.recv() == b"hi old buddy s0, great to see ya"


# ---------------------------------------------------------------- unchanged programs


@pytest.fixture
def shim(tmp_path: Path) -> Path:
    """A directory whose ``pynng`` module is purenng.compat.pynng."""
    d = tmp_path / "shim"
    d.mkdir()
    (d / "pynng.py").write_text("import purenng.compat.pynng as _compat\n\n_compat.install()\n")
    return d


def child_env(shim: Path | None) -> dict[str, str]:
    env = dict(os.environ)
    if shim is not None:
        parts = [str(shim), env.get("PYTHONPATH", "")]
        env["PYTHONPATH"] = os.pathsep.join(p for p in parts if p)
    return env


def run_program(args: list[str], shim: Path | None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(HERE / "pynng_program.py"), *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=child_env(shim),
    )


@pytest.mark.slow
def test_unchanged_program_runs_on_compat(shim: Path, tmp_path: Path) -> None:
    done = run_program([str(tmp_path)], shim)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == "== done"
    # It really ran against purenng: the shim answered to "import pynng".
    check = subprocess.run(
        [sys.executable, "-c", "import pynng; print(pynng.__name__, pynng.Pair0.__module__)"],
        capture_output=True,
        text=True,
        timeout=60,
        env=child_env(shim),
    )
    assert check.stdout.split() == ["purenng.compat.pynng", "purenng.compat.pynng"]


@pytest.mark.slow
def test_unchanged_program_same_output_as_pynng(shim: Path, tmp_path: Path) -> None:
    require_peer("pynng")
    (tmp_path / "real").mkdir()
    (tmp_path / "compat").mkdir()
    real = run_program([str(tmp_path / "real")], None)
    assert real.returncode == 0, real.stderr
    compat = run_program([str(tmp_path / "compat")], shim)
    assert compat.returncode == 0, compat.stderr
    assert compat.stdout.splitlines() == real.stdout.splitlines()


class Child:
    """A pynng_echo.py child whose stdout is read line by line with a deadline."""

    def __init__(self, args: list[str], shim: Path | None) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(HERE / "pynng_echo.py"), *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=child_env(shim),
        )
        self.sel = selectors.DefaultSelector()
        assert self.proc.stdout is not None
        self.sel.register(self.proc.stdout, selectors.EVENT_READ)

    def line(self) -> str:
        assert self.proc.stdout is not None
        if not self.sel.select(T):
            pytest.fail(f"child silent: {self.stop()}")
        return self.proc.stdout.readline().rstrip("\n")

    def stop(self) -> str:
        """End the child (it should have left by itself) and return its stderr."""
        try:
            _, err = self.proc.communicate(timeout=T)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            _, err = self.proc.communicate()
        self.sel.close()
        return err


@pytest.mark.slow
@pytest.mark.interop
@pytest.mark.parametrize(("server", "asker"), [("pynng", "compat"), ("compat", "pynng")])
def test_unchanged_programs_talk_across_libraries(server: str, asker: str, shim: Path) -> None:
    require_peer("pynng")
    srv = Child(["serve", "3"], shim if server == "compat" else None)
    try:
        first = srv.line()
        assert first.startswith("url tcp://127.0.0.1:"), first
        url = first.split()[1]
        ask = subprocess.run(
            [sys.executable, str(HERE / "pynng_echo.py"), "ask", url, "3"],
            capture_output=True,
            text=True,
            timeout=60,
            env=child_env(shim if asker == "compat" else None),
        )
        assert ask.returncode == 0, ask.stderr
        assert ask.stdout.splitlines() == [f"echo:request {i}" for i in range(3)]
        assert srv.line() == "served 3"
    finally:
        err = srv.stop()
    assert srv.proc.returncode == 0, err
