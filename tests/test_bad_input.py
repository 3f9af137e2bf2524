"""Misbehaving peers and bad arguments over tcp.

A raw Python socket plays the peer: it connects to a purenng listener, or
listens for a purenng dialer, and sends what a broken or hostile program
might (not SP at all, the wrong protocol, absurd lengths, half a frame,
nothing).  Every case must end in a clear error or a closed connection,
never a hang (every raw read has a timeout) and never a dead socket: after
each case a well-behaved purenng peer still exchanges messages.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
import time
from typing import TYPE_CHECKING, Any

import pytest

import purenng
import purenng.core.sp_stream
from purenng.core.sp_codec import frame_prefix
from support.raw_sp import PAIR0, PULL, PUSH, frame, recv_exactly, sp_header
from support.waiting import wait_for

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

pytestmark = pytest.mark.usefixtures("purenng_leak_check")

WAIT = 5.0  # raw socket reads; well under the default 10 s handshake timeout
HEADER_PUSH = sp_header(PUSH)
HEADER_PULL = sp_header(PULL)


def read_to_eof(s: socket.socket) -> bytes:
    """Everything until purenng closes the connection (EOF or reset)."""
    data = b""
    try:
        while True:
            chunk = s.recv(65536)
            if not chunk:
                return data
            data += chunk
    except ConnectionResetError:
        return data
    except TimeoutError:
        pytest.fail(f"purenng did not close the connection within {WAIT} s")


@contextlib.contextmanager
def raw_client(port: int) -> Iterator[socket.socket]:
    with socket.create_connection(("127.0.0.1", port), timeout=WAIT) as s:
        yield s


@pytest.fixture
def pull() -> Iterator[purenng.Socket]:
    with purenng.Pull0(listen="tcp://127.0.0.1:0", recv_timeout=WAIT) as sock:
        yield sock


def port_of(sock: purenng.Socket) -> int:
    port = sock.listeners[0].port
    assert port is not None
    return port


def assert_pull_alive(pull: purenng.Socket) -> None:
    """A good PUSH peer can still deliver to ``pull``."""
    with purenng.Push0(dial=pull.listeners[0].url, send_timeout=WAIT) as push:
        push.send(b"alive")
        assert pull.recv() == b"alive"


# ---------------------------------------------------------------- we listen, raw client


@pytest.mark.parametrize(
    "garbage",
    [
        pytest.param(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", id="http"),
        pytest.param(b"\x00SP\x01\x00\x50\x00\x00", id="version-1"),
        pytest.param(b"\x00SP\x00\x00\x50\x00\x01", id="reserved-bits"),
        pytest.param(b"\x00" * 8, id="zeros"),
        pytest.param(b"\xff" * 64, id="ones"),
    ],
)
def test_garbage_header_closes_connection(pull: purenng.Socket, garbage: bytes) -> None:
    with raw_client(port_of(pull)) as s:
        s.sendall(garbage)
        data = read_to_eof(s)
    assert HEADER_PULL.startswith(data[:8])  # purenng spoke SP (if anything got through)
    wait_for(lambda: pull.stats()["handshake_failures"] == 1, "the failure to be counted")
    assert pull.pipes == []
    assert pull.stats()["pipes_added"] == 0
    assert_pull_alive(pull)


@pytest.mark.parametrize("proto", [PAIR0, PULL, 0x30, 0xFFFF], ids=hex)
def test_wrong_peer_protocol_closes_and_counts(pull: purenng.Socket, proto: int) -> None:
    with raw_client(port_of(pull)) as s:
        s.sendall(sp_header(proto) + frame(b"should not arrive"))
        assert recv_exactly(s, 8) == HEADER_PULL
        read_to_eof(s)
    wait_for(lambda: pull.stats()["protocol_mismatch"] == 1, "the mismatch to be counted")
    assert pull.stats()["pipes_rejected"] == 1
    with pytest.raises(purenng.TryAgain):
        pull.recv(block=False)
    assert_pull_alive(pull)


@pytest.mark.parametrize(
    "length", [2**40, 2**60, 2**64 - 1, (1 << 20) + 1], ids=["2^40", "2^60", "2^64-1", "limit+1"]
)
def test_oversize_length_closes_before_allocation(pull: purenng.Socket, length: int) -> None:
    assert pull.recv_max_size == 1 << 20
    with raw_client(port_of(pull)) as s:
        s.sendall(HEADER_PUSH + frame(b"before") + frame_prefix(length) + b"\x00" * 1000)
        assert recv_exactly(s, 8) == HEADER_PULL
        read_to_eof(s)
    assert pull.recv() == b"before"
    wait_for(lambda: pull.stats()["oversize"] == 1, "the oversize frame to be counted")
    wait_for(lambda: not pull.pipes, "the pipe to close")
    assert_pull_alive(pull)


def test_oversize_against_small_limit_per_listener() -> None:
    with purenng.Pull0(recv_timeout=WAIT) as pull:
        pull.listen("tcp://127.0.0.1:0", recv_max_size=10)
        with raw_client(port_of(pull)) as s:
            s.sendall(HEADER_PUSH + frame(b"0123456789") + frame(b"0123456789X"))
            assert recv_exactly(s, 8) == HEADER_PULL
            read_to_eof(s)
        assert pull.recv() == b"0123456789"
        wait_for(lambda: pull.stats()["oversize"] == 1, "the oversize frame to be counted")
        assert_pull_alive(pull)


def test_truncated_frame_then_eof(pull: purenng.Socket) -> None:
    with raw_client(port_of(pull)) as s:
        s.sendall(HEADER_PUSH + frame(b"one") + frame(b"two") + frame(b"three"))
        s.sendall(frame_prefix(100) + b"only ten!!")
        s.shutdown(socket.SHUT_WR)
        assert recv_exactly(s, 8) == HEADER_PULL
        read_to_eof(s)
    assert [pull.recv() for _ in range(3)] == [b"one", b"two", b"three"]
    wait_for(lambda: not pull.pipes, "the pipe to close")
    with pytest.raises(purenng.TryAgain):
        pull.recv(block=False)
    assert pull.stats()["pipes_removed"] == 1
    assert_pull_alive(pull)


@pytest.mark.parametrize("sent", [b"", b"\x00SP\x00"], ids=["nothing", "half-header"])
def test_silent_peer_closed_after_handshake_timeout(
    monkeypatch: pytest.MonkeyPatch, pull: purenng.Socket, sent: bytes
) -> None:
    # The listener reads the module constant for each accepted connection.
    # The raw socket's read timeout (5 s) is below the default (10 s), so
    # this only passes if the patched value is the one in force.
    monkeypatch.setattr(purenng.core.sp_stream, "HANDSHAKE_TIMEOUT", 0.3)
    with raw_client(port_of(pull)) as s:
        if sent:
            s.sendall(sent)
        assert recv_exactly(s, 8) == HEADER_PULL
        assert read_to_eof(s) == b""
    wait_for(lambda: pull.stats()["handshake_failures"] == 1, "the failure to be counted")
    assert pull.pipes == []
    assert_pull_alive(pull)


def test_many_bad_clients_at_once(monkeypatch: pytest.MonkeyPatch, pull: purenng.Socket) -> None:
    monkeypatch.setattr(purenng.core.sp_stream, "HANDSHAKE_TIMEOUT", 0.5)
    port = port_of(pull)
    with contextlib.ExitStack() as stack:
        clients = [stack.enter_context(raw_client(port)) for _ in range(20)]
        for i, s in enumerate(clients):
            if i % 4 == 0:
                s.sendall(b"garbage!")
            elif i % 4 == 1:
                s.sendall(sp_header(PAIR0))
            elif i % 4 == 2:
                s.sendall(HEADER_PUSH + frame_prefix(2**50))
            # else: silent
        # A good peer is served while the bad ones are pending.
        assert_pull_alive(pull)
        for s in clients:
            read_to_eof(s)
    st = pull.stats()
    assert st["protocol_mismatch"] == 5
    assert st["oversize"] == 5
    wait_for(lambda: pull.stats()["handshake_failures"] == 10, "all failures to be counted")


# ---------------------------------------------------------------- we dial, raw listener


@contextlib.contextmanager
def raw_server(script: Callable[[socket.socket], None]) -> Iterator[str]:
    """A one-shot listener running ``script(conn)`` for the first connection."""
    errors: list[BaseException] = []
    with socket.socket() as srv:
        srv.bind(("127.0.0.1", 0))
        srv.listen(8)
        srv.settimeout(WAIT)

        def serve() -> None:
            try:
                conn, _ = srv.accept()
                with conn:
                    conn.settimeout(WAIT)
                    script(conn)
            except BaseException as exc:  # reported in the test thread
                errors.append(exc)

        t = threading.Thread(target=serve, daemon=True)
        t.start()
        try:
            yield f"tcp://127.0.0.1:{srv.getsockname()[1]}"
        finally:
            t.join(WAIT * 2)
    assert not t.is_alive(), "raw server thread hung"
    if errors:
        raise errors[0]


def assert_push_alive(push: purenng.Socket) -> None:
    with purenng.Pull0(listen="tcp://127.0.0.1:0", recv_timeout=WAIT) as good:
        push.dial(good.listeners[0].url, block=True)
        push.send(b"alive")
        assert good.recv() == b"alive"


def expect_header(conn: socket.socket, header: bytes) -> None:
    assert recv_exactly(conn, 8) == header


def test_dial_garbage_server() -> None:
    def script(conn: socket.socket) -> None:
        conn.sendall(b"SSH-2.0-OpenSSH_9.6\r\n")
        read_to_eof(conn)

    with purenng.Push0(send_timeout=WAIT) as push:
        with raw_server(script) as url, pytest.raises(purenng.ProtocolError):
            push.dial(url, block=True)
        assert push.dialers == []
        assert push.pipes == []
        assert_push_alive(push)


def test_dial_wrong_protocol_server() -> None:
    def script(conn: socket.socket) -> None:
        conn.sendall(HEADER_PUSH)  # a PUSH talking to a PUSH
        expect_header(conn, HEADER_PUSH)
        read_to_eof(conn)

    with purenng.Push0(send_timeout=WAIT) as push:
        with raw_server(script) as url, pytest.raises(purenng.ProtocolError, match="0x50"):
            push.dial(url, block=True)
        assert push.dialers == []
        assert push.stats()["protocol_mismatch"] == 1
        assert_push_alive(push)


def test_dial_silent_server_times_out(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(purenng.core.sp_stream, "HANDSHAKE_TIMEOUT", 0.3)

    def script(conn: socket.socket) -> None:
        expect_header(conn, HEADER_PUSH)
        read_to_eof(conn)  # fails the test if purenng keeps waiting past WAIT

    with purenng.Push0(send_timeout=WAIT) as push:
        with raw_server(script) as url, pytest.raises(purenng.Timeout):
            push.dial(url, block=True)
        assert push.dialers == []
        assert_push_alive(push)


def test_dial_server_that_hangs_up() -> None:
    def script(conn: socket.socket) -> None:
        pass  # close at once, before any header

    with purenng.Push0(send_timeout=WAIT) as push:
        with (
            raw_server(script) as url,
            pytest.raises((purenng.ProtocolError, purenng.ConnectionReset)),
        ):
            push.dial(url, block=True)
        assert push.dialers == []
        assert_push_alive(push)


def test_dial_server_sends_oversize_after_good_messages() -> None:
    def script(conn: socket.socket) -> None:
        conn.sendall(HEADER_PUSH)
        expect_header(conn, HEADER_PULL)
        conn.sendall(frame(b"a") + frame(b"b") + frame_prefix(2**40) + b"\x00" * 100)
        read_to_eof(conn)

    with purenng.Pull0(recv_timeout=WAIT) as pull:
        with raw_server(script) as url:
            pull.dial(url, block=True, reconnect_time_min=30)
            assert pull.recv() == b"a"
            assert pull.recv() == b"b"
            wait_for(lambda: pull.stats()["oversize"] == 1, "the oversize frame to be counted")
        assert pull.pipes == []
        for d in pull.dialers:
            d.close()
        with purenng.Push0(listen="tcp://127.0.0.1:0", send_timeout=WAIT) as push:
            pull.dial(push.listeners[0].url, block=True)
            push.send(b"alive")
            assert pull.recv() == b"alive"


def test_dial_server_truncates_frame() -> None:
    def script(conn: socket.socket) -> None:
        conn.sendall(HEADER_PUSH)
        expect_header(conn, HEADER_PULL)
        conn.sendall(frame(b"whole") + frame_prefix(50) + b"part")

    with purenng.Pull0(recv_timeout=WAIT) as pull:
        with raw_server(script) as url:
            pull.dial(url, block=True, reconnect_time_min=30)
            assert pull.recv() == b"whole"
        wait_for(lambda: not pull.pipes, "the pipe to close")
        with pytest.raises(purenng.TryAgain):
            pull.recv(block=False)


# ---------------------------------------------------------------- bad arguments


BAD_URLS: list[tuple[Any, type[Exception]]] = [
    ("tcp://", purenng.BadAddress),
    ("tcp://host", purenng.BadAddress),
    ("tcp://127.0.0.1", purenng.BadAddress),
    ("tcp://[::1", purenng.BadAddress),
    ("tcp://127.0.0.1:99999", purenng.BadAddress),
    ("tcp://127.0.0.1:5555/path", purenng.BadAddress),
    ("tcp4://[::1]:5555", purenng.BadAddress),
    ("foo://x", purenng.PluginError),
    ("127.0.0.1:5555", purenng.BadAddress),
    ("", purenng.BadAddress),
    (None, purenng.BadAddress),
    (5555, purenng.BadAddress),
]


@pytest.mark.parametrize(("url", "error"), BAD_URLS, ids=[repr(u) for u, _ in BAD_URLS])
@pytest.mark.parametrize("op", ["dial", "dial-nonblocking", "listen"])
def test_bad_urls(op: str, url: Any, error: type[Exception]) -> None:
    with purenng.Pull0(listen="tcp://127.0.0.1:0", recv_timeout=WAIT) as pull:
        calls: dict[str, Callable[[], object]] = {
            "dial": lambda: pull.dial(url, block=True),
            "dial-nonblocking": lambda: pull.dial(url, block=False),
            "listen": lambda: pull.listen(url),
        }
        call = calls[op]
        with pytest.raises(error) as info:
            call()
        # The message names what is wrong: the URL itself, or the scheme.
        if isinstance(url, str) and url:
            assert (url if error is purenng.BadAddress else "'foo'") in str(info.value)
        else:
            assert "str" in str(info.value) or "scheme://" in str(info.value)
        assert pull.dialers == []
        assert len(pull.listeners) == 1
        assert_pull_alive(pull)


def test_unknown_scheme_is_not_supported() -> None:
    with purenng.Pair0() as p, pytest.raises(purenng.NotSupported, match="foo"):
        p.dial("foo://x")


@pytest.mark.parametrize("url", ["tcp://*:5555", "tcp://:5555", "tcp://127.0.0.1:0"])
@pytest.mark.parametrize("block", [True, None, False])
def test_undialable_addresses(url: str, block: bool | None) -> None:
    with purenng.Push0() as push:
        with pytest.raises(purenng.BadAddress, match="cannot dial"):
            push.dial(url, block=block)
        assert push.dialers == []


def test_address_in_use(pull: purenng.Socket) -> None:
    with purenng.Pull0() as other, pytest.raises(purenng.AddressInUse):
        other.listen(pull.listeners[0].url)
    assert_pull_alive(pull)


@pytest.mark.parametrize(
    ("options", "for_socket"),
    [
        ({"tcp_nodelay": "yes"}, True),
        ({"recv_max_size": -1}, True),
        ({"reconnect_time_min": -1}, True),
        ({"no_such_option": 1}, True),
        ({"send_timeout": 1}, False),  # a socket option, not a dialer/listener one
    ],
)
def test_bad_option_values_at_dial_and_listen(
    pull: purenng.Socket, options: dict[str, Any], for_socket: bool
) -> None:
    name = next(iter(options))
    with pytest.raises(purenng.BadOption, match=repr(name)):
        pull.dial("tcp://127.0.0.1:1", block=False, **options)
    with pytest.raises(purenng.BadOption, match=repr(name)):
        pull.listen("tcp://127.0.0.1:0", **options)
    if for_socket:
        with pytest.raises(purenng.BadOption, match=repr(name)):
            purenng.Push0(dial=pull.listeners[0].url, **options)
    assert pull.dialers == []
    assert len(pull.listeners) == 1
    assert_pull_alive(pull)


# ---------------------------------------------------------------- empty messages


def test_empty_messages_push_pull(pull: purenng.Socket) -> None:
    with purenng.Push0(dial=pull.listeners[0].url, send_timeout=WAIT) as push:
        for body in (b"", b"x", b"", b""):
            push.send(body)
        assert [pull.recv() for _ in range(4)] == [b"", b"x", b"", b""]
    assert pull.stats()["bytes_in"] == 1


def test_empty_messages_pair0_both_ways() -> None:
    with (
        purenng.Pair0(listen="tcp://127.0.0.1:0", recv_timeout=WAIT, send_timeout=WAIT) as a,
        purenng.Pair0(dial=a.listeners[0].url, recv_timeout=WAIT, send_timeout=WAIT) as b,
    ):
        b.send(b"")
        assert a.recv() == b""
        a.send(b"")
        assert b.recv() == b""
        a.send(bytearray())
        assert b.recv_msg().bytes == b""


def test_empty_messages_raw_peer_both_ways() -> None:
    # raw -> purenng PULL
    with (
        purenng.Pull0(listen="tcp://127.0.0.1:0", recv_timeout=WAIT) as pull,
        raw_client(port_of(pull)) as s,
    ):
        s.sendall(HEADER_PUSH + frame(b"") + frame(b"") + frame(b"end"))
        assert recv_exactly(s, 8) == HEADER_PULL
        assert [pull.recv() for _ in range(3)] == [b"", b"", b"end"]

    # purenng PUSH -> raw
    got: list[bytes] = []

    def script(conn: socket.socket) -> None:
        conn.sendall(HEADER_PULL)
        expect_header(conn, HEADER_PUSH)
        for _ in range(3):
            (n,) = struct.unpack(">Q", recv_exactly(conn, 8))
            got.append(recv_exactly(conn, n) if n else b"")

    with purenng.Push0(send_timeout=WAIT) as push, raw_server(script) as url:
        push.dial(url, block=True)
        for body in (b"", b"", b"end"):
            push.send(body)
    assert got == [b"", b"", b"end"]


# ---------------------------------------------------------------- no loss


def test_no_lost_message_with_slow_reader() -> None:
    n, size = 5000, 1000
    errors: list[BaseException] = []
    with (
        purenng.Pull0(listen="tcp://127.0.0.1:0", recv_timeout=WAIT, recv_buffer=16) as pull,
        purenng.Push0(dial=pull.listeners[0].url, send_timeout=WAIT) as push,
    ):

        def sender() -> None:
            try:
                for i in range(n):
                    push.send(i.to_bytes(4, "big") * (size // 4))
            except BaseException as exc:
                errors.append(exc)

        t = threading.Thread(target=sender)
        t.start()
        try:
            got = []
            for i in range(n):
                if i < 100:
                    time.sleep(0.002)  # a slow application at first (not synchronisation)
                body = pull.recv()
                got.append(int.from_bytes(body[:4], "big"))
                assert len(body) == size
        finally:
            t.join(WAIT * 4)
        assert not errors
        assert got == list(range(n))
        assert pull.stats()["messages_in"] == n
