"""``purenng cat`` against purenng sockets: flags, checks, formats, every protocol.

Most tests run :func:`purenng.cli.cat.run` in this process, in a thread
(:class:`CatRun`), with its output going to a ``BytesIO``; the other end is
a purenng socket driven by the test.  Every cat run here ends by itself
(``--count``, ``--recv-timeout``, the end of a request or survey), and each
join is bounded, so a cat that does not stop is a failure, not a hang.  A
few tests run the real command in a subprocess to cover the entry point,
the exit statuses and argparse's errors.

The expected output bytes were checked against nngcat 1.5.2 (the interop
tests compare the two byte for byte).
"""

from __future__ import annotations

import argparse
import io
import itertools
import os
import re
import subprocess
import sys
import threading
from typing import TYPE_CHECKING, Any

import pytest

import purenng
from purenng.cli import cat
from support.peers import free_tcp_port
from support.waiting import wait_for

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

#: Generous bound on any wait; only there to stop hangs.
T = 10.0

#: A body with every case the formats treat specially.
TRICKY = b'a\tb\x01"\\\xff\x7f\n ~\r\x00'

_names = itertools.count()


def inproc_url() -> str:
    return f"inproc://test-cli-cat-{os.getpid()}-{next(_names)}"


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="purenng cat")
    cat.add_arguments(parser)
    return parser.parse_args(list(argv))


class CatRun:
    """``purenng cat ARGV`` in a thread, output captured."""

    def __init__(self, *argv: str) -> None:
        self.argv = argv
        self.out = io.BytesIO()
        self.err = io.StringIO()
        self.rc: int | None = None
        self.exc: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            self.rc = cat.run(parse(*self.argv), out=self.out, err=self.err)
        except BaseException as exc:
            self.exc = exc

    def wait(self) -> int:
        self.thread.join(T)
        assert not self.thread.is_alive(), f"purenng cat {' '.join(self.argv)} did not stop"
        if self.exc is not None:
            raise self.exc
        assert self.rc is not None
        return self.rc


def run_cat(*argv: str) -> tuple[int, bytes, str]:
    """Run cat to its end; (status, stdout bytes, stderr text)."""
    r = CatRun(*argv)
    rc = r.wait()
    return rc, r.out.getvalue(), r.err.getvalue()


# ---------------------------------------------------------------- formats


@pytest.mark.parametrize(
    ("fmt", "expected"),
    [
        ("no", b""),
        ("raw", TRICKY),
        ("ascii", b'a.b."\\... ~..'),
        ("quoted", b'"a\\tb\\x01\\"\\\\\\xff\\x7f\\n ~\\r\\x00"\n'),
        (
            "hex",
            b'"\\x61\\x09\\x62\\x01\\x22\\x5c\\xff\\x7f\\x0a\\x20\\x7e\\x0d\\x00"\n',
        ),
        ("msgpack", b"\xc4\x0d" + TRICKY),
    ],
)
def test_format_message(fmt: str, expected: bytes) -> None:
    assert cat.format_message(fmt, TRICKY) == expected


@pytest.mark.parametrize(
    ("size", "head"),
    [
        (0, b"\xc4\x00"),
        (255, b"\xc4\xff"),
        (256, b"\xc5\x01\x00"),
        (65535, b"\xc5\xff\xff"),
        (65536, b"\xc6\x00\x01\x00\x00"),
    ],
)
def test_msgpack_bin_sizes(size: int, head: bytes) -> None:
    body = bytes(size)
    assert cat.format_message("msgpack", body) == head + body


def test_empty_message_formats() -> None:
    assert cat.format_message("quoted", b"") == b'""\n'
    assert cat.format_message("hex", b"") == b'""\n'
    assert cat.format_message("ascii", b"") == b""


def test_unknown_format_raises() -> None:
    with pytest.raises(ValueError, match="unknown format"):
        cat.format_message("base64", b"x")


# ---------------------------------------------------------------- flags


@pytest.mark.parametrize(
    ("flags", "proto"),
    [
        (["--req0"], "req0"),
        (["--req"], "req0"),
        (["--rep"], "rep0"),
        (["--pub"], "pub0"),
        (["--sub"], "sub0"),
        (["--push"], "push0"),
        (["--pull"], "pull0"),
        (["--surveyor"], "surveyor0"),
        (["--respondent"], "respondent0"),
        (["--bus"], "bus0"),
        (["--surv"], "surveyor0"),  # abbreviations, as nngcat takes them
        (["--resp"], "respondent0"),
        (["--pair"], "pair1"),
        (["--pair", "--compat"], "pair0"),
        (["--pair0"], "pair0"),
        (["--pair1"], "pair1"),
    ],
)
def test_protocol_aliases(flags: list[str], proto: str) -> None:
    data = [] if proto in ("sub0", "pull0") else ["--data", "x"]
    cfg = cat.configure(parse(*flags, "--dial", "tcp://127.0.0.1:1", *data))
    assert cfg.protocol == proto


@pytest.mark.parametrize("flag", ["--re", "--pu", "--pa"])
def test_ambiguous_abbreviation_is_a_usage_error(
    flag: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as info:
        parse(flag, "--dial", "inproc://x")
    assert info.value.code == 2
    assert "ambiguous option" in capsys.readouterr().err


def test_addresses_keep_order_and_expand_shorthands() -> None:
    cfg = cat.configure(
        parse(
            "--pull0",
            "--listen",
            "tcp://127.0.0.1:1",
            "-L",
            "2",
            "-l3",
            "--connect",
            "tcp://127.0.0.1:4",
            "--bind",
            "inproc://x",
            "-X",
            "/tmp/a.sock",
            "-x",
            "rel.sock",
            "--connect-local",
            "5",
            "--bind-ipc=/b",
        )
    )
    assert cfg.addresses == [
        ("listen", "tcp://127.0.0.1:1"),
        ("listen", "tcp://127.0.0.1:2"),
        ("dial", "tcp://127.0.0.1:3"),
        ("dial", "tcp://127.0.0.1:4"),
        ("listen", "inproc://x"),
        ("listen", "ipc:///tmp/a.sock"),
        ("dial", "ipc:///rel.sock"),  # nngcat roots -x/-X paths at /
        ("dial", "tcp://127.0.0.1:5"),
        ("listen", "ipc:///b"),
    ]


def test_options_are_converted() -> None:
    cfg = cat.configure(
        parse(
            "--sub",
            "--dial=inproc://x",
            "--subscribe",
            "a",
            "--subscribe=",
            "-C",
            "7",
            "-Q",
            "--recv-timeout",
            "0.25",
            "--send-timeout",
            "3",
            "-Z",
            "100",
            "--socket-name",
            "probe",
            "-v",
        )
    )
    assert cfg.topics == [b"a", b""]
    assert cfg.count == 7
    assert cfg.format == "quoted"
    assert cfg.recv_timeout == 0.25
    assert cfg.send_timeout == 3.0
    assert cfg.recv_max_size == 100
    assert cfg.socket_name == "probe"
    assert cfg.verbose
    assert not cfg.background_dial


def test_defaults() -> None:
    cfg = cat.configure(parse("--sub0", "--dial", "inproc://x"))
    assert cfg.topics == [b""]  # SUB without --subscribe gets everything
    assert cfg.format == "no"  # nngcat prints nothing without a format
    assert (cfg.count, cfg.delay, cfg.interval) == (0, 0.0, None)
    assert cfg.recv_timeout is None
    assert cfg.send_timeout is None


def test_zero_timeouts_mean_none_and_last_verbosity_wins() -> None:
    cfg = cat.configure(
        parse(
            "--pull0",
            "--dial",
            "inproc://x",
            "--recv-timeout",
            "0",
            "--send-timeout",
            "0",
            "-v",
            "-q",
        )
    )
    assert cfg.recv_timeout is None
    assert cfg.send_timeout is None
    assert not cfg.verbose


@pytest.mark.parametrize("flag", ["--async", "--compat"])
def test_background_dial_flags(flag: str) -> None:
    cfg = cat.configure(parse("--pull0", "--dial", "inproc://x", flag))
    assert cfg.background_dial


def test_data_is_bytes_of_the_argument() -> None:
    cfg = cat.configure(parse("--push0", "--dial", "inproc://x", "-D", "h\u00e9"))
    assert cfg.data == "h\u00e9".encode()


def test_file_and_stdin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "body"
    path.write_bytes(TRICKY)
    cfg = cat.configure(parse("--push0", "--dial", "inproc://x", "-F", str(path)))
    assert cfg.data == TRICKY
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"from\x00stdin")))
    cfg = cat.configure(parse("--push0", "--dial", "inproc://x", "--file", "-"))
    assert cfg.data == b"from\x00stdin"


ADDR = ("--dial", "inproc://x")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (("--pull0",), "No address specified."),
        (ADDR, "No protocol specified."),
        (("--req0", "--rep0", *ADDR), "Only one protocol may be specified."),
        (("--pull0", *ADDR, "--hex", "--raw"), "Format may be specified only once."),
        (("--pull0", *ADDR, "--format", "base64"), "Invalid format specified."),
        (
            ("--push0", *ADDR, "-D", "a", "-D", "b"),
            "Data (--file, --data) may be specified only once.",
        ),
        (
            ("--push0", *ADDR, "-D", "a", "--file", "/x"),
            "Data (--file, --data) may be specified only once.",
        ),
        (("--pull0", *ADDR, "--count", "x"), "Integer argument expected."),
        (("--pull0", *ADDR, "--count", ""), "Empty integer argument."),
        (("--pull0", *ADDR, "--count", "2147483648"), "Integer argument too large."),
        (("--pull0", *ADDR, "--recv-timeout", "-1"), "Integer argument expected."),
        (("--pull0", *ADDR, "--recv-timeout", "1e3"), "Integer argument expected."),
        (("--pull0", *ADDR, "--delay", "86401"), "Integer argument too large."),
        (("--pull0", "-L", "65536"), "Integer argument too large."),
        (
            ("--pull0", *ADDR, "--compat", "--async"),
            "Options --async and --compat are incompatible.",
        ),
        (
            ("--pull0", *ADDR, "--compat", "-C", "1"),
            "Options --count and --compat are incompatible.",
        ),
        (("--pair1", *ADDR, "--compat"), "Protocol does not support --compat."),
        (("--pull0", *ADDR, "--subscribe", "a"), "Protocol does not support --subscribe."),
        (("--pull0", *ADDR, "-D", "a"), "Protocol does not support --file or --data."),
        (("--sub0", *ADDR, "-i", "1"), "Protocol does not support --interval."),
        (("--push0", *ADDR, "-D", "a", "-A"), "Protocol does not support --format options."),
        (("--pub0", *ADDR), "Protocol requires either --file or --data."),
        (("--req0", *ADDR), "Protocol requires either --file or --data."),
        (("--surveyor0", *ADDR), "Protocol requires either --file or --data."),
        (("--rep0", *ADDR, "-i", "1"), "Protocol does not support --interval."),
        (("--bus0", *ADDR, "-i", "1"), "Option --interval requires either --file or --data."),
        (
            ("--pull0", *ADDR, "--zt-home", "/z"),
            "ZeroTier (--zt-home) is not supported by purenng.",
        ),
        (
            ("--push0", *ADDR, "-F", "/nonexistent/x"),
            "Cannot open file /nonexistent/x: No such file or directory",
        ),
    ],
)
def test_fatal_checks(argv: tuple[str, ...], message: str) -> None:
    rc, out, err = run_cat(*argv)
    assert (rc, out, err) == (1, b"", message + "\n")


# ---------------------------------------------------------------- pipeline


def test_push_sends_count_times() -> None:
    with purenng.Pull0(listen="tcp://127.0.0.1:0", recv_timeout=T) as pull:
        rc, out, err = run_cat("--push0", "--dial", pull.listeners[0].url, "-D", "hi", "-C", "3")
        assert (rc, out, err) == (0, b"", "")
        assert [pull.recv() for _ in range(3)] == [b"hi"] * 3
        with pytest.raises(purenng.TryAgain):
            pull.recv(block=False)


def test_push_without_count_sends_once() -> None:
    with purenng.Pull0(listen="tcp://127.0.0.1:0", recv_timeout=T) as pull:
        assert run_cat("--push", "--dial", pull.listeners[0].url, "--data", "once")[0] == 0
        assert pull.recv() == b"once"
        with pytest.raises(purenng.TryAgain):
            pull.recv(block=False)


def test_push_file_body_exact(tmp_path: Path) -> None:
    body = bytes(range(256)) * 300
    (tmp_path / "body").write_bytes(body)
    with purenng.Pull0(listen="tcp://127.0.0.1:0", recv_timeout=T) as pull:
        rc = run_cat("--push0", "--dial", pull.listeners[0].url, "-F", str(tmp_path / "body"))[0]
        assert rc == 0
        assert pull.recv() == body


def _push_to(url: str, *bodies: bytes) -> purenng.Socket:
    push = purenng.Push0(send_timeout=T)
    push.dial(url, block=False, reconnect_time_min=0.01)
    for b in bodies:
        push.send(b)
    return push


@pytest.mark.parametrize(
    "flags",
    [["--format", "hex"], ["--hex"], ["--format=quoted"], ["-Q"], ["-A"], ["--raw"], ["--msgpack"]],
)
def test_pull_prints_in_format(flags: list[str]) -> None:
    url = inproc_url()
    run = CatRun("--pull0", "--listen", url, "--count", "2", *flags)
    fmt = {"-Q": "quoted", "-A": "ascii"}.get(flags[0], flags[-1].removeprefix("--"))
    fmt = fmt.removeprefix("format=")
    with _push_to(url, TRICKY, b"second"):
        assert run.wait() == 0
    assert run.out.getvalue() == cat.format_message(fmt, TRICKY) + cat.format_message(
        fmt, b"second"
    )
    assert fmt in cat.FORMATS


def test_pull_without_format_prints_nothing() -> None:
    url = inproc_url()
    run = CatRun("--pull0", "--listen", url, "--count", "1")
    with _push_to(url, b"quiet"):
        assert run.wait() == 0
    assert run.out.getvalue() == b""


def test_pull_recv_timeout_is_a_normal_end() -> None:
    assert run_cat("--pull0", "--listen", inproc_url(), "--recv-timeout", "0.05") == (0, b"", "")


def test_verbose_reports_endpoints() -> None:
    with purenng.Pull0(listen="tcp://127.0.0.1:0") as pull:
        url = pull.listeners[0].url
        rc, out, _ = run_cat(
            "--push0", "--listen", "tcp://127.0.0.1:0", "--dial", url, "-v", "-D", "x"
        )
    assert rc == 0
    m = re.fullmatch(rb"Listening at: tcp://127\.0\.0\.1:(\d+)\nConnected to: (.*)\n", out)
    assert m is not None, out
    assert int(m.group(1)) != 0
    assert m.group(2).decode() == url


# ---------------------------------------------------------------- dialing


def test_dial_refused_is_fatal() -> None:
    url = f"tcp://127.0.0.1:{free_tcp_port()}"
    rc, out, err = run_cat("--push0", "--dial", url, "-D", "x")
    assert (rc, out, err) == (1, b"", f"Unable to dial on {url}: Connection refused\n")


def test_bad_url_is_fatal() -> None:
    rc, _, err = run_cat("--pull0", "--dial", "nosuchscheme://x")
    assert rc == 1
    assert err == "Unable to create dialer for nosuchscheme://x: Not supported\n"


def test_listen_address_in_use_is_fatal() -> None:
    with purenng.Pull0(listen="tcp://127.0.0.1:0") as pull:
        url = pull.listeners[0].url
        rc, _, err = run_cat("--pull0", "--listen", url)
    assert (rc, err) == (1, f"Unable to listen on {url}: Address in use\n")


@pytest.mark.parametrize("flag", ["--async", "--compat"])
def test_background_dial_then_send_timeout(flag: str) -> None:
    # Nobody listens: the dial is not fatal, the send times out instead.
    url = f"tcp://127.0.0.1:{free_tcp_port()}"
    rc, out, err = run_cat("--push0", "--dial", url, flag, "-D", "x", "--send-timeout", "0.1")
    assert (rc, out, err) == (1, b"", "Send error: Timed out\n")


def test_background_dial_connects_later() -> None:
    url = inproc_url()
    run = CatRun("--push0", "--dial", url, "--async", "-D", "late")
    with purenng.Pull0(listen=url, recv_timeout=T) as pull:
        assert pull.recv() == b"late"
        assert run.wait() == 0


def test_ipc_shorthand(tmp_path: Path) -> None:
    path = tmp_path / "c.sock"
    with purenng.Pull0(listen=f"ipc://{path}", recv_timeout=T) as pull:
        assert run_cat("--push0", "-x", str(path), "-D", "via ipc")[0] == 0
        assert pull.recv() == b"via ipc"


# ---------------------------------------------------------------- req/rep


def _serve(sock: purenng.Socket, n: int, answer: Callable[[bytes], bytes]) -> threading.Thread:
    """Answer ``n`` requests (or surveys) on ``sock`` in a thread."""

    def loop() -> None:
        for _ in range(n):
            sock.send(answer(sock.recv()))

    t = threading.Thread(target=loop, daemon=True)
    t.start()
    return t


def test_req_prints_reply_and_ends() -> None:
    # No --recv-timeout: the end of the request (a state error) ends cat.
    with purenng.Rep0(listen="tcp://127.0.0.1:0", recv_timeout=T, send_timeout=T) as rep:
        server = _serve(rep, 1, lambda q: b"answer to " + q)
        rc, out, err = run_cat("--req0", "--dial", rep.listeners[0].url, "-D", "q", "-Q")
        server.join(T)
    assert (rc, out, err) == (0, b'"answer to q"\n', "")


def test_req_count_repeats_requests() -> None:
    with purenng.Rep0(listen="tcp://127.0.0.1:0", recv_timeout=T, send_timeout=T) as rep:
        replies = iter([b"one", b"two"])
        server = _serve(rep, 2, lambda q: next(replies))
        rc, out, _ = run_cat("--req", "--dial", rep.listeners[0].url, "-D", "q", "-C", "2", "-Q")
        server.join(T)
    assert (rc, out) == (0, b'"one"\n"two"\n')


def test_rep_with_data_answers_and_prints_requests() -> None:
    url = inproc_url()
    run = CatRun("--rep0", "--listen", url, "--data", "42", "--count", "2", "--quoted")
    with purenng.Req0(recv_timeout=T, send_timeout=T) as req:
        req.dial(url, block=False, reconnect_time_min=0.01)
        for q in (b"first?", b"second?"):
            req.send(q)
            assert req.recv() == b"42"
        assert run.wait() == 0
    assert run.out.getvalue() == b'"first?"\n"second?"\n'


def test_rep_with_data_recv_timeout_is_fatal() -> None:
    rc, out, err = run_cat("--rep0", "--listen", inproc_url(), "-D", "x", "--recv-timeout", "0.05")
    assert (rc, out, err) == (1, b"", "Receive error: Timed out\n")


def test_rep_without_data_only_prints() -> None:
    url = inproc_url()
    run = CatRun("--rep0", "--listen", url, "--count", "1", "--hex")
    with purenng.Req0(send_timeout=T) as req:
        req.dial(url, block=False, reconnect_time_min=0.01)
        req.send(b"AB")
        assert run.wait() == 0
    assert run.out.getvalue() == b'"\\x41\\x42"\n'


# ---------------------------------------------------------------- pub/sub


def test_sub_filters_by_topics() -> None:
    url = inproc_url()
    run = CatRun("--sub", "--listen", url, "--subscribe", "a", "--subscribe", "c", "-C", "2", "-Q")
    with purenng.Pub0() as pub:
        pub.dial(url, block=False, reconnect_time_min=0.01)
        wait_for(lambda: pub.pipes, "the subscriber's pipe")
        for body in (b"apple", b"banana", b"cherry"):
            pub.send(body)
        assert run.wait() == 0
    assert run.out.getvalue() == b'"apple"\n"cherry"\n'


def test_sub_without_subscribe_gets_everything() -> None:
    url = inproc_url()
    run = CatRun("--sub0", "--listen", url, "-C", "2", "-Q")
    with purenng.Pub0() as pub:
        pub.dial(url, block=False, reconnect_time_min=0.01)
        wait_for(lambda: pub.pipes, "the subscriber's pipe")
        pub.send(b"x")
        pub.send(b"")
        assert run.wait() == 0
    assert run.out.getvalue() == b'"x"\n""\n'


def test_pub_interval_and_count() -> None:
    with purenng.Sub0(listen="tcp://127.0.0.1:0", recv_timeout=T) as sub:
        sub.subscribe(b"")
        url = sub.listeners[0].url
        rc = run_cat("--pub0", "--dial", url, "-D", "tick", "-C", "3", "-i", "0.02")[0]
        assert rc == 0
        assert [sub.recv() for _ in range(3)] == [b"tick"] * 3
        with pytest.raises(purenng.TryAgain):
            sub.recv(block=False)


# ---------------------------------------------------------------- survey


@pytest.mark.slow  # ends with the 1 s survey
def test_surveyor_prints_responses_until_deadline() -> None:
    with (
        purenng.Respondent0(listen="tcp://127.0.0.1:0", recv_timeout=T) as r1,
        purenng.Respondent0(listen="tcp://127.0.0.1:0", recv_timeout=T) as r2,
    ):
        s1 = _serve(r1, 1, lambda q: q + b" yes")
        s2 = _serve(r2, 1, lambda q: q + b" no")
        argv = ["--surveyor0", "-D", "q", "-Q"]
        for r in (r1, r2):
            argv += ["--dial", r.listeners[0].url]
        rc, out, err = run_cat(*argv)
        s1.join(T)
        s2.join(T)
    assert (rc, err) == (0, "")
    assert sorted(out.splitlines()) == [b'"q no"', b'"q yes"']


def test_respondent_answers() -> None:
    with purenng.Surveyor0(listen="tcp://127.0.0.1:0", recv_timeout=T, survey_time=T) as surveyor:
        run = CatRun(
            "--respondent", "--dial", surveyor.listeners[0].url, "-D", "here", "-C", "1", "-A"
        )
        wait_for(lambda: surveyor.pipes, "the respondent's pipe")
        surveyor.send(b"who?")
        assert surveyor.recv() == b"here"
        assert run.wait() == 0
    assert run.out.getvalue() == b"who?"


# ---------------------------------------------------------------- pair, bus


@pytest.mark.slow  # ends on its 1 s --recv-timeout
@pytest.mark.parametrize(
    ("flag", "cls"), [("--pair0", "Pair0"), ("--pair", "Pair1"), ("--bus0", "Bus0")]
)
def test_send_then_receive(flag: str, cls: str) -> None:
    with getattr(purenng, cls)(listen="tcp://127.0.0.1:0", recv_timeout=T) as peer:
        run = CatRun(flag, "--dial", peer.listeners[0].url, "-D", "hi", "-Q", "--recv-timeout", "1")
        assert peer.recv() == b"hi"
        peer.send(b"yo")
        assert run.wait() == 0
    assert run.out.getvalue() == b'"yo"\n'


@pytest.mark.parametrize(
    ("flag", "cls"), [("--pair0", "Pair0"), ("--pair1", "Pair1"), ("--bus", "Bus0")]
)
def test_receive_only(flag: str, cls: str) -> None:
    url = inproc_url()
    run = CatRun(flag, "--listen", url, "-C", "2", "--hex")
    with getattr(purenng, cls)(send_timeout=T) as peer:
        peer.dial(url, block=False, reconnect_time_min=0.01)
        wait_for(lambda: peer.pipes, "the pipe to cat")
        peer.send(b"\x00")
        peer.send(b"\xff")
        assert run.wait() == 0
    assert run.out.getvalue() == b'"\\x00"\n"\\xff"\n'


def test_pair_interval_rounds() -> None:
    # Each round sends, then receives until the interval is over.
    with purenng.Pair1(listen="tcp://127.0.0.1:0", recv_timeout=T) as peer:
        run = CatRun(
            "--pair1", "--dial", peer.listeners[0].url, "-D", "ping", "-i", "0.3", "-C", "2", "-Q"
        )
        for n in range(2):
            assert peer.recv() == b"ping"
            peer.send(b"pong%d" % n)
        assert run.wait() == 0
    assert run.out.getvalue() == b'"pong0"\n"pong1"\n'


# ---------------------------------------------------------------- the command


def _command(*argv: str, **kw: Any) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "purenng.cli.main", "cat", *argv],
        capture_output=True,
        timeout=T * 2,
        check=False,
        **kw,
    )


def test_command_fatal_status_1() -> None:
    p = _command("--pull0")
    assert (p.returncode, p.stdout, p.stderr) == (1, b"", b"No address specified.\n")


def test_command_usage_error_status_2() -> None:
    p = _command("--pull0", "--no-such-flag")
    assert p.returncode == 2
    assert b"unrecognized arguments: --no-such-flag" in p.stderr


def test_command_help() -> None:
    p = _command("--help")
    assert p.returncode == 0
    for flag in (b"--req0", b"--subscribe", b"--recv-timeout", b"--msgpack", b"-D DATA"):
        assert flag in p.stdout


def test_command_version() -> None:
    p = _command("-V")
    assert (p.returncode, p.stdout) == (0, purenng.__version__.encode() + b"\n")


def test_command_stdin_roundtrip() -> None:
    with purenng.Pull0(listen="tcp://127.0.0.1:0", recv_timeout=T) as pull:
        p = _command("--push0", "--dial", pull.listeners[0].url, "-F", "-", input=TRICKY)
        assert (p.returncode, p.stderr) == (0, b"")
        assert pull.recv() == TRICKY


# ---------------------------------------------------------------- TLS


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A development CA, server and client certificates, as files and configs."""
    pytest.importorskip("cryptography")
    from purenng.certs import make_dev_certs

    dev = make_dev_certs()
    paths: dict[str, Any] = dict(dev.write(tmp_path_factory.mktemp("certs")))
    both = paths["server"].with_name("server-and-key.pem")
    both.write_bytes(paths["server"].read_bytes() + paths["server_key"].read_bytes())
    paths["server_both"] = both
    paths["dev"] = dev
    return paths


def test_tls_flags_make_a_config(certs: dict[str, Any]) -> None:
    cfg = cat.configure(
        parse("--pull0", *ADDR, "--cert", str(certs["server_both"]), "--cacert", str(certs["ca"]))
    )
    assert cfg.tls is not None
    # Without --key, the key is looked for in the --cert file (as nngcat).
    assert cfg.tls["key_data"] == cfg.tls["cert_data"] == certs["server_both"].read_bytes()
    assert cfg.tls["ca_data"] == certs["ca"].read_bytes()
    assert cfg.tls["auth_mode"] is None
    cfg = cat.configure(parse("--pull0", *ADDR, "-k"))
    assert cfg.tls == {"auth_mode": "none", "ca_data": None, "cert_data": None, "key_data": None}
    assert cat.configure(parse("--pull0", *ADDR)).tls is None


def _tls_pull(certs: dict[str, Any]) -> purenng.Socket:
    return purenng.Pull0(
        listen="tls+tcp://127.0.0.1:0",
        tls_config=certs["dev"].server_config(),
        recv_timeout=T,
    )


@pytest.mark.parametrize(
    "trust", [["--cacert", "ca"], ["--insecure"], ["-k", "--cert", "client", "--key", "client_key"]]
)
def test_tls_dial(certs: dict[str, Any], trust: list[str]) -> None:
    flags = [str(certs[f]) if f in certs else f for f in trust]
    with _tls_pull(certs) as pull:
        url = pull.listeners[0].url
        rc, _, err = run_cat("--push0", "--dial", url, *flags, "-D", "secret")
        assert (rc, err) == (0, "")
        assert pull.recv() == b"secret"


def test_tls_dial_without_trust_fails(certs: dict[str, Any]) -> None:
    # TLS is on (a client certificate is given) but the server's CA is not
    # trusted: the dial must fail rather than talk to an unverified server.
    with _tls_pull(certs) as pull:
        url = pull.listeners[0].url
        flags = ["--cert", str(certs["client"]), "--key", str(certs["client_key"])]
        rc, _, err = run_cat("--push0", "--dial", url, *flags, "-D", "x")
    assert rc == 1
    assert err.startswith(f"Unable to dial on {url}: ")


def test_tls_listen_with_cert_holding_key(certs: dict[str, Any]) -> None:
    url = f"tls+tcp://127.0.0.1:{free_tcp_port()}"
    run = CatRun("--pull0", "--listen", url, "--cert", str(certs["server_both"]), "-C", "1", "-Q")
    with purenng.Push0(tls_config=certs["dev"].client_config(), send_timeout=T) as push:
        push.dial(url, block=False, reconnect_time_min=0.01)
        push.send(b"over tls")
        assert run.wait() == 0
    assert run.out.getvalue() == b'"over tls"\n'


def test_tls_bad_certificate_file(certs: dict[str, Any]) -> None:
    rc, _, err = run_cat("--pull0", *ADDR, "--cert", str(certs["ca_key"]))
    assert rc == 1
    assert err.startswith("Unable to configure TLS: ")
