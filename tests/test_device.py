"""Devices: refusals, forwarding per protocol pair, reflectors, chains, ending.

purenng against itself (ideas from NNG's ``device_test.c``, ``bus_test.c``
"bus device", ``xrep_test.c`` "xrep ttl drop" and the nanomsg
``compat_reqttl`` device chains; wire-protocols.md §1.3-§1.5).  Interop with
real NNG devices and clients is in tests/interop/test_nng_bus_device.py.

The REQ/REP, PUB/SUB and SURVEYOR/RESPONDENT cases need those protocols'
raw modes (purenng.protocols.reqrep0, pubsub0, survey0).

Every device here runs in a thread (blocking :func:`purenng.device`) or a
task (:func:`purenng.adevice`) and is ended by closing a socket; the helper
checks that it really returned.
"""

from __future__ import annotations

import asyncio
import importlib
import signal
import threading
from typing import TYPE_CHECKING, Any

import pytest

import purenng
from purenng import Message
from purenng.core.errors import BadState, Closed, NotSupported, Timeout, WrongThread
from support.waiting import await_for, wait_for

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

LONG = 5.0  # only to stop hangs
TCP = "tcp://127.0.0.1:0"


def receiving(sock: purenng.Socket) -> bool:
    """Whether someone waits to receive on ``sock`` (read on its own loop)."""

    async def read() -> bool:
        return sock.channel.has_receiver

    return asyncio.run_coroutine_threadsafe(read(), sock.loop).result(LONG)


def url_of(sock: purenng.Socket) -> str:
    url: str = sock.listeners[0].url
    return url


def opts(**kw: Any) -> dict[str, Any]:
    kw.setdefault("recv_timeout", LONG)
    kw.setdefault("send_timeout", LONG)
    return kw


class DeviceThread:
    """A blocking device in a thread; :meth:`join` checks how it ended."""

    def __init__(self, a: purenng.Socket, b: purenng.Socket | None = None) -> None:
        self.returned = False
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, args=(a, b), daemon=True)
        self.thread.start()

    def _run(self, a: purenng.Socket, b: purenng.Socket | None) -> None:
        try:
            purenng.device(a, b)
            self.returned = True
        except BaseException as exc:
            self.error = exc

    def join(self) -> None:
        """Wait for the device to return (a socket was closed), not raise."""
        self.thread.join(LONG)
        assert not self.thread.is_alive(), "the device did not end"
        assert self.error is None, f"the device raised {self.error!r}"
        assert self.returned


@pytest.fixture
def closing() -> Iterator[Callable[..., Any]]:
    """Register sockets to close at teardown, in reverse order."""
    socks: list[purenng.Socket] = []

    def add(*more: purenng.Socket) -> Any:
        socks.extend(more)
        return more[0] if len(more) == 1 else more

    try:
        yield add
    finally:
        for s in reversed(socks):
            s.close()


# ------------------------------------------------------------------ refusals


def test_cooked_sockets_are_refused() -> None:
    with (
        purenng.Pair0() as cooked,
        purenng.Pair0(raw=True) as raw,
        purenng.Bus0() as bus,
    ):
        for a, b in ((cooked, raw), (raw, cooked), (cooked, cooked), (bus, None)):
            with pytest.raises(BadState, match="raw=True"):
                purenng.device(a, b)


async def test_cooked_sockets_are_refused_async() -> None:
    with (
        purenng.Pull0() as pull,
        purenng.Push0(raw=True) as push,
        pytest.raises(BadState, match="raw"),
    ):
        await purenng.adevice(pull, push)


def test_mismatched_protocols_are_refused() -> None:
    with (
        purenng.Pair0(raw=True) as pair0,
        purenng.Pair1(raw=True) as pair1,
        purenng.Bus0(raw=True) as bus,
        purenng.Push0(raw=True) as push,
        purenng.Push0(raw=True) as push2,
        purenng.Pull0(raw=True) as pull,
    ):
        for a, b in ((pair0, pair1), (pair0, bus), (push, push2), (pull, bus), (bus, pull)):
            with pytest.raises(NotSupported, match="not peers"):
                purenng.device(a, b)
        # One socket reflects, which only a protocol that is its own peer can do.
        for s in (push, pull):
            with pytest.raises(NotSupported, match="own peer"):
                purenng.device(s)
            with pytest.raises(NotSupported, match="own peer"):
                purenng.device(s, s)


def test_mismatched_reqrep_pairs_are_refused() -> None:
    with (
        purenng.Req0(raw=True) as req,
        purenng.Req0(raw=True) as req2,
        purenng.Rep0(raw=True) as rep,
        purenng.Pull0(raw=True) as pull,
    ):
        for a, b in ((req, req2), (rep, pull), (req, None)):
            with pytest.raises(NotSupported):
                purenng.device(a, b)


def test_closed_socket_and_non_socket_are_refused() -> None:
    a = purenng.Pair0(raw=True)
    a.close()
    with purenng.Pair0(raw=True) as b:
        with pytest.raises(Closed):
            purenng.device(a, b)
        with pytest.raises(TypeError):
            purenng.device(b, "not a socket")  # type: ignore[arg-type]


async def test_blocking_device_on_the_owning_loop_is_refused() -> None:
    async with purenng.Pair0(raw=True) as a, purenng.Pair0(raw=True) as b:
        with pytest.raises(WrongThread, match="adevice"):
            purenng.device(a, b)


def test_device_is_the_function_whichever_way_it_was_imported() -> None:
    mod = importlib.import_module("purenng.devices")
    assert purenng.device is mod.device
    assert purenng.adevice is mod.adevice
    with purenng.Pull0() as cooked, pytest.raises(BadState):
        purenng.device(cooked)


# ------------------------------------------------------------------ one-way and two-way


@pytest.mark.parametrize("order", ["pull_first", "push_first"])
def test_push_pull_device_tcp_in_ipc_out(
    order: str, purenng_ipc_url: str, closing: Callable[..., Any]
) -> None:
    """PUSH -> tcp -> [raw PULL | device | raw PUSH] -> ipc -> PULL, in order."""
    xpull = closing(purenng.Pull0(raw=True, listen=TCP))
    xpush = closing(purenng.Push0(raw=True, listen=purenng_ipc_url))
    push = closing(purenng.Push0(dial=url_of(xpull), **opts()))
    pull = closing(purenng.Pull0(dial=purenng_ipc_url, **opts()))
    assert xpull.pipes[0].transport == "tcp"
    assert xpush.pipes[0].transport == "ipc"
    dev = DeviceThread(xpull, xpush) if order == "pull_first" else DeviceThread(xpush, xpull)
    for i in range(50):
        push.send(b"msg %02d" % i)
    assert [pull.recv() for _ in range(50)] == [b"msg %02d" % i for i in range(50)]
    xpush.close()
    dev.join()


def test_pair0_device_forwards_both_ways(closing: Callable[..., Any]) -> None:
    x1 = closing(purenng.Pair0(raw=True, listen=TCP))
    x2 = closing(purenng.Pair0(raw=True, listen=TCP))
    left = closing(purenng.Pair0(dial=url_of(x1), **opts()))
    right = closing(purenng.Pair0(dial=url_of(x2), **opts()))
    dev = DeviceThread(x1, x2)
    for i in range(10):
        left.send(b"to right %d" % i)
        assert right.recv() == b"to right %d" % i
        right.send(b"to left %d" % i)
        assert left.recv() == b"to left %d" % i
    x1.close()
    dev.join()


def test_pair1_device_keeps_headers_and_counts_hops(closing: Callable[..., Any]) -> None:
    x1 = closing(purenng.Pair1(raw=True, listen=TCP))
    x2 = closing(purenng.Pair1(raw=True, listen=TCP))
    left = closing(purenng.Pair1(dial=url_of(x1), **opts()))
    right = closing(purenng.Pair1(dial=url_of(x2), **opts()))
    dev = DeviceThread(x1, x2)
    left.send(b"hop")
    msg = right.recv_msg()
    # Cooked send puts 1 on the wire; the raw side forwards it + 1.
    assert (msg.bytes, bytes(msg.header)) == (b"hop", b"\x00\x00\x00\x02")
    right.send(b"back")
    msg = left.recv_msg()
    assert (msg.bytes, bytes(msg.header)) == (b"back", b"\x00\x00\x00\x02")
    x2.close()
    dev.join()


def test_pair0_reflector(closing: Callable[..., Any]) -> None:
    x = closing(purenng.Pair0(raw=True, listen=TCP))
    peer = closing(purenng.Pair0(dial=url_of(x), **opts()))
    dev = DeviceThread(x)
    for i in range(5):
        peer.send(b"echo %d" % i)
        assert peer.recv() == b"echo %d" % i
    x.close()
    dev.join()


def test_bus_device_reflector(closing: Callable[..., Any]) -> None:
    """NNG's "bus device": a raw BUS reflector never echoes to the sender."""
    hub = closing(purenng.Bus0(raw=True, listen=TCP))
    clients = [closing(purenng.Bus0(dial=url_of(hub), **opts())) for _ in range(3)]
    wait_for(lambda: len(hub.pipes) == 3, "three clients on the hub")
    dev = DeviceThread(hub)
    for i, sender in enumerate(clients):
        sender.send(b"from %d" % i)
        for j, other in enumerate(clients):
            if j != i:
                assert other.recv() == b"from %d" % i
    # Nobody got its own message back: everyone's next message is the
    # next client's, which the hub forwarded after the echo would have been.
    for i, sender in enumerate(clients):
        sender.send(b"sentinel %d" % i)
        for j, other in enumerate(clients):
            if j != i:
                assert other.recv() == b"sentinel %d" % i
    hub.close()
    dev.join()


def test_bus_device_between_two_raw_sockets(closing: Callable[..., Any]) -> None:
    x1 = closing(purenng.Bus0(raw=True, listen=TCP))
    x2 = closing(purenng.Bus0(raw=True, listen=TCP))
    a = closing(purenng.Bus0(dial=url_of(x1), **opts()))
    b = closing(purenng.Bus0(dial=url_of(x1), **opts()))
    c = closing(purenng.Bus0(dial=url_of(x2), **opts()))
    wait_for(lambda: len(x1.pipes) == 2 and len(x2.pipes) == 1, "the clients")
    dev = DeviceThread(x1, x2)
    a.send(b"from a")
    assert c.recv() == b"from a"  # across the device
    c.send(b"from c")
    assert a.recv() == b"from c"
    assert b.recv() == b"from c"
    x1.close()
    dev.join()


# ------------------------------------------------------------------ REQ/REP


def reqrep_chain(
    closing: Callable[..., Any], devices: int, **rep_opts: Any
) -> tuple[purenng.Socket, purenng.Socket, list[DeviceThread], list[purenng.Socket]]:
    """REQ -> ([raw REP | device | raw REQ] x devices) -> REP."""
    req = closing(purenng.Req0(**opts(recv_timeout=LONG)))
    url_in = None
    threads: list[DeviceThread] = []
    raws: list[purenng.Socket] = []
    prev_out: purenng.Socket | None = None
    for _ in range(devices):
        xrep = closing(purenng.Rep0(raw=True, listen=TCP))
        xreq = closing(purenng.Req0(raw=True, listen=TCP))
        if prev_out is None:
            url_in = url_of(xrep)
        else:
            prev_out.dial(url_of(xrep), block=True)
        raws += [xrep, xreq]
        threads.append(DeviceThread(xrep, xreq))
        prev_out = xreq
    assert prev_out is not None
    assert url_in is not None
    rep = closing(purenng.Rep0(**opts(**rep_opts)))
    rep.dial(url_of(prev_out), block=True)
    req.dial(url_in, block=True)
    return req, rep, threads, raws


def test_reqrep_through_a_device(closing: Callable[..., Any]) -> None:
    req, rep, threads, raws = reqrep_chain(closing, 1)
    for i in range(10):
        req.send(b"request %d" % i)
        assert rep.recv() == b"request %d" % i
        rep.send(b"reply %d" % i)
        assert req.recv() == b"reply %d" % i
    raws[0].close()
    threads[0].join()


def test_reqrep_device_routes_replies_to_the_right_requester(
    closing: Callable[..., Any],
) -> None:
    xrep = closing(purenng.Rep0(raw=True, listen=TCP))
    xreq = closing(purenng.Req0(raw=True, listen=TCP))
    rep = closing(purenng.Rep0(dial=url_of(xreq), **opts()))
    reqs = [closing(purenng.Req0(dial=url_of(xrep), **opts())) for _ in range(3)]
    wait_for(lambda: len(xrep.pipes) == 3 and len(xreq.pipes) == 1, "all pipes")
    dev = DeviceThread(xrep, xreq)
    for i, r in enumerate(reqs):
        r.send(b"who am I? %d" % i)
    for _ in reqs:
        q = rep.recv()
        rep.send(q.replace(b"who am I?", b"you are"))
    for i, r in enumerate(reqs):
        assert r.recv() == b"you are %d" % i
    xreq.close()
    dev.join()


def test_reqrep_through_a_chain_of_two_devices(closing: Callable[..., Any]) -> None:
    req, rep, threads, raws = reqrep_chain(closing, 2)
    for i in range(5):
        req.send(b"deep %d" % i)
        msg = rep.recv_msg()
        assert msg.bytes == b"deep %d" % i
        rep.send(b"up %d" % i)
        assert req.recv() == b"up %d" % i
    for x in raws[::2]:
        x.close()
    for t in threads:
        t.join()


def test_ttl_max_drops_a_request_that_crossed_too_many_devices(
    closing: Callable[..., Any],
) -> None:
    # With ttl_max 2 a request may carry 2 backtrace words: one device hop
    # plus the request id.  Two devices make 3 words: dropped at the REP.
    req1, rep1, _, _ = reqrep_chain(closing, 1, ttl_max=2)
    req1.send(b"one hop")
    assert rep1.recv() == b"one hop"

    req, rep, _, _ = reqrep_chain(closing, 2, ttl_max=2)
    req.send(b"too far")
    # Wait until the request reached the REP, then allow one more hop; the
    # next request is the first one the REP delivers.
    wait_for(lambda: rep.stats()["messages_in"] >= 1, "the request to reach the REP")
    assert isinstance(rep, purenng.Rep0)
    rep.ttl_max = 3
    req.send(b"close enough")
    assert rep.recv() == b"close enough"
    rep.send(b"done")
    assert req.recv() == b"done"


# ------------------------------------------------------------------ PUB/SUB and SURVEY


def test_pub_sub_device(closing: Callable[..., Any], purenng_ipc_url: str) -> None:
    xsub = closing(purenng.Sub0(raw=True, listen=TCP))
    xpub = closing(purenng.Pub0(raw=True, listen=purenng_ipc_url))
    pub = closing(purenng.Pub0(dial=url_of(xsub), **opts()))
    subs = [closing(purenng.Sub0(dial=purenng_ipc_url, **opts())) for _ in range(2)]
    subs[0].subscribe(b"")
    subs[1].subscribe(b"news")
    wait_for(lambda: len(xpub.pipes) == 2 and len(xsub.pipes) == 1, "all pipes")
    dev = DeviceThread(xpub, xsub)  # order does not matter: SUB -> PUB
    pub.send(b"weather: rain")
    pub.send(b"news: devices work")
    assert subs[0].recv() == b"weather: rain"
    assert subs[0].recv() == b"news: devices work"
    assert subs[1].recv() == b"news: devices work"  # the raw SUB did not filter
    xsub.close()
    dev.join()


def test_surveyor_respondent_device(closing: Callable[..., Any]) -> None:
    xresp = closing(purenng.Respondent0(raw=True, listen=TCP))
    xsurv = closing(purenng.Surveyor0(raw=True, listen=TCP))
    surveyor = closing(purenng.Surveyor0(dial=url_of(xresp), survey_time=LONG, **opts()))
    resps = [closing(purenng.Respondent0(dial=url_of(xsurv), **opts())) for _ in range(2)]
    wait_for(lambda: len(xsurv.pipes) == 2 and len(xresp.pipes) == 1, "all pipes")
    dev = DeviceThread(xresp, xsurv)
    surveyor.send(b"how many?")
    for i, r in enumerate(resps):
        assert r.recv() == b"how many?"
        r.send(b"answer %d" % i)
    assert sorted(surveyor.recv() for _ in resps) == [b"answer 0", b"answer 1"]
    xsurv.close()
    dev.join()


# ------------------------------------------------------------------ ending, cancelling, loops


@pytest.mark.parametrize("which", ["source", "destination"])
def test_closing_either_socket_of_a_one_way_device_ends_it(
    which: str, closing: Callable[..., Any]
) -> None:
    xpull = closing(purenng.Pull0(raw=True, listen=TCP))
    xpush = closing(purenng.Push0(raw=True, listen=TCP))
    dev = DeviceThread(xpull, xpush)
    wait_for(lambda: receiving(xpull), "the device to wait for a message")
    (xpull if which == "source" else xpush).close()
    dev.join()


def test_closing_the_source_ends_a_device_blocked_on_back_pressure(
    closing: Callable[..., Any],
) -> None:
    # The raw PUSH has no peer, so the device waits to send; closing the
    # PULL side must still end it.
    xpull = closing(purenng.Pull0(raw=True, listen=TCP))
    xpush = closing(purenng.Push0(raw=True))
    push = closing(purenng.Push0(dial=url_of(xpull), **opts()))
    dev = DeviceThread(xpull, xpush)
    push.send(b"stuck")
    wait_for(lambda: xpush.channel._send_waiters, "the device to wait to send")
    xpull.close()
    dev.join()


async def test_adevice_returns_when_a_socket_closes() -> None:
    async with (
        purenng.Pair0(raw=True, listen=TCP) as x1,
        purenng.Pair0(raw=True, listen=TCP) as x2,
        purenng.Pair0(dial=url_of(x1), recv_timeout=LONG) as left,
        purenng.Pair0(dial=url_of(x2), recv_timeout=LONG) as right,
    ):
        task = asyncio.create_task(purenng.adevice(x1, x2))
        await await_for(lambda: x1.pipes and x2.pipes, "pipes")
        await left.asend(b"over")
        assert await right.arecv() == b"over"
        await x2.aclose()
        await asyncio.wait_for(task, LONG)  # returns, no Closed


async def test_cancelling_adevice_stops_forwarding() -> None:
    async with (
        purenng.Pull0(raw=True, listen=TCP) as xpull,
        purenng.Push0(raw=True, listen=TCP) as xpush,
        purenng.Push0(dial=url_of(xpull), send_timeout=LONG) as push,
        purenng.Pull0(dial=url_of(xpush), recv_timeout=LONG) as pull,
    ):
        await await_for(lambda: xpull.pipes and xpush.pipes, "pipes")
        task = asyncio.create_task(purenng.adevice(xpull, xpush))
        await push.asend(b"before")
        assert await pull.arecv() == b"before"
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await push.asend(b"after")
        # Nobody forwards it any more: it stays in the raw PULL's queue.
        await await_for(lambda: xpull.channel.recv_queued == 1, "the message to stay queued")
        with pytest.raises(purenng.TryAgain):
            await pull.arecv(block=False)
        # A new device picks it up; the sockets were not harmed.
        task = asyncio.create_task(purenng.adevice(xpull, xpush))
        assert await pull.arecv() == b"after"
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


def test_adevice_under_trio(closing: Callable[..., Any]) -> None:
    trio = pytest.importorskip("trio")
    x1 = closing(purenng.Pair0(raw=True, listen=TCP))
    x2 = closing(purenng.Pair0(raw=True, listen=TCP))
    left = closing(purenng.Pair0(dial=url_of(x1), **opts()))
    right = closing(purenng.Pair0(dial=url_of(x2), **opts()))

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(purenng.adevice, x1, x2)
            await left.asend(b"via trio")
            assert await right.arecv() == b"via trio"
            await right.asend(b"back")
            assert await left.arecv() == b"back"
            nursery.cancel_scope.cancel()  # stops forwarding
        await left.asend(b"stays")
        with trio.fail_after(LONG):
            while x1.channel.recv_queued != 1:  # nobody forwards it now
                await trio.sleep(0.005)
        with trio.fail_after(LONG):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(purenng.adevice, x1, x2)
                assert await right.arecv() == b"stays"
                await x1.aclose()  # ends the device: the nursery can exit

    trio.run(main)


def test_ctrl_c_interrupts_a_blocking_device(closing: Callable[..., Any]) -> None:
    if threading.current_thread() is not threading.main_thread():
        pytest.skip("signals reach only the main thread")
    x1 = closing(purenng.Pair0(raw=True, listen=TCP))
    x2 = closing(purenng.Pair0(raw=True, listen=TCP))
    left = closing(purenng.Pair0(dial=url_of(x1), **opts()))
    right = closing(purenng.Pair0(dial=url_of(x2), **opts()))
    problems: list[BaseException] = []

    def interrupt_once_forwarding() -> None:
        try:
            left.send(b"through")
            assert right.recv() == b"through"
        except BaseException as exc:
            problems.append(exc)
        signal.pthread_kill(threading.main_thread().ident, signal.SIGINT)  # type: ignore[arg-type]

    t = threading.Thread(target=interrupt_once_forwarding, daemon=True)
    # A harness that starts the suite in the background leaves SIGINT ignored
    # (then Python raises no KeyboardInterrupt): install the handler for this test.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        t.start()
        with pytest.raises(KeyboardInterrupt):
            purenng.device(x1, x2)
        t.join(LONG)
    finally:
        signal.signal(signal.SIGINT, previous)
    assert not problems
    # The device stopped: a new message stays in the raw socket.
    wait_for(lambda: not receiving(x1), "the device to stop receiving")
    left.send(b"not forwarded")
    wait_for(lambda: x1.channel.recv_queued == 1, "the message to stay queued")
    with pytest.raises(purenng.TryAgain):
        right.recv(block=False)


async def test_sockets_on_different_loops() -> None:
    # The raw PULL lives on this test's loop, the raw PUSH on purenng's
    # background loop (made in a thread with no running loop).
    async with purenng.Pull0(raw=True, listen=TCP) as xpull:
        xpush = await asyncio.to_thread(purenng.Push0, raw=True, listen=TCP)
        try:
            assert xpush.loop is not xpull.loop
            async with (
                purenng.Push0(dial=url_of(xpull), send_timeout=LONG) as push,
                purenng.Pull0(dial=url_of(xpush), recv_timeout=LONG) as pull,
            ):
                task = asyncio.create_task(purenng.adevice(xpush, xpull))
                for i in range(20):
                    await push.asend(b"%d" % i)
                assert [await pull.arecv() for _ in range(20)] == [b"%d" % i for i in range(20)]
                await xpush.aclose()  # bridged to the background loop
                await asyncio.wait_for(task, LONG)  # returns, no Closed
        finally:
            xpush.close()


def test_blocking_device_between_loops_of_other_threads(closing: Callable[..., Any]) -> None:
    loop = asyncio.new_event_loop()
    runner = threading.Thread(target=loop.run_forever, daemon=True)
    runner.start()

    async def make() -> purenng.Socket:
        sock = purenng.Pair0(raw=True)
        await sock.alisten(TCP)
        return sock

    try:
        x1 = closing(asyncio.run_coroutine_threadsafe(make(), loop).result(LONG))
        x2 = closing(purenng.Pair0(raw=True, listen=TCP))  # background loop
        assert x1.loop is loop
        assert x2.loop is not loop
        left = closing(purenng.Pair0(dial=url_of(x1), **opts()))
        right = closing(purenng.Pair0(dial=url_of(x2), **opts()))
        dev = DeviceThread(x1, x2)
        left.send(b"east")
        assert right.recv() == b"east"
        right.send(b"west")
        assert left.recv() == b"west"
        x1.close()
        dev.join()
    finally:
        loop.call_soon_threadsafe(loop.stop)
        runner.join(LONG)
        loop.close()


def test_forwarding_clears_the_source_pipe(closing: Callable[..., Any]) -> None:
    # A polyamorous raw PAIR1 routes by Message.pipe; a pipe of the source
    # socket means nothing there, so the device must not pass it on (it
    # would be dropped as unknown).
    x1 = closing(purenng.Pair1(raw=True, listen=TCP))
    x2 = closing(purenng.Pair1(raw=True, polyamorous=True, listen=TCP))
    left = closing(purenng.Pair1(dial=url_of(x1), **opts()))
    right = closing(purenng.Pair1(dial=url_of(x2), **opts()))
    wait_for(lambda: x1.pipes and x2.pipes, "pipes")
    dev = DeviceThread(x1, x2)
    left.send(b"routed")
    assert right.recv() == b"routed"
    assert x2.stats()["drops"] == 0
    x1.close()
    dev.join()


def test_a_refused_message_is_dropped_and_forwarding_goes_on(
    closing: Callable[..., Any], caplog: pytest.LogCaptureFixture
) -> None:
    # The destination refuses one message (as a raw protocol refuses a bad
    # header); the device drops it, says so once, and keeps forwarding.
    x1 = closing(purenng.Pair0(raw=True, listen=TCP))
    x2 = closing(purenng.Pair0(raw=True, listen=TCP))
    left = closing(purenng.Pair0(dial=url_of(x1), **opts()))
    right = closing(purenng.Pair0(dial=url_of(x2), **opts()))

    def refuse_bad(msg: Message) -> None:
        if bytes(msg.body).startswith(b"bad"):
            raise purenng.ProtocolError("refused by the test")

    x2.channel.check_send = refuse_bad
    dev = DeviceThread(x1, x2)
    with caplog.at_level("WARNING", logger="purenng"):
        for body in (b"bad 1", b"good 1", b"bad 2", b"good 2"):
            left.send(body)
        assert right.recv() == b"good 1"
        assert right.recv() == b"good 2"
    warnings = [r for r in caplog.records if "refused" in r.getMessage()]
    assert len(warnings) == 1
    x1.close()
    dev.join()


def test_device_does_not_apply_socket_timeouts(closing: Callable[..., Any]) -> None:
    # recv_timeout/send_timeout are for applications; a device waits forever.
    x1 = closing(purenng.Pair0(raw=True, listen=TCP, recv_timeout=0.01, send_timeout=0.01))
    x2 = closing(purenng.Pair0(raw=True, listen=TCP, recv_timeout=0.01, send_timeout=0.01))
    dev = DeviceThread(x1, x2)
    wait_for(lambda: receiving(x1), "the device to wait")
    left = closing(purenng.Pair0(dial=url_of(x1), **opts()))
    right = closing(purenng.Pair0(dial=url_of(x2), **opts()))
    with pytest.raises(Timeout):
        x1.recv()  # the socket's own timeout still applies to the application
    left.send(b"late")
    assert right.recv() == b"late"
    x1.close()
    dev.join()
