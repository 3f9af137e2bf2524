"""Throwaway certificates for development, tests and benchmarks (needs ``cryptography``).

A public module: ``purenng cert``, ``purenng bench`` (its TLS runs),
``purenng soak`` (tls+tcp and wss) and the TLS tests all make their
certificates here (:mod:`purenng.testing` re-exports :func:`make_dev_certs`
and :class:`DevCerts` for test code)::

    from purenng.certs import make_dev_certs

    certs = make_dev_certs()                  # a CA, a server and a client certificate
    server = certs.server_config()            # TLSConfig for a listener
    client = certs.client_config()            # TLSConfig for a dialer (trusts the CA)

Rules:

* Keys are ECDSA P-256: small and fast to make (a few milliseconds), which
  keeps tests fast; every TLS 1.2/1.3 peer (OpenSSL, Mbed TLS) accepts them.
* A server certificate names ``localhost``, ``127.0.0.1`` and ``::1`` in its
  subject alternative names unless told otherwise, because verification
  checks the SAN, never the common name.
* Validity is "from one hour ago for 30 days" unless ``not_before`` /
  ``not_after`` say otherwise (an expired certificate is one whose
  ``not_after`` is in the past).
* Nothing is written to disk unless :meth:`DevCerts.write` is called; PEM
  data goes straight into :class:`~purenng.tls_config.TLSConfig` ``*_data`` fields.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Iterable

    from .tls_config import TLSConfig

__all__ = ["CertificateAuthority", "DevCerts", "Issued", "make_ca", "make_dev_certs"]

DEFAULT_HOSTS = ("localhost", "127.0.0.1", "::1")


def _crypto() -> Any:
    try:
        import cryptography  # noqa: F401
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(
            "making certificates needs the 'cryptography' package: pip install 'purenng[cert]'"
        ) from exc
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    return x509, hashes, serialization, ec, ExtendedKeyUsageOID, NameOID


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass(frozen=True)
class Issued:
    """A certificate and its private key, both PEM."""

    cert_pem: bytes
    key_pem: bytes

    def write(self, cert_path: str | os.PathLike[str], key_path: str | os.PathLike[str]) -> None:
        """Write both files; the key is readable by its owner only."""
        Path(cert_path).write_bytes(self.cert_pem)
        fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(self.key_pem)


class CertificateAuthority:
    """A self-signed CA that issues server and client certificates."""

    def __init__(self, cert: Any, key: Any) -> None:
        _, _, serialization, *_ = _crypto()
        self._cert = cert
        self._key = key
        self.cert_pem: bytes = cert.public_bytes(serialization.Encoding.PEM)
        self.key_pem: bytes = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    @classmethod
    def from_pem(cls, cert_pem: bytes, key_pem: bytes) -> CertificateAuthority:
        """An existing CA (its certificate and unencrypted private key, PEM).

        Raises:
            ValueError: the data is not a PEM certificate and key, or the
                certificate is not a CA's.
        """
        x509, _, serialization, *_ = _crypto()
        cert = x509.load_pem_x509_certificate(cert_pem)
        key = serialization.load_pem_private_key(key_pem, password=None)
        try:
            ca = cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
        except x509.ExtensionNotFound:
            ca = False
        if not ca:
            raise ValueError("the certificate is not a CA certificate (BasicConstraints ca=True)")
        return cls(cert, key)

    def issue(
        self,
        common_name: str,
        *,
        hosts: Iterable[str] = DEFAULT_HOSTS,
        server: bool = True,
        client: bool = False,
        not_before: dt.datetime | None = None,
        not_after: dt.datetime | None = None,
        days: int = 30,
    ) -> Issued:
        """A leaf certificate signed by this CA.

        Args:
            common_name: The subject CN (shown as ``tls_peer_cn``).
            hosts: DNS names and IP addresses for the subject alternative names.
            server: Usable as a TLS server certificate.
            client: Usable as a TLS client certificate.
            not_before: Start of validity (default: one hour ago).
            not_after: End of validity (default: ``days`` from now).
            days: Validity when ``not_after`` is None.
        """
        x509, hashes, serialization, ec, eku, name_oid = _crypto()
        key = ec.generate_private_key(ec.SECP256R1())
        start = not_before or _now() - dt.timedelta(hours=1)
        end = not_after or _now() + dt.timedelta(days=days)
        sans: list[Any] = []
        for h in hosts:
            try:
                sans.append(x509.IPAddress(ipaddress.ip_address(h)))
            except ValueError:
                sans.append(x509.DNSName(h))
        usages = []
        if server:
            usages.append(eku.SERVER_AUTH)
        if client:
            usages.append(eku.CLIENT_AUTH)
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(name_oid.COMMON_NAME, common_name)]))
            .issuer_name(self._cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(start)
            .not_valid_after(end)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=True,
                    key_cert_sign=False,
                    crl_sign=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self._key.public_key()),
                critical=False,
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        )
        if usages:
            builder = builder.add_extension(x509.ExtendedKeyUsage(usages), critical=False)
        if sans:
            builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        cert = builder.sign(self._key, hashes.SHA256())
        return Issued(
            cert.public_bytes(serialization.Encoding.PEM),
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            ),
        )


def make_ca(
    common_name: str = "purenng development CA", *, days: int = 365
) -> CertificateAuthority:
    """A fresh self-signed CA."""
    x509, hashes, _, ec, _, name_oid = _crypto()
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(name_oid.COMMON_NAME, common_name)])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(_now() - dt.timedelta(hours=1))
        .not_valid_after(_now() + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        .sign(key, hashes.SHA256())
    )
    return CertificateAuthority(cert, key)


@dataclass(frozen=True)
class DevCerts:
    """A CA with one server and one client certificate."""

    ca: CertificateAuthority
    server: Issued
    client: Issued

    def server_config(self, **changes: Any) -> TLSConfig:
        """A listener config: the server certificate, trusting the CA for clients."""
        from .tls_config import TLSConfig

        fields: dict[str, Any] = {
            "cert_data": self.server.cert_pem,
            "key_data": self.server.key_pem,
            "ca_data": self.ca.cert_pem,
        }
        fields.update(changes)
        return TLSConfig(**fields)

    def client_config(self, **changes: Any) -> TLSConfig:
        """A dialer config: the client certificate, trusting the CA for servers."""
        from .tls_config import TLSConfig

        fields: dict[str, Any] = {
            "cert_data": self.client.cert_pem,
            "key_data": self.client.key_pem,
            "ca_data": self.ca.cert_pem,
        }
        fields.update(changes)
        return TLSConfig(**fields)

    def write(self, directory: str | os.PathLike[str]) -> dict[str, Path]:
        """Write ``ca.pem``, ``ca.key``, ``server.pem``/``.key``, ``client.pem``/``.key``.

        Returns:
            The paths, by name (``"ca"``, ``"ca_key"``, ``"server"``, ...).
        """
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        paths = {
            "ca": d / "ca.pem",
            "ca_key": d / "ca.key",
            "server": d / "server.pem",
            "server_key": d / "server.key",
            "client": d / "client.pem",
            "client_key": d / "client.key",
        }
        Issued(self.ca.cert_pem, self.ca.key_pem).write(paths["ca"], paths["ca_key"])
        self.server.write(paths["server"], paths["server_key"])
        self.client.write(paths["client"], paths["client_key"])
        return paths


def make_dev_certs(
    hosts: Iterable[str] = DEFAULT_HOSTS,
    *,
    server_name: str = "localhost",
    client_name: str = "purenng client",
) -> DevCerts:
    """A new CA plus a server certificate for ``hosts`` and a client certificate."""
    ca = make_ca()
    hosts = tuple(hosts)
    return DevCerts(
        ca,
        ca.issue(server_name, hosts=hosts, server=True),
        ca.issue(client_name, hosts=(), server=False, client=True),
    )
