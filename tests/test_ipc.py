"""The ipc transport: ipc://, unix:// and abstract:// over UNIX domain sockets.

Async tests run on pytest-asyncio's (plain asyncio) loop; blocking tests run on
purenng's background loop, which is uvloop when it is installed, so both
event loop implementations are exercised.
"""

from __future__ import annotations

import os
import socket
import stat
import struct
import sys
import uuid
from typing import TYPE_CHECKING, Any

import pytest

import purenng
from purenng.core.errors import (
    AddressInUse,
    BadAddress,
    BadOption,
    ConnectionRefused,
    NotSupported,
)
from purenng.transports.ipc import MAX_PATH_BYTES, PeerCredentials
from support.pipes import stream_pipe
from support.raw_sp import PAIR0, PULL, PUSH, RawSP
from support.waiting import wait_for

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = pytest.mark.skipif(not hasattr(socket, "AF_UNIX"), reason="needs AF_UNIX")
linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux only")

#: Generous limit that only stops hangs.
T = 5.0


def _url(tmp_path: Path, name: str = "s.sock", scheme: str = "ipc") -> str:
    return f"{scheme}://{tmp_path / name}"


def _abstract_name() -> str:
    return f"purenng-test-{uuid.uuid4().hex}"


def _me() -> PeerCredentials:
    return PeerCredentials(os.getpid(), os.getuid(), os.getgid())


# ---------------------------------------------------------------- traffic


async def test_push_pull_both_directions_async(tmp_path: Path) -> None:
    url = _url(tmp_path)
    async with (
        purenng.Pull0(listen=url, recv_timeout=T) as pull,
        purenng.Push0(send_timeout=T) as push,
    ):
        await push.adial(url, block=True)
        for i in range(20):
            await push.asend(b"to-listener %d" % i)
        assert [await pull.arecv() for _ in range(20)] == [b"to-listener %d" % i for i in range(20)]
    url2 = _url(tmp_path, "r.sock")
    async with (
        purenng.Push0(listen=url2, send_timeout=T) as push,
        purenng.Pull0(recv_timeout=T) as pull,
    ):
        await pull.adial(url2, block=True)
        await push.asend(b"to-dialer")
        assert await pull.arecv() == b"to-dialer"


def test_push_pull_both_directions_blocking(tmp_path: Path) -> None:
    url = _url(tmp_path)
    with (
        purenng.Pull0(listen=url, recv_timeout=T) as pull,
        purenng.Push0(send_timeout=T) as push,
    ):
        push.dial(url, block=True)
        for i in range(20):
            push.send(b"%d" % i)
        assert [pull.recv() for _ in range(20)] == [b"%d" % i for i in range(20)]
    url2 = _url(tmp_path, "r.sock")
    with (
        purenng.Push0(listen=url2, send_timeout=T) as push,
        purenng.Pull0(recv_timeout=T) as pull,
    ):
        pull.dial(url2, block=True)
        push.send(b"to-dialer")
        assert pull.recv() == b"to-dialer"


async def test_pair0_async(tmp_path: Path) -> None:
    url = _url(tmp_path)
    async with (
        purenng.Pair0(listen=url, recv_timeout=T) as a,
        purenng.Pair0(recv_timeout=T) as b,
    ):
        await b.adial(url, block=True)
        await b.asend(b"ping")
        assert await a.arecv() == b"ping"
        await a.asend(b"pong")
        assert await b.arecv() == b"pong"


def test_pair0_blocking(tmp_path: Path) -> None:
    url = _url(tmp_path)
    with purenng.Pair0(listen=url, recv_timeout=T) as a, purenng.Pair0(recv_timeout=T) as b:
        b.dial(url, block=True)
        b.send(b"ping")
        assert a.recv() == b"ping"
        a.send(b"pong")
        assert b.recv() == b"pong"


def test_unix_alias(tmp_path: Path) -> None:
    url = _url(tmp_path, scheme="unix")
    with purenng.Pair0(listen=url, recv_timeout=T) as a, purenng.Pair0(recv_timeout=T) as b:
        b.dial(url, block=True)
        b.send(b"via unix://")
        assert a.recv() == b"via unix://"
        assert stat.S_ISSOCK(os.stat(tmp_path / "s.sock").st_mode)
        # The unix:// listener is reachable through ipc:// too: same address space.
    with purenng.Pair0(listen=url, recv_timeout=T) as a, purenng.Pair0(recv_timeout=T) as b:
        b.dial(_url(tmp_path), block=True)
        b.send(b"via ipc://")
        assert a.recv() == b"via ipc://"


def test_relative_path_is_relative_to_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with purenng.Pair0(listen="ipc://rel.sock", recv_timeout=T) as a:
        assert stat.S_ISSOCK(os.stat(tmp_path / "rel.sock").st_mode)
        assert a.listeners[0].url == "ipc://rel.sock"
        with purenng.Pair0(dial="ipc://rel.sock", recv_timeout=T) as b:
            wait_for(lambda: len(b.pipes) == 1, "the dialer's pipe")
            b.send(b"x")
            assert a.recv() == b"x"
    assert not (tmp_path / "rel.sock").exists()


def _abstract_roundtrip_blocking(name: str, url: str) -> None:
    with purenng.Pair0(listen=url, recv_timeout=T) as a, purenng.Pair0(recv_timeout=T) as b:
        lst = a.listeners[0]
        assert lst.url == url
        assert lst.local_address == b"\0" + name.encode()
        b.dial(url, block=True)
        b.send(b"abstract")
        assert a.recv() == b"abstract"
        # The kernel address carries the decoded NUL: a plain socket finds it.
        with RawSP(socket.socket(socket.AF_UNIX, socket.SOCK_STREAM), ipc=True) as raw:
            raw.sock.connect(b"\0" + name.encode())
            raw.handshake(PAIR0, PAIR0)


@linux_only
def test_abstract_with_embedded_nul_blocking() -> None:
    name = _abstract_name()
    _abstract_roundtrip_blocking(name + "\0tail", f"abstract://{name}%00tail")


@linux_only
async def test_abstract_with_embedded_nul_async() -> None:
    name = _abstract_name()
    url = f"abstract://{name}%00tail"
    async with purenng.Pair0(listen=url, recv_timeout=T) as a:
        assert a.listeners[0].local_address == b"\0" + name.encode() + b"\0tail"
        async with purenng.Pair0(recv_timeout=T) as b:
            await b.adial(url, block=True)
            await b.asend(b"abstract")
            assert await a.arecv() == b"abstract"
            # Without the %00 decoding this name would be a different address.
            with pytest.raises(ConnectionRefused):
                await b.adial(f"abstract://{name}", block=True)


@linux_only
def test_abstract_name_in_use() -> None:
    url = f"abstract://{_abstract_name()}"
    with purenng.Pair0(listen=url) as a, purenng.Pair0() as b:
        with pytest.raises(AddressInUse):
            b.listen(url)
        assert len(a.listeners) == 1


def test_large_message(tmp_path: Path) -> None:
    url = _url(tmp_path)
    payload = os.urandom(2 << 20)
    with (
        purenng.Pull0(listen=url, recv_timeout=T, recv_max_size=4 << 20) as pull,
        purenng.Push0(send_timeout=T) as push,
    ):
        push.dial(url, block=True)
        push.send(payload)
        push.send(b"after")
        assert pull.recv() == payload
        assert pull.recv() == b"after"


# ---------------------------------------------------------------- listener files


def _stale_socket_file(path: Path) -> None:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(str(path))
    s.close()  # the file stays behind, with nobody listening


def test_stale_socket_file_is_replaced(tmp_path: Path) -> None:
    path = tmp_path / "s.sock"
    _stale_socket_file(path)
    with purenng.Pair0(listen=_url(tmp_path), recv_timeout=T) as a, purenng.Pair0() as b:
        assert stat.S_ISSOCK(os.stat(path).st_mode)
        b.dial(_url(tmp_path), block=True)
        b.send(b"fresh")
        assert a.recv() == b"fresh"


def test_live_listener_is_not_stolen(tmp_path: Path) -> None:
    url = _url(tmp_path)
    with purenng.Pull0(listen=url, recv_timeout=T) as pull, purenng.Pull0() as thief:
        with pytest.raises(AddressInUse, match="another listener"):
            thief.listen(url)
        # Closing the failed socket must not remove the live listener's file.
        thief.close()
        for i in range(2):
            with purenng.Push0(send_timeout=T) as push:
                push.dial(url, block=True)
                push.send(b"still mine %d" % i)
                assert pull.recv() == b"still mine %d" % i


def test_live_foreign_listener_is_not_stolen(tmp_path: Path) -> None:
    path = tmp_path / "s.sock"
    other = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        other.bind(str(path))
        other.listen(1)
        with purenng.Pull0() as pull, pytest.raises(AddressInUse):
            pull.listen(_url(tmp_path))
        assert stat.S_ISSOCK(os.stat(path).st_mode)
    finally:
        other.close()


def test_non_socket_file_is_not_deleted(tmp_path: Path) -> None:
    path = tmp_path / "s.sock"
    path.write_bytes(b"precious")
    with purenng.Pull0() as pull, pytest.raises(AddressInUse, match="not a socket"):
        pull.listen(_url(tmp_path))
    assert path.read_bytes() == b"precious"


def test_missing_directory(tmp_path: Path) -> None:
    with purenng.Pull0() as pull, pytest.raises(BadAddress, match="does not exist"):
        pull.listen(_url(tmp_path, "nodir/s.sock"))


def test_socket_file_removed_on_close(tmp_path: Path) -> None:
    path = tmp_path / "s.sock"
    with purenng.Pull0(listen=_url(tmp_path)):
        assert stat.S_ISSOCK(os.stat(path).st_mode)
    assert not path.exists()


async def test_listener_close_removes_file_and_frees_address(tmp_path: Path) -> None:
    url = _url(tmp_path)
    path = tmp_path / "s.sock"
    async with purenng.Pull0() as pull:
        lst = await pull.alisten(url)
        assert lst.url == url
        assert lst.local_address == str(path)
        await lst.aclose()
        assert not path.exists()
        await pull.alisten(url)  # the address is free again
        assert path.exists()


async def test_replaced_file_is_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "s.sock"
    async with purenng.Pull0() as pull:
        lst = await pull.alisten(_url(tmp_path))
        os.unlink(path)
        _stale_socket_file(path)  # someone else's file now (maybe with our old inode)
        await lst.aclose()
        assert stat.S_ISSOCK(os.stat(path).st_mode)


def test_permissions_applied(tmp_path: Path) -> None:
    with purenng.Pull0() as pull:
        pull.listen(_url(tmp_path, "a.sock"), ipc_permissions=0o600)
        assert stat.S_IMODE(os.stat(tmp_path / "a.sock").st_mode) == 0o600
        pull.listen(_url(tmp_path, "b.sock"), ipc_permissions=0o660)
        assert stat.S_IMODE(os.stat(tmp_path / "b.sock").st_mode) == 0o660


def test_permissions_as_socket_option(tmp_path: Path) -> None:
    with purenng.Pull0(ipc_permissions=0o640, listen=_url(tmp_path)) as pull:
        assert pull.ipc_permissions == 0o640
        assert stat.S_IMODE(os.stat(tmp_path / "s.sock").st_mode) == 0o640


def test_bad_permissions() -> None:
    with purenng.Pull0() as pull:
        with pytest.raises(BadOption, match="ipc_permissions"):
            pull.ipc_permissions = 0o10000
        with pytest.raises(BadOption, match="ipc_permissions"):
            pull.ipc_permissions = "0600"  # type: ignore[assignment]


@linux_only
def test_permissions_refused_for_abstract() -> None:
    with purenng.Pull0() as pull, pytest.raises(NotSupported, match="abstract"):
        pull.listen(f"abstract://{_abstract_name()}", ipc_permissions=0o600)


# ---------------------------------------------------------------- kernel buffers


def _sndbuf_of_pipes(sock: purenng.Socket) -> list[int]:
    out = []
    for pipe in sock.pipes:
        raw = stream_pipe(pipe).extra("socket")
        out.append(raw.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF))
    return out


def _wmem_max() -> int | None:
    try:
        with open("/proc/sys/net/core/wmem_max") as f:
            return int(f.read())
    except OSError:
        return None


@linux_only
@pytest.mark.parametrize("explicit", [False, True])
def test_buffer_size_applies_to_both_ends(tmp_path: Path, explicit: bool) -> None:
    from purenng.transports.ipc import DEFAULT_BUFFER_SIZE

    wmem_max = _wmem_max()
    if wmem_max is None or wmem_max < 2 * 212992:
        pytest.skip(f"net.core.wmem_max is {wmem_max}: the kernel would cap any larger buffer")
    size = 512 * 1024 if explicit else DEFAULT_BUFFER_SIZE
    opts: dict[str, Any] = {"ipc_buffer_size": size} if explicit else {}
    url = _url(tmp_path)
    with (
        purenng.Pair0(listen=url, recv_timeout=T, **opts) as a,
        purenng.Pair0(dial=url, **opts) as b,
        purenng.Pair0(listen=_url(tmp_path, "plain.sock"), ipc_buffer_size=None) as c,
        purenng.Pair0(dial=_url(tmp_path, "plain.sock"), ipc_buffer_size=None) as d,
    ):
        wait_for(lambda: len(a.pipes) == len(b.pipes) == len(c.pipes) == len(d.pipes) == 1, "pipes")
        system_default = _sndbuf_of_pipes(c) + _sndbuf_of_pipes(d)
        ours = _sndbuf_of_pipes(a) + _sndbuf_of_pipes(b)
        # Linux reports twice what was asked for (room for its bookkeeping).
        expected = min(size, wmem_max) * 2
        assert ours == [expected, expected]
        assert all(v < expected for v in system_default)
        body = os.urandom(900 * 1024)  # bigger than the default buffer, under recv_max_size
        b.send(body)
        assert a.recv() == body


def test_bad_buffer_size() -> None:
    with purenng.Pull0() as pull:
        for bad in (0, 100, "1M", True, 1 << 31):
            with pytest.raises(BadOption, match="ipc_buffer_size"):
                pull.ipc_buffer_size = bad  # type: ignore[assignment]
        pull.ipc_buffer_size = None
        assert pull.ipc_buffer_size is None


# ---------------------------------------------------------------- peer credentials


@linux_only
async def test_peer_credentials_async(tmp_path: Path) -> None:
    url = _url(tmp_path)
    async with (
        purenng.Pair0(listen=url, recv_timeout=T) as a,
        purenng.Pair0(recv_timeout=T) as b,
    ):
        await b.adial(url, block=True)
        await b.asend(b"hello")
        assert await a.arecv() == b"hello"
        assert a.pipes[0].peer_credentials == _me()
        assert b.pipes[0].peer_credentials == _me()


@linux_only
def test_peer_credentials_blocking(tmp_path: Path) -> None:
    url = _url(tmp_path)
    with purenng.Pair0(listen=url, recv_timeout=T) as a, purenng.Pair0(recv_timeout=T) as b:
        b.dial(url, block=True)
        b.send(b"hello")
        msg = a.recv_msg()
        assert msg.pipe is a.pipes[0]
        creds = a.pipes[0].peer_credentials
        assert isinstance(creds, PeerCredentials)
        assert creds == _me()
        assert b.pipes[0].peer_credentials == _me()


# ---------------------------------------------------------------- address errors


def test_path_too_long(tmp_path: Path) -> None:
    url = "ipc:///" + "a" * (MAX_PATH_BYTES + 1)
    with purenng.Pair0() as s:
        with pytest.raises(BadAddress, match=f"{MAX_PATH_BYTES}-byte limit"):
            s.listen(url)
        with pytest.raises(BadAddress, match="limit"):
            s.dial(url, block=False)
    # The longest allowed path works.
    with purenng.Pair0() as s:
        short = str(tmp_path / "x")
        longest = short + "x" * (MAX_PATH_BYTES - len(os.fsencode(short)))
        s.listen("ipc://" + longest)
        assert stat.S_ISSOCK(os.stat(longest).st_mode)


@linux_only
def test_abstract_name_too_long() -> None:
    with purenng.Pair0() as s, pytest.raises(BadAddress, match="limit"):
        s.listen("abstract://" + "n" * (MAX_PATH_BYTES + 1))


@pytest.mark.parametrize("url", ["ipc://", "unix://", "abstract://"])
def test_empty_address(url: str) -> None:
    if url == "abstract://" and not sys.platform.startswith("linux"):
        pytest.skip("Linux only")
    with purenng.Pair0() as s:
        with pytest.raises(BadAddress):
            s.listen(url)
        with pytest.raises(BadAddress):
            s.dial(url, block=False)


@pytest.mark.skipif(sys.platform.startswith("linux"), reason="abstract sockets exist on Linux")
def test_abstract_refused_off_linux() -> None:
    with purenng.Pair0() as s, pytest.raises(BadAddress, match="Linux"):
        s.listen("abstract://x")


def test_dial_missing_path_blocking(tmp_path: Path) -> None:
    url = _url(tmp_path, "missing.sock")
    with purenng.Pair0() as s:
        with pytest.raises(ConnectionRefused, match=r"missing\.sock"):
            s.dial(url, block=True)
        assert s.dialers == []


async def test_dial_refused_async(tmp_path: Path) -> None:
    path = tmp_path / "s.sock"
    _stale_socket_file(path)  # exists, nobody listens
    async with purenng.Pair0() as s:
        with pytest.raises(ConnectionRefused, match="nobody listens"):
            await s.adial(_url(tmp_path), block=True)
        with pytest.raises(ConnectionRefused, match="missing"):
            await s.adial(_url(tmp_path, "missing"), block=True)


# ---------------------------------------------------------------- raw bytes


def test_raw_bytes_framing_and_bad_type(tmp_path: Path) -> None:
    url = _url(tmp_path)
    with purenng.Pull0(listen=url, recv_timeout=T) as pull:
        with RawSP.connect(url, PUSH, PULL) as raw:
            payload = b"raw ipc payload"
            raw.sock.sendall(b"\x01" + struct.pack(">Q", len(payload)) + payload)
            assert pull.recv() == payload
            wait_for(lambda: len(pull.pipes) == 1, "the raw pipe")
            # Type byte 0 is not a valid ipc message: the pipe is closed.
            raw.sock.sendall(b"\x00" + struct.pack(">Q", 3) + b"bad")
            assert raw.closed_by_peer()
            wait_for(lambda: not pull.pipes, "the bad pipe to go")
        # The socket and its listener keep working for a new connection.
        with RawSP.connect(url, PUSH, PULL) as raw:
            raw.send(b"again")
            assert pull.recv() == b"again"
