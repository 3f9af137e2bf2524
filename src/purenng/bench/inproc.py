"""PUSH -> PULL over ``inproc://`` in one process (``purenng bench --modes inproc``).

The same counting rules as the two-process throughput bench
(:mod:`purenng.bench`): the sender sends ``size``-byte messages until a
message cap or ``duration`` seconds, then the 1-byte end marker; the
receiver's clock starts at the first message, which is not counted, and
stops at the end marker or at ``duration`` + ``grace`` (the run is then
``capped``).  What differs is where the two ends live:

* "sync": the receiver is the main thread (blocking ``recv``), the sender
  a second thread (blocking ``send``).  purenng's sockets then both live on
  its background loop, so three threads take part.
* "async": two tasks on one event loop, ``await asend()`` and
  ``await arecv()``, the sockets made inside that loop.

There is no kernel in between, so this is the cost of the library itself:
purenng's inproc hands message objects across without copying.  Each run
is a fresh child process (so that one run's garbage and threads cannot slow
the next), bounded by a hard time limit.  pyzmq, pynng and nng run the
same way for reference (pyzmq's two sockets share one ``zmq.Context``, as
inproc requires); the ratio is purenng/peer, higher is better.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from .peers import (
    API_NAMES,
    IO_TIMEOUT,
    LIBRARIES,
    AsyncSide,
    SyncSide,
    async_receiver,
    async_sender,
    resolve_library,
    sync_receiver,
    sync_sender,
)
from .proc import (
    BenchError,
    child_command,
    child_env,
    kill,
    last_json,
    run_cells,
    run_on_loop,
    tail,
)
from .report import (
    ModeResult,
    fmt_mb,
    fmt_rate,
    ratio,
    render_section,
    run_notes,
    throughput_stats,
    throughput_text,
    totals_note,
)
from .runner import default_count, format_size

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

__all__ = ["InprocConfig", "main", "render_inproc", "run_inproc"]

#: Seconds added to a run's duration + grace for its hard limit.
_SLACK = 20.0


def _zmq_pair(api: str, url: str) -> tuple[Any, Any, Callable[[], None]]:
    """PULL (bound) and PUSH (connected) on one context, and their closer."""
    import zmq

    ctx: Any
    if api == "async":
        import zmq.asyncio

        ctx = zmq.asyncio.Context()
    else:
        ctx = zmq.Context()
    ms = int(IO_TIMEOUT * 1000)
    pull = ctx.socket(zmq.PULL)
    pull.setsockopt(zmq.RCVTIMEO, ms)
    pull.bind(url)
    push = ctx.socket(zmq.PUSH)
    push.setsockopt(zmq.SNDTIMEO, ms)
    push.connect(url)

    def close() -> None:
        push.close(linger=1000)
        pull.close(linger=0)
        ctx.term()

    return pull, push, close


def _noop() -> None:
    return None


async def _anoop() -> None:
    return None


def _sync_pair(lib: str, url: str) -> tuple[SyncSide, SyncSide]:
    if lib == "pyzmq":
        pull, push, close = _zmq_pair("sync", url)
        return SyncSide(pull.send, pull.recv, close), SyncSide(push.send, push.recv, _noop)
    opener = LIBRARIES[lib].open_sync
    rx = opener("recv", url)
    return rx, opener("send", url)


async def _async_pair(lib: str, url: str) -> tuple[AsyncSide, AsyncSide]:
    if lib == "pyzmq":
        pull, push, close = _zmq_pair("async", url)

        async def aclose() -> None:
            close()

        return AsyncSide(pull.send, pull.recv, aclose), AsyncSide(push.send, push.recv, _anoop)
    opener = LIBRARIES[lib].open_async
    rx = await opener("recv", url)
    return rx, await opener("send", url)


def _run_sync(a: argparse.Namespace, payload: bytes, cap: float) -> dict[str, Any]:
    rx, tx = _sync_pair(a.lib, a.url)
    box: dict[str, Any] = {}

    def send() -> None:
        try:
            box["sent"] = sync_sender(tx, payload, a.count, a.duration)
        except BaseException as e:  # reported by the main thread
            box["error"] = e

    t = threading.Thread(target=send, name="bench-sender", daemon=True)
    t.start()
    try:
        res = sync_receiver(rx, cap)
        t.join(IO_TIMEOUT)
        if "error" in box:
            raise BenchError(f"sender failed: {box['error']!r}")
        if t.is_alive():
            raise BenchError("sender did not finish")
    finally:
        # The sender closes first, so nothing it sent is dropped on the way.
        tx.close()
        rx.close()
    res["sent"] = box["sent"]
    return res


async def _run_async(a: argparse.Namespace, payload: bytes, cap: float) -> dict[str, Any]:
    rx, tx = await _async_pair(a.lib, a.url)
    try:
        task = asyncio.create_task(async_receiver(rx, cap))
        sent = await async_sender(tx, payload, a.count, a.duration)
        res = await asyncio.wait_for(task, cap + IO_TIMEOUT)
    finally:
        await tx.close()
        await rx.close()
    res["sent"] = sent
    return res


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="purenng.bench.inproc", description="One inproc PUSH->PULL run of purenng bench."
    )
    p.add_argument("--lib", choices=list(LIBRARIES), required=True)
    p.add_argument("--api", choices=API_NAMES, default="sync")
    p.add_argument("--url", required=True)
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--count", type=int, default=3_000_000)
    p.add_argument("--duration", type=float, default=2.0)
    p.add_argument("--grace", type=float, default=5.0)
    p.add_argument("--loop", choices=["asyncio", "uvloop"], default="asyncio")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Run one inproc run; prints its JSON result line."""
    a = _parser().parse_args(argv)
    a.lib = resolve_library(a.lib).name
    if a.size < 2:
        print("--size must be at least 2 (1 byte is the end marker)", file=sys.stderr)
        return 2
    payload = b"\x00" * a.size
    cap = a.duration + a.grace
    c0 = time.process_time()
    if a.api == "async":
        res: dict[str, Any] = run_on_loop(_run_async(a, payload, cap), a.loop)
    else:
        res = _run_sync(a, payload, cap)
    res["cpu_s"] = round(time.process_time() - c0, 3)
    res["lost"] = 0 if res["capped"] else res["sent"] - (res["n"] + 1)
    print(json.dumps(res), flush=True)
    return 0


# ---------------------------------------------------------------- runner


@dataclass
class InprocConfig:
    """What the inproc mode runs.  ``libraries`` starts with ``"purenng"``."""

    sizes: list[int] = field(default_factory=lambda: [64])
    apis: list[str] = field(default_factory=lambda: list(API_NAMES))
    libraries: list[str] = field(default_factory=lambda: ["purenng", "pyzmq"])
    duration: float = 2.0
    repeat: int = 1
    count: int | None = None
    """Message cap per run; None: the throughput bench's cap for the size."""
    grace: float = 5.0
    loop: str = "asyncio"
    budget: float = 300.0


def run_one(cfg: InprocConfig, lib: str, api: str, size: int) -> dict[str, Any]:
    """One run in a fresh child process; returns its result.

    Raises:
        BenchError: the child failed, timed out or printed no result.
    """
    url = f"inproc://purenng-bench-{secrets.token_hex(6)}"
    args = [
        *child_command("purenng.bench.inproc"),
        "--lib", lib, "--api", api, "--url", url, "--size", str(size),
        "--count", str(cfg.count or default_count(size)), "--duration", str(cfg.duration),
        "--grace", str(cfg.grace), "--loop", cfg.loop,
    ]  # fmt: skip
    hard = cfg.duration + cfg.grace + _SLACK
    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(
            args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=err, env=child_env()
        )
        try:
            out, _ = proc.communicate(timeout=hard)
        except subprocess.TimeoutExpired:
            raise BenchError(f"timed out after {hard:.0f} s") from None
        finally:
            kill(proc)
        if proc.returncode != 0:
            raise BenchError(f"failed: {tail(err)}")
    return last_json(out)


def _stats(runs: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        **throughput_stats(runs),
        "runs_capped": sum(bool(r["capped"]) for r in runs),
        "runs_lost": [r["lost"] for r in runs],
        "cpu_s": [r.get("cpu_s") for r in runs],
    }


def run_inproc(cfg: InprocConfig, progress: Callable[[str], None] | None = None) -> ModeResult:
    """Run every (repeat, size, API, library); rows are (size, API)."""
    t_start = time.monotonic()
    cells = [(size, api, lib) for size in cfg.sizes for api in cfg.apis for lib in cfg.libraries]

    def label(c: tuple[int, str, str]) -> str:
        return f"inproc {format_size(c[0])} {c[1]} {c[2]}"

    def run(c: tuple[int, str, str]) -> dict[str, Any]:
        return run_one(cfg, c[2], c[1], c[0])

    done = run_cells(cells, cfg, t_start, label, run, throughput_text, progress)
    rows = []
    for size in cfg.sizes:
        for api in cfg.apis:
            results = {lib: done.summary((size, api, lib), _stats) for lib in cfg.libraries}
            ours = results.get("purenng", {}).get("msgs_per_s")
            rows.append(
                {
                    "size": size,
                    "size_label": format_size(size),
                    "api": api,
                    "results": results,
                    "ratio": {
                        lib: ratio(ours, results[lib].get("msgs_per_s"))
                        for lib in cfg.libraries
                        if lib != "purenng"
                    },
                }
            )
    return ModeResult(
        mode="inproc",
        config=asdict(cfg),
        rows=rows,
        elapsed_s=time.monotonic() - t_start,
        errors=done.errors,
        skipped=done.skipped,
    )


def _cell(cell: dict[str, Any]) -> tuple[str, str]:
    if cell.get("msgs_per_s") is None:
        return ("error" if cell.get("errors") else "skipped"), ""
    mark = ("*" if cell.get("runs_capped") else "") + (
        "!" if any(cell.get("runs_lost", ())) else ""
    )
    return fmt_rate(cell["msgs_per_s"]) + mark, fmt_mb(cell["MB_per_s"])


def render_inproc(result: ModeResult, *, markdown: bool = False) -> str:
    """The inproc table: msgs/s and MB/s per library, ratios purenng/peer."""
    cfg = result.config
    libs: list[str] = cfg["libraries"]
    head = ["size", "api"]
    for lib in libs:
        head += [f"{lib} msg/s", "MB/s"]
        if lib != "purenng":
            head.append(f"x {lib}")
    rows = []
    for row in result.rows:
        line = [row["size_label"], row["api"]]
        for lib in libs:
            line += list(_cell(row["results"][lib]))
            if lib != "purenng":
                r = row["ratio"][lib]
                line.append("—" if r is None else f"{r:.2f}x")
        rows.append(line)
    intro = [
        f"One process: sync = sender thread + receiving main thread, async = two tasks on "
        f"one {cfg['loop']} loop; rate at the receiver (duration {cfg['duration']:g} s, "
        f"median of {cfg['repeat']}, MB = 10^6 bytes)."
    ]
    notes = [
        "x peer = purenng msg/s / peer msg/s (higher is better).  "
        "Marks after a rate: * = a run hit the time cap, ! = messages were lost.",
        totals_note(result),
    ]
    notes += run_notes(result.rows, libs, lambda row: f"inproc {row['size_label']} {row['api']}")
    return render_section(
        "inproc PUSH->PULL throughput, one process", intro, head, rows, notes, markdown=markdown,
        left=2,
    )  # fmt: skip
