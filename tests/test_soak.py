"""The soak (purenng.soak): its accounting can fail, and a short run works end to end."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from purenng.soak.report import growth_verdicts, plot_soak, summary_table
from purenng.soak.runner import SoakConfig, SoakResult, account, run_soak
from purenng.soak.traffic import HDR, Checker, Corrupt, Recorder, check, make

# ---------------------------------------------------------------- messages


def test_message_round_trip_and_damage() -> None:
    msg = make(b"pp", 7, 42, 1000)
    assert len(msg) == HDR.size + 1000
    assert check(msg) == (b"pp", 7, 42)
    damaged = bytearray(msg)
    damaged[-1] ^= 1
    with pytest.raises(Corrupt, match="CRC"):
        check(bytes(damaged))
    with pytest.raises(Corrupt, match="body of"):
        check(msg[:-1])


# ---------------------------------------------------------------- accounting


def _reports(
    ranges: dict[int, dict[int, list[int]]], gens: dict[int, tuple[float, int]]
) -> dict[tuple[str, str, int], dict[str, Any]]:
    """Reports of A incarnations (inc -> gen -> range) and one B (gen -> (t0, sent))."""
    out: dict[tuple[str, str, int], dict[str, Any]] = {}
    for inc, by_gen in ranges.items():
        out["tcp", "A", inc] = {
            "streams": {"push": {"recv": sum(r[2] for r in by_gen.values())}},
            "gens": [],
            "ranges": {"push": {str(g): r for g, r in by_gen.items()}},
        }
    out["tcp", "B", 1] = {
        "streams": {"push": {"sent": sum(s for _, s in gens.values())}},
        "gens": [{"stream": "push", "gen": g, "t0": t0, "sent": s} for g, (t0, s) in gens.items()],
        "ranges": {},
    }
    return out


def _push(rows: list[dict[str, Any]]) -> dict[str, Any]:
    return next(r for r in rows if r["stream"] == "push")


def test_hole_while_the_receiver_lives_is_a_loss() -> None:
    # [first, last, count, missing now, missing for more than 30 s]
    reports = _reports({1: {5: [0, 99, 99, 1, 0]}}, {5: (10.0, 100)})
    row = _push(account("tcp", reports, {("tcp", "A", 1): 1.0}, set(), []))
    assert row["lost"] == row["lost_gaps"] == 1
    # A killed receiver: only what had been missing for long counts.
    assert _push(account("tcp", reports, {}, {("tcp", "A", 1)}, []))["lost"] == 0
    reports["tcp", "A", 1]["ranges"]["push"]["5"][4] = 1
    assert _push(account("tcp", reports, {}, {("tcp", "A", 1)}, []))["lost"] == 1


def test_late_start_is_excused_only_after_a_receiver_restart() -> None:
    reports = _reports({1: {5: [0, 40, 41]}, 2: {5: [60, 99, 40]}}, {5: (10.0, 100)})
    finals = [{"transport": "tcp", "stream": "push", "gen": 5, "sent": 100}]
    # A#2 started after the generation: what A#1 had in flight died with it.
    born = {("tcp", "A", 1): 1.0, ("tcp", "A", 2): 20.0}
    row = _push(account("tcp", reports, born, {("tcp", "A", 1)}, finals))
    assert row["lost"] == 0
    assert row["excused_at_kill"] == 19
    # The same first number in a receiver that was there before the sender: a loss.
    born["tcp", "A", 2] = 5.0
    row = _push(account("tcp", reports, born, {("tcp", "A", 1)}, finals))
    assert row["lost"] == row["lost_start"] == 60


def test_tail_of_a_stopped_sender_must_arrive() -> None:
    reports = _reports({1: {5: [0, 89, 90]}}, {5: (10.0, 100)})
    finals = [{"transport": "tcp", "stream": "push", "gen": 5, "sent": 100}]
    row = _push(account("tcp", reports, {("tcp", "A", 1): 1.0}, set(), finals))
    assert row["lost"] == row["lost_tail"] == 10
    # Without a FINAL (the sender was killed) the tail is not followed.
    assert _push(account("tcp", reports, {("tcp", "A", 1): 1.0}, set(), []))["lost"] == 0


def test_checker_tells_late_from_lost_and_duplicate() -> None:
    rec = Recorder("A", 1)
    chk = Checker(rec, rec.counter("push"), b"pp")
    for seq in (0, 1, 5, 2, 3, 6, 6, 9):  # 2 and 3 come late, 6 twice, 4, 7 and 8 missing
        chk.take(make(b"pp", 7, seq, 10))
    chk.take(make(b"t1", 7, 10, 10))  # another topic: corrupt
    c = rec.counters[0]
    assert (c.recv, c.late, c.dups, c.corrupt) == (8, 2, 1, 1)
    first, last, count, missing, stale = rec.report()["ranges"]["push"]["7"]
    assert (first, last, count, missing, stale) == (0, 9, 7, 3, 0)
    assert [e["kind"] for e in rec.report()["events"]] == []  # taken by the first report


# ---------------------------------------------------------------- growth


def _samples(values: list[float], key: str = "rss") -> dict[str, list[Any]]:
    n = len(values)
    base: dict[str, list[float]] = {"rss": [50 << 20] * n, "fds": [20] * n, "threads": [3] * n}
    base[key] = values
    return {"t": [10.0 * i for i in range(n)], "inc": [1] * n, "pid": [1] * n,
            "cpu": [0.1 * i for i in range(n)], **base}  # fmt: skip


def test_growth_is_judged_on_survivors_only() -> None:
    cfg = SoakConfig(minutes=10, warmup=60)  # windows: 30 s
    flat = _samples([50 << 20] * 61)
    leaky_fds = _samples([20 + i for i in range(61)], "fds")
    rows, failures, notes = growth_verdicts(
        {"tcp/A": flat, "ipc/B": leaky_fds, "ipc/A": leaky_fds},
        {"tcp/A", "ipc/B"},
        cfg,
        stop_t=600.0,
    )
    assert not notes
    assert len(failures) == 1
    assert failures[0].startswith("ipc/B: fds grew")
    by = {r["process"]: r for r in rows}
    assert by["tcp/A"]["rss"]["grew"] is False
    assert "grew" not in by["ipc/A"]["fds"]  # killed side: shown, not judged
    assert by["ipc/B"]["fds"]["slope_per_hour"] == pytest.approx(360.0)


def test_short_run_is_not_judged() -> None:
    _, failures, notes = growth_verdicts(
        {"tcp/A": _samples([i << 20 for i in range(5)])}, {"tcp/A"}, SoakConfig(), stop_t=40.0
    )
    assert not failures
    assert "not judged" in notes[0]


# ---------------------------------------------------------------- a short run


@pytest.mark.slow
@pytest.mark.timeout(150)
def test_short_soak_detects_an_injected_loss(tmp_path: Any) -> None:
    """inproc's first PUSH sender skips one number; tcp runs clean, with a kill and a redial."""
    cfg = SoakConfig(
        minutes=0.25,
        transports=["inproc", "tcp"],
        restart_every=3.0,
        sample=1.0,
        stat=1.0,
        hang=30.0,
        rate=0.5,
        max_size=64 << 10,
        inject_loss=20,
        drain=10.0,
        req_timeout=10.0,
    )
    lines: list[str] = []
    result = run_soak(cfg, lines.append)
    assert not result.ok
    assert result.failures == ["inproc: push lost 1 message(s) on a reliable path"]
    rows = {(r["transport"], r["stream"]): r for r in result.streams}
    assert rows["inproc", "push"]["lost_gaps"] == 1
    for stream in ("push", "req"):
        row = rows["tcp", stream]
        assert row["lost"] == 0, row
        assert row["received"] > 0, row
    kinds = {(e["transport"], e["kind"]) for e in result.events}
    assert {("tcp", "kill"), ("tcp", "respawn"), ("tcp", "redial"), ("inproc", "restart")} <= kinds
    assert set(result.samples) == {"inproc/AB", "tcp/A", "tcp/B"}
    assert any("gap" in line for line in lines)

    table = summary_table(result)
    assert "verdict: FAIL (1)" in table
    assert re.search(r"\ninproc\s+push\s+reliable\s+[\d,]+\s+[\d,]+\s+1\s", table), table
    data = json.loads(json.dumps(result.to_json()))
    assert data["verdict"] == "fail"
    assert summary_table(SoakResult.from_json(data)) == table  # --from-json re-prints it
    pytest.importorskip("matplotlib")
    png = tmp_path / "soak.png"
    plot_soak(result, str(png))
    assert png.read_bytes().startswith(b"\x89PNG")
