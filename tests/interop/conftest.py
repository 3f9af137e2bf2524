"""Fixtures of the interop tests: peer factories that always clean up.

``spawn_peer(lib, proto, ...)`` starts an NNG peer process (pynng or nng)
and ``spawn_cli(name, *args)`` runs nngcat or nanocat; both skip the test
when the peer is missing (fail with ``PURENNG_REQUIRE_PEERS`` set), and
every process a test started is closed, killed if need be, at teardown.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from .peers import Addresses, CliPeer, NngPeerProcess, require_peer

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator


@pytest.fixture(scope="session")
def interop_ipc_dir() -> Iterator[Path]:
    """One short directory for every ipc path of the run (nanomsg: <= 122 bytes)."""
    path = Path(tempfile.mkdtemp(prefix="pnio-", dir="/tmp"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def addr(interop_ipc_dir: Path) -> Addresses:
    """URL factory for the current test."""
    return Addresses(interop_ipc_dir)


@pytest.fixture
def spawn_peer() -> Iterator[Callable[..., NngPeerProcess]]:
    """Start pynng/nng peer processes; all are closed at teardown."""
    started: list[NngPeerProcess] = []

    def spawn(lib: str, proto: str, **kw: Any) -> NngPeerProcess:
        require_peer(lib)
        peer = NngPeerProcess(lib, proto, **kw)
        started.append(peer)
        return peer

    try:
        yield spawn
    finally:
        for peer in reversed(started):
            peer.close()


@pytest.fixture
def spawn_cli() -> Iterator[Callable[..., CliPeer]]:
    """Run nngcat/nanocat; every tool still running at teardown is killed."""
    started: list[CliPeer] = []

    def spawn(tool: str, *args: str) -> CliPeer:
        require_peer(tool)
        peer = CliPeer([tool, *args])
        started.append(peer)
        return peer

    try:
        yield spawn
    finally:
        for peer in reversed(started):
            peer.close()
