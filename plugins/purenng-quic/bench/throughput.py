"""PUSH/PULL throughput over quic:// and tls+tcp://, async and blocking (messages per second).

A quick measurement, not the bench suite: one PUSH, one PULL, loopback,
each size and API once per transport, the best of ``--repeat`` runs::

    python bench/throughput.py --count 20000 --repeat 3
"""

from __future__ import annotations

import argparse
import asyncio
import threading
import time

import purenng
from purenng.testing import make_dev_certs

CERTS = make_dev_certs()
TRANSPORTS = ("quic", "tls+tcp")
#: Extra listener and dialer options per transport (``--datagram`` sets quic's).
EXTRA: dict[str, dict[str, int]] = {"quic": {}, "tls+tcp": {}}


def _url(transport: str) -> str:
    return f"{transport}://127.0.0.1:0"


async def run_async(transport: str, size: int, count: int) -> float:
    body = b"x" * size
    async with (
        purenng.Pull0(tls_config=CERTS.server_config(), recv_buffer=1024) as pull,
        purenng.Push0(tls_config=CERTS.client_config()) as push,
    ):
        lst = await pull.alisten(_url(transport), **EXTRA[transport])
        await push.adial(lst.url, block=True, **EXTRA[transport])

        async def send() -> None:
            for _ in range(count):
                await push.asend(body)

        await push.asend(body)
        await pull.arecv()  # warm
        start = time.perf_counter()
        sender = asyncio.ensure_future(send())
        for _ in range(count):
            await pull.arecv()
        elapsed = time.perf_counter() - start
        await sender
    return count / elapsed


def run_blocking(transport: str, size: int, count: int) -> float:
    body = b"x" * size
    with (
        purenng.Pull0(tls_config=CERTS.server_config(), recv_buffer=1024) as pull,
        purenng.Push0(tls_config=CERTS.client_config()) as push,
    ):
        lst = pull.listen(_url(transport), **EXTRA[transport])
        push.dial(lst.url, block=True, **EXTRA[transport])
        push.send(body)
        pull.recv()

        def send() -> None:
            for _ in range(count):
                push.send(body)

        start = time.perf_counter()
        t = threading.Thread(target=send)
        t.start()
        for _ in range(count):
            pull.recv()
        elapsed = time.perf_counter() - start
        t.join()
    return count / elapsed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--count", type=int, default=20000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--sizes", default="64,1024")
    ap.add_argument("--datagram", type=int, help="quic_max_datagram_size (default: the option's)")
    ap.add_argument("--loop", choices=("asyncio", "uvloop"), default="asyncio", help="async runs")
    ap.add_argument("--transports", default=",".join(TRANSPORTS))
    args = ap.parse_args()
    if args.datagram:
        EXTRA["quic"]["quic_max_datagram_size"] = args.datagram
    runner = asyncio.run
    if args.loop == "uvloop":
        import uvloop

        runner = uvloop.run
    print(f"{'transport':8} {'api':8} {'size':>6} {'msgs/s':>10} {'MB/s':>8}")
    for transport in args.transports.split(","):
        for api in ("async", "blocking"):
            for size in (int(s) for s in args.sizes.split(",")):
                best = 0.0
                for _ in range(args.repeat):
                    if api == "async":
                        rate = runner(run_async(transport, size, args.count))
                    else:
                        rate = run_blocking(transport, size, args.count)
                    best = max(best, rate)
                print(f"{transport:8} {api:8} {size:6d} {best:10.0f} {best * size / 1e6:8.2f}")


if __name__ == "__main__":
    main()
