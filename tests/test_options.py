"""Socket options: validation, attribute access, transport options by prefix.

Every option in :data:`SOCKET_OPTIONS` must refuse wrong types and ranges
with a :class:`BadOption` naming it, both as a constructor keyword and as an
attribute assignment, and keep its previous value when refused.  Transport
options (``tcp_nodelay``) are found through their prefix and reach the
endpoints and the OS socket.
"""

from __future__ import annotations

import math
import socket
import threading
from typing import TYPE_CHECKING, Any

import pytest

import purenng
from purenng.core.errors import BadOption
from purenng.core.options import SOCKET_OPTIONS

if TYPE_CHECKING:
    from collections.abc import Iterator

DURATION_BAD = ["1", b"1", True, -0.001, -1, math.nan, [1], object()]
STRICT_DURATION_BAD = [None, math.inf, *DURATION_BAD]
INT_BAD = [-1, 1.5, 2.0, True, False, "10", None, b"\x01"]

#: option -> (bad values, good values with what reading them back gives)
CASES: dict[str, tuple[list[Any], list[tuple[Any, Any]]]] = {
    "recv_timeout": (
        DURATION_BAD,
        [(None, None), (0, 0.0), (0.5, 0.5), (3, 3.0), (math.inf, None)],
    ),
    "send_timeout": (DURATION_BAD, [(None, None), (0, 0.0), (2.5, 2.5), (math.inf, None)]),
    "recv_max_size": (INT_BAD, [(0, 0), (1, 1), (1 << 40, 1 << 40)]),
    "recv_buffer": ([*INT_BAD, 8193, 1 << 20], [(0, 0), (1, 1), (8192, 8192)]),
    "send_buffer": ([*INT_BAD, 8193], [(0, 0), (8192, 8192)]),
    "reconnect_time_min": (STRICT_DURATION_BAD, [(0, 0.0), (0.05, 0.05), (2, 2.0)]),
    "reconnect_time_max": (STRICT_DURATION_BAD, [(0, 0.0), (60, 60.0)]),
    "name": ([1, None, b"x", ["x"]], [("", ""), ("worker-1", "worker-1")]),
    "linger": (STRICT_DURATION_BAD, [(0, 0.0), (0.5, 0.5), (30, 30.0)]),
    "recv_idle_timeout": (
        [*DURATION_BAD, 0, 0.0001],
        [(None, None), (0.001, 0.001), (15, 15.0), (math.inf, None)],
    ),
    "max_pipes": (INT_BAD, [(0, 0), (1, 1), (10_000, 10_000)]),
    "sp_handshake_timeout": ([*STRICT_DURATION_BAD, 0], [(0.5, 0.5), (10, 10.0)]),
}

BAD = [(name, v) for name, (bad, _) in CASES.items() for v in bad]
GOOD = [(name, v, back) for name, (_, good) in CASES.items() for v, back in good]


def _id(v: Any) -> str:
    return type(v).__name__ + ":" + repr(v)[:20]


@pytest.fixture
def sock() -> Iterator[purenng.Socket]:
    s = purenng.Pair0()
    try:
        yield s
    finally:
        s.close()


def test_every_socket_option_has_cases() -> None:
    # A new socket option must come with validation cases here.
    assert set(CASES) == set(SOCKET_OPTIONS)


@pytest.mark.parametrize(("name", "value"), BAD, ids=[f"{n}-{_id(v)}" for n, v in BAD])
def test_bad_value_in_constructor(name: str, value: Any) -> None:
    with pytest.raises(BadOption) as info:
        purenng.Pair0(**{name: value})
    assert repr(name) in str(info.value)


@pytest.mark.parametrize(("name", "value"), BAD, ids=[f"{n}-{_id(v)}" for n, v in BAD])
def test_bad_value_as_attribute_keeps_old(sock: purenng.Socket, name: str, value: Any) -> None:
    before = getattr(sock, name)
    with pytest.raises(BadOption) as info:
        setattr(sock, name, value)
    assert repr(name) in str(info.value)
    assert getattr(sock, name) == before


@pytest.mark.parametrize(("name", "value", "back"), GOOD, ids=[f"{n}-{_id(v)}" for n, v, _ in GOOD])
def test_good_value(sock: purenng.Socket, name: str, value: Any, back: Any) -> None:
    setattr(sock, name, value)
    got = getattr(sock, name)
    assert got == back
    assert type(got) is type(back)
    with purenng.Pair0(**{name: value}) as s2:
        assert getattr(s2, name) == back


def test_defaults(sock: purenng.Socket) -> None:
    for name, spec in SOCKET_OPTIONS.items():
        if name != "recv_buffer":  # a protocol may pick its own default
            assert getattr(sock, name) == spec.default, name


@pytest.mark.parametrize("name", ["bogus", "recvtimeout", "Recv_Timeout", "_recv_timeout"])
def test_unknown_option(name: str) -> None:
    with pytest.raises(BadOption, match="has no option"):
        purenng.Pair0(**{name: 1})  # type: ignore[arg-type]


def test_unknown_attribute(sock: purenng.Socket) -> None:
    with pytest.raises(BadOption, match="has no option"):
        sock.bogus = 1  # type: ignore[attr-defined]
    with pytest.raises(AttributeError):
        sock.bogus  # type: ignore[attr-defined]  # noqa: B018


def test_recv_timeout_attribute_takes_effect(sock: purenng.Socket) -> None:
    sock.recv_timeout = 0.05
    assert sock.recv_timeout == 0.05
    with pytest.raises(purenng.Timeout):
        sock.recv()


def test_options_are_per_socket() -> None:
    with purenng.Pair0(recv_timeout=1) as a, purenng.Pair0() as b:
        assert a.recv_timeout == 1.0
        assert b.recv_timeout is None


# ---------------------------------------------------------------- transport options


def test_tcp_option_by_prefix(sock: purenng.Socket) -> None:
    assert sock.options.get("tcp_nodelay", True) is True
    sock.tcp_nodelay = False
    assert sock.tcp_nodelay is False
    sock.tcp_keepalive = True
    assert sock.tcp_keepalive is True
    with purenng.Pair0(tcp_nodelay=False, tcp_keepalive=True) as s:
        assert s.tcp_nodelay is False
        assert s.tcp_keepalive is True


@pytest.mark.parametrize("value", [0, 1, "no", None])
def test_tcp_option_bad_value(sock: purenng.Socket, value: Any) -> None:
    with pytest.raises(BadOption, match="'tcp_nodelay'"):
        sock.tcp_nodelay = value
    with pytest.raises(BadOption, match="'tcp_keepalive'"):
        purenng.Pair0(tcp_keepalive=value)


@pytest.mark.parametrize("name", ["tcp_foo", "tcp_", "nosuchtransport_opt", "ipc_nodelay"])
def test_unknown_prefixed_option(name: str) -> None:
    with pytest.raises(BadOption, match="has no option"):
        purenng.Pair0(**{name: True})  # type: ignore[arg-type]


def test_socket_tcp_option_reaches_endpoints_and_os() -> None:
    added = threading.Event()
    with purenng.Pair0(tcp_nodelay=False, recv_timeout=5) as a:
        a.on_pipe_event(lambda p, e: added.set(), purenng.PipeEvent.ADD_POST)
        lst = a.listen("tcp://127.0.0.1:0")
        assert lst.options["tcp_nodelay"] is False
        with purenng.Pair0(dial=lst.url) as b:
            assert b.dialers[0].options["tcp_nodelay"] is True
            assert added.wait(5)
            (pipe,) = a.pipes
            s = pipe.extra("socket")  # type: ignore[attr-defined]
            assert s.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 0
            (bpipe,) = b.pipes
            bs = bpipe.extra("socket")  # type: ignore[attr-defined]
            assert bs.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0


def test_endpoint_option_overrides(sock: purenng.Socket) -> None:
    lst = sock.listen("tcp://127.0.0.1:0", recv_max_size=100, tcp_nodelay=False)
    assert lst.options["recv_max_size"] == 100
    assert lst.options["tcp_nodelay"] is False
    assert sock.recv_max_size == 1 << 20  # the socket's own value is untouched


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"recv_max_size": -1}, "'recv_max_size'"),
        ({"reconnect_time_min": None}, "'reconnect_time_min'"),
        ({"tcp_nodelay": "yes"}, "'tcp_nodelay'"),
        ({"recv_timeout": 1.0}, "unknown option 'recv_timeout'"),
        ({"tcp_foo": 1}, "unknown option 'tcp_foo'"),
    ],
)
def test_bad_endpoint_options(sock: purenng.Socket, kw: dict[str, Any], match: str) -> None:
    with pytest.raises(BadOption, match=match):
        sock.dial("tcp://127.0.0.1:1", block=False, **kw)
    with pytest.raises(BadOption, match=match):
        sock.listen("tcp://127.0.0.1:0", **kw)
    assert sock.dialers == []
    assert sock.listeners == []


def test_socket_whose_constructor_failed_leaves_nothing_to_close() -> None:
    """A socket refused for a bad option is not half-closed later by the GC."""
    import gc
    import threading

    from purenng.core.loop import background_loop

    loop = background_loop()
    errors: list[dict[str, object]] = []
    previous = loop.get_exception_handler()
    loop.set_exception_handler(lambda _loop, context: errors.append(context))
    try:
        with pytest.raises(purenng.BadOption):
            purenng.Pair0(recv_timeout="x")
        gc.collect()
        flushed = threading.Event()
        loop.call_soon_threadsafe(flushed.set)
        assert flushed.wait(5)
    finally:
        loop.set_exception_handler(previous)
    assert errors == []
