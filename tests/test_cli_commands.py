"""``purenng NAME``: commands found through the ``purenng.commands`` entry-point group.

Third-party commands come from fake distributions: a ``*.dist-info``
directory (``METADATA`` and ``entry_points.txt``) and a module, in a
temporary directory put on ``PYTHONPATH``.  Every check runs ``purenng`` in a
fresh subprocess (``python -m purenng.cli.main``), so each sees only the
distributions it is given and its own ``sys.modules``.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from importlib import import_module
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any

import pytest

from purenng.cli.command import GROUP, Command
from purenng.cli.main import BUILTIN_HELP

if TYPE_CHECKING:
    from pathlib import Path

BUILTINS = {
    "bench": "purenng.cli.bench",
    "cat": "purenng.cli.cat",
    "cert": "purenng.cli.cert",
    "demo": "purenng.cli.demo",
    "plugins": "purenng.cli.plugins",
    "serve": "purenng.cli.serve",
    "soak": "purenng.soak.command",
}

HELLO = '''
"""A third-party purenng command."""

import argparse

HELP = "print a greeting"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name")
    parser.add_argument("--status", type=int, default=0)


def run(args: argparse.Namespace) -> int:
    print(f"hello, {args.name}")
    return args.status
'''

BROKEN = "raise ImportError('needs libfoo 2')\n"
NO_RUN = 'HELP = "half a command"\n\ndef add_arguments(parser):\n    pass\n'
FAKE_CAT = 'HELP = "not the real cat"\n\nprint("FAKE CAT IMPORTED")\n'


def say(word: str) -> str:
    return textwrap.dedent(f"""
        HELP = "say {word}"

        def add_arguments(parser):
            pass

        def run(args):
            print("{word}")
        """)


def make_dist(
    site: Path, dist: str, commands: dict[str, str], modules: dict[str, str], summary: str = ""
) -> None:
    """A fake installed distribution: metadata, ``purenng.commands`` entry points, modules."""
    info = site / f"{dist.replace('-', '_')}-1.0.dist-info"
    info.mkdir(parents=True)
    meta = f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.0\n"
    if summary:
        meta += f"Summary: {summary}\n"
    (info / "METADATA").write_text(meta)
    lines = "".join(f"{name} = {value}\n" for name, value in commands.items())
    (info / "entry_points.txt").write_text(f"[{GROUP}]\n{lines}")
    for module, source in modules.items():
        (site / f"{module}.py").write_text(source)


def purenng(
    tmp_path: Path, *args: str, site: Path | None = None, **env: str
) -> subprocess.CompletedProcess[str]:
    return python(tmp_path, "-m", "purenng.cli.main", *args, site=site, **env)


def python(
    tmp_path: Path, *args: str, site: Path | None = None, **env: str
) -> subprocess.CompletedProcess[str]:
    full = {**os.environ, "XDG_CONFIG_HOME": str(tmp_path / "xdg")}
    for var in ("PURENNG_PLUGINS", "PURENNG_DISABLE_PLUGIN_AUTOLOAD", "PURENNG_TRACE_PLUGINS"):
        full.pop(var, None)
    if site is not None:
        full["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(site), full.get("PYTHONPATH", "")) if p
        )
    full.update(env)
    return subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, timeout=60, env=full, check=False
    )


def command_facts(tmp_path: Path, site: Path, *args: str) -> tuple[int, list[dict[str, Any]]]:
    proc = purenng(tmp_path, "plugins", "--json", *args, site=site)
    facts = json.loads(proc.stdout)
    return proc.returncode, [p for p in facts["plugins"] if p["kind"] == "command"]


def one(facts: list[dict[str, Any]], name: str, dist: str) -> dict[str, Any]:
    (found,) = [p for p in facts if (p["name"], p["distribution"]) == (name, dist)]
    return found


@pytest.fixture
def site(tmp_path: Path) -> Path:
    return tmp_path / "site"


# ---------------------------------------------------------------- built-ins


def test_builtins_are_entry_points_with_their_help() -> None:
    own = {
        ep.name: ep.value
        for ep in entry_points(group=GROUP)
        if ep.dist is not None and ep.dist.name == "purenng"
    }
    assert own == BUILTINS
    assert set(BUILTIN_HELP) == set(BUILTINS.values())
    for value in BUILTINS.values():
        module = import_module(value)
        assert isinstance(module, Command), value
        assert BUILTIN_HELP[value] == module.HELP, value


def test_plugin_authors_import_the_contract_from_purenng_plugin() -> None:
    from purenng import plugin

    assert plugin.Command is Command
    assert "Command" in plugin.__all__


# ---------------------------------------------------------------- third-party commands


def test_third_party_command_runs(tmp_path: Path, site: Path) -> None:
    make_dist(
        site, "purenng-hello", {"hello": "purenng_hello_cmd"},
        {"purenng_hello_cmd": HELLO}, "greetings over purenng",
    )  # fmt: skip
    proc = purenng(tmp_path, "hello", "world", site=site)
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, "hello, world\n", "")
    assert purenng(tmp_path, "hello", "x", "--status", "3", site=site).returncode == 3

    proc = purenng(tmp_path, "hello", "--help", site=site)
    assert proc.returncode == 0
    assert proc.stdout.startswith("usage: purenng hello [-h] [--status STATUS] name")
    assert "print a greeting" in proc.stdout

    proc = purenng(tmp_path, "--help", site=site)
    assert proc.returncode == 0
    row = next(line for line in proc.stdout.splitlines() if line.split()[:1] == ["hello"])
    assert "from purenng-hello: greetings over purenng" in row

    code, facts = command_facts(tmp_path, site)
    assert code == 0
    hello = one(facts, "hello", "purenng-hello")
    assert hello["module"] == "purenng_hello_cmd"
    assert hello["version"] == "1.0"
    assert hello["status"] == "available"
    assert one(facts, "cat", "purenng")["status"] == "available"
    code, facts = command_facts(tmp_path, site, "--load")
    assert code == 0
    assert {p["status"] for p in facts} == {"loaded"}

    proc = purenng(tmp_path, "plugins", site=site)
    assert "Commands (entry-point group purenng.commands):" in proc.stdout
    row = next(line for line in proc.stdout.splitlines() if line.split()[:1] == ["hello"])
    assert row.split() == ["hello", "purenng-hello", "1.0", "purenng_hello_cmd", "available"]


def test_help_imports_no_command_module(tmp_path: Path, site: Path) -> None:
    make_dist(site, "purenng-hello", {"hello": "purenng_hello_cmd"}, {"purenng_hello_cmd": HELLO})
    script = textwrap.dedent("""
        import contextlib, io, json, sys
        from purenng.cli.main import main
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            code = main(["--help"])
        mods = sorted(m for m in sys.modules if m.startswith(("purenng", "purenng_hello")))
        print(json.dumps({"code": code, "help": out.getvalue(), "modules": mods}))
        """)
    proc = python(tmp_path, "-c", script, site=site)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["code"] == 0
    # One row per command, indented by four; wrapped help lines are indented further.
    listed = set(re.findall(r"^    (\S+)", result["help"], re.MULTILINE))
    assert listed == {*BUILTINS, "hello"}
    assert "purenng_hello_cmd" not in result["modules"]
    for value in BUILTINS.values():
        assert value not in result["modules"]
    assert not [m for m in result["modules"] if m.startswith(("purenng.bench", "purenng.soak"))]


def test_broken_command_fails_alone(tmp_path: Path, site: Path) -> None:
    make_dist(
        site, "purenng-broken",
        {"brk": "purenng_broken_cmd", "norun": "purenng_norun_cmd"},
        {"purenng_broken_cmd": BROKEN, "purenng_norun_cmd": NO_RUN},
    )  # fmt: skip
    proc = purenng(tmp_path, "brk", "--flag", site=site)
    assert proc.returncode == 1
    assert proc.stdout == ""
    assert proc.stderr == (
        "purenng: plugin purenng-broken:purenng_broken_cmd for command 'brk' failed to import: "
        "ImportError: needs libfoo 2\n"
    )
    proc = purenng(tmp_path, "norun", site=site)
    assert proc.returncode == 1
    assert "plugin purenng-broken:purenng_norun_cmd for command 'norun'" in proc.stderr
    assert "has no run()" in proc.stderr
    # The traceback, on request.
    proc = purenng(tmp_path, "brk", site=site, PURENNG_TRACE_PLUGINS="1")
    assert "Traceback" in proc.stderr
    assert 'purenng_broken_cmd.py", line 1' in proc.stderr

    # Everything else still works.
    proc = purenng(tmp_path, "--help", site=site)
    assert proc.returncode == 0, proc.stderr
    assert "brk" in proc.stdout
    assert "cat " in proc.stdout
    proc = purenng(tmp_path, "cat", "--help", site=site)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("usage: purenng cat [-h] [--req0]")

    code, facts = command_facts(tmp_path, site)
    assert code == 0
    assert one(facts, "brk", "purenng-broken")["status"] == "available"
    code, facts = command_facts(tmp_path, site, "--load")
    assert code == 1
    brk = one(facts, "brk", "purenng-broken")
    assert (brk["status"], brk["detail"]) == ("broken", "ImportError: needs libfoo 2")
    norun = one(facts, "norun", "purenng-broken")
    assert norun["status"] == "broken"
    assert "has no run()" in norun["detail"]
    assert one(facts, "cat", "purenng")["status"] == "loaded"


# ---------------------------------------------------------------- who wins a name


def test_builtin_wins_its_name_with_a_warning(tmp_path: Path, site: Path) -> None:
    make_dist(site, "purenng-fakecat", {"cat": "purenng_fake_cat"}, {"purenng_fake_cat": FAKE_CAT})
    warning = (
        "purenng: warning: command 'cat' is claimed by purenng (purenng.cli.cat) "
        "and by purenng-fakecat (purenng_fake_cat); purenng's own is used\n"
    )
    proc = purenng(tmp_path, "cat", "--help", site=site)
    assert proc.returncode == 0
    assert proc.stdout.startswith("usage: purenng cat [-h] [--req0]")
    assert "FAKE CAT" not in proc.stdout
    assert proc.stderr == warning

    proc = purenng(tmp_path, "--help", site=site)
    assert proc.returncode == 0
    assert proc.stderr == warning
    row = next(line for line in proc.stdout.splitlines() if line.split()[:1] == ["cat"])
    assert "nngcat-compatible" in row

    # Other commands run without a word about it.
    assert purenng(tmp_path, "cert", "--help", site=site).stderr == ""

    code, facts = command_facts(tmp_path, site, "--load")
    assert code == 0
    fake = one(facts, "cat", "purenng-fakecat")
    assert (fake["status"], fake["detail"]) == ("shadowed", "served by purenng:purenng.cli.cat")
    assert one(facts, "cat", "purenng")["status"] == "loaded"


def test_two_third_party_claims_need_plugins_toml(tmp_path: Path, site: Path) -> None:
    make_dist(site, "purenng-one", {"dup": "purenng_one_cmd"}, {"purenng_one_cmd": say("one")})
    make_dist(site, "purenng-two", {"dup": "purenng_two_cmd"}, {"purenng_two_cmd": say("two")})
    proc = purenng(tmp_path, "dup", site=site)
    assert proc.returncode == 1
    assert proc.stdout == ""
    assert (
        "command 'dup' is claimed by purenng-one:purenng_one_cmd, purenng-two:purenng_two_cmd"
        in proc.stderr
    )
    assert '[plugins] disabled = ["<distribution>:dup"]' in proc.stderr
    proc = purenng(tmp_path, "--help", site=site)
    assert proc.returncode == 0
    assert "claimed by purenng-one, purenng-two" in proc.stdout

    toml = tmp_path / "plugins.toml"
    toml.write_text('[plugins]\ndisabled = ["purenng-one:dup"]\n')
    proc = purenng(tmp_path, "dup", site=site, PURENNG_PLUGINS=str(toml))
    assert (proc.returncode, proc.stdout) == (0, "two\n")
    proc = purenng(tmp_path, "plugins", "--json", site=site, PURENNG_PLUGINS=str(toml))
    facts = [p for p in json.loads(proc.stdout)["plugins"] if p["kind"] == "command"]
    assert one(facts, "dup", "purenng-one")["status"] == "disabled"
    assert one(facts, "dup", "purenng-two")["status"] == "available"

    # Every claimant disabled: not available, and the file that says so.
    toml.write_text('[plugins]\ndisabled = ["purenng-one", "purenng-two"]\n')
    proc = purenng(tmp_path, "dup", site=site, PURENNG_PLUGINS=str(toml))
    assert proc.returncode == 2
    assert "command 'dup' is not available" in proc.stderr
    assert f"disabled by {toml}" in proc.stderr
