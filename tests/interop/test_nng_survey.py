"""SURVEYOR/RESPONDENT against real NNG (pynng = NNG 1.11), nngcat and nanocat.

* pynng respondents answer a purenng surveyor, and a pynng surveyor
  questions a purenng respondent (socket and context), with purenng
  dialing and listening, over tcp and ipc.  A pynng response that comes
  after purenng's deadline is dropped and counted.
* nngcat 1.5.2 (``--surveyor0``/``--respondent0``) and nanocat 1.1.5
  (``--surveyor``/``--respondent``) both ways.  nanomsg 1.0 and later use
  the same protocol numbers (0x62/0x63) and backtrace as NNG
  (wire-protocols.md §4 item 14).

The pynng side runs :data:`PEER_SCRIPT` in a child process (see
``nngpeer.py`` for why a child): it performs a whole scripted conversation
and reports, as ``--hex`` lines that :class:`~peers.CliPeer` reads with a
deadline, first that it is ready (listening, or dialed), then one JSON
object with what it saw.  A respondent peer, once it has answered its
quota, waits for its surveyor to hang up before closing, so that no
response is lost in a closing socket.

Surveys are best effort: one sent while no pipe is up goes nowhere.  So
purenng surveys only once its pipes are up, and a tool surveyor that may
start before purenng has connected repeats its survey (``--interval``)
while a purenng thread answers every survey it gets, until the tool has
printed a response.
"""

from __future__ import annotations

import json
import sys
import threading
from typing import TYPE_CHECKING, Any

import pytest

import purenng

from .peers import Addresses, CliPeer, T, closing_all, require_peer, wait_for

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

pytestmark = pytest.mark.interop

TRANSPORTS = ("tcp", "ipc")
ROLES = ("dial", "listen")
TOOLS = ("nngcat", "nanocat")

PEER_SCRIPT = r'''
"""A pynng SURVEYOR or RESPONDENT: one scripted conversation, results as one JSON line."""
import json, os, sys, threading, time

def hexline(data):
    print('"' + "".join("\\x%02x" % c for c in data) + '"', flush=True)

cfg = json.loads(sys.argv[1])
timeout = cfg["timeout"]
watchdog = threading.Timer(4 * timeout, os._exit, (3,))
watchdog.daemon = True
watchdog.start()
import pynng

ms = int(timeout * 1000)
if cfg["role"] == "respondent":
    sock = pynng.Respondent0(recv_timeout=ms, send_timeout=ms)
else:
    sock = pynng.Surveyor0(
        recv_timeout=ms, send_timeout=ms, survey_time=int(cfg["survey_time"] * 1000)
    )
if "listen" in cfg:
    sock.listen(cfg["listen"])
else:
    sock.dial(cfg["dial"], block=True)
hexline(b"ready")

def wait_pipes(ok):
    deadline = time.monotonic() + timeout
    while not ok(len(sock.pipes)):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{len(sock.pipes)} pipes")
        time.sleep(0.005)

try:
    out = {"ok": True}
    if cfg["role"] == "respondent":
        seen = []
        for _ in range(cfg["n"]):
            msg = sock.recv()
            seen.append(msg.hex())
            time.sleep(cfg.get("delay", 0))
            sock.send(msg + cfg["suffix"].encode())
        out["surveys"] = seen
        wait_pipes(lambda n: n == 0)  # the surveyor hangs up first
    else:
        wait_pipes(lambda n: n >= cfg["pipes"])
        rounds = []
        for i in range(cfg["n"]):
            sock.send(b"survey %d" % i)
            got = []
            while True:
                try:
                    got.append(sock.recv().hex())
                except pynng.Timeout:
                    break
            rounds.append(got)
        out["rounds"] = rounds
except Exception as exc:
    out = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
sock.close()
hexline(json.dumps(out).encode())
'''


class PynngPeer:
    """A pynng surveyor or respondent running :data:`PEER_SCRIPT`."""

    def __init__(self, **cfg: Any) -> None:
        cfg.setdefault("timeout", T)
        self.cli = CliPeer([sys.executable, "-c", PEER_SCRIPT, json.dumps(cfg)])
        ready = self.cli.messages(1)
        assert ready == [b"ready"], ready

    def result(self) -> dict[str, Any]:
        """The peer's report once its conversation is over."""
        (line,) = self.cli.messages(1, timeout=2 * T)
        out: dict[str, Any] = json.loads(line)
        assert out.get("ok"), f"pynng peer failed: {out.get('error')}; {self.cli.stderr_text()}"
        return out

    def close(self) -> None:
        self.cli.close()


@pytest.fixture
def spawn_pynng() -> Iterator[Callable[..., PynngPeer]]:
    """Start pynng peers; every one still running at teardown is killed."""

    def start(**cfg: Any) -> PynngPeer:
        require_peer("pynng")
        return PynngPeer(**cfg)

    with closing_all(start) as spawn:
        yield spawn


def hexes(items: list[str]) -> list[bytes]:
    return [bytes.fromhex(x) for x in items]


# ------------------------------------------------------------------ pynng


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("transport", TRANSPORTS)
def test_purenng_surveyor_pynng_respondents(
    transport: str, role: str, spawn_pynng: Callable[..., PynngPeer], addr: Addresses
) -> None:
    with purenng.Surveyor0(survey_time=1.0, recv_timeout=T) as s:
        peers: list[PynngPeer] = []
        if role == "listen":
            url = s.listen(addr.listen_url(transport)).url
            peers = [
                spawn_pynng(role="respondent", dial=url, n=2, suffix=f" answered by {i}")
                for i in range(2)
            ]
        else:
            for i in range(2):
                url = addr.fixed_url(transport)
                peers.append(
                    spawn_pynng(role="respondent", listen=url, n=2, suffix=f" answered by {i}")
                )
                s.dial(url, block=True)
        wait_for(lambda: len(s.pipes) == 2, "two pipes")
        for question in (b"first survey", b"second survey"):
            s.send(question)
            got = sorted(s.recv() for _ in range(2))
            assert got == [question + b" answered by %d" % i for i in range(2)]
        with pytest.raises(purenng.Timeout):
            s.recv()  # the deadline of the second survey
        with pytest.raises(purenng.BadState):
            s.recv()
        s.close()
        for peer in peers:
            assert hexes(peer.result()["surveys"]) == [b"first survey", b"second survey"]


def _pynng_surveys_purenng(
    r: purenng.Socket,
    side: purenng.Socket | purenng.Context,
    transport: str,
    role: str,
    spawn_pynng: Callable[..., PynngPeer],
    addr: Addresses,
) -> None:
    """A pynng surveyor runs two surveys; ``side`` (of ``r``) answers them."""
    kw: dict[str, Any] = {"role": "surveyor", "n": 2, "survey_time": 0.5, "pipes": 1}
    if role == "listen":
        peer = spawn_pynng(dial=r.listen(addr.listen_url(transport)).url, **kw)
    else:
        url = addr.fixed_url(transport)
        peer = spawn_pynng(listen=url, **kw)
        r.dial(url, block=True)
    for i in range(2):
        msg = side.recv_msg()
        assert msg.bytes == b"survey %d" % i
        side.send(msg.bytes + b" answered by purenng")
    rounds = peer.result()["rounds"]
    assert [hexes(x) for x in rounds] == [[b"survey %d answered by purenng" % i] for i in range(2)]


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("transport", TRANSPORTS)
def test_pynng_surveyor_purenng_respondent(
    transport: str, role: str, spawn_pynng: Callable[..., PynngPeer], addr: Addresses
) -> None:
    with purenng.Respondent0(recv_timeout=T, send_timeout=T) as r:
        _pynng_surveys_purenng(r, r, transport, role, spawn_pynng, addr)


def test_pynng_surveyor_purenng_respondent_context(
    spawn_pynng: Callable[..., PynngPeer], addr: Addresses
) -> None:
    with purenng.Respondent0(recv_timeout=T, send_timeout=T) as r:
        ctx = r.new_context()
        _pynng_surveys_purenng(r, ctx, "tcp", "listen", spawn_pynng, addr)


def test_late_pynng_response_is_dropped(
    spawn_pynng: Callable[..., PynngPeer], addr: Addresses
) -> None:
    with purenng.Surveyor0(survey_time=0.2, recv_timeout=T) as s:
        url = s.listen(addr.listen_url("tcp")).url
        peer = spawn_pynng(role="respondent", dial=url, n=1, suffix="!", delay=0.6)
        wait_for(lambda: len(s.pipes) == 1, "one pipe")
        s.send(b"quick")
        with pytest.raises(purenng.Timeout):
            s.recv()
        wait_for(lambda: s.stats().get("stale_responses") == 1, "the late response")
        s.close()
        assert hexes(peer.result()["surveys"]) == [b"quick"]


# ------------------------------------------------------------------ nngcat and nanocat


def _flags(tool: str, proto: str, listen: bool, url: str) -> list[str]:
    if tool == "nngcat":
        return [f"--{proto}0", "--listen" if listen else "--dial", url]
    return [f"--{proto}", "--bind" if listen else "--connect", url]


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("tool", TOOLS)
def test_purenng_surveyor_tool_respondent(
    tool: str,
    transport: str,
    role: str,
    spawn_cli: Callable[..., CliPeer],
    addr: Addresses,
) -> None:
    with purenng.Surveyor0(survey_time=T, recv_timeout=T) as s:
        args = ["--hex", "--data", "tool answer"]
        if role == "listen":
            url = s.listen(addr.listen_url(transport)).url
            cli = spawn_cli(tool, *_flags(tool, "respondent", False, url), *args)
        else:
            url = addr.fixed_url(transport)
            cli = spawn_cli(tool, *_flags(tool, "respondent", True, url), *args)
            s.dial(url, block=False, reconnect_time_min=0.05)
        wait_for(lambda: len(s.pipes) == 1, "one pipe")
        s.send(b"purenng survey \x00\xff")
        assert s.recv() == b"tool answer"
        assert cli.messages(1) == [b"purenng survey \x00\xff"]


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("tool", TOOLS)
def test_tool_surveyor_purenng_respondent(
    tool: str,
    transport: str,
    role: str,
    spawn_cli: Callable[..., CliPeer],
    addr: Addresses,
) -> None:
    # nngcat dials before it sends; nanocat connects in the background, and
    # a tool that listens may send before purenng has connected: those repeat.
    repeat = tool == "nanocat" or role == "dial"
    interval = ["--interval", "1" if tool == "nngcat" else "0.2"] if repeat else []
    args = ["--hex", "--data", "tool survey", *interval]
    with purenng.Respondent0(recv_timeout=0.05, send_timeout=T) as r:
        if role == "listen":
            url = r.listen(addr.listen_url(transport)).url
            cli = spawn_cli(tool, *_flags(tool, "surveyor", False, url), *args)
        else:
            url = addr.fixed_url(transport)
            cli = spawn_cli(tool, *_flags(tool, "surveyor", True, url), *args)
            r.dial(url, block=False, reconnect_time_min=0.05)
        stop = threading.Event()
        seen: list[bytes] = []

        def answer() -> None:
            while not stop.is_set():
                try:
                    seen.append(r.recv())
                except purenng.Timeout:
                    continue
                except purenng.Closed:
                    return
                r.send(b"purenng answer")

        t = threading.Thread(target=answer)
        t.start()
        try:
            assert cli.messages(1) == [b"purenng answer"]
        finally:
            stop.set()
            t.join(T)
        assert seen
        assert set(seen) == {b"tool survey"}
