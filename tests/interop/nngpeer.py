"""A real NNG peer in its own process, driven by JSON lines (run as a script).

The interop tests never import pynng or nng into the pytest process: each
test starts this script with ``sys.executable`` and talks to it over
stdin/stdout.  Why a subprocess rather than pynng next to purenng:

* pynng and nng each bundle their own copy of the NNG C library with its own
  worker threads.  A crash, a hang in a C call, or a leaked NNG thread would
  take the whole pytest run down with it; in a child it costs one test and
  the child is killed.
* Nothing is shared: no GIL contention between NNG callbacks and purenng's
  loop thread, no interference between two NNG copies (pynng bundles NNG
  1.11, nng bundles 2.0-dev), no file descriptors or global state leaking
  between tests.  The peer is a real separate process, as in deployment.
* Starting Python and importing either binding takes about 0.1 s, cheap
  enough for one process per test.

Usage::

    python nngpeer.py --lib pynng|nng --proto PROTO (--listen URL | --dial URL)
                      [--nonblock-dial] [--recv-max-size N] [--timeout S]
                      [--lifetime S]

PROTO is ``pair0``, ``pair1``, ``pair1poly`` (pynng only: NNG 2.0 dropped
polyamorous mode), ``push0`` or ``pull0``.  Listening on tcp port 0 is
allowed; the bound URL is reported.

Protocol on stdout, one JSON object per line:

* first ``{"event": "ready", "url": URL}`` once the socket listens or has
  dialed (a blocking dial unless ``--nonblock-dial``), or
  ``{"event": "error", "error": ...}`` and exit status 2;
* then one reply per command read from stdin, in order.

Commands (one JSON object per line on stdin), replies carry ``"ok"`` and,
on failure, ``"error"`` (``"Type: message"``):

* ``{"op": "send", "data": HEX}`` or ``{"op": "send", "size": N, "seed": K}``
  (the :func:`pattern` bytes), optional ``"pipe": ID`` to send on one pipe
  of a polyamorous socket;
* ``{"op": "recv"}`` -> ``len``, ``sha256``, ``pipe``, ``data`` (hex,
  only for messages up to 64 KiB) and, with the nng package, which keeps
  the SP header apart from the body, ``header`` (hex);
* ``{"op": "wait_pipes", "n": N}`` -> ``pipes``: waits (polling, bounded by
  ``--timeout``) until at least N pipes are up;
* ``{"op": "close"}``: closes the socket, replies, and exits 0.

Every socket operation is bounded by ``--timeout`` (send and receive
timeouts), and a watchdog ends the process after ``--lifetime`` seconds
whatever happens, so no peer can outlive its test.  This file imports only
the standard library at module level; the host side imports :func:`pattern`
from it.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import threading
import time
from typing import Any

#: Bodies up to this size are echoed back as hex in ``recv`` replies.
ECHO_LIMIT = 64 * 1024


def pattern(size: int, seed: int = 0) -> bytes:
    """Deterministic test bytes: every byte value, shifted by ``seed``."""
    block = bytes((i + seed) & 0xFF for i in range(256))
    reps = size // 256 + 1
    return (block * reps)[:size]


def describe(data: bytes, pipe: int | None, header: bytes | None = None) -> dict[str, Any]:
    """The reply fields for a received message."""
    out: dict[str, Any] = {
        "ok": True,
        "len": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
        "pipe": pipe,
    }
    if len(data) <= ECHO_LIMIT:
        out["data"] = data.hex()
    if header is not None:
        out["header"] = header.hex()
    return out


class PynngPeer:
    """One pynng (NNG 1.11) socket."""

    def __init__(self, proto: str, timeout_ms: int) -> None:
        import pynng

        self.mod = pynng
        self.sock: Any
        kw: dict[str, Any] = {"recv_timeout": timeout_ms, "send_timeout": timeout_ms}
        if proto == "pair0":
            self.sock = pynng.Pair0(**kw)
        elif proto == "pair1":
            self.sock = pynng.Pair1(**kw)
        elif proto == "pair1poly":
            self.sock = pynng.Pair1(polyamorous=True, **kw)
        elif proto == "push0":
            self.sock = pynng.Push0(**kw)
        elif proto == "pull0":
            self.sock = pynng.Pull0(**kw)
        else:
            raise ValueError(f"unknown protocol {proto!r}")
        self.pipes: dict[int, Any] = {}

    def set_recv_max_size(self, n: int) -> None:
        self.sock.recv_max_size = n

    def listen(self, url: str) -> str:
        lst = self.sock.listen(url)
        if url.startswith("tcp://"):
            # str() of pynng's address is "host:port" in host byte order
            # (its .port attribute is not).
            return f"tcp://{lst.local_address}"
        return url

    def dial(self, url: str, block: bool) -> None:
        self.sock.dial(url, block=block)

    def send(self, data: bytes, pipe: int | None) -> None:
        if pipe is None:
            self.sock.send(data)
        else:
            self.pipes[pipe].send(data)

    def recv(self) -> tuple[bytes, int | None, bytes | None]:
        msg = self.sock.recv_msg()
        p = msg.pipe
        if p is not None:
            self.pipes[p.id] = p
        return bytes(msg.bytes), (p.id if p is not None else None), None

    def pipe_count(self) -> int:
        return len(self.sock.pipes)

    def close(self) -> None:
        self.sock.close()


class NngPeer:
    """One socket of the ``nng`` package (NNG 2.0-dev)."""

    def __init__(self, proto: str, timeout_ms: int) -> None:
        import nng

        self.mod = nng
        self.sock: Any
        if proto == "pair0":
            # v0 is a real keyword; the generated stub does not list it.
            self.sock = nng.PairSocket(v0=True)  # type: ignore[call-arg]
        elif proto == "pair1":
            self.sock = nng.PairSocket()
        elif proto == "push0":
            self.sock = nng.PushSocket()
        elif proto == "pull0":
            self.sock = nng.PullSocket()
        else:
            raise ValueError(f"unknown protocol {proto!r} for the nng package")
        self.sock.recv_timeout = timeout_ms
        self.sock.send_timeout = timeout_ms
        self.recv_max_size: int | None = None

    def set_recv_max_size(self, n: int) -> None:
        self.recv_max_size = n

    def listen(self, url: str) -> str:
        lst = self.sock.add_listener(url, recv_max_size=self.recv_max_size)
        lst.start()
        if url.startswith("tcp://"):
            host = url[len("tcp://") :].rsplit(":", 1)[0]
            return f"tcp://{host}:{lst.port}"
        return url

    def dial(self, url: str, block: bool) -> None:
        self.sock.add_dialer(url, recv_max_size=self.recv_max_size).start(block=block)

    def send(self, data: bytes, pipe: int | None) -> None:
        if pipe is not None:
            raise ValueError("the nng package has no polyamorous pair socket")
        self.sock.send(data)

    def recv(self) -> tuple[bytes, int | None, bytes | None]:
        msg = self.sock.recv()
        return msg.to_bytes(), msg.pipe_id, bytes(msg.header)

    def pipe_count(self) -> int:
        return len(self.sock.pipes)

    def close(self) -> None:
        self.sock.close()


def emit(obj: dict[str, Any]) -> None:
    """One JSON line on stdout, flushed at once (the host reads line by line)."""
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def error_text(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def handle(peer: PynngPeer | NngPeer, cmd: dict[str, Any], timeout: float) -> dict[str, Any]:
    """Run one command and return its reply."""
    op = cmd.get("op")
    if op == "send":
        if "data" in cmd:
            data = bytes.fromhex(cmd["data"])
        else:
            data = pattern(int(cmd["size"]), int(cmd.get("seed", 0)))
        peer.send(data, cmd.get("pipe"))
        return {"ok": True}
    if op == "recv":
        return describe(*peer.recv())
    if op == "wait_pipes":
        want = int(cmd["n"])
        deadline = time.monotonic() + timeout
        while peer.pipe_count() < want:
            if time.monotonic() > deadline:
                return {"ok": False, "error": f"Timeout: {peer.pipe_count()} of {want} pipes"}
            time.sleep(0.01)
        return {"ok": True, "pipes": peer.pipe_count()}
    return {"ok": False, "error": f"ValueError: unknown op {op!r}"}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lib", choices=("pynng", "nng"), required=True)
    ap.add_argument("--proto", required=True)
    where = ap.add_mutually_exclusive_group(required=True)
    where.add_argument("--listen")
    where.add_argument("--dial")
    ap.add_argument("--nonblock-dial", action="store_true")
    ap.add_argument("--recv-max-size", type=int)
    ap.add_argument("--timeout", type=float, default=10.0)
    ap.add_argument("--lifetime", type=float, default=60.0)
    args = ap.parse_args(argv)

    # The watchdog: whatever happens, this process ends.
    watchdog = threading.Timer(args.lifetime, os._exit, (3,))
    watchdog.daemon = True
    watchdog.start()

    timeout_ms = int(args.timeout * 1000)
    try:
        peer: PynngPeer | NngPeer = (
            PynngPeer(args.proto, timeout_ms)
            if args.lib == "pynng"
            else NngPeer(args.proto, timeout_ms)
        )
        if args.recv_max_size is not None:
            peer.set_recv_max_size(args.recv_max_size)
        if args.listen:
            url = peer.listen(args.listen)
        else:
            peer.dial(args.dial, block=not args.nonblock_dial)
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
