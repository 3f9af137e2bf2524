"""The soak's command line: ``python -m purenng.soak`` (``make soak``).

It is a ``purenng`` command module (:class:`purenng.cli.command.Command`:
``HELP``, ``add_arguments`` and ``run``), so ``purenng soak`` needs only its
entry point in the ``purenng.commands`` group.  Exit status: 0 when the soak passed,
1 when it failed (loss on a reliable path, corruption, a hang, unbounded
growth, a crashed child), 2 for a bad command line.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from .runner import TRANSPORTS, SoakConfig, SoakResult, print_summary, run_soak

__all__ = ["HELP", "add_arguments", "main", "run"]

#: The one-line help of ``purenng soak`` (see :class:`purenng.cli.command.Command`).
HELP = "mixed traffic over every transport with peer restarts: loss, hangs, growth"


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The soak's options on ``p``."""
    d = SoakConfig()
    p.add_argument("--minutes", type=float, default=d.minutes, help="how long (default 30)")
    p.add_argument(
        "--transports",
        default=",".join(TRANSPORTS),
        help=f"comma-separated, from {','.join(TRANSPORTS)} (default: all)",
    )
    p.add_argument(
        "--restart-every", type=float, default=d.restart_every,
        help="seconds between two disturbances of one transport; kill and redial alternate "
        "(default 60)",
    )  # fmt: skip
    p.add_argument("--down", type=float, default=d.down, help="seconds a killed child stays dead")
    p.add_argument("--sample", type=float, default=d.sample, help="seconds between samples")
    p.add_argument("--hang", type=float, default=d.hang, help="no progress this long is a hang")
    p.add_argument("--warmup", type=float, default=None, help="seconds before the baseline")
    p.add_argument("--rate", type=float, default=d.rate, help="multiplies every sender's rate")
    p.add_argument("--req-timeout", type=float, default=d.req_timeout)
    p.add_argument("--max-size", type=int, default=d.max_size, help="largest message body")
    p.add_argument("--inject-loss", type=int, default=0, help=argparse.SUPPRESS)
    p.add_argument("--json", metavar="FILE", help="write the result as JSON")
    p.add_argument("--plot", metavar="FILE", help="write the figure (PNG, needs matplotlib)")
    p.add_argument("--logs", metavar="DIR", help="keep the children's stderr here")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    p.add_argument(
        "--from-json", metavar="FILE",
        help="run nothing: print the table of a saved result (and redraw it with --plot)",
    )  # fmt: skip


def run(args: argparse.Namespace) -> int:
    """Run the soak ``args`` describes; print the table; 0 if it passed."""
    transports = [t for t in args.transports.split(",") if t]
    bad = [t for t in transports if t not in TRANSPORTS]
    if bad:
        print(f"unknown transport(s) {bad}; choose from {', '.join(TRANSPORTS)}", file=sys.stderr)
        return 2
    if args.plot:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            print("--plot needs matplotlib: pip install matplotlib", file=sys.stderr)
            return 2
    if args.from_json:
        with open(args.from_json, encoding="utf-8") as f:
            saved = SoakResult.from_json(json.load(f))
        if args.plot:
            from .report import plot_soak

            plot_soak(saved, args.plot)
        print_summary(saved)
        return 0 if saved.ok else 1
    cfg = SoakConfig(
        minutes=args.minutes,
        transports=transports,
        restart_every=args.restart_every,
        down=args.down,
        sample=args.sample,
        hang=args.hang,
        warmup=args.warmup,
        rate=args.rate,
        req_timeout=args.req_timeout,
        max_size=args.max_size,
        inject_loss=args.inject_loss,
        logs=args.logs,
    )

    def progress(line: str) -> None:
        if not args.quiet:
            print(line, flush=True)

    result = run_soak(cfg, progress)
    for path in (args.json, args.plot):
        if path and os.path.dirname(path):
            os.makedirs(os.path.dirname(path), exist_ok=True)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(result.to_json(), f, indent=1)
            f.write("\n")
    if args.plot:
        from .report import plot_soak

        plot_soak(result, args.plot)
    print_summary(result)
    for what, path in (("JSON", args.json), ("figure", args.plot)):
        if path:
            print(f"{what}: {path}")
    return 0 if result.ok else 1


def main(argv: list[str] | None = None) -> int:
    """``python -m purenng.soak [options]``."""
    p = argparse.ArgumentParser(
        prog="python -m purenng.soak",
        description="mixed SP traffic over every transport with peer restarts; "
        "fails on loss on a reliable path, a hang or unbounded growth",
    )
    add_arguments(p)
    return run(p.parse_args(argv))
