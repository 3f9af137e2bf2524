"""How throughput scales (``purenng bench --modes scaling``), with an optional PNG.

Two questions, two parts:

1. **Concurrent pipes**: what one PULL socket receives, in all, when ``N``
   pipes push to it at once, for each ``N`` of ``pipe_counts`` (1, 10, 100,
   1,000 by default).  One *receiver* process: a PULL socket listening on
   ``tcp://127.0.0.1:<port>``, made inside an asyncio loop and read with
   ``await arecv()``.  One *sender* process: ``N`` PUSH sockets, each dialed
   once (so one pipe each, ``batch`` dials in flight at a time), then one
   asyncio task per socket sends as the throughput mode does
   (``await asend()`` of ``pipe_size`` random bytes until ``duration``
   seconds or its share of the message cap, then the 1-byte end marker).
   All ``N`` tasks start together, stop at the same deadline and take
   turns (each yields to the loop every 16 messages), so every pipe is
   kept busy; the sender reports how many messages the slowest and the
   fastest pipe carried, which shows whether they were served fairly.
2. **Message size**: PUSH -> PULL over tcp, one pipe, sizes 16 B ... 1 MiB
   in powers of 4, sync and async APIs, purenng and the peers: exactly the
   throughput mode (:func:`purenng.bench.runner.run_bench`, no baselines),
   run with these sizes, so the method and the numbers are the same.

Counting in part 1 follows the throughput mode: the receiver's clock
starts at the first message, which is not counted, and stops when every
pipe's end marker has arrived (or at ``duration`` + ``grace``: the run is
then ``capped``).  The rate is what the receiver got, all pipes together,
in messages/s and MB/s (MB = 10**6 bytes); "per pipe" is that rate divided
by ``N``.  Every message sent must arrive: ``lost`` = sent - (counted + 1).

Which libraries: part 1 runs purenng, and pynng when it is among the
libraries (:data:`PIPE_LIBRARIES`); pyzmq is left out there because the
bench's pyzmq opener makes one context, with its own I/O thread, per
socket.  Part 2 runs every library of the configuration.

Phases of a part 1 run, driven over the children's stdin and stdout lines
(:class:`purenng.bench.proc.LineReader`): the receiver listens and says
``READY``; the sender starts, dials every pipe and says ``CONNECTED``;
the receiver says ``CONNECTED`` once it has all ``N`` pipes (a run whose
pipes do not all arrive fails); the runner writes ``go`` to the sender;
the receiver says ``DONE`` with its count, the sender ``SENT`` with its
own; the runner closes the sender's stdin (release) and both exit.  Every
phase has a deadline (the connect phase grows with ``N``), and on expiry
or failure the runner kills the two children it started, by their
handles.  Each child raises its soft open-files limit first; a count that
cannot fit is refused before anything starts.

Bounds of the whole mode: ``repeat`` rounds and one ``budget`` in
seconds shared by both parts (part 2 gets what part 1 left); runs that
would start later are skipped and reported so.

The figure (``plot``, ``purenng bench --plot FILE``): two panels, the
aggregate messages/s against ``N`` (log x; log y too when the lines are
more than 10x apart) and MB/s against the message size (log-log), one
line per library (part 1) or library and API (part 2).  matplotlib is
imported only then (``pip install 'purenng[bench]'``), through its
object-oriented API, so no global backend or pyplot state is touched.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from typing import IO, TYPE_CHECKING, Any

from .peers import (
    API_NAMES,
    END,
    IO_TIMEOUT,
    RECV_MAX,
    AsyncSide,
    resolve_library,
)
from .pipes import max_pipes
from .proc import (
    HOST,
    BenchError,
    LineReader,
    child_command,
    child_env,
    free_port,
    kill,
    machine_info,
    run_cells,
    run_pipes_child,
    say,
    send_line,
    stdin_reader,
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
from .runner import BenchConfig, default_count, format_size, run_bench

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Sequence

__all__ = [
    "DEFAULT_PIPE_COUNTS",
    "MATPLOTLIB_MISSING",
    "PIPE_LIBRARIES",
    "SCALING_SIZES",
    "PlotUnavailable",
    "ScalingConfig",
    "main",
    "plot_scaling",
    "render_scaling",
    "require_matplotlib",
    "run_scaling",
]

#: Pipe counts of part 1 by default.
DEFAULT_PIPE_COUNTS = (1, 10, 100, 1000)

#: Message sizes of part 2 by default: 16 B ... 1 MiB in powers of 4.
SCALING_SIZES = tuple(16 << (2 * i) for i in range(9))

#: Libraries part 1 can run (see the module docstring for pyzmq).
PIPE_LIBRARIES = ("purenng", "pynng")

#: What to do when the figure is asked for and matplotlib is missing.
MATPLOTLIB_MISSING = (
    "the scaling plot needs matplotlib: pip install 'purenng[bench]' (or pip install matplotlib)"
)

#: Seconds a child may take to start and open its socket(s).
READY_TIMEOUT = 30.0


class PlotUnavailable(BenchError):
    """The figure cannot be drawn here: matplotlib is not installed."""


def _connect_timeout(n: int) -> float:
    """Deadline of the connect phase: generous, growing with ``n``."""
    return 30.0 + n / 50


# ---------------------------------------------------------------- children


class _Receiver:
    """A listening PULL socket: its receive call, its pipe count, its closer.

    ``added`` counts the pipes the socket has taken into use (its pipe
    event callback); ``all_in`` is set once there are ``n`` of them.
    """

    def __init__(self, n: int) -> None:
        self.n = n
        self.added = 0
        self.all_in = asyncio.Event()
        self.recv: Callable[[], Awaitable[bytes]]
        self.pipes: Callable[[], int]
        self.close: Callable[[], Awaitable[object]]

    def pipe_added(self) -> None:
        """A pipe came up (called on the loop)."""
        self.added += 1
        if self.added >= self.n:
            self.all_in.set()


async def _open_receiver(lib: str, url: str, n: int) -> _Receiver:
    """PULL listening on ``url``, made inside the running loop (so it lives there)."""
    rx = _Receiver(n)
    if lib == "purenng":
        import purenng

        pull = purenng.Pull0(recv_max_size=RECV_MAX, recv_timeout=IO_TIMEOUT)
        pull.on_pipe_event(lambda _pipe, _event: rx.pipe_added(), "add_post")
        await pull.alisten(url)
        rx.recv, rx.pipes, rx.close = pull.arecv, lambda: len(pull.pipes), pull.aclose
        return rx
    if lib == "pynng":
        import pynng

        loop = asyncio.get_running_loop()
        s = pynng.Pull0(recv_max_size=RECV_MAX, recv_timeout=int(IO_TIMEOUT * 1000))
        # NNG calls this on its own threads: hand the count over to the loop.
        s.add_post_pipe_connect_cb(lambda _pipe: loop.call_soon_threadsafe(rx.pipe_added))
        s.listen(url)

        async def aclose() -> None:
            s.close()

        rx.recv, rx.pipes, rx.close = s.arecv, lambda: len(s.pipes), aclose
        return rx
    raise ValueError(f"{lib} cannot run the pipes part of scaling")


async def _receiver(a: argparse.Namespace) -> None:
    rx = await _open_receiver(a.lib, a.url, a.n)
    try:
        say("READY")
        try:
            await asyncio.wait_for(rx.all_in.wait(), READY_TIMEOUT + _connect_timeout(a.n))
        except TimeoutError:
            raise BenchError(f"only {rx.added} of {a.n} pipes connected") from None
        connected = rx.added
        say("CONNECTED", {"pipes": connected})
        recv = rx.recv
        await recv()  # the clock starts at the first message, which is not counted
        now = time.perf_counter
        t0 = now()
        deadline = t0 + a.duration + a.grace
        n = nbytes = ends = 0
        capped = False
        while True:
            ln = len(await recv())
            if ln == 1:
                ends += 1
                if ends >= a.n:
                    break
                continue
            n += 1
            nbytes += ln
            if not (n & 255) and now() > deadline:
                capped = True
                break
        seconds = now() - t0
        say(
            "DONE",
            {
                "n": n,
                "bytes": nbytes,
                "seconds": seconds,
                "capped": capped,
                "msgs_per_s": n / seconds if seconds > 0 else 0.0,
                "MB_per_s": nbytes / seconds / 1e6 if seconds > 0 else 0.0,
                "pipes_connected": connected,
                "pipes_at_end": rx.pipes(),
            },
        )
    finally:
        await rx.close()


async def _open_senders(lib: str, url: str, n: int, batch: int) -> list[AsyncSide]:
    """``n`` PUSH sockets, each dialed once, ``batch`` dials in flight at a time."""
    opener = resolve_library(lib).open_async
    sides: list[AsyncSide] = []
    try:
        for i in range(0, n, batch):
            got = await asyncio.gather(
                *(opener("send", url) for _ in range(min(batch, n - i))), return_exceptions=True
            )
            sides += [s for s in got if isinstance(s, AsyncSide)]
            failed = [e for e in got if isinstance(e, BaseException)]
            if failed:
                raise BenchError(f"{len(failed)} dials failed, first: {failed[0]!r}")
    except BaseException:
        await asyncio.gather(*(s.close() for s in sides), return_exceptions=True)
        raise
    return sides


#: Messages a sender task sends before it lets the other tasks have their turn.
_TURN = 16


async def _pipe_sender(side: AsyncSide, payload: bytes, count: int, deadline: float) -> int:
    """One pipe's task: send until ``count`` or ``deadline``, then :data:`END`.

    The throughput sender of :mod:`purenng.bench.peers`, with changes for
    many pipes at once: every task stops at the same ``deadline`` (looked
    at after every message), and a task yields to the loop every
    :data:`_TURN` messages.  An ``asend`` that finds room in the pipe's
    buffers completes without suspending, so without the yield one task
    would fill its pipe before the next one started; with it the tasks
    take turns and every pipe stays busy.
    """
    send = side.send
    now = time.perf_counter
    i = 0
    while i < count:
        await send(payload)
        i += 1
        if now() > deadline:  # every message: with 1,000 slow pipes, 16 each is seconds
            break
        if not (i % _TURN):
            await asyncio.sleep(0)
    await send(END)
    return i


async def _sender(a: argparse.Namespace) -> None:
    cmd = await stdin_reader()
    t0 = time.perf_counter()
    sides = await _open_senders(a.lib, a.url, a.n, a.batch)
    try:
        say("CONNECTED", {"pipes": len(sides), "seconds": time.perf_counter() - t0})
        line = await asyncio.wait_for(cmd.readline(), READY_TIMEOUT + _connect_timeout(a.n))
        if line.strip() != b"go":
            raise BenchError(f"expected 'go' from the runner, got {line!r}")
        payload = os.urandom(a.size)
        share = max(1, a.count // a.n)
        t1 = time.perf_counter()
        deadline = t1 + a.duration
        sent = await asyncio.gather(*(_pipe_sender(s, payload, share, deadline) for s in sides))
        say(
            "SENT",
            {
                "sent": sum(sent),
                "sent_min": min(sent),
                "sent_max": max(sent),
                "send_seconds": time.perf_counter() - t1,
            },
        )
        # Sockets stay open until the runner releases us: nothing in flight is dropped.
        try:
            await asyncio.wait_for(cmd.read(), a.duration + a.grace + IO_TIMEOUT)
        except TimeoutError:
            pass
    finally:
        await asyncio.gather(*(s.close() for s in sides), return_exceptions=True)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="purenng.bench.scaling", description="One process of a purenng bench scaling run."
    )
    p.add_argument("--role", choices=["recv", "send"], required=True)
    p.add_argument("--lib", choices=list(PIPE_LIBRARIES), default="purenng")
    p.add_argument("--url", required=True)
    p.add_argument("--n", type=int, required=True, help="pipes")
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--count", type=int, default=3_000_000, help="message cap, all pipes")
    p.add_argument("--duration", type=float, default=2.0)
    p.add_argument("--grace", type=float, default=5.0)
    p.add_argument("--batch", type=int, default=100, help="dials in flight at once")
    p.add_argument("--loop", choices=["asyncio", "uvloop"], default="asyncio")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Run the receiver or the sender of one pipes run."""
    a = _parser().parse_args(argv)
    if a.size < 2:
        print("--size must be at least 2 (1 byte is the end marker)", file=sys.stderr)
        return 2
    return run_pipes_child(a.n, _receiver(a) if a.role == "recv" else _sender(a), a.loop)


# ---------------------------------------------------------------- runner


@dataclass
class ScalingConfig:
    """What the scaling mode runs.  ``libraries`` starts with ``"purenng"``."""

    pipe_counts: list[int] = field(default_factory=lambda: list(DEFAULT_PIPE_COUNTS))
    """Part 1: one run per pipe count (and library of :data:`PIPE_LIBRARIES`)."""
    pipe_size: int = 64
    """Part 1: the message size."""
    sizes: list[int] = field(default_factory=lambda: list(SCALING_SIZES))
    """Part 2: the message sizes (tcp, one pipe)."""
    apis: list[str] = field(default_factory=lambda: list(API_NAMES))
    """Part 2: the APIs (part 1 is async: one task per pipe)."""
    libraries: list[str] = field(default_factory=lambda: ["purenng", "pynng", "pyzmq"])
    duration: float = 2.0
    """Seconds the senders send per run."""
    repeat: int = 1
    count: int | None = None
    """Message cap per run (part 1: shared by all pipes); None: the thr mode's per size."""
    grace: float = 5.0
    batch: int = 100
    """Part 1: dials in flight at once."""
    loop: str = "asyncio"
    """Event loop of the async runs and of both part 1 processes."""
    budget: float = 600.0
    """Seconds for both parts together; later runs are skipped."""
    plot: str | None = None
    """Write the PNG figure here (needs matplotlib)."""

    def pipe_libraries(self) -> list[str]:
        """The libraries of part 1: those of :data:`PIPE_LIBRARIES` that were asked for."""
        return [lib for lib in self.libraries if lib in PIPE_LIBRARIES]


def run_one(cfg: ScalingConfig, n: int, lib: str) -> dict[str, Any]:
    """One receiver and one sender with ``n`` pipes; returns the run's result.

    Raises:
        BenchError: a child failed, a phase passed its deadline, or pipes
            were missing or messages lost.
    """
    if n > max_pipes():
        raise BenchError(f"{n} pipes exceed the open-files limit ({max_pipes()} usable)")
    count = cfg.count or default_count(cfg.pipe_size)
    url = f"tcp://{HOST}:{free_port()}"
    args = [
        *child_command("purenng.bench.scaling"),
        "--lib", lib, "--url", url, "--n", str(n), "--size", str(cfg.pipe_size),
        "--count", str(count), "--duration", str(cfg.duration), "--grace", str(cfg.grace),
        "--batch", str(cfg.batch), "--loop", cfg.loop,
    ]  # fmt: skip
    env = child_env()
    connect = _connect_timeout(n)
    run_limit = cfg.duration + cfg.grace + IO_TIMEOUT
    procs: list[subprocess.Popen[bytes]] = []
    errs: list[IO[bytes]] = []
    files = contextlib.ExitStack()

    def start(role: str) -> LineReader:
        err = files.enter_context(tempfile.TemporaryFile())  # noqa: SIM115 (the stack closes it)
        errs.append(err)
        p = subprocess.Popen(
            [*args, "--role", role],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err, env=env,
        )  # fmt: skip
        procs.append(p)
        return LineReader(p)

    def expect(i: int, rd: LineReader, word: str, timeout: float) -> dict[str, Any]:
        try:
            return rd.expect(word, timeout)
        except BenchError as e:
            raise BenchError(f"{('receiver', 'sender')[i]}: {e}: {tail(errs[i])}") from None

    try:
        rrd = start("recv")
        expect(0, rrd, "READY", READY_TIMEOUT)
        srd = start("send")
        s_conn = expect(1, srd, "CONNECTED", READY_TIMEOUT + connect)
        r_conn = expect(0, rrd, "CONNECTED", connect)
        send_line(procs[1], "go")
        done = expect(0, rrd, "DONE", run_limit)
        sent = expect(1, srd, "SENT", run_limit)
        for p in procs:
            assert p.stdin is not None
            p.stdin.close()  # release: both close their sockets
        exits = [expect(i, rd, "EXIT", 30.0) for i, rd in enumerate((rrd, srd))]
        for i, p in enumerate(procs):
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                raise BenchError(f"{('receiver', 'sender')[i]} did not exit") from None
    finally:
        for p in procs:
            kill(p)
            for f in (p.stdin, p.stdout):
                if f is not None and not f.closed:
                    f.close()
        files.close()
    lost = 0 if done["capped"] else sent["sent"] - (done["n"] + 1)
    if lost:
        raise BenchError(f"{lost} of {sent['sent']} messages were lost")
    return {
        **done,
        "pipes": n,
        "pipes_dialed": s_conn["pipes"],
        "pipes_connected": r_conn["pipes"],
        "connect_s": round(s_conn["seconds"], 3),
        "sent": sent["sent"],
        "sent_min": sent["sent_min"],
        "sent_max": sent["sent_max"],
        "send_seconds": round(sent["send_seconds"], 3),
        "lost": lost,
        "recv_cpu_s": exits[0]["cpu_s"],
        "send_cpu_s": exits[1]["cpu_s"],
    }


def _pipe_stats(runs: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        **throughput_stats(runs),
        "per_pipe_msgs_per_s": statistics.median(r["msgs_per_s"] / r["pipes"] for r in runs),
        "runs_pipes_connected": [r["pipes_connected"] for r in runs],
        "runs_sent_min_max": [[r["sent_min"], r["sent_max"]] for r in runs],
        "runs_connect_s": [r["connect_s"] for r in runs],
        "runs_capped": sum(bool(r["capped"]) for r in runs),
        "runs_lost": [r["lost"] for r in runs],
        "recv_cpu_s": [r["recv_cpu_s"] for r in runs],
        "send_cpu_s": [r["send_cpu_s"] for r in runs],
    }


def _pipe_text(r: dict[str, Any]) -> str:
    per = r["msgs_per_s"] / r["pipes"]
    return (
        f"{throughput_text(r)}, {fmt_rate(per)} msg/s per pipe "
        f"(pipes sent {r['sent_min']}..{r['sent_max']})"
    )


def _run_pipes_part(
    cfg: ScalingConfig, t_start: float, progress: Callable[[str], None] | None
) -> tuple[list[dict[str, Any]], int, int]:
    """Part 1: rows (one per pipe count), failed runs, skipped runs."""
    libs = cfg.pipe_libraries()
    cells = [(n, lib) for n in cfg.pipe_counts for lib in libs]

    def label(c: tuple[int, str]) -> str:
        return f"scaling {c[0]} pipes {c[1]}"

    def run(c: tuple[int, str]) -> dict[str, Any]:
        return run_one(cfg, c[0], c[1])

    done = run_cells(cells, cfg, t_start, label, run, _pipe_text, progress)
    rows = []
    for n in cfg.pipe_counts:
        results = {lib: done.summary((n, lib), _pipe_stats) for lib in libs}
        ours = results.get("purenng", {}).get("msgs_per_s")
        rows.append(
            {
                "pipes": n,
                "size": cfg.pipe_size,
                "results": results,
                "ratio": {
                    lib: ratio(ours, results[lib].get("msgs_per_s"))
                    for lib in libs
                    if lib != "purenng"
                },
            }
        )
    return rows, done.errors, done.skipped


def run_scaling(cfg: ScalingConfig, progress: Callable[[str], None] | None = None) -> ModeResult:
    """Part 1, then part 2 with the rest of the budget, then the figure if asked for.

    The rows are part 1's (one per pipe count); part 2's rows, as the
    throughput mode makes them, are ``size_rows``.  A figure that cannot
    be written counts as one failure, noted as ``plot_error``.
    """
    t_start = time.monotonic()
    rows, errors, skipped = _run_pipes_part(cfg, t_start, progress)
    bench = run_bench(
        BenchConfig(
            sizes=list(cfg.sizes),
            transports=["tcp"],
            apis=list(cfg.apis),
            libraries=list(cfg.libraries),
            duration=cfg.duration,
            repeat=cfg.repeat,
            count=cfg.count,
            grace=cfg.grace,
            loop=cfg.loop,
            budget=max(0.0, cfg.budget - (time.monotonic() - t_start)),
            baselines=False,
        ),
        (lambda text: progress(f"scaling {text}")) if progress else None,
    )
    result = ModeResult(
        mode="scaling",
        config=asdict(cfg),
        rows=rows,
        elapsed_s=0.0,
        errors=errors + bench.errors,
        skipped=skipped + bench.skipped,
        extra={"size_rows": bench.rows, "plot": None},
    )
    if cfg.plot is not None:
        try:
            plot_scaling(result, cfg.plot, machine=bench.machine)
        except (BenchError, OSError, ValueError) as e:
            result.extra["plot_error"] = str(e)
            result.errors += 1
            if progress:
                progress(f"scaling plot: ERROR {e}")
        else:
            result.extra["plot"] = cfg.plot
            if progress:
                progress(f"scaling plot: {cfg.plot}")
    result.elapsed_s = time.monotonic() - t_start
    return result


# ---------------------------------------------------------------- rendering


def _cell_text(cell: dict[str, Any]) -> tuple[str, str]:
    if cell.get("msgs_per_s") is None:
        return ("error" if cell.get("errors") else "skipped"), ""
    mark = ("*" if cell.get("runs_capped") else "") + (
        "!" if any(cell.get("runs_lost", ())) else ""
    )
    return fmt_rate(cell["msgs_per_s"]) + mark, fmt_mb(cell["MB_per_s"])


def _ratio_text(r: float | None) -> str:
    return "—" if r is None else f"{r:.2f}x"


def _render_pipes(result: ModeResult, *, markdown: bool) -> str:
    cfg = result.config
    libs = [lib for lib in cfg["libraries"] if lib in PIPE_LIBRARIES]
    head = ["pipes"]
    for lib in libs:
        head += [f"{lib} msg/s", "MB/s", "per pipe msg/s"]
        if lib != "purenng":
            head.append(f"x {lib}")
    rows = []
    for row in result.rows:
        line = [str(row["pipes"])]
        for lib in libs:
            cell = row["results"][lib]
            line += list(_cell_text(cell))
            per = cell.get("per_pipe_msgs_per_s")
            line.append("" if per is None else fmt_rate(per))
            if lib != "purenng":
                line.append(_ratio_text(row["ratio"][lib]))
        rows.append(line)
    intro = [
        f"One PULL listening on tcp in its own process; a second process with one PUSH socket "
        f"per pipe, each dialed once, and one asyncio task per socket sending {cfg['pipe_size']} B "
        f"with await asend(), all at once ({cfg['loop']} loop, duration {cfg['duration']:g} s, "
        f"median of {cfg['repeat']}).  msg/s and MB/s: all pipes together, at the receiver."
    ]
    measured = " and ".join(libs)
    notes = [
        f"Measured: {measured}.  per pipe = msg/s / pipes; how many messages the slowest and "
        "the fastest pipe carried is in --json (runs_sent_min_max).",
    ]
    if "pyzmq" in cfg["libraries"]:
        notes.append("pyzmq is not run here (the bench opens one zmq context per socket).")
    if len(libs) > 1:
        notes.append("x peer = purenng msg/s / peer msg/s (higher is better).")
    notes += run_notes(result.rows, libs, lambda row: f"{row['pipes']} pipes")
    return render_section(
        "Throughput vs concurrent pipes (tcp, async)", intro, head, rows, notes,
        markdown=markdown, left=1,
    )  # fmt: skip


def _render_sizes(result: ModeResult, *, markdown: bool) -> str:
    cfg = result.config
    libs: list[str] = cfg["libraries"]
    head = ["size", "api"]
    for lib in libs:
        head += [f"{lib} msg/s", "MB/s"]
        if lib != "purenng":
            head.append(f"x {lib}")
    rows = []
    size_rows: list[dict[str, Any]] = result.extra["size_rows"]
    for row in size_rows:
        line = [row["size_label"], row["api"]]
        for lib in libs:
            line += list(_cell_text(row["results"][lib]))
            if lib != "purenng":
                line.append(_ratio_text(row["ratio"].get(lib)))
        rows.append(line)
    intro = [
        f"PUSH->PULL over tcp, one pipe, the thr method (two processes, rate at the receiver, "
        f"duration {cfg['duration']:g} s, median of {cfg['repeat']}, MB = 10^6 bytes)."
    ]
    notes = [
        "x peer = purenng msg/s / peer msg/s, same size and API.  Marks after a rate: "
        "* = a run hit the receive time cap, ! = messages were lost."
    ]
    notes += run_notes(size_rows, libs, lambda row: f"tcp {row['size_label']} {row['api']}")
    return render_section(
        "Throughput vs message size (tcp, one pipe)", intro, head, rows, notes,
        markdown=markdown, left=2,
    )  # fmt: skip


def render_scaling(result: ModeResult, *, markdown: bool = False) -> str:
    """Both tables of the mode, then the figure's file (or why it is missing) and totals."""
    parts = [_render_pipes(result, markdown=markdown), _render_sizes(result, markdown=markdown)]
    tail_lines = []
    if result.extra.get("plot"):
        tail_lines.append(f"Figure: {result.extra['plot']}")
    if result.extra.get("plot_error"):
        tail_lines.append(f"error: figure not written: {result.extra['plot_error']}")
    tail_lines.append(totals_note(result))
    parts.append("\n".join(tail_lines))
    return "\n\n".join(parts)


# ---------------------------------------------------------------- the figure


def require_matplotlib() -> None:
    """Check that the figure can be drawn, before spending minutes on the runs.

    Raises:
        PlotUnavailable: matplotlib cannot be imported (the message says
            how to install it).
    """
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise PlotUnavailable(MATPLOTLIB_MISSING) from None


def _series(
    rows: Sequence[dict[str, Any]], key: str, lib: str, value: str
) -> tuple[list[int], list[float]]:
    """(x, y) of one library's cells that have ``value``, in row order."""
    xs: list[int] = []
    ys: list[float] = []
    for row in rows:
        v = row["results"].get(lib, {}).get(value)
        if v:
            xs.append(row[key])
            ys.append(v)
    return xs, ys


def plot_scaling(result: ModeResult, path: str, *, machine: dict[str, Any] | None = None) -> None:
    """Write the two-panel PNG of a scaling result to ``path``.

    ``machine`` (from :func:`purenng.bench.proc.machine_info`) goes into the
    caption; it is read here when not given.

    Raises:
        PlotUnavailable: matplotlib is not installed.
        OSError: the file cannot be written.
    """
    require_matplotlib()
    from matplotlib.figure import Figure

    cfg = result.config
    m = machine or machine_info()
    colors = {"purenng": "tab:blue", "pynng": "tab:orange", "pyzmq": "tab:green", "nng": "tab:red"}
    fig = Figure(figsize=(12, 4.8), layout="constrained")
    ax1, ax2 = fig.subplots(1, 2)

    spread: list[float] = []
    for lib in [lib for lib in cfg["libraries"] if lib in PIPE_LIBRARIES]:
        xs, ys = _series(result.rows, "pipes", lib, "msgs_per_s")
        if xs:
            ax1.plot(xs, ys, marker="o", color=colors.get(lib), label=f"{lib} async")
            spread += ys
    ax1.set_xscale("log")
    counts = [row["pipes"] for row in result.rows]
    if counts:
        ax1.set_xticks(counts, labels=[f"{n:,}" for n in counts])
        ax1.minorticks_off()
    if spread and max(spread) > 10 * min(spread):
        ax1.set_yscale("log")
    else:
        ax1.set_ylim(bottom=0)
    ax1.set_xlabel("concurrent pipes (one PUSH socket each)")
    ax1.set_ylabel("messages/s, all pipes")
    ax1.set_title(f"{cfg['pipe_size']} B, N pipes -> one PULL (tcp)")
    ax1.grid(True, which="major", alpha=0.3)

    size_rows: list[dict[str, Any]] = result.extra.get("size_rows", [])
    styles = {"sync": "-", "async": "--"}
    for lib in cfg["libraries"]:
        for api in cfg["apis"]:
            rows = [r for r in size_rows if r["api"] == api]
            xs, ys = _series(rows, "size", lib, "MB_per_s")
            if xs:
                ax2.plot(
                    xs, ys, marker="o", color=colors.get(lib), linestyle=styles.get(api, "-"),
                    label=f"{lib} {api}",
                )  # fmt: skip
    ax2.set_xscale("log", base=2)
    ax2.set_yscale("log")
    sizes = sorted({r["size"] for r in size_rows})
    if sizes:
        ax2.set_xticks(sizes, labels=[format_size(s) for s in sizes])
        ax2.minorticks_off()
    ax2.set_xlabel("message size")
    ax2.set_ylabel("MB/s (10^6 bytes)")
    ax2.set_title("PUSH -> PULL, one pipe (tcp)")
    ax2.grid(True, which="major", alpha=0.3)

    for ax in (ax1, ax2):
        if ax.get_lines():
            ax.legend(fontsize="small")
    load = m.get("loadavg")  # read when the runs were over
    caption = (
        f"purenng bench scaling: Python {m.get('python', '?')}, {m.get('nproc', '?')} CPUs"
        + (f", load average {load[0]:.2f} at the end" if load else "")
        + f"; {cfg['duration']:g} s per run, median of {cfg['repeat']}"
    )
    fig.suptitle(caption, fontsize="medium")
    fig.savefig(path, format="png", dpi=110)
