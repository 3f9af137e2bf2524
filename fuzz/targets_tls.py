"""Target for :class:`purenng.TLSConfig`: arbitrary cert/key/CA data, modes and names.

``tls_config``: every field is picked by the input from valid values (a
real CA, server certificate and key made once per process), mutated
copies of them (bytes of the input spliced in), wrong types and odd
strings; files are real temporary files holding such data, missing
paths, a directory.  The config is built, then :meth:`TLSConfig.check`
loads it for the side the input picks, and the option validator
(:func:`tls_config_value`) gets the same fields as a plugins.toml table.
Allowed: ``BadOption`` (the documented error, naming the field), and
``PluginError`` from :meth:`TLSConfig.check` when ``engine`` names no
installed engine (the registry's documented error; the option validator
turns it into ``BadOption``).
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from typing import Any

from purenng.core.errors import BadOption, PluginError
from purenng.tls_config import TLSConfig, tls_config_value

from ._harness import Input, target

_state: dict[str, Any] = {}
_FIELDS_DATA = ("cert_data", "key_data", "ca_data")
_FIELDS_FILE = ("cert_file", "key_file", "ca_file")


def _material() -> dict[str, Any]:
    if _state:
        return _state
    from purenng.certs import make_dev_certs

    certs = make_dev_certs()
    d = tempfile.mkdtemp(prefix="purenng-fuzz-tls-")
    atexit.register(shutil.rmtree, d, True)
    pems = {
        "cert": certs.server.cert_pem,
        "key": certs.server.key_pem,
        "ca": certs.ca.cert_pem,
        "both": certs.server.cert_pem + certs.server.key_pem,
        "client_key": certs.client.key_pem,
    }
    files = {}
    for name, pem in pems.items():
        path = os.path.join(d, name + ".pem")
        with open(path, "wb") as f:
            f.write(pem)
        files[name] = path
    _state.update(pems=pems, files=files, dir=d, scratch=os.path.join(d, "scratch.pem"))
    return _state


def _mutated(inp: Input, pem: bytes) -> bytes:
    """``pem`` with a piece of the input written over it at a position the input picks."""
    at = inp.u16() % (len(pem) + 1)
    piece = inp.blob(64)
    how = inp.u8() % 4
    if how == 0:
        return pem[:at] + piece + pem[at + len(piece) :]
    if how == 1:
        return pem[:at] + piece
    if how == 2:
        return pem[:at] + piece + pem[at:]
    return piece + pem[at:]


def _value(inp: Input, field: str, m: dict[str, Any]) -> Any:
    pems: dict[str, bytes] = m["pems"]
    kind = field.split("_")[0]
    pem = pems.get(kind, pems["cert"])
    c = inp.u8() % 12
    if c == 0:
        return None
    if c == 1:
        return pem
    if c == 2:
        return pem.decode()
    if c == 3:
        return _mutated(inp, pem)
    if c == 4:
        return _mutated(inp, pem).decode("latin-1")
    if c == 5:
        return inp.blob()
    if c == 6:
        return pems[inp.pick(sorted(pems))]
    if c == 7:
        return inp.pick((0, 1.5, [], {}, b"", "", object(), True))
    if c == 8:
        return inp.text()
    if c == 9:
        return bytearray(pem)
    if c == 10:
        return memoryview(_mutated(inp, pem))
    return b"\x30" + inp.blob()


def _path(inp: Input, field: str, m: dict[str, Any]) -> Any:
    files: dict[str, str] = m["files"]
    kind = field.split("_")[0]
    c = inp.u8() % 8
    if c == 0:
        return None
    if c == 1:
        return files.get(kind, files["cert"])
    if c == 2:
        return files[inp.pick(sorted(files))]
    if c == 3:
        return m["dir"]
    if c == 4:
        return os.path.join(m["dir"], "missing.pem")
    if c == 5:
        pem = m["pems"].get(kind, m["pems"]["cert"])
        with open(m["scratch"], "wb") as f:
            f.write(_mutated(inp, pem))
        return m["scratch"]
    if c == 6:
        return inp.pick(("", "\x00", b"/etc/hostname", 5, "/dev/null"))
    return inp.text()


_TEXTS = (None, "none", "optional", "required", "REQUIRED", "", "1.2", "1.3", "1.1", "ssl", "nope")


def _text(inp: Input) -> Any:
    c = inp.u8() % 4
    if c == 0:
        return inp.pick(_TEXTS)
    if c == 1:
        return inp.text(32)
    if c == 2:
        return inp.pick((1, 1.2, b"1.2", ["1.2"], {}, True))
    return None


@target(
    "tls_config",
    allowed=(BadOption, PluginError),
    modules=("purenng.tls_config",),
    seeds=(
        b"\x00" * 16,
        bytes([1, 1, 0, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 1, 2]),
        bytes([0, 0, 0, 1, 0, 0, 0, 0, 3, 0, 0, 0, 0, 0, 1, 0, 0]),
        bytes([0, 0, 0, 0, 0, 3, 0, 10, 8, 5, 65, 66, 67, 68, 69, 0, 0, 0, 0, 0, 0, 0, 0]),
        bytes([0, 0, 0, 6, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]),
    ),
    weight=0.01,
    max_len=512,
    dictionary=(b"-----BEGIN CERTIFICATE-----", b"-----END CERTIFICATE-----", b"PRIVATE KEY-----"),
)
def tls_config(data: bytes) -> object:
    """Field choices, then the side to check, then whether to go through the option validator."""
    m = _material()
    inp = Input(data)
    kw: dict[str, Any] = {}
    for f in _FIELDS_FILE:
        v = _path(inp, f, m)
        if v is not None:
            kw[f] = v
    for f in _FIELDS_DATA:
        v = _value(inp, f, m)
        if v is not None:
            kw[f] = v
    for f in ("auth_mode", "server_name", "min_version", "max_version", "engine"):
        v = _text(inp)
        if v is not None:
            kw[f] = v
    if inp.flag():
        kw["key_password"] = inp.pick((None, "", "secret", b"x" * 2000, 5, "\udcff"))
    side = inp.pick((None, True, False))
    if inp.flag():
        try:
            cfg = tls_config_value(kw)
        except (TypeError, ValueError) as exc:  # the option validator's contract
            raise BadOption(str(exc)) from None
        assert cfg is not None
        return ("validator", cfg.has_certificate)
    cfg = TLSConfig(**kw)
    repr(cfg)
    cfg.mode_for(True)
    cfg.server_hostname(inp.text(16))
    cfg.check(server_side=side)
    return ("checked", side, cfg.has_certificate, cfg.mode_for(False))
