"""Closing without loss (``linger``) and closing half-open pipes (``recv_idle_timeout``).

``linger``: ``close()`` waits, up to that many seconds, for the messages
already accepted to reach the kernel.  The tests use a child process that
fills its buffers (small ipc ones) towards a reader that is not reading and
then closes and exits: with no linger what sat in its buffers is gone, with linger the reader
gets every message.  No timing decides a result: the reader either reads
only after the child has exited, or reads everything it is sent.

``recv_idle_timeout``: a pipe on which nothing arrives for that long is
closed and counted; traffic keeps it open.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import textwrap
import time
from typing import TYPE_CHECKING, Any

import pytest

import purenng
from support.waiting import await_for, wait_for

if TYPE_CHECKING:
    from collections.abc import Iterator

pytestmark = pytest.mark.usefixtures("purenng_leak_check")

WAIT = 10.0  # generous: only stops a hang
#: uvloop's clock ticks in milliseconds and is read once per loop turn, so a
#: deadline it keeps can end a millisecond early by time.monotonic().
CLOCK_SLACK = 0.01
BODY = 256 * 1024

CHILD = textwrap.dedent(
    """
    import sys, purenng
    url, linger = sys.argv[1], float(sys.argv[2])
    push = purenng.Push0(dial=url, linger=linger, ipc_buffer_size=4096)
    while not push.pipes:
        pass
    sent = 0
    body = bytes(BODY)
    while True:
        try:
            push.send(body, block=False)
        except purenng.TryAgain:
            break
        sent += 1
    print(sent, flush=True)
    sys.stdin.readline()          # the parent says when to close
    push.close()
    print("closed", flush=True)
    """
).replace("BODY", str(BODY))


@contextlib.contextmanager
def _child(url: str, linger: float, loop: str) -> Iterator[subprocess.Popen[str]]:
    with subprocess.Popen(
        [sys.executable, "-c", CHILD, url, str(linger)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PURENNG_LOOP": loop},
    ) as child:
        try:
            yield child
        finally:
            if child.poll() is None:
                child.kill()


def _drain(pull: purenng.Socket) -> int:
    got = 0
    while True:
        try:
            pull.recv()
        except purenng.Timeout:
            return got
        got += 1


LOOPS = ["asyncio", "auto"]


@pytest.mark.parametrize("loop", LOOPS)
def test_without_linger_buffered_messages_die_with_the_process(
    loop: str, purenng_ipc_url: str
) -> None:
    pull = _pull(purenng_ipc_url, recv_timeout=1.0)
    with contextlib.ExitStack() as stack:
        stack.enter_context(pull)
        child = stack.enter_context(_child(pull.listeners[0].url, 0.0, loop))
        assert child.stdin is not None
        assert child.stdout is not None
        sent = int(child.stdout.readline())
        child.stdin.write("\n")
        child.stdin.flush()
        assert child.stdout.readline().strip() == "closed"
        assert child.wait(WAIT) == 0
        got = _drain(pull)
    # The send that got TryAgain found the write buffer above its high-water
    # mark: those bytes were still in the child when it exited.
    assert got < sent, (got, sent)


@pytest.mark.parametrize("loop", LOOPS)
def test_linger_delivers_every_accepted_message(loop: str, purenng_ipc_url: str) -> None:
    pull = _pull(purenng_ipc_url, recv_timeout=WAIT)
    with contextlib.ExitStack() as stack:
        stack.enter_context(pull)
        child = stack.enter_context(_child(pull.listeners[0].url, 30.0, loop))
        assert child.stdin is not None
        assert child.stdout is not None
        sent = int(child.stdout.readline())
        assert sent > 0
        child.stdin.write("\n")
        child.stdin.flush()
        got = 0
        for _ in range(sent):
            pull.recv()
            got += 1
            time.sleep(0.01)  # a slow reader: the child's buffers stay full a while
        assert child.stdout.readline().strip() == "closed"
        assert child.wait(WAIT) == 0
        pull.recv_timeout = 0.5
        got += _drain(pull)
    assert got == sent


def test_linger_gives_up_at_its_deadline_when_nobody_reads(purenng_ipc_url: str) -> None:
    with _pull(purenng_ipc_url):
        push = purenng.Push0(dial=purenng_ipc_url, linger=0.3, ipc_buffer_size=4096)
        _fill(push)
        assert any(p.pending_bytes() for p in push.pipes)
        started = time.monotonic()
        push.close()
        assert time.monotonic() - started >= 0.3 - CLOCK_SLACK  # it waited; it did not hang
        assert push.closed


def test_linger_refuses_new_sends_while_it_waits(purenng_ipc_url: str) -> None:
    with _pull(purenng_ipc_url) as pull:
        push = purenng.Push0(dial=purenng_ipc_url, linger=1.0, ipc_buffer_size=4096)
        _fill(push)
        errors: list[BaseException] = []

        async def probe() -> None:
            # Runs on the socket's loop while close() lingers there.
            await asyncio.sleep(0.1)
            try:
                await push.channel.asend(purenng.Message(b"late"), None, False)
            except BaseException as exc:
                errors.append(exc)
            pull.close()  # the pipe goes; messages left in the hand-off wait to the deadline

        probing = asyncio.run_coroutine_threadsafe(probe(), push.loop)
        push.close()
        probing.result(WAIT)
        assert len(errors) == 1
        assert isinstance(errors[0], purenng.Closed), errors
        assert "closing" in str(errors[0])


async def test_aclose_on_the_loop_lingers_and_close_there_does_not_wait(
    purenng_ipc_url: str,
) -> None:
    async with _pull(purenng_ipc_url):
        push = purenng.Push0(dial=purenng_ipc_url, linger=0.2, ipc_buffer_size=4096)
        await await_for(lambda: push.pipes, "a pipe")
        await _afill(push)
        started = time.monotonic()
        await push.aclose()
        assert time.monotonic() - started >= 0.2 - CLOCK_SLACK
        other = purenng.Push0(dial=purenng_ipc_url, linger=30.0, ipc_buffer_size=4096)
        await await_for(lambda: other.pipes, "a pipe")
        await _afill(other)
        other.close()  # on the owning loop: cannot wait, closes at once
        assert other.closed


def test_linger_is_validated() -> None:
    with pytest.raises(purenng.BadOption):
        purenng.Push0(linger=-1)
    with pytest.raises(purenng.BadOption):
        purenng.Push0(linger=None)


# ---------------------------------------------------------------- recv_idle_timeout


@pytest.mark.parametrize("transport", ["tcp://127.0.0.1:0", "inproc://idle-{n}"])
def test_idle_pipe_is_closed_and_counted(transport: str) -> None:
    url = transport.format(n=time.monotonic_ns())
    with purenng.Pair0(listen=url, recv_idle_timeout=0.1) as a:
        removed: list[purenng.Pipe] = []
        a.on_pipe_event(lambda p, e: removed.append(p), purenng.PipeEvent.REMOVE_POST)
        with purenng.Pair0(dial=a.listeners[0].url) as b:
            wait_for(lambda: len(removed) >= 1, "the idle pipe to close")
            assert a.stats()["idle_timeouts"] >= 1
            err = getattr(removed[0], "error", None)
            assert err is None or isinstance(err, purenng.Timeout)
            assert b.dialers  # the dialer lives on and redials


def test_traffic_keeps_a_watched_pipe_open() -> None:
    with (
        purenng.Pull0(listen="tcp://127.0.0.1:0", recv_idle_timeout=0.3) as pull,
        purenng.Push0(dial=pull.listeners[0].url) as push,
    ):
        wait_for(lambda: bool(pull.pipes), "a pipe")
        first = pull.pipes[0].id
        for i in range(20):  # one message every 50 ms for a second
            push.send(b"%d" % i)
            time.sleep(0.05)
        assert [p.id for p in pull.pipes] == [first]
        assert pull.stats()["idle_timeouts"] == 0


def test_idle_timeout_per_endpoint_overrides_the_socket() -> None:
    with purenng.Pair0(recv_idle_timeout=None) as a:
        lst = a.listen("tcp://127.0.0.1:0", recv_idle_timeout=0.1)
        with purenng.Pair0(dial=lst.url):
            wait_for(lambda: a.stats()["idle_timeouts"] >= 1, "the endpoint's idle limit")


# ---------------------------------------------------------------- helpers


def _pull(url: str, **options: Any) -> purenng.Socket:
    """A PULL that takes one message and then stops reading, with small ipc buffers.

    UNIX socket buffers do not grow (tcp's autotune to megabytes), so once a
    sender sees ``TryAgain`` its own write buffer is full and stays full.
    """
    return purenng.Pull0(listen=url, recv_buffer=1, ipc_buffer_size=4096, **options)


def _fill(push: purenng.Socket) -> None:
    wait_for(lambda: bool(push.pipes), "a pipe")
    body = bytes(BODY)
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        try:
            push.send(body, block=False)
        except purenng.TryAgain:
            return
    pytest.fail("the pipe never filled")


async def _afill(push: purenng.Socket) -> None:
    body = bytes(BODY)
    for _ in range(10_000):
        try:
            await push.asend(body, block=False)
        except purenng.TryAgain:
            return
        await asyncio.sleep(0)
    pytest.fail("the pipe never filled")
