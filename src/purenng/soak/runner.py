"""Orchestration of ``purenng soak``: children, disturbances, samples, verdict.

Theory of operation:

* Per transport there are two children, side A (listens) and side B (dials)
  (:mod:`purenng.soak.traffic`), except ``inproc``, whose two sides share
  one child.  Which API and loop each child uses is :data:`PLANS`: across
  the transports both APIs, both roles, the standard asyncio loop and
  uvloop all appear.
* Disturbances: every ``restart_every`` seconds each transport gets one,
  alternately a *kill* (SIGKILL of the transport's victim child, restarted
  ``down`` seconds later as a new incarnation; over inproc, side B is closed
  and made anew inside the child) and a *redial* (side B closes every
  dialer and dials again).  The transports' schedules are staggered.  The
  victim is A for some transports and B for others (:data:`PLANS`), so each
  transport has one child, the *survivor*, that lives the whole run while
  its peer dies and comes back: its fds, threads and RSS are what the
  growth check judges.
* The runner reads each child's ``STAT`` lines (counters, per-generation
  ranges, events) and samples each child's RSS, open fds and threads from
  ``/proc`` every ``sample`` seconds, whatever the child does.
* Hangs: a child that sends no ``STAT`` for ``hang`` seconds, a stream whose
  received count does not move for ``hang`` seconds, a child that does not
  start, does not stop its senders or does not exit when told.  A hung
  child is sent SIGUSR1 (its faulthandler dumps every thread's stack to its
  log) before anything else happens.
* The end: senders stop (``STOP``; each reports its last sequence numbers),
  the runner waits up to ``drain`` seconds for the reliable receivers to
  get them, then tells every child to close (``EXIT``).
* Loss accounting on the reliable streams (``push``: PUSH -> PULL;
  ``req``: REQ -> REP -> REQ), done by :func:`account`:

  - a number missing in one receiver incarnation's view of one sender
    generation is a loss when the receiver lived to the end (only a defect
    loses a message there).  Numbers may come late, out of order: PUSH/PULL
    keeps order per pipe, and a redialed sender's old pipe may still hold
    messages when the new one delivers; a late arrival fills its hole (and
    is counted as ``late``).  In a receiver that was killed, a number counts
    as lost only if it had been missing for 30 s when the receiver last
    reported;
  - a generation whose first message in a receiver incarnation is not 0 is
    excused when that incarnation started after the generation did (those
    messages were in flight to, or received by, the killed receiver), and
    is a loss otherwise;
  - a generation that ended by ``STOP`` must be received to its last
    number; a generation whose sender was killed is not followed further
    (what it had queued died with it);
  - a request whose reply did not come within ``req_timeout`` seconds, REQ
    resending every 2 s meanwhile, is a loss; a request in flight when its
    REQ process was killed is not counted.

  Best-effort streams (pub/sub, surveys, bus, pair) report their gaps and
  missing answers and never fail the soak.  Corrupt messages (length, CRC
  or topic wrong, a reply to another request) and duplicates on reliable
  streams fail it everywhere.
"""

from __future__ import annotations

import json
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field, fields
from typing import IO, TYPE_CHECKING, Any

from purenng.bench.proc import HOST, child_command, free_port, machine_info

from .report import growth_verdicts, summary_table
from .traffic import PATTERNS, RELIABLE_STREAMS, STREAMS

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = [
    "PLANS",
    "TRANSPORTS",
    "Plan",
    "SoakConfig",
    "SoakResult",
    "account",
    "run_soak",
]

#: Every built-in transport, in table order.
TRANSPORTS = ("tcp", "ipc", "inproc", "tls", "ws", "wss")


@dataclass(frozen=True)
class Plan:
    """How one transport's children run: (API, loop) per side and who gets killed.

    For the blocking API the loop is that of purenng's background thread
    (``PURENNG_LOOP``); for asyncio, the child's own loop.
    """

    a: tuple[str, str]
    b: tuple[str, str]
    victim: str


#: Per transport: side A's and side B's (API, loop), and the side that is killed.
PLANS: dict[str, Plan] = {
    "tcp": Plan(("sync", "uvloop"), ("async", "asyncio"), victim="B"),
    "ipc": Plan(("async", "uvloop"), ("sync", "asyncio"), victim="A"),
    "inproc": Plan(("async", "asyncio"), ("async", "asyncio"), victim="B"),
    "tls": Plan(("async", "asyncio"), ("async", "uvloop"), victim="A"),
    "ws": Plan(("sync", "asyncio"), ("sync", "uvloop"), victim="B"),
    "wss": Plan(("async", "uvloop"), ("sync", "uvloop"), victim="A"),
}

_CLK_TCK = os.sysconf("SC_CLK_TCK")

_SCHEMES = {"tcp": "tcp", "tls": "tls+tcp", "ws": "ws", "wss": "wss"}


@dataclass
class SoakConfig:
    """What to run and the limits it is judged by."""

    minutes: float = 30.0
    transports: list[str] = field(default_factory=lambda: list(TRANSPORTS))
    restart_every: float = 60.0
    """Seconds between two disturbances of one transport (kill and redial alternate)."""
    down: float = 1.0
    """Seconds a killed child stays dead."""
    sample: float = 5.0
    """Seconds between two resource samples."""
    stat: float = 2.0
    """Seconds between two STAT lines of a child."""
    hang: float = 60.0
    """No progress for this many seconds is a hang."""
    warmup: float | None = None
    """Seconds before the growth baseline; None: 10 % of the run, 20 to 180 s."""
    rate: float = 1.0
    """Multiplies every sender's rate."""
    req_timeout: float = 30.0
    drain: float = 30.0
    """Seconds the reliable receivers get after STOP to catch up."""
    max_size: int = (1 << 20) - 64
    inject_loss: int = 0
    """Test knob: the first push sender of the first transport skips number N (a loss)."""
    rss_limit_mib: float = 64.0
    rss_limit_ratio: float = 0.5
    fd_limit: int = 16
    thread_limit: int = 8
    logs: str | None = None
    """Keep the children's stderr here (default: a temporary directory, kept on failure)."""

    @property
    def duration(self) -> float:
        return self.minutes * 60.0

    def warmup_s(self) -> float:
        if self.warmup is not None:
            return self.warmup
        return min(180.0, max(20.0, 0.1 * self.duration))

    def window_s(self) -> float:
        """Width of the baseline and end windows of the growth check."""
        return max(30.0, 0.05 * self.duration)


@dataclass
class SoakResult:
    """Everything a soak produced; :meth:`to_json` is the JSON file."""

    config: SoakConfig
    machine: dict[str, Any]
    started: float
    elapsed_s: float
    streams: list[dict[str, Any]]
    processes: list[dict[str, Any]]
    samples: dict[str, dict[str, list[Any]]]
    progress: dict[str, dict[str, list[float]]]
    events: list[dict[str, Any]]
    failures: list[str]
    notes: list[str]
    logs: str | None

    @property
    def ok(self) -> bool:
        return not self.failures

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SoakResult:
        """The result a :meth:`to_json` document holds (to redraw or re-print it)."""
        known = {f.name for f in fields(SoakConfig)}
        cfg = SoakConfig(**{k: v for k, v in data["config"].items() if k in known})
        return cls(
            config=cfg,
            machine=data["machine"],
            started=data["started"],
            elapsed_s=data["elapsed_s"],
            streams=data["streams"],
            processes=data["processes"],
            samples=data["samples"],
            progress=data["progress"],
            events=data["events"],
            failures=data["failures"],
            notes=data["notes"],
            logs=data.get("logs"),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "soak": "purenng soak",
            "verdict": "pass" if self.ok else "fail",
            "failures": self.failures,
            "notes": self.notes,
            "config": {**asdict(self.config), "warmup_s": self.config.warmup_s()},
            "plans": {t: asdict(PLANS[t]) for t in self.config.transports},
            "machine": self.machine,
            "started": self.started,
            "elapsed_s": round(self.elapsed_s, 3),
            "streams": self.streams,
            "processes": self.processes,
            "events": self.events,
            "samples": self.samples,
            "progress": self.progress,
            "logs": self.logs,
        }


# ---------------------------------------------------------------- children


@dataclass
class _Child:
    transport: str
    side: str  # "A", "B" or "AB"
    inc: int
    api: str
    loop: str
    proc: subprocess.Popen[bytes]
    log: str
    spawn_wall: float
    spawn_mono: float
    buf: bytearray = field(default_factory=bytearray)
    ready: bool = False
    last_stat: float = 0.0
    final: bool = False
    bye: bool = False
    ended: str | None = None
    hung: bool = False

    @property
    def key(self) -> str:
        return f"{self.transport}/{self.side}"


def _urls(transport: str, tmpdir: str) -> dict[str, str]:
    if transport == "ipc":
        return {p: f"ipc://{tmpdir}/{p}.ipc" for p in PATTERNS}
    if transport == "inproc":
        return {p: f"inproc://soak-{p}-{os.getpid()}" for p in PATTERNS}
    out = {}
    for p in PATTERNS:
        url = f"{_SCHEMES[transport]}://{HOST}:{free_port()}"
        out[p] = url + "/soak" if transport in ("ws", "wss") else url
    return out


class _Soak:
    """One soak run's state (see the module docstring)."""

    def __init__(self, cfg: SoakConfig, progress: Callable[[str], None] | None) -> None:
        self.cfg = cfg
        self.say = progress or (lambda _line: None)
        self.tmp = tempfile.mkdtemp(prefix="purenng-soak-")
        self.logdir = cfg.logs or os.path.join(self.tmp, "logs")
        os.makedirs(self.logdir, exist_ok=True)
        self.tls_dir: str | None = None
        self.urls: dict[str, dict[str, str]] = {}
        self.children: list[_Child] = []
        self.incs: dict[str, int] = {}
        #: (transport, side, inc) -> that incarnation's latest report.
        self.reports: dict[tuple[str, str, int], dict[str, Any]] = {}
        #: (transport, side, inc) -> wall time it started.
        self.born: dict[tuple[str, str, int], float] = {}
        self.killed: set[tuple[str, str, int]] = set()
        self.events: list[dict[str, Any]] = []
        self.failures: list[str] = []
        self.notes: list[str] = []
        self.finals: list[dict[str, Any]] = []
        self.samples: dict[str, dict[str, list[Any]]] = {}
        self.progress: dict[str, dict[str, list[float]]] = {}
        self.t0 = time.time()
        self.m0 = time.monotonic()
        #: (transport, stream) -> (last total received, monotonic time it moved).
        self.moved: dict[tuple[str, str], tuple[int, float]] = {}
        self.hung_streams: set[tuple[str, str]] = set()
        self.respawns: list[tuple[float, str, str]] = []

    # -- bookkeeping ----------------------------------------------------------

    def rel(self, wall: float | None = None) -> float:
        return round((time.time() if wall is None else wall) - self.t0, 2)

    def event(self, transport: str, kind: str, **info: Any) -> None:
        self.events.append({"t": self.rel(), "transport": transport, "kind": kind, **info})

    def fail(self, msg: str) -> None:
        if msg not in self.failures:
            self.failures.append(msg)
            self.say(f"[{self.rel():7.1f}s] FAIL {msg}")

    # -- children ---------------------------------------------------------------

    def spawn(self, transport: str, side: str) -> _Child:
        plan = PLANS[transport]
        api, loop = plan.b if side == "B" else plan.a
        inc = self.incs[f"{transport}/{side}"] = self.incs.get(f"{transport}/{side}", 0) + 1
        cfg = self.cfg
        args = [
            *child_command("purenng.soak.traffic"),
            "--transport", transport, "--side", side, "--inc", str(inc),
            "--urls", json.dumps(self.urls[transport]), "--api", api, "--loop", loop,
            "--rate", str(cfg.rate), "--req-timeout", str(cfg.req_timeout),
            "--stat", str(cfg.stat), "--max-size", str(cfg.max_size),
        ]  # fmt: skip
        if self.tls_dir and transport in ("tls", "wss"):
            args += ["--tls-dir", self.tls_dir]
        if cfg.inject_loss and "B" in side and inc == 1 and transport == cfg.transports[0]:
            args += ["--inject-loss", str(cfg.inject_loss)]
        env = dict(os.environ, PYTHONUNBUFFERED="1", PYTHONFAULTHANDLER="1", PURENNG_LOOP=loop)
        log = os.path.join(self.logdir, f"{transport}-{side}-{inc}.log")
        with open(log, "wb") as err:
            proc = subprocess.Popen(
                args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err, env=env
            )
        child = _Child(transport, side, inc, api, loop, proc, log, time.time(), time.monotonic())
        child.last_stat = child.spawn_mono
        for s in side:
            self.born[transport, s, inc] = child.spawn_wall
        self.children.append(child)
        return child

    def live(self) -> list[_Child]:
        return [c for c in self.children if c.ended is None]

    def send(self, child: _Child, line: str) -> None:
        try:
            assert child.proc.stdin is not None
            child.proc.stdin.write(line.encode() + b"\n")
            child.proc.stdin.flush()
        except (BrokenPipeError, OSError):
            pass

    def kill(self, child: _Child, why: str) -> None:
        if child.proc.poll() is None:
            child.proc.kill()
            try:
                child.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
        child.ended = why
        if why == "killed":
            for s in child.side:
                self.killed.add((child.transport, s, child.inc))
        self.read(child)
        self._close_pipes(child)

    @staticmethod
    def _close_pipes(child: _Child) -> None:
        for f in (child.proc.stdin, child.proc.stdout):
            if f is not None:
                try:
                    f.close()
                except OSError:
                    pass

    def read(self, child: _Child) -> None:
        """Take whatever the child has written, without blocking."""
        out = child.proc.stdout
        if out is None or out.closed:
            return
        fd = out.fileno()
        while True:
            ready, _, _ = select.select([fd], [], [], 0)
            if not ready:
                return
            try:
                chunk = os.read(fd, 1 << 16)
            except OSError:
                return
            if not chunk:
                return
            child.buf += chunk
            while (nl := child.buf.find(b"\n")) >= 0:
                line = bytes(child.buf[:nl]).decode(errors="replace").strip()
                del child.buf[: nl + 1]
                self.line(child, line)

    def line(self, child: _Child, line: str) -> None:
        word, _, rest = line.partition(" ")
        try:
            obj: dict[str, Any] = json.loads(rest) if rest.strip() else {}
        except json.JSONDecodeError:
            self.notes.append(f"{child.key}: unreadable line {line[:120]!r}")
            return
        if word == "READY":
            child.ready = True
        elif word == "STAT":
            child.last_stat = time.monotonic()
            for rep in obj.get("sides", []):
                key = (child.transport, rep["side"], int(rep["inc"]))
                self.born.setdefault(key, float(rep["t0"]))
                self.reports[key] = rep
                for ev in rep.get("events", []):
                    self.child_event(child, ev)
        elif word == "FINAL":
            child.final = True
            self.finals += [{**f, "transport": child.transport} for f in obj.get("finals", [])]
        elif word == "BYE":
            child.bye = True

    def child_event(self, child: _Child, ev: dict[str, Any]) -> None:
        ev = {**ev, "t": self.rel(float(ev["t"])), "transport": child.transport}
        self.events.append(ev)
        kind = ev["kind"]
        where = f"{child.transport}/{ev.get('side')}#{ev.get('inc')}"
        if kind == "error":
            self.fail(f"{where}: worker {ev.get('where')} raised {ev.get('error')}")
        elif kind == "corrupt":
            self.fail(f"{where}: corrupt message on {ev.get('stream')}: {ev.get('error')}")
        elif kind == "dup":
            self.fail(f"{where}: duplicate on {ev.get('stream')} gen {ev.get('gen')}")
        elif kind in ("gap", "req_timeout"):
            self.say(f"[{ev['t']:7.1f}s] {where}: {kind} {ev}")

    # -- sampling ---------------------------------------------------------------

    def sample(self) -> None:
        now = self.rel()
        for c in self.live():
            if not c.ready:  # still importing: not the child's own figures yet
                continue
            pid = c.proc.pid
            rss = threads = fds = None
            try:
                with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
                    # utime and stime: fields 14 and 15, counted after the ")" of comm.
                    fields = f.read().rpartition(")")[2].split()
                cpu = round((int(fields[11]) + int(fields[12])) / _CLK_TCK, 2)
                with open(f"/proc/{pid}/status", encoding="ascii", errors="replace") as f:
                    for ln in f:
                        if ln.startswith("VmRSS:"):
                            rss = int(ln.split()[1]) * 1024
                        elif ln.startswith("Threads:"):
                            threads = int(ln.split()[1])
                fds = len(os.listdir(f"/proc/{pid}/fd"))
            except (OSError, ValueError):
                continue
            s = self.samples.setdefault(
                c.key,
                {"t": [], "inc": [], "pid": [], "rss": [], "fds": [], "threads": [], "cpu": []},
            )
            for k, v in (("t", now), ("inc", c.inc), ("pid", pid), ("rss", rss),
                         ("fds", fds), ("threads", threads), ("cpu", cpu)):  # fmt: skip
                s[k].append(v)
        for t in self.cfg.transports:
            p = self.progress.setdefault(t, {"t": [], "recv": []})
            p["t"].append(now)
            p["recv"].append(sum(self.received(t, s) for s in STREAMS))

    def received(self, transport: str, stream: str) -> int:
        """Messages of ``stream`` received so far over every incarnation."""
        rx = STREAMS[stream][2]
        return sum(
            int(rep["streams"].get(stream, {}).get("recv", 0))
            for (t, side, _), rep in self.reports.items()
            if t == transport and side == rx
        )

    # -- hangs ------------------------------------------------------------------

    def check_hangs(self, stopping: bool) -> None:
        mono = time.monotonic()
        for c in self.live():
            if not c.ready and mono - c.spawn_mono > self.cfg.hang:
                self.hang(c, f"{c.key}#{c.inc} not READY {self.cfg.hang:g} s after start")
            elif c.ready and mono - c.last_stat > self.cfg.hang:
                self.hang(c, f"{c.key}#{c.inc} sent no STAT for {mono - c.last_stat:.0f} s")
        if stopping:
            return
        for t in self.cfg.transports:
            for s in STREAMS:
                n = self.received(t, s)
                last = self.moved.get((t, s))
                if last is None or n != last[0]:
                    self.moved[t, s] = (n, mono)
                    self.hung_streams.discard((t, s))
                elif mono - last[1] > self.cfg.hang and (t, s) not in self.hung_streams:
                    self.hung_streams.add((t, s))
                    self.event(t, "hang", stream=s, received=n)
                    for c in self.live():
                        if c.transport == t:
                            self.dump_stacks(c)
                    self.fail(f"{t}: {s} received nothing for {mono - last[1]:.0f} s (at {n})")

    def dump_stacks(self, c: _Child) -> None:
        if c.proc.poll() is None:
            try:
                os.kill(c.proc.pid, signal.SIGUSR1)
            except OSError:
                pass

    def hang(self, c: _Child, msg: str) -> None:
        if c.hung:
            return
        c.hung = True
        self.event(c.transport, "hang", side=c.side, inc=c.inc, what=msg)
        self.dump_stacks(c)
        time.sleep(0.5)
        self.fail(f"hang: {msg} (stacks in {c.log})")

    # -- the run ----------------------------------------------------------------

    def poll(self, timeout: float) -> None:
        """Read every child's lines for up to ``timeout`` seconds; notice exits."""
        fds: dict[int, _Child] = {}
        for c in self.live():
            out = c.proc.stdout
            if out is not None and not out.closed:
                fds[out.fileno()] = c
        if fds:
            ready, _, _ = select.select(list(fds), [], [], timeout)
            for fd in ready:
                self.read(fds[fd])
        else:
            time.sleep(timeout)
        for c in self.live():
            if c.proc.poll() is not None:
                self.read(c)
                rc = c.proc.returncode
                c.ended = "exited" if c.bye and rc == 0 else "crashed"
                self._close_pipes(c)
                if c.ended == "crashed":
                    self.event(c.transport, "crash", side=c.side, inc=c.inc, rc=rc)
                    self.fail(f"{c.key}#{c.inc} exited with status {rc}: {_tail(c.log)}")
                    self.respawns.append((time.monotonic() + self.cfg.down, c.transport, c.side))

    def disturb(self, transport: str, n: int) -> None:
        """The ``n``-th disturbance of ``transport``: kill when n is odd, redial when even."""
        victim = PLANS[transport].victim
        if transport == "inproc":
            c = next((c for c in self.live() if c.transport == "inproc"), None)
            if c is None:
                return
            if n % 2:
                self.killed.add(("inproc", "B", self.incs.get("inproc/B", 1)))
                self.incs["inproc/B"] = self.incs.get("inproc/B", 1) + 1
                self.event(transport, "restart", side="B")
                self.send(c, "RESTART")
            else:
                self.event(transport, "redial", side="B")
                self.send(c, "DIALERS")
            return
        if n % 2:
            c = next((c for c in self.live() if c.key == f"{transport}/{victim}"), None)
            if c is not None:
                self.event(transport, "kill", side=victim, inc=c.inc, pid=c.proc.pid)
                self.kill(c, "killed")
                self.respawns.append((time.monotonic() + self.cfg.down, transport, victim))
        else:
            c = next((c for c in self.live() if c.key == f"{transport}/B"), None)
            if c is not None:
                self.event(transport, "redial", side="B", inc=c.inc)
                self.send(c, "DIALERS")

    def start(self) -> None:
        if any(t in ("tls", "wss") for t in self.cfg.transports):
            from purenng.certs import make_dev_certs

            self.tls_dir = os.path.join(self.tmp, "certs")
            make_dev_certs().write(self.tls_dir)
        for t in self.cfg.transports:
            self.urls[t] = _urls(t, self.tmp)
            self.incs[f"{t}/B"] = 0
            if t == "inproc":
                self.incs["inproc/AB"] = 0
                self.spawn(t, "AB")
                self.incs["inproc/B"] = 1
            else:
                self.spawn(t, "A")
                self.spawn(t, "B")

    def run(self) -> None:
        cfg = self.cfg
        self.start()
        n = len(cfg.transports)
        mono0 = self.m0
        due = {t: mono0 + cfg.restart_every * (1 + i / n) for i, t in enumerate(cfg.transports)}
        count = dict.fromkeys(cfg.transports, 0)
        end = mono0 + cfg.duration
        quiet = cfg.down + 2 * cfg.stat  # a killed child is back before STOP
        next_sample = mono0
        next_line = mono0 + 60
        while (mono := time.monotonic()) < end:
            self.poll(min(0.25, max(0.0, end - mono)))
            mono = time.monotonic()
            for at, t, side in list(self.respawns):
                if mono >= at:
                    self.respawns.remove((at, t, side))
                    c = self.spawn(t, side)
                    self.event(t, "respawn", side=side, inc=c.inc, pid=c.proc.pid)
            for t in cfg.transports:
                if mono >= due[t] and mono < end - quiet:
                    count[t] += 1
                    self.disturb(t, count[t])
                    due[t] += cfg.restart_every
            if mono >= next_sample:
                self.sample()
                self.check_hangs(stopping=False)
                next_sample += cfg.sample
            if mono >= next_line:
                next_line += 60
                self.say(self.progress_line())
        self.stop()

    def progress_line(self) -> str:
        parts = [f"{t} {sum(self.received(t, s) for s in STREAMS):,}" for t in self.cfg.transports]
        return f"[{self.rel():7.1f}s] received: " + ", ".join(parts)

    def stop(self) -> None:
        cfg = self.cfg
        for at, t, side in list(self.respawns):  # a child that was due back comes back
            del at
            self.spawn(t, side)
        self.respawns.clear()
        ready_by = time.monotonic() + 30
        while any(not c.ready for c in self.live()) and time.monotonic() < ready_by:
            self.poll(0.25)
        self.sample()
        self.event("*", "stop")
        for c in self.live():
            self.send(c, "STOP")
        by = time.monotonic() + cfg.req_timeout + 20
        while any(not c.final for c in self.live()) and time.monotonic() < by:
            self.poll(0.25)
        for c in self.live():
            if not c.final:
                self.hang(c, f"{c.key}#{c.inc} did not stop its senders (no FINAL)")
        by = time.monotonic() + cfg.drain
        while self.undrained() and time.monotonic() < by:
            self.poll(0.25)
        self.poll(cfg.stat + 0.5)  # one more STAT from everyone
        self.sample()
        self.event("*", "exit")
        for c in self.live():
            self.send(c, "EXIT")
        by = time.monotonic() + 30
        while self.live() and time.monotonic() < by:
            self.poll(0.25)
        for c in self.live():
            self.hang(c, f"{c.key}#{c.inc} did not exit after EXIT")
            self.kill(c, "hung")

    def undrained(self) -> list[str]:
        """Reliable generations not yet complete: holes, or a final message not received."""
        out = []
        for key, rep in self.reports.items():  # holes that may still fill
            if key[1] == "A" and key not in self.killed:
                for g, r in rep.get("ranges", {}).get("push", {}).items():
                    if len(r) >= 5 and int(r[3]):
                        out.append(f"{key[0]} {g} holes")
        for f in self.finals:
            if f["stream"] != "push" or not f["sent"]:
                continue
            best = _best_last(self.reports, f["transport"], "push", int(f["gen"]))
            if best < int(f["sent"]) - 1:
                out.append(f"{f['transport']} {f['gen']}")
        return out

    def cleanup(self) -> None:
        for c in self.children:
            if c.ended is None:
                self.kill(c, "cleanup")
        keep_logs = bool(self.failures) or self.cfg.logs is not None
        if keep_logs and self.cfg.logs is None:
            kept = tempfile.mkdtemp(prefix="purenng-soak-logs-")
            for name in os.listdir(self.logdir):
                shutil.copy(os.path.join(self.logdir, name), kept)
            self.logdir = kept
        shutil.rmtree(self.tmp, ignore_errors=True)
        if not keep_logs:
            self.logdir = ""


def _tail(path: str, limit: int = 300) -> str:
    try:
        with open(path, "rb") as f:
            lines = [ln.strip() for ln in f.read().decode(errors="replace").splitlines()]
    except OSError:
        return ""
    return " | ".join([ln for ln in lines if ln][-3:])[-limit:]


def _best_last(
    reports: dict[tuple[str, str, int], dict[str, Any]], transport: str, stream: str, gen: int
) -> int:
    rx = STREAMS[stream][2]
    best = -1
    for (t, side, _), rep in reports.items():
        if t == transport and side == rx:
            r = rep.get("ranges", {}).get(stream, {}).get(str(gen))
            if r:
                best = max(best, int(r[1]))
    return best


# ---------------------------------------------------------------- accounting


def _holes(
    reports: dict[tuple[str, str, int], dict[str, Any]],
    killed: set[tuple[str, str, int]],
    transport: str,
    stream: str,
) -> int:
    """Numbers still missing in what ``stream``'s receivers got: lost, per the rules.

    A receiver that lived to the end must have every hole filled; in one
    that was killed, only numbers missing for longer than the late-arrival
    grace when it last reported count (the rest may have been on the way).
    """
    rx = STREAMS[stream][2]
    n = 0
    for key, rep in reports.items():
        if key[0] != transport or key[1] != rx:
            continue
        for r in rep.get("ranges", {}).get(stream, {}).values():
            missing, stale = (int(r[3]), int(r[4])) if len(r) >= 5 else (0, 0)
            n += stale if key in killed else missing
    return n


def account(
    transport: str,
    reports: dict[tuple[str, str, int], dict[str, Any]],
    born: dict[tuple[str, str, int], float],
    killed: set[tuple[str, str, int]],
    finals: list[dict[str, Any]],
) -> list[dict[str, Any]]:
    """One row per stream of ``transport``: counts, and losses per the module's rules.

    ``reports`` holds each incarnation's last report, ``born`` when each
    started (wall clock), ``killed`` which were killed, ``finals`` the last
    numbers of the senders that were stopped.
    """
    rows = []
    gen_t0: dict[int, float] = {}
    #: stream -> generation -> messages its sender said it sent.
    gen_sent: dict[str, dict[int, int]] = {}
    for (t, _side, _inc), rep in reports.items():
        if t == transport:
            for g in rep.get("gens", []):
                gen_t0[int(g["gen"])] = float(g["t0"])
                gen_sent.setdefault(g["stream"], {})[int(g["gen"])] = int(g["sent"])
    for stream, (pattern, tx, rx) in STREAMS.items():

        def total(side: str, key: str, stream: str = stream) -> int:
            return sum(
                int(rep["streams"].get(stream, {}).get(key, 0))
                for (t, s, _), rep in reports.items()
                if t == transport and s == side
            )

        row: dict[str, Any] = {
            "transport": transport,
            "stream": stream,
            "pattern": pattern,
            "reliable": stream in RELIABLE_STREAMS,
            "sent": total(tx, "sent"),
            "received": total(rx, "recv"),
            "bytes": total(rx, "recv_bytes"),
            "corrupt": total("A", "corrupt") + total("B", "corrupt"),
            "dups": total(rx, "dups"),
            "gaps": total(rx, "gaps"),
            "late": total(rx, "late"),
        }
        if stream not in ("req", "survey"):
            # A killed sender's last report is older than what it sent: what
            # its receivers got says how far it really came.
            sent = gen_sent.get(stream, {})
            got: dict[int, int] = {}
            for (t, s, _), rep in reports.items():
                if t == transport and s == rx:
                    for g, r in rep.get("ranges", {}).get(stream, {}).items():
                        got[int(g)] = max(got.get(int(g), -1), int(r[1]))
            row["sent"] = sum(max(sent.get(g, 0), got.get(g, -1) + 1) for g in set(sent) | set(got))
        if stream == "push":
            hole_loss = _holes(reports, killed, transport, "push")
            late_loss = excused = 0
            for (t, s, inc), rep in reports.items():
                if t != transport or s != rx:
                    continue
                for g, r in rep.get("ranges", {}).get("push", {}).items():
                    first = int(r[0])
                    if not first:
                        continue
                    t0 = gen_t0.get(int(g))
                    if t0 is not None and born.get((t, s, inc), 0.0) > t0:
                        excused += first
                    else:
                        late_loss += first
            tail_loss = 0
            for f in finals:
                if f["transport"] == transport and f["stream"] == "push" and f["sent"]:
                    best = _best_last(reports, transport, "push", int(f["gen"]))
                    tail_loss += max(0, int(f["sent"]) - 1 - best)
            lost = hole_loss + late_loss + tail_loss
            row.update(
                lost=lost,
                lost_gaps=hole_loss,
                lost_start=late_loss,
                lost_tail=tail_loss,
                excused_at_kill=max(0, row["sent"] - row["received"] - lost),
            )
        elif stream == "req":
            row["sent"] = total("B", "sent")
            row["received"] = total("B", "recv")
            row["served"] = total("A", "other")
            row["lost"] = total("B", "missing")
        elif stream == "survey":
            row["responses"] = row["received"]
            row["unanswered"] = total("A", "missing")
            row["answered_by_B"] = total("B", "other")
        else:
            row["dropped"] = _holes(reports, killed, transport, stream)
            if stream == "pub":
                row["filtered_topic_sent"] = total("A", "other")
        rows.append(row)
    return rows


# ---------------------------------------------------------------- entry point


def run_soak(cfg: SoakConfig, progress: Callable[[str], None] | None = None) -> SoakResult:
    """Run a whole soak (blocks for ``cfg.minutes`` plus the stop) and judge it."""
    for t in cfg.transports:
        if t not in PLANS:
            raise ValueError(f"unknown transport {t!r} (choose from {', '.join(TRANSPORTS)})")
    soak = _Soak(cfg, progress)
    try:
        soak.run()
    except KeyboardInterrupt:
        soak.fail("interrupted")
    finally:
        soak.cleanup()
    elapsed = time.monotonic() - soak.m0
    streams: list[dict[str, Any]] = []
    for t in cfg.transports:
        streams += account(t, soak.reports, soak.born, soak.killed, soak.finals)
    for row in streams:
        where = f"{row['transport']}: {row['stream']}"
        if row["reliable"] and row.get("lost"):
            soak.fail(f"{where} lost {row['lost']} message(s) on a reliable path")
        if row["corrupt"]:
            soak.fail(f"{where} {row['corrupt']} corrupt message(s)")
    survivors = {
        f"{t}/{'AB' if t == 'inproc' else ('B' if PLANS[t].victim == 'A' else 'A')}"
        for t in cfg.transports
    }
    processes, growth_failures, growth_notes = growth_verdicts(
        soak.samples, survivors, cfg, stop_t=_stop_time(soak.events, elapsed)
    )
    for msg in growth_failures:
        soak.fail(msg)
    soak.notes += growth_notes
    return SoakResult(
        config=cfg,
        machine=machine_info(),
        started=soak.t0,
        elapsed_s=elapsed,
        streams=streams,
        processes=processes,
        samples=soak.samples,
        progress=soak.progress,
        events=soak.events,
        failures=soak.failures,
        notes=soak.notes,
        logs=soak.logdir or None,
    )


def _stop_time(events: list[dict[str, Any]], elapsed: float) -> float:
    for ev in events:
        if ev["kind"] == "stop":
            return float(ev["t"])
    return elapsed


def print_summary(result: SoakResult, out: IO[str] | None = None) -> None:
    """The summary table on ``out`` (stdout by default)."""
    print(summary_table(result), file=out or sys.stdout)
