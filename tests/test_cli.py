"""``purenng plugins`` and ``purenng demo``, run through the real command dispatcher."""

from __future__ import annotations

import json
import sys
from importlib.metadata import entry_points, version
from importlib.util import find_spec
from typing import TYPE_CHECKING, Any

import pytest

from purenng.cli import demo
from purenng.cli.main import main
from purenng.core.registry import GROUPS

if TYPE_CHECKING:
    import subprocess
    from collections.abc import Sequence
    from pathlib import Path

PURENNG_VERSION = version("purenng")

BROKEN_MODULE = "raise ImportError('needs libfoo 2')\n"
GOOD_MODULE = """
from purenng.plugin import hookimpl
from purenng.transports.tcp import TCPTransport

class Transport(TCPTransport):
    schemes = ("dup",)

@hookimpl
def purenng_register_transports(registry):
    registry.add_transport(Transport())
"""


@pytest.fixture(autouse=True)
def clean_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    for var in ("PURENNG_PLUGINS", "PURENNG_DISABLE_PLUGIN_AUTOLOAD", "PURENNG_TRACE_PLUGINS"):
        monkeypatch.delenv(var, raising=False)


@pytest.fixture
def fake_site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Three fake distributions: one broken, two claiming the same scheme."""
    root = tmp_path / "site"
    root.mkdir()
    for dist, scheme, module, source in (
        ("fake-broken", "brk", "fake_cli_broken", BROKEN_MODULE),
        ("fake-one", "dup", "fake_cli_one", GOOD_MODULE),
        ("fake-two", "dup", "fake_cli_two", GOOD_MODULE),
    ):
        info = root / f"{dist.replace('-', '_')}-1.0.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.0\n")
        (info / "entry_points.txt").write_text(f"[purenng.transports]\n{scheme} = {module}\n")
        (root / f"{module}.py").write_text(source)
    monkeypatch.syspath_prepend(str(root))
    for module in ("fake_cli_broken", "fake_cli_one", "fake_cli_two"):
        monkeypatch.delitem(sys.modules, module, raising=False)
    return root


def unwritten_builtins_toml(tmp_path: Path, extra: str = "", disable: Sequence[str] = ()) -> Path:
    """A plugins.toml disabling ``disable`` and the built-ins not written yet."""
    own = [
        ep
        for group in GROUPS.values()
        for ep in entry_points(group=group)
        if ep.dist is not None and ep.dist.name == "purenng"
    ]
    missing = [*disable, *(f"purenng:{ep.name}" for ep in own if find_spec(ep.value) is None)]
    path = tmp_path / "plugins.toml"
    path.write_text(f"[plugins]\ndisabled = {json.dumps(missing)}\n{extra}")
    return path


def run_json(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, dict[str, Any]]:
    code = main(["plugins", "--json", *argv])
    return code, json.loads(capsys.readouterr().out)


def entry(facts: dict[str, Any], kind: str, name: str, dist: str = "purenng") -> dict[str, Any]:
    found: list[dict[str, Any]] = [
        p
        for p in facts["plugins"]
        if (p["kind"], p["name"], p["distribution"]) == (kind, name, dist)
    ]
    (entry,) = found
    return entry


# ---------------------------------------------------------------- purenng plugins


def test_plugins_text(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plugins"]) == 0
    out = capsys.readouterr().out
    assert "Transports (entry-point group purenng.transports):" in out
    assert "Protocols (entry-point group purenng.protocols):" in out
    tcp_row = next(line for line in out.splitlines() if line.split()[:1] == ["tcp"])
    assert tcp_row.split() == [
        "tcp",
        "purenng",
        PURENNG_VERSION,
        "purenng.transports.tcp",
        "available",
    ]
    assert out.index("tcp  ") < out.index("Protocols") < out.index("pair0  ")
    assert "Configuration files in effect" in out
    assert "plugins.toml" in out
    for var in ("PURENNG_PLUGINS", "PURENNG_DISABLE_PLUGIN_AUTOLOAD", "PURENNG_TRACE_PLUGINS"):
        assert var in out


def test_plugins_json_lists_every_entry_point(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PURENNG_DISABLE_PLUGIN_AUTOLOAD", "1")
    code, facts = run_json(capsys)
    assert code == 0
    listed = {(p["kind"], p["name"], p["distribution"]) for p in facts["plugins"]}
    for kind, group in GROUPS.items():
        for ep in entry_points(group=group):
            assert (kind, ep.name, ep.dist.name if ep.dist else "<unknown>") in listed
    tcp = entry(facts, "transport", "tcp")
    assert tcp["version"] == PURENNG_VERSION
    assert tcp["module"] == "purenng.transports.tcp"
    assert tcp["group"] == "purenng.transports"
    assert tcp["status"] == "available"
    assert facts["environment"]["PURENNG_DISABLE_PLUGIN_AUTOLOAD"] == "1"
    assert facts["environment"]["PURENNG_PLUGINS"] is None
    assert facts["config"]["files"][0].endswith("plugins.toml")
    assert facts["config"]["user_file_present"] is False


def test_plugins_shows_configuration_layers(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env_file = tmp_path / "env.toml"
    env_file.write_text('[schemes]\ntcp = "purenng"\n')
    monkeypatch.setenv("PURENNG_PLUGINS", str(env_file))
    explicit = tmp_path / "explicit.toml"
    explicit.write_text('[plugins]\ndisabled = ["purenng:tcp6"]\n')
    code, facts = run_json(capsys, "--config", str(explicit))
    assert code == 0
    assert facts["config"]["files"][-2:] == [str(env_file), str(explicit)]
    assert facts["config"]["schemes"] == {"tcp": "purenng"}
    tcp6 = entry(facts, "transport", "tcp6")
    assert tcp6["status"] == "disabled"
    assert str(explicit) in tcp6["detail"]
    main(["plugins", "--config", str(explicit)])
    out = capsys.readouterr().out
    assert f"disabled by {explicit}" in out
    assert '[schemes] tcp = "purenng"' in out


def test_plugins_load_builtins_exit_0(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, facts = run_json(capsys, "--load", "--config", str(unwritten_builtins_toml(tmp_path)))
    assert code == 0
    assert facts["loaded_all"] is True
    for name in ("tcp", "tcp4", "tcp6"):
        assert entry(facts, "transport", name)["status"] == "loaded"
    assert entry(facts, "protocol", "pair0")["status"] == "loaded"
    assert {p["status"] for p in facts["plugins"]} <= {"loaded", "disabled"}


def test_plugins_load_finds_broken_ones(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, fake_site: Path
) -> None:
    cfg = unwritten_builtins_toml(tmp_path)
    # Without --load nothing is imported, so nothing can be known broken.
    code, facts = run_json(capsys, "--config", str(cfg))
    assert code == 0
    assert entry(facts, "transport", "brk", "fake-broken")["status"] == "available"
    assert "fake_cli_broken" not in sys.modules

    code, facts = run_json(capsys, "--load", "--config", str(cfg))
    assert code == 1
    brk = entry(facts, "transport", "brk", "fake-broken")
    assert brk["status"] == "broken"
    assert brk["detail"] == "ImportError: needs libfoo 2"
    assert brk["version"] == "1.0"
    # An unresolved conflict is broken too, with the way out.
    for dist in ("fake-one", "fake-two"):
        dup = entry(facts, "transport", "dup", dist)
        assert dup["status"] == "broken"
        assert '[schemes] dup = "<distribution>"' in dup["detail"]
    assert entry(facts, "transport", "tcp")["status"] == "loaded"

    assert main(["plugins", "--load", "--config", str(cfg)]) == 1
    out = capsys.readouterr().out
    brk_row = next(line for line in out.splitlines() if line.split()[:1] == ["brk"])
    assert "fake-broken 1.0" in brk_row
    assert "broken: ImportError: needs libfoo 2" in brk_row


def test_plugins_load_with_winner_and_disabled(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, fake_site: Path
) -> None:
    cfg = unwritten_builtins_toml(tmp_path, '[schemes]\ndup = "fake-two"\n', ["fake-broken"])
    code, facts = run_json(capsys, "--load", "--config", str(cfg))
    assert code == 0
    assert entry(facts, "transport", "dup", "fake-two")["status"] == "loaded"
    one = entry(facts, "transport", "dup", "fake-one")
    assert one["status"] == "shadowed"
    assert "fake-two:fake_cli_two" in one["detail"]
    brk = entry(facts, "transport", "brk", "fake-broken")
    assert brk["status"] == "disabled"
    assert "fake_cli_broken" not in sys.modules


def test_plugins_bad_config_exit_2(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[schemes]\ntcp = 1\n")
    assert main(["plugins", "--config", str(bad)]) == 2
    err = capsys.readouterr().err
    assert str(bad) in err
    assert "schemes.tcp" in err


# ---------------------------------------------------------------- purenng demo


def test_demo(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--requests", "2", "--pushes", "3", "--bulk", "50"]) == 0
    out = capsys.readouterr().out
    for line in (
        "[parent] sent b'ping 1'",
        "[child] got b'ping 1'",
        "[child] replied b'pong 1'",
        "[parent] got b'pong 2' after",
        "[parent] pushed b'job 3'",
        "[child] pulled b'job 3'",
        "[child] pulled 50 bulk messages in",
        "[parent] child reports {'jobs': 3, 'bulk': 50}",
        "[parent] child exited with status 0",
        "[parent] done in",
    ):
        assert line in out, f"{line!r} missing from:\n{out}"
    assert "ping 3" not in out


class Spawned:
    """Records the child processes the demo starts."""

    def __init__(self) -> None:
        self.procs: list[subprocess.Popen[str]] = []
        self.real = demo._spawn

    def __call__(self, cmd: Sequence[str]) -> subprocess.Popen[str]:
        proc = self.real(cmd)
        self.procs.append(proc)
        return proc


@pytest.mark.parametrize(
    ("child_code", "status"),
    [
        ("import time; print('[child] stuck', flush=True); time.sleep(60)", "-15"),
        ("import sys; sys.exit(3)", "3"),
        ('print(\'READY {"rep": "tcp://127.0.0.1:1", "pull": "x"}\', flush=True)', "0"),
    ],
    ids=["never-ready", "dies", "bad-address"],
)
def test_demo_failures_are_bounded_and_clean_up(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    child_code: str,
    status: str,
) -> None:
    spawned = Spawned()
    monkeypatch.setattr(demo, "_spawn", spawned)
    monkeypatch.setattr(demo, "_child_command", lambda args: [sys.executable, "-c", child_code])
    assert main(["demo", "--timeout", "1"]) == 1
    out = capsys.readouterr().out
    (proc,) = spawned.procs
    assert proc.poll() is not None, "the child was left running"
    assert f"[parent] child exited with status {status}" in out
