"""``purenng cert``: a development CA and certificates for tls+tcp:// and wss://.

What it does::

    purenng cert                       # ./purenng-certs/{ca,server}.{pem,key}
    purenng cert --client              # ... and client.{pem,key} for mutual auth
    purenng cert -o certs --host myhost --host 10.0.0.5

Rules:

* The CA is made once per directory: when ``ca.pem`` and ``ca.key`` already
  exist there they are reused, so certificates made later (``--client`` on a
  second run) are signed by the same CA and both sides keep trusting it.
* A server certificate names every ``--host`` (DNS names and IP addresses)
  in its subject alternative names; the default is ``localhost``,
  ``127.0.0.1`` and ``::1``.  A dialer checks the URL's host (or its
  ``server_name``) against that list.
* Existing server/client files are kept (and said so) unless ``--force``.
* Private keys are written readable by their owner only (0600).
* For development and tests only: the CA key sits next to the certificates.

It needs the ``cryptography`` package (``pip install 'purenng[cert]'``).
It prints how to use the files with :class:`purenng.TLSConfig`.

Exit status: 0 on success, 1 when a file cannot be written or read (or
``cryptography`` is missing), 2 on bad arguments.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import argparse

__all__ = ["HELP", "add_arguments", "run"]

#: The one-line help of ``purenng cert`` (see :class:`purenng.cli.command.Command`).
HELP = "make a development CA and TLS certificates (tls+tcp, wss)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare the options of ``purenng cert``."""
    parser.add_argument(
        "-o",
        "--out",
        default="purenng-certs",
        metavar="DIR",
        help="directory for the files (default: ./purenng-certs)",
    )
    parser.add_argument(
        "--host",
        action="append",
        metavar="NAME",
        help="a DNS name or IP address the server certificate is valid for "
        "(repeatable; default: localhost, 127.0.0.1, ::1)",
    )
    parser.add_argument(
        "--client", action="store_true", help="also make a client certificate (mutual TLS)"
    )
    parser.add_argument(
        "--server-name", default=None, metavar="CN", help="server certificate common name"
    )
    parser.add_argument(
        "--client-name", default="purenng client", metavar="CN", help="client common name"
    )
    parser.add_argument(
        "--days", type=int, default=365, help="validity of the new certificates (default 365)"
    )
    parser.add_argument("--force", action="store_true", help="overwrite existing files")


def run(args: argparse.Namespace) -> int:
    """Make the files; see the module docstring."""
    try:
        from ..certs import DEFAULT_HOSTS, CertificateAuthority, make_ca
    except ImportError as exc:  # pragma: no cover - import of the module itself is cheap
        print(f"purenng cert: {exc}", file=sys.stderr)
        return 1
    if args.days < 1:
        print("purenng cert: --days must be at least 1", file=sys.stderr)
        return 2
    hosts = tuple(args.host) if args.host else DEFAULT_HOSTS
    out = Path(args.out)
    ca_pem, ca_key = out / "ca.pem", out / "ca.key"
    leaves = [("server", out / "server.pem", out / "server.key")]
    if args.client:
        leaves.append(("client", out / "client.pem", out / "client.key"))
    try:
        if ca_pem.exists() and ca_key.exists():
            ca = CertificateAuthority.from_pem(ca_pem.read_bytes(), ca_key.read_bytes())
            print(f"using the existing CA in {ca_pem}")
        else:
            ca = make_ca(days=max(args.days, 365))
            out.mkdir(parents=True, exist_ok=True)
            from ..certs import Issued

            Issued(ca.cert_pem, ca.key_pem).write(ca_pem, ca_key)
            print(f"made a development CA: {ca_pem} (key {ca_key})")
        for role, cert_path, key_path in leaves:
            if (cert_path.exists() or key_path.exists()) and not args.force:
                print(f"keeping the existing {role} certificate {cert_path} (--force replaces it)")
                continue
            if role == "server":
                issued = ca.issue(
                    args.server_name or hosts[0], hosts=hosts, server=True, days=args.days
                )
                detail = f"for {', '.join(hosts)}"
            else:
                issued = ca.issue(
                    args.client_name, hosts=(), server=False, client=True, days=args.days
                )
                detail = f"CN {args.client_name!r}"
            issued.write(cert_path, key_path)
            print(f"made a {role} certificate {detail}: {cert_path} (key {key_path})")
    except ImportError as exc:
        print(f"purenng cert: {exc}", file=sys.stderr)
        return 1
    except (OSError, ValueError) as exc:
        print(f"purenng cert: {exc}", file=sys.stderr)
        return 1
    d = str(out)
    print()
    print("Use them with purenng.TLSConfig:")
    print(
        f'  listener: TLSConfig(cert_file="{d}/server.pem", key_file="{d}/server.key"'
        + (f', ca_file="{d}/ca.pem", auth_mode="required")' if args.client else ")")
    )
    print(
        f'  dialer:   TLSConfig(ca_file="{d}/ca.pem"'
        + (f', cert_file="{d}/client.pem", key_file="{d}/client.key")' if args.client else ")")
    )
    print("e.g. purenng.Rep0(listen='tls+tcp://127.0.0.1:5555', tls_config=...)")
    return 0
