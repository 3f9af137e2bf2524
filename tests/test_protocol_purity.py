"""Protocols are sans-IO: no event loop, clock, thread or socket under src/purenng/protocols/.

Read from the source (ast), so it holds for code paths no test runs: no
module there imports asyncio, threading, time, concurrent, selectors or
socket (nor purenng's own loop module), none defines or awaits a coroutine,
and none touches a loop (``.loop``, ``call_later``, ``call_soon``...).  Time
reaches a protocol only as ``now`` from its host; its host owns the timer.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import purenng.protocols

PROTOCOLS = Path(purenng.protocols.__file__).parent
MODULES = sorted(PROTOCOLS.glob("*.py"))

#: Top-level modules a protocol must not import.
FORBIDDEN_MODULES = frozenset(
    {"asyncio", "threading", "_thread", "time", "concurrent", "selectors", "socket", "uvloop"}
)
#: purenng modules that are loop machinery.
FORBIDDEN_PURENNG = frozenset({"loop", "_trio"})
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
