"""TLS configuration (:class:`TLSConfig`) and TLS engines.

A :class:`TLSConfig` says *what* to present and *what* to trust: our
certificate and key, the CA certificates that may sign the peer's, whether the
peer must show a certificate (``auth_mode``), the name the server's
certificate must carry, the lowest TLS version.  It is transport-neutral:
``tls+tcp://`` and ``wss://`` both take it as their ``tls_config`` option.

A :class:`TLSEngine` says *how*: it turns a config into an
``ssl.SSLContext`` that asyncio can drive.  The built-in engine ``"ssl"``
uses the standard library's :mod:`ssl` (OpenSSL).  Other engines (a
system-trust-store engine, an HSM-backed one...) are plugins: a module with a
``purenng_register_tls_engines(registry)`` hookimpl calling
``registry.add_tls_engine(name, engine)``, declared in the entry-point group
``purenng.tls_engines``.  ``plugins.toml`` picks the default engine
(``[tls] engine = "ssl"``); a config may name its own (``engine=``).

Rules (as NNG, ``reference/wire-protocols.md`` §2.3):

* ``auth_mode`` left as None means the role's default: a dialer (client)
  **requires** a valid server certificate, a listener (server) does **not**
  ask clients for one.  ``"optional"`` on a listener asks for a client
  certificate and verifies it only if one is sent; on a dialer it means
  "encrypt, but accept any server certificate" (OpenSSL cannot verify a
  server certificate without failing on a bad one).
* A dialer checks the server's certificate against ``server_name``, or the
  URL's host when ``server_name`` is None; the same name goes out as SNI.
* TLS 1.2 and 1.3 only (``min_version`` ``"1.2"`` by default).
* Certificates and keys come from files (``cert_file``...) or memory
  (``cert_data``..., PEM as ``str`` or ``bytes``; ``ca_data`` may also be
  DER).  ``cert_file`` may hold the key too (NNG's "cert-key file").
* A config is immutable.  Files are read when the first context is built and
  the context is cached: to pick up renewed certificates, make a new config
  (``config.replace()``).

Errors: a bad config raises :class:`~purenng.core.errors.BadOption` naming the
field (``cert_file: no such file: ...``), at construction for what can be
checked without reading certificates, at :meth:`TLSConfig.check` (called when
the config is given to a socket) for the rest.
"""

from __future__ import annotations

import os
import ssl
import tempfile
import threading
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from typing import TYPE_CHECKING, Any, ClassVar

from .core.errors import BadOption, PluginError
from .core.hookspecs import hookimpl
from .core.options import OptionSpec

if TYPE_CHECKING:
    from .core.registry import Registry

__all__ = [
    "AUTH_MODES",
    "DEFAULT_ENGINE",
    "TLS_CONFIG_OPTION",
    "SSLEngine",
    "TLSConfig",
    "TLSEngine",
    "tls_config_value",
]

#: The purenng plugin API this module is written for (purenng.plugin.API_VERSION).
PURENNG_PLUGIN_API: str = "1.0"

#: The accepted ``auth_mode`` values.
AUTH_MODES = ("none", "optional", "required")
#: The engine used when neither the config nor plugins.toml names one.
DEFAULT_ENGINE = "ssl"
_VERSIONS = {"1.2": ssl.TLSVersion.TLSv1_2, "1.3": ssl.TLSVersion.TLSv1_3}

PathArg = str | os.PathLike[str]


def _fspath(name: str, value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str | os.PathLike):
        raise BadOption(f"{name}: expected a path (str or os.PathLike), got {type(value).__name__}")
    path = os.fspath(value)
    if not isinstance(path, str) or not path:
        raise BadOption(f"{name}: expected a non-empty path")
    if not os.path.isfile(path):
        raise BadOption(f"{name}: no such file: {path!r}")
    if not os.access(path, os.R_OK):
        raise BadOption(f"{name}: cannot read {path!r}")
    return path


def _pem_bytes(name: str, value: Any) -> bytes | None:
    if value is None:
        return None
    if isinstance(value, str):
        try:
            return value.encode("ascii")
        except UnicodeEncodeError:
            raise BadOption(f"{name}: PEM text must be ASCII") from None
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value)
    raise BadOption(f"{name}: expected PEM data as str or bytes, got {type(value).__name__}")


def _p(value: PathArg | None) -> str | None:
    """A path field as normalised by ``TLSConfig.__post_init__`` (typing aid)."""
    return None if value is None else os.fspath(value)


def _b(value: bytes | str | None) -> bytes | None:
    """A data field as normalised by ``TLSConfig.__post_init__`` (typing aid)."""
    return value.encode("ascii") if isinstance(value, str) else value


def _has_cert(pem: bytes) -> bool:
    return b"-----BEGIN CERTIFICATE-----" in pem


def _has_key(pem: bytes) -> bool:
    return b"-----BEGIN" in pem and b"PRIVATE KEY-----" in pem


def _check_pem_cert(name: str, pem: bytes) -> None:
    if not _has_cert(pem):
        raise BadOption(f"{name}: no PEM certificate (-----BEGIN CERTIFICATE-----) found")
    try:
        start = pem.index(b"-----BEGIN CERTIFICATE-----")
        end = pem.index(b"-----END CERTIFICATE-----", start) + len(b"-----END CERTIFICATE-----")
        der = ssl.PEM_cert_to_DER_cert(pem[start:end].decode("ascii"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadOption(f"{name}: malformed PEM certificate: {exc}") from None
    if len(der) < 2 or der[0] != 0x30:  # an X.509 certificate is a DER SEQUENCE
        raise BadOption(f"{name}: malformed PEM certificate: its base64 is not a certificate")


@dataclass(frozen=True, eq=False)
class TLSConfig:
    """How one side of a TLS connection authenticates itself and its peer.

    Args:
        cert_file: Our certificate chain (PEM), leaf first; may also hold the key.
        key_file: Our private key (PEM), if not in ``cert_file``.
        ca_file: CA certificates (PEM) that may sign the peer's certificate.
            None: the system's trust store.
        cert_data: Like ``cert_file``, as PEM text or bytes.
        key_data: Like ``key_file``, as PEM text or bytes.
        ca_data: Like ``ca_file``, as PEM text/bytes or DER bytes.
        key_password: Password of an encrypted private key.
        auth_mode: ``"none"``, ``"optional"`` or ``"required"``; None: the
            role's default (dialer ``"required"``, listener ``"none"``).
        server_name: The name the server certificate must carry and the SNI
            a dialer sends; None: the URL's host.
        min_version: Lowest TLS version, ``"1.2"`` (default) or ``"1.3"``.
        max_version: Highest TLS version, ``"1.2"`` or ``"1.3"``; None: the newest.
        engine: The :class:`TLSEngine` to use by name; None: plugins.toml's
            ``[tls] engine``, else ``"ssl"``.

    Raises:
        BadOption: a field is invalid; the message names it.
    """

    cert_file: PathArg | None = None
    key_file: PathArg | None = None
    ca_file: PathArg | None = None
    cert_data: bytes | str | None = field(default=None, repr=False)
    key_data: bytes | str | None = field(default=None, repr=False)
    ca_data: bytes | str | None = field(default=None, repr=False)
    key_password: bytes | str | None = field(default=None, repr=False)
    auth_mode: str | None = None
    server_name: str | None = None
    min_version: str = "1.2"
    max_version: str | None = None
    engine: str | None = None
    _cache: dict[tuple[Any, ...], ssl.SSLContext] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )
    _lock: threading.Lock = field(
        default_factory=threading.Lock, init=False, repr=False, compare=False
    )

    _FIELDS: ClassVar[tuple[str, ...]] = (
        "cert_file",
        "key_file",
        "ca_file",
        "cert_data",
        "key_data",
        "ca_data",
        "key_password",
        "auth_mode",
        "server_name",
        "min_version",
        "max_version",
        "engine",
    )

    def __post_init__(self) -> None:
        s = object.__setattr__
        for name in ("cert_file", "key_file", "ca_file"):
            s(self, name, _fspath(name, getattr(self, name)))
        for name in ("cert_data", "key_data", "ca_data"):
            s(self, name, _pem_bytes(name, getattr(self, name)))
        for what in ("cert", "key", "ca"):
            if getattr(self, f"{what}_file") is not None and getattr(self, f"{what}_data"):
                raise BadOption(f"give {what}_file or {what}_data, not both")
        cert_data, key_data, ca_data = _b(self.cert_data), _b(self.key_data), _b(self.ca_data)
        if cert_data is not None:
            _check_pem_cert("cert_data", cert_data)
        if key_data is not None and not _has_key(key_data):
            raise BadOption("key_data: no PEM private key (-----BEGIN ... PRIVATE KEY-----) found")
        if ca_data is not None and not ca_data:
            raise BadOption("ca_data: empty")
        if ca_data is not None:
            if b"-----BEGIN" in ca_data:
                if not ca_data.isascii():
                    raise BadOption("ca_data: PEM text must be ASCII")
                _check_pem_cert("ca_data", ca_data)
            elif ca_data[0] != 0x30:
                raise BadOption("ca_data: neither PEM certificates nor a DER certificate")
        if (self.key_file or self.key_data) and not (self.cert_file or self.cert_data):
            raise BadOption("key_file/key_data given without cert_file/cert_data")
        if self.key_password is not None and not isinstance(self.key_password, str | bytes):
            raise BadOption("key_password: expected str or bytes")
        if self.auth_mode is not None and self.auth_mode not in AUTH_MODES:
            raise BadOption(
                f"auth_mode: expected one of {', '.join(map(repr, AUTH_MODES))} or None, "
                f"got {self.auth_mode!r}"
            )
        if self.server_name is not None and (
            not isinstance(self.server_name, str) or not self.server_name
        ):
            raise BadOption(f"server_name: expected a non-empty str, got {self.server_name!r}")
        for name in ("min_version", "max_version"):
            v = getattr(self, name)
            if v is None and name == "max_version":
                continue
            if not isinstance(v, str) or v not in _VERSIONS:
                raise BadOption(f"{name}: expected '1.2' or '1.3', got {v!r}")
        if self.max_version is not None and self.max_version < self.min_version:
            raise BadOption(
                f"max_version {self.max_version!r} is below min_version {self.min_version!r}"
            )
        if self.engine is not None and (not isinstance(self.engine, str) or not self.engine):
            raise BadOption(f"engine: expected an engine name, got {self.engine!r}")

    # ------------------------------------------------------------ derived values

    @property
    def has_certificate(self) -> bool:
        """Whether the config carries a certificate of our own (needed to listen)."""
        return self.cert_file is not None or self.cert_data is not None

    def mode_for(self, server_side: bool) -> str:
        """The effective auth mode for a role (the default when ``auth_mode`` is None)."""
        if self.auth_mode is not None:
            return self.auth_mode
        return "none" if server_side else "required"

    def server_hostname(self, url_host: str | None) -> str | None:
        """The name a dialer to ``url_host`` sends as SNI and checks: ``server_name`` or the host.

        Returns None for an empty host (the caller then cannot verify a name).
        """
        if self.server_name is not None:
            return self.server_name
        host = (url_host or "").strip("[]")
        return host or None

    def replace(self, **changes: Any) -> TLSConfig:
        """A copy with some fields changed (and a fresh context cache)."""
        return replace(self, **changes)

    def as_dict(self) -> dict[str, Any]:
        """The fields as a dict (data fields included), e.g. to rebuild a config."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.init}

    def __reduce__(self) -> tuple[Any, ...]:
        # Pickle and copy the fields only: contexts and the lock stay behind.
        return (_rebuild, (self.as_dict(),))

    # ------------------------------------------------------------ contexts

    def _engine(self) -> TLSEngine:
        from .core.registry import get_registry

        engine: TLSEngine = get_registry().tls_engine(self.engine)
        return engine

    def _context(self, key: tuple[Any, ...], make: Any) -> ssl.SSLContext:
        with self._lock:
            ctx = self._cache.get(key)
            if ctx is None:
                ctx = make()
                if not isinstance(ctx, ssl.SSLContext):
                    raise BadOption(f"TLS engine returned {type(ctx).__name__}, not ssl.SSLContext")
                self._cache[key] = ctx
            return ctx

    def server_context(self) -> ssl.SSLContext:
        """The ``ssl.SSLContext`` for a listener (cached), made by the engine.

        Raises:
            BadOption: no certificate, or a file or datum that does not load.
        """
        engine = self._engine()
        return self._context(("server", id(engine)), lambda: engine.server_context(self))

    def client_context(self, server_hostname: str | None = None) -> ssl.SSLContext:
        """The ``ssl.SSLContext`` for a dialer (cached), made by the engine.

        Pass the same ``server_hostname`` to ``loop.create_connection`` (see
        :meth:`server_hostname`); with verification on and no name, the
        context refuses to connect.

        Raises:
            BadOption: a file or datum that does not load.
        """
        engine = self._engine()
        return self._context(
            ("client", id(engine), server_hostname),
            lambda: engine.client_context(self, server_hostname),
        )

    def check(self, *, server_side: bool | None = None) -> TLSConfig:
        """Load everything now so that a bad file fails here, not at connect time.

        Args:
            server_side: Check the listener side (True), the dialer side
                (False) or both that apply (None: the dialer side always, the
                listener side when there is a certificate).

        Returns:
            self, for chaining.
        """
        if server_side is None or not server_side:
            self.client_context(self.server_name)
        if server_side or (server_side is None and self.has_certificate):
            self.server_context()
        return self

    def __repr__(self) -> str:
        shown = []
        for name in self._FIELDS:
            value = getattr(self, name)
            if value is None or (name == "min_version" and value == "1.2"):
                continue
            if name.endswith(("_data", "_password")):
                value = "<hidden>" if name.endswith("_password") else f"<{len(value)} bytes>"
                shown.append(f"{name}={value}")
            else:
                shown.append(f"{name}={value!r}")
        return f"TLSConfig({', '.join(shown)})"


def _rebuild(fields: dict[str, Any]) -> TLSConfig:
    return TLSConfig(**fields)


def tls_config_value(value: Any) -> TLSConfig | None:
    """Option validator: a :class:`TLSConfig`, a mapping of its fields (plugins.toml), or None."""
    if value is None:
        return None
    if isinstance(value, TLSConfig):
        cfg = value
    elif isinstance(value, Mapping):
        known = set(TLSConfig._FIELDS)
        unknown = sorted(set(value) - known)
        if unknown:
            raise ValueError(f"unknown TLSConfig field(s) {unknown}; known: {sorted(known)}")
        try:
            cfg = TLSConfig(**value)
        except BadOption as exc:
            raise ValueError(str(exc)) from None
    else:
        raise TypeError("expected a purenng.TLSConfig (or a table of its fields), or None")
    try:
        cfg.check()
    except (BadOption, PluginError) as exc:
        # An unknown or broken engine is a bad value here (ConfigError from
        # plugins.toml, BadOption from a socket), not a failure of the caller.
        raise ValueError(str(exc)) from None
    return cfg


#: The ``tls_config`` option, for every transport that speaks TLS (tls+tcp, wss...).
TLS_CONFIG_OPTION = OptionSpec(
    "tls_config",
    tls_config_value,
    None,
    "a purenng.TLSConfig: certificates, trust and peer authentication",
)


# ---------------------------------------------------------------- engines


class TLSEngine(ABC):
    """Makes ``ssl.SSLContext`` objects from a :class:`TLSConfig`.

    asyncio drives the TLS session, so an engine's product must be an
    ``ssl.SSLContext`` (or a subclass).  Engines raise
    :class:`~purenng.core.errors.BadOption` naming the config field that does
    not load.  Results are cached by the config; engines need not cache.
    """

    @abstractmethod
    def server_context(self, config: TLSConfig) -> ssl.SSLContext:
        """A context for the listening side."""

    @abstractmethod
    def client_context(self, config: TLSConfig, server_hostname: str | None) -> ssl.SSLContext:
        """A context for the dialing side, checking ``server_hostname``."""


def _with_temp_file(data: bytes, use: Any) -> Any:
    """Run ``use(path)`` with ``data`` in a file only we can read, removed afterwards.

    OpenSSL (through :mod:`ssl`) loads certificate chains from files only.
    On Linux the file is an anonymous memory file and never touches a disk.
    """
    memfd = getattr(os, "memfd_create", None)
    if memfd is not None and os.path.isdir("/proc/self/fd"):
        fd = memfd("purenng-tls", getattr(os, "MFD_CLOEXEC", 0))
        try:
            os.write(fd, data)
            return use(f"/proc/self/fd/{fd}")
        finally:
            os.close(fd)
    with tempfile.TemporaryDirectory(prefix="purenng-tls-") as d:
        path = os.path.join(d, "pem")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, data)
        finally:
            os.close(fd)
        return use(path)


def _read(name: str, path: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as exc:
        raise BadOption(f"{name}: cannot read {path!r}: {exc.strerror}") from None


class SSLEngine(TLSEngine):
    """The built-in engine: the standard library's :mod:`ssl` (OpenSSL)."""

    def _base(self, config: TLSConfig, purpose: int) -> ssl.SSLContext:
        ctx = ssl.SSLContext(purpose)
        ctx.minimum_version = _VERSIONS[config.min_version]
        if config.max_version is not None:
            ctx.maximum_version = _VERSIONS[config.max_version]
        return ctx

    def _load_ca(self, ctx: ssl.SSLContext, config: TLSConfig, purpose: ssl.Purpose) -> None:
        ca_file, data = _p(config.ca_file), _b(config.ca_data)
        try:
            if ca_file is not None:
                what = "ca_file"
                pem = _read("ca_file", ca_file)
                if b"-----BEGIN" in pem:
                    _check_pem_cert("ca_file", pem)
                ctx.load_verify_locations(cafile=ca_file)
            elif data is not None:
                what = "ca_data"
                if b"-----BEGIN" in data:
                    ctx.load_verify_locations(cadata=data.decode("ascii"))
                else:
                    ctx.load_verify_locations(cadata=data)
            else:
                what = "the system trust store"
                ctx.load_default_certs(purpose)
        except (ssl.SSLError, ValueError) as exc:
            reason = getattr(exc, "reason", None) or exc
            raise BadOption(f"{what}: cannot load CA certificates: {reason}") from None

    def _load_own(self, ctx: ssl.SSLContext, config: TLSConfig) -> None:
        if not config.has_certificate:
            return
        password = config.key_password
        cert_file, key_file = _p(config.cert_file), _p(config.key_file)
        cert_name = "cert_file" if cert_file is not None else "cert_data"
        key_name = "key_file" if key_file is not None else "key_data"
        cert_pem = (
            _read("cert_file", cert_file) if cert_file is not None else _b(config.cert_data) or b""
        )
        _check_pem_cert(cert_name, cert_pem)
        key_pem = _read("key_file", key_file) if key_file is not None else _b(config.key_data)
        if key_pem is None:
            if not _has_key(cert_pem):
                raise BadOption(
                    f"{cert_name}: holds no private key; give key_file or key_data as well"
                )
            key_name = cert_name
        elif not _has_key(key_pem):
            raise BadOption(f"{key_name}: no PEM private key (-----BEGIN ... PRIVATE KEY-----)")

        def load(cert_path: str, key_path: str | None) -> None:
            try:
                ctx.load_cert_chain(cert_path, key_path, password)
            except ssl.SSLError as exc:
                reason = exc.reason or str(exc)
                if reason == "KEY_VALUES_MISMATCH":
                    raise BadOption(
                        f"{key_name}: the private key does not match the certificate in {cert_name}"
                    ) from None
                if "BAD_DECRYPT" in reason or "bad decrypt" in str(exc).lower():
                    raise BadOption(
                        f"{key_name}: cannot decrypt the private key (key_password)"
                    ) from None
                raise BadOption(
                    f"{cert_name}/{key_name}: cannot load the certificate and key: {reason}"
                ) from None
            except (TypeError, ValueError) as exc:
                raise BadOption(f"key_password: {exc}") from None

        if cert_file is not None and (key_file is not None or key_pem is None):
            load(cert_file, key_file)
        elif cert_file is not None:
            _with_temp_file(key_pem or b"", lambda kp: load(cert_file, kp))
        elif key_file is not None:
            _with_temp_file(cert_pem, lambda cp: load(cp, key_file))
        else:
            # Both from memory: one file holding the chain, then the key.
            blob = cert_pem + b"\n" + (key_pem or b"")
            _with_temp_file(blob, lambda p: load(p, None))

    def server_context(self, config: TLSConfig) -> ssl.SSLContext:
        if not config.has_certificate:
            raise BadOption(
                "a TLS listener needs a certificate: set cert_file (and key_file) or cert_data"
            )
        ctx = self._base(config, ssl.PROTOCOL_TLS_SERVER)
        # No TLS 1.3 session tickets: purenng never resumes sessions (nor does
        # NNG), and Mbed TLS 3.6+ clients in NNG 2.0 stall on unexpected ones.
        ctx.num_tickets = 0
        self._load_own(ctx, config)
        mode = config.mode_for(server_side=True)
        if mode == "none":
            ctx.verify_mode = ssl.CERT_NONE
        else:
            self._load_ca(ctx, config, ssl.Purpose.CLIENT_AUTH)
            ctx.verify_mode = ssl.CERT_OPTIONAL if mode == "optional" else ssl.CERT_REQUIRED
        return ctx

    def client_context(self, config: TLSConfig, server_hostname: str | None) -> ssl.SSLContext:
        ctx = self._base(config, ssl.PROTOCOL_TLS_CLIENT)
        self._load_own(ctx, config)
        if config.mode_for(server_side=False) == "required":
            self._load_ca(ctx, config, ssl.Purpose.SERVER_AUTH)
            ctx.check_hostname = True
            ctx.verify_mode = ssl.CERT_REQUIRED
        else:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        return ctx


@hookimpl
def purenng_register_tls_engines(registry: Registry) -> None:
    """Register the built-in ``"ssl"`` engine."""
    registry.add_tls_engine("ssl", SSLEngine())
