"""Every import between purenng's layers points down.

The layers, from the bottom (docs/architecture.md has the picture):

0. **core**: the interfaces and the machinery every layer shares (errors,
   messages, URLs, options, loops, the registry, ``Pipe``, ``Stream``,
   ``Transport``, ``Protocol``, ``Channel``, the loop bridge), plus
   ``purenng.plugin``, the door plugins come in by, and ``tls_config``.
1. **transport**: ``transports/``, the accept loop (``core/stream_server``)
   and the HTTP machinery the ws transport stands on (``http/service``,
   ``http/upgrade``, ``http/_types``).
2. **pipe**: SP over a byte stream (``core/sp_codec``, ``core/sp_stream``),
   dialers and listeners (``core/endpoint``) and pipe admission
   (``core/admission``).
3. **protocol**: ``protocols/``.
4. **application**: sockets, contexts, devices, the byte-stream API, the
   HTTP server and client objects, compat, the CLI, testing, bench, soak.

A module may import from its own layer and the layers below it, never from
above, including imports inside functions and under ``TYPE_CHECKING``: a
type-only import upwards is still a dependency a reader has to hold in their
head.  Built-in transports and protocols also keep to the plugin rule: they
import purenng only through ``purenng.plugin`` (and the public
``purenng`` namespace), exactly as a third-party plugin does, plus their own
package and, for transports, the HTTP layer.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import purenng

SRC = Path(purenng.__file__).parent

CORE, TRANSPORT, PIPE, PROTOCOL, APPLICATION = range(5)
NAMES = ("core", "transport", "pipe", "protocol", "application")

#: Modules placed explicitly; the rest go by package in :func:`layer_of`.
EXPLICIT: dict[str, int] = {
    "purenng.plugin": TRANSPORT,
    # The contract of a ``purenng`` subcommand: a typing Protocol that
    # imports nothing, offered to plugin authors by purenng.plugin.
    "purenng.cli.command": CORE,
    "purenng.tls_config": CORE,
    "purenng.core.stream_server": TRANSPORT,
    "purenng.http.service": TRANSPORT,
    "purenng.http.upgrade": TRANSPORT,
    "purenng.http._types": TRANSPORT,
    "purenng.core.sp_codec": PIPE,
    "purenng.core.sp_stream": PIPE,
    "purenng.core.endpoint": PIPE,
    "purenng.core.admission": PIPE,
    "purenng.core.socket": APPLICATION,
    "purenng.core.socket_classes": APPLICATION,
    "purenng.core.context": APPLICATION,
}

#: What a built-in transport or protocol may import from purenng.
PLUGIN_DOORS = ("purenng.plugin",)


def layer_of(module: str) -> int:
    if module in EXPLICIT:
        return EXPLICIT[module]
    parts = module.split(".")
    if parts[:2] == ["purenng", "core"]:
        return CORE
    if parts[:2] == ["purenng", "transports"]:
        return TRANSPORT
    if parts[:2] == ["purenng", "protocols"]:
        return PROTOCOL
    return APPLICATION


def module_name(path: Path) -> str:
    rel = path.relative_to(SRC.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(path: Path) -> list[tuple[int, str]]:
    """(line, absolute module) for every purenng import in ``path``, at any depth."""
    mod = module_name(path)
    package = mod if path.name == "__init__.py" else mod.rpartition(".")[0]
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names if a.name.startswith("purenng")]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                if node.level > 1:
                    base = base[: -(node.level - 1)]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            if not target.startswith("purenng"):
                continue
            # ``from . import loop`` names a module; ``from .x import y`` a name in x.
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                is_module = (SRC.parent / Path(*sub.split("."))).with_suffix(".py").exists() or (
                    SRC.parent / Path(*sub.split(".")) / "__init__.py"
                ).exists()
                found.append((node.lineno, sub if is_module else target))
    return found


MODULES = sorted(SRC.rglob("*.py"))


def test_every_module_has_a_layer_and_the_table_names_real_modules() -> None:
    names = {module_name(p) for p in MODULES}
    missing = sorted(set(EXPLICIT) - names)
    assert not missing, f"the layer table names modules that do not exist: {missing}"
    assert layer_of("purenng.core.errors") == CORE
    assert layer_of("purenng.transports.tcp") == TRANSPORT
    assert layer_of("purenng.protocols.reqrep0") == PROTOCOL


def test_imports_point_down() -> None:
    upward = []
    for path in MODULES:
        mod = module_name(path)
        mine = layer_of(mod)
        for line, target in imports_of(path):
            # The public namespace re-exports everything: it is the top.
            theirs = APPLICATION if target == "purenng" else layer_of(target)
            if theirs > mine:
                upward.append(
                    f"{path.relative_to(SRC.parent)}:{line}: {mod} ({NAMES[mine]}) imports "
                    f"{target} ({NAMES[theirs]})"
                )
    assert not upward, "imports pointing up a layer:\n" + "\n".join(upward)


@pytest.mark.parametrize("package", ["transports", "protocols"])
def test_builtin_plugins_use_only_the_plugin_api(package: str) -> None:
    """Built-ins import purenng as a third-party plugin must: through purenng.plugin."""
    own = f"purenng.{package}"
    allowed: tuple[str, ...] = (*PLUGIN_DOORS, own)
    if package == "transports":
        allowed = (*allowed, "purenng.http.service", "purenng.http.upgrade")
    wrong = []
    for path in sorted((SRC / package).glob("*.py")):
        for line, target in imports_of(path):
            if not any(target == a or target.startswith(a + ".") for a in allowed):
                wrong.append(f"{path.relative_to(SRC.parent)}:{line}: imports {target}")
    assert not wrong, "built-in plugins reaching past purenng.plugin:\n" + "\n".join(wrong)


PLUGIN_DISTS = Path(__file__).resolve().parent.parent / "plugins"


def _plugin_sources() -> list[Path]:
    return sorted(PLUGIN_DISTS.glob("*/src/**/*.py"))


def test_plugin_distributions_use_only_the_plugin_api() -> None:
    """The packages under plugins/ are written as an outside author writes one."""
    sources = _plugin_sources()
    assert sources, f"no plugin distribution sources under {PLUGIN_DISTS}"
    wrong: list[str] = []
    for path in sources:
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
                names = [node.module]
                if node.module == "purenng":  # "from purenng import core" reaches in too
                    names += [
                        f"purenng.{a.name}"
                        for a in node.names
                        if (SRC / a.name).is_dir() or (SRC / f"{a.name}.py").exists()
                    ]
            if not isinstance(node, ast.Import | ast.ImportFrom):
                continue
            where = f"{path.relative_to(PLUGIN_DISTS)}:{node.lineno}"
            wrong.extend(
                f"{where}: imports {name}"
                for name in names
                if name.split(".")[0] == "purenng" and name not in ("purenng", "purenng.plugin")
            )
    assert not wrong, "plugin distributions reaching past purenng.plugin:\n" + "\n".join(wrong)


def test_the_checker_sees_function_level_and_type_checking_imports(tmp_path: Path) -> None:
    """The walk must find imports at any depth, or the tests above prove nothing."""
    found = imports_of(SRC / "core" / "endpoint.py")
    targets = {t for _, t in found}
    assert "purenng.core.url" in targets  # under TYPE_CHECKING
    assert "purenng.core.sp_stream" in targets  # at the top
    found = imports_of(SRC / "transports" / "ws.py")
    assert any(t == "purenng.http.service" for _, t in found)  # inside a function


def test_the_plugin_door_loads_what_it_declares() -> None:
    """purenng.plugin's lazy table and its type-checking imports name the same things."""
    import purenng.plugin as door

    declared = {
        target.rpartition(".")[0] if target.endswith(tuple(door._EXPORTS)) else target
        for _, target in imports_of(SRC / "plugin.py")
    }
    table = {"purenng." + module for module in door._EXPORTS.values()}
    assert declared == table
    assert sorted(door.__all__) == sorted(door._EXPORTS)
    for name in door.__all__:
        assert getattr(door, name) is not None, name


def test_a_misspelt_import_from_the_plugin_door_is_a_type_error(tmp_path: Path) -> None:
    """The door is lazy at run time, but type checkers see its real names only."""
    from mypy import api

    snippet = tmp_path / "plugin_author.py"
    snippet.write_text("from purenng.plugin import Pipe, StreamTransportz\n")
    out, _, status = api.run(["--strict", "--no-incremental", str(snippet)])
    assert status == 1, out
    assert 'has no attribute "StreamTransportz"' in out, out
    assert '"Pipe"' not in out, out
