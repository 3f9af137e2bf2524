"""Many tcp pipes on one listener (``purenng bench --modes pipes``).

What it answers: how long ``N`` dialers take to connect to one purenng
listener, how long one request/reply on every pipe takes, and how much
memory the listening process holds per pipe.

Method:

* One *server* process: a purenng ``Rep0`` listening on
  ``tcp://127.0.0.1:<port>`` on an asyncio loop, counting pipes with a pipe
  event callback and echoing every request.
* A few *client* processes share the ``N`` dialers (at most
  ``per_client`` each, so that every process stays below its open-files
  limit).  Each dialer is its own ``Req0`` socket with one pipe; a client
  dials ``batch`` of them at a time (so the listen backlog never
  overflows) and then sends one ``size``-byte request on each, all at once,
  and awaits every reply.
* Every child raises its soft ``RLIMIT_NOFILE`` to the hard limit first;
  a count that cannot fit is refused before anything starts.
* Phases, driven by the runner over the children's stdin: all processes
  start and make their sockets (not timed), then ``connect`` (timed from
  the runner's command until the server has seen all ``N`` pipes: the
  children's ``perf_counter`` is ``CLOCK_MONOTONIC``, shared by all
  processes on Linux), then ``echo`` (timed until the last client has
  every reply), then release (everything closes).
* Memory: the server's ``VmRSS`` (``/proc/self/status``) when it listens
  with no pipe, when all pipes are up, and after the echo round.  "Per
  pipe" is (all up - listening) / ``N``: what the pipes themselves cost.
* Bounds: every phase has a deadline that grows with ``N``; on expiry or a
  failure the runner kills the children it started, by their handles.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import resource
import subprocess
import tempfile
import time
from dataclasses import asdict, dataclass, field
from typing import IO, TYPE_CHECKING, Any

from .peers import IO_TIMEOUT
from .proc import (
    FD_MARGIN,
    HOST,
    BenchError,
    LineReader,
    child_command,
    child_env,
    free_port,
    kill,
    rss_bytes,
    run_pipes_child,
    say,
    send_line,
    stdin_reader,
    tail,
)
from .report import ModeResult, render_section

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

__all__ = ["PipesConfig", "main", "render_pipes", "run_pipes"]

#: Seconds a child may take to start and make its sockets.
READY_TIMEOUT = 60.0

_MIB = 1 << 20


def _phase_timeout(n: int) -> float:
    """Deadline of the connect or the echo phase: generous, growing with ``n``."""
    return 30.0 + n / 100


async def _command(reader: asyncio.StreamReader, want: str, timeout: float) -> None:
    line = await asyncio.wait_for(reader.readline(), timeout)
    if line.strip().decode() != want:
        raise BenchError(f"expected {want!r} from the runner, got {line!r}")


async def _released(reader: asyncio.StreamReader, timeout: float) -> None:
    """Wait until the runner closes our stdin (EOF) or ``timeout``."""
    try:
        await asyncio.wait_for(reader.read(), timeout)
    except TimeoutError:
        pass


async def _server(a: argparse.Namespace) -> None:
    import purenng

    cmd = await stdin_reader()
    rep = purenng.Rep0(recv_timeout=IO_TIMEOUT, send_timeout=IO_TIMEOUT)
    all_in = asyncio.Event()
    count = 0

    def added(_pipe: object, _event: object) -> None:
        nonlocal count
        count += 1
        if count >= a.n:
            all_in.set()

    rep.on_pipe_event(added, "add_post")
    try:
        await rep.alisten(a.url)
        say("READY", {"rss": rss_bytes()})
        try:
            await asyncio.wait_for(all_in.wait(), _phase_timeout(a.n) + READY_TIMEOUT)
        except TimeoutError:
            raise BenchError(f"only {count} of {a.n} pipes connected") from None
        say("CONNECTED", {"t": time.perf_counter(), "rss": rss_bytes(), "pipes": count})
        served = 0
        while served < a.n:
            m = await rep.arecv()
            await rep.asend(m)
            served += 1
        say("DONE", {"t": time.perf_counter(), "rss": rss_bytes(), "served": served})
        await _released(cmd, _phase_timeout(a.n))
    finally:
        await rep.aclose()


async def _client(a: argparse.Namespace) -> None:
    import purenng

    cmd = await stdin_reader()
    socks = [
        purenng.Req0(recv_timeout=IO_TIMEOUT, send_timeout=IO_TIMEOUT, resend_time=None)
        for _ in range(a.n)
    ]
    payload: bytes = b"\x00" * a.size
    try:
        say("READY")
        await _command(cmd, "connect", READY_TIMEOUT + _phase_timeout(a.n))
        t0 = time.perf_counter()
        for i in range(0, a.n, a.batch):
            await asyncio.gather(*(s.adial(a.url, block=True) for s in socks[i : i + a.batch]))
        t1 = time.perf_counter()
        say("CONNECTED", {"t": t1, "seconds": t1 - t0})
        await _command(cmd, "echo", _phase_timeout(a.n) * 2)

        async def one(s: purenng.Req0) -> bool:
            await s.asend(payload)
            reply: bytes = await s.arecv()
            return reply == payload

        t2 = time.perf_counter()
        ok = await asyncio.gather(*(one(s) for s in socks))
        t3 = time.perf_counter()
        say("DONE", {"t": t3, "seconds": t3 - t2, "ok": sum(ok)})
        await _released(cmd, _phase_timeout(a.n))
    finally:
        await asyncio.gather(*(s.aclose() for s in socks), return_exceptions=True)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="purenng.bench.pipes", description="One process of a purenng bench pipes run."
    )
    p.add_argument("--role", choices=["server", "client"], required=True)
    p.add_argument("--url", required=True)
    p.add_argument("--n", type=int, required=True, help="pipes of this process")
    p.add_argument("--batch", type=int, default=100, help="dials in flight at once")
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--loop", choices=["asyncio", "uvloop"], default="asyncio")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Run the server or one client of a pipes run."""
    a = _parser().parse_args(argv)
    return run_pipes_child(a.n, _server(a) if a.role == "server" else _client(a), a.loop)


# ---------------------------------------------------------------- runner


@dataclass
class PipesConfig:
    """What the pipes mode runs: one run per entry of ``counts``."""

    counts: list[int] = field(default_factory=lambda: [1000])
    per_client: int = 2500
    """Most dialers per client process."""
    batch: int = 100
    """Dials in flight at once per client."""
    size: int = 64
    loop: str = "asyncio"
    budget: float = 600.0


def max_pipes() -> int:
    """The most pipes one listening process can hold here (its hard fd limit)."""
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    return (1 << 20 if hard == resource.RLIM_INFINITY else hard) - FD_MARGIN


def run_one(cfg: PipesConfig, n: int) -> dict[str, Any]:
    """One server and its clients with ``n`` pipes in all; returns the row.

    Raises:
        BenchError: a child failed or a phase passed its deadline.
    """
    if n > max_pipes():
        raise BenchError(f"{n} pipes exceed the open-files limit ({max_pipes()} usable)")
    per = max(1, min(cfg.per_client, max_pipes()))
    k = math.ceil(n / per)
    shares = [n // k + (1 if i < n % k else 0) for i in range(k)]
    url = f"tcp://{HOST}:{free_port()}"
    base = [*child_command("purenng.bench.pipes"), "--url", url, "--loop", cfg.loop]
    env = child_env()
    procs: list[subprocess.Popen[bytes]] = []
    errs: list[IO[bytes]] = []
    phase = _phase_timeout(n)
    files = contextlib.ExitStack()

    def start(args: list[str]) -> tuple[subprocess.Popen[bytes], LineReader]:
        err = files.enter_context(tempfile.TemporaryFile())  # noqa: SIM115 (the stack closes it)
        errs.append(err)
        p = subprocess.Popen(
            [*base, *args], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err, env=env
        )
        procs.append(p)
        return p, LineReader(p)

    def expect(i: int, rd: LineReader, word: str, timeout: float) -> dict[str, Any]:
        try:
            return rd.expect(word, timeout)
        except BenchError as e:
            who = "server" if i == 0 else f"client {i}"
            raise BenchError(f"{who}: {e}: {tail(errs[i])}") from None

    try:
        _, srd = start(["--role", "server", "--n", str(n)])
        ready = expect(0, srd, "READY", READY_TIMEOUT)
        clients = [
            start(["--role", "client", "--n", str(m), "--batch", str(cfg.batch),
                   "--size", str(cfg.size)])
            for m in shares
        ]  # fmt: skip
        for i, (_, crd) in enumerate(clients, 1):
            expect(i, crd, "READY", READY_TIMEOUT)
        t_go = time.perf_counter()
        for c, _ in clients:
            send_line(c, "connect")
        connected = expect(0, srd, "CONNECTED", phase)
        c_conn = [expect(i, crd, "CONNECTED", phase) for i, (_, crd) in enumerate(clients, 1)]
        t_echo = time.perf_counter()
        for c, _ in clients:
            send_line(c, "echo")
        c_done = [expect(i, crd, "DONE", phase) for i, (_, crd) in enumerate(clients, 1)]
        done = expect(0, srd, "DONE", phase)
        for p in procs:
            assert p.stdin is not None
            p.stdin.close()  # release: everyone closes
        readers = [srd, *(r for _, r in clients)]
        exits = [expect(i, rd, "EXIT", 30.0) for i, rd in enumerate(readers)]
        for i, p in enumerate(procs):
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                raise BenchError(f"process {i} did not exit after release") from None
    finally:
        for p in procs:
            kill(p)
            for f in (p.stdin, p.stdout):
                if f is not None and not f.closed:
                    f.close()
        files.close()
    ok = sum(c["ok"] for c in c_done)
    if ok != n:
        raise BenchError(f"{n - ok} of {n} replies were missing or wrong")
    return {
        "pipes": n,
        "clients": k,
        "connect_s": round(connected["t"] - t_go, 3),
        "clients_connect_s": round(max(c["t"] for c in c_conn) - t_go, 3),
        "echo_s": round(max(c["t"] for c in c_done) - t_echo, 3),
        "server_rss_listening_mib": round(ready["rss"] / _MIB, 1),
        "server_rss_connected_mib": round(connected["rss"] / _MIB, 1),
        "server_rss_after_echo_mib": round(done["rss"] / _MIB, 1),
        "rss_per_pipe_kib": round((connected["rss"] - ready["rss"]) / n / 1024, 1),
        "server_cpu_s": exits[0]["cpu_s"],
    }


def run_pipes(cfg: PipesConfig, progress: Callable[[str], None] | None = None) -> ModeResult:
    """One run per pipe count, in order, within the budget."""
    t_start = time.monotonic()
    rows: list[dict[str, Any]] = []
    errors = skipped = 0
    for n in cfg.counts:
        if time.monotonic() - t_start > cfg.budget:
            rows.append({"pipes": n, "skipped": True})
            skipped += 1
            continue
        try:
            row = run_one(cfg, n)
        except BenchError as e:
            rows.append({"pipes": n, "error": str(e)})
            errors += 1
            if progress:
                progress(f"pipes {n}: ERROR {e}")
        else:
            rows.append(row)
            if progress:
                progress(
                    f"pipes {n}: connect {row['connect_s']:.2f} s, echo {row['echo_s']:.2f} s, "
                    f"server RSS {row['server_rss_connected_mib']:.0f} MiB "
                    f"({row['rss_per_pipe_kib']:.1f} KiB/pipe)"
                )
    return ModeResult(
        mode="pipes",
        config=asdict(cfg),
        rows=rows,
        elapsed_s=time.monotonic() - t_start,
        errors=errors,
        skipped=skipped,
    )


def render_pipes(result: ModeResult, *, markdown: bool = False) -> str:
    """One line per pipe count: timings and the server's memory."""
    head = [
        "pipes", "clients", "connect s", "echo s", "RSS listening MiB", "RSS all up MiB",
        "RSS after echo MiB", "KiB/pipe", "server CPU s",
    ]  # fmt: skip
    rows = []
    notes = []
    for r in result.rows:
        if "connect_s" not in r:
            rows.append([str(r["pipes"]), *(["error" if "error" in r else "skipped"] * 8)])
            if "error" in r:
                notes.append(f"error: {r['pipes']} pipes: {r['error']}")
            continue
        rows.append(
            [
                str(r["pipes"]),
                str(r["clients"]),
                f"{r['connect_s']:.2f}",
                f"{r['echo_s']:.2f}",
                f"{r['server_rss_listening_mib']:.0f}",
                f"{r['server_rss_connected_mib']:.0f}",
                f"{r['server_rss_after_echo_mib']:.0f}",
                f"{r['rss_per_pipe_kib']:.1f}",
                f"{r['server_cpu_s']:.1f}",
            ]
        )
    cfg = result.config
    intro = [
        f"One purenng Rep0 listener on tcp (its own process, {cfg['loop']} loop); one Req0 "
        f"socket per pipe in client processes of up to {cfg['per_client']} each, dialing "
        f"{cfg['batch']} at a time; then one {cfg['size']} B request/reply on every pipe at once."
    ]
    notes.insert(
        0,
        "connect s: from the start command until the server has every pipe; echo s: until "
        "every reply is back.  KiB/pipe = (RSS all up - RSS listening) / pipes.",
    )
    return render_section(
        "Many tcp pipes on one listener", intro, head, rows, notes, markdown=markdown, left=1
    )
