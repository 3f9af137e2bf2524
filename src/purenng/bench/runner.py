"""Orchestration of ``purenng bench``: run the pairs, bound them, summarise.

Theory of operation:

* A *run* is one receiver child and one sender child
  (:mod:`purenng.bench.peers`) for one (transport, size, API, library).  The
  receiver starts first and prints ``READY`` once it listens; only then does
  the sender start and dial.  The runner waits for the receiver's result,
  then closes the sender's stdin, which lets the sender close its socket
  and exit.  The sender holds its socket open until then on purpose:
  closing while messages are in flight loses them with some peers.
* Bounds: each child has a hard wall-clock limit and is killed (by its own
  handle, nothing else) when it expires; a sender that dies early ends the
  run at once instead of leaving the receiver waiting; every run is capped
  in message count as well as in time; and a whole bench has a time
  budget, after which the remaining runs are skipped and reported so.
* Order: repeats are the outer loop and the libraries the inner one, so the
  runs that a ratio compares are adjacent in time and the repeats of one
  cell are spread over the whole bench.  On a noisy shared machine that is
  the best a ratio can get; the median of ``repeat`` runs is reported.
* Addresses: ``tcp://127.0.0.1:<free port>`` (the kernel picks the port;
  the tiny race before the receiver binds is accepted), the same with
  ``tls+tcp://``, ``ws://`` and ``wss://`` (path ``/bench``), or ipc paths
  in a private temp directory that is removed afterwards.
* TLS (``tls`` and ``wss``): one throwaway CA and server certificate per
  bench (:mod:`purenng.testing.certs`, needs ``cryptography``), written to
  the same temp directory and handed to the children as ``--tls-dir``.
  Without ``cryptography`` those runs fail with a message saying so.
* A library that cannot speak a transport (pyzmq: no TLS, no WebSocket)
  gets no run there: its cell is ``n/a``, not an error.
* A row is one (transport, size, API); it holds each library's median and
  the ratio purenng/peer in messages/s (sync against sync, async against
  async).  Sizes are equal within a row, so the MB/s ratio is the same.
* Baselines (``baselines``, on by default; :mod:`purenng.bench.baselines`):
  over tcp and ipc, a row of 1 MiB and up is also compared with the raw
  blocking-socket bandwidth (one run per transport and size, shown in
  both API rows) and an async row below 1 MiB with the per-message
  asyncio ceiling (on ``loop``).  A baseline run is one more cell, placed
  right after purenng's run of its row, so the ratio purenng/baseline
  compares runs made next to each other; the row holds it as
  ``baseline`` (the cell, with its ``kind``) and ``ratio_baseline``.
"""

from __future__ import annotations

import os
import selectors
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from .baselines import KINDS as BASELINE_KINDS
from .baselines import RAW, baseline_kind
from .peers import API_NAMES, IO_TIMEOUT, LIBRARIES, NET_TRANSPORTS
from .proc import (
    HOST,
    BenchError,
    child_command,
    free_port,
    ipc_path,
    kill,
    last_json,
    machine_info,
    run_cells,
    tail,
)
from .report import (
    fmt_mb,
    fmt_rate,
    ratio,
    render_section,
    run_notes,
    throughput_stats,
    throughput_text,
    totals_note,
)

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = [
    "DEFAULT_SIZES",
    "DEFAULT_TRANSPORTS",
    "TRANSPORTS",
    "BenchConfig",
    "BenchError",
    "BenchResult",
    "background_loop_label",
    "bench_url",
    "default_count",
    "fmt_mb",
    "fmt_rate",
    "format_size",
    "machine_line",
    "parse_size",
    "render_table",
    "run_baseline",
    "run_bench",
    "run_pair",
    "write_certs",
]

#: The message sizes of the bench-peers baseline.
DEFAULT_SIZES = (64, 1024, 64 << 10, 1 << 20)

#: Transports the bench can use (loopback and local sockets only).
TRANSPORTS = NET_TRANSPORTS

#: Transports run when none are named.
DEFAULT_TRANSPORTS = ("tcp", "ipc")

#: Transports that need certificates.
TLS_TRANSPORTS = ("tls", "wss")

#: URL scheme of each network transport (ipc is a path, see :func:`bench_url`).
_SCHEMES = {"tcp": "tcp", "tls": "tls+tcp", "ws": "ws", "wss": "wss"}

#: Per-size message caps of the baseline: a run ends at the cap or the duration.
_COUNT_CAPS = {64: 3_000_000, 1024: 2_000_000, 64 << 10: 200_000, 1 << 20: 6_000}

#: Seconds the receiver may take to start and bind before the run fails.
READY_TIMEOUT = 15.0

#: Seconds a released sender may take to close and exit.
RELEASE_TIMEOUT = 15.0

#: How often the runner looks at a running pair, seconds (waits, not sleeps).
_POLL = 0.05

_SIZE_UNITS = {"": 1, "B": 1, "K": 1024, "KIB": 1024, "M": 1 << 20, "MIB": 1 << 20}

# The child entry point; ``-c`` avoids runpy's double import of the module.
_CHILD = "import sys; from purenng.bench.peers import main; sys.exit(main())"


def parse_size(text: str) -> int:
    """``64``, ``64B``, ``1K``, ``1KiB``, ``64K``, ``1M``, ``1MiB`` -> bytes.

    Raises:
        ValueError: not a size, or smaller than 2 bytes (1 byte is the end
            marker).
    """
    t = text.strip().upper()
    digits = t.rstrip("BKMI")
    unit = t[len(digits) :]
    if not digits.isdigit() or unit not in _SIZE_UNITS:
        raise ValueError(f"not a message size: {text!r} (examples: 64, 1K, 64KiB, 1M)")
    n = int(digits) * _SIZE_UNITS[unit]
    if n < 2:
        raise ValueError(f"message size {text!r} is below 2 bytes (1 byte is the end marker)")
    return n


def format_size(n: int) -> str:
    """Bytes as the tables show them: ``64B``, ``1KiB``, ``1MiB``."""
    if n >= 1 << 20 and n % (1 << 20) == 0:
        return f"{n >> 20}MiB"
    if n >= 1024 and n % 1024 == 0:
        return f"{n >> 10}KiB"
    return f"{n}B"


def default_count(size: int) -> int:
    """The message cap of a run: the baseline's, or ~6 GB worth for other sizes."""
    return _COUNT_CAPS.get(size, max(6_000, min(3_000_000, 6_000_000_000 // size)))


@dataclass
class BenchConfig:
    """What to run.  ``libraries`` starts with ``"purenng"``; the rest are peers."""

    sizes: list[int] = field(default_factory=lambda: list(DEFAULT_SIZES))
    transports: list[str] = field(default_factory=lambda: list(DEFAULT_TRANSPORTS))
    apis: list[str] = field(default_factory=lambda: list(API_NAMES))
    libraries: list[str] = field(default_factory=lambda: ["purenng", "pynng", "pyzmq"])
    duration: float = 2.0
    """Seconds the sender sends per run (at most 10)."""
    repeat: int = 1
    """Runs per cell; the median is reported."""
    count: int | None = None
    """Message cap per run; None: :func:`default_count` of the size."""
    grace: float = 5.0
    """The receiver stops counting at ``duration`` + this (bounds the drain)."""
    loop: str = "asyncio"
    """Event loop of the async runs: ``asyncio`` or ``uvloop``."""
    budget: float = 300.0
    """Seconds for the whole bench; runs that would start later are skipped."""
    baselines: bool = True
    """Also run the pure-Python baselines (:mod:`purenng.bench.baselines`) where they apply."""

    def child_timeout(self) -> float:
        """Hard wall-clock limit of one child once both run."""
        return self.duration + self.grace + IO_TIMEOUT


@dataclass
class BenchResult:
    """Everything a bench produced; :meth:`to_json` is the ``--json`` output."""

    config: BenchConfig
    rows: list[dict[str, Any]]
    versions: dict[str, str | None]
    machine: dict[str, Any]
    elapsed_s: float
    errors: int
    skipped: int

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict: config, machine, versions, rows, counts."""
        return {
            "bench": "purenng push-pull throughput",
            "config": asdict(self.config),
            "machine": self.machine,
            "versions": self.versions,
            "rows": self.rows,
            "elapsed_s": round(self.elapsed_s, 1),
            "errors": self.errors,
            "skipped": self.skipped,
        }


# ---------------------------------------------------------------- one run


def _wait_ready(proc: subprocess.Popen[bytes], timeout: float) -> bool:
    """Read the receiver's stdout until ``READY``, its exit or ``timeout``."""
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ)
        while (left := deadline - time.monotonic()) > 0:
            if sel.select(timeout=min(left, 0.5)):
                line = proc.stdout.readline()
                if line.strip() == b"READY":
                    return True
                if not line:  # EOF: the child is gone
                    return False
            elif proc.poll() is not None:
                return False
    return False


def bench_url(transport: str, ipc_path: str | None = None) -> str:
    """The receiver's address for ``transport`` (a free loopback port, or ``ipc_path``)."""
    if transport == "ipc":
        assert ipc_path is not None
        return f"ipc://{ipc_path}"
    url = f"{_SCHEMES[transport]}://{HOST}:{free_port()}"
    return url + "/bench" if transport in ("ws", "wss") else url


def write_certs(directory: str) -> str:
    """A fresh CA and server certificate in ``directory``; returns it (``--tls-dir``).

    Raises:
        BenchError: ``cryptography`` is not installed.
    """
    try:
        from purenng.certs import make_dev_certs

        make_dev_certs().write(directory)
    except ImportError as e:
        raise BenchError(f"tls/wss runs need certificates: {e}") from None
    return directory


def run_pair(
    cfg: BenchConfig,
    lib: str,
    api: str,
    url: str,
    size: int,
    *,
    tls_dir: str | None = None,
) -> dict[str, Any]:
    """One receiver/sender pair; returns the receiver's result plus the sender's.

    ``tls_dir`` holds the certificates of ``tls+tcp://`` and ``wss://`` runs.

    Raises:
        BenchError: a child failed, timed out or printed no result.
    """
    count = cfg.count or default_count(size)
    args = [
        sys.executable, "-c", _CHILD,
        "--lib", lib, "--api", api, "--url", url, "--size", str(size),
        "--count", str(count), "--duration", str(cfg.duration),
        "--grace", str(cfg.grace), "--loop", cfg.loop,
    ]  # fmt: skip
    if tls_dir is not None:
        args += ["--tls-dir", tls_dir]
    return _run_children(cfg, args)


def run_baseline(cfg: BenchConfig, kind: str, url: str, size: int) -> dict[str, Any]:
    """One pair of baseline children (:mod:`purenng.bench.baselines`), as :func:`run_pair`.

    ``kind`` is one of :data:`purenng.bench.baselines.KINDS`; the ceiling
    runs on ``cfg.loop``; the message cap and the time bounds are those of
    the library runs of the same size.

    Raises:
        BenchError: a child failed, timed out or printed no result.
    """
    count = cfg.count or default_count(size)
    args = [
        *child_command("purenng.bench.baselines"),
        "--kind", kind, "--url", url, "--size", str(size),
        "--count", str(count), "--duration", str(cfg.duration),
        "--grace", str(cfg.grace), "--loop", cfg.loop,
    ]  # fmt: skip
    return _run_children(cfg, args)


def _run_children(cfg: BenchConfig, args: list[str]) -> dict[str, Any]:
    """Run ``args --role recv``, then ``args --role send``, as one bounded pair."""
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    hard = cfg.child_timeout()
    recv: subprocess.Popen[bytes] | None = None
    send: subprocess.Popen[bytes] | None = None
    with (
        tempfile.TemporaryFile() as r_err,
        tempfile.TemporaryFile() as s_out,
        tempfile.TemporaryFile() as s_err,
    ):
        try:
            recv = subprocess.Popen(
                [*args, "--role", "recv"],
                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=r_err, env=env,
            )  # fmt: skip
            if not _wait_ready(recv, READY_TIMEOUT):
                kill(recv)
                raise BenchError(f"receiver did not start: {tail(r_err)}")
            send = subprocess.Popen(
                [*args, "--role", "send"],
                stdin=subprocess.PIPE, stdout=s_out, stderr=s_err, env=env,
            )  # fmt: skip
            deadline = time.monotonic() + hard
            while True:
                try:
                    recv.wait(timeout=_POLL)
                    break
                except subprocess.TimeoutExpired:
                    pass
                if send.poll() is not None:
                    # A sender never exits before it is released, unless it failed.
                    kill(recv)
                    raise BenchError(f"sender failed: {tail(s_err)}")
                if time.monotonic() > deadline:
                    raise BenchError(f"receiver timed out after {hard:.0f} s")
            assert recv.stdout is not None
            r_out = recv.stdout.read()
            if recv.returncode != 0:
                raise BenchError(f"receiver failed: {tail(r_err)}")
            res = last_json(r_out)
            assert send.stdin is not None
            send.stdin.close()  # release the sender
            try:
                send.wait(timeout=RELEASE_TIMEOUT)
            except subprocess.TimeoutExpired:
                raise BenchError("sender did not exit after release") from None
            if send.returncode != 0:
                raise BenchError(f"sender failed after the run: {tail(s_err)}")
            s_out.seek(0)
            sres = last_json(s_out.read())
        finally:
            kill(send)
            kill(recv)
            if recv is not None and recv.stdout is not None:
                recv.stdout.close()
    res["sent"] = sres["sent"]
    res["send_cpu_s"] = sres.get("cpu_s")
    res["send_seconds"] = sres.get("send_seconds")
    # Every payload sent must arrive (the first is not counted) unless capped.
    res["lost"] = 0 if res["capped"] else sres["sent"] - (res["n"] + 1)
    return res


# ---------------------------------------------------------------- the bench


def background_loop_label() -> str:
    """What purenng's blocking API runs on in the children."""
    choice = os.environ.get("PURENNG_LOOP", "auto").lower()
    if choice == "asyncio":
        return "asyncio"
    from importlib.util import find_spec

    return "uvloop" if find_spec("uvloop") is not None else "asyncio"


def _stats(runs: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        **throughput_stats(runs),
        "runs_seconds": [round(r["seconds"], 3) for r in runs],
        "runs_capped": sum(bool(r["capped"]) for r in runs),
        "runs_lost": [r["lost"] for r in runs],
        "recv_cpu_s": [r.get("cpu_s") for r in runs],
        "send_cpu_s": [r.get("send_cpu_s") for r in runs],
    }


_Cell = tuple[str, int, str, str]


def _baseline_cell(transport: str, size: int, api: str) -> _Cell | None:
    """The cell of the baseline of a row: (transport, size, api, kind), or None.

    The api is ``""`` for the raw bandwidth: one run serves both API rows.
    """
    kind = baseline_kind(transport, size, api)
    if kind is None:
        return None
    return (transport, size, "" if kind == RAW else api, kind)


def _cells(cfg: BenchConfig) -> list[_Cell]:
    """One round of runs, in order: (transport, size, api, library or baseline kind).

    A row's libraries run one after the other; its baseline (if any, and
    not run already for an earlier row) comes right after purenng.
    """
    cells: list[_Cell] = []
    libs = list(cfg.libraries)
    at = libs.index("purenng") + 1 if "purenng" in libs else 0
    for tr in cfg.transports:
        for size in cfg.sizes:
            for api in cfg.apis:
                group: list[_Cell] = [(tr, size, api, lib) for lib in libs]
                base = _baseline_cell(tr, size, api) if cfg.baselines else None
                if base is not None and base not in cells:
                    group.insert(at, base)
                cells += group
    return cells


def run_bench(cfg: BenchConfig, progress: Callable[[str], None] | None = None) -> BenchResult:
    """Run every (repeat, transport, size, API, library or baseline) and build the rows."""
    t_start = time.monotonic()
    cells = _cells(cfg)
    tmpdir = tempfile.mkdtemp(prefix="purenng-bench-")
    tls_dir: str | None = None
    tls_error: str | None = None

    def label(cell: _Cell) -> str | None:
        tr, size, api, lib = cell
        if lib in BASELINE_KINDS:
            return " ".join(filter(None, (tr, format_size(size), api, "baseline", lib)))
        if tr not in LIBRARIES[lib].transports:
            return None  # n/a: the library cannot speak it
        return f"{tr} {format_size(size)} {api} {lib}"

    def run(cell: _Cell) -> dict[str, Any]:
        tr, size, api, lib = cell
        with ipc_path(tmpdir, tr) as path:
            url = bench_url(tr, path)
            if lib in BASELINE_KINDS:
                return run_baseline(cfg, lib, url, size)
            if tr in TLS_TRANSPORTS and tls_error is not None:
                raise BenchError(tls_error)
            return run_pair(cfg, lib, api, url, size, tls_dir=tls_dir)

    try:
        if any(tr in TLS_TRANSPORTS for tr in cfg.transports):
            try:
                tls_dir = write_certs(os.path.join(tmpdir, "certs"))
            except BenchError as e:
                tls_error = str(e)
        done = run_cells(cells, cfg, t_start, label, run, throughput_text, progress)
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)
    rows = []
    for tr in cfg.transports:
        for size in cfg.sizes:
            for api in cfg.apis:
                results = {
                    lib: done.summary(
                        (tr, size, api, lib), _stats, na=tr not in LIBRARIES[lib].transports
                    )
                    for lib in cfg.libraries
                }
                ours = results.get("purenng", {}).get("msgs_per_s")
                ratios: dict[str, float | None] = {}
                for lib in cfg.libraries:
                    if lib == "purenng":
                        continue
                    theirs = results[lib].get("msgs_per_s")
                    ratios[lib] = ours / theirs if ours is not None and theirs else None
                row: dict[str, Any] = {
                    "transport": tr,
                    "size": size,
                    "size_label": format_size(size),
                    "api": api,
                    "results": results,
                    "ratio": ratios,
                }
                if cfg.baselines:
                    key = _baseline_cell(tr, size, api)
                    base = None if key is None else {"kind": key[3], **done.summary(key, _stats)}
                    row["baseline"] = base
                    row["ratio_baseline"] = ratio(ours, base.get("msgs_per_s") if base else None)
                rows.append(row)
    versions = {lib: LIBRARIES[lib].version() for lib in cfg.libraries}
    machine = {
        **machine_info(),
        "purenng_sync_loop": background_loop_label(),
        "async_loop": cfg.loop,
    }
    return BenchResult(
        config=cfg,
        rows=rows,
        versions=versions,
        machine=machine,
        elapsed_s=time.monotonic() - t_start,
        errors=done.errors,
        skipped=done.skipped,
    )


# ---------------------------------------------------------------- rendering


def _cell_text(cell: dict[str, Any]) -> tuple[str, str]:
    if "msgs_per_s" not in cell:
        word = "n/a" if cell.get("na") else "error" if cell.get("errors") else "skipped"
        return word, ""
    mark = ""
    if cell.get("runs_capped"):
        mark += "*"
    if any(cell.get("runs_lost", ())):
        mark += "!"
    return fmt_rate(cell["msgs_per_s"]) + mark, fmt_mb(cell["MB_per_s"])


def _baseline_text(row: dict[str, Any]) -> list[str]:
    """The two baseline columns of a row: ``kind rate`` and the ratio."""
    base = row.get("baseline")
    if not base:
        return ["—", "—"]
    rate, _ = _cell_text(base)
    r = row.get("ratio_baseline")
    return [f"{base['kind']} {rate}", "—" if r is None else f"{r:.2f}x"]


def _baseline_notes(rows: list[dict[str, Any]], budget: str) -> list[str]:
    """Errors and skips of the baseline runs, once per run (raw serves two rows)."""
    notes: list[str] = []
    seen: set[str] = set()
    for row in rows:
        base = row.get("baseline")
        if not base:
            continue
        api = "" if base["kind"] == RAW else f" {row['api']}"
        at = f"{row['transport']} {row['size_label']}{api} baseline {base['kind']}"
        if at in seen:
            continue
        seen.add(at)
        notes.extend(f"error: {at}: {e}" for e in base.get("errors", ()))
        if base.get("skipped"):
            notes.append(f"skipped: {at}: {base['skipped']} run(s) over {budget}")
    return notes


#: What the baseline columns mean (the note under a table that has them).
BASELINE_NOTE = (
    "baseline = pure Python, no SP, no library, run right after purenng's run of the row "
    "(tcp and ipc only): ceiling = per-message await asend()/arecv() over an asyncio "
    "Protocol pair (8-byte length frames, up to 256 per write, each message its own bytes) "
    "on the async loop, for async rows below 1 MiB; raw = blocking sendall()/recv_into() "
    "of message-size chunks (the loopback bandwidth), one run for both API rows from 1 MiB.  "
    "x baseline = purenng msg/s / baseline msg/s (1.00x = as fast as bare Python)."
)


def machine_line(versions: dict[str, str | None], machine: dict[str, Any]) -> str:
    """One line naming the libraries' versions, the Python and the machine."""
    ver = ", ".join(f"{k} {v or '?'}" for k, v in versions.items())
    load = machine.get("loadavg_start") or machine.get("loadavg")
    text = f"{ver}; Python {machine['python']}, {machine['nproc']} CPUs"
    if machine.get("cpu_model"):
        text += f" ({machine['cpu_model']})"
    if load:
        text += f", load average {load[0]:.2f} at the start"
    return text


def render_table(result: BenchResult, *, markdown: bool = False, header: bool = True) -> str:
    """The throughput report: a title, one line per row, notes, errors.

    ``markdown`` gives a pipe table; ``header=False`` leaves out the line
    about versions and the machine (the multi-mode report prints it once).
    """
    cfg = result.config
    libs = cfg.libraries
    peers = [lib for lib in libs if lib != "purenng"]
    bases = any(row.get("baseline") for row in result.rows)
    head = ["transport", "size", "api"]
    for lib in libs:
        head += [f"{lib} msg/s", "MB/s"]
        if lib != "purenng":
            head.append(f"x {lib}")
    if bases:
        head += ["baseline msg/s", "x baseline"]
    rows = []
    for row in result.rows:
        line = [row["transport"], row["size_label"], row["api"]]
        for lib in libs:
            line += list(_cell_text(row["results"][lib]))
            if lib != "purenng":
                r = row["ratio"].get(lib)
                line.append("—" if r is None else f"{r:.2f}x")
        if bases:
            line += _baseline_text(row)
        rows.append(line)
    m = result.machine
    intro = [
        f"Receiver listens, sender dials, separate processes; rate at the receiver "
        f"(duration {cfg.duration:g} s, median of {cfg.repeat}, MB = 10^6 bytes); "
        f"async loop {m['async_loop']}, purenng blocking API on {m['purenng_sync_loop']}."
    ]
    if header:
        intro.append(machine_line(result.versions, m))
    notes = []
    if peers:
        notes.append(
            "x peer = purenng msg/s / peer msg/s (higher is better), same transport, size "
            "and API (sync vs sync, async vs async)."
        )
    if bases:
        notes.append(BASELINE_NOTE)
    notes.append(
        "Marks after a rate: * = a run hit the receive time cap, ! = messages were lost.  "
        "Numbers on a shared machine are noisy: read gaps under ~1.5x as noise."
    )
    if any(c.get("na") for row in result.rows for c in row["results"].values()):
        notes.append("n/a = the library has no such transport here (pyzmq: no TLS, no WebSocket).")
    notes.append(totals_note(result))
    notes += run_notes(
        result.rows,
        libs,
        lambda row: f"{row['transport']} {row['size_label']} {row['api']}",
        budget=f"the {cfg.budget:g} s budget",
    )
    notes += _baseline_notes(result.rows, f"the {cfg.budget:g} s budget")
    return render_section(
        "PUSH->PULL throughput, messages/s", intro, head, rows, notes, markdown=markdown, left=3
    )
