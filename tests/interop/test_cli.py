"""PAIR v0 and PUSH/PULL against the command-line peers nngcat and nanocat.

nngcat 1.5.2 (Debian nng-utils) and nanocat 1.1.5 (Debian nanomsg-utils)
run as child processes, over tcp and ipc, with purenng dialing and
listening.  nanomsg has no PAIR v1 and no abstract sockets, so neither is
tried here (PAIR v1 and abstract are covered against pynng and nng).

How the tools are driven, and why:

* A tool prints what it receives with ``--hex``, one quoted line per message
  (a zero-length message is ``""``), read back line by line with a deadline.
* With ``--data`` a PAIR tool sends once and then keeps receiving; a PULL
  tool keeps receiving (nngcat stops after ``--count N``).  Tools that keep
  running are killed through their own process handle once the test has
  what it needs.  ``--recv-timeout`` is not used to end them: it would cost
  its whole duration (whole seconds), and nngcat 1.5.2 refuses it together
  with ``--count`` ("Cannot set recv timeout: Invalid argument").
* ``--delay`` and ``--interval`` are not used either: nngcat 1.5.2 takes
  whole seconds only, and nothing here needs them.
* No sleeps: when the tool listens, purenng dials in the background with a
  50 ms redial, so it connects as soon as the tool is bound (a poll by
  connect); when purenng listens, it is bound before the tool starts and the
  tool's own dial retries.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

import purenng

from .peers import ROLES, Addresses, CliPeer, T, parse_cli_line

pytestmark = pytest.mark.interop

SpawnCli = Callable[..., CliPeer]

TOOLS = ("nngcat", "nanocat")
CLI_TRANSPORTS = ("tcp", "ipc")


def _proto_flag(tool: str, proto: str) -> str:
    """``--pair0``/``--push0``/``--pull0`` for nngcat, ``--pair``... for nanocat."""
    return f"--{proto}" if tool == "nngcat" else f"--{proto.removesuffix('0')}"


def _where(tool: str, listen: bool, url: str) -> list[str]:
    if tool == "nngcat":
        return ["--listen" if listen else "--dial", url]
    return ["--bind" if listen else "--connect", url]


def start(
    sock: purenng.Socket,
    spawn_cli: SpawnCli,
    addr: Addresses,
    tool: str,
    proto: str,
    transport: str,
    role: str,
    *args: str,
) -> CliPeer:
    """Run ``tool`` as the other end of ``sock``; purenng does ``role``."""
    flag = _proto_flag(tool, proto)
    if role == "listen":
        url = sock.listen(addr.listen_url(transport)).url
        return spawn_cli(tool, flag, *_where(tool, False, url), *args)
    url = addr.fixed_url(transport)
    cli = spawn_cli(tool, flag, *_where(tool, True, url), *args)
    sock.dial(url, block=False, reconnect_time_min=0.05)
    return cli


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("transport", CLI_TRANSPORTS)
@pytest.mark.parametrize("tool", TOOLS)
def test_pair0(tool: str, transport: str, role: str, spawn_cli: SpawnCli, addr: Addresses) -> None:
    with purenng.Pair0(recv_timeout=T, send_timeout=T) as sock:
        cli = start(
            sock, spawn_cli, addr, tool, "pair0", transport, role, "--hex", "--data", "from-tool"
        )
        assert sock.recv() == b"from-tool"
        out = [b"from purenng \x00\x01\xff", b"", b"last"]
        for m in out:
            sock.send(m)
        assert cli.messages(len(out)) == out


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("transport", CLI_TRANSPORTS)
@pytest.mark.parametrize("tool", TOOLS)
def test_tool_push_to_purenng_pull(
    tool: str, transport: str, role: str, spawn_cli: SpawnCli, addr: Addresses
) -> None:
    # nngcat repeats --data --count times; nanocat sends it once.
    n = 3 if tool == "nngcat" else 1
    extra = ["--count", str(n)] if tool == "nngcat" else []
    with purenng.Pull0(recv_timeout=T) as pull:
        cli = start(
            pull, spawn_cli, addr, tool, "push0", transport, role, "--data", "pushed", *extra
        )
        assert [pull.recv() for _ in range(n)] == [b"pushed"] * n
        assert cli.wait() == 0, cli.stderr_text()


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("transport", CLI_TRANSPORTS)
@pytest.mark.parametrize("tool", TOOLS)
def test_purenng_push_to_tool_pull(
    tool: str, transport: str, role: str, spawn_cli: SpawnCli, addr: Addresses
) -> None:
    out = [b"one", b"", b"three \x00\xfe", b"4" * 1000]
    extra = ["--count", str(len(out))] if tool == "nngcat" else []
    with purenng.Push0(send_timeout=T) as push:
        cli = start(push, spawn_cli, addr, tool, "pull0", transport, role, "--hex", *extra)
        for m in out:
            push.send(m)
        assert cli.messages(len(out)) == out
        if tool == "nngcat":
            assert cli.wait() == 0, cli.stderr_text()


@pytest.mark.parametrize("proto", ["pair0", "push0"])
@pytest.mark.parametrize("tool", TOOLS)
def test_zero_length_from_tool(tool: str, proto: str, spawn_cli: SpawnCli, addr: Addresses) -> None:
    """An empty message is legal on the wire (wire-protocols.md §2.1)."""
    cls = purenng.Pair0 if proto == "pair0" else purenng.Pull0
    with cls(recv_timeout=T) as sock:
        start(sock, spawn_cli, addr, tool, proto, "tcp", "listen", "--data", "")
        msg = sock.recv_msg()
        assert bytes(msg.body) == b""
        assert bytes(msg.header) == b""


def test_parse_cli_line() -> None:
    """The ``--hex`` reader itself, on the forms both tools print."""
    assert parse_cli_line(b'"\\x61\\x00\\xff"') == b"a\x00\xff"
    assert parse_cli_line(b'""\r') == b""
    for bad in (b"\\x61", b'"\\x6"', b'"a"', b'"\\x61x"'):
        with pytest.raises(ValueError):
            parse_cli_line(bad)
