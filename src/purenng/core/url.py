"""SP URL parsing with errors a person can act on.

An SP address is ``scheme://rest``.  The scheme picks the transport plugin;
what ``rest`` means belongs to the transport (``host:port`` for tcp, a path for
ipc, a name for inproc).  This module splits the scheme off, and offers the
host/port parser that tcp-like transports share (IPv6 in brackets, an empty
host or ``*`` as the wildcard, port 0 for "any"), as described in
``reference/wire-protocols.md`` §3.2.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from .errors import BadAddress

__all__ = ["URL", "HostPort", "parse_host_port", "parse_url"]

_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]*)://(.*)$", re.DOTALL)


@dataclass(frozen=True, slots=True)
class URL:
    """A parsed SP URL.

    Attributes:
        scheme: The lower-cased scheme, e.g. ``"tcp"`` or ``"tls+tcp"``.
        rest: Everything after ``://``, untouched.
        raw: The URL as given.
    """

    scheme: str
    rest: str
    raw: str

    def __str__(self) -> str:
        return self.raw

    def with_rest(self, rest: str) -> URL:
        """The same URL with another ``rest`` (used to report a bound port)."""
        return replace(self, rest=rest, raw=f"{self.scheme}://{rest}")


def parse_url(url: str | URL) -> URL:
    """Split ``scheme://rest``.

    Raises:
        BadAddress: ``url`` is not a string of that form.
    """
    if isinstance(url, URL):
        return url
    if not isinstance(url, str):
        raise BadAddress(f"URL must be a str, not {type(url).__name__}")
    m = _SCHEME.match(url)
    if m is None:
        raise BadAddress(
            f"{url!r} is not an SP URL: expected scheme://address, e.g. tcp://127.0.0.1:5555"
        )
    return URL(scheme=m.group(1).lower(), rest=m.group(2), raw=url)


@dataclass(frozen=True, slots=True)
class HostPort:
    """A host and port from a tcp-like URL.

    Attributes:
        host: The host name or address, ``""`` for the wildcard.  IPv6 hosts
            are given without brackets.
        port: The port, 0 meaning "let the system choose" (listeners only).
    """

    host: str
    port: int

    @property
    def wildcard(self) -> bool:
        """True when the host means "every interface"."""
        return self.host in ("", "*", "0.0.0.0", "::")


def parse_host_port(url: URL, *, default_port: int | None = None) -> HostPort:
    """Parse ``host:port`` (or ``[v6]:port``) from a tcp-like URL.

    A path after the port is refused: tcp addresses have none.

    Raises:
        BadAddress: the address is malformed, with the reason.
    """
    rest = url.rest
    if "/" in rest:
        raise BadAddress(f"{url.raw!r}: a {url.scheme} address has no path")
    if rest.startswith("["):
        end = rest.find("]")
        if end < 0:
            raise BadAddress(f"{url.raw!r}: missing ']' after the IPv6 address")
        host = rest[1:end]
        tail = rest[end + 1 :]
        if tail and not tail.startswith(":"):
            raise BadAddress(f"{url.raw!r}: expected ':port' after ']'")
        port_text = tail[1:] if tail else ""
        if not host:
            raise BadAddress(f"{url.raw!r}: empty IPv6 address")
    else:
        host, sep, port_text = rest.rpartition(":")
        if not sep:
            host, port_text = rest, ""
        if ":" in host:
            raise BadAddress(f"{url.raw!r}: put an IPv6 address in brackets, e.g. tcp://[::1]:5555")
    if port_text == "":
        if default_port is None:
            raise BadAddress(f"{url.raw!r}: missing port, e.g. {url.scheme}://127.0.0.1:5555")
        return HostPort(host, default_port)
    # ASCII only: str.isdigit() also accepts "²" (int() refuses it) and "٣".
    if not (port_text.isascii() and port_text.isdigit()):
        raise BadAddress(f"{url.raw!r}: port {port_text!r} is not a number")
    port = int(port_text)
    if port > 65535:
        raise BadAddress(f"{url.raw!r}: port {port} is out of range 0..65535")
    return HostPort(host, port)
