"""``purenng bench --modes scaling``: runs move messages, report, figure (no speed asserts)."""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import json
import os
import sys
from typing import TYPE_CHECKING, Any

import pytest

from purenng.bench import scaling
from purenng.bench.proc import BenchError
from purenng.bench.report import ModeResult
from purenng.bench.scaling import (
    PlotUnavailable,
    ScalingConfig,
    plot_scaling,
    render_scaling,
    run_scaling,
)
from purenng.bench.suite import DEFAULT_MODES, MODES, SuiteConfig, run_suite
from purenng.cli import bench as cli_bench

if TYPE_CHECKING:
    from pathlib import Path

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

HAVE_MATPLOTLIB = importlib.util.find_spec("matplotlib") is not None


def _tiny(**kw: Any) -> ScalingConfig:
    base: dict[str, Any] = {
        "pipe_counts": [1, 3],
        "sizes": [64],
        "apis": ["async"],
        "libraries": ["purenng"],
        "duration": 0.2,
        "grace": 2.0,
        "budget": 60.0,
    }
    return ScalingConfig(**{**base, **kw})


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[ModeResult, Path]:
    """One real run with tiny settings, shared by the tests that read it."""
    png = tmp_path_factory.mktemp("scaling") / "scaling.png"
    cfg = _tiny(plot=str(png) if HAVE_MATPLOTLIB else None)
    return run_scaling(cfg), png


def test_every_pipe_count_moves_messages(tiny_run: tuple[ModeResult, Path]) -> None:
    result, _ = tiny_run
    assert result.errors == 0, result.to_json()
    assert [row["pipes"] for row in result.rows] == [1, 3]
    for row in result.rows:
        cell = row["results"]["purenng"]
        assert cell["ok_runs"] == 1, cell
        assert cell["runs_n"][0] > 0
        assert cell["msgs_per_s"] > 0
        assert cell["MB_per_s"] > 0
        assert cell["per_pipe_msgs_per_s"] == pytest.approx(cell["msgs_per_s"] / row["pipes"])
        # Every pipe was up at the receiver and carried messages; none were lost.
        assert cell["runs_pipes_connected"] == [row["pipes"]]
        ((lo, hi),) = cell["runs_sent_min_max"]
        assert 0 < lo <= hi
        assert cell["runs_lost"] == [0]
        assert row["ratio"] == {}


def test_size_part_uses_the_thr_runner(tiny_run: tuple[ModeResult, Path]) -> None:
    result, _ = tiny_run
    (row,) = result.extra["size_rows"]
    assert (row["transport"], row["size"], row["api"]) == ("tcp", 64, "async")
    cell = row["results"]["purenng"]
    assert cell["ok_runs"] == 1
    assert cell["msgs_per_s"] > 0
    assert cell["runs_lost"] == [0]


def test_json_fields(tiny_run: tuple[ModeResult, Path]) -> None:
    result, _ = tiny_run
    doc = json.loads(json.dumps(result.to_json()))
    assert doc["mode"] == "scaling"
    assert {"config", "rows", "size_rows", "plot", "elapsed_s", "errors", "skipped"} <= set(doc)
    assert doc["config"]["pipe_counts"] == [1, 3]
    assert doc["config"]["sizes"] == [64]
    cell = doc["rows"][0]["results"]["purenng"]
    for key in ("msgs_per_s", "MB_per_s", "per_pipe_msgs_per_s", "runs_pipes_connected"):
        assert key in cell


def test_tables_render(tiny_run: tuple[ModeResult, Path]) -> None:
    result, _ = tiny_run
    text = render_scaling(result)
    assert "Throughput vs concurrent pipes" in text
    assert "Throughput vs message size" in text
    assert "per pipe msg/s" in text
    assert "Measured: purenng." in text
    md = render_scaling(result, markdown=True)
    assert "| pipes | purenng msg/s | MB/s | per pipe msg/s |" in md
    assert "| size | api | purenng msg/s | MB/s |" in md
    assert "| 64B | async |" in md


def test_plot_is_a_png(tiny_run: tuple[ModeResult, Path]) -> None:
    if not HAVE_MATPLOTLIB:
        pytest.skip("matplotlib is not installed (pip install 'purenng[bench]')")
    result, png = tiny_run
    assert result.extra["plot"] == str(png)
    assert "plot_error" not in result.extra
    assert png.read_bytes()[:8] == PNG_MAGIC
    assert f"Figure: {png}" in render_scaling(result)


def _synthetic() -> ModeResult:
    """A result with one good, one failed and one skipped cell (no runs needed)."""
    good = {"ok_runs": 1, "msgs_per_s": 100_000.0, "MB_per_s": 6.4, "per_pipe_msgs_per_s": 1e4}
    cfg = _tiny(pipe_counts=[1, 10, 100], libraries=["purenng", "pyzmq"])
    rows = [
        {"pipes": 1, "size": 64, "results": {"purenng": good}, "ratio": {}},
        {"pipes": 10, "size": 64, "results": {"purenng": {"ok_runs": 0, "errors": ["boom"]}},
         "ratio": {}},
        {"pipes": 100, "size": 64, "results": {"purenng": {"ok_runs": 0, "skipped": 1}},
         "ratio": {}},
    ]  # fmt: skip
    size_rows = [
        {"transport": "tcp", "size": 64, "size_label": "64B", "api": "async",
         "results": {"purenng": good, "pyzmq": {"ok_runs": 0, "errors": ["peer gone"]}},
         "ratio": {"pyzmq": None}},
    ]  # fmt: skip
    return ModeResult(
        "scaling", dataclasses.asdict(cfg), rows, 1.0, 2, 1, {"size_rows": size_rows, "plot": None}
    )


def test_table_shows_errors_skips_and_what_was_measured() -> None:
    text = render_scaling(_synthetic())
    assert "100k" in text
    assert "error: 10 pipes purenng: boom" in text
    assert "skipped: 100 pipes purenng" in text
    assert "error: tcp 64B async pyzmq: peer gone" in text
    assert "pyzmq is not run here" in text


def test_plot_from_synthetic_result(tmp_path: Path) -> None:
    if not HAVE_MATPLOTLIB:
        pytest.skip("matplotlib is not installed (pip install 'purenng[bench]')")
    png = tmp_path / "s.png"
    plot_scaling(_synthetic(), str(png), machine={"python": "3.11", "nproc": 2})
    assert png.read_bytes()[:8] == PNG_MAGIC


def test_missing_matplotlib_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib -> ImportError
    png = tmp_path / "s.png"
    with pytest.raises(PlotUnavailable, match=r"pip install 'purenng\[bench\]'"):
        plot_scaling(_synthetic(), str(png))
    assert not png.exists()
    # The command line refuses before running anything.
    parser = argparse.ArgumentParser()
    cli_bench.add_arguments(parser)
    args = parser.parse_args(["--modes", "scaling", "--quick", "--plot", str(png)])
    assert cli_bench.run(args) == 2
    assert "matplotlib" in capsys.readouterr().err
    # Inside a run, the figure's failure is recorded, not raised.
    result = run_scaling(_tiny(pipe_counts=[], sizes=[], plot=str(png)))
    assert result.errors == 1
    assert "pip install" in result.extra["plot_error"]
    assert result.extra["plot"] is None
    assert "error: figure not written" in render_scaling(result)


def test_too_many_pipes_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(scaling, "max_pipes", lambda: 2)
    with pytest.raises(BenchError, match="open-files limit"):
        scaling.run_one(_tiny(), 3, "purenng")


@pytest.mark.interop
def test_pynng_pipes() -> None:
    if importlib.util.find_spec("pynng") is None and not os.environ.get("PURENNG_REQUIRE_PEERS"):
        pytest.skip("pynng is not installed")
    r = scaling.run_one(_tiny(libraries=["purenng", "pynng"]), 2, "pynng")
    assert r["pipes_connected"] == 2
    assert r["n"] > 0
    assert r["sent_min"] > 0
    assert r["lost"] == 0


def test_cli_options() -> None:
    assert "scaling" in MODES
    assert MODES.index("scaling") > MODES.index("pipes")
    assert "scaling" not in DEFAULT_MODES
    parser = argparse.ArgumentParser()
    cli_bench.add_arguments(parser)
    assert "scaling" in parser.parse_args(["--modes", "all"]).modes
    args = parser.parse_args(["--modes", "scaling", "--quick", "--peers", "none"])
    suite = cli_bench._configs(args, [], 0.3)
    assert suite.modes() == ["scaling"]
    assert suite.scaling is not None
    assert suite.scaling.pipe_counts == [1, 10]
    assert suite.scaling.sizes == [64, 1024]
    assert suite.scaling.duration == 0.3
    assert suite.scaling.plot is None
    args = parser.parse_args(
        ["--modes", "scaling", "--scale-pipes", "2,20", "--plot", "x.png", "--peers", "none"]
    )
    suite = cli_bench._configs(args, ["pynng", "pyzmq"], 1.0)
    assert suite.scaling is not None
    assert suite.scaling.pipe_counts == [2, 20]
    assert suite.scaling.sizes == list(scaling.SCALING_SIZES)
    assert suite.scaling.plot == "x.png"
    assert suite.scaling.pipe_libraries() == ["purenng", "pynng"]
    assert SuiteConfig(scaling=suite.scaling).libraries()[:2] == ["purenng", "pynng"]
    with pytest.raises(SystemExit):
        parser.parse_args(["--scale-pipes", "0"])
    # --plot without the scaling mode is a usage error.
    assert cli_bench.run(parser.parse_args(["--modes", "import", "--plot", "x.png"])) == 2


def test_suite_runs_the_mode() -> None:
    res = run_suite(SuiteConfig(scaling=_tiny(pipe_counts=[2], sizes=[])))
    assert res.modes == ["scaling"]
    doc = json.loads(json.dumps(res.to_json()))
    assert doc["errors"] == 0
    (row,) = doc["scaling"]["rows"]
    assert row["results"]["purenng"]["runs_pipes_connected"] == [2]
    assert doc["scaling"]["size_rows"] == []
    assert "Throughput vs concurrent pipes" in res.render()


def test_default_sizes() -> None:
    assert list(scaling.SCALING_SIZES) == [
        16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1 << 20,
    ]  # fmt: skip
