"""A real third-party transport, installed with pip, found through its entry point.

The distribution ``purenng-echo-test`` is built in a temporary directory: one
package, ``purenng_echo_test``, whose transport serves ``tcpx://`` by
subclassing purenng's tcp transport, and one entry point in
``purenng.transports``.  It is pip-installed into the running environment
(``--no-build-isolation --no-deps``: nothing is downloaded) and always
uninstalled at the end.  Every check runs in a fresh subprocess, so each sees
a fresh registry and the environment variables it is given.

The test suite sets ``PURENNG_DISABLE_PLUGIN_AUTOLOAD=1``; the three cases
are: unset (the plugin loads by itself), set (refused, with the reason), set
plus ``[plugins] enabled = ["purenng-echo-test"]`` (loads).
"""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys
import tempfile
import textwrap
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import pytest

DIST = "purenng-echo-test"
VERSION = "0.0.1"

PYPROJECT = f"""
[build-system]
requires = ["hatchling"]
build-backend = "hatchling.build"

[project]
name = "{DIST}"
version = "{VERSION}"
description = "a purenng test plugin: tcp under the scheme tcpx"
requires-python = ">=3.11"
dependencies = ["purenng"]

[project.entry-points."purenng.transports"]
tcpx = "purenng_echo_test"

[tool.hatch.build.targets.wheel]
packages = ["purenng_echo_test"]
"""

MODULE = '''
"""tcpx://: purenng's tcp transport under another scheme."""

from dataclasses import replace

from purenng.plugin import hookimpl
from purenng.transports.tcp import TCPTransport


def _as_tcp(url):
    return replace(url, scheme="tcp", raw="tcp://" + url.rest)


class TcpxTransport(TCPTransport):
    schemes = ("tcpx",)

    def check_url(self, url):
        super().check_url(_as_tcp(url))

    async def dial(self, url, options):
        return await super().dial(_as_tcp(url), options)

    async def listen(self, url, options):
        listener = await super().listen(_as_tcp(url), options)
        listener._url = "tcpx" + listener.url[len("tcp"):]
        return listener


@hookimpl
def purenng_register_transports(registry):
    registry.add_transport(TcpxTransport())
'''

EXCHANGE = """
import json
import purenng
from purenng.core.registry import get_registry

try:
    with purenng.Pair0(listen="tcpx://127.0.0.1:0", recv_timeout=5) as a:
        url = a.listeners[0].url
        b = purenng.Pair0(dial=url, send_timeout=5, recv_timeout=5)
        with b:
            b.send(b"echo?")
            a.send(a.recv() + b" echo!")
            reply = b.recv().decode()
    cls = type(get_registry().transport("tcpx"))
    print(json.dumps({"url": url, "reply": reply, "class": cls.__module__ + "." + cls.__name__}))
except purenng.PluginError as exc:
    print(json.dumps({"error": str(exc)}))
"""


def pip(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1", "PIP_NO_INDEX": "1"}
    return subprocess.run(
        [sys.executable, "-m", "pip", *args],
        capture_output=True,
        text=True,
        timeout=180,
        env=env,
        check=False,
    )


def python(args: list[str], tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    full = {**os.environ, "XDG_CONFIG_HOME": str(tmp_path / "xdg")}
    for var in ("PURENNG_PLUGINS", "PURENNG_DISABLE_PLUGIN_AUTOLOAD", "PURENNG_TRACE_PLUGINS"):
        full.pop(var, None)
    full.update(env)
    return subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, timeout=60, env=full, check=False
    )


def exchange(tmp_path: Path, **env: str) -> dict[str, Any]:
    proc = python(["-c", textwrap.dedent(EXCHANGE)], tmp_path, **env)
    assert proc.returncode == 0, proc.stderr
    result: dict[str, Any] = json.loads(proc.stdout)
    return result


def plugins_json(tmp_path: Path, *args: str, **env: str) -> dict[str, Any]:
    proc = python(["-m", "purenng.cli.main", "plugins", "--json", *args], tmp_path, **env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    facts: dict[str, Any] = json.loads(proc.stdout)
    return facts


def tcpx_entry(facts: dict[str, Any]) -> dict[str, Any]:
    found: list[dict[str, Any]] = [
        p for p in facts["plugins"] if (p["kind"], p["name"]) == ("transport", "tcpx")
    ]
    (entry,) = found
    return entry


@pytest.mark.slow
def test_installed_third_party_transport(tmp_path: Path) -> None:
    src = tmp_path / "purenng-echo-test"
    (src / "purenng_echo_test").mkdir(parents=True)
    (src / "pyproject.toml").write_text(PYPROJECT)
    (src / "purenng_echo_test" / "__init__.py").write_text(MODULE)
    enabled = tmp_path / "enabled.toml"
    enabled.write_text(f'[plugins]\nenabled = ["{DIST}"]\n')

    # Two test runs at once must not install and uninstall under each other.
    lock_path = Path(tempfile.gettempdir()) / "purenng-echo-test.lock"
    with lock_path.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            installed = pip("install", "-q", "--no-build-isolation", "--no-deps", str(src))
            assert installed.returncode == 0, installed.stdout + installed.stderr

            # Autoload on: found and used with no configuration at all.
            result = exchange(tmp_path)
            assert result.get("reply") == "echo? echo!", result
            assert result["url"].startswith("tcpx://127.0.0.1:")
            assert result["class"] == "purenng_echo_test.TcpxTransport"

            facts = plugins_json(tmp_path)
            entry = tcpx_entry(facts)
            assert entry["distribution"] == DIST
            assert entry["version"] == VERSION
            assert entry["module"] == "purenng_echo_test"
            assert entry["status"] == "available"
            assert tcpx_entry(plugins_json(tmp_path, "--load"))["status"] == "loaded"

            # Autoload off: refused, and the error says why and what to do.
            result = exchange(tmp_path, PURENNG_DISABLE_PLUGIN_AUTOLOAD="1")
            assert "error" in result, result
            assert "scheme 'tcpx' is not available" in result["error"]
            assert f"{DIST}:purenng_echo_test" in result["error"]
            assert "PURENNG_DISABLE_PLUGIN_AUTOLOAD=1" in result["error"]
            assert "[plugins] enabled" in result["error"]
            entry = tcpx_entry(plugins_json(tmp_path, PURENNG_DISABLE_PLUGIN_AUTOLOAD="1"))
            assert entry["status"] == "disabled"
            assert "PURENNG_DISABLE_PLUGIN_AUTOLOAD" in entry["detail"]

            # Autoload off, but enabled by name in plugins.toml: loads.
            result = exchange(
                tmp_path, PURENNG_DISABLE_PLUGIN_AUTOLOAD="1", PURENNG_PLUGINS=str(enabled)
            )
            assert result.get("reply") == "echo? echo!", result
        finally:
            uninstalled = pip("uninstall", "-y", "-q", DIST)
        assert uninstalled.returncode == 0, uninstalled.stdout + uninstalled.stderr
    assert not list(entry_points(group="purenng.transports", name="tcpx"))
