"""Fixtures of the interop tests: peer factories that always clean up.

``spawn_peer(lib, proto, ...)`` starts an NNG peer process (pynng or nng)
and ``spawn_cli(name, *args)`` runs nngcat or nanocat; both skip the test
when the peer is missing (fail with ``PURENNG_REQUIRE_PEERS`` set), and
every process a test started is closed, killed if need be, at teardown.

The hooks at the end write ``docs/interop.md`` after a complete run of the
interop matrix (``test_matrix.py``).
"""

from __future__ import annotations

import datetime
import importlib.metadata
import platform
import shutil
import subprocess
import tempfile
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from .peers import Addresses, CliPeer, NngPeerProcess, require_peer

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator


@pytest.fixture(scope="session")
def interop_ipc_dir() -> Iterator[Path]:
    """One short directory for every ipc path of the run (nanomsg: <= 122 bytes)."""
    path = Path(tempfile.mkdtemp(prefix="pnio-", dir="/tmp"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def addr(interop_ipc_dir: Path) -> Addresses:
    """URL factory for the current test."""
    return Addresses(interop_ipc_dir)


@pytest.fixture
def spawn_peer() -> Iterator[Callable[..., NngPeerProcess]]:
    """Start pynng/nng peer processes; all are closed at teardown."""
    started: list[NngPeerProcess] = []

    def spawn(lib: str, proto: str, **kw: Any) -> NngPeerProcess:
        require_peer(lib)
        peer = NngPeerProcess(lib, proto, **kw)
        started.append(peer)
        return peer

    try:
        yield spawn
    finally:
        for peer in reversed(started):
            peer.close()


@pytest.fixture
def spawn_cli() -> Iterator[Callable[..., CliPeer]]:
    """Run nngcat/nanocat; every tool still running at teardown is killed."""
    started: list[CliPeer] = []

    def spawn(tool: str, *args: str) -> CliPeer:
        require_peer(tool)
        peer = CliPeer([tool, *args])
        started.append(peer)
        return peer

    try:
        yield spawn
    finally:
        for peer in reversed(started):
            peer.close()


# ------------------------------------------------------------ docs/interop.md
#
# The outcomes of test_matrix.py's cells are collected as they are reported;
# at the end of the session, if every cell of the matrix was collected and
# reported (not a -k subset, not a run stopped early), docs/interop.md is
# rewritten from them.  A partial run leaves the file as it was.

_MATRIX_PREFIX = "test_matrix.py::test_matrix["
_matrix_collected: set[str] = set()
#: cell id -> (outcome, reason): pass, fail, xfail, skip.
_matrix_results: dict[str, tuple[str, str]] = {}


def _matrix_cell(nodeid: str) -> str | None:
    if _MATRIX_PREFIX not in nodeid:
        return None
    return nodeid.rsplit("[", 1)[1].removesuffix("]")


def pytest_collection_finish(session: pytest.Session) -> None:
    _matrix_collected.clear()
    _matrix_collected.update(c for i in session.items if (c := _matrix_cell(i.nodeid)))


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    cell = _matrix_cell(report.nodeid)
    if cell is None or _matrix_results.get(cell, ("",))[0] == "fail":
        return
    if report.failed:  # any phase; a strict xfail that passed lands here too
        _matrix_results[cell] = ("fail", "")
    elif report.skipped and hasattr(report, "wasxfail"):
        _matrix_results[cell] = ("xfail", str(report.wasxfail))
    elif report.skipped:
        longrepr = report.longrepr
        why = longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)
        _matrix_results[cell] = ("skip", why.removeprefix("Skipped: "))
    elif report.when == "call":
        _matrix_results[cell] = ("pass", "")


def _tool_output(argv: list[str]) -> str:
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=5, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return "not available"
    return (out.stdout.strip() or out.stderr.strip() or "unknown").splitlines()[0]


def _package_version(name: str) -> str:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def _render_matrix(session: pytest.Session) -> str:
    from . import test_matrix as m

    notes: dict[str, int] = {}

    def show(outcome: str, reason: str) -> str:
        if not reason:
            return outcome
        n = notes.setdefault(reason, len(notes) + 1)
        return f"{outcome}[^{n}]"

    def summary(outcomes: list[str]) -> str:
        counts = Counter(outcomes)
        shown = (f"{counts[k]} {k}" for k in ("pass", "xfail", "fail", "skip") if counts[k])
        return f"{len(outcomes)} ({', '.join(shown)})"

    args = " ".join(session.config.invocation_params.args)
    lines = [
        "# Interoperability matrix",
        "",
        "Generated by `tests/interop/test_matrix.py` (do not edit by hand): each cell is one",
        "exchange in the protocol's direction(s) between purenng and a peer, with purenng",
        "dialing or listening.  n/a: the combination does not exist.  nanomsg has no PAIR v1,",
        "so nanocat has no pair1 cells; nanomsg has no TLS and the `nng` package is built",
        "without it, so neither has tls+tcp or wss cells.  ws and wss URLs carry a path,",
        "except where nanocat binds (nanomsg binds without one and serves every path).",
        "",
        f"- Date: {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC",
        f"- Command: `python -m pytest {args}`",
        f"- purenng {_package_version('purenng')}, Python {platform.python_version()}",
        f"- pynng {_package_version('pynng')}, nng {_package_version('nng')}, "
        f"nngcat {_tool_output(['nngcat', '--version'])}, nanocat (nanomsg-utils) "
        + _tool_output(["dpkg-query", "-W", "-f", "${Version}", "nanomsg-utils"]),
        f"- Cells: {summary([outcome for outcome, _ in _matrix_results.values()])}",
    ]
    for transport in m.TRANSPORTS:
        head = ["purenng ↔ peer"]
        head += [f"{p}: purenng {mode}s" for p in m.PEERS for mode in m.MODES]
        outcomes = [o for c, (o, _) in _matrix_results.items() if c.startswith(f"{transport}-")]
        lines += ["", f"## {transport}", "", f"Cells: {summary(outcomes)}", ""]
        lines.append("| " + " | ".join(head) + " |")
        lines.append("|" + "---|" * len(head))
        for proto, peer_proto in m.ROWS:
            row = [f"{proto} ↔ {peer_proto}"]
            for peer in m.PEERS:
                for mode in m.MODES:
                    got = _matrix_results.get(m.cell_id(transport, peer, proto, mode))
                    row.append(show(*got) if got else "n/a")
            lines.append("| " + " | ".join(row) + " |")
    if notes:
        lines.append("")
        lines += [f"[^{n}]: {reason}" for reason, n in notes.items()]
    return "\n".join(lines) + "\n"


def pytest_sessionfinish(session: pytest.Session) -> None:
    if not _matrix_collected:
        return
    from . import test_matrix as m

    every = {m.cell_id(*cell) for cell in m.CELLS}
    if _matrix_collected != every or set(_matrix_results) != every:
        return  # a subset or an interrupted run: keep the last complete table
    path = session.config.rootpath / "docs" / "interop.md"
    path.write_text(_render_matrix(session), encoding="utf-8")
