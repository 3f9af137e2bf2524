"""Small helpers shared by the tests."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable

#: Seconds a wait may take before the test fails: only stops hangs.
T = 10.0


async def until(cond: Callable[[], bool], what: str = "condition", timeout: float = T) -> None:
    """Poll ``cond`` until it holds; fail after ``timeout`` seconds."""
    try:
        async with asyncio.timeout(timeout):
            while not cond():  # noqa: ASYNC110 - conditions span sockets with no shared event
                await asyncio.sleep(0.005)
    except TimeoutError:
        raise AssertionError(f"timed out waiting for {what}") from None
