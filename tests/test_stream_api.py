"""purenng.stream: raw byte streams over tcp, ipc, tls+tcp and plugin transports."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
from typing import TYPE_CHECKING, Any

import pytest

import purenng
import purenng.stream
from purenng.certs import DevCerts, make_dev_certs
from purenng.core import registry as registry_mod
from purenng.core.byte_stream import Stream, StreamListener
from purenng.core.hookspecs import hookimpl
from purenng.core.transport import PipeTransport

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping
    from pathlib import Path

    from purenng.core.url import URL

T = 10.0


@pytest.fixture(scope="module")
def certs() -> DevCerts:
    return make_dev_certs()


@pytest.fixture
def global_registry() -> Iterator[None]:
    saved = registry_mod._registry
    yield
    registry_mod._registry = saved


async def _echo_once(lst: purenng.stream.Listener) -> None:
    conn = await lst.accept()
    async with conn:
        while data := await conn.read():
            conn.write(data.upper())
            await conn.drain()


async def _roundtrip(listen_url: str, lopts: dict[str, Any], dopts: dict[str, Any]) -> Stream:
    async with asyncio.timeout(T):
        async with await purenng.stream.listen(listen_url, **lopts) as lst:
            server = asyncio.create_task(_echo_once(lst))
            conn = await purenng.stream.dial(lst.url, **dopts)
            async with conn:
                payload = bytes(range(97, 123)) * 10_000  # 260 kB: several reads
                conn.write(payload)
                await conn.drain()
                assert await conn.read_exactly(len(payload)) == payload.upper()
                assert conn.remote_address is not None
                assert conn.local_address is not None
            await server
            return conn


async def test_tcp(tmp_path: Path) -> None:
    await _roundtrip("tcp://127.0.0.1:0", {}, {"tcp_nodelay": False})


async def test_ipc(tmp_path: Path) -> None:
    await _roundtrip(f"ipc://{tmp_path / 's.sock'}", {}, {})


async def test_tls(certs: DevCerts) -> None:
    conn = await _roundtrip(
        "tls+tcp://127.0.0.1:0",
        {"tls_config": certs.server_config()},
        {"tls_config": certs.client_config()},
    )
    assert conn.extra("tls_peer_cn") == "localhost"


async def test_tls_errors_are_reported(certs: DevCerts) -> None:
    other = make_dev_certs()
    async with await purenng.stream.listen(
        "tls+tcp://127.0.0.1:0", tls_config=certs.server_config()
    ) as lst:
        with pytest.raises(purenng.TLSError, match="unable to get local issuer"):
            await purenng.stream.dial(lst.url, tls_config=other.client_config())
        with pytest.raises(purenng.BadOption, match="listener needs a certificate"):
            await purenng.stream.listen("tls+tcp://127.0.0.1:0")


async def test_listener_details_and_iteration() -> None:
    lst = await purenng.stream.listen("tcp://127.0.0.1:0")
    assert lst.port is not None
    assert lst.port > 0
    assert lst.url == f"tcp://127.0.0.1:{lst.port}"
    assert lst.local_address[1] == lst.port
    assert repr(lst).endswith(f"{lst.url}>")
    got: list[bytes] = []

    async def collect() -> None:
        async for conn in lst:
            got.append(await conn.read_exactly(3))
            conn.close()

    task = asyncio.create_task(collect())
    for word in (b"one", b"two"):
        c = await purenng.stream.dial(lst.url)
        c.write(word)
        await c.drain()
        assert await c.read() == b""  # the server closed after reading
        await c.aclose()
    await lst.aclose()  # ends the iteration
    async with asyncio.timeout(T):
        await task
    assert got == [b"one", b"two"]
    with pytest.raises(purenng.Closed):
        await lst.accept()


async def test_stream_end_and_short_read() -> None:
    async with await purenng.stream.listen("tcp://127.0.0.1:0") as lst:
        c = await purenng.stream.dial(lst.url)
        s = await lst.accept()
        s.write(b"ab")
        await s.aclose()
        with pytest.raises(purenng.ConnectionReset, match="short"):
            await c.read_exactly(3)
        assert await c.read() == b""
        c.close()
        with pytest.raises(purenng.Closed):
            await c.read()
        with pytest.raises(purenng.Closed):
            c.write(b"x")


async def test_errors() -> None:
    with pytest.raises(purenng.NotSupported, match="carries messages"):
        await purenng.stream.dial("inproc://x")
    with pytest.raises(purenng.NotSupported, match="carries messages"):
        await purenng.stream.listen("inproc://x")
    with pytest.raises(purenng.BadOption, match="unknown option 'bogus'"):
        await purenng.stream.dial("tcp://127.0.0.1:1", bogus=1)
    with pytest.raises(purenng.BadOption, match="tcp_nodelay"):
        await purenng.stream.dial("tcp://127.0.0.1:1", tcp_nodelay="yes")
    with pytest.raises(purenng.BadAddress):
        await purenng.stream.dial("tcp://127.0.0.1:0")
    with pytest.raises(purenng.BadAddress):
        await purenng.stream.dial("not a url")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound, not listening: refused
        with pytest.raises(purenng.ConnectionRefused):
            await purenng.stream.dial(f"tcp://127.0.0.1:{port}")
    async with await purenng.stream.listen("tcp://127.0.0.1:0") as lst:
        with pytest.raises(purenng.AddressInUse):
            await purenng.stream.listen(lst.url)


async def test_dial_timeout(certs: DevCerts) -> None:
    """A TLS server that never answers: the caller's timeout ends the wait."""
    with socket.socket() as srv:
        srv.bind(("127.0.0.1", 0))
        srv.listen()
        url = f"tls+tcp://127.0.0.1:{srv.getsockname()[1]}"
        with pytest.raises(purenng.Timeout, match=r"not connected within 0\.2 s"):
            await purenng.stream.dial(url, timeout=0.2, tls_config=certs.client_config())
        with pytest.raises(purenng.Timeout, match="TLS handshake"):
            await purenng.stream.dial(
                url, timeout=T, tls_config=certs.client_config(), tls_handshake_timeout=0.2
            )


async def test_plugins_toml_defaults_apply(tmp_path: Path, global_registry: None) -> None:
    cfg = tmp_path / "plugins.toml"
    cfg.write_text("[transport.tcp]\ntcp_nodelay = false\n")
    purenng.configure_plugins(cfg)
    async with await purenng.stream.listen("tcp://127.0.0.1:0") as lst:
        c = await purenng.stream.dial(lst.url)
        s = await lst.accept()
        sock = c.extra("socket")
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 0
        c.close()
        s.close()
        c2 = await purenng.stream.dial(lst.url, tcp_nodelay=True)
        assert c2.extra("socket").getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
        c2.close()
        (await lst.accept()).close()


# ---------------------------------------------------------------- a message transport with streams


class _MemStream(Stream):
    """One direction of an in-memory byte pipe pair."""

    def __init__(self) -> None:
        self.inbox: asyncio.Queue[bytes] = asyncio.Queue()
        self.peer: _MemStream | None = None
        self.closed = False

    async def read(self, max_bytes: int = 65536) -> bytes:
        return await self.inbox.get()

    def write(self, data: Any) -> None:
        assert self.peer is not None
        self.peer.inbox.put_nowait(bytes(data))

    def close(self) -> None:
        if not self.closed and self.peer is not None:
            self.closed = True
            self.peer.inbox.put_nowait(b"")


class _MemListener(StreamListener):
    def __init__(self, url: str) -> None:
        self._url = url
        self.queue: asyncio.Queue[Stream] = asyncio.Queue()

    async def accept(self) -> Stream:
        return await self.queue.get()

    def close(self) -> None:
        pass

    @property
    def url(self) -> str:
        return self._url


class _MessageTransportWithStreams(PipeTransport):
    schemes = ("memstream",)
    option_prefix = "memstream"

    def __init__(self) -> None:
        self.listeners: dict[str, _MemListener] = {}

    async def dial(self, url: URL, options: Mapping[str, Any], proto: Any) -> Any:
        raise NotImplementedError

    async def listen(self, url: URL, options: Mapping[str, Any], proto: Any, on_pipe: Any) -> Any:
        raise NotImplementedError

    async def dial_stream(self, url: URL, options: Mapping[str, Any]) -> Stream:
        a, b = _MemStream(), _MemStream()
        a.peer, b.peer = b, a
        self.listeners[url.raw].queue.put_nowait(b)
        return a

    async def listen_stream(self, url: URL, options: Mapping[str, Any]) -> StreamListener:
        lst = _MemListener(url.raw)
        self.listeners[url.raw] = lst
        return lst


async def test_message_transport_offering_streams(global_registry: None) -> None:
    transport = _MessageTransportWithStreams()

    class Plugin:
        @hookimpl
        def purenng_register_transports(self, registry: registry_mod.Registry) -> None:
            registry.add_transport(transport)

    purenng.configure_plugins().register_module(Plugin(), "test:memstream")
    async with await purenng.stream.listen("memstream://a") as lst:
        assert lst.port is None
        c = await purenng.stream.dial("memstream://a")
        s = await lst.accept()
        c.write(b"through a plugin")
        assert await s.read() == b"through a plugin"
        c.close()
        assert await s.read() == b""


def test_reachable_as_attribute() -> None:
    code = (
        "import purenng; print(purenng.stream.dial.__name__, purenng.tls_config.TLSConfig.__name__)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert out.stdout.split() == ["dial", "TLSConfig"]
