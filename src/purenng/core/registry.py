"""The plugin registry: lazy, one scheme (or protocol) at a time.

Rules:

* Transports live in the entry-point group ``purenng.transports`` (one entry
  point per URL scheme), protocols in ``purenng.protocols`` (one per protocol
  name).  purenng's own built-ins are entry points in its own pyproject and
  load exactly like third-party plugins.
* Nothing is imported until a scheme or protocol is first used; after that it
  is a dict lookup.
* A plugin that fails to import or to register breaks only the names it was
  loaded for, with a :class:`~purenng.core.errors.PluginError` naming the
  plugin and the cause.  ``purenng plugins`` shows it as broken, with why.
* ``plugins.toml`` (:mod:`purenng.core.config`) disables plugins, picks the
  winner of a contested name and gives transport option defaults.
* ``PURENNG_DISABLE_PLUGIN_AUTOLOAD=1`` loads only purenng's own entry points
  and those ``plugins.toml`` lists under ``[plugins] enabled``.
* ``PURENNG_TRACE_PLUGINS=1`` traces loads and hook calls to stderr.
* A plugin module declares the plugin API it was written for as
  ``PURENNG_PLUGIN_API = "MAJOR.MINOR"`` (:data:`API_VERSION` is this
  purenng's).  A different major, or a newer minor than this purenng offers,
  is refused before the plugin registers anything: the error names the
  plugin, its version and the one this purenng has.  A plugin that declares
  none is taken as written for the current major.

Theory of operation (on the first use of name X in group G):

1. Select the entry points of G named X (metadata only, nothing imported).
2. Drop disabled ones and, with autoload disabled, third-party ones not
   enabled.  Several left: the ``[schemes]``/``[protocols]`` winner, else
   purenng's own, else an error asking for a winner.
3. ``ep.load()`` and register the module with pluggy under
   ``"dist:value"``; the historic hooks run its ``purenng_register_*``
   hookimpls at once, and they call :meth:`Registry.add_transport` /
   :meth:`Registry.add_protocol`.
4. On failure, unregister the module, record it as broken, raise.
5. If X is still not registered, raise "plugin P did not register X".
"""

from __future__ import annotations

import os
import sys
import threading
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points
from typing import TYPE_CHECKING, Any

import pluggy

from . import hookspecs
from .config import PluginConfig, load_config, normalize_dist
from .errors import BadOption, PluginError

if TYPE_CHECKING:
    from types import ModuleType

    from .options import OptionSpec
    from .protocol import Protocol
    from .transport import Transport

__all__ = [
    "API_VERSION",
    "GROUPS",
    "PluginStatus",
    "Registry",
    "check_api_version",
    "configure_plugins",
    "get_registry",
]

#: The plugin API this purenng offers (``purenng.plugin.API_VERSION``):
#: MAJOR changes when something a plugin may use changes incompatibly, MINOR
#: when something is added.
API_VERSION: str = "1.0"


def _parse_api(value: str) -> tuple[int, int]:
    major, dot, minor = value.partition(".")
    if not (dot and major.isdigit() and minor.isdigit()):
        raise ValueError(f"expected 'MAJOR.MINOR' such as {API_VERSION!r}, got {value!r}")
    return int(major), int(minor)


def check_api_version(module: object, plugin_id: str) -> str | None:
    """The plugin API ``module`` declares (``PURENNG_PLUGIN_API``), if compatible.

    Returns:
        The declared version, or None when the module declares none.

    Raises:
        PluginError: the declaration is malformed, names another major
            version, or a minor version newer than this purenng's.
    """
    declared = getattr(module, "PURENNG_PLUGIN_API", None)
    if declared is None:
        return None
    have = _parse_api(API_VERSION)
    try:
        if not isinstance(declared, str):
            raise ValueError(f"expected a string such as {API_VERSION!r}, got {declared!r}")
        want = _parse_api(declared)
    except ValueError as exc:
        raise PluginError(f"plugin {plugin_id}: bad PURENNG_PLUGIN_API: {exc}") from None
    if want[0] != have[0] or want[1] > have[1]:
        raise PluginError(
            f"plugin {plugin_id} is written for purenng plugin API {declared}; this purenng "
            f"has {API_VERSION} (it needs {have[0]}.x, at most {API_VERSION})"
        )
    return declared


#: Entry-point groups, by kind.
GROUPS = {
    "transport": "purenng.transports",
    "protocol": "purenng.protocols",
    "tls_engine": "purenng.tls_engines",
}
#: How each kind's names are called in messages, and its plugins.toml winners table.
_WHAT = {"transport": "scheme", "protocol": "protocol", "tls_engine": "TLS engine"}
_WINNERS_TABLE = {"transport": "schemes", "protocol": "protocols", "tls_engine": "tls.engines"}
#: The distribution whose entry points count as built-in.
OWN_DIST = "purenng"


@dataclass
class PluginStatus:
    """One entry point as ``purenng plugins`` shows it.

    Attributes:
        kind: ``"transport"``, ``"protocol"`` or ``"tls_engine"``.
        name: The scheme or protocol name.
        dist: The distribution that declares it.
        value: The module path of the entry point.
        status: ``"loaded"``, ``"available"``, ``"disabled"``, ``"shadowed"``
            (another plugin wins the name) or ``"broken"``.
        detail: Why, for disabled, shadowed and broken plugins.
    """

    kind: str
    name: str
    dist: str
    value: str
    status: str
    detail: str = ""
    #: The plugin API the plugin declares, once loaded ("" before, or none declared).
    api: str = ""


def _dist_name(ep: EntryPoint) -> str:
    """The entry point's distribution, normalised as plugins.toml names are."""
    dist = getattr(ep, "dist", None)
    name = getattr(dist, "name", None) if dist is not None else None
    return normalize_dist(str(name)) if name else "<unknown>"


class Registry:
    """Transports and protocols, loaded on first use.

    Args:
        config: The plugin configuration; read from the usual files if None.
    """

    def __init__(self, config: PluginConfig | None = None) -> None:
        self.config: PluginConfig = config if config is not None else load_config()
        self.pm: pluggy.PluginManager = pluggy.PluginManager(hookspecs.PROJECT)
        self.pm.add_hookspecs(hookspecs)
        if os.environ.get("PURENNG_TRACE_PLUGINS") == "1":
            self.pm.trace.root.setwriter(sys.stderr.write)
            self.pm.enable_tracing()
        self._lock = threading.RLock()
        self._transports: dict[str, Transport] = {}
        self._protocols: dict[str, type[Protocol]] = {}
        self._tls_engines: dict[str, Any] = {}
        self._owner: dict[tuple[str, str], str] = {}  # (kind, name) -> plugin id
        self._broken: dict[tuple[str, str], tuple[str, str]] = {}  # -> (plugin id, cause)
        self._loading: str | None = None
        self._loading_dist: str | None = None
        #: The plugin API each registered plugin declared (None: none declared).
        self.api_versions: dict[str, str | None] = {}
        self.pm.hook.purenng_register_transports.call_historic(kwargs={"registry": self})
        self.pm.hook.purenng_register_protocols.call_historic(kwargs={"registry": self})
        self.pm.hook.purenng_register_tls_engines.call_historic(kwargs={"registry": self})

    # ------------------------------------------------------------ called by plugins

    def add_transport(self, transport: Transport) -> None:
        """Register ``transport`` under each of its ``schemes``."""
        for scheme in transport.schemes:
            self._add("transport", scheme, transport, self._transports)

    def add_protocol(self, protocol: type[Protocol]) -> None:
        """Register a protocol class under its ``name``."""
        self._add("protocol", protocol.name, protocol, self._protocols)

    def add_tls_engine(self, name: str, engine: Any) -> None:
        """Register a TLS engine (a :class:`purenng.tls_config.TLSEngine`) under ``name``."""
        self._add("tls_engine", name, engine, self._tls_engines)

    def _table(self, kind: str) -> dict[str, Any]:
        tables: dict[str, dict[str, Any]] = {
            "transport": self._transports,
            "protocol": self._protocols,
            "tls_engine": self._tls_engines,
        }
        return tables[kind]

    def _winners(self, kind: str) -> dict[str, str]:
        if kind == "transport":
            return self.config.scheme_winners
        if kind == "protocol":
            return self.config.protocol_winners
        return {}

    def _add(self, kind: str, name: str, obj: Any, table: dict[str, Any]) -> None:
        winners = self._winners(kind)
        dist = self._loading_dist
        wanted = winners.get(name)
        if wanted is not None and dist is not None and dist != wanted:
            return  # plugins.toml gives this name to another distribution
        if dist is not None and self._candidates(kind, name):
            # A module may register more names than it was loaded for: each goes
            # to it only if loading that name would pick it (not disabled, not
            # purenng's own or another's by precedence), whatever the order of use.
            try:
                if _dist_name(self._choose(kind, name)) != dist:
                    return
            except PluginError:
                return
        if name in table and dist is not None:
            current = self._owner.get((kind, name), "")
            if current.split(":", 1)[0] == OWN_DIST and dist != OWN_DIST and wanted != dist:
                return  # built-ins keep their names unless plugins.toml says otherwise
        table[name] = obj
        self._owner[(kind, name)] = self._loading or f"{type(obj).__module__}"

    # ------------------------------------------------------------ lookups

    def transport(self, scheme: str) -> Transport:
        """The transport serving ``scheme``, loading its plugin if needed.

        Raises:
            PluginError: no plugin serves it, it is disabled, or it is broken.
        """
        t = self._transports.get(scheme)
        if t is None:
            self._load("transport", scheme)
            t = self._transports[scheme]
        return t

    def protocol(self, name: str) -> type[Protocol]:
        """The protocol class called ``name``, loading its plugin if needed.

        Raises:
            PluginError: no plugin serves it, it is disabled, or it is broken.
        """
        p = self._protocols.get(name)
        if p is None:
            self._load("protocol", name)
            p = self._protocols[name]
        return p

    def tls_engine(self, name: str | None = None) -> Any:
        """The TLS engine called ``name`` (None: plugins.toml's ``[tls] engine``, else "ssl").

        Raises:
            PluginError: no plugin provides it, or it is disabled or broken.
        """
        if name is None:
            name = self.config.tls_engine or "ssl"
        e = self._tls_engines.get(name)
        if e is None:
            self._load("tls_engine", name)
            e = self._tls_engines[name]
        return e

    def option_spec(self, name: str) -> OptionSpec:
        """The spec of a transport option, found through its prefix.

        ``tcp_nodelay`` loads the ``tcp`` transport and asks it.  A prefix
        that is not a scheme names a family of schemes: ``tls_config`` loads
        the first of ``tls+tcp``, ``tls+...`` that is installed.

        Raises:
            BadOption: no transport declares such an option.
        """
        prefix = name.split("_", 1)[0]
        for t in list(self._transports.values()):
            if name in t.option_specs:
                return t.option_specs[name]
        if prefix and prefix != name:
            try:
                t = self.transport(prefix)
            except PluginError:
                pass
            else:
                if name in t.option_specs:
                    return t.option_specs[name]
            family = sorted(
                ep.name
                for ep in entry_points(group=GROUPS["transport"])
                if ep.name.startswith(prefix + "+")
            )
            for scheme in family:
                try:
                    t = self.transport(scheme)
                except PluginError:
                    continue
                if name in t.option_specs:
                    return t.option_specs[name]
        raise BadOption(f"unknown option {name!r}")

    def transport_defaults(self, transport: Transport) -> dict[str, Any]:
        """Option defaults for ``transport`` from plugins.toml, validated.

        Raises:
            ConfigError: a default names an unknown option or has a bad value.
        """
        from .errors import ConfigError
        from .options import validate

        out: dict[str, Any] = {}
        for key in (*transport.schemes, transport.option_prefix):
            for opt, value in self.config.transport_defaults.get(key, {}).items():
                spec = transport.option_specs.get(opt)
                where = self.config.origin.get(f"transport:{key}.{opt}", "plugins.toml")
                if spec is None:
                    known = ", ".join(sorted(transport.option_specs)) or "none"
                    raise ConfigError(
                        f"{where}: [transport.{key}] {opt}: unknown option for this transport "
                        f"(known: {known})"
                    )
                try:
                    out[opt] = validate(spec, value)
                except BadOption as exc:
                    raise ConfigError(f"{where}: [transport.{key}] {opt}: {exc}") from None
        return out

    # ------------------------------------------------------------ loading

    def _candidates(self, kind: str, name: str) -> list[EntryPoint]:
        return list(entry_points(group=GROUPS[kind], name=name))

    def _allowed(self, kind: str, name: str, ep: EntryPoint) -> tuple[bool, str]:
        dist = _dist_name(ep)
        where = self.config.is_disabled(dist, name)
        if where is not None:
            return False, f"disabled by {where}"
        if (
            dist != OWN_DIST
            and os.environ.get("PURENNG_DISABLE_PLUGIN_AUTOLOAD") == "1"
            and dist not in self.config.enabled
        ):
            return False, "PURENNG_DISABLE_PLUGIN_AUTOLOAD=1 and not in [plugins] enabled"
        return True, ""

    def _choose(self, kind: str, name: str) -> EntryPoint:
        eps = self._candidates(kind, name)
        what = _WHAT[kind]
        if not eps:
            key = (kind, name)
            if key in self._broken:
                plugin, cause = self._broken[key]
                raise PluginError(f"{what} {name!r}: plugin {plugin} is broken: {cause}")
            raise PluginError(
                f"no plugin provides {what} {name!r} (entry-point group {GROUPS[kind]!r}); "
                f"is its package installed?"
            )
        allowed = []
        reasons = []
        for ep in eps:
            ok, why = self._allowed(kind, name, ep)
            if ok:
                allowed.append(ep)
            else:
                reasons.append(f"{_dist_name(ep)}:{ep.value} {why}")
        if not allowed:
            raise PluginError(f"{what} {name!r} is not available: " + "; ".join(reasons))
        if len(allowed) == 1:
            return allowed[0]
        wanted = self._winners(kind).get(name)
        if wanted is not None:
            for ep in allowed:
                if _dist_name(ep) == wanted:
                    return ep
            raise PluginError(
                f"plugins.toml gives {what} {name!r} to {wanted!r}, which does not provide it "
                f"(candidates: {', '.join(_dist_name(e) for e in allowed)})"
            )
        own = [ep for ep in allowed if _dist_name(ep) == OWN_DIST]
        if own:
            return own[0]
        table = _WINNERS_TABLE[kind]
        raise PluginError(
            f"{what} {name!r} is claimed by {', '.join(_dist_name(e) for e in allowed)}; "
            f'choose one in plugins.toml: [{table}] {name} = "<distribution>"'
        )

    def _load(self, kind: str, name: str) -> None:
        with self._lock:
            table = self._table(kind)
            if name in table:
                return
            ep = self._choose(kind, name)
            dist = _dist_name(ep)
            plugin_id = f"{dist}:{ep.value}"
            self.pm.trace.root.get("load")(f"{plugin_id} for {kind} {name!r}")
            try:
                module = ep.load()
            except Exception as exc:
                self._broken[(kind, name)] = (plugin_id, f"{type(exc).__name__}: {exc}")
                raise PluginError(
                    f"plugin {plugin_id} for {kind} {name!r} failed to import: "
                    f"{type(exc).__name__}: {exc}"
                ) from exc
            try:
                self.register_module(module, plugin_id, dist)
            except PluginError as exc:
                err = exc.__cause__
                cause = str(exc) if err is None else f"{type(err).__name__}: {err}"
                self._broken[(kind, name)] = (plugin_id, cause)
                raise
            if name not in table:
                cause = f"plugin {plugin_id} did not register {kind} {name!r}"
                self._broken[(kind, name)] = (plugin_id, cause)
                raise PluginError(cause)

    def register_module(
        self, module: ModuleType | object, plugin_id: str, dist: str | None = None
    ) -> None:
        """Register a module (or object) of hookimpls, as an entry point would.

        Tests and applications use this to add a plugin without installing a
        distribution.

        Raises:
            PluginError: its hookimpls failed; nothing of it stays registered.
        """
        with self._lock:
            if self.pm.is_registered(module):
                return
            self.api_versions[plugin_id] = check_api_version(module, plugin_id)
            self._loading, self._loading_dist = plugin_id, dist
            try:
                self.pm.register(module, name=plugin_id)
                self.pm.check_pending()
            except Exception as exc:
                if self.pm.is_registered(module):
                    self.pm.unregister(module)
                for key, owner in list(self._owner.items()):
                    if owner == plugin_id:
                        self._table(key[0]).pop(key[1], None)
                        del self._owner[key]
                        self._broken[key] = (plugin_id, f"{type(exc).__name__}: {exc}")
                raise PluginError(
                    f"plugin {plugin_id} failed to register: {type(exc).__name__}: {exc}"
                ) from exc
            finally:
                self._loading = self._loading_dist = None

    # ------------------------------------------------------------ reporting

    def describe(self) -> list[PluginStatus]:
        """Every entry point in every group, with its status (nothing is loaded)."""
        out: list[PluginStatus] = []
        for kind, group in GROUPS.items():
            table = self._table(kind)
            for ep in sorted(entry_points(group=group), key=lambda e: (e.name, _dist_name(e))):
                dist = _dist_name(ep)
                plugin_id = f"{dist}:{ep.value}"
                ok, why = self._allowed(kind, ep.name, ep)
                if not ok:
                    out.append(PluginStatus(kind, ep.name, dist, ep.value, "disabled", why))
                    continue
                broken = self._broken.get((kind, ep.name))
                if broken is not None and broken[0] == plugin_id:
                    out.append(PluginStatus(kind, ep.name, dist, ep.value, "broken", broken[1]))
                    continue
                owner = self._owner.get((kind, ep.name))
                if ep.name in table and owner == plugin_id:
                    api = self.api_versions.get(plugin_id) or ""
                    out.append(PluginStatus(kind, ep.name, dist, ep.value, "loaded", api=api))
                elif ep.name in table and owner is not None:
                    out.append(
                        PluginStatus(
                            kind, ep.name, dist, ep.value, "shadowed", f"served by {owner}"
                        )
                    )
                else:
                    out.append(PluginStatus(kind, ep.name, dist, ep.value, "available"))
        return out


_registry: Registry | None = None
_registry_lock = threading.Lock()


def get_registry() -> Registry:
    """The process-wide registry, created on first use."""
    global _registry
    reg = _registry
    if reg is None:
        with _registry_lock:
            if _registry is None:
                _registry = Registry()
            reg = _registry
    return reg


def configure_plugins(path: str | os.PathLike[str] | None = None) -> Registry:
    """Start a fresh registry, reading ``path`` on top of the usual files.

    Sockets made afterwards use it; existing sockets keep their transports.

    Raises:
        ConfigError: a file is missing or invalid.
    """
    global _registry
    reg = Registry(load_config(path))
    with _registry_lock:
        _registry = reg
    return reg
