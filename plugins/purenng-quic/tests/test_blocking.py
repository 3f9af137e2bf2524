"""The blocking API over quic://, on each kind of background loop (a child process each)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import LOOP_KINDS


@pytest.mark.parametrize("kind", LOOP_KINDS)
def test_blocking_api(kind: str) -> None:
    script = Path(__file__).with_name("blocking_checks.py")
    env = {**os.environ, "PURENNG_LOOP": kind}
    out = subprocess.run(
        [sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == [kind, "ok"]
