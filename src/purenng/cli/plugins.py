"""``purenng plugins``: what is installed, what would load, what is broken and why.

Rules:

* Every entry point of every group (``purenng.transports``,
  ``purenng.protocols``, ``purenng.tls_engines``, ``purenng.commands``) is
  listed, grouped by kind, with its name (URL scheme, protocol, engine or
  command), distribution and version, module, the plugin API it declares
  (``PURENNG_PLUGIN_API``; known once loaded: add ``--load``) and status.  The statuses are
  those of :meth:`purenng.core.registry.Registry.describe`: ``loaded``,
  ``available``, ``disabled: why``, ``shadowed: served by ...`` and
  ``broken: why``; commands get the same ones, by the rules of
  :mod:`purenng.cli.main` (purenng's own win their names, a name two other
  distributions claim is broken).
* By default nothing is imported: the listing comes from package metadata
  and ``plugins.toml`` only, so it works even when a plugin would crash.
* ``--load`` loads every name that is not disabled, one at a time, exactly as
  a socket would on first use.  A name that fails (import error, nothing
  registered, a conflict nobody resolved in ``plugins.toml``) shows as
  ``broken`` with the error, and the exit status is 1.  Commands are
  imported too (``loaded``, or ``broken`` with the import error).
* The configuration files in effect (lowest precedence first), the merged
  settings and the environment variables that steer the registry are shown
  too, because "why is my plugin not used?" is nearly always answered there.
* ``--json`` prints the same facts as one JSON document for scripts.
* ``--config PATH`` reads ``PATH`` on top of the usual files, as
  :func:`purenng.configure_plugins` would, to check a file before using it.

Exit status: 0; 1 with ``--load`` if any plugin is broken; 2 if the
configuration itself is invalid.
"""

from __future__ import annotations

import json
import os
import sys
from importlib import metadata
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import argparse

    from ..core.config import PluginConfig
    from ..core.registry import PluginStatus, Registry

__all__ = ["ENV_VARS", "HELP", "add_arguments", "collect", "run"]

#: The one-line help of ``purenng plugins`` (see :class:`purenng.cli.command.Command`).
HELP = "list transport, protocol and command plugins and their status"

#: The environment variables that steer the registry, with what each does.
ENV_VARS: dict[str, str] = {
    "PURENNG_PLUGINS": "a plugins.toml read on top of the shipped and user files",
    "PURENNG_DISABLE_PLUGIN_AUTOLOAD": (
        "1: only purenng's own plugins and those in [plugins] enabled load"
    ),
    "PURENNG_TRACE_PLUGINS": "1: plugin loads and hook calls are traced to stderr",
    "XDG_CONFIG_HOME": "where the user file is looked for (default ~/.config)",
}

_KIND_TITLES = {
    "transport": "Transports",
    "protocol": "Protocols",
    "tls_engine": "TLS engines",
    "command": "Commands",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``purenng plugins``."""
    parser.add_argument(
        "--load",
        action="store_true",
        help="load every plugin that is not disabled, to find broken ones (exit 1 if any)",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    parser.add_argument(
        "--config",
        metavar="PATH",
        help="read this plugins.toml on top of the usual files (as configure_plugins(PATH))",
    )


def _version(dist: str, cache: dict[str, str]) -> str:
    if dist not in cache:
        try:
            cache[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            cache[dist] = ""
    return cache[dist]


def _load_all(reg: Registry, statuses: list[PluginStatus]) -> dict[tuple[str, str], str]:
    """Load every name that has an entry point not disabled; the errors, by name."""
    errors: dict[tuple[str, str], str] = {}
    seen: set[tuple[str, str]] = set()
    for st in statuses:
        key = (st.kind, st.name)
        if st.status == "disabled" or key in seen:
            continue
        seen.add(key)
        try:
            if st.kind == "transport":
                reg.transport(st.name)
            elif st.kind == "tls_engine":
                reg.tls_engine(st.name)
            else:
                reg.protocol(st.name)
        except Exception as exc:  # a diagnostic tool reports whatever a plugin throws
            errors[key] = str(exc) or type(exc).__name__
    return errors


def _commands(cfg: PluginConfig, load: bool) -> list[dict[str, str]]:
    """Every ``purenng.commands`` entry point: kind, group, name, dist, module, status, detail."""
    from .command import GROUP
    from .main import CommandError, choose_command, find_commands, load_command

    out: list[dict[str, str]] = []
    for name, entries in find_commands().items():
        winner, problem = None, ""
        try:
            winner = choose_command(name, entries, cfg)
        except CommandError as exc:
            problem = str(exc)
        for e in entries:
            where = None if e.builtin else cfg.is_disabled(e.dist, name)
            status, detail = "available", ""
            if where is not None:
                status, detail = "disabled", f"disabled by {where}"
            elif winner is None:
                status, detail = "broken", problem
            elif e is not winner:
                status, detail = "shadowed", f"served by {winner.plugin_id}"
            elif load:
                try:
                    load_command(e)
                except CommandError as exc:
                    status, detail = "broken", exc.detail
                else:
                    status = "loaded"
            out.append(
                {
                    "kind": "command",
                    "group": GROUP,
                    "name": name,
                    "distribution": e.dist,
                    "module": e.value,
                    "status": status,
                    "detail": detail,
                }
            )
    return out


def _config_facts(cfg: PluginConfig) -> dict[str, Any]:
    from ..core.config import _shipped_default, _user_file

    shipped = _shipped_default()
    user = _user_file()
    return {
        "files": [str(p) for p in cfg.files],
        "shipped_default": str(shipped) if shipped is not None else None,
        "user_file": str(user),
        "user_file_present": user.is_file(),
        "enabled": list(cfg.enabled),
        "disabled": list(cfg.disabled),
        "schemes": dict(cfg.scheme_winners),
        "protocols": dict(cfg.protocol_winners),
        "transport": {k: dict(v) for k, v in cfg.transport_defaults.items()},
        "tls_engine": cfg.tls_engine,
    }


def collect(config: str | None = None, load: bool = False) -> dict[str, Any]:
    """Everything ``purenng plugins`` shows, as plain data (the ``--json`` document).

    Raises:
        ConfigError: a configuration file is missing or invalid.
    """
    from .. import __version__
    from ..core.config import load_config
    from ..core.registry import GROUPS, Registry

    reg = Registry(load_config(config))
    errors: dict[tuple[str, str], str] = {}
    if load:
        errors = _load_all(reg, reg.describe())
    versions: dict[str, str] = {}
    plugins: list[dict[str, Any]] = []
    for st in reg.describe():
        status, detail = st.status, st.detail
        failed = errors.get((st.kind, st.name))
        if failed is not None and status == "available":
            # Never loaded because its name failed before registering anything
            # (a conflict nobody resolved, or the module path itself is broken).
            status, detail = "broken", failed
        plugins.append(
            {
                "kind": st.kind,
                "group": GROUPS[st.kind],
                "name": st.name,
                "distribution": st.dist,
                "version": _version(st.dist, versions),
                "module": st.value,
                "status": status,
                "detail": detail,
                "api": st.api,
            }
        )
    plugins.extend(
        {**c, "version": _version(c["distribution"], versions)} for c in _commands(reg.config, load)
    )
    return {
        "purenng_version": __version__,
        "loaded_all": load,
        "plugins": plugins,
        "config": _config_facts(reg.config),
        "environment": {name: os.environ.get(name) for name in ENV_VARS},
    }


def _status_text(p: dict[str, Any]) -> str:
    return f"{p['status']}: {p['detail']}" if p["detail"] else str(p["status"])


def _table(rows: list[list[str]]) -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    out = []
    for r in rows:
        cells = [c.ljust(w) for c, w in zip(r, widths, strict=False)]
        out.append("  " + "  ".join([*cells, r[-1]]).rstrip())
    return out


def format_text(facts: dict[str, Any]) -> str:
    """The human-readable listing."""
    from ..core.registry import GROUPS
    from .command import GROUP

    lines = [f"purenng {facts['purenng_version']} plugins"]
    if not facts["loaded_all"]:
        lines.append("(nothing imported; add --load to load each plugin and find broken ones)")
    for kind, group in {**GROUPS, "command": GROUP}.items():
        lines.append("")
        lines.append(f"{_KIND_TITLES[kind]} (entry-point group {group}):")
        rows = [["NAME", "DISTRIBUTION", "MODULE", "API", "STATUS"]]
        for p in facts["plugins"]:
            if p["kind"] != kind:
                continue
            dist = f"{p['distribution']} {p['version']}".rstrip()
            api = p.get("api") or ("-" if p["status"] == "loaded" else "")
            rows.append([p["name"], dist, p["module"], api, _status_text(p)])
        if len(rows) == 1:
            lines.append("  (none installed)")
        else:
            lines.extend(_table(rows))
    cfg = facts["config"]
    lines.append("")
    lines.append("Configuration files in effect (later ones override earlier ones):")
    lines.extend(f"  {f}" for f in cfg["files"])
    if not cfg["files"]:
        lines.append("  (none)")
    if not cfg["user_file_present"]:
        lines.append(f"  (no user file at {cfg['user_file']})")
    lines.append(f"  [plugins] enabled = {cfg['enabled']}, disabled = {cfg['disabled']}")
    if cfg["schemes"]:
        lines.append(f"  [schemes] {_pairs(cfg['schemes'])}")
    if cfg["protocols"]:
        lines.append(f"  [protocols] {_pairs(cfg['protocols'])}")
    for name, opts in cfg["transport"].items():
        lines.append(f"  [transport.{name}] {_pairs(opts)}")
    if cfg.get("tls_engine"):
        lines.append(f"  [tls] engine = {cfg['tls_engine']!r}")
    lines.append("")
    lines.append("Environment:")
    rows = [
        [name, "(unset)" if value is None else f"={value}", ENV_VARS[name]]
        for name, value in facts["environment"].items()
    ]
    lines.extend(_table(rows))
    return "\n".join(lines)


def _pairs(d: dict[str, Any]) -> str:
    return ", ".join(f"{k} = {json.dumps(v, default=str)}" for k, v in d.items())


def run(args: argparse.Namespace) -> int:
    """List the plugins; see the module docstring for the exit status."""
    from ..core.errors import ConfigError

    try:
        facts = collect(args.config, load=args.load)
    except ConfigError as exc:
        print(f"purenng plugins: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(facts, indent=2, default=str))
    else:
        print(format_text(facts))
    broken = [p for p in facts["plugins"] if p["status"] == "broken"]
    return 1 if broken and args.load else 0
