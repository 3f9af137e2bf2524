"""Connection migration: the dialer's local UDP address changes mid-connection.

``pipe.extra("quic").rebind()`` moves the dialer's connection to a fresh
UDP socket (a new local port) and a new connection id; the listener
validates the new path and answers there.  The pipe, and the messages in
flight, carry on.
"""

from __future__ import annotations

import asyncio
import random
from typing import TYPE_CHECKING

import purenng
import pytest

from support import T, extra, until

if TYPE_CHECKING:
    from purenng.testing import DevCerts


async def _connected(certs: DevCerts, a: purenng.Pair0, b: purenng.Pair0) -> None:
    lst = await a.alisten("quic://127.0.0.1:0", tls_config=certs.server_config(), recv_max_size=0)
    await b.adial(lst.url, block=True, tls_config=certs.client_config(), recv_max_size=0)
    await until(lambda: bool(a.pipes), "the listener's pipe")


async def test_messages_keep_flowing_after_a_rebind(
    certs: DevCerts, purenng_leak_check: None
) -> None:
    async with purenng.Pair0(recv_timeout=T) as a, purenng.Pair0(recv_timeout=T) as b:
        await _connected(certs, a, b)
        pa, pb = a.pipes[0], b.pipes[0]
        client, server = extra(pb, "quic"), extra(pa, "quic")
        await b.asend(b"before")
        assert await a.arecv() == b"before"
        old = client.local_address
        assert server.peer_address[1] == old[1]

        new = await client.rebind()
        assert new[1] != old[1]
        for i in range(20):
            await b.asend(b"after %d" % i)
            assert await a.arecv() == b"after %d" % i
            await a.asend(b"reply %d" % i)
            assert await b.arecv() == b"reply %d" % i
        await until(lambda: server.peer_address[1] == new[1], "the listener to follow")
        assert extra(pa, "quic_peer_address")[1] == new[1]
        # Still the same pipes: nothing was redialed.
        assert a.pipes == [pa]
        assert b.pipes == [pb]

        # And again.
        newer = await client.rebind()
        await b.asend(b"third address")
        assert await a.arecv() == b"third address"
        await until(lambda: server.peer_address[1] == newer[1], "the listener to follow")


async def test_rebind_during_a_large_transfer(certs: DevCerts, purenng_leak_check: None) -> None:
    body = random.Random(7).randbytes(4 << 20)
    async with purenng.Pair0(recv_timeout=T) as a, purenng.Pair0(recv_timeout=T) as b:
        await _connected(certs, a, b)
        client = extra(b.pipes[0], "quic")
        got = asyncio.ensure_future(a.arecv())
        await b.asend(body)
        await asyncio.sleep(0.01)  # part of it is in flight
        await client.rebind()
        assert await asyncio.wait_for(got, T) == body
        await a.asend(b"done")
        assert await b.arecv() == b"done"


async def test_only_a_dialer_rebinds(certs: DevCerts, purenng_leak_check: None) -> None:
    async with purenng.Pair0(recv_timeout=T) as a, purenng.Pair0(recv_timeout=T) as b:
        await _connected(certs, a, b)
        server = extra(a.pipes[0], "quic")
        assert not server.is_client
        with pytest.raises(purenng.NotSupported):
            await server.rebind()
