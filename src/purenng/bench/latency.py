"""REQ/REP round-trip latency (``purenng bench --modes lat``).

The method of the bench-peers baseline (``lat.py``), kept so that the
numbers compare with it:

* One run is one REP process and one REQ process.  REP listens and echoes
  every request; REQ dials, makes :data:`WARMUP` untimed round trips, then
  times each round trip with ``perf_counter_ns`` until ``count`` round trips
  or ``duration`` seconds, whichever comes first.  A 1-byte request ends the
  run (its echo tells REQ that REP is done).  The payload is ``size`` random
  bytes (64 by default).
* The result of a run is the median (p50) and the 99th percentile (sample
  ``int(0.99 * n)`` of the sorted round trips) in microseconds; with
  ``repeat`` > 1 the median of each over the runs is reported.
* CPU placement (``pin``): on a small VM a wake-up on the *other* CPU costs
  tens of microseconds, so where the scheduler puts the two processes moves
  a 64 B round trip by up to 5x.  ``none`` leaves it to the scheduler,
  ``same`` pins both processes to the first CPU, ``split`` pins REP to the
  first and REQ to the second.  Each child pins itself before it imports a
  messaging library, so the library's threads inherit the placement.
  Compare numbers within one placement only.
* "sync" is the blocking ``send``/``recv`` on both sides; "async" is
  ``await asend()`` / ``await arecv()`` on a loop that owns the socket,
  on both sides (``zmq.asyncio`` for pyzmq).  The ratio purenng/peer is
  taken sync against sync and async against async; **lower is better**.
* Order: repeats outermost, libraries innermost, so the runs a ratio
  compares are adjacent in time.

Children: ``--role rep`` prints ``READY`` once it listens and exits after
echoing the end marker; ``--role req`` prints one JSON line with its
samples' statistics.  Every send and receive is bounded by
:data:`~purenng.bench.peers.IO_TIMEOUT`, every child by a hard limit.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from .peers import API_NAMES, END, IO_TIMEOUT, LIBRARIES, AsyncSide, SyncSide, resolve_library
from .proc import (
    HOST,
    PIN_MODES,
    BenchError,
    LineReader,
    child_command,
    child_env,
    free_port,
    ipc_path,
    kill,
    last_json,
    pin_cpus,
    run_cells,
    run_on_loop,
    set_cpu,
    tail,
)
from .report import (
    ModeResult,
    fmt_us,
    median_or_none,
    ratio,
    render_section,
    run_notes,
    totals_note,
)

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Coroutine, Sequence, Sized

__all__ = [
    "DEFAULT_COUNT",
    "WARMUP",
    "LatConfig",
    "latency_stats",
    "main",
    "pins_for",
    "render_lat",
    "run_lat",
]

#: Untimed round trips before the clock starts (the baseline's).
WARMUP = 500

#: Most timed round trips per run (the baseline's).
DEFAULT_COUNT = 20_000

#: Seconds the REP child may take to start and listen.
READY_TIMEOUT = 15.0

#: Seconds added to a run's duration for its hard limit (start, warm-up, close).
_SLACK = 30.0


# ---------------------------------------------------------------- openers
# role "rep" listens and echoes; role "req" dials.


def _purenng_sync(role: str, url: str) -> SyncSide:
    import purenng

    if role == "rep":
        rep = purenng.Rep0(recv_timeout=IO_TIMEOUT, send_timeout=IO_TIMEOUT)
        rep.listen(url)
        return SyncSide(rep.send, rep.recv, rep.close)
    req = purenng.Req0(recv_timeout=IO_TIMEOUT, send_timeout=IO_TIMEOUT)
    req.dial(url, block=True)
    return SyncSide(req.send, req.recv, req.close)


async def _purenng_async(role: str, url: str) -> AsyncSide:
    import purenng

    # Made inside the running loop, so the socket lives on it.
    if role == "rep":
        rep = purenng.Rep0(recv_timeout=IO_TIMEOUT, send_timeout=IO_TIMEOUT)
        await rep.alisten(url)
        return AsyncSide(rep.asend, rep.arecv, rep.aclose)
    req = purenng.Req0(recv_timeout=IO_TIMEOUT, send_timeout=IO_TIMEOUT)
    await req.adial(url, block=True)
    return AsyncSide(req.asend, req.arecv, req.aclose)


def _pynng_open(role: str, url: str) -> Any:
    import pynng

    ms = int(IO_TIMEOUT * 1000)
    if role == "rep":
        s = pynng.Rep0(recv_timeout=ms, send_timeout=ms)
        s.listen(url)
    else:
        s = pynng.Req0(recv_timeout=ms, send_timeout=ms)
        s.dial(url, block=True)
    return s


def _nng_open(role: str, url: str) -> Any:
    import nng

    ms = int(IO_TIMEOUT * 1000)
    s: Any
    if role == "rep":
        s = nng.RepSocket()
        s.recv_timeout = s.send_timeout = ms
        s.add_listener(url).start()
    else:
        s = nng.ReqSocket()
        s.recv_timeout = s.send_timeout = ms
        s.add_dialer(url).start()
    return s


def _zmq_open(role: str, url: str, ctx: Any) -> tuple[Any, Callable[[], None]]:
    import zmq

    ms = int(IO_TIMEOUT * 1000)
    s = ctx.socket(zmq.REP if role == "rep" else zmq.REQ)
    s.setsockopt(zmq.RCVTIMEO, ms)
    s.setsockopt(zmq.SNDTIMEO, ms)
    if role == "rep":
        s.bind(url)
    else:
        s.connect(url)

    def close() -> None:
        s.close(linger=1000)
        ctx.term()

    return s, close


def _open_sync(lib: str, role: str, url: str) -> SyncSide:
    if lib == "purenng":
        return _purenng_sync(role, url)
    if lib == "pyzmq":
        import zmq

        zs, zclose = _zmq_open(role, url, zmq.Context())
        return SyncSide(zs.send, zs.recv, zclose)
    s = _pynng_open(role, url) if lib == "pynng" else _nng_open(role, url)
    return SyncSide(s.send, s.recv, s.close)


async def _open_async(lib: str, role: str, url: str) -> AsyncSide:
    if lib == "purenng":
        return await _purenng_async(role, url)
    if lib == "pyzmq":
        import zmq.asyncio

        zs, zclose = _zmq_open(role, url, zmq.asyncio.Context())
        return AsyncSide(zs.send, zs.recv, _wrap_close(zclose))
    s = _pynng_open(role, url) if lib == "pynng" else _nng_open(role, url)
    return AsyncSide(s.asend, s.arecv, _wrap_close(s.close))


def _wrap_close(close: Callable[[], object]) -> Callable[[], Coroutine[Any, Any, object]]:
    async def aclose() -> object:
        return close()

    return aclose


# ---------------------------------------------------------------- the loops


def latency_stats(samples_ns: list[int], elapsed_s: float) -> dict[str, Any]:
    """p50, p99, mean and min in µs, and round trips/s, of one run's samples."""
    s = sorted(samples_ns)
    n = len(s)
    if not n:
        return {"n": 0}
    return {
        "n": n,
        "p50_us": round(statistics.median(s) / 1e3, 2),
        "p99_us": round(s[min(n - 1, int(0.99 * n))] / 1e3, 2),
        "mean_us": round(sum(s) / n / 1e3, 2),
        "min_us": round(s[0] / 1e3, 2),
        "rtt_per_s": round(n / elapsed_s, 1) if elapsed_s > 0 else 0.0,
    }


def _check_echo(reply: Sized, payload: bytes) -> None:
    if len(reply) != len(payload):
        raise BenchError(f"the echo has {len(reply)} bytes, the request {len(payload)}")


def sync_echo(side: SyncSide) -> int:
    """Echo requests until the end marker (echoed too); returns how many were served."""
    recv = side.recv
    send: Callable[[Any], object] = side.send  # echoes what recv gave (nng: a Message)
    n = 0
    while True:
        m = recv()
        last = len(m) == 1  # before send: nng hands its Message over
        send(m)
        if last:
            return n
        n += 1


async def async_echo(side: AsyncSide) -> int:
    """:func:`sync_echo` with ``await``."""
    recv = side.recv
    send: Callable[[Any], Awaitable[object]] = side.send
    n = 0
    while True:
        m = await recv()
        last = len(m) == 1
        await send(m)
        if last:
            return n
        n += 1


def sync_timed(
    side: SyncSide, payload: bytes, warmup: int, count: int, duration: float
) -> dict[str, Any]:
    """Warm up, time round trips until ``count`` or ``duration``, send the end marker."""
    send, recv = side.send, side.recv
    send(payload)
    _check_echo(recv(), payload)
    for _ in range(warmup - 1):
        send(payload)
        recv()
    now = time.perf_counter_ns
    samples: list[int] = []
    add = samples.append
    t_start = now()
    deadline = t_start + int(duration * 1e9)
    while len(samples) < count:
        t = now()
        send(payload)
        recv()
        t1 = now()
        add(t1 - t)
        if t1 > deadline:
            break
    elapsed = (now() - t_start) / 1e9
    send(END)
    recv()
    return latency_stats(samples, elapsed)


async def async_timed(
    side: AsyncSide, payload: bytes, warmup: int, count: int, duration: float
) -> dict[str, Any]:
    """:func:`sync_timed` with ``await``."""
    send, recv = side.send, side.recv
    await send(payload)
    _check_echo(await recv(), payload)
    for _ in range(warmup - 1):
        await send(payload)
        await recv()
    now = time.perf_counter_ns
    samples: list[int] = []
    add = samples.append
    t_start = now()
    deadline = t_start + int(duration * 1e9)
    while len(samples) < count:
        t = now()
        await send(payload)
        await recv()
        t1 = now()
        add(t1 - t)
        if t1 > deadline:
            break
    elapsed = (now() - t_start) / 1e9
    await send(END)
    await recv()
    return latency_stats(samples, elapsed)


# ---------------------------------------------------------------- children


def _child(a: argparse.Namespace) -> dict[str, Any]:
    lib = resolve_library(a.lib).name
    c0 = time.process_time()
    if a.role == "rep":
        if a.api == "async":

            async def serve() -> int:
                side = await _open_async(lib, "rep", a.url)
                print("READY", flush=True)
                try:
                    return await async_echo(side)
                finally:
                    await side.close()

            served = run_on_loop(serve(), a.loop)
        else:
            side = _open_sync(lib, "rep", a.url)
            print("READY", flush=True)
            try:
                served = sync_echo(side)
            finally:
                side.close()
        return {"served": served, "cpu_s": round(time.process_time() - c0, 3)}
    payload = os.urandom(a.size)
    if a.api == "async":

        async def client() -> dict[str, Any]:
            side = await _open_async(lib, "req", a.url)
            try:
                return await async_timed(side, payload, a.warmup, a.count, a.duration)
            finally:
                await side.close()

        res: dict[str, Any] = run_on_loop(client(), a.loop)
    else:
        side = _open_sync(lib, "req", a.url)
        try:
            res = sync_timed(side, payload, a.warmup, a.count, a.duration)
        finally:
            side.close()
    res["cpu_s"] = round(time.process_time() - c0, 3)
    return res


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="purenng.bench.latency", description="One side of a purenng bench latency run."
    )
    p.add_argument("--role", choices=["rep", "req"], required=True)
    p.add_argument("--lib", choices=list(LIBRARIES), required=True)
    p.add_argument("--api", choices=API_NAMES, default="sync")
    p.add_argument("--url", required=True)
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--count", type=int, default=DEFAULT_COUNT)
    p.add_argument("--duration", type=float, default=2.0)
    p.add_argument("--warmup", type=int, default=WARMUP)
    p.add_argument("--loop", choices=["asyncio", "uvloop"], default="asyncio")
    p.add_argument("--cpu", type=int, default=-1, help="pin to this CPU (-1: no pinning)")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Run one side of a latency run; REQ prints its JSON result line."""
    a = _parser().parse_args(argv)
    set_cpu(a.cpu)  # before any messaging library starts a thread
    if a.size < 2 or a.warmup < 1:
        print("--size must be >= 2 and --warmup >= 1", file=sys.stderr)
        return 2
    res = _child(a)
    if a.role == "req":
        print(json.dumps(res), flush=True)
    return 0


# ---------------------------------------------------------------- runner


@dataclass
class LatConfig:
    """What the latency mode runs.  ``libraries`` starts with ``"purenng"``."""

    transports: list[str] = field(default_factory=lambda: ["tcp", "ipc"])
    apis: list[str] = field(default_factory=lambda: list(API_NAMES))
    libraries: list[str] = field(default_factory=lambda: ["purenng", "pynng", "pyzmq"])
    pins: list[str] = field(default_factory=lambda: ["none"])
    size: int = 64
    count: int = DEFAULT_COUNT
    """Most timed round trips per run."""
    duration: float = 2.0
    """Most seconds of timed round trips per run."""
    warmup: int = WARMUP
    repeat: int = 1
    loop: str = "asyncio"
    budget: float = 300.0
    """Seconds for the whole mode; runs that would start later are skipped."""


def run_one(cfg: LatConfig, lib: str, api: str, url: str, pin: str) -> dict[str, Any]:
    """One REP/REQ pair; returns REQ's statistics.

    Raises:
        BenchError: a child failed, timed out or printed no result.
    """
    rep_cpu, req_cpu = pin_cpus(pin)
    base = [
        *child_command("purenng.bench.latency"),
        "--lib", lib, "--api", api, "--url", url, "--size", str(cfg.size),
        "--count", str(cfg.count), "--duration", str(cfg.duration),
        "--warmup", str(cfg.warmup), "--loop", cfg.loop,
    ]  # fmt: skip
    env = child_env()
    hard = cfg.duration + _SLACK
    rep: subprocess.Popen[bytes] | None = None
    req: subprocess.Popen[bytes] | None = None
    with tempfile.TemporaryFile() as rep_err, tempfile.TemporaryFile() as req_err:
        try:
            rep = subprocess.Popen(
                [*base, "--role", "rep", "--cpu", str(-1 if rep_cpu is None else rep_cpu)],
                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=rep_err, env=env,
            )  # fmt: skip
            try:
                LineReader(rep).expect("READY", READY_TIMEOUT)
            except BenchError:
                raise BenchError(f"REP did not start: {tail(rep_err)}") from None
            req = subprocess.Popen(
                [*base, "--role", "req", "--cpu", str(-1 if req_cpu is None else req_cpu)],
                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=req_err, env=env,
            )  # fmt: skip
            deadline = time.monotonic() + hard
            while True:
                try:
                    req.wait(timeout=0.05)
                    break
                except subprocess.TimeoutExpired:
                    pass
                # REP exits once it has echoed the end marker, which may be
                # before REQ is done; only a failed REP ends the run early.
                if rep.poll() not in (None, 0):
                    raise BenchError(f"REP failed: {tail(rep_err)}")
                if time.monotonic() > deadline:
                    raise BenchError(f"REQ timed out after {hard:.0f} s")
            assert req.stdout is not None
            out = req.stdout.read()
            if req.returncode != 0:
                raise BenchError(f"REQ failed: {tail(req_err)}")
            res = last_json(out)
            try:
                rep.wait(timeout=IO_TIMEOUT)
            except subprocess.TimeoutExpired:
                raise BenchError("REP did not exit after the end marker") from None
            if rep.returncode != 0:
                raise BenchError(f"REP failed: {tail(rep_err)}")
        finally:
            kill(req)
            kill(rep)
            for p in (req, rep):
                if p is not None and p.stdout is not None:
                    p.stdout.close()
    if not res.get("n"):
        raise BenchError("REQ timed no round trip")
    return res


def _stats(runs: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "p50_us": statistics.median(r["p50_us"] for r in runs),
        "p99_us": statistics.median(r["p99_us"] for r in runs),
        "mean_us": statistics.median(r["mean_us"] for r in runs),
        "runs_p50_us": [r["p50_us"] for r in runs],
        "runs_p99_us": [r["p99_us"] for r in runs],
        "runs_n": [r["n"] for r in runs],
        "req_cpu_s": median_or_none(r.get("cpu_s") for r in runs),
    }


def _describe(r: dict[str, Any]) -> str:
    return f"p50 {fmt_us(r['p50_us'])} µs, p99 {fmt_us(r['p99_us'])} µs ({r['n']} round trips)"


def run_lat(cfg: LatConfig, progress: Callable[[str], None] | None = None) -> ModeResult:
    """Run every (repeat, pin, transport, API, library); rows are (pin, transport, API)."""
    t_start = time.monotonic()
    cells = [
        (pin, tr, api, lib)
        for pin in cfg.pins
        for tr in cfg.transports
        for api in cfg.apis
        for lib in cfg.libraries
    ]
    tmpdir = tempfile.mkdtemp(prefix="purenng-bench-")

    def run(cell: tuple[str, str, str, str]) -> dict[str, Any]:
        pin, tr, api, lib = cell
        with ipc_path(tmpdir, tr) as path:
            url = f"ipc://{path}" if path else f"tcp://{HOST}:{free_port()}"
            return run_one(cfg, lib, api, url, pin)

    def label(c: tuple[str, str, str, str]) -> str:
        return f"lat pin={c[0]} {c[1]} {c[2]} {c[3]}"

    try:
        done = run_cells(cells, cfg, t_start, label, run, _describe, progress)
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)
    rows = []
    for pin in cfg.pins:
        for tr in cfg.transports:
            for api in cfg.apis:
                results = {lib: done.summary((pin, tr, api, lib), _stats) for lib in cfg.libraries}
                ours = results.get("purenng", {})
                peers = [lib for lib in cfg.libraries if lib != "purenng"]
                rows.append(
                    {
                        "pin": pin,
                        "transport": tr,
                        "api": api,
                        "size": cfg.size,
                        "results": results,
                        "ratio_p50": {
                            p: ratio(ours.get("p50_us"), results[p].get("p50_us")) for p in peers
                        },
                        "ratio_p99": {
                            p: ratio(ours.get("p99_us"), results[p].get("p99_us")) for p in peers
                        },
                    }
                )
    return ModeResult(
        mode="lat",
        config=asdict(cfg),
        rows=rows,
        elapsed_s=time.monotonic() - t_start,
        errors=done.errors,
        skipped=done.skipped,
    )


def _cell(cell: dict[str, Any]) -> str:
    if "p50_us" not in cell:
        return "error" if cell.get("errors") else "skipped"
    return f"{fmt_us(cell['p50_us'])} / {fmt_us(cell['p99_us'])}"


def _ratio_text(r50: float | None, r99: float | None) -> str:
    if r50 is None or r99 is None:
        return "—"
    return f"{r50:.2f} / {r99:.2f}"


def render_lat(result: ModeResult, *, markdown: bool = False) -> str:
    """The latency table: p50 / p99 per library, then purenng/peer ratios."""
    cfg = result.config
    libs: list[str] = cfg["libraries"]
    peers = [lib for lib in libs if lib != "purenng"]
    head = ["pin", "transport", "api", *(f"{lib} µs" for lib in libs)]
    head += [f"x {p}" for p in peers]
    rows = []
    for row in result.rows:
        line = [row["pin"], row["transport"], row["api"]]
        line += [_cell(row["results"][lib]) for lib in libs]
        line += [_ratio_text(row["ratio_p50"][p], row["ratio_p99"][p]) for p in peers]
        rows.append(line)
    intro = [
        f"{cfg['size']} B requests, REP echoes, separate processes; {cfg['warmup']} warm-up "
        f"round trips, then up to {cfg['count']} or {cfg['duration']:g} s timed one by one; "
        f"cells are p50 / p99 in µs (median of {cfg['repeat']}).",
        "**Lower is better**, ratios included: x peer = purenng / peer for p50 / p99.",
    ]
    if not markdown:
        intro[1] = intro[1].replace("**", "")
    notes = [
        "pin: none = the scheduler places the processes; same = both on one CPU; "
        "split = REP on one CPU, REQ on another.  Compare within one placement.",
        totals_note(result),
    ]
    notes += run_notes(
        result.rows, libs, lambda row: f"pin={row['pin']} {row['transport']} {row['api']}"
    )
    return render_section(
        f"REQ/REP round-trip latency, {cfg['size']} B",
        intro,
        head,
        rows,
        notes,
        markdown=markdown,
        left=3,
    )


def pins_for(spec: str) -> list[str]:
    """``--pin`` to the placements it runs (``all`` = every one)."""
    return list(PIN_MODES) if spec == "all" else [spec]
