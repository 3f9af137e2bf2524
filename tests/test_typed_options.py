"""Options as typed attributes of the socket classes and contexts.

Every option a socket takes is declared on its class as an
:class:`~purenng.core.options.Option` (socket and built-in transport
options on ``Socket``, protocol options on ``Req0``, ``Sub0``...).  Reading
and writing one goes through the same option machinery as before (same
validation, ``sock.options``, applied to the protocol), a misspelt name is a
``BadOption`` that is also an ``AttributeError`` and names the closest valid
option, and for type checkers a misspelt name or a wrong type is an error.
"""

from __future__ import annotations

import sys
import textwrap
from typing import TYPE_CHECKING, Any, ClassVar

import pytest

import purenng
from purenng.core import registry as registry_mod
from purenng.core.context import Context, ReqContext, SubContext, SurveyorContext
from purenng.core.errors import BadOption
from purenng.core.hookspecs import hookimpl
from purenng.core.options import SOCKET_OPTIONS, Option, OptionSpec, declared_options, integer
from purenng.core.registry import get_registry
from purenng.core.transport import PipeTransport

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping
    from pathlib import Path

    from purenng.core.url import URL

SOCKET_CLASSES: list[type[purenng.Socket]] = [
    purenng.Pair0,
    purenng.Pair1,
    purenng.Push0,
    purenng.Pull0,
    purenng.Pub0,
    purenng.Sub0,
    purenng.Req0,
    purenng.Rep0,
    purenng.Surveyor0,
    purenng.Respondent0,
    purenng.Bus0,
]

#: The built-in transports, by one of their schemes.
BUILTIN_SCHEMES = ["tcp", "ipc", "inproc", "tls+tcp", "ws"]

#: A valid value, other than the default, for every declared option.
SAMPLES: dict[str, Any] = {
    "recv_timeout": 0.25,
    "send_timeout": 0.5,
    "recv_max_size": 1000,
    "recv_buffer": 7,
    "send_buffer": 3,
    "reconnect_time_min": 0.2,
    "reconnect_time_max": 1.5,
    "name": "worker-1",
    "linger": 0.1,
    "recv_idle_timeout": 2.0,
    "max_pipes": 5,
    "sp_handshake_timeout": 3.0,
    "tcp_nodelay": False,
    "tcp_keepalive": True,
    "ipc_permissions": 0o600,
    "ipc_buffer_size": 8192,
    "tls_config": purenng.TLSConfig(),
    "tls_handshake_timeout": 4.0,
    "ws_recv_frame_max": 1000,
    "ws_send_frame_max": 2000,
    "ws_request_headers": {"X-Request": "1"},
    "ws_response_headers": {"X-Response": "2"},
    "ws_ping_interval": 5.0,
    "ws_handshake_timeout": 6.0,
    "ws_protocol": "chat",
    "ttl_max": 4,
    "polyamorous": True,
    "prefer_new": False,
    "resend_time": 2.0,
    "survey_time": 0.75,
}


def _transport_specs() -> dict[str, OptionSpec]:
    reg = get_registry()
    specs: dict[str, OptionSpec] = {}
    for scheme in BUILTIN_SCHEMES:
        specs.update(reg.transport(scheme).option_specs)
    return specs


def _expected(cls: type[purenng.Socket]) -> set[str]:
    proto = get_registry().protocol(cls.protocol_name or "")
    return set(SOCKET_OPTIONS) | set(proto.option_specs) | set(_transport_specs())


CASES = [(cls, name) for cls in SOCKET_CLASSES for name in sorted(_expected(cls))]
IDS = [f"{cls.__name__}.{name}" for cls, name in CASES]


@pytest.fixture
def global_registry() -> Iterator[None]:
    """Let a test replace the process-wide registry; put the old one back."""
    saved = registry_mod._registry
    yield
    registry_mod._registry = saved


# ---------------------------------------------------------------- declarations


@pytest.mark.parametrize("cls", SOCKET_CLASSES, ids=lambda c: c.__name__)
def test_each_class_declares_exactly_its_options(cls: type[purenng.Socket]) -> None:
    # Socket options, the built-in transports' and the protocol's: no more, no less.
    assert declared_options(cls) == _expected(cls)
    for name in declared_options(cls):
        descriptor = getattr(cls, name)
        assert isinstance(descriptor, Option)
        assert descriptor.name == name


def test_every_option_has_a_sample() -> None:
    assert set(SAMPLES) == {name for _, name in CASES}


# ---------------------------------------------------------------- round trips


@pytest.mark.parametrize(("cls", "name"), CASES, ids=IDS)
def test_read_and_write_go_through_the_options(cls: type[purenng.Socket], name: str) -> None:
    assert isinstance(getattr(cls, name), Option)
    with cls() as sock:
        # Read: the value in sock.options, or (a transport option not set on
        # this socket) the transport's default.
        before = getattr(sock, name)
        if name in sock.options:
            assert before == sock.options[name]
        else:
            assert before == _transport_specs()[name].default
        value = SAMPLES[name]
        assert value != before
        setattr(sock, name, value)
        assert sock.options[name] == value
        assert getattr(sock, name) == value
        assert name not in sock.__dict__  # an option, not an instance attribute
        # The same value given to the constructor reads back the same.
        kwargs: dict[str, Any] = {name: value}
        with cls(**kwargs) as other:
            assert getattr(other, name) == value
            assert other.options[name] == value


@pytest.mark.parametrize(("cls", "name"), CASES, ids=IDS)
def test_wrong_type_is_refused_and_keeps_the_value(cls: type[purenng.Socket], name: str) -> None:
    assert isinstance(getattr(cls, name), Option)
    with cls() as sock:
        before = getattr(sock, name)
        with pytest.raises(BadOption, match=repr(name)):
            setattr(sock, name, object())
        assert getattr(sock, name) == before
        kwargs: dict[str, Any] = {name: object()}
        with pytest.raises(BadOption, match=repr(name)):
            cls(**kwargs)


def test_typed_writes_reach_the_protocol_and_fast_paths() -> None:
    assert isinstance(purenng.Socket.recv_timeout, Option)
    with purenng.Pull0() as pull:
        pull.recv_timeout = 0.05
        assert pull.__dict__["_recv_timeout"] == 0.05  # the per-message copy
        with pytest.raises(purenng.Timeout):
            pull.recv()
        pull.send_timeout = 1
        assert pull.__dict__["_send_timeout"] == 1.0
        pull.recv_buffer = 3
        assert pull.channel.recv_capacity == 3
    assert isinstance(purenng.Pair1.polyamorous, Option)
    with purenng.Pair1() as pair:
        pair.polyamorous = True
        assert pair._protocol._poly is True  # type: ignore[attr-defined]
    assert isinstance(purenng.Req0.resend_time, Option)
    with purenng.Req0() as req:
        req.resend_time = 7
        assert req._protocol._default.resend_time == 7.0  # type: ignore[attr-defined]
    assert isinstance(purenng.Sub0.prefer_new, Option)
    with purenng.Sub0() as sub:
        sub.prefer_new = False
        assert sub._protocol.default.prefer_new is False  # type: ignore[attr-defined]


# ---------------------------------------------------------------- misspelt names


TYPOS = [
    (purenng.Req0, "recv_timout", "recv_timeout"),
    (purenng.Req0, "resend_tim", "resend_time"),
    (purenng.Pair0, "tcp_nodelai", "tcp_nodelay"),
    (purenng.Surveyor0, "survey_tme", "survey_time"),
    (purenng.Pair1, "polyamorus", "polyamorous"),
]


@pytest.mark.parametrize(("cls", "typo", "meant"), TYPOS, ids=[t for _, t, _ in TYPOS])
def test_misspelt_option_names_the_closest(
    cls: type[purenng.Socket], typo: str, meant: str
) -> None:
    message = f"{cls.__name__} has no option {typo!r}; did you mean {meant!r}?"
    with cls() as sock:
        before = dict(sock.options)
        with pytest.raises(BadOption) as info:
            setattr(sock, typo, 1.0)
        assert str(info.value) == message
        assert isinstance(info.value, AttributeError)
        assert isinstance(info.value, ValueError)
        assert typo not in sock.__dict__
        assert sock.options == before
        with pytest.raises(AttributeError) as got:
            getattr(sock, typo)
        assert str(got.value) == message
        assert getattr(sock, typo, "default") == "default"
        assert not hasattr(sock, typo)
    kwargs: dict[str, Any] = {typo: 1.0}
    with pytest.raises(BadOption) as info:
        cls(**kwargs)
    assert str(info.value) == message


def test_bad_option_is_still_caught_as_before() -> None:
    assert issubclass(purenng.BadOption, AttributeError)
    assert issubclass(purenng.BadOption, ValueError)
    assert issubclass(purenng.BadOption, purenng.Error)
    with purenng.Req0() as req:
        try:
            req.recv_timout = 1.0  # type: ignore[attr-defined]
        except purenng.BadOption:
            pass
        else:
            raise AssertionError("no error")


@pytest.mark.parametrize(
    ("cls", "name", "owners"),
    [
        (purenng.Push0, "resend_time", "Req0"),
        (purenng.Pub0, "survey_time", "Surveyor0"),
        (purenng.Pair0, "polyamorous", "Pair1"),
        (purenng.Pull0, "prefer_new", "Sub0"),
        (purenng.Bus0, "ttl_max", "Pair1, Rep0, Req0, Respondent0, Surveyor0"),
    ],
)
def test_protocol_option_on_the_wrong_class(
    cls: type[purenng.Socket], name: str, owners: str
) -> None:
    message = f"{cls.__name__} has no option {name!r} (an option of {owners})"
    assert not hasattr(cls, name)
    with cls() as sock:
        with pytest.raises(BadOption) as info:
            setattr(sock, name, 1)
        assert str(info.value) == message
        with pytest.raises(AttributeError) as got:
            getattr(sock, name)
        assert str(got.value) == message
    kwargs: dict[str, Any] = {name: 1}
    with pytest.raises(BadOption) as info:
        cls(**kwargs)
    assert str(info.value) == message


# ---------------------------------------------------------------- plugin options


class _WindowTransport(PipeTransport):
    """A plugin transport with an option of its own, which no class declares."""

    schemes = ("foo",)
    option_prefix = "foo"
    option_specs: ClassVar[Mapping[str, OptionSpec]] = {
        "foo_window": OptionSpec("foo_window", integer(1, 64), 8, "frames in flight")
    }

    async def dial(self, url: URL, options: Mapping[str, Any], proto: Any) -> Any:
        raise NotImplementedError

    async def listen(self, url: URL, options: Mapping[str, Any], proto: Any, on_pipe: Any) -> Any:
        raise NotImplementedError


def test_plugin_transport_option_stays_reachable(global_registry: None) -> None:
    class Plugin:
        @hookimpl
        def purenng_register_transports(self, registry: registry_mod.Registry) -> None:
            registry.add_transport(_WindowTransport())

    purenng.configure_plugins().register_module(Plugin(), "test:foo")
    assert "foo_window" not in declared_options(purenng.Pair0)
    with purenng.Pair0() as sock:
        assert getattr(sock, "foo_window") == 8  # noqa: B009 - the default, not set here
        setattr(sock, "foo_window", 16)  # noqa: B010
        assert sock.options["foo_window"] == 16
        assert getattr(sock, "foo_window") == 16  # noqa: B009
        with pytest.raises(BadOption, match="'foo_window'"):
            setattr(sock, "foo_window", 65)  # noqa: B010
        with pytest.raises(BadOption) as info:
            setattr(sock, "foo_windw", 16)  # noqa: B010
        assert str(info.value) == "Pair0 has no option 'foo_windw'; did you mean 'foo_window'?"
    with purenng.Pair0(foo_window=4) as sock:
        assert sock.options["foo_window"] == 4


# ---------------------------------------------------------------- contexts


def test_new_context_types() -> None:
    with purenng.Req0() as req, purenng.Surveyor0() as surveyor, purenng.Sub0() as sub:
        assert type(req.new_context()) is ReqContext
        assert type(surveyor.new_context()) is SurveyorContext
        assert type(sub.new_context()) is SubContext
    with purenng.Rep0() as rep, purenng.Respondent0() as respondent:
        assert type(rep.new_context()) is Context
        assert type(respondent.new_context()) is Context
    # A socket made by protocol name keeps the plain Context, options reached at run time.
    with purenng.Socket("req0") as plain:
        ctx = plain.new_context()
        assert type(ctx) is Context
        assert ctx.resend_time == 60.0  # type: ignore[attr-defined]


def test_context_options_round_trip() -> None:
    with purenng.Req0(resend_time=5) as req:
        ctx = req.new_context()
        assert isinstance(ReqContext.resend_time, Option)
        assert ctx.resend_time == 5.0
        ctx.resend_time = 1
        assert ctx.resend_time == 1.0
        assert ctx._impl.resend_time == 1.0
        assert req.resend_time == 5.0  # the socket's own is untouched
        with pytest.raises(BadOption, match="'resend_time'"):
            ctx.resend_time = "soon"  # type: ignore[assignment]
        assert ctx.resend_time == 1.0
    with purenng.Surveyor0(survey_time=0.5) as surveyor:
        sctx = surveyor.new_context()
        assert sctx.survey_time == 0.5
        sctx.survey_time = None
        assert sctx.survey_time is None
        assert sctx._impl.survey_time is None


def test_sub_context_methods_and_options() -> None:
    with purenng.Sub0() as sub:
        ctx = sub.new_context()
        assert isinstance(ctx, SubContext)
        assert isinstance(SubContext.prefer_new, Option)
        ctx.subscribe(b"a")
        ctx.subscribe("b")
        assert ctx.topics == [b"a", b"b"]
        ctx.unsubscribe(b"a")
        assert ctx.topics == [b"b"]
        with pytest.raises(BadOption, match="not subscribed"):
            ctx.unsubscribe(b"zzz")
        assert ctx.prefer_new is True
        ctx.prefer_new = False
        assert ctx._impl.prefer_new is False
        ctx.recv_buffer = 5
        assert ctx.recv_buffer == 5
        assert ctx.channel.recv_capacity == 5
        with pytest.raises(BadOption, match="'prefer_new'"):
            ctx.prefer_new = 1  # type: ignore[assignment]


# ---------------------------------------------------------------- type checking


BAD_SNIPPET = """\
import purenng

sock = purenng.Req0()
sock.recv_timout = 1.0
x: int = sock.recv_timeout
sock.recv_timeout = "1"
purenng.Push0().resend_time = 1.0
ctx = sock.new_context()
ctx.resend_tme = 2.0
"""

GOOD_SNIPPET = """\
import purenng


def blocking() -> bytes:
    with purenng.Req0(recv_timeout=1.0) as req:
        req.recv_timeout = 0.5
        t: float | None = req.recv_timeout
        req.resend_time = None
        req.ttl_max = 4
        size: int = req.recv_max_size
        req.tcp_nodelay = False
        req.tls_config = purenng.TLSConfig()
        setattr(req, "foo_window", 16)  # a plugin transport's option
        ctx = req.new_context()
        ctx.resend_time = 2.0
        ctx.send(b"hi")
        return ctx.recv() + bytes([size]) + repr(t).encode()


def subscriber() -> list[bytes]:
    sub = purenng.Sub0()
    sub.prefer_new = False
    ctx = sub.new_context()
    ctx.subscribe(b"")
    ctx.prefer_new = True
    ctx.recv_buffer = 4
    survey: float | None = purenng.Surveyor0().new_context().survey_time
    assert survey is None or survey > 0
    return ctx.topics


async def conversation(ctx: purenng.Context) -> bytes:
    await ctx.asend(b"hi")
    return await ctx.arecv()


async def entered() -> None:
    async with purenng.Req0() as req:
        req.resend_time = 1.0
"""


def test_mypy_checks_option_names_and_types(tmp_path: Path) -> None:
    api = pytest.importorskip("mypy.api")
    bad = tmp_path / "bad_options.py"
    good = tmp_path / "good_options.py"
    bad.write_text(BAD_SNIPPET)
    good.write_text(GOOD_SNIPPET)
    config = tmp_path / "mypy.ini"
    config.write_text(
        textwrap.dedent(
            """\
            [mypy]
            strict = True
            python_version = 3.11
            [mypy-uvloop.*,trio.*,pynng.*]
            ignore_missing_imports = True
            """
        )
    )
    out, err, status = api.run(
        [
            "--config-file",
            str(config),
            "--cache-dir",
            str(tmp_path / "cache"),
            "--python-executable",
            sys.executable,
            "--no-error-summary",
            "--show-error-codes",
            str(bad),
            str(good),
        ]
    )
    assert status == 1, (out, err)
    lines = [line for line in out.splitlines() if ": error:" in line]
    assert not [line for line in lines if "good_options.py" in line], out
    bad_lines = {int(line.split(":")[1]): line for line in lines if "bad_options.py" in line}
    assert '"Req0" has no attribute "recv_timout"' in bad_lines[4], out
    assert "[attr-defined]" in bad_lines[4]
    assert 'expression has type "float | None", variable has type "int"' in bad_lines[5], out
    assert "[assignment]" in bad_lines[6], out
    assert '"Push0" has no attribute "resend_time"' in bad_lines[7], out
    assert '"ReqContext" has no attribute "resend_tme"' in bad_lines[9], out
    assert set(bad_lines) == {4, 5, 6, 7, 9}, out
