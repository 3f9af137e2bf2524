"""Target for pynng-compatible option values (:mod:`purenng.compat.pynng`).

``compat_options``: the input picks a compat object (a socket of each kind,
a dialer, a listener), an attribute (every option pynng has, read-only ones,
unavailable ones and unknown names) and a value (whole and fractional
numbers, huge and negative ones, inf and nan, strings, bytes, None, bools,
containers, objects), and sets it.  Allowed, as the module documents and
pynng does: ``ValueError`` (``InvalidOperation`` is one), ``TypeError``
(pynng's ``int(value)`` on a non-number), ``NotSupported``, ``ReadOnly``
and ``AttributeError`` for a name the object does not have.  After a set
that succeeded, reading the option back must work, and the socket must
still send and receive over its inproc pair.
Also: the compat ``TLSConfig`` constructor with arbitrary arguments, then
its conversion to purenng's (allowed: ``ValueError``, ``TypeError`` and
pynng's exceptions, ``NNGException`` and its subclasses, e.g. ``NoEntry``
for a missing CA file).
"""

from __future__ import annotations

import atexit
import itertools
import math
from typing import Any

import purenng.compat.pynng as pynng

from ._harness import Input, target

_ATTRS = (
    "recv_timeout",
    "send_timeout",
    "recv_buffer_size",
    "send_buffer_size",
    "recv_max_size",
    "reconnect_time_min",
    "reconnect_time_max",
    "ttl_max",
    "name",
    "tcp_nodelay",
    "tcp_keepalive",
    "raw",
    "protocol",
    "protocol_name",
    "peer",
    "peer_name",
    "recv_fd",
    "send_fd",
    "tls_config",
    "resend_time",
    "survey_time",
    "polyamorous",
    "no_such_option",
)
_VALUES: tuple[Any, ...] = (
    0,
    1,
    -1,
    100,
    1.0,
    1.5,
    -0.5,
    10**400,
    -(10**400),
    2**63,
    2**31,
    math.inf,
    -math.inf,
    math.nan,
    1e308,
    True,
    False,
    None,
    "",
    "100",
    "abc",
    "\udcff",
    b"100",
    [],
    {},
    (1,),
    object(),
    1 + 2j,
)
_state: dict[str, Any] = {}
_names = itertools.count()


def _objects() -> list[Any]:
    if "objs" in _state:
        objs: list[Any] = _state["objs"]
        return objs
    objs = []
    for cls in (pynng.Pair0, pynng.Pair1, pynng.Req0, pynng.Rep0, pynng.Surveyor0, pynng.Sub0):
        objs.append(cls())
    url = f"inproc://fuzz-compat-{next(_names)}"
    a, b = pynng.Pair0(recv_timeout=2000, send_timeout=2000), pynng.Pair0(recv_timeout=2000)
    lst = a.listen(url)
    dia = b.dial(url, block=True)
    objs += [a, b, lst, dia]
    _state["pair"] = (a, b)
    _state["objs"] = objs
    atexit.register(shutdown)
    return objs


def shutdown() -> None:
    """Close the compat sockets kept for the run; idempotent."""
    objs = _state.pop("objs", [])
    _state.pop("pair", None)
    for o in reversed(objs):
        o.close()


def _value(inp: Input) -> Any:
    c = inp.u8() % 4
    if c == 0:
        return inp.u32() - (1 << 31)
    if c == 1:
        return inp.text(8)
    return inp.pick(_VALUES)


_ALLOWED = (ValueError, TypeError, pynng.NotSupported, pynng.ReadOnly, AttributeError)


@target(
    "compat_options",
    allowed=(),
    modules=("purenng.compat.pynng", "purenng.core.options"),
    seeds=(b"\x00\x00\x02\x07", b"\x02\x05\x02\x0c", b"\x08\x08\x01", b"\x0a\x00\x00\x05"),
    weight=0.1,
    max_len=128,
)
def compat_options(data: bytes) -> object:
    """(object, attribute, value) triples; the last byte 0xff+ picks the TLSConfig check."""
    objs = _objects()
    inp = Input(data)
    results = []
    for _ in range(1 + inp.u8() % 3):
        obj = objs[inp.u8() % len(objs)]
        attr = inp.pick(_ATTRS)
        value = _value(inp)
        if isinstance(obj, pynng.Socket):
            # Put the option back afterwards: one input must not change the next.
            try:
                old = getattr(obj, attr)
            except Exception:
                old = None
        else:
            old = None
        try:
            setattr(obj, attr, value)
        except _ALLOWED as exc:
            results.append(type(exc).__name__)
            continue
        getattr(obj, attr)
        results.append("set")
        if old is not None:
            try:
                setattr(obj, attr, old)
            except _ALLOWED:
                pass
    a, b = _state["pair"]
    a.send(b"ping")
    assert b.recv() == b"ping"
    _tls(inp)
    return tuple(results)


def _tls(inp: Input) -> None:
    if not inp.remaining():
        return
    kw: dict[str, Any] = {}
    for name in ("server_name", "ca_string", "own_key_string", "own_cert_string", "passwd"):
        if inp.flag():
            kw[name] = _value(inp)
    for name in ("auth_mode", "ca_files", "cert_key_file"):
        if inp.flag():
            kw[name] = _value(inp)
    mode = _value(inp) if inp.flag() else inp.u8() % 2
    try:
        cfg = pynng.TLSConfig(mode, **kw)
        cfg._to_purenng()
    except (ValueError, TypeError, pynng.NNGException):
        pass
