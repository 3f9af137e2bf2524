"""Targets for the shared HTTP server: the request path and static-file resolution.

* ``http_connection``: arbitrary bytes, cut into arbitrary reads, fed to one
  :class:`purenng.http.service._Connection` of an unbound ``Service`` through
  a fake transport, on one event loop kept for the whole run.  The service
  has an SP path (``/sp``), a byte-stream path (``/stream``), REST routes
  (one raising :class:`HTTPError`, one failing) and a static mount at
  ``/static`` whose directory holds symbolic links that point out of it.
  Allowed: nothing may escape ``data_received``/``eof_received`` (asyncio
  would log it and kill the connection), a handler's exception must become a
  500, and no byte of the files outside the root may ever be written.
* ``static_resolve``: a request path, decoded the way the service decodes it
  (``unquote(..., errors="strict")``), then :func:`_under` and
  :func:`_resolve` against the same directory.  Allowed: ``UnicodeDecodeError``
  (the service answers it with 400).  Whatever resolves must lie inside the
  root once every symbolic link is followed.
"""

from __future__ import annotations

import asyncio
import atexit
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import h11

from purenng.http._types import HTTPError
from purenng.http.service import Limits, Service, _Connection, _resolve, _under

from ._harness import Input, target

_MODULES = (
    "purenng.http.service",
    "purenng.http._types",
    "purenng.http.upgrade",
    "purenng.transports._ws_codec",
)
#: Bytes that exist only in the files outside the static root.
SECRET = b"SECRET-OUTSIDE-THE-ROOT-7f3a"
_state: dict[str, Any] = {}


def _tree() -> tuple[Path, Path]:
    """A temporary tree: ``root/`` (served) and ``outside/`` (never served)."""
    if "root" in _state:
        return _state["root"], _state["outside"]
    base = Path(tempfile.mkdtemp(prefix="purenng-fuzz-http-")).resolve()
    atexit.register(shutil.rmtree, base, True)
    root, outside = base / "root", base / "outside"
    root.mkdir()
    outside.mkdir()
    (outside / "secret.txt").write_bytes(SECRET)
    (base / "secret.txt").write_bytes(SECRET)
    (root / "index.html").write_bytes(b"<p>index</p>")
    (root / "a.txt").write_bytes(b"file a")
    (root / "sub").mkdir()
    (root / "sub" / "index.html").write_bytes(b"sub index")
    (root / "sub" / "b.json").write_bytes(b"{}")
    (root / "x y%.txt").write_bytes(b"odd name")
    os.symlink(outside / "secret.txt", root / "link_out")
    os.symlink(outside, root / "dir_out")
    os.symlink("../secret.txt", root / "sub" / "rel_out")
    os.symlink("a.txt", root / "link_in")
    os.symlink(root / "loop", root / "loop")
    _state["root"], _state["outside"] = root, outside
    return root, outside


class _Route:
    """A WebSocket route that takes the upgraded transport and closes it."""

    def __init__(self, subprotocol: str | None, loop: asyncio.AbstractEventLoop) -> None:
        self.subprotocol = subprotocol
        self.response_headers = {"X-Route": "1"}
        self.loop = loop
        self.upgrades = 0

    def on_upgrade(self, transport: asyncio.Transport, trailing: bytes) -> None:
        assert isinstance(trailing, bytes)
        self.upgrades += 1
        transport.close()


class FakeTransport(asyncio.Transport):
    """Records what is written; closing tells the protocol on the next loop turn."""

    def __init__(self, loop: asyncio.AbstractEventLoop, protocol: asyncio.Protocol) -> None:
        super().__init__()
        self.loop = loop
        self.protocol = protocol
        self.out = bytearray()
        self.closing = False
        self.paused = False

    def write(self, data: Any) -> None:
        self.out += data

    def writelines(self, list_of_data: Any) -> None:
        for d in list_of_data:
            self.write(d)

    def _lost(self) -> None:
        if not self.closing:
            self.closing = True
            self.loop.call_soon(self.protocol.connection_lost, None)

    def close(self) -> None:
        self._lost()

    def abort(self) -> None:
        self._lost()

    def is_closing(self) -> bool:
        return self.closing

    def pause_reading(self) -> None:
        self.paused = True

    def resume_reading(self) -> None:
        self.paused = False

    def is_reading(self) -> bool:
        return not self.paused

    def set_protocol(self, protocol: Any) -> None:
        self.protocol = protocol

    def get_protocol(self) -> Any:
        return self.protocol

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return ("127.0.0.1", 40000) if name == "peername" else default

    def get_write_buffer_size(self) -> int:
        return 0

    def can_write_eof(self) -> bool:
        return False


async def _item(request: Any) -> Any:
    return {"id": request.path_params["id"], "q": request.query}


async def _echo(request: Any) -> Any:
    return request.body


def _teapot(request: Any) -> Any:
    raise HTTPError(418, "teapot", {"X-Why": "fuzz"})


def _broken(request: Any) -> Any:
    raise RuntimeError("handler failure (expected: answered 500)")


def _json(request: Any) -> Any:
    return request.json()


def _service() -> tuple[asyncio.AbstractEventLoop, Service]:
    if "svc" in _state:
        return _state["loop"], _state["svc"]
    logging.getLogger("purenng.http").disabled = True  # handler failures are logged
    loop = asyncio.new_event_loop()
    atexit.register(shutdown)
    root, _ = _tree()
    svc = Service(loop, "127.0.0.1", 0, 0, None, Limits(max_header_size=2048, max_body_size=512))
    svc.add_ws_route("/sp", _Route("pair1.sp.nanomsg.org", loop), "fuzz")
    svc.add_ws_route("/stream", _Route(None, loop), "fuzz")
    svc.add_route("GET", "/items/{id}", _item, None)
    svc.add_route("POST", "/echo", _echo, None)
    svc.add_route("GET", "/teapot", _teapot, None)
    svc.add_route("GET", "/broken", _broken, None)
    svc.add_route("PUT", "/json", _json, None)
    svc.add_mount("/static", root, "index.html", None)
    svc.add_mount("/", root / "sub", "index.html", None)
    _state["loop"], _state["svc"] = loop, svc
    return loop, svc


def shutdown() -> None:
    """Close the loop (and its executor threads) kept for the run; idempotent."""
    loop = _state.pop("loop", None)
    _state.pop("svc", None)
    if loop is not None and not loop.is_closed():
        loop.run_until_complete(loop.shutdown_default_executor())
        loop.close()


async def _drive(conn: _Connection, tr: FakeTransport, pieces: list[bytes], eof: bool) -> None:
    for piece in pieces:
        if tr.closing:
            break
        conn.data_received(piece)
        for _ in range(3):
            await asyncio.sleep(0)
    if eof and not tr.closing:
        keep = conn.eof_received()
        if not keep:
            tr.close()
    # Let handlers and file reads finish (bounded: the per-input time limit).
    for _ in range(200):
        task = conn.task
        if task is None or task.done():
            break
        await asyncio.wait([task], timeout=1.0)
    for _ in range(3):
        await asyncio.sleep(0)


_GET = b"GET /static/a.txt HTTP/1.1\r\nHost: x\r\n\r\n"
_UP = (
    b"GET /sp HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: MDEyMzQ1Njc4OWFiY2RlZg==\r\n"
    b"Sec-WebSocket-Protocol: pair1.sp.nanomsg.org\r\n\r\n\x82\x00"
)
_HTTP_DICT = (
    b"GET ",
    b"POST ",
    b"HEAD ",
    b"PUT ",
    b" HTTP/1.1\r\n",
    b"Host: x\r\n",
    b"\r\n",
    b"Content-Length: ",
    b"Transfer-Encoding: chunked\r\n",
    b"Expect: 100-continue\r\n",
    b"Connection: close\r\n",
    b"Upgrade: websocket\r\n",
    b"Connection: Upgrade\r\n",
    b"Sec-WebSocket-Version: 13\r\n",
    b"Sec-WebSocket-Key: MDEyMzQ1Njc4OWFiY2RlZg==\r\n",
    b"/static/",
    b"/sp",
    b"/stream",
    b"/items/",
    b"/echo",
    b"/teapot",
    b"/broken",
    b"/json",
    b"%2e%2e",
    b"%2E%2E%2F",
    b"..",
    b"%00",
    b"%5c",
    b"\\",
    b"link_out",
    b"dir_out/secret.txt",
    b"sub/rel_out",
    b"loop",
    b"%ff",
)


@target(
    "http_connection",
    allowed=(),
    modules=_MODULES,
    seeds=(
        b"\x00\x00" + _GET,
        b"\x01\x05" + _GET + b"HEAD /static/sub HTTP/1.1\r\nHost: x\r\n\r\n",
        b"\x00\x07" + _UP,
        b"\x01\x00POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello",
        b"\x00\x00PUT /json HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"2\r\n{}\r\n0\r\n\r\n",
        b"\x00\x00GET /static/link_out HTTP/1.1\r\nHost: x\r\n\r\n"
        b"GET /static/%2e%2e/secret.txt HTTP/1.1\r\nHost: x\r\n\r\n",
        b"\x00\x02GET /items/42?a=1&b HTTP/1.1\r\nHost: x\r\n\r\n"
        b"GET /broken HTTP/1.1\r\nHost: x\r\n\r\nGET /teapot HTTP/1.1\r\nHost: x\r\n\r\n",
        b"\x01\x00GET /static/dir_out/secret.txt HTTP/1.1\r\nHost: x\r\n\r\n",
    ),
    weight=0.12,
    max_len=4096,
    dictionary=_HTTP_DICT,
)
def http_connection(data: bytes) -> object:
    """Flags (bit 0: EOF at the end), chunk seed, the bytes a client sends."""
    loop, svc = _service()
    inp = Input(data)
    eof = inp.flag()
    cuts = Input(inp.take(1))
    pieces = cuts.chunks(inp.rest())
    conn = _Connection(svc)
    tr = FakeTransport(loop, conn)
    conn.connection_made(tr)
    try:
        loop.run_until_complete(_drive(conn, tr, pieces, eof))
    finally:
        if not tr.closing:
            tr.abort()
        loop.run_until_complete(asyncio.sleep(0))
        if conn.task is not None and not conn.task.done():
            conn.task.cancel()
            loop.run_until_complete(asyncio.sleep(0))
    out = bytes(tr.out)
    assert SECRET not in out, "a file outside the static root was served"
    svc.connections.clear()
    status = out[9:12] if out.startswith(b"HTTP/1.1 ") else b""
    return (status, out.count(b"HTTP/1.1 "))


@target(
    "static_resolve",
    allowed=(UnicodeDecodeError,),
    modules=("purenng.http.service",),
    seeds=(
        b"/static/a.txt",
        b"/static/%2e%2e/secret.txt",
        b"/static/link_out",
        b"/static/dir_out/secret.txt",
        b"/static/sub/rel_out",
        b"/static/..%5csecret.txt",
        b"/static/%2E%2E%2F%2E%2E%2Fsecret.txt",
        b"/sub/../../outside/secret.txt",
        b"/static/loop",
        b"/static/a.txt%00.html",
    ),
    weight=1.2,
    max_len=512,
    dictionary=_HTTP_DICT[15:],
)
def static_resolve(data: bytes) -> object:
    """A request path (its bytes as sent), resolved like the service resolves it."""
    root, outside = _tree()
    target_text = data.decode("ascii", "replace")
    raw_path = target_text.partition("?")[0]
    path = unquote(raw_path, errors="strict")
    if "\x00" in path or not path.startswith("/"):
        return ("malformed",)
    found = None
    for prefix in ("/static", "/"):
        rel = _under(prefix, path)
        if rel is None:
            continue
        found = _resolve(root, rel)
        if found is not None:
            real = Path(os.path.realpath(found))
            assert real == root or real.is_relative_to(root), f"{path!r} resolved to {real}"
            assert not real.is_relative_to(outside)
            try:
                is_file = real.is_file()
                assert not is_file or SECRET not in real.read_bytes()
            except OSError:  # a name too long for the file system: not served either
                is_file = False
            return ("found", is_file)
        break
    return ("none",)


__all__ = ["SECRET", "FakeTransport", "h11", "http_connection", "shutdown", "static_resolve"]
