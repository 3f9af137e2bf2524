"""The transport conformance kit, run on every built-in transport, and on a broken one.

The kit must pass on tcp, tcp6, ipc, abstract and inproc, must leave nothing
open, and must fail, naming the check, on a transport that loses messages.
"""

from __future__ import annotations

import socket
import struct
from typing import TYPE_CHECKING, Any

import pytest

from purenng.core.byte_stream import Stream, StreamListener
from purenng.core.registry import get_registry
from purenng.core.transport import StreamTransport
from purenng.core.url import parse_url
from purenng.plugin import hookimpl
from purenng.testing import (
    CHECKS,
    ConformanceError,
    check_transport,
    check_transport_sync,
)
from purenng.transports.tcp import TCPTransport

if TYPE_CHECKING:
    import asyncio
    from collections.abc import Mapping

    from purenng.core.message import BytesLike
    from purenng.core.url import URL
    from purenng.plugin import Registry

STREAM_ONLY = {"over_recv_max_size", "bad_frames"}


async def test_builtin_transport_conforms(purenng_url: str, purenng_leak_check: None) -> None:
    report = await check_transport(purenng_url)
    if parse_url(purenng_url).scheme == "inproc":
        assert not report.stream
        assert set(report.skipped) == STREAM_ONLY
        assert report.passed == [c for c in CHECKS if c not in STREAM_ONLY]
    else:
        assert report.stream
        assert report.skipped == {}
        assert report.passed == list(CHECKS)


def _has_ipv6_loopback() -> bool:
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
    except OSError:
        return False
    return True


async def test_tcp6_conforms(purenng_leak_check: None) -> None:
    if not _has_ipv6_loopback():
        pytest.skip("no IPv6 loopback (::1) on this host")
    report = await check_transport("tcp6://[::1]:0")
    assert report.passed == list(CHECKS)


def test_sync_wrapper_and_skip() -> None:
    report = check_transport_sync(
        "tcp://127.0.0.1:0", skip=[c for c in CHECKS if c != "exchange"], tcp_nodelay=False
    )
    assert report.passed == ["exchange"]
    assert set(report.skipped) == set(CHECKS) - {"exchange"}


async def test_unknown_check_name_is_refused() -> None:
    with pytest.raises(ValueError, match="no_such_check"):
        await check_transport("tcp://127.0.0.1:0", skip=["no_such_check"])


# ---------------------------------------------------------------- a broken transport


class _DroppingStream(Stream):
    """Passes the SP header through, then drops every second frame it is given to send.

    It has no asyncio transport to hand over, so the SP adapter drives it
    through read()/write().
    """

    def __init__(self, inner: Stream) -> None:
        self._inner = inner
        self._pending = bytearray()
        self._header_left = 8
        self._frames = 0

    async def read(self, max_bytes: int = 65536) -> bytes:
        return await self._inner.read(max_bytes)

    def write(self, data: BytesLike) -> None:
        buf = self._pending
        buf += data
        if self._header_left:
            n = min(self._header_left, len(buf))
            self._inner.write(bytes(buf[:n]))
            del buf[:n]
            self._header_left -= n
        while len(buf) >= 8:
            (length,) = struct.unpack_from(">Q", buf)
            if len(buf) < 8 + length:
                return
            frame = bytes(buf[: 8 + length])
            del buf[: 8 + length]
            self._frames += 1
            if self._frames % 2:
                self._inner.write(frame)

    async def drain(self) -> None:
        await self._inner.drain()

    def close(self) -> None:
        self._inner.close()

    def extra(self, name: str, default: Any = None) -> Any:
        return self._inner.extra(name, default)


class _DroppingListener(StreamListener):
    def __init__(self, inner: StreamListener) -> None:
        self._inner = inner

    async def accept(self) -> Stream:
        return _DroppingStream(await self._inner.accept())

    def close(self) -> None:
        self._inner.close()

    async def aclose(self) -> None:
        await self._inner.aclose()

    @property
    def local_address(self) -> Any:
        return self._inner.local_address

    @property
    def url(self) -> str:
        return "brokentcp" + self._inner.url[len("tcp") :]


class _BrokenTCP(StreamTransport):
    """tcp that loses every second message in each direction."""

    schemes = ("brokentcp",)
    option_prefix = "tcp"
    option_specs = TCPTransport.option_specs

    def __init__(self) -> None:
        self._tcp = TCPTransport()

    @staticmethod
    def _as_tcp(url: URL) -> URL:
        return parse_url(f"tcp://{url.rest}")

    def check_url(self, url: URL) -> None:
        self._tcp.check_url(self._as_tcp(url))

    async def dial(self, url: URL, options: Mapping[str, Any]) -> Stream:
        return _DroppingStream(await self._tcp.dial(self._as_tcp(url), options))

    async def listen(self, url: URL, options: Mapping[str, Any]) -> StreamListener:
        return _DroppingListener(await self._tcp.listen(self._as_tcp(url), options))


class _BrokenPlugin:
    @hookimpl
    def purenng_register_transports(self, registry: Registry) -> None:
        registry.add_transport(_BrokenTCP())


_BROKEN = _BrokenPlugin()


async def test_kit_names_the_check_a_broken_transport_fails() -> None:
    get_registry().register_module(_BROKEN, "tests:brokentcp")
    with pytest.raises(ConformanceError) as info:
        await check_transport("brokentcp://127.0.0.1:0", timeout=5.0)
    err = info.value
    # One message each way per connection gets through; a thousand do not.
    assert err.check == "many_in_order"
    assert err.url == "brokentcp://127.0.0.1:0"
    assert "'many_in_order'" in str(err)
    assert "message 1 of 1000" in str(err)


async def test_kit_reports_a_hang_as_a_timeout_naming_the_step(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from purenng.core.socket import Socket

    async def never(self: Socket, *, block: bool = True) -> bytes:
        fut: asyncio.Future[bytes] = self.loop.create_future()
        return await fut

    monkeypatch.setattr(Socket, "arecv", never)
    with pytest.raises(ConformanceError) as info:
        await check_transport("tcp://127.0.0.1:0", timeout=0.5)
    assert info.value.check == "dialer_sends_first"
    assert "timed out after 0.5 s" in str(info.value)
    assert "receiving the dialer's first message" in str(info.value)


def test_one_line_kits_for_stream_and_pipe_transports() -> None:
    """The one-liners a third-party transport's test file starts with."""
    from purenng.testing import check_pipe_transport, check_stream_transport

    stream_report = check_stream_transport("tcp://127.0.0.1:0", timeout=20)
    pipe_report = check_pipe_transport("inproc://one-line-kit", timeout=20)
    assert "bad_frames" in stream_report.passed
    assert "bad_frames" not in pipe_report.passed
    assert "exchange" in pipe_report.passed
