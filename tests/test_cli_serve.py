"""``purenng serve``: SP sockets on WebSocket paths of one HTTP port, run as users run it."""

from __future__ import annotations

import queue
import subprocess
import sys
import threading
import time
from typing import TYPE_CHECKING

import pytest

import purenng

if TYPE_CHECKING:
    from collections.abc import Iterator

pytest.importorskip("h11")

T = 10.0


@pytest.fixture
def serve() -> Iterator[subprocess.Popen[str]]:
    """``purenng serve`` on a free port with a SUB path (printed) and a REP path (echo)."""
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "purenng.cli.main",
            "serve",
            "--port",
            "0",
            "--sp",
            "sub0:/news",
            "--sp",
            "rep0:/echo",
            "--duration",
            "60",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        yield proc
    finally:
        proc.kill()
        proc.wait(T)
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()


def _urls(proc: subprocess.Popen[str]) -> dict[str, str]:
    """The ``sp URL PROTO ...`` lines printed once serving, by protocol."""
    assert proc.stdout is not None
    urls: dict[str, str] = {}
    while len(urls) < 2:
        line = proc.stdout.readline()
        if not line:
            assert proc.stderr is not None
            pytest.fail(f"purenng serve exited: {proc.stderr.read()}")
        parts = line.split()
        if parts[:1] == ["sp"]:
            urls[parts[2]] = parts[1]
    return urls


def test_serve_prints_what_is_published_to_a_sub0_path(serve: subprocess.Popen[str]) -> None:
    urls = _urls(serve)
    with purenng.Req0(dial=urls["rep0"], recv_timeout=T) as req:
        req.send(b"ping")
        assert req.recv() == b"ping"  # the echo path answers
    lines: queue.Queue[str] = queue.Queue()
    assert serve.stdout is not None
    out = serve.stdout

    def pump() -> None:
        for ln in out:
            lines.put(ln)

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    with purenng.Pub0(dial=urls["sub0"]) as pub:
        # PUB drops what it sends before the subscriber's pipe is up: resend
        # until serve prints it.
        deadline = time.monotonic() + T
        printed = ""
        while time.monotonic() < deadline and "hello subscribers" not in printed:
            pub.send(b"hello subscribers")
            try:
                printed = lines.get(timeout=0.2)
            except queue.Empty:
                continue
        assert "hello subscribers" in printed, printed
