"""Pipes as the stream transports make them.

``Socket.pipes`` is typed as the base :class:`~purenng.core.pipe.Pipe`;
``extra(name)`` (the socket, TLS details, peer credentials) is a method of
the pipes the byte-stream transports make, :class:`SPStreamPipe`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from purenng.core.sp_stream import SPStreamPipe

if TYPE_CHECKING:
    from purenng.core.pipe import Pipe

__all__ = ["stream_pipe"]


def stream_pipe(pipe: Pipe) -> SPStreamPipe:
    """``pipe``, checked to be a tcp, ipc or tls+tcp pipe (an :class:`SPStreamPipe`)."""
    assert isinstance(pipe, SPStreamPipe), f"{pipe!r} is not an SP stream pipe"
    return pipe
