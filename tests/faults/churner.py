"""Connection churn against an SP listener (run as a script, standard library only).

``python churner.py HOST PORT SECONDS MAX_CONNECTIONS RATE PROTO_ID``: opens
up to MAX_CONNECTIONS tcp connections to HOST:PORT, at most RATE per
second, for at most SECONDS, each doing one of five things in turn:

0. connect and close at once (FIN before any byte);
1. connect and reset (``SO_LINGER`` 0: RST before any byte);
2. send the SP header (peer protocol PROTO_ID), read the listener's, close;
3. the header, one whole message (``b"churn"`` + a counter), then close
   gracefully (FIN after the data: the message must be delivered);
4. the header, half a message, then reset.

Prints one JSON line: ``connections``, ``messages`` (whole messages sent in
mode 3), ``failures`` (connects refused or timed out) and ``elapsed``.
"""

from __future__ import annotations

import json
import socket
import struct
import sys
import time


def main() -> int:
    host, port = sys.argv[1], int(sys.argv[2])
    seconds, most, rate = float(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5])
    proto = int(sys.argv[6])
    header = b"\x00SP\x00" + struct.pack(">H", proto) + b"\x00\x00"
    linger0 = struct.pack("ii", 1, 0)
    start = time.monotonic()
    n = messages = failures = 0
    while n < most and time.monotonic() - start < seconds:
        # Pace: connection n is not opened before start + n / rate.
        ahead = start + n / rate - time.monotonic()
        if ahead > 0:
            time.sleep(ahead)
        mode = n % 5
        n += 1
        try:
            s = socket.create_connection((host, port), timeout=2.0)
        except OSError:
            failures += 1
            continue
        try:
            if mode == 1 or mode == 4:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger0)
            if mode >= 2:
                s.sendall(header)
                got = b""
                while len(got) < 8:
                    chunk = s.recv(8 - len(got))
                    if not chunk:
                        break
                    got += chunk
            if mode == 3:
                body = b"churn%d" % messages
                s.sendall(struct.pack(">Q", len(body)) + body)
                messages += 1
            elif mode == 4:
                s.sendall(struct.pack(">Q", 100) + b"half")
        except OSError:
            failures += 1
        finally:
            s.close()
    out = {
        "connections": n,
        "messages": messages,
        "failures": failures,
        "elapsed": time.monotonic() - start,
    }
    print(json.dumps(out), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
