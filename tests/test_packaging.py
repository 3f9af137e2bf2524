"""The built wheel ships what an installed purenng needs.

Editable installs read the checkout's plugins.toml; a wheel must carry its own
copy (force-included by hatchling) and the entry points of every built-in.
"""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_wheel_contains_plugins_toml_and_entry_points(tmp_path: Path) -> None:
    pytest.importorskip("hatchling")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(tmp_path),
            str(ROOT),
        ],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (wheel,) = tmp_path.glob("purenng-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        assert "purenng/plugins.toml" in names
        assert zf.read("purenng/plugins.toml") == (ROOT / "plugins.toml").read_bytes()
        assert "purenng/py.typed" in names
        (ep_name,) = [n for n in names if n.endswith(".dist-info/entry_points.txt")]
        entry_points = zf.read(ep_name).decode()
    transports = ("tcp", "tcp4", "tcp6", "ipc", "unix", "abstract", "inproc", "ws", "wss")
    for name in transports:
        assert f"{name} = purenng.transports." in entry_points
    assert '"tls+tcp" = purenng.transports.tls_tcp' in entry_points or (
        "tls+tcp = purenng.transports.tls_tcp" in entry_points
    )
    for name in ("pair0", "pair1", "push0", "pull0", "req0", "rep0", "pub0", "sub0"):
        assert f"{name} = purenng.protocols." in entry_points
    for name in ("surveyor0", "respondent0", "bus0"):
        assert f"{name} = purenng.protocols." in entry_points
