"""Blocking-API checks over quic://, run in a child process by test_blocking.py.

The child is started with ``PURENNG_LOOP`` set, so purenng's background
loop (which owns sockets made outside a running loop) is of the kind under
test; the script prints the kind it found, then ``ok``.
"""

from __future__ import annotations

import sys

import purenng
from purenng.testing import make_dev_certs

T = 10.0


def main() -> int:
    certs = make_dev_certs()
    with (
        purenng.Pull0(recv_timeout=T, tls_config=certs.server_config()) as pull,
        purenng.Push0(send_timeout=T, tls_config=certs.client_config()) as push,
    ):
        print(type(pull.loop).__module__.split(".")[0])
        lst = pull.listen("quic://127.0.0.1:0")
        push.dial(lst.url, block=True)
        for size in (64, 1024, 300_000):
            for i in range(50):
                push.send(bytes([i]) * size)
            for i in range(50):
                assert pull.recv() == bytes([i]) * size
    with (
        purenng.Rep0(recv_timeout=T, tls_config=certs.server_config()) as rep,
        purenng.Req0(recv_timeout=T, tls_config=certs.client_config()) as req,
    ):
        lst = (
            rep.listen("quic6://[::1]:0")
            if "--ipv6" in sys.argv
            else rep.listen("quic://127.0.0.1:0")
        )
        req.dial(lst.url, block=True)
        for i in range(20):
            req.send(b"q%d" % i)
            assert rep.recv() == b"q%d" % i
            rep.send(b"a%d" % i)
            assert req.recv() == b"a%d" % i
    print("ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
