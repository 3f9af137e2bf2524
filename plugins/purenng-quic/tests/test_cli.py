"""`purenng cat` over quic:// (child processes), and `purenng plugins` listing the plugin."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pathlib import Path

    from purenng.testing import DevCerts


def _purenng() -> list[str]:
    exe = shutil.which("purenng", path=os.path.dirname(sys.executable))
    return [exe] if exe else [sys.executable, "-m", "purenng.cli.main"]


def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _wait_bound(port: int, proc: subprocess.Popen[str]) -> None:
    """Wait until something (``proc``) has bound the UDP port."""
    for _ in range(2000):
        assert proc.poll() is None, proc.communicate()
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                return
        time.sleep(0.005)
    raise AssertionError(f"nothing bound UDP port {port}")


def test_plugins_lists_quic() -> None:
    out = subprocess.run(
        [*_purenng(), "plugins", "--load"], capture_output=True, text=True, timeout=60
    )
    lines = [line.split() for line in out.stdout.splitlines()]
    rows = {line[0]: line for line in lines if line and line[0] in ("quic", "quic4", "quic6")}
    assert set(rows) == {"quic", "quic4", "quic6"}, out.stdout
    for row in rows.values():
        assert row[1] == "purenng-quic"
        assert row[-1] == "loaded", out.stdout


def test_cat_req_rep_over_quic(tmp_path: Path, certs: DevCerts) -> None:
    paths = certs.write(tmp_path)
    port = _free_udp_port()
    url = f"quic://127.0.0.1:{port}"
    rep = subprocess.Popen(
        [
            *_purenng(), "cat", "--rep0", "--listen", url,
            "--cert", str(paths["server"]), "--key", str(paths["server_key"]),
            "--data", "pong", "--format", "ascii", "--count", "1",
        ],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        _wait_bound(port, rep)
        req = subprocess.run(
            [
                *_purenng(), "cat", "--req0", "--dial", url.replace("127.0.0.1", "localhost"),
                "--cacert", str(paths["ca"]), "--data", "ping", "--format", "ascii",
                "--recv-timeout", "10", "--count", "1",
            ],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert req.returncode == 0, req.stderr
        assert req.stdout.strip() == "pong"
        out, err = rep.communicate(timeout=60)
        assert rep.returncode == 0, err
        assert out.strip() == "ping"
    finally:
        if rep.poll() is None:
            rep.kill()
            rep.communicate()


def test_cat_refuses_an_untrusted_listener(tmp_path: Path, certs: DevCerts) -> None:
    paths = certs.write(tmp_path)
    port = _free_udp_port()
    url = f"quic://127.0.0.1:{port}"
    pull = subprocess.Popen(
        [
            *_purenng(), "cat", "--pull0", "--listen", url,
            "--cert", str(paths["server"]), "--key", str(paths["server_key"]),
            "--recv-timeout", "3",
        ],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        _wait_bound(port, pull)
        # No --cacert: the dialer checks the system trust store, which lacks our CA.
        push = subprocess.run(
            [*_purenng(), "cat", "--push0", "--dial", url, "--data", "x", "--send-timeout", "2"],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert push.returncode != 0
    finally:
        pull.kill()
        pull.communicate()
