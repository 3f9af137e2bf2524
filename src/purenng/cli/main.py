"""``purenng``: the command line entry point.

Rules:

* ``purenng NAME ...`` runs the command registered under ``NAME`` in the
  entry-point group ``purenng.commands`` (:data:`purenng.cli.command.GROUP`).
  purenng's own commands are entry points of its own distribution, found
  the same way as a third-party one.  What a command module provides is
  :class:`purenng.cli.command.Command`.
* ``purenng`` and ``purenng --help`` list the commands from package metadata
  and import none of them.  purenng's own take their one-line help from
  :data:`BUILTIN_HELP` (keyed by entry-point value); a third-party one is
  shown with its distribution's name and summary.
* Only the module of the command that runs is imported.  One that fails to
  import, or lacks ``add_arguments``/``run``, fails alone: an error names the
  plugin (``distribution:module``), the command and the cause (exit status 1).
  ``PURENNG_TRACE_PLUGINS=1`` adds the traceback.
* A name claimed by purenng and another distribution is purenng's, with a
  warning naming both (on ``--help`` and when that command runs).  A name
  claimed by two other distributions runs neither (exit status 1) until
  ``plugins.toml`` disables all but one; ``[plugins] disabled`` applies to
  third-party commands as to transports (a disabled one: exit status 2).

Exit status: the command's own; 2 for an unknown or disabled command or an
invalid ``plugins.toml``; 1 for a broken or contested one; 130 on Ctrl-C.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from typing import TYPE_CHECKING, Any, NamedTuple, cast

from .command import GROUP

if TYPE_CHECKING:
    from collections.abc import Sequence
    from importlib.metadata import EntryPoint

    from ..core.config import PluginConfig
    from .command import Command

__all__ = [
    "BUILTIN_HELP",
    "CommandEntry",
    "CommandError",
    "choose_command",
    "conflict_warning",
    "find_commands",
    "load_command",
    "main",
]

#: The distribution whose commands are purenng's own.
OWN_DIST = "purenng"

#: purenng's own commands (their entry points' values) -> their one-line help,
#: so that ``purenng --help`` need not import them.  Each module's ``HELP`` says
#: the same (a test checks).
BUILTIN_HELP: dict[str, str] = {
    "purenng.cli.demo": "REQ/REP and PUSH/PULL across two processes over tcp",
    "purenng.cli.plugins": "list transport, protocol and command plugins and their status",
    "purenng.cli.bench": (
        "throughput, latency, inproc, import and many-pipe runs vs pynng and pyzmq"
    ),
    "purenng.cli.cat": "nngcat-compatible command line client",
    "purenng.cli.serve": "static files, REST and SP-over-WebSocket on one HTTP port",
    "purenng.cli.cert": "make a development CA and TLS certificates (tls+tcp, wss)",
    "purenng.soak.command": (
        "mixed traffic over every transport with peer restarts: loss, hangs, growth"
    ),
}


class CommandError(Exception):
    """A command that cannot run; the message says which plugin and why.

    Attributes:
        status: The exit status ``purenng`` returns for it.
        detail: The cause alone (``ImportError: ...``), as ``purenng plugins`` shows it.
    """

    def __init__(self, message: str, status: int = 1, detail: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.detail: str = detail or message


class CommandEntry(NamedTuple):  # not a dataclass: dataclasses imports inspect (10 ms)
    """One entry point of ``purenng.commands`` (nothing imported).

    Attributes:
        name: The command name (``purenng NAME``).
        dist: The distribution that declares it, normalised (PEP 503).
        value: The entry point's value: ``module`` or ``module:object``.
        ep: The entry point itself.
    """

    name: str
    dist: str
    value: str
    ep: EntryPoint

    @property
    def builtin(self) -> bool:
        """Whether this is one of purenng's own commands."""
        return self.dist == OWN_DIST

    @property
    def plugin_id(self) -> str:
        """``distribution:value``, as plugins are named in messages."""
        return f"{self.dist}:{self.value}"


def _normalize(name: str) -> str:
    """As :func:`purenng.core.config.normalize_dist` (not imported: it pulls tomllib)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def find_commands() -> dict[str, list[CommandEntry]]:
    """Every command name -> its entry points, purenng's own first (metadata only)."""
    from importlib.metadata import entry_points

    names: dict[int, str] = {}  # reading a distribution's name parses its METADATA: once each
    found: dict[str, list[CommandEntry]] = {}
    for ep in entry_points(group=GROUP):
        dist = getattr(ep, "dist", None)
        key = id(dist)
        if key not in names:
            raw = getattr(dist, "name", None) if dist is not None else None
            names[key] = _normalize(str(raw)) if raw else "<unknown>"
        found.setdefault(ep.name, []).append(CommandEntry(ep.name, names[key], ep.value, ep))
    for entries in found.values():
        entries.sort(key=lambda e: (not e.builtin, e.dist))
    return dict(sorted(found.items()))


def conflict_warning(name: str, entries: Sequence[CommandEntry]) -> str | None:
    """The warning for a name that purenng and other distributions claim, if it is one."""
    if len(entries) < 2 or not entries[0].builtin:
        return None
    others = ", ".join(f"{e.dist} ({e.value})" for e in entries[1:])
    return (
        f"purenng: warning: command {name!r} is claimed by purenng ({entries[0].value}) "
        f"and by {others}; purenng's own is used"
    )


def choose_command(
    name: str, entries: Sequence[CommandEntry], config: PluginConfig | None = None
) -> CommandEntry:
    """The entry point that serves command ``name``.

    purenng's own wins outright (no configuration is read).  Otherwise
    ``[plugins] disabled`` of ``config`` (the usual files if None) drops
    entries, and exactly one must be left.

    Raises:
        CommandError: every candidate is disabled (status 2), or several are left.
        ConfigError: ``config`` is None and a configuration file is invalid.
    """
    if entries and entries[0].builtin:
        return entries[0]
    if config is None:
        from ..core.config import load_config

        config = load_config()
    allowed: list[CommandEntry] = []
    reasons: list[str] = []
    for e in entries:
        where = config.is_disabled(e.dist, name)
        if where is None:
            allowed.append(e)
        else:
            reasons.append(f"{e.plugin_id} disabled by {where}")
    if not allowed:
        raise CommandError(f"command {name!r} is not available: " + "; ".join(reasons), 2)
    if len(allowed) > 1:
        claims = ", ".join(e.plugin_id for e in allowed)
        raise CommandError(
            f"command {name!r} is claimed by {claims}; uninstall all but one, or disable "
            f'the others in plugins.toml: [plugins] disabled = ["<distribution>:{name}"]'
        )
    return allowed[0]


def load_command(entry: CommandEntry) -> Command:
    """Import the command of ``entry`` and check it has ``add_arguments`` and ``run``.

    Raises:
        CommandError: it failed to import, or is not a command.
    """
    where = f"plugin {entry.plugin_id} for command {entry.name!r}"
    try:
        obj = entry.ep.load()
    except Exception as exc:
        cause = f"{type(exc).__name__}: {exc}"
        raise CommandError(f"{where} failed to import: {cause}", detail=cause) from exc
    missing = [f"{a}()" for a in ("add_arguments", "run") if not callable(getattr(obj, a, None))]
    if missing:
        cause = f"not a command: {entry.value} has no {' and no '.join(missing)}"
        raise CommandError(f"{where} is {cause} (see purenng.plugin.Command)", detail=cause)
    return cast("Command", obj)


def _summary(entry: CommandEntry) -> str:
    """What ``purenng --help`` says of a third-party command, without importing it."""
    try:
        summary = entry.ep.dist.metadata["Summary"] if entry.ep.dist is not None else None
    except Exception:  # a damaged METADATA must not break --help
        summary = None
    return f"from {entry.dist}: {summary}" if summary else f"from {entry.dist}"


def _help_line(name: str, entries: Sequence[CommandEntry]) -> str:
    first = entries[0]
    if first.builtin:
        return BUILTIN_HELP.get(first.value, "")
    if len(entries) > 1:
        claims = ", ".join(e.dist for e in entries)
        return f"claimed by {claims} (see purenng plugins)"
    return _summary(first)


def _report(exc: CommandError) -> int:
    print(f"purenng: {exc}", file=sys.stderr)
    if os.environ.get("PURENNG_TRACE_PLUGINS") == "1" and exc.__cause__ is not None:
        import traceback

        traceback.print_exception(exc.__cause__, file=sys.stderr)
    return exc.status


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``purenng`` command; returns the exit status."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    commands = find_commands()
    parser = argparse.ArgumentParser(
        prog="purenng", description="purenng: SP messaging in pure Python"
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, entries in commands.items():
        sub.add_parser(name, help=_help_line(name, entries), add_help=False)
    if not args_list or args_list[0] in ("-h", "--help"):
        for name, entries in commands.items():
            warning = conflict_warning(name, entries)
            if warning:
                print(warning, file=sys.stderr)
        parser.print_help()
        return 0 if args_list else 2
    name = args_list[0]
    if name not in commands:
        parser.error(f"unknown command {name!r}")
    entries = commands[name]
    warning = conflict_warning(name, entries)
    if warning:
        print(warning, file=sys.stderr)
    from ..core.errors import ConfigError

    try:
        entry = choose_command(name, entries)
        command = load_command(entry)
    except CommandError as exc:
        return _report(exc)
    except ConfigError as exc:
        print(f"purenng: {exc}", file=sys.stderr)
        return 2
    help_text: Any = getattr(command, "HELP", None)
    sub_parser = argparse.ArgumentParser(
        prog=f"purenng {name}", description=help_text if isinstance(help_text, str) else None
    )
    try:
        command.add_arguments(sub_parser)
    except Exception as exc:
        if entry.builtin:
            raise
        cause = f"{type(exc).__name__}: {exc}"
        err = CommandError(
            f"plugin {entry.plugin_id} for command {name!r} failed in add_arguments(): {cause}"
        )
        err.__cause__ = exc
        return _report(err)
    args = sub_parser.parse_args(args_list[1:])
    try:
        status = command.run(args)
    except KeyboardInterrupt:
        return 130
    return 0 if status is None else int(status)


if __name__ == "__main__":
    sys.exit(main())
