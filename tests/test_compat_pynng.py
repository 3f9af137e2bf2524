"""purenng.compat.pynng: pynng's surface, units, errors and behaviour.

pynng itself is never imported into the test process (see
tests/interop/nngpeer.py for why): where a test compares against the real
pynng it asks a child process for pynng's surface as JSON.
"""

from __future__ import annotations

import asyncio
import importlib.util
import inspect
import json
import os
import socket
import subprocess
import sys
import threading
from typing import TYPE_CHECKING, Any

import pytest

import purenng
import purenng.compat.pynng as pynng
from support.peers import require_peer
from support.waiting import wait_for

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

#: Generous bound for every wait; only there to stop hangs.
T = 10.0


def need_protocol(name: str) -> None:
    """Load a purenng protocol plugin; a missing or broken one is a failure."""
    from purenng.core.registry import get_registry

    try:
        get_registry().protocol(name)
    except purenng.PluginError as exc:
        pytest.fail(f"purenng protocol {name} is not available: {exc}")


@pytest.fixture
def tcp() -> str:
    return "tcp://127.0.0.1:0"


_counter = iter(range(1_000_000))


@pytest.fixture
def inproc(request: pytest.FixtureRequest) -> str:
    return f"inproc://compat-{request.node.name}-{next(_counter)}"


def listen_url(sock: pynng.Socket) -> str:
    return sock.listeners[0].url


@pytest.fixture
def pair(tcp: str) -> Iterator[tuple[pynng.Pair0, pynng.Pair0]]:
    with (
        pynng.Pair0(listen=tcp, recv_timeout=2000) as s0,
        pynng.Pair0(dial=listen_url(s0), recv_timeout=2000) as s1,
    ):
        wait_for(lambda: len(s0.pipes) == 1)
        yield s0, s1


# ---------------------------------------------------------------- surface

_DUMP = r"""
import inspect, json, pynng
out = {"names": sorted(n for n in dir(pynng) if not n.startswith("_")), "classes": {},
       "errno": {c.__name__: n for n, c in pynng.exceptions.EXCEPTION_MAP.items()},
       "exceptions": sorted(n for n in dir(pynng.exceptions) if not n.startswith("_"))}
for name in ("Socket", "Pair0", "Pair1", "Pub0", "Sub0", "Req0", "Rep0", "Push0", "Pull0",
             "Surveyor0", "Respondent0", "Bus0", "Context", "Dialer", "Listener", "Pipe",
             "Message", "TLSConfig"):
    cls = getattr(pynng, name)
    members = {}
    for attr in dir(cls):
        if attr.startswith("_") and attr not in ("__init__", "_buffer"):
            continue
        value = inspect.getattr_static(cls, attr)
        if inspect.isfunction(value):
            members[attr] = [[p.name, p.kind.name, repr(p.default)]
                             for p in inspect.signature(value).parameters.values()]
        else:
            members[attr] = None
    out["classes"][name] = members
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def real_surface() -> dict[str, Any]:
    require_peer("pynng")
    done = subprocess.run(
        [sys.executable, "-c", _DUMP], capture_output=True, text=True, timeout=60, check=True
    )
    surface: dict[str, Any] = json.loads(done.stdout)
    return surface


#: pynng names purenng cannot offer: the cffi handles and pynng's private modules.
NOT_OFFERED = {"ffi", "lib", "options"}
#: Made by the library only; pynng's constructors take NNG handles.
NO_PUBLIC_CONSTRUCTOR = {"Pipe", "Dialer", "Listener", "Context"}


def test_every_public_pynng_name_exists(real_surface: dict[str, Any]) -> None:
    missing = [n for n in real_surface["names"] if n not in NOT_OFFERED and not hasattr(pynng, n)]
    assert missing == []
    assert sorted(pynng.__all__) == pynng.__all__


def test_every_public_member_exists_with_pynng_signature(real_surface: dict[str, Any]) -> None:
    problems = []
    for cls_name, members in real_surface["classes"].items():
        cls = getattr(pynng, cls_name)
        for attr, params in members.items():
            if attr == "__init__" and cls_name in NO_PUBLIC_CONSTRUCTOR:
                continue
            if not hasattr(cls, attr) and attr not in ("pipe", "dialer", "listener", "context"):
                problems.append(f"{cls_name}.{attr} missing")
                continue
            if params is None:
                continue
            ours = inspect.getattr_static(cls, attr)
            sig = inspect.signature(ours).parameters
            for name, kind, default in params:
                if kind == "VAR_KEYWORD":
                    continue
                p = sig.get(name)
                if p is None:
                    problems.append(f"{cls_name}.{attr}: no parameter {name}")
                elif p.kind.name != kind:
                    problems.append(f"{cls_name}.{attr}({name}): {p.kind.name}, pynng {kind}")
                elif default != "<class 'inspect._empty'>" and repr(p.default) != default:
                    problems.append(f"{cls_name}.{attr}({name}) default {p.default!r}")
    assert problems == [], "\n".join(problems)


def test_error_numbers_match_pynng(real_surface: dict[str, Any]) -> None:
    ours = {c.__name__: n for n, c in pynng.EXCEPTION_MAP.items()}
    assert ours == real_surface["errno"]
    for name in real_surface["exceptions"]:
        if name in ("ffi", "nng"):
            continue
        assert hasattr(pynng.exceptions, name), name


# ---------------------------------------------------------------- exceptions

DUAL = {
    "Timeout": (purenng.Timeout, TimeoutError),
    "TryAgain": (purenng.TryAgain, BlockingIOError),
    "Closed": (purenng.Closed,),
    "ConnectionRefused": (purenng.ConnectionRefused, ConnectionRefusedError),
    "ConnectionReset": (purenng.ConnectionReset, ConnectionResetError),
    "AddressInUse": (purenng.AddressInUse,),
    "AddressInvalid": (purenng.BadAddress,),
    "InvalidOperation": (purenng.BadOption,),
    "BadState": (purenng.BadState,),
    "ProtocolError": (purenng.ProtocolError,),
    "MessageTooLarge": (purenng.MessageTooLarge,),
    "NotSupported": (purenng.NotSupported,),
}


def test_exception_hierarchy() -> None:
    for number, cls in pynng.EXCEPTION_MAP.items():
        assert issubclass(cls, pynng.NNGException)
        assert issubclass(cls, purenng.Error)
        assert getattr(pynng, cls.__name__) is cls
        assert getattr(pynng.exceptions, cls.__name__) is cls
        exc = cls("boom", number)
        assert exc.errno == number
        assert str(exc) == "boom"
        for base in DUAL.get(cls.__name__, ()):
            assert issubclass(cls, base), (cls, base)
    assert set(DUAL) <= {c.__name__ for c in pynng.EXCEPTION_MAP.values()}
    assert not issubclass(pynng.MessageStateError, pynng.NNGException)


def test_check_err() -> None:
    pynng.check_err(0)
    with pytest.raises(pynng.Timeout) as info:
        pynng.check_err(5)
    assert (info.value.errno, str(info.value)) == (5, "Timed out")
    with pytest.raises(pynng.NNGException):
        pynng.check_err(12345)


def test_submodules_import_by_name() -> None:
    exc_mod = importlib.import_module("purenng.compat.pynng.exceptions")
    addr_mod = importlib.import_module("purenng.compat.pynng.sockaddr")
    assert exc_mod.Timeout is pynng.Timeout
    assert addr_mod.InAddr is pynng.sockaddr.InAddr
    assert pynng.nng.Pair0 is pynng.Pair0
    assert pynng.tls.TLSConfig is pynng.TLSConfig


def test_install_answers_to_a_module_name() -> None:
    name = "pynng_compat_alias_for_test"
    try:
        assert pynng.install(name) is pynng
        alias = __import__(name)
        exc_mod = __import__(f"{name}.exceptions", fromlist=["Timeout"])
        assert alias.Pair0 is pynng.Pair0
        assert exc_mod.Timeout is pynng.Timeout
    finally:
        for key in [k for k in sys.modules if k.split(".")[0] == name]:
            del sys.modules[key]


# ---------------------------------------------------------------- options, units


def test_timeouts_are_milliseconds() -> None:
    with pynng.Pair0(recv_timeout=250, send_timeout=1500) as s:
        assert (s.recv_timeout, s.send_timeout) == (250, 1500)
        assert s.socket.recv_timeout == 0.25
        assert s.socket.send_timeout == 1.5
        s.recv_timeout = -7
        assert s.recv_timeout == -1
        assert s.socket.recv_timeout is None
        s.send_timeout = 3.0  # a float equal to an int is accepted, as pynng
        assert s.send_timeout == 3
        with pytest.raises(ValueError, match="Expected int"):
            s.recv_timeout = 1.5
        # A default socket waits forever: -1, as pynng reports it.
        assert pynng.Pair0().recv_timeout == -1


def test_a_timeout_expires_after_its_milliseconds() -> None:
    # In seconds this would hang for 100 s: the test's own timeout catches it.
    with pynng.Pair0(recv_timeout=100) as s, pytest.raises(pynng.Timeout) as info:
        s.recv()
    assert info.value.errno == 5
    assert isinstance(info.value, purenng.Timeout)


def test_option_names_and_units() -> None:
    with pynng.Pair0(
        recv_buffer_size=5,
        send_buffer_size=7,
        recv_max_size=1000,
        reconnect_time_min=250,
        reconnect_time_max=2000,
        name="worker",
    ) as s:
        core = s.socket
        assert (core.recv_buffer, core.send_buffer, core.recv_max_size) == (5, 7, 1000)
        assert (core.reconnect_time_min, core.reconnect_time_max) == (0.25, 2.0)
        assert (s.recv_buffer_size, s.send_buffer_size, s.recv_max_size) == (5, 7, 1000)
        assert (s.reconnect_time_min, s.reconnect_time_max) == (250, 2000)
        assert s.name == "worker"
        s.recv_buffer_size = 3
        assert core.recv_buffer == 3
        assert (s.protocol, s.peer, s.protocol_name, s.peer_name) == (0x10, 0x10, "pair", "pair")
        assert s.raw is False
        assert s.tcp_nodelay is True
        s.tcp_nodelay = False
        assert s.tcp_nodelay is False
    with pynng.Push0() as push:
        assert (push.protocol, push.peer, push.protocol_name, push.peer_name) == (
            0x50,
            0x51,
            "push",
            "pull",
        )
        assert push.name == str(push.socket.id)  # NNG's default name


def test_option_errors() -> None:
    with pynng.Pair0() as s:
        with pytest.raises(pynng.ReadOnly):
            s.protocol = 3
        with pytest.raises(pynng.ReadOnly):
            s.raw = True
        with pytest.raises(pynng.NotSupported):
            _ = s.ttl_max  # PAIR0 has no TTL, as in NNG
        with pytest.raises(pynng.NotSupported):
            _ = s.recv_fd
        with pytest.raises(pynng.InvalidOperation) as info:
            s.recv_buffer_size = -5
        assert isinstance(info.value, purenng.BadOption)
        with pytest.raises(pynng.WriteOnly):
            _ = s.tls_config
        with pytest.raises(ValueError, match="TLSConfig"):
            s.tls_config = "nope"  # type: ignore[assignment]
        s.user_attribute = 3  # type: ignore[attr-defined]  # plain attributes work, as on pynng
        assert vars(s)["user_attribute"] == 3
    with pytest.raises(pynng.InvalidOperation):
        pynng.Pair0(recv_buffer_size=100_000)
    with pynng.Pair1() as p1:
        assert p1.ttl_max == 8
        p1.ttl_max = 4
        assert isinstance(p1.socket, purenng.Pair1)
        assert p1.socket.ttl_max == 4


def test_constructor_keywords() -> None:
    with pytest.raises(TypeError, match="unexpected keyword"):
        pynng.Pair0(foo=1)
    with pytest.raises(TypeError, match="Try a subclass"):
        pynng.Socket()
    with pynng.Socket(opener="pull0") as s:
        assert s.protocol_name == "pull"
    with pynng.Pair0(async_backend="asyncio") as s:
        assert isinstance(s, pynng.Socket)


def test_tls_config(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="both"):
        pynng.TLSConfig(pynng.TLSConfig.MODE_CLIENT, ca_string="x", ca_files="y")
    with pytest.raises(ValueError, match="must be both set"):
        pynng.TLSConfig(pynng.TLSConfig.MODE_SERVER, own_cert_string="c")
    cfg = pynng.TLSConfig(
        pynng.TLSConfig.MODE_CLIENT,
        server_name="example.test",
        auth_mode=pynng.TLSConfig.AUTH_MODE_OPTIONAL,
    )
    assert (cfg.server_name, cfg.auth_mode) == ("example.test", 1)
    if importlib.util.find_spec("purenng.tls_config") is None:
        with pytest.raises(pynng.NotSupported):
            pynng.Pair0(tls_config=cfg)
        return
    pure = cfg._to_purenng()
    assert (pure.server_name, pure.auth_mode) == ("example.test", "optional")
    # Several CA files become one bundle; a missing one is pynng's NoEntry.
    with pytest.raises(pynng.NoEntry):
        pynng.TLSConfig(0, ca_files=[str(tmp_path / "a"), str(tmp_path / "b")])._to_purenng()


# ---------------------------------------------------------------- messages


def test_send_recv_bytes(pair: tuple[pynng.Pair0, pynng.Pair0]) -> None:
    s0, s1 = pair
    s1.send(b"hello")
    got = s0.recv()
    assert type(got) is bytes
    assert got == b"hello"
    s1.send(bytearray(b"ba"))
    s1.send(memoryview(b"mv"))
    assert (s0.recv(), s0.recv()) == (b"ba", b"mv")
    with pytest.raises(ValueError, match="encode"):
        s1.send("text")


def test_errors_are_translated(pair: tuple[pynng.Pair0, pynng.Pair0]) -> None:
    s0, s1 = pair
    with pytest.raises(pynng.TryAgain) as again:
        s0.recv(block=False)
    assert again.value.errno == 8
    with pynng.Push0() as push, pytest.raises(pynng.NotSupported):
        push.recv()
    with pynng.Pull0() as pull, pytest.raises(pynng.NotSupported):
        pull.send(b"x")
    s1.close()
    with pytest.raises(pynng.Closed) as closed:
        s1.send(b"x")
    assert isinstance(closed.value, purenng.Closed)
    with pytest.raises(pynng.Closed):
        s1.recv()
    with pytest.raises(pynng.Closed):
        s1.listen("tcp://127.0.0.1:0")
    assert s1.dialers == ()
    s1.close()  # idempotent


def test_message_object(pair: tuple[pynng.Pair0, pynng.Pair0]) -> None:
    s0, s1 = pair
    msg = pynng.Message(b"payload")
    assert (msg.bytes, msg.pipe) == (b"payload", None)
    assert msg._buffer is not None
    assert bytes(msg._buffer) == b"payload"
    s1.send_msg(msg)
    assert msg._buffer is None
    with pytest.raises(pynng.MessageStateError):
        s1.send_msg(msg)
    got = s0.recv_msg()
    assert got.bytes == b"payload"
    assert got.pipe is s0.pipes[0]
    with pytest.raises(ValueError, match="pipe must be type Pipe"):
        pynng.Message(b"x", pipe=3)
    with pytest.raises(TypeError):
        pynng.Message("text")
    # A received message's pipe answers back on the same connection.
    assert got.pipe is not None
    got.pipe.send(b"back")
    assert s1.recv() == b"back"


async def test_async_api(pair: tuple[pynng.Pair0, pynng.Pair0]) -> None:
    s0, s1 = pair
    await s1.asend(b"a1")
    assert await s0.arecv() == b"a1"
    await s1.asend_msg(pynng.Message(b"a2"))
    got = await s0.arecv_msg()
    assert got.bytes == b"a2"
    assert got.pipe is s0.pipes[0]
    assert got.pipe is not None
    await got.pipe.asend(b"a3")
    assert await s1.arecv() == b"a3"
    s0.recv_timeout = 50
    with pytest.raises(pynng.Timeout):
        await s0.arecv()


async def test_blocking_calls_work_inside_a_running_loop(tcp: str) -> None:
    # pynng programs dial, send and recv (blocking) from coroutines.
    with pynng.Pair0(listen=tcp, recv_timeout=2000) as s0, pynng.Pair0(recv_timeout=2000) as s1:
        s1.dial(listen_url(s0))
        s1.send(b"sync in async")
        assert s0.recv() == b"sync in async"
        await s0.asend(b"and back")
        assert s1.recv() == b"and back"
        assert s0.socket.loop is not asyncio.get_running_loop()


def test_send_block_false_with_no_peer() -> None:
    with pynng.Pair0() as s, pytest.raises(pynng.TryAgain):
        s.send(b"x", block=False)
    with pynng.Pair0(send_timeout=30) as s, pytest.raises(pynng.Timeout):
        s.send(b"x")


# ---------------------------------------------------------------- endpoints


def test_dialers_and_listeners(tcp: str) -> None:
    with pynng.Pair0() as s:
        assert (s.dialers, s.listeners) == ((), ())
        lst = s.listen(tcp)
        assert s.listeners == (lst,)
        assert isinstance(lst, pynng.Listener)
        assert lst.socket is s
        assert lst.url.startswith("tcp://127.0.0.1:")
        assert not lst.url.endswith(":0")
        port = socket.ntohs(lst.local_address.port)
        assert lst.url.endswith(f":{port}")
        d = s.dial("tcp://127.0.0.1:1", block=False)
        assert s.dialers == (d,)
        assert d.url == "tcp://127.0.0.1:1"
        assert d.reconnect_time_min == 100  # purenng's default, in ms
        d.reconnect_time_min = 50
        assert d.dialer.options["reconnect_time_min"] == 0.05
        d.close()
        assert len(s.dialers) == 0
        url = lst.url
        lst.close()
        assert len(s.listeners) == 0
        # Really closed: the same address can be bound again.
        again = s.listen(url)
        assert again.url == url
    assert len(s.listeners) == 0


async def test_endpoints_as_context_managers(inproc: str) -> None:
    with pynng.Pair0() as s:
        async with s.listen(inproc) as lst:
            assert s.listeners == (lst,)
            with pynng.Pair0() as s1:
                d = s1.dial(inproc, block=True)
                await d.aclose()
                assert len(s1.dialers) == 0
        assert len(s.listeners) == 0
        with s.listen(inproc):
            pass
        assert len(s.listeners) == 0


def test_dial_blocking_modes(tcp: str) -> None:
    with pynng.Pair0() as probe:
        url = probe.listen(tcp).url
    # Nobody listens now.
    with pynng.Pair0() as s:
        with pytest.raises(pynng.ConnectionRefused) as info:
            s.dial(url, block=True)
        assert isinstance(info.value, ConnectionRefusedError)
        assert len(s.dialers) == 0
        # block=None (the default): refused, logged, retried in the background.
        s.reconnect_time_min = 10
        d = s.dial(url)
        assert list(s.dialers) == [d]
        with pynng.Pair0(listen=url, recv_timeout=2000) as server:
            wait_for(lambda: len(s.pipes) == 1)
            s.send(b"late")
            assert server.recv() == b"late"
            assert s.pipes[0].dialer is d


def test_endpoint_errors(tcp: str) -> None:
    with pynng.Pair0(listen=tcp) as s0:
        url = listen_url(s0)
        with pytest.raises(pynng.AddressInUse):
            pynng.Pair0(listen=url)
        with pytest.raises(pynng.AddressInvalid):
            s0.listen("tcp://not a host:1")
        with pytest.raises(pynng.AddressInvalid):
            s0.dial("nonsense", block=True)
        with pytest.raises(pynng.NotSupported):
            s0.dial("nosuchscheme://x", block=True)


def test_pipes_and_callbacks(inproc: str) -> None:
    events: list[tuple[str, int, int]] = []
    removed = threading.Event()

    def pre(p: pynng.Pipe) -> None:
        events.append(("pre", p.id, len(s0.pipes)))

    def post(p: pynng.Pipe) -> None:
        events.append(("post", p.id, len(s0.pipes)))

    def gone(p: pynng.Pipe) -> None:
        events.append(("remove", p.id, len(s0.pipes)))
        removed.set()

    def never(p: pynng.Pipe) -> None:
        raise AssertionError("removed callbacks must not run")

    with pynng.Pair0(listen=inproc) as s0:
        s0.add_pre_pipe_connect_cb(pre)
        s0.add_post_pipe_connect_cb(post)
        s0.add_post_pipe_remove_cb(gone)
        s0.add_post_pipe_connect_cb(never)
        s0.remove_post_pipe_connect_cb(never)
        with pytest.raises(ValueError):
            s0.remove_pre_pipe_connect_cb(never)
        s1 = pynng.Pair0(dial=inproc)
        wait_for(lambda: len(s0.pipes) == 1)
        pipe = s0.pipes[0]
        assert pipe.socket is s0
        assert pipe.listener is s0.listeners[0]
        with pytest.raises(TypeError, match="no associated dialers"):
            _ = pipe.dialer
        assert s1.pipes[0].dialer is s1.dialers[0]
        assert (pipe.protocol, pipe.peer, pipe.protocol_name, pipe.peer_name) == (
            0x10,
            0x10,
            "pair",
            "pair",
        )
        s1.close()
        assert removed.wait(T)
        # The pipe is in the table from pre-connect until after the remove
        # callbacks, as in pynng.
        assert events == [("pre", pipe.id, 1), ("post", pipe.id, 1), ("remove", pipe.id, 1)]
        wait_for(lambda: s0.pipes == ())


def test_pre_connect_callback_can_refuse(tcp: str) -> None:
    seen: list[str] = []
    with pynng.Pair0(listen=tcp) as s0:

        def refuse(p: pynng.Pipe) -> None:
            seen.append("pre")
            p.close()

        s0.add_pre_pipe_connect_cb(refuse)
        s0.add_post_pipe_connect_cb(lambda p: seen.append("post"))
        s0.add_post_pipe_remove_cb(lambda p: seen.append("remove"))
        with pynng.Pair0() as s1:
            s1.dial(listen_url(s0), block=False)
            wait_for(lambda: "pre" in seen)
            assert s0.socket.stats()["pipes_rejected"] >= 1
            assert s0.pipes == ()
            assert "post" not in seen
            assert "remove" not in seen


def test_pipe_close_from_application(pair: tuple[pynng.Pair0, pynng.Pair0]) -> None:
    s0, _ = pair
    pipe = s0.pipes[0]
    assert pipe.closed is False
    pipe.close()
    assert pipe.closed is True
    wait_for(lambda: pipe not in s0.pipes)


def test_addresses_tcp(pair: tuple[pynng.Pair0, pynng.Pair0]) -> None:
    s0, s1 = pair
    lst = s0.listeners[0]
    port = int(lst.url.rsplit(":", 1)[1])
    a = lst.local_address
    assert isinstance(a, pynng.sockaddr.InAddr)
    assert (str(a), a.family, a.family_as_str) == (f"127.0.0.1:{port}", 3, "inet")
    assert a.port == socket.htons(port)  # network byte order, as pynng
    assert a.addr == int.from_bytes(socket.inet_aton("127.0.0.1"), sys.byteorder)
    assert repr(a) == "nng_sockaddr {.family = 3}"
    remote = s1.pipes[0].remote_address
    assert str(remote) == f"127.0.0.1:{port}"
    assert str(s0.pipes[0].local_address) == f"127.0.0.1:{port}"
    assert str(s0.pipes[0].remote_address) == str(s1.pipes[0].local_address)
    assert s0.pipes[0].url == lst.url
    assert s1.dialers[0].local_address.family_as_str == "Unspecified"
    with pytest.raises(pynng.NotSupported):
        _ = lst.remote_address


def test_addresses_ipv6() -> None:
    try:
        s0 = pynng.Pair0(listen="tcp://[::1]:0")
    except pynng.NNGException as exc:
        pytest.skip(f"no IPv6 loopback here: {exc}")
    with s0:
        a = s0.listeners[0].local_address
        assert isinstance(a, pynng.sockaddr.In6Addr)
        assert a.family_as_str == "inetv6"
        assert str(a).startswith("[::1]:")
        assert a.addr == socket.inet_pton(socket.AF_INET6, "::1")


def test_addresses_ipc_inproc_abstract(tmp_path: Path, inproc: str) -> None:
    path = str(tmp_path / "c.ipc")
    with pynng.Pair0(listen=f"ipc://{path}") as s0, pynng.Pair0(dial=f"ipc://{path}") as s1:
        wait_for(lambda: len(s0.pipes) == 1)
        for p in (s0.pipes[0], s1.pipes[0]):
            for addr in (p.remote_address, p.local_address):
                assert isinstance(addr, pynng.sockaddr.IPCAddr)
                assert (str(addr), addr.path, addr.family_as_str) == (path, path, "ipc")
        assert str(s0.listeners[0].local_address) == path
    with pynng.Pair0(listen=inproc) as s0, pynng.Pair0(dial=inproc) as s1:
        a = s1.pipes[0].remote_address
        assert isinstance(a, pynng.sockaddr.InprocAddr)
        assert (str(a), a.name, a.family_as_str) == (inproc, inproc, "inproc")
    if sys.platform != "linux":
        return
    url = f"abstract://compat%00test-{os.getpid()}"
    with pynng.Pair0(listen=url) as s0:
        a = s0.listeners[0].local_address
        assert isinstance(a, pynng.sockaddr.AbstractAddr)
        assert (str(a), a.family_as_str) == (url, "abstract")
        assert a.name_bytes == f"compat\0test-{os.getpid()}".encode()


# ---------------------------------------------------------------- pair1, pipeline


def test_pair1_polyamorous(tcp: str) -> None:
    # Modelled on pynng's docs/snippets/pair1_sync.py.
    with pynng.Pair1(listen=tcp, polyamorous=True, recv_timeout=2000) as s0:
        url = listen_url(s0)
        assert s0.polyamorous is True
        assert s0.socket.options["polyamorous"] is True
        with (
            pynng.Pair1(dial=url, polyamorous=True, recv_timeout=2000) as s1,
            pynng.Pair1(dial=url, polyamorous=True, recv_timeout=2000) as s2,
        ):
            s1.send(b"hello from s1")
            s2.send(b"hello from s2")
            got = {m.bytes: m for m in (s0.recv_msg(), s0.recv_msg())}
            assert set(got) == {b"hello from s1", b"hello from s2"}
            for who in (b"s1", b"s2"):
                pipe = got[b"hello from " + who].pipe
                assert pipe is not None
                pipe.send(b"hey " + who)
            assert s2.recv() == b"hey s2"
            assert s1.recv() == b"hey s1"
    with pynng.Pair1() as mono:
        assert mono.polyamorous is False


def test_pair1_dials_before_it_listens(tcp: str) -> None:
    # pynng's Pair1 dials first when given both: dialing an address that is
    # taken succeeds, then listening there fails.
    with pynng.Pair1(listen=tcp, polyamorous=True, recv_timeout=2000) as s0:
        url = listen_url(s0)
        with pytest.raises(pynng.AddressInUse):
            pynng.Pair1(dial=url, listen=url, polyamorous=True)
        wait_for(lambda: s0.pipes == ())
        with pytest.raises(pynng.AddressInUse):
            pynng.Pair0(dial=url, listen=url)


def test_push_pull_round_robin(tcp: str) -> None:
    # Modelled on pynng's docs/snippets/pushpull_sync.py.
    with pynng.Push0(listen=tcp) as push:
        url = listen_url(push)
        with (
            pynng.Pull0(dial=url, recv_timeout=100) as pull0,
            pynng.Pull0(dial=url, recv_timeout=100) as pull1,
        ):
            wait_for(lambda: len(push.pipes) == 2)
            push.send(b"hi some node")
            push.send(b"hi some other node")
            got = {pull0.recv(), pull1.recv()}
            assert got == {b"hi some node", b"hi some other node"}
            with pytest.raises(pynng.Timeout):
                pull0.recv()


# ---------------------------------------------------------------- the other protocols


def test_req_rep(tcp: str) -> None:
    need_protocol("req0")
    with (
        pynng.Rep0(listen=tcp, recv_timeout=2000) as rep,
        pynng.Req0(dial=listen_url(rep), recv_timeout=2000, resend_time=1500) as req,
    ):
        assert req.resend_time == 1500
        assert isinstance(req.socket, purenng.Req0)
        assert req.socket.resend_time == 1.5
        req.resend_time = -1  # never re-send
        # mypy keeps its narrowing from the assert above across the compat setter.
        assert (req.resend_time, req.socket.resend_time) == (-1, None)  # type: ignore[comparison-overlap]
        req.resend_time = 1500
        with pytest.raises(pynng.BadState):
            rep.send(b"no request yet")
        req.send(b"random.random()")
        assert rep.recv() == b"random.random()"
        rep.send(b"4")
        assert req.recv() == b"4"
        with pytest.raises(pynng.BadState):
            req.recv()  # nothing asked


def test_contexts(tcp: str) -> None:
    need_protocol("rep0")
    with (
        pynng.Rep0(listen=tcp, recv_timeout=2000) as rep,
        pynng.Req0(dial=listen_url(rep), recv_timeout=2000) as req,
    ):
        wait_for(lambda: len(rep.pipes) == 1)
        rctx = [rep.new_context() for _ in range(3)]
        qctx = [req.new_context() for _ in range(3)]
        assert rctx[0].recv_timeout == 2000
        for i, c in enumerate(qctx):
            c.send(b"q%d" % i)
        served = []
        for c in rctx:
            msg = c.recv_msg()
            assert msg.pipe is rep.pipes[0]
            served.append(msg.bytes)
            c.send(b"a" + msg.bytes[1:])
        assert sorted(served) == [b"q0", b"q1", b"q2"]
        assert [c.recv() for c in qctx] == [b"a0", b"a1", b"a2"]
        ctx = rctx[0]
        ctx.recv_timeout = 20
        assert ctx.context.recv_timeout == 0.02
        assert rep.recv_timeout == 2000  # the socket keeps its own
        with pytest.raises(pynng.Timeout):
            ctx.recv()
        for c in rctx + qctx:
            c.close()
        ctx.close()  # idempotent
        with pytest.raises(pynng.Closed):
            ctx.send(b"x")


async def test_contexts_async(tcp: str) -> None:
    need_protocol("rep0")
    with (
        pynng.Rep0(listen=tcp, recv_timeout=2000) as rep,
        pynng.Req0(dial=listen_url(rep), recv_timeout=2000) as req,
    ):

        async def serve() -> None:
            with rep.new_context() as c:
                msg = await c.arecv_msg()
                await c.asend_msg(pynng.Message(msg.bytes.upper()))

        async def ask(data: bytes) -> bytes:
            with req.new_context() as c:
                await c.asend(data)
                return await c.arecv()

        servers = [asyncio.ensure_future(serve()) for _ in range(2)]
        answers = await asyncio.gather(ask(b"x"), ask(b"y"))
        await asyncio.gather(*servers)
        assert sorted(answers) == [b"X", b"Y"]


def test_contexts_not_supported() -> None:
    with pynng.Pair0() as s, pytest.raises(pynng.NotSupported):
        s.new_context()


def test_pub_sub_topics(tcp: str) -> None:
    need_protocol("sub0")
    with pynng.Pub0(listen=tcp) as pub:
        url = listen_url(pub)
        with (
            pynng.Sub0(dial=url, recv_timeout=2000, topics="wolf") as wolf,
            pynng.Sub0(dial=url, recv_timeout=2000, topics=[b"puppy", "kit"]) as young,
            pynng.Sub0(dial=url, recv_timeout=100) as none,
        ):
            wait_for(lambda: len(pub.pipes) == 3)
            with pytest.raises(pynng.NotSupported):
                wolf.send(b"x")
            with pytest.raises(pynng.NotSupported):
                pub.recv()
            young.unsubscribe("kit")
            with pytest.raises(pynng.NNGException):
                young.unsubscribe(b"never subscribed")
            for m in (b"kitten: small", b"puppy: cute", b"wolf: big"):
                pub.send(m)
            assert wolf.recv() == b"wolf: big"
            assert young.recv() == b"puppy: cute"
            with pytest.raises(pynng.Timeout):
                none.recv()


def test_survey(tcp: str) -> None:
    need_protocol("surveyor0")
    # Modelled on pynng's docs/snippets/surveyor_sync.py.
    with pynng.Surveyor0(listen=tcp, survey_time=400) as surveyor:
        assert surveyor.survey_time == 400
        assert isinstance(surveyor.socket, purenng.Surveyor0)
        assert surveyor.socket.survey_time == 0.4
        with pytest.raises(pynng.InvalidOperation):
            surveyor.survey_time = -1
        url = listen_url(surveyor)
        with (
            pynng.Respondent0(dial=url, recv_timeout=2000) as r1,
            pynng.Respondent0(dial=url, recv_timeout=2000) as r2,
        ):
            wait_for(lambda: len(surveyor.pipes) == 2)
            surveyor.send(b"who wants to party?")
            assert r1.recv() == b"who wants to party?"
            assert r2.recv() == b"who wants to party?"
            r1.send(b"me me me!!!")
            r2.send(b"I need to sit this one out.")
            answers = set()
            for _ in range(3):  # two answers, then the survey ends
                try:
                    answers.add(surveyor.recv())
                except pynng.Timeout:
                    break
            else:
                pytest.fail("the survey did not end with Timeout")
            assert answers == {b"me me me!!!", b"I need to sit this one out."}


def test_bus(tcp: str) -> None:
    need_protocol("bus0")
    # Modelled on pynng's docs/snippets/bus0_sync.py.
    with pynng.Bus0(listen=tcp, recv_timeout=2000) as s0:
        url = listen_url(s0)
        with (
            pynng.Bus0(dial=url, recv_timeout=2000) as s1,
            pynng.Bus0(dial=url, recv_timeout=100) as s2,
        ):
            wait_for(lambda: len(s0.pipes) == 2)
            s0.send(b"hello buddies")
            assert s1.recv() == b"hello buddies"
            assert s2.recv() == b"hello buddies"
            s1.send(b"hi s0")
            assert s0.recv() == b"hi s0"
            with pytest.raises(pynng.Timeout):
                s2.recv()  # s2 is not directly connected to s1


def test_device_forwards_between_raw_sockets(tcp: str) -> None:
    need_protocol("rep0")
    front = purenng.Rep0(raw=True, listen=tcp)
    back = purenng.Req0(raw=True, listen=tcp)
    worker_done = threading.Event()
    fwd = threading.Thread(target=pynng.device, args=(front, back), daemon=True)
    try:
        fwd.start()
        with (
            pynng.Rep0(dial=back.listeners[0].url, recv_timeout=5000) as worker,
            pynng.Req0(dial=front.listeners[0].url, recv_timeout=5000) as client,
        ):

            def serve() -> None:
                worker.send(worker.recv() + b" served")
                worker_done.set()

            t = threading.Thread(target=serve, daemon=True)
            t.start()
            client.send(b"job")
            assert client.recv() == b"job served"
            assert worker_done.wait(T)
            t.join(T)
    finally:
        front.close()
        back.close()
        fwd.join(T)
    assert not fwd.is_alive()
