"""Targets for ``plugins.toml`` (:mod:`purenng.core.config`).

* ``plugins_toml``: arbitrary text as a plugins.toml file, merged over the
  shipped default, then every transport's defaults validated the way a
  socket validates them (``Registry.transport_defaults``: unknown options,
  bad values, ``tls_config`` tables).  Allowed: ``ConfigError``.
* ``plugins_toml_struct``: the input builds an arbitrary *structure* (tables,
  arrays, strings, numbers, booleans, nested), written out as valid TOML,
  so that the schema checks rather than the TOML parser see most inputs.
  Allowed: ``ConfigError``.  A file that loads must leave a well-formed
  :class:`PluginConfig` (lists of strings, tables of strings).
"""

from __future__ import annotations

import io
import json
import math
import types
from typing import Any

from purenng.core.config import PluginConfig, _merge_file
from purenng.core.errors import ConfigError
from purenng.core.registry import Registry, get_registry

from ._harness import Input, target

_MODULES = ("purenng.core.config", "purenng.core.registry", "purenng.core.options")
_SCHEMES = ("tcp", "ipc", "inproc", "tls+tcp", "ws", "wss")


class MemPath:
    """Enough of a ``pathlib.Path`` for ``_merge_file``: ``open()`` and a name."""

    def __init__(self, data: bytes) -> None:
        self.data = data

    def open(self, mode: str = "rb") -> io.BytesIO:
        return io.BytesIO(self.data)

    def __str__(self) -> str:
        return "<fuzz>/plugins.toml"

    def __fspath__(self) -> str:
        return str(self)


def _check(cfg: PluginConfig) -> object:
    assert all(isinstance(e, str) for e in cfg.disabled)
    assert all(isinstance(e, str) for e in cfg.enabled)
    assert all(isinstance(v, str) for v in cfg.scheme_winners.values())
    assert all(isinstance(v, str) for v in cfg.protocol_winners.values())
    assert cfg.tls_engine is None or (isinstance(cfg.tls_engine, str) and cfg.tls_engine)
    cfg.is_disabled("purenng-foo", "tcp")
    host = types.SimpleNamespace(config=cfg)
    reg = get_registry()
    checked = 0
    for scheme in _SCHEMES:
        transport = reg.transport(scheme)
        # The same code a socket runs for its dialers and listeners.
        Registry.transport_defaults(host, transport)  # type: ignore[arg-type]
        checked += 1
    return (
        checked,
        bool(cfg.disabled),
        bool(cfg.enabled),
        bool(cfg.scheme_winners),
        bool(cfg.protocol_winners),
        tuple(sorted(cfg.transport_defaults)),
        cfg.tls_engine is not None,
    )


def _load(text: bytes) -> PluginConfig:
    cfg = PluginConfig()
    _merge_file(cfg, MemPath(text))  # type: ignore[arg-type]
    return cfg


_SEEDS = (
    b'[plugins]\ndisabled = ["purenng-foo", "Purenng_Bar:baz"]\nenabled = ["x"]\n'
    b'[schemes]\ntcp = "purenng"\n[protocols]\nreq0 = "purenng"\n'
    b'[transport.tcp]\ntcp_nodelay = false\n[tls]\nengine = "ssl"\n',
    b'[transport."tls+tcp"]\ntls_handshake_timeout = 5.0\n'
    b'[transport."tls+tcp".tls_config]\nauth_mode = "none"\nmin_version = "1.3"\n',
    b"[transport.ws]\nws_recv_frame_max = 1024\n[transport.ipc]\nipc_permissions = 0o600\n",
    b"[transport]\ntcp = 1\n",
    b'[tls]\nengine = ""\n',
    b"[plugins]\ndisabled = [1, 2]\n",
)


@target(
    "plugins_toml",
    allowed=(ConfigError,),
    modules=_MODULES,
    seeds=_SEEDS,
    weight=1.5,
    max_len=2048,
    dictionary=(
        b"[plugins]",
        b"[schemes]",
        b"[protocols]",
        b"[transport.tcp]",
        b'[transport."tls+tcp".tls_config]',
        b"[tls]",
        b"disabled = ",
        b"enabled = ",
        b"engine = ",
        b"tcp_nodelay = ",
        b"tls_config = ",
        b"ws_recv_frame_max = ",
        b'"purenng"',
        b"= true\n",
        b"= 1e400\n",
        b"= nan\n",
        b"= -0\n",
        b"= 1979-05-27T07:32:00Z\n",
        b"= {}\n",
        b"= []\n",
    ),
)
def plugins_toml(data: bytes) -> object:
    """The bytes of a plugins.toml file."""
    return _check(_load(data))


# ---------------------------------------------------------------- structures

_KEYS = (
    "plugins",
    "schemes",
    "protocols",
    "transport",
    "tls",
    "disabled",
    "enabled",
    "engine",
    "tcp",
    "tls+tcp",
    "ws",
    "ipc",
    "tcp_nodelay",
    "tcp_keepalive",
    "tls_config",
    "tls_handshake_timeout",
    "ws_recv_frame_max",
    "ipc_permissions",
    "recv_max_size",
    "auth_mode",
    "ca_file",
    "cert_data",
    "min_version",
    "req0",
    "",
)
_STRINGS = ("purenng", "ssl", "", "none", "1.2", "purenng-foo:tcp", "/nonexistent", "\u00e9\x7f")


def _structure(inp: Input, depth: int = 0) -> Any:
    kind = inp.u8() % (9 if depth < 3 else 6)
    if kind == 0:
        return inp.pick(_STRINGS)
    if kind == 1:
        return inp.text(24)
    if kind == 2:
        return inp.pick((0, 1, -1, 10**18, -(2**63), 2**63 - 1, 1 << 20, 0o600))
    if kind == 3:
        return inp.pick((0.0, -0.5, 1e300, math.inf, -math.inf, math.nan, 10.0))
    if kind == 4:
        return inp.flag()
    if kind == 5:
        return inp.u32() - (1 << 31)
    if kind in (6, 7):
        return [_structure(inp, depth + 1) for _ in range(inp.u8() % 4)]
    return {inp.pick(_KEYS): _structure(inp, depth + 1) for _ in range(inp.u8() % 5)}


def _toml_key(k: str) -> str:
    return json.dumps(k, ensure_ascii=False)


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=True)
    if isinstance(v, list):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    return "{" + ", ".join(f"{_toml_key(k)} = {_toml_value(x)}" for k, x in v.items()) + "}"


def to_toml(doc: dict[str, Any]) -> bytes:
    """``doc`` as TOML text (top-level keys as inline values: any shape stays valid)."""
    return "".join(f"{_toml_key(k)} = {_toml_value(v)}\n" for k, v in doc.items()).encode()


@target(
    "plugins_toml_struct",
    allowed=(ConfigError,),
    modules=_MODULES,
    seeds=(b"\x08\x04\x00\x08\x02\x0d\x00\x06", b"\x08\x01\x03\x08\x01\x0e\x08\x01\x13\x00\x01"),
    weight=1.2,
    max_len=512,
)
def plugins_toml_struct(data: bytes) -> object:
    """A structure built from the input, written as TOML."""
    inp = Input(data)
    doc: dict[str, Any] = {}
    for _ in range(1 + inp.u8() % 4):
        doc[inp.pick(_KEYS[:5] + _KEYS[5:8])] = _structure(inp)
    return _check(_load(to_toml(doc)))
