"""How long ``import purenng`` takes, and what it pulls in (``--modes import``).

``import purenng`` must stay cheap: public names are loaded on first use,
and no transport, protocol or optional dependency (uvloop, pluggy, trio,
cryptography, aioquic...) is imported until a socket needs it.  This mode
measures that in fresh interpreters (a module imported once is cached, so
only a new process shows the real cost), ``runs`` times each, alternating:

* ``in-process``: ``perf_counter_ns`` around ``import purenng`` inside a
  child that has imported nothing else of ours; the child also lists the
  modules that the import added to ``sys.modules``.
* ``process``: the wall time of ``python -c "import purenng"`` minus that of
  ``python -c pass`` (medians), i.e. what a command line tool pays,
  interpreter start-up excluded.
* ``first socket``: in the same child as ``in-process``, the time of
  ``purenng.Pair0()`` + ``close()`` right after the import, and what that
  adds to ``sys.modules``: here the registry, the event loop and the
  protocol are loaded, so uvloop and pluggy are expected.

One untimed run of each command comes first, so that byte-code caches are
written before the clock matters.  Medians are reported, with the minimum.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from .proc import BenchError, child_env, last_json
from .report import ModeResult, render_section

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["OPTIONAL_MODULES", "ImportConfig", "render_import", "run_import"]

#: Top-level modules that ``import purenng`` must not import.
OPTIONAL_MODULES = (
    "aioquic",
    "anyio",
    "asyncio",
    "cryptography",
    "h11",
    "nng",
    "OpenSSL",
    "pluggy",
    "pynng",
    "ssl",
    "trio",
    "uvloop",
    "websockets",
    "wsproto",
    "zmq",
)

#: Seconds one child may take.
_CHILD_TIMEOUT = 60.0

_PROBE = """\
import sys, time
before = set(sys.modules)
t0 = time.perf_counter_ns()
import purenng
t1 = time.perf_counter_ns()
after_import = set(sys.modules)
s = purenng.Pair0()
s.close()
t2 = time.perf_counter_ns()
after_socket = set(sys.modules)
import json
print(json.dumps({
    "import_ns": t1 - t0,
    "socket_ns": t2 - t1,
    "import_new": sorted(after_import - before),
    "socket_new": sorted(after_socket - after_import),
}))
"""


@dataclass
class ImportConfig:
    """How many fresh interpreters of each kind to time."""

    runs: int = 10


def _timed(code: str) -> tuple[float, str]:
    """Wall seconds of ``python -c code`` in a fresh interpreter, and its stdout."""
    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=_CHILD_TIMEOUT,
        env=child_env(),
        check=False,
    )
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        lines = proc.stderr.strip().splitlines()
        raise BenchError(f"python -c {code[:30]!r}... failed: {lines[-1] if lines else '?'}")
    return wall, proc.stdout


def _top(modules: list[str]) -> list[str]:
    return sorted({m.partition(".")[0] for m in modules})


def _ms(values: list[float]) -> dict[str, float]:
    return {"median_ms": round(statistics.median(values), 2), "min_ms": round(min(values), 2)}


def run_import(cfg: ImportConfig, progress: Callable[[str], None] | None = None) -> ModeResult:
    """Time the import ``cfg.runs`` times each way; list the modules it loads."""
    t_start = time.monotonic()
    errors: list[str] = []
    in_proc: list[float] = []
    first_socket: list[float] = []
    walls: dict[str, list[float]] = {"pass": [], "import": []}
    probe: dict[str, Any] = {}
    try:
        for code in ("pass", "import purenng", _PROBE):  # warm byte-code caches
            _timed(code)
        for _ in range(cfg.runs):
            walls["pass"].append(_timed("pass")[0] * 1e3)
            walls["import"].append(_timed("import purenng")[0] * 1e3)
            _, out = _timed(_PROBE)
            probe = last_json(out)
            in_proc.append(probe["import_ns"] / 1e6)
            first_socket.append(probe["socket_ns"] / 1e6)
    except (BenchError, subprocess.TimeoutExpired, ValueError, KeyError) as e:
        errors.append(str(e))
        if progress:
            progress(f"import: ERROR {e}")
    rows: list[dict[str, Any]] = []
    extra: dict[str, Any] = {}
    if in_proc:
        process = [i - p for i, p in zip(walls["import"], walls["pass"], strict=False)]
        rows = [
            {"what": "import purenng (in-process)", "runs": len(in_proc), **_ms(in_proc)},
            {
                "what": "python -c 'import purenng' minus python -c pass",
                "runs": len(process),
                "median_ms": round(
                    statistics.median(walls["import"]) - statistics.median(walls["pass"]), 2
                ),
                "min_ms": round(min(process), 2),
            },
            {"what": "python -c pass (interpreter start-up)", "runs": len(walls["pass"])}
            | _ms(walls["pass"]),
            {"what": "first Pair0() + close() after the import", "runs": len(first_socket)}
            | _ms(first_socket),
        ]
        import_new: list[str] = probe["import_new"]
        socket_new: list[str] = probe["socket_new"]
        extra = {
            "modules_added_by_import": len(import_new),
            "purenng_modules_after_import": [m for m in import_new if m.startswith("purenng")],
            "top_level_added_by_import": _top(import_new),
            "optional_imported": [m for m in OPTIONAL_MODULES if m in _top(import_new)],
            "modules_added_by_first_socket": len(socket_new),
            "optional_after_first_socket": [m for m in OPTIONAL_MODULES if m in _top(socket_new)],
        }
        if progress:
            progress(
                f"import: {rows[0]['median_ms']} ms in-process, {rows[1]['median_ms']} ms "
                f"process; optional modules imported: {extra['optional_imported'] or 'none'}"
            )
    return ModeResult(
        mode="import",
        config=asdict(cfg),
        rows=rows,
        elapsed_s=time.monotonic() - t_start,
        errors=len(errors),
        skipped=0,
        extra={**extra, "error_messages": errors} if errors else extra,
    )


def render_import(result: ModeResult, *, markdown: bool = False) -> str:
    """The import table and the lists of modules loaded."""
    head = ["measurement", "median ms", "min ms", "runs"]
    rows = [
        [r["what"], f"{r['median_ms']:.1f}", f"{r['min_ms']:.1f}", str(r["runs"])]
        for r in result.rows
    ]
    intro = [
        f"Fresh interpreters ({sys.executable.rsplit('/', 1)[-1]}), "
        f"{result.config['runs']} runs of each, medians."
    ]
    x = result.extra
    notes = []
    if result.rows:

        def names(v: list[str]) -> str:
            return ", ".join(v) if v else "none"

        notes += [
            f"Optional modules loaded by `import purenng`: {names(x['optional_imported'])} "
            f"(checked: {', '.join(OPTIONAL_MODULES)}).",
            f"`import purenng` added {x['modules_added_by_import']} modules; purenng's own: "
            f"{names(x['purenng_modules_after_import'])}.",
            f"The first socket added {x['modules_added_by_first_socket']} more, optional ones: "
            f"{names(x['optional_after_first_socket'])}.",
        ]
    notes.extend(f"error: {e}" for e in x.get("error_messages", ()))
    return render_section("import purenng", intro, head, rows, notes, markdown=markdown)
