"""A pynng REQ/REP program that either serves or asks; run unchanged with both
the real pynng and purenng.compat.pynng so each side can face the other.

Usage:
    python pynng_echo.py serve N     # prints "url tcp://...", answers N requests
    python pynng_echo.py ask URL N   # sends N requests, prints the replies
"""

import socket
import sys

import pynng


def serve(count):
    with pynng.Rep0(recv_timeout=10000) as rep:
        listener = rep.listen("tcp://127.0.0.1:0")
        port = socket.ntohs(listener.local_address.port)
        print(f"url tcp://127.0.0.1:{port}", flush=True)
        for _ in range(count):
            msg = rep.recv_msg()
            rep.send(b"echo:" + msg.bytes)
        print("served", count, flush=True)


def ask(url, count):
    with pynng.Req0(dial=url, recv_timeout=10000) as req:
        for i in range(count):
            req.send(b"request %d" % i)
            print(req.recv().decode(), flush=True)


if __name__ == "__main__":
    if sys.argv[1] == "serve":
        serve(int(sys.argv[2]))
    else:
        ask(sys.argv[2], int(sys.argv[3]))
