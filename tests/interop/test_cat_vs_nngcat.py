"""``purenng cat`` against nngcat 1.5.2 and nanocat 1.1.5, in both directions.

Three kinds of test:

* **Talk**: for every pattern (push/pull, pair0, pair1, req/rep, pub/sub,
  surveyor/respondent, bus), ``purenng cat`` plays one side and the tool
  the other, with purenng sending or receiving, listening or dialing, over
  tcp and ipc.  nanocat has no PAIR v1, so that pattern runs against
  nngcat only.  What each side prints (``--hex``) is read back and checked.
* **Same bytes**: nngcat and ``purenng cat`` subscribe to one purenng
  publisher with the same ``--format`` and receive the same messages; their
  standard outputs must be identical, byte for byte.
* **Same verdicts**: the same invalid command lines and timeouts, given to
  both, must produce the same exit status and the same error line.

How the processes are driven, and why:

* The listening side starts first; the dialing side dials in the
  background (``--async`` for nngcat and purenng; nanocat always does), so
  nothing depends on which process is ready first and nothing sleeps.
* Senders whose protocol drops messages while no peer is connected (PUB,
  BUS, SURVEYOR) repeat with ``--interval``: 1 s for nngcat (it takes whole
  seconds only), 0.2 s for the others; the receiver waits for the first
  message that arrives.  PUSH, PAIR and REQ wait for a peer, so they send
  once.
* Receivers print with ``--hex`` (one quoted line per message), read with a
  deadline.  nngcat and purenng receivers stop after ``--count 1`` and their
  exit status is checked; nanocat has no ``--count``.  Whatever still runs
  at the end of a test is killed through its own process handle.
* A missing tool skips the test, unless ``PURENNG_REQUIRE_PEERS`` is set.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pytest

import purenng

from .peers import (
    Addresses,
    CliPeer,
    PeerError,
    T,
    closing_all,
    free_tcp_port,
    require_peer,
    wait_for,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

pytestmark = pytest.mark.interop

PURENNG_CAT = [sys.executable, "-m", "purenng.cli.main", "cat"]
TOOLS = ("nngcat", "nanocat")
TRANSPORTS = ("tcp", "ipc")

#: ``--interval`` for senders that must repeat, per tool.
INTERVAL = {"purenng": "0.2", "nngcat": "1", "nanocat": "0.2"}


@dataclass(frozen=True)
class Pattern:
    """Two protocols that talk; ``first`` speaks first."""

    first: str
    second: str
    exchange: bool
    """The second answers the first (req/rep, survey)."""
    repeat: bool
    """The first must repeat: its protocol drops messages with no peer."""


PATTERNS = {
    "pipeline": Pattern("push0", "pull0", exchange=False, repeat=False),
    "pair0": Pattern("pair0", "pair0", exchange=False, repeat=False),
    "pair1": Pattern("pair1", "pair1", exchange=False, repeat=False),
    "pubsub": Pattern("pub0", "sub0", exchange=False, repeat=True),
    "bus": Pattern("bus0", "bus0", exchange=False, repeat=True),
    "reqrep": Pattern("req0", "rep0", exchange=True, repeat=False),
    "survey": Pattern("surveyor0", "respondent0", exchange=True, repeat=True),
}

_SEND_ONLY = ("push0", "pub0")


def cat_argv(
    tool: str,
    proto: str,
    *,
    listen: bool,
    url: str,
    data: str | None = None,
    repeat: bool = False,
    count: bool = False,
    subscribe: str | None = None,
) -> list[str]:
    """The command line of ``tool`` (``purenng``, ``nngcat``, ``nanocat``) for one side."""
    if tool == "nanocat":
        argv = ["nanocat", f"--{proto.removesuffix('0')}", "--bind" if listen else "--connect", url]
    else:
        argv = [*(PURENNG_CAT if tool == "purenng" else ["nngcat"]), f"--{proto}"]
        argv += ["--listen", url] if listen else ["--dial", url, "--async"]
        if count:
            argv += ["--count", "1"]
    if proto not in _SEND_ONLY:
        argv.append("--hex")
    if subscribe is not None:
        argv += ["--subscribe", subscribe]
    if data is not None:
        argv += ["--data", data]
    if repeat:
        argv += ["--interval", INTERVAL[tool]]
    return argv


@pytest.fixture
def spawn() -> Iterator[Callable[[list[str]], CliPeer]]:
    """Start command lines (tools or purenng cat); all are killed at teardown."""

    def start(argv: list[str]) -> CliPeer:
        if argv[0] in TOOLS:
            require_peer(argv[0])
        return CliPeer(argv)

    with closing_all(start) as spawn:
        yield spawn


def first_message(receiver: CliPeer, other: CliPeer) -> bytes:
    """The first message ``receiver`` printed; on failure show both sides' stderr."""
    try:
        return receiver.messages(1)[0]
    except PeerError as exc:
        raise PeerError(f"{exc}\nthe other side's stderr: {other.stderr_text()!r}") from None


# ---------------------------------------------------------------- talk


def _talk(
    spawn: Callable[[list[str]], CliPeer],
    addr: Addresses,
    pattern: Pattern,
    tool: str,
    transport: str,
    purenng_first: bool,
    purenng_listens: bool,
) -> None:
    first_tool, second_tool = ("purenng", tool) if purenng_first else (tool, "purenng")
    first_listens = purenng_listens == purenng_first
    url = addr.fixed_url(transport)
    subscribe = "to" if pattern.second == "sub0" else None
    question, answer = "topic:q\x01", "answer\x7f"

    def first_cmd(listen: bool) -> list[str]:
        return cat_argv(
            first_tool, pattern.first, listen=listen, url=url, data=question, repeat=pattern.repeat
        )

    def second_cmd(listen: bool) -> list[str]:
        data = answer if pattern.exchange else None
        return cat_argv(
            second_tool,
            pattern.second,
            listen=listen,
            url=url,
            data=data,
            count=True,
            subscribe=subscribe,
        )

    if first_listens:
        first = spawn(first_cmd(True))
        second = spawn(second_cmd(False))
    else:
        second = spawn(second_cmd(True))
        first = spawn(first_cmd(False))

    assert first_message(second, first) == question.encode()
    if pattern.exchange:
        assert first_message(first, second) == answer.encode()
    if second_tool != "nanocat":
        assert second.wait(T) == 0, second.stderr_text()  # --count 1 ends it
    if pattern.first in ("push0", "req0") and first_tool != "nanocat":
        assert first.wait(T) == 0, first.stderr_text()  # sent (and got its reply): done


def _talk_params(tools: tuple[str, ...]) -> list[object]:
    params: list[object] = []
    for name, pattern in PATTERNS.items():
        for tool in tools:
            if tool == "nanocat" and "pair1" in (pattern.first, pattern.second):
                continue
            for transport in TRANSPORTS:
                # tcp against nngcat runs by default; the rest is marked slow.
                slow = transport != "tcp" or tool != "nngcat"
                marks = [pytest.mark.slow] if slow else []
                params.append(pytest.param(name, tool, transport, marks=marks))
    return params


@pytest.mark.parametrize("purenng_listens", [True, False], ids=["cat-listens", "cat-dials"])
@pytest.mark.parametrize("purenng_first", [True, False], ids=["cat-sends", "cat-answers"])
@pytest.mark.parametrize(("pattern", "tool", "transport"), _talk_params(TOOLS))
def test_talk(
    pattern: str,
    tool: str,
    transport: str,
    purenng_first: bool,
    purenng_listens: bool,
    spawn: Callable[[list[str]], CliPeer],
    addr: Addresses,
) -> None:
    _talk(spawn, addr, PATTERNS[pattern], tool, transport, purenng_first, purenng_listens)


# ---------------------------------------------------------------- same bytes

#: Messages whose printed forms cover every case of every format: escapes,
#: non-ASCII, empty, and the three msgpack length sizes.
FORMAT_MESSAGES = [
    b'a\tb\x01"\\\xff\x7f\n ~\r\x00?',
    b"",
    bytes(range(256)) + b"x" * 44,
    bytes(range(256)) * 260,
]


@pytest.mark.parametrize("fmt", ["raw", "ascii", "quoted", "hex", "msgpack", "no"])
def test_same_output_bytes_as_nngcat(fmt: str) -> None:
    require_peer("nngcat")
    with purenng.Pub0(listen="tcp://127.0.0.1:0") as pub:
        url = pub.listeners[0].url
        args = ["--sub0", "--dial", url, "--async", "--format", fmt]
        args += ["--count", str(len(FORMAT_MESSAGES))]
        with (
            tempfile.TemporaryFile() as out_nng,
            tempfile.TemporaryFile() as out_cat,
            subprocess.Popen(["nngcat", *args], stdout=out_nng) as nng,
            subprocess.Popen([*PURENNG_CAT, *args], stdout=out_cat) as cat,
        ):
            try:
                wait_for(lambda: len(pub.pipes) >= 2, "the subscribers to connect")
                for body in FORMAT_MESSAGES:
                    pub.send(body)
                assert nng.wait(T) == 0
                assert cat.wait(T) == 0
            finally:
                for p in (nng, cat):
                    if p.poll() is None:
                        p.kill()
            out_nng.seek(0)
            out_cat.seek(0)
            expected = out_nng.read()
            got = out_cat.read()
    assert got == expected
    if fmt != "no":
        assert expected  # the comparison is not vacuous


# ---------------------------------------------------------------- same verdicts


def _both(argv: list[str]) -> tuple[subprocess.CompletedProcess[bytes], ...]:
    require_peer("nngcat")
    return tuple(
        subprocess.run(cmd + argv, capture_output=True, timeout=T * 2, check=False)
        for cmd in (["nngcat"], PURENNG_CAT)
    )


DIAL = ["--dial", "tcp://127.0.0.1:1"]

VERDICT_CASES = {
    "no-address": ["--pull0"],
    "no-protocol": DIAL,
    "two-protocols": ["--req0", "--rep0", *DIAL],
    "two-formats": ["--pull0", *DIAL, "--hex", "--raw"],
    "bad-format": ["--pull0", *DIAL, "--format", "base64"],
    "two-data": ["--push0", *DIAL, "-D", "a", "--data", "b"],
    "bad-count": ["--pull0", *DIAL, "--count", "x"],
    "big-delay": ["--pull0", *DIAL, "--delay", "86401"],
    "compat-count": ["--pull0", *DIAL, "--compat", "-C", "1"],
    "compat-async": ["--pull0", *DIAL, "--compat", "--async"],
    "compat-pair1": ["--pair1", *DIAL, "--compat"],
    "subscribe-pull": ["--pull0", *DIAL, "--subscribe", "a"],
    "data-pull": ["--pull0", *DIAL, "-D", "a"],
    "interval-sub": ["--sub", *DIAL, "-i", "1"],
    "format-push": ["--push0", *DIAL, "-D", "a", "-Q"],
    "push-no-data": ["--push", *DIAL],
    "req-no-data": ["--req", *DIAL],
    "interval-rep": ["--rep", *DIAL, "--interval", "1"],
    "interval-bus": ["--bus0", *DIAL, "--interval", "1"],
    "missing-file": ["--push0", *DIAL, "-F", "/nonexistent/file"],
    "bad-scheme": ["--pull0", "--dial", "nosuch://x"],
    "no-port": ["--pull0", "--dial", "tcp://127.0.0.1"],
}


@pytest.mark.parametrize("argv", list(VERDICT_CASES.values()), ids=list(VERDICT_CASES))
def test_same_fatal_errors_as_nngcat(argv: list[str]) -> None:
    nng, cat = _both(argv)
    assert nng.returncode == 1
    assert (cat.returncode, cat.stdout, cat.stderr) == (nng.returncode, nng.stdout, nng.stderr)


def test_same_refused_dial_as_nngcat() -> None:
    url = f"tcp://127.0.0.1:{free_tcp_port()}"
    nng, cat = _both(["--push0", "--dial", url, "-D", "x"])
    assert (nng.returncode, nng.stderr) == (
        1,
        f"Unable to dial on {url}: Connection refused\n".encode(),
    )
    assert (cat.returncode, cat.stderr) == (nng.returncode, nng.stderr)


@pytest.mark.slow  # nngcat's shortest timeout is a whole second
@pytest.mark.parametrize(
    ("proto", "extra"),
    [("--pull0", []), ("--rep0", ["-D", "x"]), ("--respondent0", []), ("--pair1", [])],
    ids=["pull", "rep-with-data", "respondent", "pair1"],
)
def test_same_recv_timeout_verdict_as_nngcat(proto: str, extra: list[str]) -> None:
    # Also compares the --verbose line (same fixed port, used one after the other).
    url = f"tcp://127.0.0.1:{free_tcp_port()}"
    nng, cat = _both([proto, "--listen", url, "--recv-timeout", "1", "-v", *extra])
    assert nng.stdout == f"Listening at: {url}\n".encode()
    assert (cat.returncode, cat.stdout, cat.stderr) == (nng.returncode, nng.stdout, nng.stderr)


# ---------------------------------------------------------------- TLS


@pytest.fixture(scope="module")
def cert_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """CA, server and client certificates written as PEM files."""
    pytest.importorskip("cryptography")
    from purenng.certs import make_dev_certs

    paths = make_dev_certs().write(tmp_path_factory.mktemp("certs"))
    return {name: str(path) for name, path in paths.items()}


@pytest.mark.parametrize("purenng_listens", [True, False], ids=["cat-listens", "cat-dials"])
def test_tls_with_nngcat(
    purenng_listens: bool, cert_files: dict[str, str], spawn: Callable[[list[str]], CliPeer]
) -> None:
    # The listener shows the server certificate and the dialer verifies it
    # against the CA.  nngcat (mbedTLS) does not match an IP address against
    # the certificate's IP names, so it dials by the name "localhost".
    port = free_tcp_port()
    url = f"tls+tcp://127.0.0.1:{port}"
    server = ["--cert", cert_files["server"], "--key", cert_files["server_key"]]
    trust = ["--cacert", cert_files["ca"]]
    if purenng_listens:
        pull = spawn([*PURENNG_CAT, "--pull0", "--listen", url, *server, "-C", "1", "--hex"])
        by_name = f"tls+tcp://localhost:{port}"
        push = spawn(["nngcat", "--push0", "--dial", by_name, "--async", *trust, "-D", "tls!"])
    else:
        pull = spawn(["nngcat", "--pull0", "--listen", url, *server, "-C", "1", "--hex"])
        push = spawn([*PURENNG_CAT, "--push0", "--dial", url, "--async", *trust, "-D", "tls!"])
    assert first_message(pull, push) == b"tls!"
    assert pull.wait(T) == 0
    assert push.wait(T) == 0, push.stderr_text()
