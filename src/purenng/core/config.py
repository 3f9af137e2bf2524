"""``plugins.toml``: which plugins are enabled, who wins a scheme, transport defaults.

Files are layered, each overriding the keys of the ones before it:

1. the shipped default (``purenng/plugins.toml`` in the wheel, or the
   checkout's root ``plugins.toml`` for an editable install);
2. the user file: ``$XDG_CONFIG_HOME/purenng/plugins.toml`` (by default
   ``~/.config/purenng/plugins.toml``);
3. the file named by the ``PURENNG_PLUGINS`` environment variable;
4. an explicit path given to :func:`purenng.configure_plugins`.

So an explicit path beats the environment variable, which beats the user
file, which beats the shipped default.  Tables merge key by key; lists are
replaced, not appended.

Schema::

    [plugins]
    disabled = ["dist", "dist:scheme"]   # never load these
    enabled = ["dist"]                   # load even with autoload disabled

    [schemes]                            # who wins a contested scheme
    tcp = "purenng"                      # distribution name

    [protocols]                          # the same for protocols
    req0 = "purenng"

    [transport.tcp]                      # defaults for a transport's options
    tcp_nodelay = true

    [tls]
    engine = "ssl"                       # the TLS engine TLSConfig uses by default

A file that breaks the schema raises :class:`~purenng.core.errors.ConfigError`
naming the file, the key and what was expected.
"""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from .errors import ConfigError

__all__ = ["PluginConfig", "config_paths", "load_config", "normalize_dist"]


def normalize_dist(name: str) -> str:
    """A distribution name in its canonical form (PEP 503): ``Purenng_Foo`` -> ``purenng-foo``."""
    return re.sub(r"[-_.]+", "-", name).lower()


def _normalize_entry(entry: str) -> str:
    dist, sep, rest = entry.partition(":")
    return normalize_dist(dist) + sep + rest


_TOP_KEYS = {"plugins", "schemes", "protocols", "transport", "tls"}
_TLS_KEYS = {"engine"}
_PLUGIN_KEYS = {"disabled", "enabled"}


@dataclass
class PluginConfig:
    """The merged configuration.

    Attributes:
        files: The files read, lowest precedence first.
        disabled: Distribution names or ``dist:name`` entries never loaded.
        enabled: Distribution names loaded even with autoload disabled.
        scheme_winners: Scheme -> distribution that serves it.
        protocol_winners: Protocol name -> distribution that serves it.
        transport_defaults: Option prefix or scheme -> option defaults.
        tls_engine: The default TLS engine's name (``[tls] engine``), or None.
    """

    files: list[Path] = field(default_factory=list)
    disabled: list[str] = field(default_factory=list)
    enabled: list[str] = field(default_factory=list)
    scheme_winners: dict[str, str] = field(default_factory=dict)
    protocol_winners: dict[str, str] = field(default_factory=dict)
    transport_defaults: dict[str, dict[str, Any]] = field(default_factory=dict)
    tls_engine: str | None = None
    #: Where each setting came from, for error messages and ``purenng plugins``.
    origin: dict[str, Path] = field(default_factory=dict)

    def is_disabled(self, dist: str, name: str) -> Path | None:
        """The file that disables ``dist`` or ``dist:name``, or None."""
        for entry in (f"{dist}:{name}", dist):
            if entry in self.disabled:
                return self.origin.get(f"disabled:{entry}")
        return None


def _shipped_default() -> Path | None:
    try:
        res = resources.files("purenng").joinpath("plugins.toml")
        if res.is_file():
            return Path(str(res))
    except (ModuleNotFoundError, OSError):
        pass
    # Editable installs do not get the force-included copy: use the checkout's.
    here = Path(__file__).resolve()
    for parent in here.parents:
        candidate = parent / "plugins.toml"
        if candidate.is_file() and (parent / "pyproject.toml").is_file():
            return candidate
    return None


def _user_file() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "purenng" / "plugins.toml"


def config_paths(explicit: str | os.PathLike[str] | None = None) -> list[Path]:
    """The files that apply, lowest precedence first (missing optional ones skipped).

    Raises:
        ConfigError: ``explicit`` or ``$PURENNG_PLUGINS`` names a missing file.
    """
    paths: list[Path] = []
    shipped = _shipped_default()
    if shipped is not None:
        paths.append(shipped)
    user = _user_file()
    if user.is_file():
        paths.append(user)
    env = os.environ.get("PURENNG_PLUGINS")
    if env:
        p = Path(env)
        if not p.is_file():
            raise ConfigError(f"PURENNG_PLUGINS={env!r}: no such file")
        paths.append(p)
    if explicit is not None:
        p = Path(explicit)
        if not p.is_file():
            raise ConfigError(f"plugin configuration {str(p)!r}: no such file")
        paths.append(p)
    return paths


def _str_list(path: Path, key: str, value: Any) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{path}: [{key}] must be a list of strings, got {value!r}")
    return list(value)


def _str_table(path: Path, key: str, value: Any) -> dict[str, str]:
    if not isinstance(value, dict):
        raise ConfigError(f'{path}: [{key}] must be a table of name = "distribution"')
    for k, v in value.items():
        if not isinstance(v, str):
            raise ConfigError(
                f"{path}: {key}.{k} must be a distribution name (a string), got {v!r}"
            )
    return dict(value)


def _merge_file(cfg: PluginConfig, path: Path) -> None:
    try:
        with path.open("rb") as f:
            data = tomllib.load(f)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: not UTF-8 text ({exc.reason})") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc}") from None
    unknown = set(data) - _TOP_KEYS
    if unknown:
        raise ConfigError(
            f"{path}: unknown table(s) {sorted(unknown)}; expected {sorted(_TOP_KEYS)}"
        )
    plugins = data.get("plugins", {})
    if not isinstance(plugins, dict):
        raise ConfigError(f"{path}: [plugins] must be a table")
    bad = set(plugins) - _PLUGIN_KEYS
    if bad:
        raise ConfigError(
            f"{path}: unknown key(s) {sorted(bad)} in [plugins]; expected {sorted(_PLUGIN_KEYS)}"
        )
    if "disabled" in plugins:
        cfg.disabled = [
            _normalize_entry(e) for e in _str_list(path, "plugins.disabled", plugins["disabled"])
        ]
        for entry in cfg.disabled:
            cfg.origin[f"disabled:{entry}"] = path
    if "enabled" in plugins:
        cfg.enabled = [
            normalize_dist(e) for e in _str_list(path, "plugins.enabled", plugins["enabled"])
        ]
    if "schemes" in data:
        winners = {
            k: normalize_dist(v) for k, v in _str_table(path, "schemes", data["schemes"]).items()
        }
        cfg.scheme_winners.update(winners)
        for k in winners:
            cfg.origin[f"scheme:{k}"] = path
    if "protocols" in data:
        winners = {
            k: normalize_dist(v)
            for k, v in _str_table(path, "protocols", data["protocols"]).items()
        }
        cfg.protocol_winners.update(winners)
        for k in winners:
            cfg.origin[f"protocol:{k}"] = path
    transport = data.get("transport", {})
    if not isinstance(transport, dict):
        raise ConfigError(f"{path}: [transport] must contain tables such as [transport.tcp]")
    for name, table in transport.items():
        if not isinstance(table, dict):
            raise ConfigError(f"{path}: [transport.{name}] must be a table of option = value")
        cfg.transport_defaults.setdefault(name, {}).update(table)
        for k in table:
            cfg.origin[f"transport:{name}.{k}"] = path
    tls = data.get("tls", {})
    if not isinstance(tls, dict):
        raise ConfigError(f"{path}: [tls] must be a table")
    bad = set(tls) - _TLS_KEYS
    if bad:
        raise ConfigError(
            f"{path}: unknown key(s) {sorted(bad)} in [tls]; expected {sorted(_TLS_KEYS)}"
        )
    if "engine" in tls:
        engine = tls["engine"]
        if not isinstance(engine, str) or not engine:
            raise ConfigError(f"{path}: tls.engine must be a TLS engine name, got {engine!r}")
        cfg.tls_engine = engine
        cfg.origin["tls:engine"] = path
    cfg.files.append(path)


def load_config(explicit: str | os.PathLike[str] | None = None) -> PluginConfig:
    """Read and merge every applicable ``plugins.toml``.

    Raises:
        ConfigError: a file is missing, unreadable or breaks the schema.
    """
    cfg = PluginConfig()
    for path in config_paths(explicit):
        _merge_file(cfg, path)
    return cfg
