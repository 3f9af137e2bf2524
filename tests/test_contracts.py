"""Contracts of the package as a whole.

* ``purenng.__all__`` is sorted and complete, and every name resolves.
* ``import purenng`` loads no transport, no protocol, no plugin machinery and
  no optional dependency (checked in a fresh interpreter).
* Pure modules stay pure: no asyncio, socket, selectors or time, directly or
  through the purenng modules they import.
* ``purenng.core`` imports nothing from ``purenng.transports`` or
  ``purenng.protocols``.
"""

from __future__ import annotations

import ast
import inspect
import json
import subprocess
import sys
from pathlib import Path

import pytest

import purenng
import purenng.core.errors
import purenng.core.socket_classes
import purenng.plugin
from purenng.core.socket import Socket

SRC = Path(purenng.__file__).resolve().parent
CORE = SRC / "core"

#: Modules that must stay free of I/O and clocks.
PURE_MODULES = ["purenng.core.sp_codec", "purenng.transports._ws_codec"]
IMPURE = {"asyncio", "socket", "selectors", "time"}

#: Must not be imported by ``import purenng``.
HEAVY = [
    "pluggy", "uvloop", "cryptography", "aioquic", "trio", "pynng", "nng", "zmq",
    "websockets", "h11",
]  # fmt: skip


# ---------------------------------------------------------------- __all__


def test_all_is_sorted_and_unique() -> None:
    names = purenng.__all__
    assert names == sorted(names)
    assert len(set(names)) == len(names)


def test_every_public_name_resolves() -> None:
    for name in purenng.__all__:
        assert getattr(purenng, name) is not None, name
    assert set(dir(purenng)) >= set(purenng.__all__)


def test_all_is_complete() -> None:
    exported = set(purenng.__all__)
    missing = [n for n in purenng.core.errors.__all__ if n not in exported]
    assert not missing, f"errors not exported: {missing}"
    socket_classes = [
        name
        for name, obj in vars(purenng.core.socket_classes).items()
        if inspect.isclass(obj) and issubclass(obj, Socket) and obj is not Socket
    ]
    assert socket_classes
    assert not [n for n in socket_classes if n not in exported]
    # Every lazily-loaded name is announced, and nothing else hides there.
    lazy = set(purenng._LAZY)
    assert lazy <= exported
    assert exported - lazy == {"__version__"}


def test_unknown_attribute() -> None:
    with pytest.raises(AttributeError):
        purenng.NoSuchThing  # noqa: B018


def test_errors_subclass_builtins() -> None:
    assert issubclass(purenng.Timeout, TimeoutError)
    assert issubclass(purenng.TryAgain, BlockingIOError)
    assert issubclass(purenng.ConnectionRefused, ConnectionRefusedError)
    assert issubclass(purenng.BadAddress, ValueError)
    assert issubclass(purenng.WrongThread, RuntimeError)
    assert issubclass(purenng.PluginError, purenng.NotSupported)
    for name in purenng.core.errors.__all__:
        assert issubclass(getattr(purenng, name), purenng.Error)


# ---------------------------------------------------------------- cheap import


def _modules_after(code: str) -> list[str]:
    out = subprocess.run(
        [
            sys.executable,
            "-I",
            "-c",
            code + "\nimport sys, json; print(json.dumps(sorted(sys.modules)))",
        ],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout
    return list(json.loads(out.splitlines()[-1]))


def test_import_purenng_is_light() -> None:
    code = (
        "import time; t = time.perf_counter(); import purenng; "
        "print(f'import purenng: {(time.perf_counter() - t) * 1e3:.1f} ms')"
    )
    proc = subprocess.run(
        [
            sys.executable,
            "-I",
            "-c",
            code + "\nimport sys, json; print(json.dumps(sorted(sys.modules)))",
        ],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    )
    lines = proc.stdout.splitlines()
    print(lines[0])  # informative only: no wall-clock assertion
    mods = json.loads(lines[-1])
    loaded = [m for m in mods if m.startswith(("purenng.transports", "purenng.protocols"))]
    assert not loaded, f"import purenng loaded {loaded}"
    heavy = [m for m in mods if m.split(".")[0] in HEAVY]
    assert not heavy, f"import purenng loaded {heavy}"
    assert "asyncio" not in mods


def test_public_names_load_no_plugin() -> None:
    # Touching the socket classes and errors still loads no transport or protocol.
    mods = _modules_after("import purenng; purenng.Pair0; purenng.Push0; purenng.Timeout")
    loaded = [m for m in mods if m.startswith(("purenng.transports", "purenng.protocols"))]
    assert not loaded
    assert not [m for m in mods if m.split(".")[0] in HEAVY[1:]]


def test_socket_loads_only_what_it_uses() -> None:
    mods = _modules_after(
        "import purenng\nwith purenng.Pull0(listen='tcp://127.0.0.1:0') as s: pass"
    )
    plugins = {m for m in mods if m.startswith(("purenng.transports.", "purenng.protocols."))}
    assert plugins == {"purenng.transports.tcp", "purenng.protocols.pipeline0"}


# ---------------------------------------------------------------- purity


def _module_file(name: str) -> Path:
    rel = name.split(".")[1:]
    path = SRC.joinpath(*rel)
    return path / "__init__.py" if path.is_dir() else path.with_suffix(".py")


#: purenng.plugin's names and the modules they are loaded from.
_DOOR: dict[str, str] = purenng.plugin._EXPORTS


def _imports(path: Path, module: str) -> set[str]:
    """Absolute names of everything ``path`` imports (TYPE_CHECKING blocks too)."""
    tree = ast.parse(path.read_text(), str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                prefix = ".".join(base)
                target = f"{prefix}.{node.module}" if node.module else prefix
            else:
                target = node.module or ""
            if target == "purenng.plugin" and module != target:
                # The plugin door loads each name from its own module on
                # first use: importing a name from it imports that module.
                found.update(f"purenng.{_DOOR[alias.name]}" for alias in node.names)
                continue
            found.add(target)
            # "from . import x" may name submodules.
            found.update(f"{target}.{alias.name}" for alias in node.names)
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute | ast.Name)
            and (getattr(node.func, "attr", None) or getattr(node.func, "id", None))
            == "import_module"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            found.add(node.args[0].value)
    return found


def _purenng_closure(module: str) -> dict[str, set[str]]:
    """``module`` and every purenng module it reaches, with their imports."""
    seen: dict[str, set[str]] = {}
    todo = [module]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        path = _module_file(name)
        if not path.exists():
            continue  # "from .x import Name" also yields "….x.Name"
        seen[name] = _imports(path, name)
        todo.extend(m for m in seen[name] if m.startswith("purenng."))
    return seen


def test_import_walker_sees_imports() -> None:
    # Guard the guard: the walker resolves relative imports and finds stdlib ones.
    found = _imports(CORE / "sp_stream.py", "purenng.core.sp_stream")
    assert "asyncio" in found
    assert "purenng.core.sp_codec" in found
    assert "purenng.core.errors" in found
    # A name taken from the lazy plugin door counts as its defining module.
    found = _imports(SRC / "transports" / "_ws_codec.py", "purenng.transports._ws_codec")
    assert "purenng.core.errors" in found
    assert "purenng.plugin" not in found


@pytest.mark.parametrize("module", PURE_MODULES)
def test_pure_modules_stay_pure(module: str) -> None:
    closure = _purenng_closure(module)
    assert module in closure
    for name, imports in closure.items():
        bad = {m for m in imports if m.split(".")[0] in IMPURE}
        assert not bad, f"{name} (reached from {module}) imports {sorted(bad)}"


@pytest.mark.parametrize("module", ["purenng.core.sp_codec"])
def test_pure_modules_import_without_asyncio(module: str) -> None:
    # "time" is loaded by the interpreter itself, so only the others are checked here.
    # (_ws_codec is checked by its AST only: the websockets package it wraps
    # imports socket for its own I/O modules.)
    mods = _modules_after(f"import {module}")
    assert not [m for m in ("asyncio", "socket", "selectors") if m in mods]


@pytest.mark.parametrize("path", sorted(CORE.glob("*.py")), ids=lambda p: p.name)
def test_core_imports_no_transport_or_protocol(path: Path) -> None:
    module = "purenng.core" if path.name == "__init__.py" else f"purenng.core.{path.stem}"
    imports = _imports(path, module)
    bad = sorted(
        m
        for m in imports
        if m.startswith(("purenng.transports", "purenng.protocols"))
        or m in ("purenng.transports", "purenng.protocols")
    )
    assert not bad, f"{path.name} imports {bad}"
