"""The public streaming API: raw byte streams over purenng's transports.

For applications that are not SP at all but want purenng's addressing and
transports (tcp, ipc, tls+tcp, and any stream transport plugin)::

    import purenng.stream

    async def serve():
        async with await purenng.stream.listen("tls+tcp://127.0.0.1:0", tls_config=cfg) as lst:
            print("listening on", lst.url)
            conn = await lst.accept()
            data = await conn.read()
            conn.write(data.upper())
            await conn.drain()
            await conn.aclose()

    async def client(url):
        async with await purenng.stream.dial(url, tls_config=client_cfg) as conn:
            conn.write(b"hello")
            print(await conn.read_exactly(5))

Rules:

* Byte streams only: nothing is framed, no SP header is exchanged.  What one
  side writes arrives in order, in chunks of any size, at the other.
* Options are the transport's own (``tcp_nodelay``, ``tls_config``,
  ``ipc_permissions``...), with plugins.toml's ``[transport.X]`` defaults
  underneath, exactly as for sockets.  An option the transport does not
  declare raises :class:`~purenng.core.errors.BadOption`.
* asyncio only: call these coroutines on a running asyncio loop; the streams
  and listeners they return belong to that loop (see
  :mod:`purenng.core.byte_stream`).
* Message transports (inproc, ws, udp) carry messages, not bytes.  One that
  can also give byte streams says so by having ``dial_stream(url, options)``
  and ``listen_stream(url, options)`` coroutines returning a
  :class:`~purenng.core.byte_stream.Stream` and a
  :class:`~purenng.core.byte_stream.StreamListener`; the others raise
  :class:`~purenng.core.errors.NotSupported`.

The returned objects: a :class:`~purenng.core.byte_stream.Stream` (``read``,
``read_exactly``, ``write``, ``drain``, ``close``/``aclose``,
``local_address``, ``remote_address``, ``extra(name)``, async context
manager) and a :class:`Listener` (``accept``, ``url``, ``port``,
``local_address``, ``close``/``aclose``, async iteration over incoming
streams, async context manager).
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from .core.byte_stream import Stream, StreamListener
from .core.errors import BadOption, NotSupported, Timeout
from .core.options import validate
from .core.registry import get_registry
from .core.transport import StreamTransport
from .core.url import parse_url

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from .core.transport import Transport
    from .core.url import URL

__all__ = ["Listener", "Stream", "StreamListener", "dial", "listen"]


def _options(transport: Transport, url: URL, given: dict[str, Any]) -> dict[str, Any]:
    opts: dict[str, Any] = {k: spec.default for k, spec in transport.option_specs.items()}
    opts.update(get_registry().transport_defaults(transport))
    for k, v in given.items():
        spec = transport.option_specs.get(k)
        if spec is None:
            known = ", ".join(sorted(transport.option_specs)) or "none"
            raise BadOption(f"unknown option {k!r} for a {url.scheme} stream (known: {known})")
        opts[k] = validate(spec, v)
    return opts


def _resolve(
    url: str, options: dict[str, Any], *, dialing: bool
) -> tuple[Any, URL, dict[str, Any]]:
    u = parse_url(url)
    transport = get_registry().transport(u.scheme)
    if not isinstance(transport, StreamTransport) and not hasattr(
        transport, "dial_stream" if dialing else "listen_stream"
    ):
        raise NotSupported(
            f"{u.scheme}:// carries messages, not byte streams; "
            "use a socket, or a stream transport such as tcp://, ipc:// or tls+tcp://"
        )
    if dialing:
        transport.check_dial_url(u)
    else:
        transport.check_url(u)
    return transport, u, _options(transport, u, options)


async def dial(url: str, *, timeout: float | None = None, **options: Any) -> Stream:
    """Connect to ``url`` and return the byte stream.

    Args:
        url: E.g. ``"tcp://127.0.0.1:5555"``, ``"ipc:///tmp/x.sock"``,
            ``"tls+tcp://server.example:5555"``.
        timeout: Seconds to wait for the connection (and TLS handshake); None: no limit.
        **options: Transport options (``tcp_nodelay``, ``tls_config``...).

    Raises:
        BadAddress: the URL is malformed or cannot be dialed.
        BadOption: an unknown option or a bad value.
        ConnectionRefused: nobody listens there.
        TLSError: the TLS handshake failed (the message says why).
        Timeout: ``timeout`` passed first.
        NotSupported: the scheme's transport carries messages only.
    """
    transport, u, opts = _resolve(url, options, dialing=True)
    if isinstance(transport, StreamTransport):
        coro = transport.dial(u, opts)
    else:
        coro = transport.dial_stream(u, opts)
    if timeout is None:
        stream: Stream = await coro
        return stream
    try:
        async with asyncio.timeout(timeout):
            stream = await coro
    except TimeoutError as exc:
        if isinstance(exc, Timeout):
            raise
        raise Timeout(f"{url}: not connected within {timeout:g} s") from None
    return stream


async def listen(url: str, **options: Any) -> Listener:
    """Bind ``url`` and return a :class:`Listener` to accept byte streams from.

    Raises:
        BadAddress: the URL is malformed.
        BadOption: an unknown option or a bad value (e.g. tls+tcp without a certificate).
        AddressInUse: the address is taken.
        NotSupported: the scheme's transport carries messages only.
    """
    transport, u, opts = _resolve(url, options, dialing=False)
    if isinstance(transport, StreamTransport):
        inner = await transport.listen(u, opts)
    else:
        inner = await transport.listen_stream(u, opts)
    return Listener(inner)


class Listener:
    """A bound address that yields incoming byte streams.

    Streams wait in a queue until :meth:`accept` takes them.  ``async for conn
    in listener`` accepts until the listener is closed.
    """

    def __init__(self, inner: StreamListener) -> None:
        self._inner = inner

    async def accept(self) -> Stream:
        """The next incoming stream.

        Raises:
            Closed: the listener was closed.
        """
        return await self._inner.accept()

    def close(self) -> None:
        """Stop listening; idempotent.  Streams already accepted live on."""
        self._inner.close()

    async def aclose(self) -> None:
        """Stop listening and wait until the address is released."""
        await self._inner.aclose()

    @property
    def url(self) -> str:
        """The bound URL, with the real port when port 0 was asked for."""
        return self._inner.url

    @property
    def local_address(self) -> Any:
        """The bound address as the transport reports it."""
        return self._inner.local_address

    @property
    def port(self) -> int | None:
        """The bound port (tcp-like transports), else None."""
        addr = self.local_address
        if isinstance(addr, tuple) and len(addr) >= 2 and isinstance(addr[1], int):
            return addr[1]
        return None

    def __aiter__(self) -> AsyncIterator[Stream]:
        return self._accept_all()

    async def _accept_all(self) -> AsyncIterator[Stream]:
        from .core.errors import Closed

        while True:
            try:
                yield await self._inner.accept()
            except Closed:
                return

    async def __aenter__(self) -> Listener:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        return f"<purenng.stream.Listener {self.url}>"
