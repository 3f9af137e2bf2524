"""What a soak tells: the growth check, the summary table and the figure.

Growth (how "unbounded growth" is decided):

* Only *survivors* are judged: the child of each transport that is never
  killed (its peer is), which lives from the first second to the last.
  A killed child's incarnations are shown, not judged.
* The *baseline* of a measure (RSS, open fds, threads) is the median of
  its samples in the window that starts when the warm-up ends; the *end*
  is the median in the window just before the senders stop.  Windows are
  ``SoakConfig.window_s()`` wide (5 % of the run, at least 30 s); medians,
  so that one sample taken while a 1 MiB message was in memory does not
  decide.
* It fails when end - baseline exceeds the limit: RSS
  ``max(rss_limit_mib, rss_limit_ratio * baseline)`` (64 MiB or 50 %),
  fds ``fd_limit`` (16), threads ``thread_limit`` (8).  The least-squares
  slope after the warm-up is reported per hour as well, without a verdict.
* A run too short for a warm-up and two windows is not judged (a note
  says so).

The figure (:func:`plot_soak`, needs matplotlib, imported only there) has
four panels against minutes: RSS, open fds and threads of every child
(one line per transport and side; a killed side's incarnations are one
dashed line with breaks), and messages received per second per transport,
with the kills and redials marked.  The warm-up is shaded, and the
baseline and end windows are marked on the resource panels.
"""

from __future__ import annotations

import statistics
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .runner import SoakConfig, SoakResult

__all__ = ["growth_verdicts", "plot_soak", "summary_table"]

_MIB = 1 << 20
_COLORS = {
    "tcp": "tab:blue",
    "ipc": "tab:orange",
    "inproc": "tab:green",
    "tls": "tab:red",
    "ws": "tab:purple",
    "wss": "tab:brown",
}
_MEASURES = (("rss", "RSS"), ("fds", "fds"), ("threads", "threads"))


def _slope_per_hour(ts: list[float], vs: list[float]) -> float | None:
    if len(ts) < 3:
        return None
    mt, mv = statistics.fmean(ts), statistics.fmean(vs)
    den = sum((t - mt) ** 2 for t in ts)
    if den == 0:
        return None
    return sum((t - mt) * (v - mv) for t, v in zip(ts, vs, strict=True)) / den * 3600.0


def _window(ts: list[float], vs: list[float], lo: float, hi: float) -> float | None:
    inside = [v for t, v in zip(ts, vs, strict=True) if lo <= t <= hi]
    return statistics.median(inside) if inside else None


def _last_cpu(s: dict[str, list[Any]], inc: int) -> float:
    """CPU seconds incarnation ``inc`` had used at its last sample."""
    return max((float(c) for c, n in zip(s["cpu"], s["inc"], strict=True) if n == inc), default=0.0)


def _unit(m: str, v: float) -> str:
    return f"{v / _MIB:.1f} MiB" if m == "rss" else f"{v:g}"


def growth_verdicts(
    samples: dict[str, dict[str, list[Any]]],
    survivors: set[str],
    cfg: SoakConfig,
    *,
    stop_t: float,
) -> tuple[list[dict[str, Any]], list[str], list[str]]:
    """Per child: resource figures, and for survivors the verdict (see the module).

    Returns:
        (one dict per child, failure messages, notes).
    """
    warm, win = cfg.warmup_s(), cfg.window_s()
    judged = warm + 2 * win <= stop_t
    notes: list[str] = []
    if not judged:
        notes.append(
            f"growth not judged: {stop_t:.0f} s of traffic is shorter than the warm-up "
            f"({warm:.0f} s) and two {win:.0f} s windows"
        )
    limits = {
        "fds": float(cfg.fd_limit),
        "threads": float(cfg.thread_limit),
    }
    out: list[dict[str, Any]] = []
    failures: list[str] = []
    for key in sorted(samples):
        s = samples[key]
        incs = sorted(set(s["inc"]))
        row: dict[str, Any] = {
            "process": key,
            "survivor": key in survivors,
            "incarnations": len(incs),
            "cpu_s": round(sum(_last_cpu(s, i) for i in incs), 1),
        }
        # A survivor is judged on its longest incarnation (the only one, unless it crashed).
        inc = max(incs, key=s["inc"].count)
        idx = [i for i, n in enumerate(s["inc"]) if n == inc]
        ts = [float(s["t"][i]) for i in idx]
        for m, _ in _MEASURES:
            vs = [float(s[m][i]) for i in idx]
            first, last = vs[0], vs[-1]
            live = [(t, v) for t, v in zip(ts, vs, strict=True) if t <= stop_t]
            rec: dict[str, Any] = {
                "first": first,
                "last_before_stop": live[-1][1] if live else last,
                "peak": max(vs),
            }
            if key in survivors and judged:
                base = _window(ts, vs, warm, warm + win)
                end = _window(ts, vs, stop_t - win, stop_t)
                post = [(t, v) for t, v in live if t >= warm]
                rec["baseline"] = base
                rec["end"] = end
                rec["slope_per_hour"] = _slope_per_hour([t for t, _ in post], [v for _, v in post])
                if base is not None and end is not None:
                    limit = (
                        max(cfg.rss_limit_mib * _MIB, cfg.rss_limit_ratio * base)
                        if m == "rss"
                        else limits[m]
                    )
                    rec["limit"] = limit
                    rec["grew"] = end - base > limit
                    if rec["grew"]:
                        failures.append(
                            f"{key}: {m} grew from {_unit(m, base)} after the warm-up to "
                            f"{_unit(m, end)} at the end (limit +{_unit(m, limit)})"
                        )
            row[m] = rec
        out.append(row)
    return out, failures, notes


# ---------------------------------------------------------------- the table


def _n(x: Any) -> str:
    return "-" if x is None else f"{x:,}" if isinstance(x, int) else str(x)


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    widths = [
        max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(header)
    ]
    fmt = "  ".join(f"{{:<{w}}}" if i < 2 else f"{{:>{w}}}" for i, w in enumerate(widths))
    lines = [fmt.format(*header), "  ".join("-" * w for w in widths)]
    lines += [fmt.format(*r) for r in rows]
    return lines


def summary_table(result: SoakResult) -> str:
    """Messages per transport and stream, losses, resources start vs end, verdict."""
    cfg = result.config
    lines = [
        f"purenng soak: {result.elapsed_s / 60:.1f} min, transports {', '.join(cfg.transports)}; "
        f"a disturbance every {cfg.restart_every:g} s per transport (kill and redial alternate)",
        "",
    ]
    rows = []
    for r in result.streams:
        if r["stream"] == "push":
            lost, extra = r["lost"], f"unaccounted at kills {r['excused_at_kill']:,}"
            if r.get("late"):
                extra += f", late (out of order) {r['late']:,}"
        elif r["stream"] == "req":
            lost, extra = r["lost"], f"served {r['served']:,} (resends included)"
        elif r["stream"] == "survey":
            lost, extra = "-", f"unanswered surveys {r['unanswered']:,}"
        else:
            lost, extra = "-", f"dropped (gaps) {r['dropped']:,}"
        rows.append([
            r["transport"], r["stream"], "reliable" if r["reliable"] else "best-effort",
            _n(r["sent"]), _n(r["received"]), _n(lost), _n(r["corrupt"]), extra,
        ])  # fmt: skip
    lines += _table(
        ["transport", "stream", "kind", "sent", "received", "lost", "corrupt", "notes"], rows
    )
    lines.append("")
    prow = []
    for p in result.processes:

        def fig(m: str, p: dict[str, Any] = p) -> str:
            rec = p[m]

            def conv(v: float, m: str = m) -> str:
                return f"{v / _MIB:.0f}" if m == "rss" else f"{v:.0f}"

            if rec.get("baseline") is not None and rec.get("end") is not None:
                mark = " GREW" if rec.get("grew") else ""
                return f"{conv(rec['first'])}/{conv(rec['baseline'])}->{conv(rec['end'])}{mark}"
            return f"{conv(rec['first'])}->{conv(rec['last_before_stop'])}"

        prow.append([
            p["process"], "survivor" if p["survivor"] else "killed",
            str(p["incarnations"]), fig("rss"), fig("fds"), fig("threads"),
        ])  # fmt: skip
    lines += _table(
        ["process", "role", "lives", "RSS MiB", "fds", "threads"],
        prow,
    )
    lines.append(
        "(survivors: first sample / median after warm-up -> median before the stop; "
        "killed: first -> last sample of the longest life)"
    )
    cpu = sum(float(p.get("cpu_s", 0.0)) for p in result.processes)
    lines.append(
        f"CPU used by the children: {cpu:,.0f} s, {100 * cpu / max(1.0, result.elapsed_s):.0f} % "
        f"of one CPU (machine: {result.machine.get('nproc', '?')} CPUs)"
    )
    kinds: dict[str, int] = {}
    for ev in result.events:
        kinds[ev["kind"]] = kinds.get(ev["kind"], 0) + 1
    lines.append("")
    lines.append(
        "events: "
        + ", ".join(
            f"{k} {kinds[k]}"
            for k in ("kill", "respawn", "restart", "redial", "gap", "late_start", "req_timeout")
            if k in kinds
        )
    )
    lines += [f"note: {n}" for n in result.notes]
    if result.logs:
        lines.append(f"children's logs: {result.logs}")
    if result.ok:
        lines.append("verdict: PASS (no loss on reliable paths, no hang, no unbounded growth)")
    else:
        lines.append(f"verdict: FAIL ({len(result.failures)})")
        lines += [f"  - {f}" for f in result.failures]
    return "\n".join(lines)


# ---------------------------------------------------------------- the figure


def plot_soak(result: SoakResult, path: str) -> None:
    """Write the four-panel PNG of ``result`` to ``path`` (needs matplotlib).

    Raises:
        ImportError: matplotlib is not installed.
        OSError: the file cannot be written.
    """
    from matplotlib.figure import Figure

    cfg = result.config
    fig = Figure(figsize=(14, 9), layout="constrained")
    axes = fig.subplots(2, 2, sharex=True)
    panels = {"rss": axes[0][0], "fds": axes[0][1], "threads": axes[1][0]}
    survivors = {p["process"] for p in result.processes if p["survivor"]}
    warm, win = cfg.warmup_s(), cfg.window_s()
    stop_t = next((e["t"] for e in result.events if e["kind"] == "stop"), result.elapsed_s)
    for key in sorted(result.samples):
        s = result.samples[key]
        transport = key.partition("/")[0]
        color = _COLORS.get(transport, "black")
        survivor = key in survivors
        for m, ax in panels.items():
            xs: list[float] = []
            ys: list[float] = []
            prev = None
            for t, inc, v in zip(s["t"], s["inc"], s[m], strict=True):
                if prev is not None and inc != prev:  # a new life: break the line
                    xs.append(float("nan"))
                    ys.append(float("nan"))
                prev = inc
                xs.append(t / 60)
                ys.append(v / _MIB if m == "rss" else v)
            ax.plot(
                xs, ys, color=color, linestyle="-" if survivor else "--",
                linewidth=1.6 if survivor else 0.9,
                label=f"{key} ({'survivor' if survivor else 'killed'})",
            )  # fmt: skip
    ax_msg = axes[1][1]
    # Rates over several samples: counts arrive with the STAT lines, in steps.
    k = max(1, round(max(10.0, result.elapsed_s / 30) / cfg.sample))
    for t, p in result.progress.items():
        ts, ns = p["t"], p["recv"]
        xs = [(ts[i] + ts[i - k]) / 120 for i in range(k, len(ts))]
        ys = [(ns[i] - ns[i - k]) / max(1e-9, ts[i] - ts[i - k]) for i in range(k, len(ts))]
        ax_msg.plot(xs, ys, color=_COLORS.get(t, "black"), linewidth=1.0, label=t)
    top = ax_msg.get_ylim()[1] * 1.05
    # Disturbances as one row of ticks per transport under the rates.
    rows = {t: i for i, t in enumerate(result.progress)}
    step = top * 0.3 / max(1, len(rows))
    for ev in result.events:
        if ev["kind"] in ("kill", "restart", "redial") and ev["transport"] in rows:
            c = _COLORS.get(ev["transport"], "black")
            mk = "v" if ev["kind"] in ("kill", "restart") else "|"
            y = step * (rows[ev["transport"]] + 0.5)
            ax_msg.plot([ev["t"] / 60], [y], marker=mk, color=c, markersize=5, linestyle="")
    ax_msg.set_ylim(0, top)
    titles = {
        "rss": "resident memory (MiB) per child",
        "fds": "open file descriptors per child",
        "threads": "threads per child",
    }
    for m, ax in panels.items():
        ax.set_title(titles[m])
        ax.axvspan(0, warm / 60, color="0.9", zorder=0)
        if warm + 2 * win <= stop_t:
            ax.axvspan(warm / 60, (warm + win) / 60, color="tab:green", alpha=0.08, zorder=0)
            ax.axvspan((stop_t - win) / 60, stop_t / 60, color="tab:red", alpha=0.08, zorder=0)
        ax.grid(True, alpha=0.3)
    # The threads panel has room between its few levels: the legend goes there.
    handles, labels = panels["rss"].get_legend_handles_labels()
    panels["threads"].legend(handles, labels, fontsize="x-small", ncol=3, loc="center")
    panels["rss"].set_ylim(bottom=0)
    panels["fds"].set_ylim(bottom=0)
    panels["threads"].set_ylim(bottom=0)
    ax_msg.set_title(
        f"messages/s received, all streams ({k * cfg.sample:g} s means); ticks: v kill, | redial"
    )
    ax_msg.legend(fontsize="small", ncol=3, loc="center right")
    ax_msg.grid(True, alpha=0.3)
    for ax in (axes[1][0], axes[1][1]):
        ax.set_xlabel("minutes")
    mach = result.machine
    verdict = "PASS" if result.ok else f"FAIL ({len(result.failures)})"
    lost = sum(int(r.get("lost") or 0) for r in result.streams if r["reliable"])
    fig.suptitle(
        f"purenng soak: {verdict}, {result.elapsed_s / 60:.1f} min, {lost} lost on reliable "
        f"paths; Python {mach.get('python', '?')}, {mach.get('nproc', '?')} CPUs; grey: warm-up, "
        "green/red: growth baseline/end windows",
        fontsize="medium",
    )
    fig.savefig(path, format="png", dpi=100)
