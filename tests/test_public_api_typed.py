"""The public API is completely typed: ``pyright --verifytypes purenng`` says 100%.

Users' type checkers see purenng through its annotations (the package ships
``py.typed``); a public name without a declared type is an ``Unknown`` in
their code.  ``make typecheck`` runs the same check; this test keeps it in
the suite that CI runs.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def test_verifytypes_reports_the_public_api_completely_typed() -> None:
    pyright = shutil.which("pyright", path=str(Path(sys.executable).parent))
    if pyright is None:
        pytest.skip("pyright is not installed in this environment (it is in the dev extra)")
    env = dict(os.environ)
    # pyright finds the editable install through the python first on PATH.
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    proc = subprocess.run(
        [pyright, "--verifytypes", "purenng", "--ignoreexternal"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    out = proc.stdout + proc.stderr
    score = re.search(r"Type completeness score: ([\d.]+)%", out)
    assert score is not None, out[-2000:]
    assert 'Package directory: "' + str(ROOT / "src" / "purenng") in out, out[:500]
    errors = [line for line in out.splitlines() if "error:" in line]
    assert score.group(1) == "100", "\n".join(errors[:40])
    assert proc.returncode == 0, out[-2000:]
