"""Every SP protocol pair, purenng to purenng over quic://, with each side listening."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import purenng
import pytest

from support import T, until

if TYPE_CHECKING:
    from purenng.testing import DevCerts

Exchange = "Callable[[Any, Any], Awaitable[None]]"


async def _reqrep(req: Any, rep: Any) -> None:
    for i in range(5):
        await req.asend(b"question %d" % i)
        assert await rep.arecv() == b"question %d" % i
        await rep.asend(b"answer %d" % i)
        assert await req.arecv() == b"answer %d" % i


async def _pipeline(push: Any, pull: Any) -> None:
    for i in range(200):
        await push.asend(b"job %d" % i)
    for i in range(200):
        assert await pull.arecv() == b"job %d" % i


async def _pair(a: Any, b: Any) -> None:
    await a.asend(b"ping")
    assert await b.arecv() == b"ping"
    await b.asend(b"pong")
    assert await a.arecv() == b"pong"


async def _pubsub(pub: Any, sub: Any) -> None:
    sub.subscribe(b"news")
    await pub.asend(b"weather: rain")  # filtered out by the subscriber
    await pub.asend(b"news: hello")
    assert await sub.arecv() == b"news: hello"


async def _survey(surveyor: Any, respondent: Any) -> None:
    await surveyor.asend(b"who is there?")
    assert await respondent.arecv() == b"who is there?"
    await respondent.asend(b"me")
    assert await surveyor.arecv() == b"me"


async def _bus(a: Any, b: Any) -> None:
    await a.asend(b"to b")
    assert await b.arecv() == b"to b"
    await b.asend(b"to a")
    assert await a.arecv() == b"to a"


PAIRS = [
    ("Req0", "Rep0", _reqrep, {}),
    ("Push0", "Pull0", _pipeline, {}),
    ("Pair0", "Pair0", _pair, {}),
    ("Pair1", "Pair1", _pair, {}),
    ("Pub0", "Sub0", _pubsub, {}),
    ("Surveyor0", "Respondent0", _survey, {"survey_time": T}),
    ("Bus0", "Bus0", _bus, {}),
]


@pytest.mark.parametrize("listening", ["first", "second"])
@pytest.mark.parametrize(
    ("first", "second", "exchange", "first_options"), PAIRS, ids=[f"{a}-{b}" for a, b, *_ in PAIRS]
)
async def test_protocol_pair(
    certs: DevCerts,
    first: str,
    second: str,
    exchange: Any,
    first_options: dict[str, Any],
    listening: str,
    purenng_leak_check: None,
) -> None:
    a = getattr(purenng, first)(recv_timeout=T, **first_options)
    b = getattr(purenng, second)(recv_timeout=T)
    async with a, b:
        lsock, dsock = (a, b) if listening == "first" else (b, a)
        lst = await lsock.alisten("quic://127.0.0.1:0", tls_config=certs.server_config())
        await dsock.adial(lst.url, block=True, tls_config=certs.client_config())
        await until(lambda: bool(a.pipes) and bool(b.pipes), "both pipes")
        assert a.pipes[0].transport == "quic"
        await exchange(a, b)


async def test_req_rep_contexts_over_one_connection(
    certs: DevCerts, purenng_leak_check: None
) -> None:
    """Many concurrent REQ contexts share one QUIC connection (one stream)."""
    import asyncio

    async with purenng.Rep0(recv_timeout=T) as rep, purenng.Req0(recv_timeout=T) as req:
        lst = await rep.alisten("quic://127.0.0.1:0", tls_config=certs.server_config())
        await req.adial(lst.url, block=True, tls_config=certs.client_config())

        async def serve() -> None:
            for _ in range(50):
                msg = await rep.arecv_msg()
                await rep.asend_msg(msg)  # echo, with the request's header

        async def ask(i: int) -> bytes:
            ctx = req.new_context()
            await ctx.asend(b"n%d" % i)
            got: bytes = await ctx.arecv()
            return got

        server = asyncio.ensure_future(serve())
        answers = await asyncio.gather(*(ask(i) for i in range(50)))
        await server
        assert answers == [b"n%d" % i for i in range(50)]
        assert len(rep.pipes) == 1


async def test_sp_header_travels_with_the_handshake(
    certs: DevCerts, purenng_leak_check: None
) -> None:
    """No round trip of SP's own: the dialer's SP header came with its Finished."""
    async with purenng.Pair0(recv_timeout=T) as a, purenng.Pair0(recv_timeout=T) as b:
        lst = await a.alisten("quic://127.0.0.1:0", tls_config=certs.server_config())
        await b.adial(lst.url, block=True, tls_config=certs.client_config())
        await until(lambda: bool(a.pipes), "the listener's pipe")
        assert a.pipes[0].extra("quic").first_flight_carried_sp  # type: ignore[attr-defined]
