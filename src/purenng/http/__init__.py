"""``purenng.http``: an asyncio HTTP/1.1 server whose port SP sockets share.

One port serves static files, REST handlers and SP sockets over WebSocket
(``ws://``/``wss://`` listeners join the server of their host and port), as
NNG's shared HTTP server does.  HTTP is parsed by h11 (the ``ws`` extra:
``pip install 'purenng[ws]'``); importing :mod:`purenng` does not import
this package.

* :class:`Server`: ``static()``, ``route()``, ``sp_url()``/``listen_sp()``,
  limits against slow and hostile clients, TLS (see :mod:`purenng.http.server`).
* :class:`Client`: a minimal GET/POST client (see :mod:`purenng.http.client`).
* :class:`Request`, :class:`Response`, :class:`HTTPError`,
  :func:`json_response`, :func:`text_response`: what handlers take and give.
"""

from __future__ import annotations

from ._types import HTTPError as HTTPError
from ._types import Request as Request
from ._types import Response as Response
from ._types import json_response as json_response
from ._types import text_response as text_response
from .client import Client as Client
from .client import ClientResponse as ClientResponse
from .server import Server as Server

__all__ = [
    "Client",
    "ClientResponse",
    "HTTPError",
    "Request",
    "Response",
    "Server",
    "json_response",
    "text_response",
]
