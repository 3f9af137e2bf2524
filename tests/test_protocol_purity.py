"""Protocols are sans-IO: no event loop, clock, thread or socket under src/purenng/protocols/.

Also the other half of the contract, the host's one timer
(:class:`~purenng.core.protocol.ProtocolTimer`), on a fake clock.

Read from the source (ast), so it holds for code paths no test runs: no
module there imports asyncio, threading, time, concurrent, selectors or
socket (nor purenng's own loop module), none defines or awaits a coroutine,
and none touches a loop (``.loop``, ``call_later``, ``call_soon``...).  Time
reaches a protocol only as ``now`` from its host; its host owns the timer.
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

import purenng.protocols
from purenng.core.protocol import Protocol, ProtocolTimer, has_timer
from purenng.testing import FakeClock

if TYPE_CHECKING:
    from collections.abc import Callable

PROTOCOLS = Path(purenng.protocols.__file__).parent
MODULES = sorted(PROTOCOLS.glob("*.py"))

#: Top-level modules a protocol must not import.
FORBIDDEN_MODULES = frozenset(
    {"asyncio", "threading", "_thread", "time", "concurrent", "selectors", "socket", "uvloop"}
)
#: purenng modules that are loop machinery.
FORBIDDEN_PURENNG = frozenset({"loop", "bridge", "bridge_trio", "stream_server"})
#: Attribute names that mean a loop, a clock or a thread is being used.
FORBIDDEN_ATTRIBUTES = frozenset(
    {
        "loop",
        "call_later",
        "call_at",
        "call_soon",
        "call_soon_threadsafe",
        "create_task",
        "create_future",
        "run_coroutine_threadsafe",
        "run_in_executor",
        "get_event_loop",
        "get_running_loop",
        "run_until_complete",
        "run_sync",
        "monotonic",
        "perf_counter",
        "sleep",
    }
)


def violations(source: str, filename: str = "<source>") -> list[str]:
    """Every impurity in ``source``, as ``line: what``."""
    tree = ast.parse(source, filename)
    found: list[str] = []

    def bad(node: ast.AST, what: str) -> None:
        found.append(f"{filename}:{getattr(node, 'lineno', 0)}: {what}")

    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                if parts[0] in FORBIDDEN_MODULES or (
                    parts[0] == "purenng" and parts[-1] in FORBIDDEN_PURENNG
                ):
                    bad(node, f"import {alias.name}")
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            parts = module.split(".")
            if node.level == 0 and parts[0] in FORBIDDEN_MODULES:
                bad(node, f"from {module} import ...")
            elif (node.level or parts[0] == "purenng") and parts[-1] in FORBIDDEN_PURENNG:
                bad(node, f"from {'.' * node.level}{module} import ...")
            elif node.level or parts[0] == "purenng":
                bad_names = [a.name for a in node.names if a.name in FORBIDDEN_PURENNG]
                if bad_names:
                    bad(node, f"from {'.' * node.level}{module} import {', '.join(bad_names)}")
        elif isinstance(node, ast.Attribute) and node.attr in FORBIDDEN_ATTRIBUTES:
            bad(node, f".{node.attr}")
        elif isinstance(node, ast.AsyncFunctionDef | ast.Await | ast.AsyncFor | ast.AsyncWith):
            bad(node, f"{type(node).__name__} (a protocol runs no coroutines)")
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and (node.func.id == "__import__" or node.func.id in FORBIDDEN_ATTRIBUTES)
        ):
            bad(node, f"{node.func.id}()")
    return found


def test_protocol_modules_are_found() -> None:
    names = {p.stem for p in MODULES}
    assert {"reqrep0", "survey0", "pubsub0", "pair0", "pair1", "bus0", "pipeline0"} <= names


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.name)
def test_protocol_module_is_pure(path: Path) -> None:
    assert violations(path.read_text(encoding="utf-8"), path.name) == []


@pytest.mark.parametrize(
    "snippet",
    [
        "import asyncio",
        "import time",
        "import threading",
        "import concurrent.futures",
        "import selectors",
        "import socket",
        "from time import monotonic",
        "from asyncio import get_running_loop",
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import asyncio",
        "from ..core.loop import run_sync",
        "from ..core import loop",
        "from purenng.core.loop import run_sync",
        "def f(host):\n    host.loop.call_later(1.0, f)",
        "def f(h):\n    return h.call_at(1.0, f)",
        "def f(loop):\n    loop.call_soon_threadsafe(f)",
        "async def f():\n    pass",
        "def f(x):\n    return x.sleep(1)",
    ],
)
def test_the_check_catches(snippet: str) -> None:
    assert violations(snippet), snippet


def test_the_check_allows_what_protocols_do() -> None:
    source = (
        "from collections import deque\n"
        "from ..plugin import Message, Protocol\n"
        "class P(Protocol):\n"
        "    def on_timer(self, now):\n"
        "        self.host.count('x')\n"
        "        return self.host.now() + now\n"
    )
    assert violations(source) == []


# ---------------------------------------------------------------- the host's one timer


class _Deadline(Protocol):
    """A protocol reduced to one settable deadline, recording its timer calls."""

    name = "deadline_stub"
    self_id = peer_id = 0
    self_name = peer_name = "stub"

    def __init__(self) -> None:
        self.deadline: float | None = None
        self.fired: list[float] = []

    def next_deadline(self) -> float | None:
        return self.deadline

    def on_timer(self, now: float) -> None:
        self.fired.append(now)
        if self.deadline is not None and self.deadline <= now:
            self.deadline = None


def test_timer_is_rearmed_only_for_an_earlier_deadline() -> None:
    clock = FakeClock()
    proto = _Deadline()
    timer = ProtocolTimer(proto, clock.time, clock.call_at)
    assert has_timer(_Deadline)
    timer.update()
    assert clock.pending == []
    proto.deadline = 10.0
    timer.update()
    assert clock.pending == [10.0]
    proto.deadline = 20.0
    timer.update()
    assert clock.pending == [10.0]  # later: the armed one stays, it fires early once
    proto.deadline = 5.0
    timer.update()
    assert clock.pending == [5.0]
    proto.deadline = 20.0
    clock.advance(5.0)
    assert proto.fired == [5.0]  # nothing due: the protocol ignores it
    assert clock.pending == [20.0]  # and the timer follows the real deadline
    clock.advance(15.0)
    assert proto.fired == [5.0, 20.0]
    assert proto.deadline is None
    assert clock.pending == []


def test_timer_never_hands_a_time_before_its_own() -> None:
    fired: list[Callable[[], None]] = []
    proto = _Deadline()
    timer = ProtocolTimer(proto, lambda: 4.999, lambda when, cb: fired.append(cb))
    proto.deadline = 5.0
    timer.update()
    fired.pop()()  # a loop running the timer a clock tick early
    assert proto.fired == [5.0]
    assert proto.deadline is None


def test_cancelled_timer_stays_quiet() -> None:
    clock = FakeClock()
    proto = _Deadline()
    timer = ProtocolTimer(proto, clock.time, clock.call_at)
    proto.deadline = 1.0
    timer.update()
    timer.cancel()
    timer.update()
    assert clock.advance(2.0) == 0
    assert proto.fired == []


def test_protocols_without_deadlines_get_no_timer() -> None:
    from purenng.protocols.pipeline0 import Push0Protocol

    assert not has_timer(Push0Protocol)
    assert not has_timer(Protocol)
