"""Shared setup of purenng-quic's tests.

* **Plugins.**  Only purenng's own plugins and this one load (a
  ``plugins.toml`` that enables ``purenng-quic`` under
  ``PURENNG_DISABLE_PLUGIN_AUTOLOAD=1``), so another installed plugin cannot
  change what is tested.
* **Both event loops.**  Every async test runs once on the standard asyncio
  loop and once on uvloop when it is installed (pytest-asyncio's
  ``pytest_asyncio_loop_factories``), as purenng's own transport tests do.
  Blocking tests run in a child process per loop kind (``PURENNG_LOOP``,
  see ``test_blocking.py``).
* **Certificates** are made once per session in memory.
* Sockets only on 127.0.0.1 and ::1.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import socket
import tempfile
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from purenng.testing import DevCerts

_CONFIG = os.path.join(tempfile.mkdtemp(prefix="purenng-quic-tests-"), "plugins.toml")
with open(_CONFIG, "w") as _f:
    _f.write('[plugins]\nenabled = ["purenng-quic"]\n')
os.environ["PURENNG_PLUGINS"] = _CONFIG
os.environ["PURENNG_DISABLE_PLUGIN_AUTOLOAD"] = "1"

HAVE_UVLOOP = importlib.util.find_spec("uvloop") is not None
#: Loop kinds the tests run on.
LOOP_KINDS = ("asyncio", "uvloop") if HAVE_UVLOOP else ("asyncio",)


def pytest_asyncio_loop_factories(
    config: pytest.Config, item: pytest.Item
) -> Mapping[str, Callable[[], asyncio.AbstractEventLoop]]:
    if not HAVE_UVLOOP:
        return {"asyncio": asyncio.new_event_loop}
    import uvloop

    return {"asyncio": asyncio.new_event_loop, "uvloop": uvloop.new_event_loop}


def has_ipv6_loopback() -> bool:
    """Whether [::1] can be bound for UDP here."""
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as s:
            s.bind(("::1", 0))
    except OSError:
        return False
    return True


@pytest.fixture(scope="session")
def certs() -> DevCerts:
    """A CA, a server certificate (localhost, 127.0.0.1, ::1) and a client certificate."""
    from purenng.testing import make_dev_certs

    return make_dev_certs()


@pytest.fixture(scope="session")
def other() -> DevCerts:
    """A second, unrelated CA with its own certificates."""
    from purenng.testing import make_dev_certs

    return make_dev_certs()
