"""The :class:`Message`: an SP header, a body and the pipe it travelled on.

Rules:

* ``body`` and ``header`` are bytes-like objects (``bytes``, ``bytearray`` or
  ``memoryview``).  A message handed to ``send_msg`` is never copied on the
  way out: transports write ``header`` then ``body`` as they are, so the caller
  must not mutate a mutable body until the send has completed.
* ``header`` holds the protocol header (a PAIR1 hop word, a REQ backtrace...).
  Cooked sockets fill and strip it themselves; raw sockets leave it to the
  application, as NNG does.
* ``pipe`` is set on received messages to the pipe they came from.  On a
  raw or polyamorous socket, setting it before sending picks the pipe.

The class uses ``__slots__``: one is created per message on every hot path.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from .pipe import Pipe

#: What purenng accepts and returns as message data.
BytesLike = bytes | bytearray | memoryview

__all__ = ["BytesLike", "Message", "check_bytes_like", "check_message"]


class Message:
    """One SP message.

    Args:
        body: The payload (bytes-like).
        header: The SP header that travels in front of the body on the wire.
        pipe: The pipe the message came from, or the pipe to send it on.
    """

    __slots__ = ("body", "header", "pipe")

    body: BytesLike
    header: BytesLike
    pipe: Pipe | None

    def __init__(
        self, body: BytesLike = b"", header: BytesLike = b"", pipe: Pipe | None = None
    ) -> None:
        self.body = body
        self.header = header
        self.pipe = pipe

    @property
    def bytes(self) -> bytes:
        """The body as an immutable ``bytes`` object (copied only if needed)."""
        body = self.body
        return body if type(body) is bytes else bytes(body)

    def __len__(self) -> int:
        return len(memoryview(self.header)) + len(memoryview(self.body))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Message):
            return NotImplemented
        return bytes(self.header) == bytes(other.header) and bytes(self.body) == bytes(other.body)

    __hash__: ClassVar[None] = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        body = bytes(self.body)
        shown = body[:32] + (b"..." if len(body) > 32 else b"")
        pipe: Any = self.pipe.id if self.pipe is not None else None
        return f"Message(body={shown!r}, header={bytes(self.header)!r}, pipe={pipe})"


def check_bytes_like(data: Any, what: str = "data") -> BytesLike:
    """``data`` as something a transport can write, or :class:`TypeError`.

    Sends call this in the caller's thread, before anything is queued: a
    ``str`` or an ``int`` that reached a transport would fail on the loop,
    after the length prefix was written, and corrupt the connection.  Any
    object with the buffer protocol is accepted; one whose items are not
    single bytes (an ``array('i')``, a multi-dimensional memoryview) is
    viewed as its raw bytes, so lengths on the wire are byte counts.
    """
    if isinstance(data, bytes | bytearray):
        return data
    if isinstance(data, str):
        raise TypeError(f"{what} must be bytes-like, not str (encode it first, e.g. s.encode())")
    try:
        view = memoryview(data)
    except TypeError:
        raise TypeError(f"{what} must be bytes-like, not {type(data).__name__}") from None
    if view.format == "B" and view.ndim == 1:
        return data if type(data) is memoryview else view
    if not view.c_contiguous:
        raise TypeError(f"{what}: a non-contiguous buffer cannot be sent; copy it with bytes()")
    return view.cast("B")


def check_message(msg: Any) -> Message:
    """Check a message about to be sent (see :func:`check_bytes_like`).

    The common case, ``bytes`` body and header, costs two type checks.
    """
    if type(msg) is not Message and not isinstance(msg, Message):
        raise TypeError(f"expected a purenng.Message, not {type(msg).__name__}")
    if type(msg.body) is not bytes:
        msg.body = check_bytes_like(msg.body, "message body")
    if type(msg.header) is not bytes:
        msg.header = check_bytes_like(msg.header, "message header")
    return msg
