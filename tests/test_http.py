"""purenng.http: static files, REST handlers and SP sockets sharing one port; limits; CLI.

* Normal requests go through :class:`purenng.http.Client`; hostile or
  malformed ones are written raw on a socket, so the test controls every
  byte (and h11 on the client side cannot tidy them up).
* The browser-style test uses the ``websockets`` package as the client, an
  independent WebSocket implementation, the way a web page would connect.
* Every wait is bounded; the slow-client tests configure short timeouts and
  check only that the server gave up and still serves others.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
from typing import TYPE_CHECKING, Any

import pytest

import purenng
from purenng.http import Client, HTTPError, Request, Response, Server, json_response

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

T = 10.0


@pytest.fixture
def site(tmp_path: Path) -> Path:
    """A small web root, with a secret next to it (outside)."""
    root = tmp_path / "site"
    (root / "docs").mkdir(parents=True)
    (root / "index.html").write_text("<h1>home</h1>")
    (root / "app.js").write_text("console.log(1)")
    (root / "data.bin").write_bytes(bytes(range(256)) * 2000)  # 512000 bytes
    (root / "docs" / "index.html").write_text("<p>docs</p>")
    (tmp_path / "secret.txt").write_text("do not serve")
    (root / "link").symlink_to(tmp_path / "secret.txt")
    return root


def app(site: Path, **kw: Any) -> Server:
    srv = Server("127.0.0.1", 0, **kw)
    srv.static("/", site)

    @srv.route("GET", "/api/status")
    async def status(request: Request) -> dict[str, Any]:
        return {"ok": True, "q": request.query}

    @srv.route("POST", "/api/echo")
    async def echo(request: Request) -> Response:
        return json_response({"got": request.json()}, status=201)

    @srv.route("GET", "/api/items/{item}")
    def item(request: Request) -> str:  # plain functions work too
        return f"item {request.path_params['item']}"

    @srv.route("GET", "/api/raw")
    async def raw(request: Request) -> bytes:
        return b"\x00\x01"

    @srv.route("DELETE", "/api/nothing")
    async def nothing(request: Request) -> None:
        return None

    @srv.route("GET", "/api/teapot")
    async def teapot(request: Request) -> None:
        raise HTTPError(418, "short and stout")

    @srv.route("GET", "/api/broken")
    async def broken(request: Request) -> None:
        raise RuntimeError("handler bug")

    return srv


async def raw_request(port: int, data: bytes, *, read_all: bool = True) -> bytes:
    """Write ``data`` on a fresh connection; everything the server sends until it closes."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(data)
        async with asyncio.timeout(T):
            if read_all:
                return await reader.read()
            return await reader.readuntil(b"\r\n\r\n")
    finally:
        writer.close()


# ---------------------------------------------------------------- one port for everything


async def test_static_rest_and_sp_on_one_port(site: Path) -> None:
    async with app(site) as srv, purenng.Pair0(recv_timeout=T) as chat:
        lst = await srv.alisten_sp(chat, "/chat")
        assert lst.port == srv.port
        assert lst.url == f"ws://127.0.0.1:{srv.port}/chat"
        web = Client(srv.url)
        page = await web.aget("/")
        assert (page.status, page.body) == (200, b"<h1>home</h1>")
        assert page.headers["content-type"] == "text/html; charset=utf-8"
        api = await web.aget("/api/status?x=1")
        assert (api.status, api.json()) == (200, {"ok": True, "q": {"x": "1"}})
        async with purenng.Pair0(recv_timeout=T) as peer:
            await peer.adial(lst.url, block=True)
            await peer.asend(b"over the shared port")
            assert await chat.arecv() == b"over the shared port"
            await chat.asend(b"back")
            assert await peer.arecv() == b"back"
        assert (await web.aget("/api/items/42")).text() == "item 42"


async def test_sp_listener_first_then_server_joins(site: Path) -> None:
    async with purenng.Rep0(recv_timeout=T) as rep, purenng.Req0(recv_timeout=T) as req:
        lst = await rep.alisten("ws://127.0.0.1:0/rpc")
        srv = Server("127.0.0.1", lst.port or 0)
        srv.static("/", site)
        async with srv:
            assert srv.port == lst.port
            assert (await Client(srv.url).aget("/app.js")).text() == "console.log(1)"
            await req.adial(lst.url, block=True)
            await req.asend(b"q")
            assert await rep.arecv() == b"q"
            await rep.asend(b"a")
            assert await req.arecv() == b"a"
        # The server left; the SP path still serves, static files are gone.
        assert (await Client(f"http://127.0.0.1:{lst.port}").aget("/app.js")).status == 404
        await req.asend(b"q2")
        assert await rep.arecv() == b"q2"


async def test_sp_path_and_route_conflicts(site: Path) -> None:
    async with app(site) as srv, purenng.Pair0() as a, purenng.Pair0() as b:
        await srv.alisten_sp(a, "/x")
        with pytest.raises(purenng.AddressInUse):
            await srv.alisten_sp(b, "/x")
        with pytest.raises(purenng.AddressInUse, match="HTTP route"):
            await srv.alisten_sp(b, "/api/status")
        with pytest.raises(ValueError, match="already routed"):
            srv.add_route("GET", "/api/status", lambda r: None)


# ---------------------------------------------------------------- REST


async def test_rest_handlers(site: Path) -> None:
    async with app(site) as srv:
        web = Client(srv.url)
        r = await web.apost("/api/echo", json={"a": [1, 2]})
        assert (r.status, r.json()) == (201, {"got": {"a": [1, 2]}})
        assert r.headers["content-type"] == "application/json"
        r = await web.aget("/api/raw")
        assert (r.body, r.headers["content-type"]) == (b"\x00\x01", "application/octet-stream")
        r = await web.arequest("DELETE", "/api/nothing")
        assert (r.status, r.body) == (204, b"")
        r = await web.aget("/api/teapot")
        assert (r.status, r.text()) == (418, "short and stout\n")
        r = await web.aget("/api/broken")  # logged; the server lives on
        assert r.status == 500
        assert "handler bug" not in r.text()
        r = await web.apost("/api/echo", body=b"{not json")
        assert r.status == 400
        r = await web.arequest("PUT", "/api/status")
        assert (r.status, r.headers["allow"]) == (405, "GET")
        r = await web.arequest("HEAD", "/api/status")
        assert r.status == 200
        assert r.body == b""
        assert int(r.headers["content-length"]) > 0
        assert (await web.aget("/api/status")).status == 200


async def test_keep_alive_and_pipelining(site: Path) -> None:
    async with app(site) as srv:
        one = b"GET /api/raw HTTP/1.1\r\nHost: x\r\n\r\n"
        last = b"GET /api/raw HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        out = await raw_request(srv.port, one * 20 + last)
        assert out.count(b"HTTP/1.1 200 OK\r\n") == 21


# ---------------------------------------------------------------- static files


async def test_static_files(site: Path) -> None:
    async with app(site) as srv:
        web = Client(srv.url)
        r = await web.aget("/docs")
        assert (r.status, r.headers["location"]) == (301, "/docs/")
        r = await web.aget("/docs/")
        assert (r.status, r.body) == (200, b"<p>docs</p>")
        r = await web.aget("/data.bin")
        assert r.body == bytes(range(256)) * 2000
        assert r.headers["content-type"] == "application/octet-stream"
        assert "javascript" in (await web.aget("/app.js")).headers["content-type"]
        r = await web.arequest("HEAD", "/data.bin")
        assert (r.status, r.body, r.headers["content-length"]) == (200, b"", "512000")
        assert (await web.aget("/missing.html")).status == 404
        assert (await web.apost("/index.html", body=b"x")).status == 405


@pytest.mark.parametrize(
    "target",
    [
        "/../secret.txt",
        "/%2e%2e/secret.txt",
        "/%2E%2E%2Fsecret.txt",
        "/docs/../../secret.txt",
        "/docs/%2e%2e/%2e%2e/secret.txt",
        "/..%5csecret.txt",
        "/link",  # a symbolic link pointing outside the root
        "/index.html%00.txt",
    ],
)
async def test_path_traversal_is_refused(site: Path, target: str) -> None:
    async with app(site) as srv:
        out = await raw_request(
            srv.port, f"GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode()
        )
        status = out.split(b"\r\n", 1)[0]
        assert status in (b"HTTP/1.1 404 Not Found", b"HTTP/1.1 400 Bad Request"), out
        assert b"do not serve" not in out
        assert (await Client(srv.url).aget("/")).status == 200  # and it serves on


# ---------------------------------------------------------------- hostile clients


async def test_slow_loris_is_disconnected(site: Path) -> None:
    async with app(site, header_timeout=0.5) as srv:
        reader, writer = await asyncio.open_connection("127.0.0.1", srv.port)
        writer.write(b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: ")  # and never finishes
        async with asyncio.timeout(T):
            answer = await reader.read()  # until the server closes
        writer.close()
        assert answer.startswith(b"HTTP/1.1 408 ")
        # An idle connection that sends nothing is closed too, silently.
        reader, writer = await asyncio.open_connection("127.0.0.1", srv.port)
        async with asyncio.timeout(T):
            assert await reader.read() == b""
        writer.close()
        assert (await Client(srv.url).aget("/")).status == 200


async def test_slow_body_gets_408(site: Path) -> None:
    async with app(site, body_timeout=0.2) as srv:
        out = await raw_request(
            srv.port, b"POST /api/echo HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc"
        )
        assert out.startswith(b"HTTP/1.1 408 ")


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        (b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 5000 + b"\r\n\r\n", b"431"),
        (b"POST /api/echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\n", b"413"),
        (
            b"POST /api/echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
            + (b"400\r\n" + b"a" * 1024 + b"\r\n") * 5,
            b"413",
        ),
        (b"GARBAGE\r\n\r\n", b"400"),
        (b"GET / HTTP/1.1\r\n\r\n", b"400"),  # HTTP/1.1 without Host
        (b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n", b"400"),
    ],
)
async def test_bad_requests_get_4xx_and_the_server_lives_on(
    site: Path, request_bytes: bytes, status: bytes
) -> None:
    async with app(site, max_header_size=4096, max_body_size=4096) as srv:
        out = await raw_request(srv.port, request_bytes)
        assert out.split(b" ", 2)[1] == status, out[:200]
        assert (await Client(srv.url).aget("/")).status == 200


async def test_non_sp_clients_on_an_sp_path_get_4xx(site: Path) -> None:
    async with app(site) as srv, purenng.Pair0(recv_timeout=T) as a:
        lst = await srv.alisten_sp(a, "/sp")
        web = Client(srv.url)
        r = await web.aget("/sp")  # a browser opening the URL
        assert r.status == 400
        assert "pair.sp.nanomsg.org" in r.text()
        assert (await web.apost("/sp", body=b"x")).status == 405
        wrong = (
            "GET /sp HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
            "Sec-WebSocket-Protocol: chat\r\n\r\n"
        )
        out = await raw_request(srv.port, wrong.encode())
        assert out.startswith(b"HTTP/1.1 400 ")
        async with purenng.Pair0(recv_timeout=T) as b:  # the path still serves SP
            await b.adial(lst.url, block=True)
            await b.asend(b"fine")
            assert await a.arecv() == b"fine"


# ---------------------------------------------------------------- a browser-style client


async def test_websockets_client_as_a_browser_would(site: Path) -> None:
    from websockets.asyncio.client import connect
    from websockets.exceptions import ConnectionClosedError
    from websockets.typing import Subprotocol

    pair = [Subprotocol("pair.sp.nanomsg.org")]

    async with app(site) as srv, purenng.Pair0(recv_timeout=T) as a:
        lst = await srv.alisten_sp(a, "/chat")
        async with asyncio.timeout(T):
            async with connect(lst.url, subprotocols=pair) as ws:
                assert ws.subprotocol == "pair.sp.nanomsg.org"
                await ws.send(b"hello from the page")
                assert await a.arecv() == b"hello from the page"
                await a.asend(b"hello page")
                assert await ws.recv() == b"hello page"
                big = bytes(300_000)  # several 64 KiB frames, one message
                await a.asend(big)
                assert await ws.recv() == big
            async with connect(lst.url, subprotocols=pair) as ws:
                await ws.send("text is not SP")
                with pytest.raises(ConnectionClosedError) as info:
                    await ws.recv()
                assert info.value.rcvd is not None
                assert info.value.rcvd.code == 1003


# ---------------------------------------------------------------- TLS and the blocking API


async def test_https_and_wss_share_a_port(site: Path) -> None:
    certs = pytest.importorskip("purenng.certs").make_dev_certs()
    async with (
        app(site, tls_config=certs.server_config()) as srv,
        purenng.Pair0(recv_timeout=T) as a,
        purenng.Pair0(recv_timeout=T) as b,
    ):
        assert srv.url.startswith("https://")
        lst = await srv.alisten_sp(a, "/secure")
        assert lst.url.startswith("wss://")
        web = Client(srv.url, tls_config=certs.client_config())
        assert (await web.aget("/")).body == b"<h1>home</h1>"
        await b.adial(lst.url, block=True, tls_config=certs.client_config())
        await b.asend(b"tls")
        assert await a.arecv() == b"tls"
        # Plain HTTP on the TLS port is refused, and the server serves on.
        with pytest.raises((purenng.ConnectionReset, purenng.ProtocolError, OSError)):
            await Client(f"http://127.0.0.1:{srv.port}").aget("/")
        assert (await web.aget("/api/status")).status == 200


def test_blocking_server_with_sockets_on_the_background_loop(site: Path) -> None:
    with app(site) as srv, purenng.Pull0(recv_timeout=T) as pull, purenng.Push0() as push:
        lst = srv.listen_sp(pull, "/in")
        push.dial(lst.url, block=True)
        push.send(b"sync")
        assert pull.recv() == b"sync"
        assert Client(srv.url).get("/api/status").json()["ok"] is True
    assert srv.closed


@pytest.mark.parametrize(
    "kwargs",
    [{"header_timeout": 0}, {"max_body_size": -1}, {"port": 70000}, {"body_timeout": "x"}],
)
def test_server_option_validation(kwargs: dict[str, Any]) -> None:
    with pytest.raises(purenng.BadOption):
        Server(**kwargs)


def test_static_needs_a_directory(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not a directory"):
        Server().static("/", tmp_path / "nope")


# ---------------------------------------------------------------- purenng serve


@pytest.fixture
def serve_cli(site: Path) -> Iterator[tuple[subprocess.Popen[str], str]]:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "purenng.cli.main",
            "serve",
            "--port",
            "0",
            "--static",
            str(site),
            "--sp",
            "rep0:/echo",
            "--sp",
            "pull0:/log",
            "--duration",
            "30",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        assert proc.stderr is not None
        first = proc.stdout.readline()  # bounded by --duration and the test timeout
        assert first.startswith("serving http://127.0.0.1:"), first + proc.stderr.read()
        yield proc, first.split()[1]
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(T)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(T)
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()


def test_cli_serve(serve_cli: tuple[subprocess.Popen[str], str]) -> None:
    proc, url = serve_cli
    assert proc.stdout is not None
    lines = [proc.stdout.readline() for _ in range(3)]
    port = url.rsplit(":", 1)[1]
    assert lines[1].startswith(f"sp ws://127.0.0.1:{port}/echo rep0 echo")
    assert Client(url).get("/").body == b"<h1>home</h1>"
    with purenng.Req0(recv_timeout=T) as req:
        req.dial(f"ws://127.0.0.1:{port}/echo", block=True)
        req.send(b"ping")
        assert req.recv() == b"ping"
    with purenng.Push0() as push:
        push.dial(f"ws://127.0.0.1:{port}/log", block=True)
        push.send(b"line\x01")
        assert proc.stdout.readline() == '/log "line\\x01"\n'
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(T) == 0


def test_cli_serve_refuses_what_it_cannot_serve() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "purenng.cli.main", "serve", "--port", "0", "--sp", "req0:/x"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert out.returncode == 1
    assert "req0" in out.stderr
