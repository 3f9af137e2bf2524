"""PUSH v0 / PULL v0: round robin, fair queueing, back-pressure, no loss (wire-protocols.md §1.4)"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter

import pytest

import purenng
from purenng.core.errors import NotSupported, Timeout, TryAgain
from purenng.protocols.pipeline0 import Pull0Protocol, Push0Protocol
from support.waiting import await_for, wait_for

LONG = 5.0  # only to stop hangs


def test_identity() -> None:
    assert (Push0Protocol.self_id, Push0Protocol.peer_id) == (0x50, 0x51)
    assert (Push0Protocol.self_name, Push0Protocol.peer_name) == ("push", "pull")
    assert (Pull0Protocol.self_id, Pull0Protocol.peer_id) == (0x51, 0x50)
    assert (Pull0Protocol.self_name, Pull0Protocol.peer_name) == ("pull", "push")
    with purenng.Push0() as push, purenng.Pull0() as pull:
        assert push.protocol_cls is Push0Protocol
        assert pull.protocol_cls is Pull0Protocol
        assert (push.protocol_info.self_id, push.protocol_info.peer_id) == (0x50, 0x51)
        assert (pull.protocol_info.self_id, pull.protocol_info.peer_id) == (0x51, 0x50)


def test_push_cannot_receive_pull_cannot_send() -> None:
    with purenng.Push0() as push, purenng.Pull0() as pull:
        with pytest.raises(NotSupported):
            push.recv()
        with pytest.raises(NotSupported):
            push.recv_msg()
        with pytest.raises(NotSupported):
            pull.send(b"x")


async def test_push_cannot_receive_pull_cannot_send_async() -> None:
    async with purenng.Push0() as push, purenng.Pull0() as pull:
        with pytest.raises(NotSupported):
            await push.arecv()
        with pytest.raises(NotSupported):
            await pull.asend(b"x")


def test_push_without_pullers_waits() -> None:
    with purenng.Push0(send_timeout=0.2) as push:
        with pytest.raises(TryAgain):
            push.send(b"x", block=False)
        with pytest.raises(Timeout):
            push.send(b"x")


def test_zero_length_messages() -> None:
    with (
        purenng.Pull0(listen="tcp://127.0.0.1:0", recv_timeout=LONG) as pull,
        purenng.Push0(dial=pull.listeners[0].url, send_timeout=LONG) as push,
    ):
        push.send(b"")
        push.send(b"x")
        push.send(b"")
        assert [pull.recv(), pull.recv(), pull.recv()] == [b"", b"x", b""]


async def test_round_robin_across_three_pullers() -> None:
    n = 300
    async with purenng.Push0(listen="tcp://127.0.0.1:0", send_timeout=LONG) as push:
        url = push.listeners[0].url
        async with (
            purenng.Pull0(dial=url, recv_timeout=LONG) as p1,
            purenng.Pull0(dial=url, recv_timeout=LONG) as p2,
            purenng.Pull0(dial=url, recv_timeout=LONG) as p3,
        ):
            pullers = [p1, p2, p3]
            await await_for(lambda: len(push.pipes) == 3)
            for i in range(n):
                await push.asend(b"%d" % i)
            got: list[list[int]] = [[], [], []]

            async def drain(k: int) -> None:
                while True:
                    got[k].append(int(await pullers[k].arecv()))

            tasks = [asyncio.ensure_future(drain(k)) for k in range(3)]
            try:
                await await_for(lambda: sum(map(len, got)) >= n)
            finally:
                for t in tasks:
                    t.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
            counts = [len(g) for g in got]
            assert sum(counts) == n
            assert max(counts) - min(counts) <= 1, counts
            assert sorted(x for g in got for x in g) == list(range(n))
            for g in got:
                assert g == sorted(g)


async def test_pull_fair_queues_from_three_pushers() -> None:
    n = 100
    async with purenng.Pull0(listen="tcp://127.0.0.1:0", recv_timeout=LONG) as pull:
        url = pull.listeners[0].url
        async with (
            purenng.Push0(dial=url, send_timeout=LONG) as s1,
            purenng.Push0(dial=url, send_timeout=LONG) as s2,
            purenng.Push0(dial=url, send_timeout=LONG) as s3,
        ):
            await await_for(lambda: len(pull.pipes) == 3)
            for i in range(n):
                for k, s in enumerate((s1, s2, s3)):
                    await s.asend(b"%d:%d" % (k, i))
            per_pipe: dict[int, list[bytes]] = {}
            for _ in range(3 * n):
                msg = await pull.arecv_msg()
                assert msg.pipe is not None
                per_pipe.setdefault(msg.pipe.id, []).append(msg.bytes)
            assert len(per_pipe) == 3
            by_sender: dict[bytes, list[int]] = {}
            for bodies in per_pipe.values():
                sender = bodies[0].split(b":")[0]
                assert all(b.split(b":")[0] == sender for b in bodies)
                by_sender[sender] = [int(b.split(b":")[1]) for b in bodies]
            assert by_sender == {b"0": list(range(n)), b"1": list(range(n)), b"2": list(range(n))}


def test_pull_serves_every_pusher_under_back_pressure() -> None:
    """With the puller behind, all pushers wait; as it reads, each one makes progress."""
    n = 200
    body = b"\x00" * 4096
    with purenng.Pull0(listen="tcp://127.0.0.1:0", recv_buffer=4, recv_timeout=LONG) as pull:
        url = pull.listeners[0].url
        pushers = [purenng.Push0(dial=url, send_timeout=LONG) for _ in range(3)]
        try:
            wait_for(lambda: len(pull.pipes) == 3)
            errors: list[BaseException] = []

            def run(k: int) -> None:
                try:
                    for i in range(n):
                        pushers[k].send(b"%d:%d:" % (k, i) + body)
                except BaseException as exc:  # pragma: no cover - reported below
                    errors.append(exc)

            threads = [threading.Thread(target=run, args=(k,)) for k in range(3)]
            for t in threads:
                t.start()
            seen: Counter[bytes] = Counter()
            last: dict[bytes, int] = {}
            try:
                for _ in range(3 * n):
                    sender, index, _rest = pull.recv().split(b":", 2)
                    seen[sender] += 1
                    assert int(index) == last.get(sender, -1) + 1  # per-pusher order
                    last[sender] = int(index)
            finally:
                for t in threads:
                    t.join(LONG)
            assert not errors
            assert seen == {b"0": n, b"1": n, b"2": n}
        finally:
            for p in pushers:
                p.close()


def test_no_loss_with_a_slow_consumer() -> None:
    """20,000 messages through a small receive queue all arrive, in order."""
    n = 20_000
    with (
        purenng.Pull0(listen="tcp://127.0.0.1:0", recv_buffer=8, recv_timeout=LONG) as pull,
        purenng.Push0(dial=pull.listeners[0].url, send_timeout=LONG) as push,
    ):
        errors: list[BaseException] = []

        def produce() -> None:
            try:
                for i in range(n):
                    push.send(i.to_bytes(4, "big"))
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)

        t = threading.Thread(target=produce)
        t.start()
        try:
            for i in range(n):
                assert int.from_bytes(pull.recv(), "big") == i
                if i % 2000 == 0:
                    time.sleep(0.01)  # a consumer that falls behind now and then
        finally:
            t.join(LONG)
        assert not errors
        pull.recv_timeout = 0.1
        with pytest.raises(Timeout):
            pull.recv()


def test_wrong_peer_protocol_refused_sockets_keep_working() -> None:
    with purenng.Pair0(listen="tcp://127.0.0.1:0", recv_timeout=LONG) as pair:
        url = pair.listeners[0].url
        with purenng.Push0(dial=url, send_timeout=0.2) as push:
            wait_for(lambda: pair.stats()["protocol_mismatch"] >= 1)
            wait_for(lambda: push.stats()["protocol_mismatch"] >= 1)
            assert not pair.pipes
            assert not push.pipes
            with pytest.raises(TryAgain):
                push.send(b"nowhere", block=False)
            # Both sockets still serve peers that speak the right protocol.
            with purenng.Pair0(dial=url, send_timeout=LONG, recv_timeout=LONG) as other:
                other.send(b"pair ok")
                assert pair.recv() == b"pair ok"
                pair.send(b"back")
                assert other.recv() == b"back"
            with purenng.Pull0(listen="tcp://127.0.0.1:0", recv_timeout=LONG) as pull:
                push.dial(pull.listeners[0].url)
                push.send_timeout = LONG
                push.send(b"push ok")
                assert pull.recv() == b"push ok"
