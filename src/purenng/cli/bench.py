"""``purenng bench``: PUSH -> PULL throughput of purenng against pynng and pyzmq.

The method (receiver listens, sender dials, separate processes, clock from
the first message, end marker, rate at the receiver) is described in
:mod:`purenng.bench`; this module only turns options into a
:class:`~purenng.bench.runner.BenchConfig` and prints the result, as a table
or (``--json``) as one JSON document on stdout.  Progress lines go to stderr.

Peers are optional: a library that is not installed is left out with a note
on stderr.  The default peers are pynng and pyzmq; the ``nng`` package
joins with ``--peers all`` or by name.

Exit status: 0 when every run succeeded, 1 when some run failed (the table
or JSON says which and why), 2 for bad options.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING

from purenng.bench.peers import API_NAMES, LIBRARIES, resolve_library
from purenng.bench.runner import (
    DEFAULT_SIZES,
    TRANSPORTS,
    BenchConfig,
    format_size,
    parse_size,
    render_table,
    run_bench,
)

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["add_arguments", "run"]

#: Peers compared by default (when installed).
DEFAULT_PEERS = ("pynng", "pyzmq")

#: Longest sender duration accepted, seconds.
MAX_DURATION = 10.0

#: The configuration of ``--quick``, where the option itself was not given.
QUICK = BenchConfig(sizes=[64], transports=["tcp"], duration=0.3, grace=2.0, budget=60.0)


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
        "PUSH->PULL throughput of purenng and of other Python messaging libraries, "
        "sender and receiver in separate processes, with ratios purenng/peer."
    )
    sizes = ",".join(format_size(s) for s in DEFAULT_SIZES)
    parser.add_argument(
        "--sizes",
        type=_sizes,
        default=None,
        help=f"comma-separated message sizes, e.g. 64,1K,64K,1M (default {sizes})",
    )
    parser.add_argument(
        "--transports",
        type=_choices(TRANSPORTS),
        default=None,
        help=f"comma-separated transports (default {','.join(TRANSPORTS)})",
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
        help=f"seconds the sender sends per run, at most {MAX_DURATION:g} (default 2)",
    )
    parser.add_argument(
        "--repeat", type=_positive_int, default=None, help="runs per cell, median (default 1)"
    )
    parser.add_argument(
        "--count",
        type=_positive_int,
        default=None,
        help="message cap per run (default: per size, 3M at 64 B ... 6k at 1 MiB)",
    )
    parser.add_argument(
        "--loop",
        choices=["asyncio", "uvloop"],
        default="asyncio",
        help="event loop of the async runs (default asyncio)",
    )
    parser.add_argument(
        "--budget",
        type=_positive,
        default=None,
        help="seconds for the whole bench; later runs are skipped (default 300)",
    )
    parser.add_argument(
        "--json", action="store_true", help="print one JSON document on stdout instead of a table"
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="a tiny run (tcp, 64 B, 0.3 s) for smoke tests; explicit options still apply",
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


def run(args: argparse.Namespace) -> int:
    """Run the bench; print the table or the JSON.  Returns the exit status."""

    def note(text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    peers = _peers(args.peers, note)
    if peers is None:
        note(f"purenng bench: unknown peer in --peers {args.peers!r}")
        return 2
    base = QUICK if args.quick else BenchConfig()
    duration = base.duration if args.duration is None else args.duration
    if duration > MAX_DURATION:
        note(f"purenng bench: --duration is at most {MAX_DURATION:g} s")
        return 2
    cfg = BenchConfig(
        sizes=args.sizes or list(base.sizes),
        transports=args.transports or list(base.transports),
        apis=args.apis or list(base.apis),
        libraries=["purenng", *peers],
        duration=duration,
        repeat=args.repeat or base.repeat,
        count=args.count,
        grace=base.grace,
        loop=args.loop,
        budget=args.budget or base.budget,
    )
    result = run_bench(cfg, progress=note)
    if args.json:
        print(json.dumps(result.to_json(), indent=1))
    else:
        print(render_table(result))
    return 1 if result.errors else 0
