"""``purenng bench``: the harness runs, reports and cleans up (no speed asserts)."""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
from typing import TYPE_CHECKING, Any

import pytest

from purenng.bench.runner import (
    BenchConfig,
    BenchError,
    BenchResult,
    format_size,
    parse_size,
    render_table,
    run_pair,
)
from purenng.cli import bench as cli_bench

if TYPE_CHECKING:
    from pathlib import Path


def _need_pynng() -> None:
    if importlib.util.find_spec("pynng") is None and not os.environ.get("PURENNG_REQUIRE_PEERS"):
        pytest.skip("pynng is not installed")


def _bench(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "purenng.cli.main", "bench", *args],
        capture_output=True,
        text=True,
        timeout=50,
        env=env,
        check=False,
    )


def test_quick_json_against_pynng() -> None:
    _need_pynng()
    proc = _bench("--quick", "--json", "--peers", "pynng", "--duration", "0.3")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    rows = doc["rows"]
    assert {(r["transport"], r["size"], r["api"]) for r in rows} == {
        ("tcp", 64, "sync"),
        ("tcp", 64, "async"),
    }
    for row in rows:
        for lib in ("purenng", "pynng"):
            cell = row["results"][lib]
            assert cell["ok_runs"] == 1, cell
            assert cell["msgs_per_s"] > 0
            assert cell["MB_per_s"] > 0
            assert cell["runs_lost"] == [0]
        assert row["ratio"]["pynng"] > 0
    assert doc["versions"]["pynng"]
    assert doc["errors"] == 0


def test_ipc_files_removed(tmp_path: Path) -> None:
    env = dict(os.environ, TMPDIR=str(tmp_path))
    proc = _bench(
        "--quick", "--json", "--peers", "none", "--transports", "ipc", "--apis", "sync", env=env
    )
    assert proc.returncode == 0, proc.stderr
    row = json.loads(proc.stdout)["rows"][0]
    assert row["transport"] == "ipc"
    assert row["results"]["purenng"]["msgs_per_s"] > 0
    assert row["ratio"] == {}
    assert list(tmp_path.iterdir()) == []


def test_failed_receiver_is_reported() -> None:
    cfg = BenchConfig(duration=0.1, grace=0.5)
    with pytest.raises(BenchError, match="receiver did not start"):
        run_pair(cfg, "purenng", "sync", "nosuchscheme://127.0.0.1:1", 64)


def test_unknown_peer_is_a_usage_error() -> None:
    parser = argparse.ArgumentParser()
    cli_bench.add_arguments(parser)
    args = parser.parse_args(["--peers", "nosuchlib", "--quick"])
    assert cli_bench.run(args) == 2


@pytest.mark.parametrize(
    ("text", "size"),
    [("64", 64), ("64B", 64), ("1K", 1024), ("1KiB", 1024), ("64k", 65536), ("1M", 1 << 20)],
)
def test_parse_size(text: str, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["1", "0", "x", "1G", "-5", ""])
def test_parse_size_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        parse_size(text)


def test_format_size() -> None:
    assert [format_size(n) for n in (64, 1024, 65536, 1 << 20, 1000)] == [
        "64B",
        "1KiB",
        "64KiB",
        "1MiB",
        "1000B",
    ]


def test_table_shows_ratio_errors_and_skips() -> None:
    cfg = BenchConfig(sizes=[64], transports=["tcp"], apis=["sync"], libraries=["purenng", "pynng"])
    ok: dict[str, Any] = {
        "ok_runs": 1,
        "msgs_per_s": 50_000.0,
        "MB_per_s": 3.2,
        "runs_capped": 1,
        "runs_lost": [0],
    }
    row = {
        "transport": "tcp",
        "size": 64,
        "size_label": "64B",
        "api": "sync",
        "results": {"purenng": ok, "pynng": {"ok_runs": 0, "errors": ["boom"], "skipped": 1}},
        "ratio": {"pynng": None},
    }
    result = BenchResult(cfg, [row], {"purenng": "0", "pynng": "0.9"}, _MACHINE, 1.0, 1, 1)
    text = render_table(result)
    assert "50.0k*" in text
    assert "error: tcp 64B sync pynng: boom" in text
    assert "skipped: tcp 64B sync pynng" in text
    assert "x pynng" in text


_MACHINE = {"python": "3.11", "nproc": 2, "async_loop": "asyncio", "purenng_sync_loop": "asyncio"}
