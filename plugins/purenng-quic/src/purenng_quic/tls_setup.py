"""purenng's :class:`~purenng.TLSConfig` for QUIC: aioquic does its own TLS 1.3.

``tls+tcp://`` hands a config to OpenSSL through an ``ssl.SSLContext``.
QUIC's handshake runs inside aioquic instead, so the same fields are mapped
onto aioquic's :class:`~aioquic.quic.configuration.QuicConfiguration`, with
the same meaning and the same defaults:

* ``cert_file``/``cert_data`` (+ ``key_file``/``key_data``,
  ``key_password``): our certificate chain and key, required to listen.
* ``ca_file``/``ca_data``: what the peer's certificate must chain to; None:
  the system trust store (OpenSSL's default paths, else certifi's bundle).
* ``auth_mode`` None means the role's default: a dialer **requires** a valid
  server certificate carrying ``server_name`` or the URL's host; a listener
  asks for no client certificate.  ``"optional"``/``"required"`` on a
  listener ask for one (verified here once the handshake is over, since
  aioquic's server does not verify clients); on a dialer ``"optional"`` and
  ``"none"`` accept any server certificate, as with tls+tcp.
* ``min_version``/``max_version``: QUIC is TLS 1.3 only, so a config that
  caps the version at ``"1.2"`` is refused.
* ``engine`` does not apply (no ``ssl.SSLContext`` is made).

Files are read, and keys decrypted, once per config (cached by the config
object, which is immutable); a field that does not load raises
:class:`~purenng.BadOption` naming it, at listen or dial time.
"""

from __future__ import annotations

import os
import re
import ssl
import threading
import weakref
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aioquic.quic.configuration import QuicConfiguration
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtensionOID, NameOID
from purenng.plugin import BadOption, TLSConfig

if TYPE_CHECKING:
    import datetime as dt
    from collections.abc import Sequence

__all__ = [
    "Material",
    "client_configuration",
    "load_material",
    "peer_certificate_dict",
    "server_configuration",
    "verify_client",
]

_KEY_BLOCK = re.compile(
    rb"-----BEGIN ([A-Z ]*?)PRIVATE KEY-----.+?-----END \1PRIVATE KEY-----", re.S
)


@dataclass(frozen=True)
class Material:
    """What a config's files and data load to.

    Attributes:
        certificate: Our leaf certificate, or None.
        chain: The intermediate certificates after it.
        private_key: Our key, or None.
        cadata: Trusted CA certificates as PEM (``ca_data``, or DER made PEM).
        cafile: A PEM file of trusted CA certificates.
        capath: A directory of them (the system store).
    """

    certificate: Any
    chain: list[Any]
    private_key: Any
    cadata: bytes | None
    cafile: str | None
    capath: str | None


_cache: weakref.WeakKeyDictionary[TLSConfig, Material] = weakref.WeakKeyDictionary()
_lock = threading.Lock()


def _read(name: str, path: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as exc:
        raise BadOption(f"{name}: cannot read {path!r}: {exc.strerror}") from None


def _as_bytes(value: bytes | str | None) -> bytes | None:
    return value.encode("ascii") if isinstance(value, str) else value


def _certificates(name: str, pem: bytes) -> list[Any]:
    try:
        certs = x509.load_pem_x509_certificates(pem)
    except ValueError as exc:
        raise BadOption(f"{name}: no usable PEM certificate: {exc}") from None
    return list(certs)


def _key(name: str, pem: bytes, password: bytes | str | None) -> Any:
    match = _KEY_BLOCK.search(pem)
    if match is None:
        raise BadOption(f"{name}: no PEM private key (-----BEGIN ... PRIVATE KEY-----)")
    pw = password.encode("utf-8") if isinstance(password, str) else password
    try:
        return serialization.load_pem_private_key(match.group(0), password=pw)
    except TypeError as exc:  # a password for an unencrypted key, or none for an encrypted one
        raise BadOption(f"key_password: {exc}") from None
    except ValueError as exc:
        if pw is not None and "decrypt" in str(exc).lower():
            raise BadOption(f"{name}: cannot decrypt the private key (key_password)") from None
        raise BadOption(f"{name}: cannot load the private key: {exc}") from None


def _system_store() -> tuple[str | None, str | None]:
    paths = ssl.get_default_verify_paths()
    cafile = paths.cafile if paths.cafile and os.path.isfile(paths.cafile) else None
    capath = paths.capath if paths.capath and os.path.isdir(paths.capath) else None
    return cafile, capath  # both None: aioquic falls back to certifi's bundle


def _load(cfg: TLSConfig) -> Material:
    if cfg.max_version == "1.2":
        raise BadOption("max_version: QUIC runs TLS 1.3 only; '1.2' leaves nothing to use")
    certificate: Any = None
    chain: list[Any] = []
    private_key: Any = None
    if cfg.has_certificate:
        if cfg.cert_file is not None:
            cert_name, cert_pem = "cert_file", _read("cert_file", os.fspath(cfg.cert_file))
        else:
            cert_name, cert_pem = "cert_data", _as_bytes(cfg.cert_data) or b""
        certs = _certificates(cert_name, cert_pem)
        if not certs:
            raise BadOption(f"{cert_name}: no PEM certificate found")
        certificate, chain = certs[0], certs[1:]
        if cfg.key_file is not None:
            key_name, key_pem = "key_file", _read("key_file", os.fspath(cfg.key_file))
        elif cfg.key_data is not None:
            key_name, key_pem = "key_data", _as_bytes(cfg.key_data) or b""
        else:
            key_name, key_pem = cert_name, cert_pem
            if _KEY_BLOCK.search(cert_pem) is None:
                raise BadOption(f"{cert_name}: holds no private key; give key_file or key_data")
        private_key = _key(key_name, key_pem, cfg.key_password)
        if private_key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        ) != certificate.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        ):
            raise BadOption(
                f"{key_name}: the private key does not match the certificate in {cert_name}"
            )
    cadata: bytes | None = None
    cafile: str | None = None
    capath: str | None = None
    if cfg.ca_file is not None:
        cafile = os.fspath(cfg.ca_file)
        if not _certificates("ca_file", _read("ca_file", cafile)):
            raise BadOption(f"ca_file: no PEM certificate in {cafile!r}")
    elif cfg.ca_data is not None:
        data = _as_bytes(cfg.ca_data) or b""
        if b"-----BEGIN" not in data:
            data = ssl.DER_cert_to_PEM_cert(data).encode("ascii")
        _certificates("ca_data", data)
        cadata = data
    else:
        cafile, capath = _system_store()
    return Material(certificate, chain, private_key, cadata, cafile, capath)


def load_material(cfg: TLSConfig) -> Material:
    """Load (once per config) what ``cfg`` names.

    Raises:
        BadOption: a field does not load; the message names it.
    """
    with _lock:
        material = _cache.get(cfg)
        if material is None:
            material = _load(cfg)
            _cache[cfg] = material
        return material


def _base(
    material: Material,
    *,
    is_client: bool,
    alpn: str,
    idle_timeout: float,
    max_datagram_size: int,
    window: int,
) -> QuicConfiguration:
    qc = QuicConfiguration(
        is_client=is_client,
        alpn_protocols=[alpn],
        idle_timeout=idle_timeout,
        max_datagram_size=max_datagram_size,
        max_stream_data=window,
        # The connection-wide limit never binds before the stream's (one stream).
        max_data=2 * window,
    )
    qc.certificate = material.certificate
    qc.certificate_chain = list(material.chain)
    qc.private_key = material.private_key
    qc.cadata = material.cadata
    qc.cafile = material.cafile
    qc.capath = material.capath
    return qc


def client_configuration(
    cfg: TLSConfig,
    server_name: str | None,
    *,
    alpn: str,
    idle_timeout: float,
    max_datagram_size: int,
    window: int,
) -> QuicConfiguration:
    """A dialer's QUIC configuration: verifies the server as ``cfg`` says."""
    qc = _base(
        load_material(cfg),
        is_client=True,
        alpn=alpn,
        idle_timeout=idle_timeout,
        max_datagram_size=max_datagram_size,
        window=window,
    )
    qc.server_name = server_name
    if cfg.mode_for(server_side=False) == "required":
        qc.verify_mode = ssl.CERT_REQUIRED
    else:
        qc.verify_mode = ssl.CERT_NONE
    return qc


def server_configuration(
    cfg: TLSConfig, *, alpn: str, idle_timeout: float, max_datagram_size: int, window: int
) -> QuicConfiguration:
    """A listener's QUIC configuration.

    Raises:
        BadOption: the config has no certificate, or a field does not load.
    """
    if not cfg.has_certificate:
        raise BadOption(
            "a QUIC listener needs a certificate: set tls_config=purenng.TLSConfig("
            "cert_file=..., key_file=...) (or cert_data/key_data)"
        )
    qc = _base(
        load_material(cfg),
        is_client=False,
        alpn=alpn,
        idle_timeout=idle_timeout,
        max_datagram_size=max_datagram_size,
        window=window,
    )
    qc.verify_mode = ssl.CERT_NONE  # clients are verified by verify_client()
    return qc


def verify_client(cfg: TLSConfig, certificate: Any, chain: Sequence[Any]) -> str | None:
    """Check a client's certificate as the listener's ``auth_mode`` says.

    Returns:
        None when the client may in, else the reason it may not.
    """
    mode = cfg.mode_for(server_side=True)
    if mode == "none":
        return None
    if certificate is None:
        return None if mode == "optional" else "the client sent no certificate"
    from aioquic.tls import Alert, verify_certificate

    material = load_material(cfg)
    try:
        verify_certificate(
            certificate=certificate,
            chain=list(chain),
            server_name=None,
            cadata=material.cadata,
            cafile=material.cafile,
            capath=material.capath,
        )
    except Alert as exc:
        return str(exc) or type(exc).__name__
    return None


def _name(name: Any) -> tuple[tuple[tuple[str, str], ...], ...]:
    labels = {
        NameOID.COMMON_NAME: "commonName",
        NameOID.ORGANIZATION_NAME: "organizationName",
        NameOID.ORGANIZATIONAL_UNIT_NAME: "organizationalUnitName",
        NameOID.COUNTRY_NAME: "countryName",
        NameOID.LOCALITY_NAME: "localityName",
        NameOID.STATE_OR_PROVINCE_NAME: "stateOrProvinceName",
    }
    return tuple(
        ((labels.get(attr.oid, attr.oid.dotted_string), str(attr.value)),) for attr in name
    )


def _when(t: dt.datetime) -> str:
    return f"{t:%b} {t.day:2d} {t:%H:%M:%S %Y} GMT"


def peer_certificate_dict(certificate: Any) -> dict[str, Any]:
    """A certificate in the form of ``ssl.SSLSocket.getpeercert()``, as tls+tcp reports it."""
    out: dict[str, Any] = {
        "subject": _name(certificate.subject),
        "issuer": _name(certificate.issuer),
        "version": certificate.version.value + 1,
        "serialNumber": f"{certificate.serial_number:X}",
        "notBefore": _when(certificate.not_valid_before_utc),
        "notAfter": _when(certificate.not_valid_after_utc),
    }
    try:
        sans = certificate.extensions.get_extension_for_oid(
            ExtensionOID.SUBJECT_ALTERNATIVE_NAME
        ).value
    except x509.ExtensionNotFound:
        return out
    alt: list[tuple[str, str]] = [("DNS", n) for n in sans.get_values_for_type(x509.DNSName)]
    alt += [("IP Address", str(ip)) for ip in sans.get_values_for_type(x509.IPAddress)]
    out["subjectAltName"] = tuple(alt)
    return out


def common_name(certificate: Any) -> str | None:
    """The subject's common name (NNG's ``tls-peer-cn``)."""
    attrs = certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(attrs[0].value) if attrs else None
