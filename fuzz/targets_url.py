"""Target for URL parsing: :func:`parse_url` and every transport's URL checks.

``url``: any text (the input decoded as UTF-8 with surrogate escapes, so
lone surrogates and every code point occur), optionally behind one of the
built-in schemes, goes through :func:`purenng.core.url.parse_url`, then the
owning transport's ``check_url`` and ``check_dial_url`` (tcp host:port,
ipc/unix/abstract paths, inproc names, tls+tcp, ws/wss with
:func:`purenng.transports.ws.parse_ws_url`).  Allowed: ``BadAddress``.
Properties: a parsed port lies in 0..65535; a ws target starts with ``/``;
``with_rest`` keeps the scheme.

Found and fixed (fuzz/crashes/url/): ``abstract://`` with a lone surrogate
raised ``UnicodeEncodeError`` from ``transports/ipc.py`` ``_address``;
surrogate escapes now stand for their bytes, other surrogates are
``BadAddress``.
"""

from __future__ import annotations

from purenng.core.errors import BadAddress
from purenng.core.registry import get_registry
from purenng.core.url import parse_host_port, parse_url
from purenng.transports.ws import parse_ws_url

from ._harness import Input, target

_SCHEMES = (
    "tcp",
    "tcp4",
    "tcp6",
    "ipc",
    "unix",
    "abstract",
    "inproc",
    "tls+tcp",
    "tls+tcp4",
    "tls+tcp6",
    "ws",
    "ws4",
    "ws6",
    "wss",
    "wss4",
    "wss6",
)
_transports: dict[str, object] = {}


def _transport(scheme: str) -> object:
    t = _transports.get(scheme)
    if t is None:
        t = _transports[scheme] = get_registry().transport(scheme)
    return t


@target(
    "url",
    allowed=(BadAddress,),
    modules=(
        "purenng.core.url",
        "purenng.transports.tcp",
        "purenng.transports.ipc",
        "purenng.transports.ws",
        "purenng.transports.tls_tcp",
    ),
    seeds=(
        b"\x00127.0.0.1:5555",
        b"\x01[::1]:0",
        b"\x0a[fe80::1%eth0]:80/path?x=1#frag",
        b"\x0d*:443/sp",
        b"\x03/tmp/x.sock",
        b"\x05name%00with%ffnul",
        b"\x06some-name",
        b"\x07localhost:4433",
        b"\xfftcp://host:99999",
        b"\xffws://:80",
        b"\xffnot a url",
    ),
    weight=2.5,
    max_len=512,
    dictionary=(
        b"://",
        b"[",
        b"]",
        b":",
        b"/",
        b"?",
        b"#",
        b"%",
        b"*",
        b"0",
        b"65536",
        b"\xc2\xb2",
    ),
)
def url(data: bytes) -> object:
    """Scheme byte (0xff: none, the text is the whole URL), then the text."""
    inp = Input(data)
    which = inp.u8()
    text = inp.rest().decode("utf-8", "surrogateescape")
    if which != 0xFF:
        text = f"{_SCHEMES[which % len(_SCHEMES)]}://{text}"
    u = parse_url(text)
    assert u.raw == text
    assert "://" in text
    assert u.with_rest(u.rest).scheme == u.scheme
    if u.scheme not in _SCHEMES:
        return ("other-scheme",)
    if u.scheme.startswith(("tcp", "tls", "ws")):
        try:
            hp = parse_host_port(u.with_rest(u.rest.partition("/")[0]), default_port=1)
        except BadAddress:
            pass
        else:
            assert 0 <= hp.port <= 65535
    if u.scheme.startswith("ws"):
        w = parse_ws_url(u)
        assert w.target.startswith("/")
        assert w.path.startswith("/")
        assert 0 <= w.port <= 65535
    t = _transport(u.scheme)
    t.check_url(u)  # type: ignore[attr-defined]
    t.check_dial_url(u)  # type: ignore[attr-defined]
    return (u.scheme, "ok")
