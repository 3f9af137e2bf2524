"""Several bench modes in one go: one machine header, one JSON document.

A *suite* runs the selected modes one after the other, in the order of
:data:`MODES`, each with its own configuration and time budget, and keeps
their results side by side.  The machine (CPU count and model, Python,
load average before and after) and the library versions are recorded once
for all of them: on a shared machine the load average is the first thing
to look at before trusting a ratio.
"""

from __future__ import annotations

import importlib.metadata
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .importtime import ImportConfig, render_import, run_import
from .inproc import InprocConfig, render_inproc, run_inproc
from .latency import LatConfig, render_lat, run_lat
from .peers import LIBRARIES
from .pipes import PipesConfig, render_pipes, run_pipes
from .proc import machine_info
from .runner import (
    BenchConfig,
    BenchResult,
    background_loop_label,
    machine_line,
    render_table,
    run_bench,
)
from .scaling import ScalingConfig, render_scaling, run_scaling

if TYPE_CHECKING:
    from collections.abc import Callable

    from .report import ModeResult

__all__ = ["DEFAULT_MODES", "MODES", "SuiteConfig", "SuiteResult", "run_suite"]

#: Every mode, in the order a suite runs them.
MODES = ("thr", "lat", "inproc", "import", "pipes", "scaling")

#: What ``purenng bench`` runs without ``--modes``.
DEFAULT_MODES = ("thr", "lat")


@dataclass
class SuiteConfig:
    """The modes to run and each one's configuration (None: the mode is not run)."""

    thr: BenchConfig | None = None
    lat: LatConfig | None = None
    inproc: InprocConfig | None = None
    imports: ImportConfig | None = None
    pipes: PipesConfig | None = None
    scaling: ScalingConfig | None = None

    def modes(self) -> list[str]:
        """The selected modes, in running order."""
        chosen = {
            "thr": self.thr,
            "lat": self.lat,
            "inproc": self.inproc,
            "import": self.imports,
            "pipes": self.pipes,
            "scaling": self.scaling,
        }
        return [m for m in MODES if chosen[m] is not None]

    def libraries(self) -> list[str]:
        """Every library some mode compares, in table order."""
        used = {"purenng"}
        for cfg in (self.thr, self.lat, self.inproc, self.scaling):
            if cfg is not None:
                used.update(cfg.libraries)
        return [lib for lib in LIBRARIES if lib in used]


@dataclass
class SuiteResult:
    """What a suite produced; :meth:`to_json` is the ``--json`` document."""

    modes: list[str]
    machine: dict[str, Any]
    versions: dict[str, str | None]
    results: dict[str, BenchResult | ModeResult]
    elapsed_s: float

    @property
    def errors(self) -> int:
        """Failed runs over all modes."""
        return sum(r.errors for r in self.results.values())

    def to_json(self) -> dict[str, Any]:
        """One document: machine and versions once, then each mode's part."""
        return {
            "bench": "purenng",
            "modes": self.modes,
            "machine": self.machine,
            "versions": self.versions,
            **{m: self.results[m].to_json() for m in self.modes},
            "elapsed_s": round(self.elapsed_s, 1),
            "errors": self.errors,
        }

    def render(self, *, markdown: bool = False) -> str:
        """Every mode's table under one header naming the machine and the load."""
        m = self.machine
        load = m.get("loadavg_end")
        head = [
            ("## " if markdown else "") + "purenng bench: " + ", ".join(self.modes),
            "",
            machine_line(self.versions, m)
            + (f", {load[0]:.2f} at the end" if load else "")
            + f"; purenng's blocking API on {m['purenng_sync_loop']}.",
        ]
        parts = ["\n".join(head)]
        for mode in self.modes:
            res = self.results[mode]
            if isinstance(res, BenchResult):
                parts.append(render_table(res, markdown=markdown, header=False))
            else:
                parts.append(_RENDER[mode](res, markdown=markdown))
        parts.append(f"{self.elapsed_s:.0f} s in all, {self.errors} failed runs.")
        return "\n\n".join(parts) + "\n"


_RENDER: dict[str, Callable[..., str]] = {
    "lat": render_lat,
    "inproc": render_inproc,
    "import": render_import,
    "pipes": render_pipes,
    "scaling": render_scaling,
}


def _version(lib: str) -> str | None:
    if lib in LIBRARIES:
        return LIBRARIES[lib].version()
    try:
        return importlib.metadata.version(lib)
    except importlib.metadata.PackageNotFoundError:
        return None


def run_suite(cfg: SuiteConfig, progress: Callable[[str], None] | None = None) -> SuiteResult:
    """Run each selected mode in turn."""
    t0 = time.monotonic()
    machine = machine_info()
    machine["loadavg_start"] = machine.pop("loadavg")
    machine["purenng_sync_loop"] = background_loop_label()
    results: dict[str, BenchResult | ModeResult] = {}
    if cfg.thr is not None:
        results["thr"] = run_bench(cfg.thr, progress)
    if cfg.lat is not None:
        results["lat"] = run_lat(cfg.lat, progress)
    if cfg.inproc is not None:
        results["inproc"] = run_inproc(cfg.inproc, progress)
    if cfg.imports is not None:
        results["import"] = run_import(cfg.imports, progress)
    if cfg.pipes is not None:
        results["pipes"] = run_pipes(cfg.pipes, progress)
    if cfg.scaling is not None:
        results["scaling"] = run_scaling(cfg.scaling, progress)
    machine["loadavg_end"] = machine_info()["loadavg"]
    versions = {lib: _version(lib) for lib in cfg.libraries()}
    if machine["purenng_sync_loop"] == "uvloop" or any(
        getattr(c, "loop", "") == "uvloop"
        for c in (cfg.thr, cfg.lat, cfg.inproc, cfg.pipes, cfg.scaling)
    ):
        versions["uvloop"] = _version("uvloop")
    return SuiteResult(
        modes=cfg.modes(),
        machine=machine,
        versions=versions,
        results=results,
        elapsed_s=time.monotonic() - t0,
    )
