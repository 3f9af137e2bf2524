"""The async API under trio, checked against the same tests under asyncio.

Each test body is written once against a thin :class:`Lib` shim and run three
ways: ``trio`` (sockets live on the background loop, every call crosses to
it), ``asyncio`` (sockets live on the running loop, no crossing) and
``asyncio-bridged`` (sockets made outside the loop, so on the background
loop, and used from ``asyncio.run``).  Tests are plain functions that call
``trio.run``/``asyncio.run`` themselves, so pytest-asyncio stays out of it.
"""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
import threading
import time
from typing import TYPE_CHECKING, Any

import pytest
import trio

import purenng
from purenng import Message

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable

LIBS = ["trio", "asyncio", "asyncio-bridged"]


class Lib:
    """The few async primitives the tests need, for trio or asyncio."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.trio = name == "trio"

    def run(self, fn: Callable[[], Awaitable[Any]]) -> Any:
        if self.trio:
            return trio.run(fn)
        return asyncio.run(fn())  # type: ignore[arg-type]

    async def socket(self, cls: type[purenng.Socket], **options: Any) -> purenng.Socket:
        """A socket made where this flavour makes it."""
        if self.name == "asyncio-bridged":
            sock = await asyncio.to_thread(cls, **options)
            assert sock.loop is not asyncio.get_running_loop()
            return sock
        return cls(**options)

    async def sleep(self, seconds: float) -> None:
        await (trio.sleep(seconds) if self.trio else asyncio.sleep(seconds))

    async def wait_until(self, cond: Callable[[], bool], timeout: float = 5.0) -> None:
        """Poll ``cond`` until it holds; fail after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while not cond():
            assert time.monotonic() < deadline, "condition not reached"
            await self.sleep(0.001)

    @contextlib.asynccontextmanager
    async def move_on_after(self, seconds: float) -> AsyncIterator[list[bool]]:
        """Cancel the block after ``seconds``; yields [cancelled_caught]."""
        caught = [False]
        if self.trio:
            with trio.move_on_after(seconds) as scope:
                yield caught
            caught[0] = scope.cancelled_caught
        else:
            try:
                async with asyncio.timeout(seconds):
                    yield caught
            except TimeoutError:
                caught[0] = True

    async def gather(self, *fns: Callable[[], Awaitable[Any]]) -> None:
        if self.trio:
            async with trio.open_nursery() as nursery:
                for fn in fns:
                    nursery.start_soon(fn)
        else:
            async with asyncio.TaskGroup() as tg:
                for fn in fns:
                    tg.create_task(fn())  # type: ignore[arg-type]


@pytest.fixture(params=LIBS)
def lib(request: pytest.FixtureRequest) -> Lib:
    return Lib(request.param)


async def _pair(lib: Lib, url: str, **options: Any) -> tuple[purenng.Socket, purenng.Socket]:
    a = await lib.socket(purenng.Pair0, recv_timeout=5, **options)
    lst = await a.alisten(url)
    b = await lib.socket(purenng.Pair0, recv_timeout=5, **options)
    await b.adial(lst.url, block=True)
    return a, b


def _has_receiver(sock: purenng.Socket) -> bool:
    """Whether a receive waits on the socket's loop (readable from any thread)."""
    return any(not fut.done() for fut, _ in list(sock.channel._recv_waiters))


# ---------------------------------------------------------------- exchange


@pytest.mark.parametrize("url", ["tcp://127.0.0.1:0", "inproc://trio-pair"])
def test_pair0_exchange(lib: Lib, url: str, purenng_leak_check: None) -> None:
    async def body() -> None:
        a, b = await _pair(lib, f"{url}-{lib.name}" if url.startswith("inproc") else url)
        try:
            await b.asend(b"ping")
            assert await a.arecv() == b"ping"
            await a.asend_msg(Message(b"pong"))
            msg = await b.arecv_msg()
            assert msg.bytes == b"pong"
            assert msg.pipe is not None
            assert msg.pipe.socket is b
            dialer, listener = b.dialers[0], a.listeners[0]
            await dialer.aclose()
            await listener.aclose()
            assert dialer.closed
            assert listener.closed
            assert not b.dialers
            assert not a.listeners
        finally:
            await a.aclose()
            await b.aclose()
        assert a.closed
        assert b.closed

    lib.run(body)


@pytest.mark.slow
def test_push_pull_10000_in_order(lib: Lib, purenng_leak_check: None) -> None:
    n = 10_000

    async def body() -> None:
        pull = await lib.socket(purenng.Pull0, recv_timeout=10)
        push = await lib.socket(purenng.Push0, send_timeout=10)
        lst = await pull.alisten("tcp://127.0.0.1:0")
        await push.adial(lst.url, block=True)
        got: list[int] = []

        async def sender() -> None:
            for i in range(n):
                await push.asend(i.to_bytes(4, "big"))

        async def receiver() -> None:
            got.extend([int.from_bytes(await pull.arecv(), "big") for _ in range(n)])

        try:
            await lib.gather(sender, receiver)
        finally:
            await push.aclose()
            await pull.aclose()
        assert got == list(range(n))

    lib.run(body)


def test_two_tasks_send_concurrently(lib: Lib) -> None:
    per_task = 200

    async def body() -> None:
        a, b = await _pair(lib, "tcp://127.0.0.1:0")
        got: list[bytes] = []

        def sender(tag: bytes) -> Callable[[], Awaitable[None]]:
            async def run() -> None:
                for i in range(per_task):
                    await b.asend(tag + i.to_bytes(4, "big"))

            return run

        async def receiver() -> None:
            got.extend([await a.arecv() for _ in range(2 * per_task)])

        try:
            await lib.gather(sender(b"x"), sender(b"y"), receiver)
        finally:
            await a.aclose()
            await b.aclose()
        for tag in (b"x", b"y"):
            mine = [int.from_bytes(m[1:], "big") for m in got if m[:1] == tag]
            assert mine == list(range(per_task))  # each task's order is kept

    lib.run(body)


# ---------------------------------------------------------------- timeouts, cancellation


def test_recv_timeout_raises_timeout(lib: Lib) -> None:
    async def body() -> None:
        s = await lib.socket(purenng.Pair0, recv_timeout=0.05)
        try:
            with pytest.raises(purenng.Timeout):
                await s.arecv()
            with pytest.raises(purenng.TryAgain):
                await s.arecv(block=False)
        finally:
            await s.aclose()

    lib.run(body)


def test_cancelled_arecv_leaves_socket_usable(lib: Lib) -> None:
    async def body() -> None:
        a, b = await _pair(lib, "tcp://127.0.0.1:0")
        try:
            async with lib.move_on_after(0.05) as caught:
                await a.arecv()
            assert caught[0]
            # The cancelled receive must not be left waiting on the loop,
            # where it would swallow the next message.  Under trio it is gone
            # by the time the cancellation returns; the asyncio cross-loop
            # bridge lets go of it a moment later.
            if lib.name == "asyncio-bridged":
                await lib.wait_until(lambda: not _has_receiver(a))
            assert not _has_receiver(a)
            await b.asend(b"after")
            assert await a.arecv() == b"after"
            # And again: nothing is left over from the first one.
            async with lib.move_on_after(0.05) as caught:
                await a.arecv()
            assert caught[0]
            await b.asend(b"again")
            assert await a.arecv() == b"again"
        finally:
            await a.aclose()
            await b.aclose()

    lib.run(body)


def test_cancelled_asend_is_forgotten(lib: Lib) -> None:
    async def body() -> None:
        a = await lib.socket(purenng.Pair0, recv_timeout=5)
        b = await lib.socket(purenng.Pair0, recv_timeout=5)
        try:
            lst = await a.alisten("tcp://127.0.0.1:0")
            async with lib.move_on_after(0.05) as caught:
                await a.asend(b"stale")  # no peer yet: it waits
            assert caught[0]
            await b.adial(lst.url, block=True)
            await lib.wait_until(lambda: bool(a.pipes))
            await a.asend(b"fresh")
            assert await b.arecv() == b"fresh"
            with pytest.raises(purenng.TryAgain):
                await b.arecv(block=False)
        finally:
            await a.aclose()
            await b.aclose()

    lib.run(body)


class _Canceller:
    """Cancels a waiting receive from the socket's loop thread, synchronously.

    ``cancel_from_socket_loop`` returns only once the cancellation has
    reached the caller's side, so a test can order it exactly against a
    delivery on the socket's loop.
    """

    def __init__(self, lib: Lib, sock: purenng.Socket) -> None:
        self.lib = lib
        self.sock = sock
        self.caught = False
        self._scope: trio.CancelScope | None = None
        self._token: trio.lowlevel.TrioToken | None = None
        self._task: asyncio.Task[Any] | None = None

    @contextlib.asynccontextmanager
    async def scope(self) -> AsyncIterator[None]:
        if self.lib.trio:
            self._token = trio.lowlevel.current_trio_token()
            with trio.CancelScope() as self._scope:
                yield
            self.caught = self._scope.cancelled_caught
            return
        task = asyncio.current_task()
        assert task is not None
        self._task = task
        try:
            yield
        except asyncio.CancelledError:
            if task.uncancel() == 0:
                self.caught = True
                return
            raise

    def cancel_from_socket_loop(self) -> None:
        if self._scope is not None:
            assert self._token is not None
            scope, reached = self._scope, threading.Event()

            def cancel() -> None:
                scope.cancel()  # trio runs the abort function right here
                reached.set()

            self._token.run_sync_soon(cancel)
            assert reached.wait(5)
        elif self.lib.name == "asyncio":  # same loop: cancel in place
            assert self._task is not None
            self._task.cancel()
        else:
            # Another asyncio loop: the bridged receive waits for the socket
            # loop's task to really end, which cannot happen while this
            # callback blocks that loop, so the cancel is only posted here.
            # Either order still has to deliver the message exactly once.
            task = self._task
            assert task is not None
            task.get_loop().call_soon_threadsafe(task.cancel)


@pytest.mark.parametrize(
    ("flavour", "order"),
    [
        (flavour, order)
        for flavour in ("trio", "asyncio")
        for order in ("deliver-then-cancel", "cancel-then-deliver")
    ]
    + [
        ("asyncio-bridged", "deliver-then-cancel"),
        ("asyncio-bridged", "cancel-then-deliver"),
    ],
)
def test_cancel_racing_a_delivery_loses_nothing(flavour: str, order: str) -> None:
    """A message delivered as the receive is cancelled is received exactly once.

    Either the cancelled receive returns it (it finished first) or the next
    receive does (the cancellation won and the message was kept).
    """
    lib = Lib(flavour)

    async def body() -> None:
        s = await lib.socket(purenng.Pair0, recv_timeout=5)
        canceller = _Canceller(lib, s)
        got: list[bytes] = []

        async def receiver() -> None:
            async with canceller.scope():
                got.append(await s.arecv())

        async def driver() -> None:
            await lib.wait_until(lambda: bool(s.channel._recv_waiters))

            def on_socket_loop() -> None:
                if order == "deliver-then-cancel":
                    s.channel.deliver(Message(b"m"))
                    canceller.cancel_from_socket_loop()
                else:
                    canceller.cancel_from_socket_loop()
                    s.channel.deliver(Message(b"m"))

            s.loop.call_soon_threadsafe(on_socket_loop)

        try:
            await lib.gather(receiver, driver)
            if not got:
                assert canceller.caught
                got.append(await s.arecv(block=False))
            assert got == [b"m"]
            with pytest.raises(purenng.TryAgain):
                await s.arecv(block=False)
        finally:
            await s.aclose()

    lib.run(body)


def test_close_wakes_a_waiting_receive(lib: Lib) -> None:
    async def body() -> None:
        s = await lib.socket(purenng.Pair0, recv_timeout=5)
        failed: list[BaseException] = []

        async def receiver() -> None:
            try:
                await s.arecv()
            except purenng.Closed as exc:
                failed.append(exc)

        async def closer() -> None:
            await lib.wait_until(lambda: bool(s.channel._recv_waiters))
            await s.aclose()

        await lib.gather(receiver, closer)
        assert len(failed) == 1
        with pytest.raises(purenng.Closed):
            await s.asend(b"x")

    lib.run(body)


# ---------------------------------------------------------------- context managers, contexts


def test_async_with_socket(lib: Lib, purenng_leak_check: None) -> None:
    async def body() -> None:
        make = lib.socket
        a = await make(purenng.Pair0, listen="tcp://127.0.0.1:0", recv_timeout=5)
        async with a:
            url = a.listeners[0].url
            async with await make(purenng.Pair0, dial=url, recv_timeout=5) as b:
                await b.asend(b"hello")
                assert await a.arecv() == b"hello"
            assert b.closed
        assert a.closed
        with pytest.raises(purenng.Closed):
            await a.arecv()
        # __aexit__ waited for the listener to let go of its address.
        async with await make(purenng.Pair0, listen=url) as again:
            assert again.listeners[0].url == url

    lib.run(body)


def test_contexts(lib: Lib) -> None:
    async def body() -> None:
        rep = await lib.socket(purenng.Rep0, recv_timeout=5)
        req = await lib.socket(purenng.Req0, recv_timeout=5)
        try:
            lst = await rep.alisten("tcp://127.0.0.1:0")
            await req.adial(lst.url, block=True)
            n = 4

            async def client(i: int) -> None:
                ctx = req.new_context()
                await ctx.asend(b"q%d" % i)
                assert await ctx.arecv() == b"a%d" % i

            async def server() -> None:
                for _ in range(n):
                    ctx = rep.new_context()
                    q = await ctx.arecv()
                    await ctx.asend(b"a" + q[1:])

            await lib.gather(server, *[lambda i=i: client(i) for i in range(n)])
        finally:
            await req.aclose()
            await rep.aclose()

    lib.run(body)


# ---------------------------------------------------------------- cost when unused


def test_asyncio_programs_do_not_load_trio_or_sniffio() -> None:
    code = (
        "import asyncio, sys, purenng\n"
        "s = purenng.Pair0(recv_timeout=0.01)\n"  # on the background loop: bridged
        "async def main():\n"
        "    try:\n"
        "        await s.arecv()\n"
        "    except purenng.Timeout:\n"
        "        pass\n"
        "asyncio.run(main())\n"
        "s.close()\n"
        "assert 'trio' not in sys.modules and 'sniffio' not in sys.modules, sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=30)
