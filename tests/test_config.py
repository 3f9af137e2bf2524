"""plugins.toml: the shipped default, layering and precedence, schema errors."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

import purenng
from purenng.core import registry as registry_mod
from purenng.core.config import config_paths, load_config
from purenng.core.registry import Registry
from purenng.transports.tcp import TCPTransport

REPO_DEFAULT = Path(__file__).resolve().parents[1] / "plugins.toml"


@pytest.fixture(autouse=True)
def clean_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty XDG_CONFIG_HOME and no PURENNG_PLUGINS; returns the user file's path."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    monkeypatch.delenv("PURENNG_PLUGINS", raising=False)
    return tmp_path / "xdg" / "purenng" / "plugins.toml"


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


def test_shipped_default_is_read_first() -> None:
    cfg = load_config()
    assert cfg.files == [REPO_DEFAULT]
    assert cfg.disabled == []
    assert cfg.enabled == []
    assert cfg.transport_defaults == {"tcp": {"tcp_nodelay": True, "tcp_keepalive": False}}


def test_shipped_default_values_are_valid_for_their_transport() -> None:
    reg = Registry(load_config())
    assert reg.transport_defaults(reg.transport("tcp")) == {
        "tcp_nodelay": True,
        "tcp_keepalive": False,
    }


def test_layers_in_order_and_key_by_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, clean_env: Path
) -> None:
    user = write(
        clean_env,
        """
        [plugins]
        disabled = ["from-user"]
        enabled = ["from-user"]
        [schemes]
        a = "user"
        b = "user"
        c = "user"
        [transport.tcp]
        tcp_keepalive = true
        """,
    )
    env = write(
        tmp_path / "env.toml",
        """
        [plugins]
        disabled = ["from-env"]
        [schemes]
        b = "env"
        c = "env"
        """,
    )
    explicit = write(tmp_path / "explicit.toml", '[schemes]\nc = "explicit"\n')
    monkeypatch.setenv("PURENNG_PLUGINS", str(env))
    assert config_paths(explicit) == [REPO_DEFAULT, user, env, explicit]
    cfg = load_config(explicit)
    assert cfg.files == [REPO_DEFAULT, user, env, explicit]
    assert cfg.scheme_winners == {"a": "user", "b": "env", "c": "explicit"}
    # Lists are replaced, not appended; keys a file does not mention are kept.
    assert cfg.disabled == ["from-env"]
    assert cfg.enabled == ["from-user"]
    assert cfg.transport_defaults["tcp"] == {"tcp_nodelay": True, "tcp_keepalive": True}
    assert cfg.origin["scheme:a"] == user
    assert cfg.origin["scheme:b"] == env
    assert cfg.origin["scheme:c"] == explicit
    assert cfg.origin["transport:tcp.tcp_nodelay"] == REPO_DEFAULT
    assert cfg.is_disabled("from-env", "x") == env
    assert cfg.is_disabled("from-user", "x") is None


def test_user_file_defaults_to_dot_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("XDG_CONFIG_HOME")
    monkeypatch.setenv("HOME", str(tmp_path))
    user = write(tmp_path / ".config" / "purenng" / "plugins.toml", '[schemes]\nx = "home"\n')
    assert load_config().files == [REPO_DEFAULT, user]


def test_missing_files_named_explicitly(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(purenng.ConfigError, match=r"nope\.toml.*no such file"):
        load_config(tmp_path / "nope.toml")
    monkeypatch.setenv("PURENNG_PLUGINS", str(tmp_path / "gone.toml"))
    with pytest.raises(purenng.ConfigError, match=r"PURENNG_PLUGINS=.*gone\.toml.*no such file"):
        load_config()


def test_configure_plugins_swaps_the_global_registry(tmp_path: Path) -> None:
    saved = registry_mod._registry
    try:
        cfg = write(tmp_path / "p.toml", "[transport.tcp]\ntcp_keepalive = true\n")
        reg = purenng.configure_plugins(cfg)
        assert registry_mod.get_registry() is reg
        assert reg.config.files[-1] == cfg
        with pytest.raises(purenng.ConfigError):
            purenng.configure_plugins(tmp_path / "missing.toml")
        assert registry_mod.get_registry() is reg  # a failed call changes nothing
    finally:
        registry_mod._registry = saved


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[plugins\n", r"not valid TOML"),
        ("[plugin]\ndisabled = []\n", r"unknown table\(s\) \['plugin'\]"),
        ("plugins = 3\n", r"\[plugins\] must be a table"),
        ("[plugins]\ndisable = []\n", r"unknown key\(s\) \['disable'\] in \[plugins\]"),
        ('[plugins]\ndisabled = "purenng-foo"\n', r"\[plugins\.disabled\] must be a list"),
        ("[plugins]\nenabled = [1]\n", r"\[plugins\.enabled\] must be a list of strings"),
        ("schemes = 1\n", r"\[schemes\] must be a table"),
        ("[schemes]\ntcp = 1\n", r"schemes\.tcp must be a distribution name"),
        ("[protocols]\nreq0 = true\n", r"protocols\.req0 must be a distribution name"),
        ("transport = 1\n", r"\[transport\] must contain tables"),
        ("[transport]\ntcp = 1\n", r"\[transport\.tcp\] must be a table"),
    ],
)
def test_schema_errors_name_file_and_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str, expected: str
) -> None:
    path = write(tmp_path / "bad.toml", text)
    with pytest.raises(purenng.ConfigError, match=expected) as info:
        load_config(path)
    assert str(info.value).startswith(f"{path}: ")
    # The same through the environment variable, and from the user file.
    monkeypatch.setenv("PURENNG_PLUGINS", str(path))
    with pytest.raises(purenng.ConfigError, match=expected):
        load_config()


def test_bad_user_file_is_an_error_too(clean_env: Path) -> None:
    write(clean_env, "[schemes]\ntcp = 1\n")
    with pytest.raises(purenng.ConfigError, match=rf"{clean_env}: schemes\.tcp"):
        load_config()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "[transport.tcp]\ntcp_nodelai = true\n",
            r"\[transport\.tcp\] tcp_nodelai: unknown option .*known: tcp_keepalive, tcp_nodelay",
        ),
        ("[transport.tcp]\ntcp_nodelay = 1\n", r"\[transport\.tcp\] tcp_nodelay: bad value 1"),
        ("[transport.tcp4]\nrecv_timeout = 1\n", r"\[transport\.tcp4\] recv_timeout: unknown"),
    ],
)
def test_bad_transport_defaults(tmp_path: Path, text: str, expected: str) -> None:
    """Checked against the transport's own option specs when it loads."""
    path = write(tmp_path / "bad.toml", text)
    reg = Registry(load_config(path))  # reading succeeds: tcp's options are not known yet
    tcp = reg.transport("tcp")
    assert isinstance(tcp, TCPTransport)
    with pytest.raises(purenng.ConfigError, match=expected) as info:
        reg.transport_defaults(tcp)
    assert str(info.value).startswith(f"{path}: ")


def test_distribution_names_are_normalised(tmp_path: Path) -> None:
    """`Purenng_Foo` in plugins.toml means the distribution `purenng-foo` (PEP 503)."""
    path = write(
        tmp_path / "p.toml",
        """
        [plugins]
        disabled = ["Purenng_Foo:foo", "Other.Dist"]
        enabled = ["My_Plugin"]
        [schemes]
        foo = "Purenng.Foo"
        """,
    )
    cfg = load_config(path)
    assert cfg.disabled == ["purenng-foo:foo", "other-dist"]
    assert cfg.enabled == ["my-plugin"]
    assert cfg.scheme_winners == {"foo": "purenng-foo"}
    assert cfg.is_disabled("purenng-foo", "foo") is not None
    assert cfg.is_disabled("purenng-foo", "bar") is None
    assert cfg.is_disabled("other-dist", "x") is not None
