"""The plugin API version: plugins declare it, the registry refuses a mismatch.

A plugin module says which ``purenng.plugin`` API it was written for with
``PURENNG_PLUGIN_API = "MAJOR.MINOR"``.  This purenng offers
``purenng.plugin.API_VERSION``: another major, or a newer minor, is refused
before the plugin registers anything, with an error naming the plugin, its
version and ours; only that plugin's names stop working.
"""

from __future__ import annotations

import importlib
import subprocess
import sys
import textwrap
from importlib.metadata import entry_points
from typing import TYPE_CHECKING

import pytest

import purenng
import purenng.plugin
from purenng.core.config import load_config
from purenng.core.registry import API_VERSION, GROUPS, Registry
from purenng.transports.tcp import TCPTransport

if TYPE_CHECKING:
    from pathlib import Path


def _plugin(scheme: str, declared: object | None) -> object:
    """A plugin object serving ``scheme`` (a renamed tcp), declaring ``declared``."""

    class Renamed(TCPTransport):
        schemes = (scheme,)

    class Plugin:
        @purenng.plugin.hookimpl
        def purenng_register_transports(self, registry: Registry) -> None:
            registry.add_transport(Renamed())

    plugin = Plugin()
    if declared is not None:
        plugin.PURENNG_PLUGIN_API = declared  # type: ignore[attr-defined]
    return plugin


def test_the_door_offers_the_registry_version() -> None:
    assert purenng.plugin.API_VERSION == API_VERSION
    major, _, minor = API_VERSION.partition(".")
    assert major.isdigit()
    assert minor.isdigit()


@pytest.mark.parametrize("declared", [API_VERSION, API_VERSION.split(".")[0] + ".0", None])
def test_a_compatible_plugin_loads_and_its_version_is_recorded(declared: str | None) -> None:
    reg = Registry(load_config())
    reg.register_module(_plugin("apiok", declared), "test:ok")
    assert reg.transport("apiok").schemes == ("apiok",)
    assert reg.api_versions["test:ok"] == declared


@pytest.mark.parametrize(
    ("declared", "why"),
    [
        (f"{int(API_VERSION.split('.')[0]) + 1}.0", "written for purenng plugin API"),
        (f"{int(API_VERSION.split('.')[0]) - 1}.9", "written for purenng plugin API"),
        (f"{API_VERSION.split('.')[0]}.{int(API_VERSION.split('.')[1]) + 1}", "at most"),
        ("one", "bad PURENNG_PLUGIN_API"),
        (1.0, "bad PURENNG_PLUGIN_API"),
    ],
)
def test_an_incompatible_plugin_is_refused_by_name(declared: object, why: str) -> None:
    reg = Registry(load_config())
    with pytest.raises(purenng.PluginError) as info:
        reg.register_module(_plugin("apibad", declared), "test-dist:apibad_module")
    text = str(info.value)
    assert "test-dist:apibad_module" in text
    assert why in text
    if isinstance(declared, str) and declared[0].isdigit():
        assert declared in text
        assert API_VERSION in text
    # Nothing of it was registered, and the registry still serves the others.
    with pytest.raises(purenng.PluginError):
        reg.transport("apibad")
    assert reg.transport("tcp").schemes[0] == "tcp"


def test_every_builtin_plugin_declares_the_current_version() -> None:
    """Built-ins take the same path as third-party plugins, declaration included."""
    values = {
        ep.value
        for group in GROUPS.values()
        for ep in entry_points(group=group)
        if ep.value.startswith("purenng.")
    }
    assert values, "no built-in entry points found"
    for value in sorted(values):
        module = importlib.import_module(value)
        assert getattr(module, "PURENNG_PLUGIN_API", None) == API_VERSION, value


def test_an_installed_plugin_for_another_major_breaks_only_its_scheme(tmp_path: Path) -> None:
    """Through entry points, as `pip install` would leave it, in a fresh process."""
    major = int(API_VERSION.split(".")[0])
    info = tmp_path / "purenng_future-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: purenng-future\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(f"[{GROUPS['transport']}]\nfuture = purenng_future\n")
    (tmp_path / "purenng_future.py").write_text(
        textwrap.dedent(
            f"""
            from purenng.plugin import hookimpl
            from purenng.transports.tcp import TCPTransport

            PURENNG_PLUGIN_API = "{major + 1}.0"

            class Future(TCPTransport):
                schemes = ("future",)

            @hookimpl
            def purenng_register_transports(registry):
                registry.add_transport(Future())
            """
        )
    )
    code = textwrap.dedent(
        """
        import purenng
        try:
            purenng.Pair0(dial="future://127.0.0.1:1")
        except purenng.PluginError as exc:
            print("refused:", exc)
        with purenng.Pair0(listen="tcp://127.0.0.1:0") as s:
            print("tcp still works:", s.listeners[0].url.startswith("tcp://"))
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        env={"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    assert "refused: plugin purenng-future:purenng_future" in out, out
    assert f"purenng plugin API {major + 1}.0" in out, out
    assert "tcp still works: True" in out, out
    listing = subprocess.run(
        [sys.executable, "-m", "purenng.cli.main", "plugins", "--load"],
        env={"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout
    line = next(ln for ln in listing.splitlines() if ln.strip().startswith("future "))
    assert "broken" in line, line
    assert f"{major + 1}.0" in line, line
