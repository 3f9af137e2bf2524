"""Per-library sender and receiver roles, and the entry point of a bench child.

The runner starts two children per run with ``python -m purenng.bench.peers``:

* ``--role recv`` opens a PULL socket, listens on ``--url``, prints
  ``READY`` on stdout once it is bound, counts messages (see below) and
  prints one JSON line with the result.
* ``--role send`` opens a PUSH socket, dials ``--url``, sends, then waits
  until the runner closes its stdin before it closes the socket (closing
  early can drop messages still in flight: libzmq over ipc does), and prints
  one JSON line with the number it sent.

Rules of a measurement (the same for every library, so ratios are fair):

* The payload is ``--size`` random bytes, sent with the library's plain call
  (``send(payload)`` or ``await asend(payload)``) until ``--count`` messages
  or ``--duration`` seconds, whichever comes first; then the 1-byte
  :data:`END` marker.  Sizes are therefore at least 2 bytes.
* The receiver takes what its ``recv()`` returns (``bytes`` for purenng,
  pynng and pyzmq; a zero-copy message for ``nng``), starts its clock at the
  first message, which is not counted, and stops it at the end marker or at
  ``duration`` + ``--grace`` seconds (then the run is ``capped``).
* Each side reports the process CPU time it used (all threads: purenng's
  blocking API works in a background loop thread, NNG and libzmq in their
  own I/O threads).
* Every single send or receive is bounded by :data:`IO_TIMEOUT`, and the
  runner kills a child that outlives its hard limit: nothing here can hang.

Transports are whatever the URL says (``tcp://``, ``ipc://``,
``tls+tcp://``, ``ws://``, ``wss://``); :attr:`Library.transports` says which
a library can speak (pyzmq has no TLS and no WebSocket).  For ``tls+tcp`` and
``wss`` the runner writes a throwaway CA and server certificate once per
bench and passes the directory (``--tls-dir``, see :class:`TLSFiles`): the
receiver presents the server certificate, the sender trusts the CA and
checks the name ``localhost`` (the certificate's SAN) while it dials
127.0.0.1.  Over ``ws``/``wss`` NNG writes a message as one frame, so a
purenng receiver lifts its 1 MiB frame limit (``ws_recv_frame_max=0``): the
message limit stays :data:`RECV_MAX`.

Peer libraries are imported only inside the openers, so importing this
module costs nothing and a missing peer is only reported as unavailable.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.metadata
import importlib.util
import json
import os
import select
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

from .proc import run_on_loop

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Coroutine, Sequence, Sized

__all__ = [
    "API_NAMES",
    "END",
    "IO_TIMEOUT",
    "LIBRARIES",
    "NET_TRANSPORTS",
    "RECV_MAX",
    "TLS_SERVER_NAME",
    "AsyncSide",
    "Library",
    "SyncSide",
    "TLSFiles",
    "available_libraries",
    "main",
    "resolve_library",
]

#: Receive size limit for purenng and NNG receivers: 1 MiB bodies are exactly
#: at purenng's default ``recv_max_size``; the limit is not a speed knob.
RECV_MAX = 8 << 20

#: The end marker: one byte, because pynng 0.9.0 cannot receive an empty message.
END = b"E"

#: Seconds one send or receive may block; only there to stop hangs.
IO_TIMEOUT = 20.0

#: The APIs compared, in table order.
API_NAMES = ("sync", "async")

#: Every transport a library may speak here (loopback and local sockets only).
NET_TRANSPORTS = ("tcp", "ipc", "tls", "ws", "wss")

#: The name the sender checks in the receiver's certificate (its SAN).
TLS_SERVER_NAME = "localhost"

#: How many messages between two clock reads in the hot loops.
_SEND_CHECK = 15  # mask: every 16 messages
_RECV_CHECK = 255  # mask: every 256 messages


class SyncSide(NamedTuple):
    """One end of a blocking run: the library's own bound methods."""

    send: Callable[[bytes], object]
    recv: Callable[[], Sized]
    close: Callable[[], object]


class AsyncSide(NamedTuple):
    """One end of an asyncio run, opened inside the loop that drives it."""

    send: Callable[[bytes], Awaitable[object]]
    recv: Callable[[], Awaitable[Sized]]
    close: Callable[[], Awaitable[object]]


class TLSFiles(NamedTuple):
    """PEM files of a TLS run: the CA the sender trusts, the receiver's pair.

    The names are those :meth:`purenng.testing.certs.DevCerts.write` uses.
    """

    ca: str
    cert: str
    key: str

    @classmethod
    def in_dir(cls, directory: str) -> TLSFiles:
        """The files in ``directory`` (``ca.pem``, ``server.pem``, ``server.key``)."""
        d = Path(directory)
        return cls(str(d / "ca.pem"), str(d / "server.pem"), str(d / "server.key"))


class SyncOpener(Protocol):
    """Opens one end of a blocking run: ``role`` is ``recv`` or ``send``."""

    def __call__(self, role: str, url: str, tls: TLSFiles | None = None, /) -> SyncSide: ...


class AsyncOpener(Protocol):
    """Opens one end of an asyncio run inside the running loop."""

    def __call__(
        self, role: str, url: str, tls: TLSFiles | None = None, /
    ) -> Coroutine[Any, Any, AsyncSide]: ...


def _uses_tls(url: str) -> bool:
    return url.startswith(("tls+", "wss"))


def _async_close(close: Callable[[], object]) -> Callable[[], Awaitable[object]]:
    """Wrap a blocking ``close`` so that every :class:`AsyncSide` awaits it."""

    async def aclose() -> object:
        return close()

    return aclose


# ---------------------------------------------------------------- openers
# role is "recv" (PULL, listens) or "send" (PUSH, dials); tls is required
# for tls+tcp:// and wss:// URLs and ignored otherwise.


def _need_tls(url: str, tls: TLSFiles | None) -> TLSFiles:
    if tls is None:
        raise ValueError(f"{url} needs certificates (--tls-dir)")
    return tls


def _purenng_endpoint_options(role: str, url: str, tls: TLSFiles | None) -> dict[str, Any]:
    """Per-endpoint options of a purenng run (TLS, ws frame limit), by role."""
    import purenng

    opts: dict[str, Any] = {}
    if _uses_tls(url):
        files = _need_tls(url, tls)
        if role == "recv":
            opts["tls_config"] = purenng.TLSConfig(cert_file=files.cert, key_file=files.key)
        else:
            opts["tls_config"] = purenng.TLSConfig(ca_file=files.ca, server_name=TLS_SERVER_NAME)
    if role == "recv" and url.startswith("ws"):
        opts["ws_recv_frame_max"] = 0  # NNG sends a message as one frame
    return opts


def _purenng_sync(role: str, url: str, tls: TLSFiles | None = None) -> SyncSide:
    import purenng

    opts = _purenng_endpoint_options(role, url, tls)
    if role == "recv":
        pull = purenng.Pull0(recv_max_size=RECV_MAX, recv_timeout=IO_TIMEOUT)
        pull.listen(url, **opts)
        return SyncSide(pull.send, pull.recv, pull.close)
    push = purenng.Push0(send_timeout=IO_TIMEOUT)
    push.dial(url, block=True, **opts)
    return SyncSide(push.send, push.recv, push.close)


async def _purenng_async(role: str, url: str, tls: TLSFiles | None = None) -> AsyncSide:
    import purenng

    opts = _purenng_endpoint_options(role, url, tls)
    # Made inside the running loop, so the socket lives on it.
    if role == "recv":
        pull = purenng.Pull0(recv_max_size=RECV_MAX, recv_timeout=IO_TIMEOUT)
        await pull.alisten(url, **opts)
        return AsyncSide(pull.asend, pull.arecv, pull.aclose)
    push = purenng.Push0(send_timeout=IO_TIMEOUT)
    await push.adial(url, block=True, **opts)
    return AsyncSide(push.asend, push.arecv, push.aclose)


def _pynng_tls(role: str, url: str, tls: TLSFiles | None) -> Any:
    """A ``pynng.TLSConfig`` for ``role``, or None for a plain URL."""
    if not _uses_tls(url):
        return None
    import pynng

    files = _need_tls(url, tls)
    if role == "recv":
        return pynng.TLSConfig(
            pynng.TLSConfig.MODE_SERVER,
            own_cert_string=Path(files.cert).read_text(),
            own_key_string=Path(files.key).read_text(),
        )
    return pynng.TLSConfig(
        pynng.TLSConfig.MODE_CLIENT,
        ca_string=Path(files.ca).read_text(),
        server_name=TLS_SERVER_NAME,
    )


def _pynng_open(role: str, url: str, tls: TLSFiles | None = None) -> Any:
    import pynng

    ms = int(IO_TIMEOUT * 1000)
    # The socket's tls_config applies to the endpoints made after it is set.
    cfg = _pynng_tls(role, url, tls)
    if role == "recv":
        s = pynng.Pull0(recv_max_size=RECV_MAX, recv_timeout=ms, tls_config=cfg)
        s.listen(url)
    else:
        s = pynng.Push0(send_timeout=ms, tls_config=cfg)
        s.dial(url, block=True)
    return s


def _pynng_sync(role: str, url: str, tls: TLSFiles | None = None) -> SyncSide:
    s = _pynng_open(role, url, tls)
    return SyncSide(s.send, s.recv, s.close)


async def _pynng_async(role: str, url: str, tls: TLSFiles | None = None) -> AsyncSide:
    s = _pynng_open(role, url, tls)
    return AsyncSide(s.asend, s.arecv, _async_close(s.close))


def _nng_open(role: str, url: str) -> Any:
    import nng

    ms = int(IO_TIMEOUT * 1000)
    s: Any
    if role == "recv":
        s = nng.PullSocket()
        s.recv_timeout = ms
        s.add_listener(url, recv_max_size=RECV_MAX).start()
    else:
        s = nng.PushSocket()
        s.send_timeout = ms
        s.add_dialer(url, recv_max_size=RECV_MAX).start()
    return s


def _nng_sync(role: str, url: str, tls: TLSFiles | None = None) -> SyncSide:
    s = _nng_open(role, url)
    return SyncSide(s.send, s.recv, s.close)


async def _nng_async(role: str, url: str, tls: TLSFiles | None = None) -> AsyncSide:
    s = _nng_open(role, url)
    return AsyncSide(s.asend, s.arecv, _async_close(s.close))


def _zmq_open(role: str, url: str, ctx: Any) -> tuple[Any, Callable[[], None]]:
    import zmq

    ms = int(IO_TIMEOUT * 1000)
    if role == "recv":
        s = ctx.socket(zmq.PULL)
        s.setsockopt(zmq.RCVTIMEO, ms)
        s.bind(url)
    else:
        s = ctx.socket(zmq.PUSH)
        s.setsockopt(zmq.SNDTIMEO, ms)
        s.connect(url)

    def close() -> None:
        s.close(linger=2000)
        ctx.term()

    return s, close


def _zmq_sync(role: str, url: str, tls: TLSFiles | None = None) -> SyncSide:
    import zmq

    s, close = _zmq_open(role, url, zmq.Context())
    return SyncSide(s.send, s.recv, close)


async def _zmq_async(role: str, url: str, tls: TLSFiles | None = None) -> AsyncSide:
    import zmq.asyncio

    s, close = _zmq_open(role, url, zmq.asyncio.Context())
    return AsyncSide(s.send, s.recv, _async_close(close))


@dataclass(frozen=True)
class Library:
    """A library the bench can drive, by its command-line name."""

    name: str
    """Command-line and JSON name (``purenng``, ``pynng``, ``pyzmq``, ``nng``)."""
    module: str
    """Import name, checked without importing it."""
    dist: str
    """Distribution name, for the version."""
    label: str
    """What the table calls it."""
    open_sync: SyncOpener
    open_async: AsyncOpener
    transports: tuple[str, ...] = NET_TRANSPORTS
    """Transports of :data:`NET_TRANSPORTS` it speaks; the others are n/a."""

    def available(self) -> bool:
        """True if the library can be imported (it is not imported here)."""
        try:
            return importlib.util.find_spec(self.module) is not None
        except (ImportError, ValueError):
            return False

    def version(self) -> str | None:
        """The installed distribution's version, or None."""
        try:
            return importlib.metadata.version(self.dist)
        except importlib.metadata.PackageNotFoundError:
            return None


#: Every library the bench knows, purenng first (table order).
LIBRARIES: dict[str, Library] = {
    lib.name: lib
    for lib in (
        Library("purenng", "purenng", "purenng", "purenng", _purenng_sync, _purenng_async),
        Library("pynng", "pynng", "pynng", "pynng", _pynng_sync, _pynng_async),
        Library("pyzmq", "zmq", "pyzmq", "pyzmq", _zmq_sync, _zmq_async, ("tcp", "ipc")),
        # The nng package's TLS configuration is not wired up here.
        Library("nng", "nng", "nng", "nng", _nng_sync, _nng_async, ("tcp", "ipc", "ws")),
    )
}

_ALIASES = {"zmq": "pyzmq"}


def resolve_library(name: str) -> Library:
    """The :class:`Library` called ``name`` (``zmq`` is accepted for pyzmq).

    Raises:
        KeyError: no such library.
    """
    return LIBRARIES[_ALIASES.get(name, name)]


def available_libraries() -> list[str]:
    """Names of the libraries that can be imported here, in table order."""
    return [name for name, lib in LIBRARIES.items() if lib.available()]


# ---------------------------------------------------------------- hot loops


def sync_sender(side: SyncSide, payload: bytes, count: int, duration: float) -> int:
    """Send ``payload`` until ``count`` or ``duration``; then :data:`END`."""
    send = side.send
    now = time.perf_counter
    deadline = now() + duration
    i = 0
    while i < count:
        send(payload)
        i += 1
        if not (i & _SEND_CHECK) and now() > deadline:
            break
    send(END)
    return i


async def async_sender(side: AsyncSide, payload: bytes, count: int, duration: float) -> int:
    """:func:`sync_sender` with ``await``."""
    send = side.send
    now = time.perf_counter
    deadline = now() + duration
    i = 0
    while i < count:
        await send(payload)
        i += 1
        if not (i & _SEND_CHECK) and now() > deadline:
            break
    await send(END)
    return i


def _result(n: int, nbytes: int, seconds: float, capped: bool) -> dict[str, Any]:
    return {
        "n": n,
        "bytes": nbytes,
        "seconds": seconds,
        "capped": capped,
        "msgs_per_s": n / seconds if seconds > 0 else 0.0,
        "MB_per_s": nbytes / seconds / 1e6 if seconds > 0 else 0.0,
    }


def sync_receiver(side: SyncSide, cap: float) -> dict[str, Any]:
    """Count messages from the first (not counted) to :data:`END` or ``cap`` s."""
    recv = side.recv
    recv()
    now = time.perf_counter
    t0 = now()
    deadline = t0 + cap
    n = nbytes = 0
    capped = False
    while True:
        ln = len(recv())
        if ln == 1:
            break
        n += 1
        nbytes += ln
        if not (n & _RECV_CHECK) and now() > deadline:
            capped = True
            break
    return _result(n, nbytes, now() - t0, capped)


async def async_receiver(side: AsyncSide, cap: float) -> dict[str, Any]:
    """:func:`sync_receiver` with ``await``."""
    recv = side.recv
    await recv()
    now = time.perf_counter
    t0 = now()
    deadline = t0 + cap
    n = nbytes = 0
    capped = False
    while True:
        ln = len(await recv())
        if ln == 1:
            break
        n += 1
        nbytes += ln
        if not (n & _RECV_CHECK) and now() > deadline:
            capped = True
            break
    return _result(n, nbytes, now() - t0, capped)


# ---------------------------------------------------------------- child roles


def wait_release(limit: float) -> None:
    """Block until the runner closes our stdin, or ``limit`` seconds pass."""
    try:
        select.select([sys.stdin], [], [], limit)
    except (OSError, ValueError):
        pass


def _emit(obj: dict[str, Any]) -> None:
    print(json.dumps(obj), flush=True)


def _tls_files(a: argparse.Namespace) -> TLSFiles | None:
    return TLSFiles.in_dir(a.tls_dir) if a.tls_dir else None


def _recv_role(a: argparse.Namespace) -> dict[str, Any]:
    lib = resolve_library(a.lib)
    tls = _tls_files(a)
    cap = a.duration + a.grace
    if a.api == "async":

        async def run() -> dict[str, Any]:
            side = await lib.open_async("recv", a.url, tls)
            print("READY", flush=True)
            try:
                return await async_receiver(side, cap)
            finally:
                await side.close()

        c0 = time.process_time()
        res = run_on_loop(run(), a.loop)
    else:
        side = lib.open_sync("recv", a.url, tls)
        print("READY", flush=True)
        c0 = time.process_time()
        try:
            res = sync_receiver(side, cap)
        finally:
            side.close()
    res["cpu_s"] = round(time.process_time() - c0, 3)
    return res


def _send_role(a: argparse.Namespace) -> dict[str, Any]:
    lib = resolve_library(a.lib)
    tls = _tls_files(a)
    payload = os.urandom(a.size)
    release = a.duration + a.grace + IO_TIMEOUT
    c0 = time.process_time()
    t0 = time.perf_counter()
    if a.api == "async":

        async def run() -> dict[str, Any]:
            side = await lib.open_async("send", a.url, tls)
            try:
                t = time.perf_counter()
                n = await async_sender(side, payload, a.count, a.duration)
                out = {"sent": n, "send_seconds": time.perf_counter() - t}
                # The loop must keep running (purenng writes from it) while we wait.
                await asyncio.get_running_loop().run_in_executor(None, wait_release, release)
                return out
            finally:
                await side.close()

        res = run_on_loop(run(), a.loop)
    else:
        side = lib.open_sync("send", a.url, tls)
        try:
            t = time.perf_counter()
            n = sync_sender(side, payload, a.count, a.duration)
            res = {"sent": n, "send_seconds": time.perf_counter() - t}
            wait_release(release)
        finally:
            side.close()
    res["cpu_s"] = round(time.process_time() - c0, 3)
    res["wall_s"] = round(time.perf_counter() - t0, 3)
    return res


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m purenng.bench.peers",
        description="One side of a purenng bench run (started by purenng bench).",
    )
    p.add_argument("--role", choices=["recv", "send"], required=True)
    p.add_argument("--lib", choices=[*LIBRARIES, *_ALIASES], required=True)
    p.add_argument("--api", choices=API_NAMES, default="sync")
    p.add_argument("--url", required=True)
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--count", type=int, default=1_000_000)
    p.add_argument("--duration", type=float, default=2.0)
    p.add_argument("--grace", type=float, default=5.0)
    p.add_argument("--loop", choices=["asyncio", "uvloop"], default="asyncio")
    p.add_argument(
        "--tls-dir", default=None, help="ca.pem, server.pem, server.key for tls+tcp:// and wss://"
    )
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Run one role; prints its JSON result line.  Returns the exit status."""
    a = _parser().parse_args(argv)
    if a.size < 2:
        print("--size must be at least 2 (1 byte is the end marker)", file=sys.stderr)
        return 2
    res = _recv_role(a) if a.role == "recv" else _send_role(a)
    _emit(res)
    return 0


if __name__ == "__main__":
    sys.exit(main())
