"""What the fault suite found about the leak check it relies on.

uvloop names its default executor's workers ``uvloop_N``; an idle one is no
more a leak than asyncio's ``asyncio_N`` (``asyncio.to_thread`` in a test on
uvloop left one behind and failed the check).
"""

from __future__ import annotations

import asyncio
import importlib.util

import pytest

from purenng.testing import find_leaks, snapshot_resources


@pytest.mark.skipif(importlib.util.find_spec("uvloop") is None, reason="uvloop not installed")
def test_uvloop_executor_workers_are_not_leaks() -> None:
    import uvloop

    before = snapshot_resources()
    loop = uvloop.new_event_loop()
    try:
        loop.run_until_complete(asyncio.to_thread(lambda: None))
        leaks = find_leaks(before)
        assert not leaks.threads, leaks.describe()
    finally:
        loop.run_until_complete(loop.shutdown_default_executor())
        loop.close()
