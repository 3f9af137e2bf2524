"""Tables and numbers as ``purenng bench`` prints them: plain text or Markdown.

Every mode renders through :func:`render_section`: a title, a few lines
that say what was measured, one table, and notes.  Plain text aligns the
columns for a terminal; Markdown (``--markdown``) gives pipe tables that
can be pasted into ``docs/performance.md`` unchanged.  The first ``left``
columns name the row and are left-aligned, numbers are right-aligned.

The result of a non-throughput mode is a :class:`ModeResult`: its rows are
plain dicts, so ``--json`` prints them as they are.  Each row holds one
result cell per library, built by :func:`summarise` (run count, the mode's
statistics, errors, skips); :func:`run_notes` turns the cells' errors and
skips into the notes under a table, the same way for every mode.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Sequence

__all__ = [
    "ModeResult",
    "fmt_mb",
    "fmt_rate",
    "fmt_us",
    "median_or_none",
    "ratio",
    "render_section",
    "render_table_lines",
    "run_notes",
    "summarise",
    "throughput_stats",
    "throughput_text",
    "totals_note",
]


@dataclass
class ModeResult:
    """What one bench mode produced; :meth:`to_json` is its part of ``--json``."""

    mode: str
    config: dict[str, Any]
    rows: list[dict[str, Any]]
    elapsed_s: float
    errors: int
    skipped: int
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict: mode, config, rows, counts and anything extra."""
        return {
            "mode": self.mode,
            "config": self.config,
            "rows": self.rows,
            **self.extra,
            "elapsed_s": round(self.elapsed_s, 1),
            "errors": self.errors,
            "skipped": self.skipped,
        }


def fmt_rate(x: float) -> str:
    """Messages/s with about three significant digits: ``27.4k``, ``1.10M``."""
    if x >= 1e6:
        return f"{x / 1e6:.2f}M"
    if x >= 1e5:
        return f"{x / 1e3:.0f}k"
    if x >= 1e4:
        return f"{x / 1e3:.1f}k"
    if x >= 1e3:
        return f"{x / 1e3:.2f}k"
    return f"{x:.0f}"


def fmt_mb(x: float) -> str:
    """MB/s with about three significant digits."""
    if x >= 100:
        return f"{x:,.0f}"
    if x >= 10:
        return f"{x:.1f}"
    return f"{x:.2f}"


def fmt_us(x: float) -> str:
    """Microseconds: whole above 100, one decimal below."""
    return f"{x:.0f}" if x >= 100 else f"{x:.1f}"


def median_or_none(values: Iterable[float | None]) -> float | None:
    """The median of the values that are not None, or None if there are none."""
    vals = [v for v in values if v is not None]
    return statistics.median(vals) if vals else None


def ratio(ours: float | None, theirs: float | None) -> float | None:
    """``ours / theirs``, or None when either is missing or ``theirs`` is 0."""
    if ours is None or not theirs:
        return None
    return ours / theirs


def render_table_lines(
    head: Sequence[str], rows: Sequence[Sequence[str]], *, markdown: bool, left: int = 1
) -> list[str]:
    """One table: aligned columns (text) or a pipe table (Markdown)."""
    if markdown:
        out = ["| " + " | ".join(head) + " |"]
        out.append("|" + "|".join("---" if i < left else "---:" for i in range(len(head))) + "|")
        out.extend("| " + " | ".join(r) + " |" for r in rows)
        return out
    table = [list(head), *[list(r) for r in rows]]
    widths = [max(len(t[i]) for t in table) for i in range(len(head))]
    out = []
    for n, t in enumerate(table):
        cols = zip(t, widths, strict=True)
        out.append(
            "  ".join(c.ljust(w) if j < left else c.rjust(w) for j, (c, w) in enumerate(cols))
        )
        if n == 0:
            out.append("  ".join("-" * w for w in widths))
    return out


def render_section(
    title: str,
    intro: Sequence[str],
    head: Sequence[str],
    rows: Sequence[Sequence[str]],
    notes: Sequence[str],
    *,
    markdown: bool,
    left: int = 1,
) -> str:
    """Title, intro lines, the table, then notes (errors, skips, legends)."""
    out = [f"### {title}" if markdown else title]
    if intro:
        if markdown:
            out.append("")
        out.extend(intro)
    out.append("")
    out.extend(render_table_lines(head, rows, markdown=markdown, left=left))
    if notes:
        out.append("")
        if markdown:
            out.extend(f"- {n}" for n in notes)
        else:
            out.extend(notes)
    return "\n".join(out)


def summarise(
    runs: list[dict[str, Any]],
    errors: list[str],
    skipped: int,
    stats: Callable[[list[dict[str, Any]]], dict[str, Any]],
    *,
    na: bool = False,
) -> dict[str, Any]:
    """One result cell: ``ok_runs``, ``na`` if set, ``stats(runs)`` if any ran, errors, skips."""
    cell: dict[str, Any] = {"ok_runs": len(runs)}
    if na:
        cell["na"] = True
    if runs:
        cell.update(stats(runs))
    if errors:
        cell["errors"] = errors
    if skipped:
        cell["skipped"] = skipped
    return cell


def throughput_stats(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The statistics every throughput cell has (medians and per-run lists)."""
    return {
        "msgs_per_s": statistics.median(r["msgs_per_s"] for r in runs),
        "MB_per_s": statistics.median(r["MB_per_s"] for r in runs),
        "runs_msgs_per_s": [round(r["msgs_per_s"], 1) for r in runs],
        "runs_n": [r["n"] for r in runs],
    }


def throughput_text(r: dict[str, Any]) -> str:
    """A throughput run for a progress line: rates, then whether it was capped or lost any."""
    return (
        f"{fmt_rate(r['msgs_per_s'])} msg/s, {fmt_mb(r['MB_per_s'])} MB/s"
        + (" (capped)" if r["capped"] else "")
        + (f" LOST {r['lost']}" if r["lost"] else "")
    )


def run_notes(
    rows: Iterable[dict[str, Any]],
    libs: Sequence[str],
    where: Callable[[dict[str, Any]], str],
    *,
    budget: str = "the budget",
) -> list[str]:
    """One note per error and one per cell with skipped runs; ``where(row)`` names the row."""
    notes: list[str] = []
    for row in rows:
        for lib in libs:
            cell = row["results"][lib]
            at = f"{where(row)} {lib}"
            notes.extend(f"error: {at}: {e}" for e in cell.get("errors", ()))
            if cell.get("skipped"):
                notes.append(f"skipped: {at}: {cell['skipped']} run(s) over {budget}")
    return notes


class _Totals(Protocol):
    elapsed_s: float
    errors: int
    skipped: int


def totals_note(result: _Totals) -> str:
    """Time taken, failed and skipped runs of a whole mode."""
    return f"{result.elapsed_s:.0f} s, {result.errors} failed runs, {result.skipped} skipped."
