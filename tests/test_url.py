"""SP URL parsing: scheme splitting and tcp-style host:port, with actionable errors."""

from __future__ import annotations

from typing import Any

import pytest

from purenng.core.errors import BadAddress
from purenng.core.url import URL, HostPort, parse_host_port, parse_url


@pytest.mark.parametrize(
    ("raw", "scheme", "rest"),
    [
        ("tcp://127.0.0.1:5555", "tcp", "127.0.0.1:5555"),
        ("TCP://h:1", "tcp", "h:1"),
        ("tls+tcp://host:443", "tls+tcp", "host:443"),
        ("ipc:///tmp/sock", "ipc", "/tmp/sock"),
        ("inproc://a b://c", "inproc", "a b://c"),
        ("ws://h:1/path?q=1", "ws", "h:1/path?q=1"),
        ("tcp://", "tcp", ""),
    ],
)
def test_parse_url(raw: str, scheme: str, rest: str) -> None:
    u = parse_url(raw)
    assert (u.scheme, u.rest, u.raw) == (scheme, rest, raw)
    assert str(u) == raw
    assert parse_url(u) is u


@pytest.mark.parametrize(
    "raw",
    ["", "127.0.0.1:5555", "tcp:/h:1", "tcp:h:1", "://h:1", "1tcp://h:1", "tcp ://h:1", "/tmp/x"],
)
def test_parse_url_needs_scheme(raw: str) -> None:
    with pytest.raises(BadAddress, match="scheme://"):
        parse_url(raw)


@pytest.mark.parametrize("value", [None, b"tcp://h:1", 5555, ["tcp://h:1"]])
def test_parse_url_needs_str(value: Any) -> None:
    with pytest.raises(BadAddress, match="must be a str"):
        parse_url(value)


def test_bad_address_is_value_error() -> None:
    with pytest.raises(ValueError):
        parse_url("nope")


def test_with_rest() -> None:
    u = parse_url("tcp://127.0.0.1:0").with_rest("127.0.0.1:4242")
    assert u == URL("tcp", "127.0.0.1:4242", "tcp://127.0.0.1:4242")


def hp(raw: str, **kw: Any) -> HostPort:
    return parse_host_port(parse_url(raw), **kw)


@pytest.mark.parametrize(
    ("raw", "host", "port"),
    [
        ("tcp://127.0.0.1:5555", "127.0.0.1", 5555),
        ("tcp://localhost:0", "localhost", 0),
        ("tcp://[::1]:5555", "::1", 5555),
        ("tcp://[fe80::1%lo]:1", "fe80::1%lo", 1),
        ("tcp://h:65535", "h", 65535),
        ("tcp://h:00080", "h", 80),
    ],
)
def test_host_port(raw: str, host: str, port: int) -> None:
    r = hp(raw)
    assert (r.host, r.port) == (host, port)
    assert not r.wildcard


@pytest.mark.parametrize(
    ("raw", "host"),
    [
        ("tcp://:5555", ""),
        ("tcp://*:5555", "*"),
        ("tcp://0.0.0.0:5555", "0.0.0.0"),
        ("tcp://[::]:5555", "::"),
    ],
)
def test_wildcards(raw: str, host: str) -> None:
    r = hp(raw)
    assert r.host == host
    assert r.port == 5555
    assert r.wildcard


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("tcp://", "missing port"),
        ("tcp://host", "missing port"),
        ("tcp://host:", "missing port"),
        ("tcp://[::1]", "missing port"),
        ("tcp://[::1]:", "missing port"),
        ("tcp://[::1", r"missing '\]'"),
        ("tcp://[::1]5555", "expected ':port'"),
        ("tcp://[]:5555", "empty IPv6"),
        ("tcp://::1:5555", "brackets"),
        ("tcp://host:http", "not a number"),
        ("tcp://host:-1", "not a number"),
        ("tcp://host:1.5", "not a number"),
        ("tcp://host: 80", "not a number"),
        ("tcp://host:\u00b2", "not a number"),
        ("tcp://host:\u0663", "not a number"),
        ("tcp://host:\uff11\uff12", "not a number"),
        ("tcp://host:65536", "out of range"),
        ("tcp://host:99999", "out of range"),
        ("tcp://host:5555/path", "no path"),
        ("tcp://[::1]:5555/", "no path"),
    ],
)
def test_host_port_errors(raw: str, reason: str) -> None:
    with pytest.raises(BadAddress, match=reason) as info:
        hp(raw)
    # The message quotes the URL, so the user sees which one is wrong.
    assert repr(raw) in str(info.value)


def test_default_port() -> None:
    assert hp("tcp://host", default_port=80) == HostPort("host", 80)
    assert hp("tcp://[::1]", default_port=80) == HostPort("::1", 80)
    assert hp("tcp://host:81", default_port=80) == HostPort("host", 81)
