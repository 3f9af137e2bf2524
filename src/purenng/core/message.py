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

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .pipe import Pipe

#: What purenng accepts and returns as message data.
BytesLike = bytes | bytearray | memoryview

__all__ = ["BytesLike", "Message"]


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

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        body = bytes(self.body)
        shown = body[:32] + (b"..." if len(body) > 32 else b"")
        pipe: Any = self.pipe.id if self.pipe is not None else None
        return f"Message(body={shown!r}, header={bytes(self.header)!r}, pipe={pipe})"
