"""Child processes of ``purenng bench``: start, talk to, bound and reap them.

Rules every bench mode follows (so that a bench can never hang, leak a
process or touch anything but its own children):

* A child is started with :func:`child_command` (``python -c`` importing a
  bench module's ``main``: ``-m`` would import the module twice) and talks
  to the runner in lines: the runner writes commands to its stdin, the
  child answers on stdout with a word (``READY``) or a word and a JSON
  object (``DONE {...}``).  :class:`LineReader` reads those lines with a
  timeout straight from the file descriptor (a buffered reader would hide
  a second line from ``select``).
* Every wait has a deadline.  When it passes, or a child fails, the runner
  kills exactly the children it started, by their handles (:func:`kill`).
* A child's stderr goes to a temporary file; :func:`tail` quotes its last
  lines in the error, which is usually the exception.
* CPU placement is done by the child itself (:func:`set_cpu`) before it
  imports any messaging library, so every thread it starts inherits it.
* Only ``127.0.0.1`` (:func:`free_port`) and paths in private temporary
  directories are ever used.
* Every mode runs its cells the same way (:func:`run_cells`): ``repeat``
  rounds over all cells, a cell that would start after the mode's time
  budget is counted as skipped instead, a failed run is recorded with its
  message and never stops the others.  A mode supplies only what differs:
  the label of a cell, how to run it once and how to describe a result.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import platform
import resource
import select
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Coroutine, Hashable, Iterator, Sequence
from dataclasses import dataclass
from typing import IO, Any, Generic, Protocol, TypeVar

from .report import summarise

__all__ = [
    "HOST",
    "PIN_MODES",
    "BenchError",
    "CellRuns",
    "LineReader",
    "child_command",
    "child_env",
    "cpu_model",
    "free_port",
    "ipc_path",
    "kill",
    "last_json",
    "machine_info",
    "pin_cpus",
    "raise_nofile",
    "rss_bytes",
    "run_cells",
    "set_cpu",
    "tail",
]

HOST = "127.0.0.1"

#: CPU placements of a two-process run: none (the scheduler decides), same
#: (both on the first CPU), split (listener on the first, dialer on the second).
PIN_MODES = ("none", "same", "split")


class BenchError(Exception):
    """One run failed; the message says which side and why."""


def child_command(module: str) -> list[str]:
    """The argv prefix that runs ``module.main()`` in a fresh interpreter."""
    return [sys.executable, "-c", f"import sys; from {module} import main; sys.exit(main())"]


def child_env() -> dict[str, str]:
    """The children's environment: ours, with unbuffered output."""
    return dict(os.environ, PYTHONUNBUFFERED="1")


def free_port() -> int:
    """A loopback port the kernel calls free (the race before binding is accepted)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        port: int = s.getsockname()[1]
        return port


def kill(proc: subprocess.Popen[Any] | None) -> None:
    """Kill one child we started, by its handle, and reap it."""
    if proc is not None and proc.poll() is None:
        proc.kill()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass


def tail(f: IO[bytes], limit: int = 400) -> str:
    """The end of a child's captured stderr: usually the exception line."""
    f.seek(0)
    lines = [ln.strip() for ln in f.read().decode(errors="replace").splitlines() if ln.strip()]
    return " | ".join(lines[-2:])[-limit:]


def last_json(text: bytes | str) -> dict[str, Any]:
    """The last line of ``text`` that is a JSON object.

    Raises:
        BenchError: there is none.
    """
    if isinstance(text, bytes):
        text = text.decode(errors="replace")
    for line in reversed(text.splitlines()):
        line = line.strip()
        if line.startswith("{"):
            obj: dict[str, Any] = json.loads(line)
            return obj
    raise BenchError(f"no result line in {text[-200:]!r}")


class LineReader:
    """Lines from a child's stdout pipe, each read with a deadline."""

    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        assert proc.stdout is not None
        self._proc = proc
        self._fd = proc.stdout.fileno()
        self._buf = bytearray()
        self.eof: bool = False

    def readline(self, timeout: float) -> str | None:
        """The next line without its newline; None at EOF or when ``timeout`` passes."""
        deadline = time.monotonic() + timeout
        while True:
            nl = self._buf.find(b"\n")
            if nl >= 0:
                line = bytes(self._buf[:nl])
                del self._buf[: nl + 1]
                return line.decode(errors="replace").strip()
            if self.eof:
                return None
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            ready, _, _ = select.select([self._fd], [], [], min(left, 0.5))
            if ready:
                chunk = os.read(self._fd, 65536)
                if not chunk:
                    self.eof = True
                self._buf += chunk

    def expect(self, word: str, timeout: float) -> dict[str, Any]:
        """Read lines until one starts with ``word``; return its JSON part (or {}).

        Raises:
            BenchError: EOF or ``timeout`` first.
        """
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            line = self.readline(left)
            if line is None:
                break
            head, _, rest = line.partition(" ")
            if head == word:
                obj: dict[str, Any] = json.loads(rest) if rest.strip() else {}
                return obj
        what = "exited" if self.eof or self._proc.poll() is not None else "timed out"
        raise BenchError(f"child {what} before {word}")


_ipc_serial = itertools.count(1)


@contextlib.contextmanager
def ipc_path(tmpdir: str, transport: str) -> Iterator[str | None]:
    """A fresh socket path in ``tmpdir`` for ``ipc`` (None otherwise), removed after the run."""
    path = os.path.join(tmpdir, f"{next(_ipc_serial)}.ipc") if transport == "ipc" else None
    try:
        yield path
    finally:
        if path is not None and os.path.exists(path):
            os.unlink(path)


K = TypeVar("K", bound=Hashable)


class _Budget(Protocol):
    repeat: int
    budget: float


@dataclass
class CellRuns(Generic[K]):
    """Every run of every cell of one mode: results, error messages, budget skips."""

    runs: dict[K, list[dict[str, Any]]]
    errs: dict[K, list[str]]
    skips: dict[K, int]

    def summary(
        self,
        cell: K,
        stats: Callable[[list[dict[str, Any]]], dict[str, Any]],
        *,
        na: bool = False,
    ) -> dict[str, Any]:
        """One cell's result as the rows hold it (see :func:`report.summarise`)."""
        return summarise(self.runs[cell], self.errs[cell], self.skips[cell], stats, na=na)

    @property
    def errors(self) -> int:
        """Failed runs over all cells."""
        return sum(len(v) for v in self.errs.values())

    @property
    def skipped(self) -> int:
        """Runs left out over all cells because the budget was spent."""
        return sum(self.skips.values())


def run_cells(
    cells: Sequence[K],
    cfg: _Budget,
    t_start: float,
    label: Callable[[K], str | None],
    run: Callable[[K], dict[str, Any]],
    describe: Callable[[dict[str, Any]], str],
    progress: Callable[[str], None] | None,
) -> CellRuns[K]:
    """Run each cell ``cfg.repeat`` times, round by round, within ``cfg.budget`` seconds.

    ``label`` names a cell for progress lines, or returns None for a cell
    that cannot run at all (not a run, not a skip).  ``run`` raises
    :class:`BenchError` for a failed run; ``describe`` turns a result into
    the rest of its progress line.
    """
    res = CellRuns[K]({c: [] for c in cells}, {c: [] for c in cells}, dict.fromkeys(cells, 0))
    for rep in range(cfg.repeat):
        for cell in cells:
            what = label(cell)
            if what is None:
                continue
            if cfg.repeat > 1:
                what += f" [{rep + 1}/{cfg.repeat}]"
            if time.monotonic() - t_start > cfg.budget:
                res.skips[cell] += 1
                continue
            try:
                r = run(cell)
            except BenchError as e:
                res.errs[cell].append(str(e))
                if progress:
                    progress(f"{what}: ERROR {e}")
            else:
                res.runs[cell].append(r)
                if progress:
                    progress(f"{what}: {describe(r)}")
    return res


def pin_cpus(pin: str) -> tuple[int | None, int | None]:
    """CPUs of (listener, dialer) for a placement in :data:`PIN_MODES`.

    Raises:
        BenchError: ``split`` on a machine (or affinity mask) with one CPU.
    """
    if pin == "none":
        return None, None
    cpus = sorted(os.sched_getaffinity(0))
    if pin == "same":
        return cpus[0], cpus[0]
    if pin == "split":
        if len(cpus) < 2:
            raise BenchError("--pin split needs two CPUs")
        return cpus[0], cpus[1]
    raise ValueError(f"unknown CPU placement {pin!r}")


R = TypeVar("R")


def say(word: str, obj: dict[str, Any] | None = None) -> None:
    """A child's line to the runner: a word, then optionally a JSON object."""
    print(word if obj is None else f"{word} {json.dumps(obj)}", flush=True)


async def stdin_reader() -> asyncio.StreamReader:
    """The runner's commands, read on the child's loop (no thread to outlive it)."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    return reader


#: File descriptors a many-pipes child keeps besides its pipes.
FD_MARGIN = 64


def run_pipes_child(n: int, coro: Coroutine[Any, Any, Any], loop_kind: str) -> int:
    """Run a child that holds ``n`` pipes: check the open-files limit, run, say EXIT.

    Returns the child's exit status (2: the limit is too low for ``n``).
    """
    soft = raise_nofile()
    if soft < n + FD_MARGIN:
        coro.close()
        print(f"open-files limit {soft} is too low for {n} pipes", file=sys.stderr)
        return 2
    run_on_loop(coro, loop_kind)
    c = resource.getrusage(resource.RUSAGE_SELF)
    say("EXIT", {"cpu_s": round(c.ru_utime + c.ru_stime, 3)})
    return 0


def send_line(proc: subprocess.Popen[bytes], line: str) -> None:
    """The runner's command to a child, on its stdin."""
    assert proc.stdin is not None
    proc.stdin.write(line.encode() + b"\n")
    proc.stdin.flush()


def run_on_loop(coro: Coroutine[Any, Any, R], loop_kind: str) -> R:
    """Run a child's coroutine on ``asyncio`` or ``uvloop`` (imported only then)."""
    if loop_kind == "uvloop":
        import uvloop

        result: R = uvloop.run(coro)
        return result
    return asyncio.run(coro)


def set_cpu(cpu: int | None) -> None:
    """Pin this process (and the threads it starts later) to one CPU."""
    if cpu is not None and cpu >= 0:
        os.sched_setaffinity(0, {cpu})


def raise_nofile() -> int:
    """Raise the soft open-files limit to the hard one; returns the new soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass
    return soft


def rss_bytes() -> int:
    """This process's resident set size (VmRSS of /proc/self/status); 0 if unknown."""
    try:
        with open("/proc/self/status", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def cpu_model() -> str | None:
    """The CPU model name from /proc/cpuinfo (Linux), else platform's guess."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.partition(":")[2].strip()
    except OSError:
        pass
    return platform.processor() or None


def _loadavg() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def machine_info() -> dict[str, Any]:
    """What the tables need to say about the machine, load average included."""
    return {
        "nproc": os.cpu_count(),
        "cpu_model": cpu_model(),
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "machine": platform.machine(),
        "system": platform.system(),
        "loadavg": _loadavg(),
    }
