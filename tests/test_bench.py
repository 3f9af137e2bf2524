"""``purenng bench``: the harness runs, reports and cleans up (no speed asserts)."""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import json
import os
import subprocess
import sys
from typing import TYPE_CHECKING, Any

import pytest

from purenng.bench.latency import LatConfig, render_lat
from purenng.bench.pipes import PipesConfig, run_pipes
from purenng.bench.proc import LineReader, kill, pin_cpus
from purenng.bench.report import ModeResult
from purenng.bench.runner import (
    BenchConfig,
    BenchError,
    BenchResult,
    bench_url,
    format_size,
    parse_size,
    render_table,
    run_pair,
)
from purenng.bench.suite import MODES
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
    proc = _bench("--quick", "--json", "--modes", "thr", "--peers", "pynng", "--duration", "0.3")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["modes"] == ["thr"]
    rows = doc["thr"]["rows"]
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


def _need_cryptography() -> None:
    if importlib.util.find_spec("cryptography") is None:
        pytest.skip("cryptography (dev extra) is not installed")


@pytest.mark.parametrize(("transport", "api"), [("tls", "sync"), ("wss", "async")])
def test_quick_tls_transports_against_pynng(tmp_path: Path, transport: str, api: str) -> None:
    _need_pynng()
    _need_cryptography()
    env = dict(os.environ, TMPDIR=str(tmp_path))
    proc = _bench(
        "--quick", "--json", "--modes", "thr", "--peers", "pynng,pyzmq",
        "--transports", transport, "--apis", api, env=env,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["errors"] == 0
    (row,) = doc["thr"]["rows"]
    assert (row["transport"], row["size"], row["api"]) == (transport, 64, api)
    for lib in ("purenng", "pynng"):
        cell = row["results"][lib]
        assert cell["ok_runs"] == 1, cell
        assert cell["msgs_per_s"] > 0
        assert cell["MB_per_s"] > 0
        assert cell["runs_lost"] == [0]
    assert row["ratio"]["pynng"] > 0
    # pyzmq has no TLS: no run, no error, n/a in the table.
    if importlib.util.find_spec("zmq") is not None:
        assert row["results"]["pyzmq"] == {"ok_runs": 0, "na": True}
        assert row["ratio"]["pyzmq"] is None
    # The certificates lived in the bench's temp dir, which is gone.
    assert list(tmp_path.iterdir()) == []


def test_ipc_files_removed(tmp_path: Path) -> None:
    env = dict(os.environ, TMPDIR=str(tmp_path))
    proc = _bench(
        "--quick", "--json", "--modes", "thr", "--peers", "none", "--transports", "ipc",
        "--apis", "sync", env=env,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    row = json.loads(proc.stdout)["thr"]["rows"][0]
    assert row["transport"] == "ipc"
    assert row["results"]["purenng"]["msgs_per_s"] > 0
    assert row["ratio"] == {}
    assert list(tmp_path.iterdir()) == []


def test_failed_receiver_is_reported() -> None:
    cfg = BenchConfig(duration=0.1, grace=0.5)
    with pytest.raises(BenchError, match="receiver did not start"):
        run_pair(cfg, "purenng", "sync", "nosuchscheme://127.0.0.1:1", 64)


def test_tls_run_without_certificates_fails() -> None:
    cfg = BenchConfig(duration=0.1, grace=0.5)
    with pytest.raises(BenchError, match="needs certificates"):
        run_pair(cfg, "purenng", "sync", bench_url("tls"), 64)


def test_transports_option() -> None:
    parser = argparse.ArgumentParser()
    cli_bench.add_arguments(parser)
    args = parser.parse_args(["--transports", "tcp,tls,ws,wss", "--peers", "none"])
    suite = cli_bench._configs(args, [], 1.0)
    assert suite.thr is not None
    assert suite.lat is not None
    assert suite.thr.transports == ["tcp", "tls", "ws", "wss"]
    assert suite.lat.transports == ["tcp"]
    assert BenchConfig().transports == ["tcp", "ipc"]
    assert bench_url("wss").startswith("wss://127.0.0.1:")
    assert bench_url("tls").startswith("tls+tcp://127.0.0.1:")


def test_no_baselines_flag_reaches_the_thr_config() -> None:
    parser = argparse.ArgumentParser()
    cli_bench.add_arguments(parser)
    on = cli_bench._configs(parser.parse_args(["--modes", "thr"]), [], 1.0)
    off = cli_bench._configs(parser.parse_args(["--modes", "thr", "--no-baselines"]), [], 1.0)
    assert on.thr is not None
    assert on.thr.baselines
    assert off.thr is not None
    assert not off.thr.baselines


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


# ---------------------------------------------------------------- the other modes


def _need_pyzmq() -> None:
    if importlib.util.find_spec("zmq") is None and not os.environ.get("PURENNG_REQUIRE_PEERS"):
        pytest.skip("pyzmq is not installed")


def _json_run(*args: str) -> dict[str, Any]:
    proc = _bench("--quick", "--json", *args)
    assert proc.returncode == 0, proc.stderr
    doc: dict[str, Any] = json.loads(proc.stdout)
    assert doc["errors"] == 0
    assert doc["machine"]["nproc"] >= 1
    assert len(doc["machine"]["loadavg_start"]) == 3
    return doc


def test_lat_every_placement() -> None:
    doc = _json_run("--modes", "lat", "--peers", "none", "--apis", "sync", "--pin", "all")
    lat = doc["lat"]
    assert doc["modes"] == ["lat"]
    assert [(r["pin"], r["transport"], r["api"]) for r in lat["rows"]] == [
        ("none", "tcp", "sync"),
        ("same", "tcp", "sync"),
        ("split", "tcp", "sync"),
    ]
    for row in lat["rows"]:
        cell = row["results"]["purenng"]
        assert cell["ok_runs"] == 1
        assert 0 < cell["p50_us"] <= cell["p99_us"]
        assert cell["runs_n"][0] > 0
        assert row["ratio_p50"] == {} == row["ratio_p99"]


def test_lat_async_against_pynng() -> None:
    _need_pynng()
    doc = _json_run("--modes", "lat", "--peers", "pynng", "--apis", "async")
    (row,) = doc["lat"]["rows"]
    assert row["api"] == "async"
    for lib in ("purenng", "pynng"):
        assert row["results"][lib]["p50_us"] > 0
    assert row["ratio_p50"]["pynng"] > 0
    assert row["ratio_p99"]["pynng"] > 0
    assert doc["versions"]["pynng"]


def test_inproc_one_process() -> None:
    _need_pyzmq()
    doc = _json_run("--modes", "inproc", "--peers", "pyzmq")
    rows = doc["inproc"]["rows"]
    assert [(r["size"], r["api"]) for r in rows] == [(64, "sync"), (64, "async")]
    for row in rows:
        for lib in ("purenng", "pyzmq"):
            cell = row["results"][lib]
            assert cell["msgs_per_s"] > 0
            assert cell["runs_lost"] == [0]
        assert row["ratio"]["pyzmq"] > 0


def test_import_json_and_markdown_file(tmp_path: Path) -> None:
    md = tmp_path / "perf.md"
    doc = _json_run("--modes", "import", "--markdown", str(md))
    imp = doc["import"]
    assert [r["runs"] for r in imp["rows"]] == [3, 3, 3, 3]
    assert all(r["median_ms"] > 0 for r in imp["rows"][:1] + imp["rows"][2:])
    assert imp["optional_imported"] == []
    assert imp["purenng_modules_after_import"] == ["purenng"]
    assert "uvloop" in imp["optional_after_first_socket"] or not importlib.util.find_spec("uvloop")
    text = md.read_text()
    assert "### import purenng" in text
    assert "| measurement | median ms | min ms | runs |" in text


def test_pipes_cli() -> None:
    doc = _json_run("--modes", "pipes")
    (row,) = doc["pipes"]["rows"]
    assert row["pipes"] == 50
    assert row["clients"] == 1
    assert row["connect_s"] > 0
    assert row["echo_s"] > 0
    assert row["server_rss_connected_mib"] >= row["server_rss_listening_mib"] > 0
    assert row["rss_per_pipe_kib"] > 0


def test_pipes_split_over_clients() -> None:
    result = run_pipes(PipesConfig(counts=[30], per_client=12, batch=5))
    assert result.errors == 0, result.rows
    (row,) = result.rows
    assert row["pipes"] == 30
    assert row["clients"] == 3


def test_markdown_to_stdout_and_json_conflict() -> None:
    parser = argparse.ArgumentParser()
    cli_bench.add_arguments(parser)
    assert cli_bench.run(parser.parse_args(["--json", "--markdown", "--modes", "import"])) == 2
    with pytest.raises(SystemExit):
        parser.parse_args(["--modes", "thr,nosuchmode"])
    assert parser.parse_args(["--modes", "all"]).modes == list(MODES)
    assert parser.parse_args(["--pipes", "1000,10000"]).pipes == [1000, 10000]


def test_line_reader_sees_lines_read_together() -> None:
    code = (
        "import sys; sys.stdout.write('A\\nB {\"x\": 1}\\n'); sys.stdout.flush(); sys.stdin.read()"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    try:
        rd = LineReader(proc)
        assert rd.expect("A", 10) == {}
        assert rd.expect("B", 10) == {"x": 1}
        assert proc.stdin is not None
        proc.stdin.close()
        with pytest.raises(BenchError, match="exited before C"):
            rd.expect("C", 10)
    finally:
        kill(proc)
        assert proc.stdout is not None
        proc.stdout.close()


def test_pin_cpus() -> None:
    assert pin_cpus("none") == (None, None)
    a, b = pin_cpus("same")
    assert a == b
    if len(os.sched_getaffinity(0)) >= 2:
        a, b = pin_cpus("split")
        assert a != b
    else:
        with pytest.raises(BenchError):
            pin_cpus("split")


def test_lat_table_says_lower_is_better() -> None:
    ok = {"ok_runs": 1, "p50_us": 50.0, "p99_us": 120.0}
    row = {
        "pin": "same",
        "transport": "ipc",
        "api": "sync",
        "size": 64,
        "results": {"purenng": ok, "pynng": {"ok_runs": 0, "errors": ["boom"]}},
        "ratio_p50": {"pynng": None},
        "ratio_p99": {"pynng": None},
    }
    cfg = LatConfig(libraries=["purenng", "pynng"], pins=["same"])
    result = ModeResult("lat", dataclasses.asdict(cfg), [row], 1.0, 1, 0)
    text = render_lat(result)
    assert "Lower is better" in text
    assert "50.0 / 120" in text
    assert "error: pin=same ipc sync pynng: boom" in text
    md = render_lat(result, markdown=True)
    assert "**Lower is better**" in md
    assert "| same | ipc | sync | 50.0 / 120 | error | — |" in md
