"""The pure-Python baselines of ``purenng bench``'s thr mode (no speed asserts)."""

from __future__ import annotations

import importlib.util
from typing import TYPE_CHECKING, Any

import pytest

from purenng.bench.baselines import BIG, CEILING, RAW, baseline_kind
from purenng.bench.report import fmt_rate
from purenng.bench.runner import (
    BASELINE_NOTE,
    BenchConfig,
    BenchError,
    BenchResult,
    _cells,
    bench_url,
    render_table,
    run_baseline,
    run_bench,
)

if TYPE_CHECKING:
    from pathlib import Path

#: Small, count-bounded runs: every message sent is counted exactly.
_CFG = BenchConfig(duration=5.0, grace=5.0, count=300)

_MACHINE = {"python": "3.11", "nproc": 2, "async_loop": "asyncio", "purenng_sync_loop": "asyncio"}


def _url(tmp_path: Path, transport: str) -> str:
    return bench_url(transport, str(tmp_path / "b.ipc"))


def _check_counts(res: dict[str, Any], count: int, size: int) -> None:
    # The first message starts the clock and is not counted; the rest all are.
    assert res["sent"] == count
    assert res["n"] == count - 1
    assert res["bytes"] == (count - 1) * size
    assert res["lost"] == 0
    assert res["capped"] is False
    assert res["msgs_per_s"] > 0
    assert res["MB_per_s"] > 0


@pytest.mark.parametrize(
    ("transport", "size"), [("tcp", 64), ("ipc", 64), ("tcp", BIG + 100)]
)  # small frames are coalesced, big bodies received in place
def test_ceiling_children_move_every_message(tmp_path: Path, transport: str, size: int) -> None:
    res = run_baseline(_CFG, CEILING, _url(tmp_path, transport), size)
    _check_counts(res, 300, size)
    assert res["loop"] == "asyncio"


def test_ceiling_runs_on_the_async_loop(tmp_path: Path) -> None:
    if importlib.util.find_spec("uvloop") is None:
        pytest.skip("uvloop is not installed")
    cfg = BenchConfig(duration=5.0, grace=5.0, count=300, loop="uvloop")
    res = run_baseline(cfg, CEILING, _url(tmp_path, "tcp"), 64)
    _check_counts(res, 300, 64)
    assert res["loop"] == "uvloop"


@pytest.mark.parametrize("transport", ["tcp", "ipc"])
def test_raw_children_move_every_chunk(tmp_path: Path, transport: str) -> None:
    cfg = BenchConfig(duration=5.0, grace=5.0, count=20)
    res = run_baseline(cfg, RAW, _url(tmp_path, transport), 1 << 20)
    _check_counts(res, 20, 1 << 20)


def test_baseline_child_failure_is_reported() -> None:
    with pytest.raises(BenchError, match="receiver did not start"):
        run_baseline(_CFG, CEILING, "ws://127.0.0.1:1/x", 64)


def test_which_baseline_applies() -> None:
    assert baseline_kind("tcp", 64, "sync") is None
    assert baseline_kind("tcp", 64, "async") == CEILING
    assert baseline_kind("ipc", 64 << 10, "async") == CEILING
    assert baseline_kind("ipc", 1 << 20, "sync") == RAW
    assert baseline_kind("tcp", 1 << 20, "async") == RAW
    for tr in ("tls", "ws", "wss"):
        assert baseline_kind(tr, 64, "async") is None
        assert baseline_kind(tr, 1 << 20, "sync") is None


def test_run_order_puts_baselines_after_purenng() -> None:
    cfg = BenchConfig(
        sizes=[64, 1 << 20],
        transports=["tcp", "tls"],
        libraries=["purenng", "pynng"],
    )
    libs = ("purenng", "pynng")
    tls = [("tls", s, a, lib) for s in (64, 1 << 20) for a in ("sync", "async") for lib in libs]
    assert _cells(cfg) == [
        ("tcp", 64, "sync", "purenng"),
        ("tcp", 64, "sync", "pynng"),
        ("tcp", 64, "async", "purenng"),
        ("tcp", 64, "async", CEILING),
        ("tcp", 64, "async", "pynng"),
        ("tcp", 1 << 20, "sync", "purenng"),
        ("tcp", 1 << 20, "", RAW),  # once for both APIs
        ("tcp", 1 << 20, "sync", "pynng"),
        ("tcp", 1 << 20, "async", "purenng"),
        ("tcp", 1 << 20, "async", "pynng"),
        *tls,  # no baseline over TLS
    ]
    cfg.baselines = False
    assert all(c[3] in ("purenng", "pynng") for c in _cells(cfg))
    assert len(_cells(cfg)) == 16


def test_bench_rows_and_table_carry_baselines() -> None:
    cfg = BenchConfig(
        sizes=[64, 1 << 20],
        transports=["ipc"],
        libraries=["purenng"],
        duration=5.0,
        grace=5.0,
        count=200,
    )
    seen: list[str] = []
    result = run_bench(cfg, seen.append)
    assert result.errors == 0, seen
    assert [line.partition(":")[0] for line in seen] == [
        "ipc 64B sync purenng",
        "ipc 64B async purenng",
        "ipc 64B async baseline ceiling",
        "ipc 1MiB sync purenng",
        "ipc 1MiB baseline raw",
        "ipc 1MiB async purenng",
    ]
    rows = {(r["size"], r["api"]): r for r in result.rows}
    assert rows[64, "sync"]["baseline"] is None
    assert rows[64, "sync"]["ratio_baseline"] is None
    for key, kind in [
        ((64, "async"), CEILING),
        ((1 << 20, "sync"), RAW),
        ((1 << 20, "async"), RAW),
    ]:
        row = rows[key]
        base = row["baseline"]
        assert base["kind"] == kind
        assert base["ok_runs"] == 1
        assert base["runs_n"] == [199]
        assert base["runs_lost"] == [0]
        ours = row["results"]["purenng"]["msgs_per_s"]
        assert row["ratio_baseline"] == pytest.approx(ours / base["msgs_per_s"])
    # One raw run serves both API rows.
    assert rows[1 << 20, "sync"]["baseline"] == rows[1 << 20, "async"]["baseline"]
    doc = result.to_json()
    assert doc["config"]["baselines"] is True
    assert doc["rows"][1]["baseline"]["kind"] == CEILING

    text = render_table(result)
    assert "baseline msg/s" in text
    assert "x baseline" in text
    assert BASELINE_NOTE in text
    for key in [(64, "async"), (1 << 20, "sync")]:
        row = rows[key]
        assert f"{row['baseline']['kind']} {fmt_rate(row['baseline']['msgs_per_s'])}" in text
        assert f"{row['ratio_baseline']:.2f}x" in text
    md = render_table(result, markdown=True)
    assert "| baseline msg/s | x baseline |" in md
    (sync64,) = [ln for ln in md.splitlines() if ln.startswith("| ipc | 64B | sync |")]
    assert sync64.endswith("| — | — |")  # no baseline for the blocking API below 1 MiB


def test_baselines_off_leaves_them_out() -> None:
    cfg = BenchConfig(
        sizes=[64],
        transports=["tcp"],
        apis=["async"],
        libraries=["purenng"],
        duration=5.0,
        grace=5.0,
        count=200,
        baselines=False,
    )
    seen: list[str] = []
    result = run_bench(cfg, seen.append)
    assert result.errors == 0, seen
    assert [line.partition(":")[0] for line in seen] == ["tcp 64B async purenng"]
    (row,) = result.rows
    assert "baseline" not in row
    assert "ratio_baseline" not in row
    assert result.to_json()["config"]["baselines"] is False
    text = render_table(result)
    assert "baseline" not in text


def test_table_reports_a_failed_baseline_once() -> None:
    cfg = BenchConfig(sizes=[1 << 20], transports=["tcp"], libraries=["purenng"])
    ok = {"ok_runs": 1, "msgs_per_s": 1000.0, "MB_per_s": 1048.6, "runs_lost": [0]}
    failed = {"kind": RAW, "ok_runs": 0, "errors": ["boom"]}
    rows = [
        {
            "transport": "tcp",
            "size": 1 << 20,
            "size_label": "1MiB",
            "api": api,
            "results": {"purenng": ok},
            "ratio": {},
            "baseline": failed,
            "ratio_baseline": None,
        }
        for api in ("sync", "async")
    ]
    result = BenchResult(cfg, rows, {"purenng": "0"}, _MACHINE, 1.0, 1, 0)
    text = render_table(result)
    assert text.count("raw error") == 2
    assert text.count("error: tcp 1MiB baseline raw: boom") == 1
