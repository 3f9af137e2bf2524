"""``purenng bench``: purenng against pynng, pyzmq and nng, with ratios.

Modes (``--modes``, default ``thr,lat``; ``all`` runs every one):

* ``thr``: PUSH -> PULL throughput, two processes (:mod:`purenng.bench`).
* ``lat``: REQ/REP round-trip latency, two processes, with CPU placement
  ``--pin`` (:mod:`purenng.bench.latency`).
* ``inproc``: PUSH -> PULL over inproc in one process
  (:mod:`purenng.bench.inproc`).
* ``import``: the cost of ``import purenng`` and what it loads
  (:mod:`purenng.bench.importtime`).
* ``pipes``: many tcp pipes on one listener: connect time, one echo round,
  memory per pipe (:mod:`purenng.bench.pipes`).
* ``scaling``: throughput against the number of concurrent pipes
  (``--scale-pipes``) and against the message size, with a PNG figure
  (``--plot FILE``, needs matplotlib) (:mod:`purenng.bench.scaling`).

This module only turns options into a
:class:`~purenng.bench.suite.SuiteConfig` and prints the result: as tables,
as Markdown tables (``--markdown``, to paste into ``docs/performance.md``)
or as one JSON document (``--json``).  Progress lines go to stderr.

Peers are optional: a library that is not installed is left out with a note
on stderr.  The default peers are pynng and pyzmq; the ``nng`` package
joins with ``--peers all`` or by name.

Options that several modes share (``--duration``, ``--repeat``,
``--transports``, ``--apis``, ``--peers``, ``--loop``, ``--budget``) apply
to each mode that has them; ``--budget`` bounds each mode separately.
``--transports`` takes ``tcp``, ``ipc``, ``tls`` (``tls+tcp://``), ``ws``
and ``wss`` for thr (pyzmq shows ``n/a`` for the last three); lat keeps
``tcp`` and ``ipc`` of the list (its default when none is left).

Exit status: 0 when every run succeeded, 1 when some run failed (the table
or JSON says which and why), 2 for bad options.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING

from purenng.bench.importtime import ImportConfig
from purenng.bench.inproc import InprocConfig
from purenng.bench.latency import DEFAULT_COUNT, LatConfig, pins_for
from purenng.bench.peers import API_NAMES, LIBRARIES, resolve_library
from purenng.bench.pipes import PipesConfig, max_pipes
from purenng.bench.proc import PIN_MODES
from purenng.bench.runner import (
    DEFAULT_SIZES,
    DEFAULT_TRANSPORTS,
    TRANSPORTS,
    BenchConfig,
    format_size,
    parse_size,
)
from purenng.bench.scaling import (
    DEFAULT_PIPE_COUNTS,
    PlotUnavailable,
    ScalingConfig,
    require_matplotlib,
)
from purenng.bench.suite import DEFAULT_MODES, MODES, SuiteConfig, run_suite

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["HELP", "add_arguments", "run"]

#: The one-line help of ``purenng bench`` (see :class:`purenng.cli.command.Command`).
HELP = "throughput, latency, inproc, import and many-pipe runs vs pynng and pyzmq"

#: Peers compared by default (when installed).
DEFAULT_PEERS = ("pynng", "pyzmq")

#: Transports of the lat mode (the others apply to thr only).
LAT_TRANSPORTS = ("tcp", "ipc")

#: Longest sender duration accepted, seconds.
MAX_DURATION = 10.0

#: The configuration of ``--quick``, where the option itself was not given.
QUICK = BenchConfig(sizes=[64], transports=["tcp"], duration=0.3, grace=2.0, budget=60.0)
QUICK_LAT = LatConfig(transports=["tcp"], duration=0.3, count=2000, warmup=50, budget=60.0)
QUICK_INPROC = InprocConfig(duration=0.3, grace=2.0, budget=60.0)
QUICK_IMPORT = ImportConfig(runs=3)
QUICK_PIPES = PipesConfig(counts=[50], budget=60.0)
QUICK_SCALING = ScalingConfig(
    pipe_counts=[1, 10], sizes=[64, 1024], duration=0.3, grace=2.0, budget=60.0
)


def _csv(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def _sizes(text: str) -> list[int]:
    try:
        return [parse_size(part) for part in _csv(text)]
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _choices(allowed: tuple[str, ...]) -> Callable[[str], list[str]]:
    def parse(text: str) -> list[str]:
        items = _csv(text)
        bad = [x for x in items if x not in allowed]
        if bad or not items:
            raise argparse.ArgumentTypeError(
                f"expected a comma-separated list of {', '.join(allowed)}; got {text!r}"
            )
        return list(dict.fromkeys(items))

    return parse


def _modes(text: str) -> list[str]:
    if text.strip() == "all":
        return list(MODES)
    chosen = _choices(MODES)(text)
    return [m for m in MODES if m in chosen]


def _counts(text: str) -> list[int]:
    try:
        counts = [int(part) for part in _csv(text)]
    except ValueError:
        counts = []
    if not counts or min(counts) < 1:
        raise argparse.ArgumentTypeError(f"expected pipe counts like 1000 or 1000,10000: {text!r}")
    return counts


def _positive(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text!r}")
    return value


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {text!r}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare the options of ``purenng bench``."""
    parser.description = (
        "purenng against other Python messaging libraries, with ratios purenng/peer: "
        "PUSH->PULL throughput (thr), REQ/REP latency (lat), inproc throughput (inproc), "
        "import time (import), many tcp pipes (pipes), throughput against pipes and "
        "message size (scaling)."
    )
    parser.add_argument(
        "--modes",
        type=_modes,
        default=None,
        metavar="LIST",
        help=f"comma-separated modes from {', '.join(MODES)}, or 'all' "
        f"(default {','.join(DEFAULT_MODES)})",
    )
    sizes = ",".join(format_size(s) for s in DEFAULT_SIZES)
    parser.add_argument(
        "--sizes",
        type=_sizes,
        default=None,
        help=f"comma-separated message sizes of thr, e.g. 64,1K,64K,1M (default {sizes}); "
        "also of inproc (default 64) and scaling (default 16B..1MiB, powers of 4) when given",
    )
    parser.add_argument(
        "--transports",
        type=_choices(TRANSPORTS),
        default=None,
        help=f"comma-separated transports from {', '.join(TRANSPORTS)} (default "
        f"{','.join(DEFAULT_TRANSPORTS)}); lat runs only {' and '.join(LAT_TRANSPORTS)}",
    )
    parser.add_argument(
        "--apis",
        type=_choices(API_NAMES),
        default=None,
        help="sync (blocking send/recv), async (await asend/arecv) or both (default)",
    )
    names = tuple(n for n in LIBRARIES if n != "purenng")
    parser.add_argument(
        "--peers",
        default=None,
        metavar="LIST",
        help=(
            f"comma-separated peers from {', '.join(names)} (zmq = pyzmq); 'all' = every "
            f"installed peer, 'none' = purenng alone (default {','.join(DEFAULT_PEERS)})"
        ),
    )
    parser.add_argument(
        "--duration",
        type=_positive,
        default=None,
        help=f"seconds per run (thr, inproc: sending; lat: timed round trips), "
        f"at most {MAX_DURATION:g} (default 2)",
    )
    parser.add_argument(
        "--repeat", type=_positive_int, default=None, help="runs per cell, median (default 1)"
    )
    parser.add_argument(
        "--count",
        type=_positive_int,
        default=None,
        help="message cap per thr/inproc run (default: per size, 3M at 64 B ... 6k at 1 MiB)",
    )
    parser.add_argument(
        "--pin",
        choices=[*PIN_MODES, "all"],
        default="none",
        help="CPU placement of lat: none (the scheduler decides), same (both processes on "
        "one CPU), split (REP and REQ on different CPUs), all (each of the three)",
    )
    parser.add_argument(
        "--lat-count",
        type=_positive_int,
        default=None,
        help=f"most timed round trips per lat run (default {DEFAULT_COUNT})",
    )
    parser.add_argument(
        "--pipes",
        type=_counts,
        default=None,
        metavar="N[,N...]",
        help="pipe counts of the pipes mode, one run each (default 1000; 10000 takes "
        "about half a minute and some 2.6 GiB of memory on a small VM)",
    )
    parser.add_argument(
        "--scale-pipes",
        type=_counts,
        default=None,
        metavar="N[,N...]",
        help="concurrent pipe counts of the scaling mode, one run each (default "
        f"{','.join(str(n) for n in DEFAULT_PIPE_COUNTS)})",
    )
    parser.add_argument(
        "--plot",
        default=None,
        metavar="FILE",
        help="write the scaling mode's figure to FILE (PNG; needs matplotlib: "
        "pip install 'purenng[bench]')",
    )
    parser.add_argument(
        "--no-baselines",
        action="store_true",
        help="thr: leave out the pure-Python baselines (the per-message asyncio ceiling "
        "next to async rows, the raw blocking-socket bandwidth next to 1 MiB rows)",
    )
    parser.add_argument(
        "--import-runs",
        type=_positive_int,
        default=None,
        help="fresh interpreters per measurement of the import mode (default 10)",
    )
    parser.add_argument(
        "--loop",
        choices=["asyncio", "uvloop"],
        default="asyncio",
        help="event loop of the async runs and of the pipes processes (default asyncio)",
    )
    parser.add_argument(
        "--budget",
        type=_positive,
        default=None,
        help="seconds for each mode; its later runs are skipped (default 300, pipes and "
        "scaling 600)",
    )
    parser.add_argument(
        "--json", action="store_true", help="print one JSON document on stdout instead of tables"
    )
    parser.add_argument(
        "--markdown",
        nargs="?",
        const="-",
        default=None,
        metavar="FILE",
        help="write the tables as Markdown, for docs/performance.md: to FILE, or to stdout "
        "without one",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="tiny runs (tcp, 64 B, 0.3 s, 50 pipes, 3 imports; scaling: 1 and 10 pipes, "
        "64 B and 1 KiB) for smoke tests; explicit options still apply",
    )


def _peers(spec: str | None, note: Callable[[str], None]) -> list[str] | None:
    """Resolve ``--peers`` to installed peers; None for a bad name."""
    if spec is None:
        wanted, explicit = list(DEFAULT_PEERS), False
    elif spec.strip() == "none":
        return []
    elif spec.strip() == "all":
        wanted, explicit = [n for n in LIBRARIES if n != "purenng"], False
    else:
        wanted, explicit = [], True
        for name in _csv(spec):
            try:
                lib = resolve_library(name)
            except KeyError:
                return None
            if lib.name != "purenng" and lib.name not in wanted:
                wanted.append(lib.name)
    out = []
    for name in wanted:
        if LIBRARIES[name].available():
            out.append(name)
        elif explicit:
            note(f"purenng bench: {name} is not installed; left out")
    return out


def _configs(args: argparse.Namespace, peers: list[str], duration: float) -> SuiteConfig:
    """One configuration per selected mode, from the options and the defaults."""
    modes = args.modes or list(DEFAULT_MODES)
    libraries = ["purenng", *peers]
    out = SuiteConfig()
    if "thr" in modes:
        base = QUICK if args.quick else BenchConfig()
        out.thr = BenchConfig(
            sizes=args.sizes or list(base.sizes),
            transports=args.transports or list(base.transports),
            apis=args.apis or list(base.apis),
            libraries=libraries,
            duration=duration,
            repeat=args.repeat or base.repeat,
            count=args.count,
            grace=base.grace,
            loop=args.loop,
            budget=args.budget or base.budget,
            baselines=not args.no_baselines,
        )
    if "lat" in modes:
        lat = QUICK_LAT if args.quick else LatConfig()
        lat_transports = [t for t in args.transports or () if t in LAT_TRANSPORTS]
        out.lat = LatConfig(
            transports=lat_transports or list(lat.transports),
            apis=args.apis or list(lat.apis),
            libraries=libraries,
            pins=pins_for(args.pin),
            size=lat.size,
            count=args.lat_count or lat.count,
            duration=duration,
            warmup=lat.warmup,
            repeat=args.repeat or lat.repeat,
            loop=args.loop,
            budget=args.budget or lat.budget,
        )
    if "inproc" in modes:
        inp = QUICK_INPROC if args.quick else InprocConfig()
        out.inproc = InprocConfig(
            sizes=args.sizes or list(inp.sizes),
            apis=args.apis or list(inp.apis),
            libraries=libraries,
            duration=duration,
            repeat=args.repeat or inp.repeat,
            count=args.count,
            grace=inp.grace,
            loop=args.loop,
            budget=args.budget or inp.budget,
        )
    if "import" in modes:
        imp = QUICK_IMPORT if args.quick else ImportConfig()
        out.imports = ImportConfig(runs=args.import_runs or imp.runs)
    if "pipes" in modes:
        pip = QUICK_PIPES if args.quick else PipesConfig()
        out.pipes = PipesConfig(
            counts=args.pipes or list(pip.counts),
            loop=args.loop,
            budget=args.budget or pip.budget,
        )
    if "scaling" in modes:
        sca = QUICK_SCALING if args.quick else ScalingConfig()
        out.scaling = ScalingConfig(
            pipe_counts=args.scale_pipes or list(sca.pipe_counts),
            sizes=args.sizes or list(sca.sizes),
            apis=args.apis or list(sca.apis),
            libraries=libraries,
            duration=duration,
            repeat=args.repeat or sca.repeat,
            count=args.count,
            grace=sca.grace,
            loop=args.loop,
            budget=args.budget or sca.budget,
            plot=args.plot,
        )
    return out


def run(args: argparse.Namespace) -> int:
    """Run the selected modes; print tables, Markdown or JSON.  Returns the exit status."""

    def note(text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    peers = _peers(args.peers, note)
    if peers is None:
        note(f"purenng bench: unknown peer in --peers {args.peers!r}")
        return 2
    base_duration = QUICK.duration if args.quick else BenchConfig().duration
    duration = base_duration if args.duration is None else args.duration
    if duration > MAX_DURATION:
        note(f"purenng bench: --duration is at most {MAX_DURATION:g} s")
        return 2
    if args.json and args.markdown == "-":
        note("purenng bench: --json and --markdown cannot both go to stdout; give --markdown FILE")
        return 2
    if args.pipes and max(args.pipes) > max_pipes():
        note(
            f"purenng bench: --pipes {max(args.pipes)} is above what the open-files limit "
            f"allows here ({max_pipes()})"
        )
        return 2
    if args.plot is not None:
        if "scaling" not in (args.modes or DEFAULT_MODES):
            note("purenng bench: --plot draws the scaling mode; add --modes scaling")
            return 2
        try:
            require_matplotlib()
        except PlotUnavailable as e:
            note(f"purenng bench: {e}")
            return 2
    if args.scale_pipes and max(args.scale_pipes) > max_pipes():
        note(
            f"purenng bench: --scale-pipes {max(args.scale_pipes)} is above what the "
            f"open-files limit allows here ({max_pipes()})"
        )
        return 2
    result = run_suite(_configs(args, peers, duration), progress=note)
    if args.markdown is not None:
        text = result.render(markdown=True)
        if args.markdown == "-":
            print(text, end="")
        else:
            with open(args.markdown, "w", encoding="utf-8") as f:
                f.write(text)
    if args.json:
        print(json.dumps(result.to_json(), indent=1))
    elif args.markdown is None or args.markdown != "-":
        print(result.render(), end="")
    return 1 if result.errors else 0
