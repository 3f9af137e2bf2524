"""A peer process for the fault tests: purenng, pynng or nng, one socket, one job.

Run as ``python faultpeer.py JSON`` where JSON holds:

* ``lib``: ``purenng`` (blocking API, purenng's background loop: uvloop when
  installed, ``PURENNG_LOOP=asyncio`` forces the standard loop), ``pynng``
  (NNG 1.11) or ``nng`` (NNG 2.0);
* ``role``: ``push`` (send numbered messages), ``pull`` (receive and check
  them), ``req`` (numbered requests, check each reply) or ``rep`` (answer
  every request with ``b"re:" + request``, until told to stop);
* ``listen`` or ``dial``: a URL (tcp port 0 allowed when listening);
* ``count``: messages or requests (0 with ``push``: send until killed);
* ``sizes``: body sizes cycled through (the 8-byte number comes first);
* ``recv_max_size``: the socket's limit (default 0: none);
* ``gaps``: a ``pull`` accepts missing numbers (messages lost with a broken
  pipe) as long as they only increase;
* ``start``: the first sequence number; ``timeout``: socket timeouts and the
  bound on every wait (seconds); ``lifetime``: a watchdog ends the process
  after that many seconds whatever happens; ``reply_delay``: a ``rep`` waits
  that long before answering, after an ``{"event": "holding"}`` line (to be
  killed with a request in hand).

Output, one JSON object per line on stdout: ``{"event": "ready", "url": ...}``
once listening or dialed, ``{"event": "progress", "n": N}`` after each of the
first ``progress`` messages (``push``/``rep``), then ``{"event": "done", ...}``
with what was sent, received, answered and any ``errors``.  After that the
peer keeps its socket open (so nothing in flight is lost in a closing
socket) until its stdin closes.

Message layout (:func:`make`): an 8-byte big-endian sequence number, then
``size`` bytes where byte ``i`` is ``(seq + i) & 0xFF``, so the receiver can
check every byte and the order without keeping a copy.  Only the standard
library is imported at module level; the host imports :func:`make` and
:func:`check`.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from typing import Any

_BLOCK = bytes(range(256)) * 2


def make(seq: int, size: int) -> bytes:
    """Message ``seq`` with a ``size``-byte body (see the module docstring)."""
    shift = seq & 0xFF
    block = _BLOCK[shift : shift + 256]
    body = (block * (size // 256 + 1))[:size]
    return seq.to_bytes(8, "big") + body


def check(data: bytes) -> tuple[int, bool]:
    """The sequence number of ``data`` and whether its body is intact."""
    if len(data) < 8:
        return -1, False
    seq = int.from_bytes(data[:8], "big")
    return seq, data == make(seq, len(data) - 8)


def emit(obj: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


class Sock:
    """The few calls the jobs need, over any of the three libraries."""

    def __init__(self, lib: str, role: str, timeout: float, recv_max_size: int = 0) -> None:
        self.lib = lib
        self.recv_max_size = recv_max_size
        ms = int(timeout * 1000)
        if lib == "purenng":
            import purenng

            cls = {"push": purenng.Push0, "pull": purenng.Pull0}
            cls |= {"req": purenng.Req0, "rep": purenng.Rep0}
            opts: dict[str, Any] = {"recv_timeout": timeout, "send_timeout": timeout}
            if role == "req":
                opts["resend_time"] = 0.5
            self.sock: Any = cls[role](
                reconnect_time_min=0.05,
                reconnect_time_max=0.5,
                recv_max_size=recv_max_size,
                **opts,
            )
        elif lib == "pynng":
            import pynng

            cls2 = {"push": pynng.Push0, "pull": pynng.Pull0, "req": pynng.Req0, "rep": pynng.Rep0}
            kw: dict[str, Any] = {"recv_timeout": ms, "send_timeout": ms}
            kw |= {
                "reconnect_time_min": 50,
                "reconnect_time_max": 500,
                "recv_max_size": recv_max_size,
            }
            if role == "req":
                kw["resend_time"] = 500
            self.sock = cls2[role](**kw)
        else:
            import nng

            cls3 = {
                "push": nng.PushSocket,
                "pull": nng.PullSocket,
                "req": nng.ReqSocket,
                "rep": nng.RepSocket,
            }
            self.sock = cls3[role]()
            self.sock.recv_timeout = ms
            self.sock.send_timeout = ms
            if role == "req":
                self.sock.resend_time = 500

    def listen(self, url: str) -> str:
        if self.lib == "purenng":
            return str(self.sock.listen(url).url)
        if self.lib == "pynng":
            lst = self.sock.listen(url)
            return f"tcp://{lst.local_address}" if url.startswith("tcp://") else url
        lst = self.sock.add_listener(url, recv_max_size=self.recv_max_size)
        lst.start()
        if url.startswith("tcp://"):
            return f"tcp://{url[6:].rsplit(':', 1)[0]}:{lst.port}"
        return url

    def dial(self, url: str) -> None:
        if self.lib == "purenng" or self.lib == "pynng":
            self.sock.dial(url, block=False)
        else:
            d = self.sock.add_dialer(
                url, reconnect_min_ms=50, reconnect_max_ms=500, recv_max_size=self.recv_max_size
            )
            d.start(block=False)

    def send(self, data: bytes) -> None:
        self.sock.send(data)

    def recv(self) -> bytes:
        if self.lib == "nng":
            return bytes(self.sock.recv().to_bytes())
        return bytes(self.sock.recv())

    def close(self) -> None:
        self.sock.close()


def is_timeout(exc: BaseException) -> bool:
    return "timeout" in type(exc).__name__.lower() or "timed out" in str(exc).lower()


def main() -> int:
    cfg: dict[str, Any] = json.loads(sys.argv[1])
    timeout = float(cfg.get("timeout", 10.0))
    watchdog = threading.Timer(float(cfg.get("lifetime", 60.0)), os._exit, (3,))
    watchdog.daemon = True
    watchdog.start()
    stop = threading.Event()

    def wait_stdin() -> None:
        sys.stdin.read()
        stop.set()

    threading.Thread(target=wait_stdin, daemon=True).start()

    role, count = cfg["role"], int(cfg.get("count", 0))
    sizes = [int(s) for s in cfg.get("sizes", [16])]
    seq = int(cfg.get("start", 0))
    progress = int(cfg.get("progress", 0))
    # Servers poll with a short timeout so they notice ``stop``.
    sock = Sock(
        cfg["lib"], role, 0.2 if role == "rep" else timeout, int(cfg.get("recv_max_size", 0))
    )
    gaps = bool(cfg.get("gaps", False))
    try:
        if "listen" in cfg:
            url = sock.listen(cfg["listen"])
        else:
            sock.dial(cfg["dial"])
            url = cfg["dial"]
    except Exception as exc:
        emit({"event": "error", "error": f"{type(exc).__name__}: {exc}"})
        return 2
    emit({"event": "ready", "url": url, "pid": os.getpid()})

    errors: list[str] = []
    done: dict[str, Any] = {"event": "done"}
    try:
        if role == "push":
            n = 0
            while not stop.is_set() and (count == 0 or n < count):
                sock.send(make(seq + n, sizes[n % len(sizes)]))
                n += 1
                if n <= progress:
                    emit({"event": "progress", "n": n})
            done["sent"] = n
        elif role == "pull":
            got = 0
            want = seq
            while got < count:
                s, ok = check(sock.recv())
                if not ok:
                    errors.append(f"message {got}: bad body (seq {s})")
                elif s != want and not (gaps and s > want):
                    errors.append(f"message {got}: seq {s}, expected {want}")
                want = s + 1
                got += 1
            done["received"] = got
        elif role == "req":
            answered = 0
            for i in range(count):
                req = make(seq + i, sizes[i % len(sizes)])
                sock.send(req)
                if sock.recv() != b"re:" + req:
                    errors.append(f"request {i}: wrong reply")
                answered += 1
            done["answered"] = answered
        elif role == "rep":
            served = 0
            delay = float(cfg.get("reply_delay", 0.0))
            while not stop.is_set() and (count == 0 or served < count):
                try:
                    req = sock.recv()
                except Exception as exc:
                    if is_timeout(exc):
                        continue
                    raise
                if delay:
                    emit({"event": "holding", "n": served + 1})
                    time.sleep(delay)
                sock.send(b"re:" + req)
                served += 1
                if served <= progress:
                    emit({"event": "progress", "n": served})
            done["served"] = served
        else:
            raise ValueError(f"unknown role {role!r}")
    except Exception as exc:
        errors.append(f"{type(exc).__name__}: {exc}")
    done["errors"] = errors[:20]
    done["error_count"] = len(errors)
    emit(done)
    stop.wait(timeout * 3)
    sock.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
