"""purenng's transport conformance kit over quic:// and quic6://.

``bad_frames`` is the kit's one check that needs a raw TCP connection to the
listener; ``test_bad_input.py`` runs the same check over a raw QUIC
connection instead.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from purenng.testing import CHECKS, check_transport

from conftest import has_ipv6_loopback

if TYPE_CHECKING:
    from purenng.testing import DevCerts


async def test_quic_conforms(certs: DevCerts, purenng_leak_check: None) -> None:
    report = await check_transport(
        "quic://127.0.0.1:0", skip=["bad_frames"], tls_config=certs.server_config()
    )
    assert report.stream
    assert report.passed == [c for c in CHECKS if c != "bad_frames"]


async def test_quic6_conforms(certs: DevCerts, purenng_leak_check: None) -> None:
    if not has_ipv6_loopback():
        pytest.skip("no IPv6 loopback (::1) on this host")
    report = await check_transport(
        "quic6://[::1]:0", skip=["bad_frames"], tls_config=certs.server_config()
    )
    assert report.passed == [c for c in CHECKS if c != "bad_frames"]
