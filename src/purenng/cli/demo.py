"""``purenng demo``: two processes talking over tcp, narrated for a person.

What happens:

1. The parent starts a child process, ``python -m purenng.cli.demo --serve``
   (a hidden role of this same module).  The child listens with a reply
   socket and a PULL socket on ``tcp://127.0.0.1:0``, so the kernel picks
   free ports, and reports the bound URLs back as one ``READY {json}`` line
   on its stdout.
2. The parent dials both, makes a few request/reply round trips (timed),
   pushes a few numbered jobs and then a silent bulk burst, followed by an
   end marker on the same pipe (so the child knows it has seen everything:
   a pipe keeps order).
3. The parent sends the request ``quit``.  The child answers only once its
   PULL side has seen the end marker, with the counts it pulled; the parent
   checks them, closes, and the child exits when the parent's pipe goes away.

The child's narration (every other stdout line) is relayed by a reader thread
as it arrives, so the two voices interleave in real time.  Every wait is
bounded by ``--timeout``; whatever happens, the child is terminated (then
killed) before :func:`run` returns.

Request/reply uses REQ0/REP0 (:data:`REQUEST_REPLY` names the classes).

Exit status: 0 when every exchange happened as expected, 1 otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import queue
import subprocess
import sys
import threading
import time
from typing import IO, TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = ["HELP", "REQUEST_REPLY", "add_arguments", "run"]

#: The one-line help of ``purenng demo`` (see :class:`purenng.cli.command.Command`).
HELP = "REQ/REP and PUSH/PULL across two processes over tcp"

#: The (requester, replier) socket classes, by name on :mod:`purenng`.
REQUEST_REPLY = ("Req0", "Rep0")

_READY = "READY "
_QUIT = b"quit"
_END = b"end"
_BULK = b"bulk:"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``purenng demo``."""
    parser.add_argument(
        "--requests", type=int, default=3, metavar="N", help="request/reply round trips (3)"
    )
    parser.add_argument(
        "--pushes", type=int, default=5, metavar="N", help="numbered jobs pushed, shown (5)"
    )
    parser.add_argument(
        "--bulk", type=int, default=1000, metavar="N", help="silent bulk messages pushed (1000)"
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help="bound on every wait, and on the child's whole life (10)",
    )
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)


# ---------------------------------------------------------------- the child


def _say(text: str) -> None:
    print(text, flush=True)


async def _serve(timeout: float) -> int:
    import purenng

    replier = getattr(purenng, REQUEST_REPLY[1])
    async with (
        replier(listen="tcp://127.0.0.1:0") as rep,
        purenng.Pull0(listen="tcp://127.0.0.1:0") as pull,
    ):
        gone = asyncio.Event()
        rep.on_pipe_event(lambda _pipe, _event: gone.set(), purenng.PipeEvent.REMOVE_POST)
        ready = {"pid": os.getpid(), "rep": rep.listeners[0].url, "pull": pull.listeners[0].url}
        _say(_READY + json.dumps(ready))
        _say(f"[child] pid {ready['pid']}: {REQUEST_REPLY[1]} on {ready['rep']}")
        _say(f"[child] pid {ready['pid']}: Pull0 on {ready['pull']}")

        counts = {"jobs": 0, "bulk": 0}
        ended = asyncio.Event()

        async def pull_loop() -> None:
            first = 0.0
            while True:
                data = await pull.arecv()
                if data == _END:
                    break
                if data.startswith(_BULK):
                    if not counts["bulk"]:
                        first = time.perf_counter()
                    counts["bulk"] += 1
                else:
                    counts["jobs"] += 1
                    _say(f"[child] pulled {data!r}")
            if counts["bulk"]:
                ms = (time.perf_counter() - first) * 1e3
                _say(f"[child] pulled {counts['bulk']} bulk messages in {ms:.1f} ms")
            ended.set()

        puller = asyncio.create_task(pull_loop())
        try:
            while True:
                request = await rep.arecv()
                _say(f"[child] got {request!r}")
                if request == _QUIT:
                    await asyncio.wait_for(ended.wait(), timeout)
                    reply = json.dumps(counts).encode()
                    await rep.asend(reply)
                    _say(f"[child] replied {reply!r}; waiting for the parent to hang up")
                    # Closing at once could drop the reply still being written.
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(gone.wait(), timeout)
                    return 0
                reply = b"pong" + request.removeprefix(b"ping")
                await rep.asend(reply)
                _say(f"[child] replied {reply!r}")
        finally:
            puller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await puller


def _run_child(timeout: float) -> int:
    try:
        return asyncio.run(asyncio.wait_for(_serve(timeout), timeout * 3))
    except TimeoutError:
        _say("[child] timed out; exiting")
        return 1


# ---------------------------------------------------------------- the parent


def _child_command(args: argparse.Namespace) -> list[str]:
    return [sys.executable, "-m", "purenng.cli.demo", "--serve", "--timeout", str(args.timeout)]


def _spawn(cmd: Sequence[str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        list(cmd), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, text=True, bufsize=1
    )


def _relay(stream: IO[str], ready: queue.Queue[str | None], lock: threading.Lock) -> None:
    """Pass the child's narration through; hand the READY line to the parent."""
    for line in stream:
        if line.startswith(_READY):
            ready.put(line[len(_READY) :])
        else:
            with lock:
                print(line.rstrip("\n"), flush=True)
    ready.put(None)


def _stop(proc: subprocess.Popen[str], grace: float) -> int:
    """Give the child ``grace`` seconds to exit; then terminate it, then kill it."""
    for step, wait in ((None, grace), (proc.terminate, 2.0), (proc.kill, None)):
        if step is not None:
            step()
        try:
            return proc.wait(wait)
        except subprocess.TimeoutExpired:
            pass
    raise AssertionError("unreachable: wait() without a timeout returned")


def _converse(urls: dict[str, Any], args: argparse.Namespace, say: Any) -> bool:
    import purenng

    requester = getattr(purenng, REQUEST_REPLY[0])
    t = args.timeout
    with (
        requester(recv_timeout=t, send_timeout=t) as req,
        purenng.Push0(send_timeout=t) as push,
    ):
        req.dial(urls["rep"], block=True)
        push.dial(urls["pull"], block=True)
        say(f"[parent] {REQUEST_REPLY[0]} dialed {urls['rep']}; Push0 dialed {urls['pull']}")
        for i in range(1, args.requests + 1):
            request = b"ping %d" % i
            start = time.perf_counter()
            req.send(request)
            say(f"[parent] sent {request!r}")
            reply = req.recv()
            ms = (time.perf_counter() - start) * 1e3
            say(f"[parent] got {reply!r} after {ms:.2f} ms")
        for i in range(1, args.pushes + 1):
            job = b"job %d" % i
            push.send(job)
            say(f"[parent] pushed {job!r}")
        if args.bulk:
            payload = _BULK + b"x" * 59
            start = time.perf_counter()
            for _ in range(args.bulk):
                push.send(payload)
            ms = (time.perf_counter() - start) * 1e3
            say(f"[parent] pushed {args.bulk} bulk messages of {len(payload)} bytes in {ms:.1f} ms")
        push.send(_END)
        req.send(_QUIT)
        say(f"[parent] sent {_QUIT!r}")
        counts = json.loads(req.recv())
        say(f"[parent] child reports {counts}")
    expected = {"jobs": args.pushes, "bulk": args.bulk}
    if counts != expected:
        say(f"[parent] expected {expected}: something was lost")
        return False
    return True


def run(args: argparse.Namespace) -> int:
    """Run the demo (or, with the hidden ``--serve``, the child's side of it)."""
    if args.serve:
        return _run_child(args.timeout)
    lock = threading.Lock()

    def say(text: str) -> None:
        with lock:
            print(text, flush=True)

    start = time.perf_counter()
    proc = _spawn(_child_command(args))
    say(f"[parent] pid {os.getpid()} started child pid {proc.pid}")
    ready: queue.Queue[str | None] = queue.Queue()
    assert proc.stdout is not None
    reader = threading.Thread(
        target=_relay, args=(proc.stdout, ready, lock), name="purenng-demo-relay", daemon=True
    )
    reader.start()
    ok = False
    try:
        try:
            line = ready.get(timeout=args.timeout)
        except queue.Empty:
            line = None
        if line is None:
            say("[parent] the child did not report its ports in time")
            return 1
        ok = _converse(json.loads(line), args, say)
    except Exception as exc:  # a demo reports any failure and still cleans up
        say(f"[parent] failed: {type(exc).__name__}: {exc}")
        ok = False
    finally:
        # A child that failed the conversation may be stuck: do not wait long.
        code = _stop(proc, args.timeout if ok else 0.5)
        reader.join(args.timeout)
        if not reader.is_alive():
            proc.stdout.close()
        say(f"[parent] child exited with status {code}")
    ok = ok and code == 0
    say(f"[parent] {'done' if ok else 'FAILED'} in {time.perf_counter() - start:.2f} s")
    return 0 if ok else 1


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m purenng.cli.demo``: the same as ``purenng demo``."""
    parser = argparse.ArgumentParser(prog="purenng demo")
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
