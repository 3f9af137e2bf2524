"""A TLS-capable NNG peer in its own process (run as a script), driven like nngpeer.py.

The same JSON-lines protocol as :mod:`nngpeer` (``ready``, then ``send``,
``recv``, ``wait_pipes``, ``close``), with TLS settings on top::

    python tlspeer.py --lib pynng|nng --proto PROTO (--listen URL | --dial URL)
                      [--cert PEM --key PEM] [--ca PEM] [--auth-mode none|optional|required]
                      [--server-name NAME] [--timeout S] [--lifetime S]

``--lib nng`` needs the ``nng-ssl`` package (the ``nng`` module built with
Mbed TLS).  It installs the same ``nng`` module as the plain ``nng``
package, so it lives in a venv of its own (``.venv-nngssl``, made by
``make nngssl``) and this script runs with that venv's Python.  Only the
standard library and :mod:`nngpeer` (same directory) are imported at module
level.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # type-checked as part of the tests package, run as a script
    from interop.nngpeer import NngPeer, PynngPeer, emit, error_text, handle
else:
    from nngpeer import NngPeer, PynngPeer, emit, error_text, handle


def _read(path: str | None) -> str | None:
    return Path(path).read_text() if path else None


class TlsPynngPeer(PynngPeer):
    """pynng (NNG 1.11, Mbed TLS bundled) with a TLS config per role."""

    def __init__(self, proto: str, timeout_ms: int, tls: dict[str, Any]) -> None:
        super().__init__(proto, timeout_ms)
        self.tls = tls

    def _config(self, server: bool) -> Any:
        p = self.mod
        t = self.tls
        modes = {
            "none": p.TLSConfig.AUTH_MODE_NONE,
            "optional": p.TLSConfig.AUTH_MODE_OPTIONAL,
            "required": p.TLSConfig.AUTH_MODE_REQUIRED,
        }
        kw: dict[str, Any] = {}
        if t["cert"]:
            kw["own_cert_string"] = _read(t["cert"])
            kw["own_key_string"] = _read(t["key"])
        if t["ca"]:
            kw["ca_string"] = _read(t["ca"])
        if t["auth_mode"]:
            kw["auth_mode"] = modes[t["auth_mode"]]
        if t["server_name"]:
            kw["server_name"] = t["server_name"]
        mode = p.TLSConfig.MODE_SERVER if server else p.TLSConfig.MODE_CLIENT
        return p.TLSConfig(mode, **kw)

    def listen(self, url: str) -> str:
        self.sock.tls_config = self._config(server=True)
        lst = self.sock.listen(url)
        scheme = url.split("://", 1)[0]
        return f"{scheme}://{lst.local_address}"

    def dial(self, url: str, block: bool) -> None:
        self.sock.tls_config = self._config(server=False)
        self.sock.dial(url, block=block)


class TlsNngPeer(NngPeer):
    """The ``nng`` module of nng-ssl (NNG 2.0-dev, Mbed TLS 4)."""

    def __init__(self, proto: str, timeout_ms: int, tls: dict[str, Any]) -> None:
        super().__init__(proto, timeout_ms)
        self.tls = tls

    def _config(self, server: bool) -> Any:
        n = self.mod
        t = self.tls
        kw: dict[str, Any] = {}
        if t["cert"]:
            kw["cert_pem"] = _read(t["cert"])
            kw["key_pem"] = _read(t["key"])
        if t["ca"]:
            kw["ca_pem"] = _read(t["ca"])
        if t["auth_mode"]:
            kw["auth_mode"] = {
                "none": n.TLS_AUTH_NONE,
                "optional": n.TLS_AUTH_OPTIONAL,
                "required": n.TLS_AUTH_REQUIRED,
            }[t["auth_mode"]]
        if server:
            return n.TlsConfig.for_server(**kw)
        return n.TlsConfig.for_client(server_name=t["server_name"], **kw)

    def listen(self, url: str) -> str:
        lst = self.sock.add_listener(url, tls=self._config(server=True))
        lst.start()
        scheme, rest = url.split("://", 1)
        host = rest.rsplit(":", 1)[0]
        return f"{scheme}://{host}:{lst.port}"

    def dial(self, url: str, block: bool) -> None:
        self.sock.add_dialer(url, tls=self._config(server=False)).start(block=block)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lib", choices=("pynng", "nng"), required=True)
    ap.add_argument("--proto", required=True)
    where = ap.add_mutually_exclusive_group(required=True)
    where.add_argument("--listen")
    where.add_argument("--dial")
    ap.add_argument("--cert")
    ap.add_argument("--key")
    ap.add_argument("--ca")
    ap.add_argument("--auth-mode", choices=("none", "optional", "required"))
    ap.add_argument("--server-name")
    ap.add_argument("--timeout", type=float, default=10.0)
    ap.add_argument("--lifetime", type=float, default=60.0)
    args = ap.parse_args(argv)

    watchdog = threading.Timer(args.lifetime, os._exit, (3,))
    watchdog.daemon = True
    watchdog.start()

    tls = {
        "cert": args.cert,
        "key": args.key,
        "ca": args.ca,
        "auth_mode": args.auth_mode,
        "server_name": args.server_name,
    }
    timeout_ms = int(args.timeout * 1000)
    try:
        peer: TlsPynngPeer | TlsNngPeer = (
            TlsPynngPeer(args.proto, timeout_ms, tls)
            if args.lib == "pynng"
            else TlsNngPeer(args.proto, timeout_ms, tls)
        )
        if args.listen:
            url = peer.listen(args.listen)
        else:
            peer.dial(args.dial, block=True)
            url = args.dial
    except Exception as exc:
        emit({"event": "error", "error": error_text(exc)})
        return 2
    emit({"event": "ready", "url": url})

    for line in sys.stdin:
        if not line.strip():
            continue
        try:
            cmd = json.loads(line)
        except ValueError as exc:
            emit({"ok": False, "error": error_text(exc)})
            continue
        if cmd.get("op") == "close":
            peer.close()
            emit({"ok": True})
            return 0
        try:
            emit(handle(peer, cmd, args.timeout))
        except Exception as exc:
            emit({"ok": False, "error": error_text(exc)})
    peer.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
