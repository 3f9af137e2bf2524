"""The plugin registry: entry points, lazy loading, failures, conflicts, precedence.

Fake third-party distributions are ``*.dist-info`` directories with an
``entry_points.txt`` in a temporary directory put on ``sys.path``: to
``importlib.metadata`` they are installed distributions, and nothing touches
the real environment.  Each test builds its own :class:`Registry`, or swaps
the process-wide one and restores it afterwards.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import textwrap
from importlib.metadata import entry_points
from typing import TYPE_CHECKING

import pytest

import purenng
from purenng.core import registry as registry_mod
from purenng.core.config import load_config
from purenng.core.registry import GROUPS, Registry
from purenng.transports.tcp import TCPTransport

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

BUILTIN_TRANSPORTS = {
    "tcp", "tcp4", "tcp6", "ipc", "unix", "abstract", "inproc",
    "tls+tcp", "tls+tcp4", "tls+tcp6", "ws", "ws4", "ws6", "wss", "wss4", "wss6",
}  # fmt: skip
BUILTIN_PROTOCOLS = {
    "pair0", "pair1", "push0", "pull0", "req0", "rep0", "pub0", "sub0",
    "surveyor0", "respondent0", "bus0",
}  # fmt: skip

# A plugin module serving the schemes it is given: a renamed tcp transport.
TRANSPORT_MODULE = """
from purenng.plugin import hookimpl
from purenng.transports.tcp import TCPTransport

class Transport(TCPTransport):
    schemes = {schemes!r}

@hookimpl
def purenng_register_transports(registry):
    registry.add_transport(Transport())
"""


class FakeSite:
    """A directory on sys.path holding fake installed distributions."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def dist(
        self,
        name: str,
        *,
        transports: dict[str, str] | None = None,
        protocols: dict[str, str] | None = None,
        modules: dict[str, str] | None = None,
    ) -> None:
        """Install distribution ``name`` with these entry points and modules."""
        info = self.root / f"{name.replace('-', '_')}-1.0.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
        lines = []
        for group, eps in ((GROUPS["transport"], transports), (GROUPS["protocol"], protocols)):
            if eps:
                lines.append(f"[{group}]")
                lines.extend(f"{k} = {v}" for k, v in eps.items())
        (info / "entry_points.txt").write_text("\n".join(lines) + "\n")
        for mod, source in (modules or {}).items():
            (self.root / f"{mod}.py").write_text(textwrap.dedent(source))

    def transport_dist(self, dist: str, module: str, *schemes: str) -> None:
        """A distribution whose module ``module`` serves ``schemes``."""
        self.dist(
            dist,
            transports=dict.fromkeys(schemes, module),
            modules={module: TRANSPORT_MODULE.format(schemes=tuple(schemes))},
        )


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeSite]:
    root = tmp_path / "site"
    root.mkdir()
    monkeypatch.syspath_prepend(str(root))
    before = set(sys.modules)
    yield FakeSite(root)
    for name in set(sys.modules) - before:
        if str(root) in str(getattr(sys.modules[name], "__file__", "") or ""):
            del sys.modules[name]


@pytest.fixture(autouse=True)
def clean_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No user file, no PURENNG_PLUGINS, autoload on unless a test says otherwise."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    for var in ("PURENNG_PLUGINS", "PURENNG_DISABLE_PLUGIN_AUTOLOAD", "PURENNG_TRACE_PLUGINS"):
        monkeypatch.delenv(var, raising=False)


@pytest.fixture
def global_registry() -> Iterator[None]:
    """Let a test replace the process-wide registry; put the old one back."""
    saved = registry_mod._registry
    yield
    registry_mod._registry = saved


def toml(tmp_path: Path, text: str, name: str = "plugins.toml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def status_of(reg: Registry, kind: str, name: str, dist: str) -> tuple[str, str]:
    for st in reg.describe():
        if (st.kind, st.name, st.dist) == (kind, name, dist):
            return st.status, st.detail
    raise AssertionError(f"{kind} {name} of {dist} not described")


def run_python(code: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full = {**os.environ, **(env or {})}
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=30,
        env=full,
        check=False,
    )


# ---------------------------------------------------------------- built-ins


def test_builtin_names_are_entry_points_of_purenng() -> None:
    for kind, expected in (("transport", BUILTIN_TRANSPORTS), ("protocol", BUILTIN_PROTOCOLS)):
        eps = entry_points(group=GROUPS[kind])
        own = {ep.name for ep in eps if ep.dist is not None and ep.dist.name == "purenng"}
        assert expected <= own, f"missing {kind} entry points: {expected - own}"


def test_describe_lists_builtins_without_importing_them() -> None:
    reg = Registry(load_config())
    statuses = {(st.kind, st.name): st for st in reg.describe() if st.dist == "purenng"}
    for name in BUILTIN_TRANSPORTS:
        assert statuses["transport", name].status == "available"
    for name in BUILTIN_PROTOCOLS:
        assert statuses["protocol", name].status == "available"
    assert statuses["transport", "tcp"].value == "purenng.transports.tcp"


@pytest.mark.parametrize(
    ("kind", "name"),
    [("transport", n) for n in sorted(BUILTIN_TRANSPORTS)]
    + [("protocol", n) for n in sorted(BUILTIN_PROTOCOLS)],
)
def test_every_builtin_registers_its_name(kind: str, name: str) -> None:
    (ep,) = [
        e
        for e in entry_points(group=GROUPS[kind], name=name)
        if e.dist is not None and e.dist.name == "purenng"
    ]
    assert importlib.util.find_spec(ep.value) is not None, f"{ep.value} is declared but missing"
    reg = Registry(load_config())
    if kind == "transport":
        assert name in reg.transport(name).schemes
    else:
        assert reg.protocol(name).name == name
    assert status_of(reg, kind, name, "purenng") == ("loaded", "")


def test_one_module_serves_its_sibling_schemes_with_one_import() -> None:
    reg = Registry(load_config())
    tcp = reg.transport("tcp")
    assert isinstance(tcp, TCPTransport)
    assert status_of(reg, "transport", "tcp6", "purenng") == ("loaded", "")
    assert reg.transport("tcp4") is tcp
    assert reg.transport("tcp6") is tcp


def test_import_is_lazy() -> None:
    """``import purenng`` imports no plugin and no pluggy; first use imports just one."""
    proc = run_python(
        """
        import sys
        def plugins():
            return sorted(m for m in sys.modules
                          if m.startswith(("purenng.transports.", "purenng.protocols.")))
        import purenng
        print("after import:", plugins(), "pluggy" in sys.modules)
        s = purenng.Pair0()
        print("after Pair0():", plugins())
        s.listen("tcp://127.0.0.1:0")
        print("after listen:", plugins())
        s.close()
        """
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == "after import: [] False"
    assert lines[1] == "after Pair0(): ['purenng.protocols.pair0']"
    assert lines[2] == "after listen: ['purenng.protocols.pair0', 'purenng.transports.tcp']"


def test_unknown_scheme_and_protocol() -> None:
    reg = Registry(load_config())
    with pytest.raises(purenng.PluginError, match=r"no plugin provides scheme 'nope'"):
        reg.transport("nope")
    with pytest.raises(purenng.PluginError, match=r"no plugin provides protocol 'nope0'"):
        reg.protocol("nope0")


# ---------------------------------------------------------------- failures


def test_broken_plugin_breaks_only_its_scheme(site: FakeSite, global_registry: None) -> None:
    site.dist(
        "fake-broken",
        transports={"brk": "fake_broken_mod"},
        modules={"fake_broken_mod": "raise RuntimeError('boom at import')\n"},
    )
    reg = purenng.configure_plugins()
    with pytest.raises(purenng.PluginError) as info:
        purenng.Pair0(listen="brk://anything")
    msg = str(info.value)
    assert "fake-broken:fake_broken_mod" in msg
    assert "RuntimeError: boom at import" in msg
    # The same error again on the next use, not a KeyError or a half-loaded plugin.
    with pytest.raises(purenng.PluginError, match="boom at import"):
        reg.transport("brk")
    status, detail = status_of(reg, "transport", "brk", "fake-broken")
    assert status == "broken"
    assert "RuntimeError: boom at import" in detail
    # Every other scheme still works, end to end.
    with purenng.Pair0(listen="tcp://127.0.0.1:0", recv_timeout=5) as a:
        b = purenng.Pair0(dial=a.listeners[0].url, send_timeout=5)
        with b:
            b.send(b"still fine")
            assert a.recv() == b"still fine"
    assert status_of(reg, "transport", "tcp", "purenng")[0] == "loaded"


def test_plugin_failing_in_its_hook_is_unregistered(site: FakeSite) -> None:
    site.dist(
        "fake-hookfail",
        transports={"hkf": "fake_hookfail_mod"},
        modules={
            "fake_hookfail_mod": """
                from purenng.plugin import hookimpl

                @hookimpl
                def purenng_register_transports(registry):
                    raise ValueError("cannot start")
                """
        },
    )
    reg = Registry(load_config())
    with pytest.raises(purenng.PluginError) as info:
        reg.transport("hkf")
    assert "fake-hookfail:fake_hookfail_mod" in str(info.value)
    assert "ValueError: cannot start" in str(info.value)
    assert reg.pm.get_plugin("fake-hookfail:fake_hookfail_mod") is None
    assert status_of(reg, "transport", "hkf", "fake-hookfail")[0] == "broken"


def test_plugin_registering_nothing(site: FakeSite) -> None:
    site.dist(
        "fake-empty",
        protocols={"empty0": "fake_empty_mod"},
        modules={"fake_empty_mod": "x = 1\n"},
    )
    reg = Registry(load_config())
    with pytest.raises(
        purenng.PluginError,
        match=r"plugin fake-empty:fake_empty_mod did not register protocol 'empty0'",
    ):
        reg.protocol("empty0")
    status, detail = status_of(reg, "protocol", "empty0", "fake-empty")
    assert status == "broken"
    assert "did not register" in detail


def test_misspelled_hookimpl_is_reported(site: FakeSite) -> None:
    site.dist(
        "fake-typo",
        transports={"typo": "fake_typo_mod"},
        modules={
            "fake_typo_mod": """
                from purenng.plugin import hookimpl

                @hookimpl
                def purenng_register_transport(registry):  # no final s
                    pass
                """
        },
    )
    reg = Registry(load_config())
    with pytest.raises(purenng.PluginError, match="purenng_register_transport"):
        reg.transport("typo")


def test_register_module_without_a_distribution() -> None:
    class MyTCP(TCPTransport):
        schemes = ("mytcp",)

    class Plugin:
        @purenng.plugin.hookimpl
        def purenng_register_transports(self, registry: Registry) -> None:
            registry.add_transport(MyTCP())

    reg = Registry(load_config())
    reg.register_module(Plugin(), "test:Plugin")
    assert reg.transport("mytcp").schemes == ("mytcp",)


# ---------------------------------------------------------------- plugins.toml


def test_disabled_builtin_names_the_file(tmp_path: Path) -> None:
    cfg = toml(tmp_path, '[plugins]\ndisabled = ["purenng:tcp6"]\n')
    reg = Registry(load_config(cfg))
    with pytest.raises(purenng.PluginError) as info:
        reg.transport("tcp6")
    assert str(cfg) in str(info.value)
    assert "disabled" in str(info.value)
    status, detail = status_of(reg, "transport", "tcp6", "purenng")
    assert status == "disabled"
    assert str(cfg) in detail
    # Only that name: its siblings from the same module still load ...
    assert reg.transport("tcp").schemes == ("tcp", "tcp4", "tcp6")
    # ... and loading them did not slip the disabled one in.
    with pytest.raises(purenng.PluginError, match="disabled"):
        reg.transport("tcp6")


def test_disabled_distribution(site: FakeSite, tmp_path: Path) -> None:
    site.transport_dist("fake-off", "fake_off_mod", "off1", "off2")
    cfg = toml(tmp_path, '[plugins]\ndisabled = ["fake-off"]\n')
    reg = Registry(load_config(cfg))
    for scheme in ("off1", "off2"):
        with pytest.raises(purenng.PluginError, match=f"disabled by {cfg}"):
            reg.transport(scheme)
        assert status_of(reg, "transport", scheme, "fake-off")[0] == "disabled"
    assert "fake_off_mod" not in sys.modules


def test_autoload_disabled_refuses_third_party_unless_enabled(
    site: FakeSite, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    site.transport_dist("fake-auto", "fake_auto_mod", "auto")
    monkeypatch.setenv("PURENNG_DISABLE_PLUGIN_AUTOLOAD", "1")
    reg = Registry(load_config())
    with pytest.raises(purenng.PluginError, match="PURENNG_DISABLE_PLUGIN_AUTOLOAD=1"):
        reg.transport("auto")
    assert status_of(reg, "transport", "auto", "fake-auto")[0] == "disabled"
    assert isinstance(reg.transport("tcp"), TCPTransport)  # built-ins still load
    cfg = toml(tmp_path, '[plugins]\nenabled = ["fake-auto"]\n')
    reg = Registry(load_config(cfg))
    assert reg.transport("auto").schemes == ("auto",)


def test_conflict_needs_a_winner(site: FakeSite, tmp_path: Path) -> None:
    site.transport_dist("fake-a", "fake_a_mod", "dup")
    site.transport_dist("fake-b", "fake_b_mod", "dup")
    reg = Registry(load_config())
    with pytest.raises(purenng.PluginError) as info:
        reg.transport("dup")
    msg = str(info.value)
    assert "fake-a" in msg
    assert "fake-b" in msg
    assert '[schemes] dup = "<distribution>"' in msg
    for winner, loser in (("fake-a", "fake-b"), ("fake-b", "fake-a")):
        cfg = toml(tmp_path, f'[schemes]\ndup = "{winner}"\n', f"{winner}.toml")
        reg = Registry(load_config(cfg))
        assert type(reg.transport("dup")).__module__ == winner.replace("-", "_") + "_mod"
        assert status_of(reg, "transport", "dup", winner)[0] == "loaded"
        assert status_of(reg, "transport", "dup", loser)[0] == "shadowed"


def test_winner_that_does_not_provide_the_scheme(site: FakeSite, tmp_path: Path) -> None:
    site.transport_dist("fake-a", "fake_a_mod", "dup")
    site.transport_dist("fake-b", "fake_b_mod", "dup")
    cfg = toml(tmp_path, '[schemes]\ndup = "fake-c"\n')
    with pytest.raises(purenng.PluginError, match="gives scheme 'dup' to 'fake-c'"):
        Registry(load_config(cfg)).transport("dup")


def test_builtin_wins_over_third_party_unless_configured(site: FakeSite, tmp_path: Path) -> None:
    site.transport_dist("fake-tcp", "fake_tcp_mod", "tcp")
    reg = Registry(load_config())
    assert type(reg.transport("tcp")) is TCPTransport
    cfg = toml(tmp_path, '[schemes]\ntcp = "fake-tcp"\n')
    reg = Registry(load_config(cfg))
    assert type(reg.transport("tcp")).__module__ == "fake_tcp_mod"
    # tcp4 stays with purenng: fake-tcp does not claim it.
    assert type(reg.transport("tcp4")) is TCPTransport


def test_plugin_cannot_take_an_undeclared_builtin_name(site: FakeSite) -> None:
    """A plugin loaded for its own scheme that also registers ``tcp`` does not
    take ``tcp`` away from purenng, whatever the order of first use."""
    site.dist(
        "fake-greedy",
        transports={"greedy": "fake_greedy_mod"},
        modules={"fake_greedy_mod": TRANSPORT_MODULE.format(schemes=("greedy", "tcp"))},
    )
    reg = Registry(load_config())
    assert type(reg.transport("greedy")).__module__ == "fake_greedy_mod"
    assert type(reg.transport("tcp")) is TCPTransport


def test_protocol_conflict_uses_protocols_table(site: FakeSite, tmp_path: Path) -> None:
    source = """
        from purenng.plugin import hookimpl
        from purenng.protocols.pair0 import Pair0Protocol

        class Mine(Pair0Protocol):
            name = "dup0"

        @hookimpl
        def purenng_register_protocols(registry):
            registry.add_protocol(Mine)
        """
    site.dist("fake-p", protocols={"dup0": "fake_p_mod"}, modules={"fake_p_mod": source})
    site.dist("fake-q", protocols={"dup0": "fake_q_mod"}, modules={"fake_q_mod": source})
    with pytest.raises(purenng.PluginError, match=r'\[protocols\] dup0 = "<distribution>"'):
        Registry(load_config()).protocol("dup0")
    cfg = toml(tmp_path, '[protocols]\ndup0 = "fake-q"\n')
    assert Registry(load_config(cfg)).protocol("dup0").__module__ == "fake_q_mod"


# ---------------------------------------------------------------- precedence


@pytest.mark.parametrize(
    ("layers", "winner"),
    [
        ({"user"}, "fake-user"),
        ({"user", "env"}, "fake-env"),
        ({"user", "env", "explicit"}, "fake-explicit"),
        ({"env", "explicit"}, "fake-explicit"),
        ({"user", "explicit"}, "fake-explicit"),
    ],
)
def test_precedence_of_configuration_files(
    site: FakeSite,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    global_registry: None,
    layers: set[str],
    winner: str,
) -> None:
    """explicit path > PURENNG_PLUGINS > user file > shipped default, key by key."""
    for layer in ("user", "env", "explicit"):
        site.transport_dist(f"fake-{layer}", f"fake_{layer}_mod", "dup")
    files = {}
    for layer in layers:
        files[layer] = toml(tmp_path, f'[schemes]\ndup = "fake-{layer}"\n', f"{layer}.toml")
    if "user" in layers:
        user = tmp_path / "xdg" / "purenng" / "plugins.toml"
        user.parent.mkdir(parents=True)
        files["user"].rename(user)
        files["user"] = user
    if "env" in layers:
        monkeypatch.setenv("PURENNG_PLUGINS", str(files["env"]))
    reg = purenng.configure_plugins(files.get("explicit"))
    assert registry_mod.get_registry() is reg
    assert type(reg.transport("dup")).__module__ == winner.replace("-", "_") + "_mod"
    # The shipped default always comes first, and keeps the keys nobody overrode.
    assert reg.config.files[0].name == "plugins.toml"
    assert reg.config.files[1:] == [files[k] for k in ("user", "env", "explicit") if k in layers]
    assert reg.config.transport_defaults["tcp"]["tcp_nodelay"] is True


def test_transport_defaults_reach_the_socket(tmp_path: Path, global_registry: None) -> None:
    cfg = toml(tmp_path, "[transport.tcp]\ntcp_nodelay = false\ntcp_keepalive = true\n")
    purenng.configure_plugins(cfg)
    with purenng.Pair0() as s:
        lst = s.listen("tcp://127.0.0.1:0")
        assert lst.options["tcp_nodelay"] is False
        assert lst.options["tcp_keepalive"] is True


def test_bad_transport_default_fails_at_first_use(tmp_path: Path, global_registry: None) -> None:
    cfg = toml(tmp_path, "[transport.tcp]\ntcp_bogus = 1\n")
    purenng.configure_plugins(cfg)
    with purenng.Pair0() as s, pytest.raises(purenng.ConfigError) as info:
        s.listen("tcp://127.0.0.1:0")
    assert str(cfg) in str(info.value)
    assert "tcp_bogus" in str(info.value)


# ---------------------------------------------------------------- tracing


def test_trace_plugins_env() -> None:
    code = """
        import purenng
        purenng.Pair0().close()
        """
    traced = run_python(code, {"PURENNG_TRACE_PLUGINS": "1"})
    assert traced.returncode == 0, traced.stderr
    assert "purenng_register_protocols" in traced.stderr
    assert "purenng:purenng.protocols.pair0" in traced.stderr
    quiet = run_python(code, {"PURENNG_TRACE_PLUGINS": ""})
    assert quiet.returncode == 0
    assert "purenng_register" not in quiet.stderr
