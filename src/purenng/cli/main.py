"""``purenng``: the command line entry point.

Each subcommand lives in its own module of :mod:`purenng.cli` and exposes
``add_arguments(parser)`` and ``run(args) -> int``; modules are imported only
when their subcommand runs, so ``purenng --help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = ["main"]

#: subcommand -> (module, one-line help)
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "demo": ("purenng.cli.demo", "REQ/REP and PUSH/PULL across two processes over tcp"),
    "plugins": ("purenng.cli.plugins", "list transport and protocol plugins and their status"),
    "bench": (
        "purenng.cli.bench",
        "throughput, latency, inproc, import and many-pipe runs vs pynng and pyzmq",
    ),
    "cat": ("purenng.cli.cat", "nngcat-compatible command line client"),
    "serve": ("purenng.cli.serve", "static files, REST and SP-over-WebSocket on one HTTP port"),
    "cert": ("purenng.cli.cert", "make a development CA and TLS certificates (tls+tcp, wss)"),
    "soak": (
        "purenng.soak.command",
        "mixed traffic over every transport with peer restarts: loss, hangs, growth",
    ),
}


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``purenng`` command; returns the exit status."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(
        prog="purenng", description="purenng: SP messaging in pure Python"
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (_, help_text) in SUBCOMMANDS.items():
        sub.add_parser(name, help=help_text, add_help=False)
    if not args_list or args_list[0] in ("-h", "--help") or args_list[0] not in SUBCOMMANDS:
        if args_list and args_list[0] not in ("-h", "--help"):
            parser.error(f"unknown command {args_list[0]!r}")
        parser.print_help()
        return 0 if args_list else 2
    name = args_list[0]
    module = importlib.import_module(SUBCOMMANDS[name][0])
    sub_parser = argparse.ArgumentParser(prog=f"purenng {name}", description=SUBCOMMANDS[name][1])
    module.add_arguments(sub_parser)
    args = sub_parser.parse_args(args_list[1:])
    try:
        return int(module.run(args))
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
