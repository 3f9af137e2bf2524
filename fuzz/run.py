"""The fuzz driver: ``python -m fuzz.run [TARGET ...] [options]`` (``make fuzz``).

Two engines run the same targets (:mod:`fuzz._harness`):

* **atheris** (when installed, ``--engine auto`` or ``atheris``): one child
  process per target, coverage-guided by libFuzzer, with ``-runs``,
  ``-max_total_time``, ``-rss_limit_mb`` and ``-timeout``.  Its working
  corpus lives in ``fuzz/.work/<target>/``; at the end the new inputs that
  add coverage are merged (``-merge=1``) into ``fuzz/corpus/<target>/``,
  which is then trimmed to its smallest inputs (``--corpus-kb``, 8 KiB):
  the committed corpus is a seed, the full one stays in ``.work``.
  Crashes, timeouts and out-of-memory inputs land in
  ``fuzz/crashes/<target>/``.  The figure reported is libFuzzer's ``cov:``
  (instrumented edges).
* **plain** (always available): a seeded mutation driver in this process.
  Each input runs under a time limit (``SIGALRM``) and an address-space
  limit (``RLIMIT_AS``: a runaway allocation becomes ``MemoryError``, which
  no target allows).  Inputs that show a new outcome feature are kept in
  memory, and the first few are written to ``fuzz/corpus/<target>/``
  (``--save-corpus``).  The figure reported is coverage.py's line coverage
  of the target's modules, measured by replaying the kept inputs.

The total number of inputs (``--inputs``) is shared out by target weight;
``--time`` caps each target's seconds.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import io
import os
import random
import re
import resource
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._harness import CORPUS, CRASHES, FUZZ_DIR, TARGETS, Crash, Target, digest, judge, read_dir

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence

TARGET_MODULES = (
    "fuzz.targets_codec",
    "fuzz.targets_http",
    "fuzz.targets_url",
    "fuzz.targets_config",
    "fuzz.targets_tls",
    "fuzz.targets_compat",
    "fuzz.targets_protocols",
)
#: Modules the registry loads on first use; atheris must instrument them too.
LAZY_MODULES = (
    "purenng.protocols.pair0",
    "purenng.protocols.pair1",
    "purenng.protocols.pipeline0",
    "purenng.protocols.reqrep0",
    "purenng.protocols.pubsub0",
    "purenng.protocols.survey0",
    "purenng.protocols.bus0",
    "purenng.transports.inproc",
    "purenng.transports.tcp",
    "purenng.transports.ipc",
    "purenng.transports.tls_tcp",
    "purenng.transports.ws",
    "purenng.tls_config",
    "purenng.http.service",
)
WORK = FUZZ_DIR / ".work"
#: The plain driver keeps at most this many inputs for new features (memory stays bounded).
MAX_FEATURES = 20_000
_INTERESTING = (
    b"\x00",
    b"\xff",
    b"\x7f",
    b"\x80",
    b"\x00\x00",
    b"\xff\xff",
    b"\x00\x00\x00\x00",
    b"\xff\xff\xff\xff",
    b"\x7f\xff\xff\xff",
    b"\x00\x00\x00\x00\x00\x00\x00\x00",
    b"\x0f\xff\xff\xff\xff\xff\xff\xff",
    b"\x10\x00\x00\x00\x00\x00\x00\x00",
)


def load_targets() -> dict[str, Target]:
    """Import every target module (registering its targets)."""
    for name in TARGET_MODULES:
        importlib.import_module(name)
    return TARGETS


def shutdown_targets() -> None:
    """Release what targets keep between inputs (loops, sockets): for test teardown."""
    for name in TARGET_MODULES:
        mod = sys.modules.get(name)
        stop = getattr(mod, "shutdown", None)
        if stop is not None:
            stop()


def seeds_of(t: Target) -> list[bytes]:
    """Built-in seeds, the saved corpus and the saved crashes of ``t``."""
    out = list(t.seeds)
    out += [d for _, d in read_dir(CORPUS / t.name)]
    out += [d for _, d in read_dir(CRASHES / t.name)]
    return out or [b""]


# ---------------------------------------------------------------- plain mutation engine


class Mutator:
    """libFuzzer-like byte mutations from a seeded ``random.Random``."""

    def __init__(self, rng: random.Random, max_len: int, dictionary: Sequence[bytes]) -> None:
        self.rng = rng
        self.max_len = max_len
        self.tokens = [*dictionary, *_INTERESTING]

    def mutate(self, data: bytes, other: bytes) -> bytes:
        rng = self.rng
        buf = bytearray(data)
        for _ in range(1 + int(rng.expovariate(0.7))):
            op = rng.randrange(9)
            n = len(buf)
            if op == 0 and n:  # flip a bit
                i = rng.randrange(n)
                buf[i] ^= 1 << rng.randrange(8)
            elif op == 1 and n:  # set a byte
                buf[rng.randrange(n)] = rng.randrange(256)
            elif op == 2:  # insert random bytes
                i = rng.randint(0, n)
                buf[i:i] = rng.randbytes(rng.randint(1, 8))
            elif op == 3 and n:  # delete a range
                i = rng.randrange(n)
                del buf[i : i + rng.randint(1, 16)]
            elif op == 4 and n:  # duplicate a range
                i = rng.randrange(n)
                j = min(n, i + rng.randint(1, 64))
                k = rng.randint(0, n)
                buf[k:k] = buf[i:j]
            elif op == 5:  # insert a token
                tok = rng.choice(self.tokens)
                i = rng.randint(0, n)
                buf[i:i] = tok
            elif op == 6 and n:  # overwrite with a token
                tok = rng.choice(self.tokens)
                i = rng.randrange(n)
                buf[i : i + len(tok)] = tok
            elif op == 7 and other:  # splice with another input
                cut = rng.randint(0, n)
                o = rng.randint(0, len(other))
                buf = buf[:cut] + other[o:]
            elif op == 8 and n:  # add to a byte (arithmetic)
                i = rng.randrange(n)
                buf[i] = (buf[i] + rng.randint(-16, 16)) & 0xFF
        return bytes(buf[: self.max_len])


class Hang(BaseException):
    """One input ran past the per-input time limit (a BaseException: targets do not catch it)."""


@contextlib.contextmanager
def time_limit(seconds: float) -> Iterator[None]:
    """Raise :class:`Hang` in the main thread after ``seconds`` (0: no limit)."""
    if seconds <= 0:
        yield
        return

    def alarm(signum: int, frame: Any) -> None:
        raise Hang(f"no result within {seconds:g} s")

    old = signal.signal(signal.SIGALRM, alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def crash_key(exc: BaseException) -> str:
    """One crash per exception type and innermost purenng (or target) line."""
    import traceback

    where = "?"
    for fs in traceback.extract_tb(exc.__traceback__):
        if "/purenng/" in fs.filename or "/fuzz/" in fs.filename:
            where = f"{Path(fs.filename).name}:{fs.lineno}"
    return f"{type(exc).__name__} at {where}"


def save_crash(t: Target, data: bytes, exc: BaseException, kind: str = "crash") -> Path:
    """Write a crashing input and its traceback to ``fuzz/crashes/<target>/``."""
    import traceback

    d = CRASHES / t.name
    d.mkdir(parents=True, exist_ok=True)
    path = d / f"{kind}-{digest(data)}"
    path.write_bytes(data)
    tb = "".join(traceback.format_exception(exc))
    (WORK / "traces").mkdir(parents=True, exist_ok=True)
    (WORK / "traces" / f"{t.name}-{path.name}.txt").write_text(tb)
    return path


def minimise(t: Target, data: bytes, limit: int = 2000) -> bytes:
    """A shorter input that still crashes the same way (greedy range deletion)."""

    def crash_type(d: bytes) -> str | None:
        try:
            judge(t, d)
        except Crash as c:
            return type(c.exc).__name__
        return None

    want = crash_type(data)
    if want is None:
        return data
    best = data
    step = max(1, len(best) // 2)
    tries = 0
    while step >= 1 and tries < limit:
        i = 0
        changed = False
        while i < len(best) and tries < limit:
            cand = best[:i] + best[i + step :]
            tries += 1
            if crash_type(cand) == want:
                best, changed = cand, True
            else:
                i += step
        if not changed:
            step //= 2
    return best


def run_plain(
    t: Target,
    inputs: int,
    seconds: float,
    seed: int,
    *,
    per_input: float = 2.0,
    save_corpus: int = 0,
    stop_on_crash: bool = False,
    report: bool = True,
) -> dict[str, Any]:
    """Fuzz ``t`` with the mutation engine; the figures of the run."""
    rng = random.Random(seed)
    mut = Mutator(rng, t.max_len, t.dictionary)
    pool = seeds_of(t)
    features: set[object] = set()
    crashes: dict[str, tuple[bytes, BaseException]] = {}
    kept: list[bytes] = []
    start = time.monotonic()

    def one(data: bytes) -> None:
        try:
            with time_limit(per_input):
                feat = judge(t, data)
        except Crash as c:
            key = crash_key(c.exc)
            if key not in crashes:
                crashes[key] = (data, c.exc)
            return
        except Hang as h:
            crashes.setdefault("Hang", (data, h))
            return
        if feat not in features and len(features) < MAX_FEATURES:
            features.add(feat)
            pool.append(data)
            kept.append(data)

    for data in list(pool):
        one(data)
    kept.clear()  # the seeds are not new
    done = 0
    while done < inputs and (seconds <= 0 or time.monotonic() - start < seconds):
        base = pool[rng.randrange(len(pool))] if rng.random() < 0.9 else pool[-1]
        other = pool[rng.randrange(len(pool))]
        one(mut.mutate(base, other))
        done += 1
        if stop_on_crash and crashes:
            break
    elapsed = time.monotonic() - start
    saved = []
    if save_corpus:
        d = CORPUS / t.name
        d.mkdir(parents=True, exist_ok=True)
        for data in sorted(kept, key=len)[:save_corpus]:
            if len(data) <= 4096:
                (d / digest(data)).write_bytes(data)
                saved.append(data)
    crash_files = []
    for data, exc in crashes.values():
        small = minimise(t, data) if not isinstance(exc, Hang) else data
        kind = "timeout" if isinstance(exc, Hang) else "crash"
        crash_files.append(str(save_crash(t, small, exc, kind).relative_to(FUZZ_DIR.parent)))
    cov = line_coverage(t, pool) if report else None
    return {
        "target": t.name,
        "engine": "plain",
        "inputs": done,
        "seconds": round(elapsed, 1),
        "features": len(features),
        "corpus_saved": len(saved),
        "coverage": cov,
        "crashes": crash_files,
        "crash_kinds": sorted(crashes),
    }


def line_coverage(t: Target, inputs: Sequence[bytes]) -> str | None:
    """coverage.py line coverage of ``t.modules`` reached by ``inputs`` (None without coverage)."""
    try:
        import coverage
    except ImportError:
        return None
    files = []
    for name in t.modules:
        mod = sys.modules.get(name) or importlib.import_module(name)
        if getattr(mod, "__file__", None):
            files.append(mod.__file__)
    cov = coverage.Coverage(data_file=None, include=files, branch=False)
    cov.start()
    try:
        for data in inputs:
            with contextlib.suppress(Crash):
                judge(t, data)
    finally:
        cov.stop()
    out = io.StringIO()
    try:
        pct = cov.report(file=out, show_missing=False)
    except coverage.CoverageException:
        return None
    total = out.getvalue().strip().splitlines()[-1].split()
    return f"{pct:.1f}% of {total[1] if len(total) > 1 else '?'} lines"


# ---------------------------------------------------------------- atheris engine


def have_atheris() -> bool:
    try:
        import atheris  # noqa: F401
    except ImportError:
        return False
    return True


def atheris_child(name: str, libfuzzer_args: list[str]) -> None:
    """In a child process: instrument purenng, then hand ``name`` to libFuzzer."""
    import atheris

    with atheris.instrument_imports(include=["purenng", "h11", "websockets"]):
        # The registry imports protocols and transports lazily, on first use:
        # import them here, or their code would run uninstrumented.
        for mod in LAZY_MODULES:
            importlib.import_module(mod)
        targets = load_targets()
    t = targets[name]

    def test_one_input(data: bytes) -> None:
        try:
            t.fn(data)
        except t.allowed:
            pass

    script = WORK / f"{name}.sh"
    argv0 = str(script) if script.exists() else sys.argv[0]
    atheris.Setup([argv0, *libfuzzer_args], test_one_input)
    atheris.Fuzz()


def trim(corpus: Path, budget: int) -> None:
    """Keep the committed corpus small: the smallest merged inputs, ``budget`` bytes in all.

    The full corpus stays in ``fuzz/.work/<target>/`` for the next local run.
    """
    total = 0
    for path, data in sorted(read_dir(corpus), key=lambda pd: (len(pd[1]), pd[0].name)):
        total += len(data)
        if total > budget:
            path.unlink()


def run_atheris(
    t: Target,
    inputs: int,
    seconds: float,
    *,
    rss_mb: int,
    timeout: int,
    seed: int,
    corpus_kb: int = 8,
) -> dict[str, Any]:
    """Fuzz ``t`` in a libFuzzer child; the figures parsed from its log."""
    work = WORK / t.name
    work.mkdir(parents=True, exist_ok=True)
    crashes = CRASHES / t.name
    crashes.mkdir(parents=True, exist_ok=True)
    seeds_dir = WORK / "seeds" / t.name
    seeds_dir.mkdir(parents=True, exist_ok=True)
    for s in t.seeds:
        (seeds_dir / digest(s)).write_bytes(s)
    dict_file = WORK / f"{t.name}.dict"
    dict_file.write_text(
        "".join('"' + "".join(f"\\x{b:02x}" for b in tok) + '"\n' for tok in t.dictionary)
    )
    corpus = CORPUS / t.name
    corpus.mkdir(parents=True, exist_ok=True)
    args = [
        f"-runs={inputs}",
        f"-rss_limit_mb={rss_mb}",
        f"-timeout={timeout}",
        f"-max_len={t.max_len}",
        f"-seed={seed}",
        f"-artifact_prefix={crashes}/",
        "-print_final_stats=1",
        "-close_fd_mask=1",
    ]
    if seconds > 0:
        args.append(f"-max_total_time={int(seconds)}")
    if t.dictionary:
        args.append(f"-dict={dict_file}")
    # libFuzzer re-executes argv[0] for -merge=1 (and -fork): give it a script.
    script = WORK / f"{t.name}.sh"
    script.write_text(
        "#!/bin/sh\n"
        f"cd {shlex.quote(str(FUZZ_DIR.parent))} && exec {shlex.quote(sys.executable)} "
        f'-m fuzz.run --atheris-child {t.name} -- "$@"\n'
    )
    script.chmod(0o755)
    cmd = [str(script)]
    before = {p for p, _ in read_dir(crashes)}
    start = time.monotonic()
    log = WORK / f"{t.name}.log"
    with log.open("w") as f:
        rc = subprocess.call(
            [*cmd, *args, str(work), str(corpus), str(seeds_dir)],
            stdout=f,
            stderr=subprocess.STDOUT,
            cwd=FUZZ_DIR.parent,
        )
    elapsed = time.monotonic() - start
    text = log.read_text(errors="replace")
    execs = re.findall(r"stat::number_of_executed_units:\s*(\d+)", text)
    covs = re.findall(r"\bcov: (\d+)", text)
    fts = re.findall(r"\bft: (\d+)", text)
    # Merge what the run found into the committed corpus (new coverage only).
    merge = subprocess.call(
        [
            *cmd,
            "-merge=1",
            f"-rss_limit_mb={rss_mb}",
            f"-timeout={timeout}",
            str(corpus),
            str(work),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=FUZZ_DIR.parent,
    )
    trim(corpus, corpus_kb * 1024)
    found = [str(p.relative_to(FUZZ_DIR.parent)) for p, _ in read_dir(crashes) if p not in before]
    return {
        "target": t.name,
        "engine": "atheris",
        "inputs": int(execs[-1]) if execs else None,
        "seconds": round(elapsed, 1),
        "coverage": f"cov: {covs[-1]} ft: {fts[-1]}" if covs and fts else None,
        "exit": rc,
        "merge_exit": merge,
        "corpus_files": len(read_dir(corpus)),
        "crashes": found,
    }


# ---------------------------------------------------------------- command line


def share(targets: Sequence[Target], total: int) -> dict[str, int]:
    """``total`` inputs shared out by weight."""
    weights = sum(t.weight for t in targets)
    return {t.name: max(1, int(total * t.weight / weights)) for t in targets}


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["--atheris-child"]:
        name = argv[1]
        rest = argv[3:] if argv[2:3] == ["--"] else argv[2:]
        atheris_child(name, rest)
        return 0
    ap = argparse.ArgumentParser(prog="python -m fuzz.run", description=__doc__.splitlines()[0])
    ap.add_argument("targets", nargs="*", help="target names (default: all)")
    ap.add_argument("--inputs", type=int, default=10_000_000, help="total inputs (all targets)")
    ap.add_argument("--time", type=float, default=0, help="seconds per target (0: no cap)")
    ap.add_argument("--engine", choices=("auto", "atheris", "plain"), default="auto")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--rss-limit-mb", type=int, default=2048)
    ap.add_argument("--timeout", type=int, default=10, help="seconds per input")
    ap.add_argument("--save-corpus", type=int, default=20, help="plain: new inputs to save")
    ap.add_argument("--corpus-kb", type=int, default=8, help="atheris: committed corpus budget")
    ap.add_argument("--list", action="store_true", help="list the targets and exit")
    ns = ap.parse_args(argv)
    targets = load_targets()
    if ns.list:
        for t in targets.values():
            allowed = ", ".join(e.__name__ for e in t.allowed) or "nothing"
            print(f"{t.name:24} weight {t.weight:<4} allows {allowed}")
        return 0
    chosen = [targets[n] for n in ns.targets] if ns.targets else list(targets.values())
    engine = ns.engine
    if engine == "auto":
        engine = "atheris" if have_atheris() else "plain"
    if engine == "plain":
        limit = ns.rss_limit_mb * 1024 * 1024
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_AS, (limit * 2, resource.RLIM_INFINITY))
    shares = share(chosen, ns.inputs)
    results = []
    failed = False
    for t in chosen:
        n = shares[t.name]
        print(f"fuzz {t.name}: {n} inputs ({engine})", flush=True)
        if engine == "atheris":
            r = run_atheris(
                t,
                n,
                ns.time,
                rss_mb=ns.rss_limit_mb,
                timeout=ns.timeout,
                seed=ns.seed,
                corpus_kb=ns.corpus_kb,
            )
        else:
            r = run_plain(t, n, ns.time, ns.seed, per_input=ns.timeout, save_corpus=ns.save_corpus)
        results.append(r)
        failed = failed or bool(r["crashes"])
        print("  " + "  ".join(f"{k}={v}" for k, v in r.items() if k != "target"), flush=True)
    total = sum(r["inputs"] or 0 for r in results)
    print(f"fuzz: {total} inputs over {len(results)} targets; crashes: {int(failed)}")
    for r in results:
        for c in r["crashes"]:
            print(f"  crash: {c}")
    return 1 if failed else 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    sys.exit(main())
