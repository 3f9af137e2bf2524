"""Churn: peers connecting and leaving at up to ~1,000 per second.

A purenng Pull listener is hit by :mod:`churner` (a child process, raw
sockets): up to 2,500 connections in at most 3 s, paced at 1,000 per
second, closing at every stage (before the SP header, after it, after a
whole message, in the middle of one; FIN or RST).  Meanwhile a long-lived
purenng pusher sends numbered messages on one pipe.

Checked afterwards: every number of the long-lived pipe arrived once, in
order; every whole message a churn connection sent before its FIN arrived;
the listener still accepts (a fresh peer gets a message through); no pipe is
left (only the long-lived one), and fds, threads and tasks are back to
baseline (``purenng_leak_check``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

import purenng

from .conftest import T, record, rss
from .faultpeer import check, make

pytestmark = pytest.mark.usefixtures("purenng_leak_check")

CHURNER = Path(__file__).with_name("churner.py")
PUSH0 = 0x50
SECONDS = 3.0
MOST = 2500
RATE = 1000.0


async def test_churn_against_a_listener() -> None:
    rss_before = rss()
    async with (
        purenng.Pull0(recv_timeout=T) as pull,
        purenng.Push0(send_timeout=T) as steady,
    ):
        lst = await pull.alisten("tcp://127.0.0.1:0")
        await steady.adial(lst.url, block=True)
        stop = asyncio.Event()

        async def send_steady() -> int:
            i = 0
            while not stop.is_set():
                await steady.asend(make(i, 24))
                i += 1
                await asyncio.sleep(0.001 if i % 4 == 0 else 0)
            return i

        sender = asyncio.ensure_future(send_steady())
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            str(CHURNER),
            "127.0.0.1",
            str(lst.port),
            str(SECONDS),
            str(MOST),
            str(RATE),
            str(PUSH0),
            stdout=subprocess.PIPE,
        )
        last = -1
        churned: set[bytes] = set()

        async def receive() -> None:
            nonlocal last
            while True:
                data = await pull.arecv()
                if data.startswith(b"churn"):
                    assert data not in churned, f"{data!r} twice"
                    churned.add(data)
                    continue
                seq, ok = check(data)
                assert ok, f"steady message {seq} damaged"
                assert seq == last + 1, f"steady pipe: {seq} after {last}"
                last = seq

        receiver = asyncio.ensure_future(receive())
        try:
            out, _ = await asyncio.wait_for(proc.communicate(), SECONDS + T)
            report = json.loads(out)
            stop.set()
            sent = await asyncio.wait_for(sender, T)
            async with asyncio.timeout(T):
                while last < sent - 1 or len(churned) < report["messages"]:
                    assert not receiver.done(), receiver.exception()
                    await asyncio.sleep(0.01)
        finally:
            stop.set()
            receiver.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await receiver
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
        assert report["connections"] >= 500, report
        assert len(churned) == report["messages"]
        # Only the long-lived pipe is left once the churn settles.
        async with asyncio.timeout(T):
            while len(pull.pipes) != 1:
                await asyncio.sleep(0.01)
        async with purenng.Push0(dial=lst.url, send_timeout=T) as fresh:
            await fresh.asend(b"fresh")
            assert await pull.arecv() == b"fresh"
        s = pull.stats()
        record(
            messages=last + 1 + len(churned),
            churn_connections=report["connections"],
            churn_connect_failures=report["failures"],
        )
        print(
            f"churn: {report['connections']} connections in {report['elapsed']:.2f} s, "
            f"{report['failures']} failures, {s['pipes_added']} pipes added, "
            f"{s['handshake_failures']} handshake failures, steady {last + 1} messages, "
            f"rss {(rss() - rss_before) / 2**20:+.1f} MiB"
        )
