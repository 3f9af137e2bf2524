"""The HTTP side of a WebSocket connection: the upgrade request and its answer.

A WebSocket starts as an HTTP/1.1 request (RFC 6455 §4).  This module makes
and checks that exchange with h11 and nothing else, for every user of it:
the shared HTTP server (:mod:`purenng.http.service`) answers upgrades on the
paths where SP sockets or byte streams listen, and the ws/wss transport's
dialer (:mod:`purenng.transports.ws`) writes the request and reads the
answer.  What travels after the ``101`` (the framing) is the transport's
business (:mod:`purenng.transports._ws_codec`).

Rules (``reference/wire-protocols.md`` §2.4):

* h11 writes header names exactly as given, which matters: NNG's dialer
  compares ``Upgrade: websocket`` case-sensitively, and nanomsg's compares
  whole values.
* A server checks method (GET), no body, ``Upgrade: websocket``,
  ``Connection: Upgrade``, version 13, a well-formed key, and the
  subprotocol: the route's one must be offered, or, with no subprotocol
  (byte streams), none may be.  A failed check is a 4xx answer with a plain
  text reason, never an exception.
* A client checks the status, ``Upgrade``/``Connection``, the accept token
  and that the answered subprotocol is exactly the one asked for; it bounds
  the size of the answer's head.

No I/O: both sides are fed bytes and return bytes.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import h11

from ..core.errors import ConnectionRefused, ConnectionReset, ProtocolError

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

__all__ = [
    "SUBPROTOCOL_SUFFIX",
    "ClientHandshake",
    "UpgradeAnswer",
    "accept_token",
    "check_upgrade",
    "is_upgrade_request",
]

#: Appended to a protocol name to make an SP subprotocol (wire-protocols.md §2.4).
SUBPROTOCOL_SUFFIX = ".sp.nanomsg.org"

#: RFC 6455 §1.3: the GUID hashed with the client's key.
_ACCEPT_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def accept_token(key: bytes | str) -> bytes:
    """``Sec-WebSocket-Accept`` for a client's ``Sec-WebSocket-Key`` (RFC 6455 §4.2.2)."""
    raw = key.encode("ascii") if isinstance(key, str) else key
    return base64.b64encode(hashlib.sha1(raw.strip() + _ACCEPT_GUID).digest())


def _tokens(value: bytes) -> list[bytes]:
    """Comma-separated header tokens, stripped and lower-cased."""
    return [t.strip().lower() for t in value.split(b",") if t.strip()]


def _header_map(headers: Iterable[tuple[bytes, bytes]]) -> dict[bytes, bytes]:
    """Lower-case names to values, repeated headers joined with commas (RFC 9110 §5.3)."""
    out: dict[bytes, bytes] = {}
    for name, value in headers:
        key = name.lower()
        out[key] = out[key] + b", " + value if key in out else value
    return out


def _encode_headers(headers: Mapping[str, str] | None) -> list[tuple[bytes, bytes]]:
    if not headers:
        return []
    return [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]


# ---------------------------------------------------------------- server handshake


@dataclass
class UpgradeAnswer:
    """What to answer to an upgrade request on an SP path.

    Attributes:
        status: 101 to accept; otherwise the HTTP error status.
        headers: The response headers, names cased as they must go out.
        body: The text of an error response (empty for 101).
    """

    status: int
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    body: bytes = b""

    @property
    def accepted(self) -> bool:
        """True for a 101 answer."""
        return self.status == 101


def is_upgrade_request(request: h11.Request) -> bool:
    """Whether ``request`` asks for a WebSocket upgrade (``Upgrade: websocket``)."""
    for name, value in request.headers:
        if name == b"upgrade" and b"websocket" in _tokens(value):
            return True
    return False


def _refuse(status: int, why: str, *extra: tuple[bytes, bytes]) -> UpgradeAnswer:
    body = (why + "\n").encode()
    return UpgradeAnswer(status, [(b"Content-Type", b"text/plain; charset=utf-8"), *extra], body)


def check_upgrade(
    request: h11.Request,
    want_subprotocol: str | None,
    response_headers: Mapping[str, str] | None = None,
) -> UpgradeAnswer:
    """Decide on a WebSocket upgrade request for an SP path.

    The checks are NNG's (wire-protocols.md §2.4): GET only (405), no request
    body (413), ``Upgrade: websocket`` and ``Connection: upgrade`` (400),
    version 13 (400 with ``Sec-WebSocket-Version: 13``), a well-formed key
    (400), and the SP subprotocol offered (400).  Extensions are ignored:
    none is accepted.

    Args:
        request: The parsed request.
        want_subprotocol: Our own subprotocol (``<self_name>.sp.nanomsg.org``),
            or None (a byte-stream path without one): any offer is accepted
            and no subprotocol is answered, which RFC 6455 §4.2.2 allows.
        response_headers: Extra headers for the 101 answer.

    Returns:
        The answer; ``accepted`` when it is a 101.
    """
    what = (
        f"SP over WebSocket ({want_subprotocol})"
        if want_subprotocol and want_subprotocol.endswith(SUBPROTOCOL_SUFFIX)
        else "WebSocket"
    )
    if request.method != b"GET":
        return _refuse(405, f"{what} needs GET", (b"Allow", b"GET"))
    h = _header_map(request.headers)
    length = h.get(b"content-length", b"0").strip()
    if (length and length != b"0") or b"transfer-encoding" in h:
        return _refuse(413, "an upgrade request has no body")
    if b"websocket" not in _tokens(h.get(b"upgrade", b"")):
        return _refuse(
            400,
            f"this path speaks {what}; send a WebSocket upgrade request",
        )
    if b"upgrade" not in _tokens(h.get(b"connection", b"")):
        return _refuse(400, "missing 'Connection: Upgrade'")
    if h.get(b"sec-websocket-version", b"").strip() != b"13":
        return _refuse(400, "WebSocket version 13 is required", (b"Sec-WebSocket-Version", b"13"))
    key = h.get(b"sec-websocket-key", b"").strip()
    try:
        valid_key = len(base64.b64decode(key, validate=True)) == 16
    except (binascii.Error, ValueError):
        valid_key = False
    if not valid_key:
        return _refuse(400, "missing or malformed Sec-WebSocket-Key")
    offered = [t.decode("latin-1") for t in _tokens(h.get(b"sec-websocket-protocol", b""))]
    if want_subprotocol is not None and want_subprotocol.lower() not in offered:
        shown = ", ".join(offered) if offered else "none"
        kind = "SP protocol" if what != "WebSocket" else "subprotocol"
        return _refuse(
            400, f"{kind} mismatch: this path serves {want_subprotocol}, offered: {shown}"
        )
    chosen = (
        []
        if want_subprotocol is None
        else [(b"Sec-WebSocket-Protocol", want_subprotocol.encode("latin-1"))]
    )
    headers = [
        # Exact casing: NNG's dialer compares "websocket" with strcmp and
        # nanomsg's compares both whole values (wire-protocols.md §4 item 24).
        (b"Upgrade", b"websocket"),
        (b"Connection", b"Upgrade"),
        (b"Sec-WebSocket-Accept", accept_token(key)),
        *chosen,
        *_encode_headers(response_headers),
    ]
    return UpgradeAnswer(101, headers)


# ---------------------------------------------------------------- client handshake


def _head_size(event: h11.InformationalResponse | h11.Response) -> int:
    """About the bytes of a response head (status line and headers)."""
    return 16 + len(event.reason) + sum(len(k) + len(v) + 4 for k, v in event.headers.raw_items())


class ClientHandshake:
    """The dialer's side of the upgrade: one request out, one response in.

    Args:
        host: The ``Host`` header value (``host:port``).
        target: The request target (path and query).
        want_subprotocol: The subprotocol to ask for (the listener's protocol),
            or None: none is offered and the server must answer none.
        request_headers: Extra request headers.
        key: The ``Sec-WebSocket-Key`` (random when None; for tests).
        max_response_size: Largest response head accepted, bytes.

    Attributes:
        done: True once the answer is known (accepted or refused).
        error: Why the upgrade failed (``ConnectionRefused`` for 401, 403,
            404, 405 and 501 as NNG; ``ProtocolError`` otherwise), or None.
        status: The HTTP status received, or None.
        response_headers: The response headers (lower-case names).
        trailing: Bytes received after the 101 response: the first frames.
    """

    def __init__(
        self,
        host: str,
        target: str,
        want_subprotocol: str | None,
        request_headers: Mapping[str, str] | None = None,
        *,
        key: bytes | None = None,
        max_response_size: int = 16 * 1024,
    ) -> None:
        self.key: bytes = key if key is not None else base64.b64encode(os.urandom(16))
        self.subprotocol = want_subprotocol
        self._want = (
            [] if want_subprotocol is None else [want_subprotocol.lower().encode("latin-1")]
        )
        self.done: bool = False
        self.error: BaseException | None = None
        self.status: int | None = None
        self.response_headers: dict[bytes, bytes] = {}
        self.trailing: bytes = b""
        self._max_head = max_response_size
        self._h11 = h11.Connection(h11.CLIENT, max_incomplete_event_size=max_response_size)
        headers = [
            (b"Host", host.encode("idna") if not host.isascii() else host.encode()),
            (b"Upgrade", b"websocket"),
            (b"Connection", b"Upgrade"),
            (b"Sec-WebSocket-Key", self.key),
            (b"Sec-WebSocket-Version", b"13"),
            *(
                []
                if want_subprotocol is None
                else [(b"Sec-WebSocket-Protocol", want_subprotocol.encode("latin-1"))]
            ),
            *_encode_headers(request_headers),
        ]
        self._request = (
            self._h11.send(
                h11.Request(method=b"GET", target=target.encode("utf-8"), headers=headers)
            )
            or b""
        )
        self._request += self._h11.send(h11.EndOfMessage()) or b""
        self._body = bytearray()

    def request_bytes(self) -> bytes:
        """The whole upgrade request, to write once connected."""
        return self._request

    def feed(self, data: bytes) -> bool:
        """Take bytes of the answer; True once :attr:`done`.

        Never raises: a malformed answer sets :attr:`error`.
        """
        if self.done:
            self.trailing += data
            return True
        try:
            self._h11.receive_data(data)
            self._advance()
        except h11.RemoteProtocolError as exc:
            self._fail(ProtocolError(f"bad HTTP response to the WebSocket upgrade: {exc}"))
        return self.done

    def eof(self) -> None:
        """The server closed before answering completely."""
        if not self.done:
            self._fail(ConnectionReset("the server closed the connection during the upgrade"))

    def _fail(self, exc: BaseException) -> None:
        self.error = exc
        self.done = True

    def _advance(self) -> None:
        conn = self._h11
        while not self.done:
            event = conn.next_event()
            if event is h11.NEED_DATA or event is h11.PAUSED:
                return
            if isinstance(event, h11.InformationalResponse | h11.Response) and (
                _head_size(event) > self._max_head
            ):
                # h11 bounds a head still incomplete; one that came whole in
                # one read is measured here.
                self._fail(ProtocolError("the server's answer to the upgrade is too large"))
                return
            if isinstance(event, h11.InformationalResponse):
                if event.status_code == 101:
                    self._accepted(event)
                # Other 1xx (100 Continue) are ignored, as RFC 9110 says.
            elif isinstance(event, h11.Response):
                self.status = event.status_code
                self.response_headers = _header_map(event.headers)
            elif isinstance(event, h11.Data):
                if len(self._body) < 4096:
                    self._body += event.data[: 4096 - len(self._body)]
            elif isinstance(event, h11.EndOfMessage | h11.ConnectionClosed):
                self._refused()

    def _refused(self) -> None:
        status = self.status or 0
        why = f"WebSocket upgrade refused: HTTP {status}"
        if self.response_headers.get(b"content-type", b"").startswith(b"text/plain"):
            # A short plain-text reason (purenng's own refusals say what was wrong).
            text = " ".join(bytes(self._body).decode("utf-8", "replace").split())
            if text:
                why += f": {text[:300]}"
        if status in (401, 403, 404, 405, 501):
            self._fail(ConnectionRefused(why))
        else:
            self._fail(ProtocolError(why))

    def _accepted(self, event: h11.InformationalResponse) -> None:
        self.status = 101
        h = self.response_headers = _header_map(event.headers)
        if b"websocket" not in _tokens(h.get(b"upgrade", b"")):
            self._fail(ProtocolError("101 response without 'Upgrade: websocket'"))
        elif b"upgrade" not in _tokens(h.get(b"connection", b"")):
            self._fail(ProtocolError("101 response without 'Connection: Upgrade'"))
        elif h.get(b"sec-websocket-accept", b"").strip() != accept_token(self.key):
            self._fail(ProtocolError("101 response with a wrong Sec-WebSocket-Accept"))
        elif _tokens(h.get(b"sec-websocket-protocol", b"")) != self._want:
            got = h.get(b"sec-websocket-protocol", b"").decode("latin-1") or "none"
            self._fail(
                ProtocolError(
                    f"server answered subprotocol {got}, expected {self.subprotocol or 'none'}"
                )
            )
        elif b"sec-websocket-extensions" in h:
            self._fail(ProtocolError("server enabled a WebSocket extension nobody offered"))
        else:
            self.done = True
            self.trailing = self._h11.trailing_data[0]


# ---------------------------------------------------------------- framing
