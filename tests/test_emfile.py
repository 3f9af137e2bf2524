"""A listener that runs out of file descriptors backs off instead of spinning.

Each scenario runs a ``Rep0`` listener in a child process whose soft
``RLIMIT_NOFILE`` is :data:`FD_LIMIT`, then connects :data:`CLIENTS` raw
clients from the test process, far more than the child can accept.  Then:

* the child's CPU time over a :data:`WINDOW`-second window stays well under
  the wall time (CPython 3.11's selector loop, left to itself, retries
  ``accept()`` ``backlog`` times per wake-up and burns a whole core);
* its log stays a few lines (the same loop called its exception handler,
  with a traceback, for every failed ``accept()``: megabytes in seconds);
* once the clients are gone, a new client is accepted and gets its reply.

The child runs the standard asyncio loop (the default inside a user's own
``asyncio.run()``) and, when installed, uvloop, for tcp, ipc, tls and ws
(the shared HTTP service's accept loop).
"""

from __future__ import annotations

import contextlib
import os
import resource
import socket
import subprocess
import sys
import time
from typing import IO, TYPE_CHECKING, Any

import pytest

import purenng
from purenng.certs import make_dev_certs

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = [
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="RLIMIT_NOFILE on Linux"),
    pytest.mark.skipif(not hasattr(socket, "AF_UNIX"), reason="needs AF_UNIX"),
]

#: Soft open-files limit of the listening child.
FD_LIMIT = 64
#: Raw clients connected at once: about three times what the child can hold.
CLIENTS = 200
#: Seconds over which the child's CPU time is compared with the wall time.
WINDOW = 2.0
#: Only stops hangs.
T = 20.0

try:
    import uvloop  # noqa: F401
except ImportError:  # pragma: no cover - uvloop is a test dependency
    HAVE_UVLOOP = False
else:
    HAVE_UVLOOP = True

CHILD = r"""
import asyncio, logging, resource, sys, threading, time

url, loop_name, limit, cert, key = sys.argv[1:6]
hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
logging.basicConfig(
    level=logging.INFO, stream=sys.stderr, format="%(levelname)s %(name)s %(message)s"
)
import purenng
from purenng.tls_config import TLSConfig

resource.setrlimit(resource.RLIMIT_NOFILE, (int(limit), hard))


async def main() -> None:
    opts = {}
    if url.startswith("tls+"):
        opts["tls_config"] = TLSConfig(cert_data=open(cert).read(), key_data=open(key).read())
    s = purenng.Rep0(**opts)
    lst = await s.alisten(url)
    loop = asyncio.get_running_loop()
    stop = loop.create_future()

    def commands() -> None:
        for line in sys.stdin:
            if line.strip() == "cpu":
                print("cpu", time.monotonic(), time.process_time(), flush=True)
            else:
                break
        loop.call_soon_threadsafe(lambda: stop.done() or stop.set_result(None))

    async def echo() -> None:
        while True:
            await s.asend(await s.arecv())

    task = asyncio.create_task(echo())
    threading.Thread(target=commands, daemon=True).start()
    print("url", lst.url, flush=True)
    await stop
    task.cancel()
    s.close()


if loop_name == "uvloop":
    import uvloop

    uvloop.run(main())
else:
    asyncio.run(main())
"""


def _line(stream: IO[str], prefix: str) -> list[str]:
    line = stream.readline()
    assert line.startswith(prefix + " "), f"child said {line!r}"
    return line.split()[1:]


def _connect(url: str) -> socket.socket:
    if url.startswith("ipc://"):
        c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        c.settimeout(T)
        c.connect(url.removeprefix("ipc://"))
        return c
    port = int(url.rsplit(":", 1)[1].split("/", 1)[0])
    return socket.create_connection(("127.0.0.1", port), timeout=T)


SCENARIOS = [
    pytest.param("tcp", "asyncio", id="tcp-asyncio"),
    pytest.param(
        "tcp",
        "uvloop",
        id="tcp-uvloop",
        marks=pytest.mark.skipif(not HAVE_UVLOOP, reason="needs uvloop"),
    ),
    pytest.param("ipc", "asyncio", id="ipc-asyncio"),
    pytest.param("tls+tcp", "asyncio", id="tls-asyncio"),
    # ws listeners accept through the shared HTTP service.
    pytest.param("ws", "asyncio", id="ws-asyncio"),
]


@pytest.mark.parametrize(("scheme", "loop_name"), SCENARIOS)
def test_out_of_descriptors_backs_off_and_recovers(
    tmp_path: Path, scheme: str, loop_name: str
) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if min(soft, hard) < CLIENTS + 100:
        pytest.skip(f"needs {CLIENTS + 100} open files in the test process")
    certs = make_dev_certs()
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert.write_bytes(certs.server.cert_pem)
    key.write_bytes(certs.server.key_pem)
    url = f"ipc://{tmp_path}/e.sock" if scheme == "ipc" else f"{scheme}://127.0.0.1:0"
    if scheme == "ws":
        url += "/emfile"
    env = {k: v for k, v in os.environ.items() if k != "PURENNG_LOOP"}
    # The log goes to a file, not a pipe: a full pipe would block the
    # child's logging, and with it the very spin this test looks for.
    log_path = tmp_path / "child.log"
    with log_path.open("w") as log_file:
        child = subprocess.Popen(
            [sys.executable, "-c", CHILD, url, loop_name, str(FD_LIMIT), str(cert), str(key)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=log_file,
            text=True,
            env=env,
        )
    clients: list[socket.socket] = []
    try:
        assert child.stdin is not None
        assert child.stdout is not None
        (bound,) = _line(child.stdout, "url")
        clients = [_connect(bound) for _ in range(CLIENTS)]
        time.sleep(0.1)  # the child takes what it can and hits the limit
        child.stdin.write("cpu\n")
        child.stdin.flush()
        t0, c0 = map(float, _line(child.stdout, "cpu"))
        time.sleep(WINDOW)
        child.stdin.write("cpu\n")
        child.stdin.flush()
        t1, c1 = map(float, _line(child.stdout, "cpu"))
        busy = (c1 - c0) / (t1 - t0)
        assert busy < 0.5, f"the listener spent {busy:.0%} of a CPU while out of descriptors"

        for c in clients:
            c.close()
        clients.clear()
        opts: dict[str, Any] = (
            {"tls_config": certs.client_config()} if scheme.startswith("tls") else {}
        )
        with purenng.Req0(recv_timeout=T, send_timeout=T, **opts) as req:
            req.dial(bound, block=False)
            req.send(b"still there?")
            assert req.recv() == b"still there?"
        child.stdin.write("quit\n")
        child.stdin.flush()
        child.communicate(timeout=T)
    finally:
        for c in clients:
            c.close()
        if child.poll() is None:
            child.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.communicate(timeout=T)
    err = log_path.read_text(errors="replace")
    assert child.returncode == 0, err[-2000:]
    lines = err.splitlines()
    assert len(lines) <= 10, f"{len(lines)} log lines, starting:\n" + "\n".join(lines[:20])
    warnings = [ln for ln in lines if ln.startswith("WARNING") and "descriptors" in ln]
    assert len(warnings) == 1, "\n".join(lines)
    recovered = [ln for ln in lines if ln.startswith("INFO") and "accepting again" in ln]
    assert len(recovered) == 1, lines
