"""TLS session tickets, kept in memory, for 0-RTT (``quic_0rtt=True`` only).

0-RTT lets a dialer that connected before send its first bytes (the SP
header and whatever the socket sends at once) with its very first packet.
It is off by default because early data can be **replayed**: anyone who
recorded the packet can send it again, and the listener cannot tell.  A
replayed REQ request would be executed twice, which breaks the at-most-once
delivery that REQ/REP (and SURVEYOR) callers rely on.  Turn it on only for
protocols and messages that tolerate duplicates (PUB, PUSH of idempotent
work), on both the listener (which then issues tickets) and the dialer.

* A listener's :class:`TicketStore` holds the tickets it issued; each is
  used once (aioquic's fetch removes it), the oldest are dropped past
  :data:`MAX_TICKETS`.
* Dialers share one process-wide store (:data:`client_tickets`), keyed by
  the server name and address they dialed, one ticket (the newest) each.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from aioquic.tls import SessionTicket

__all__ = ["MAX_TICKETS", "ClientTickets", "TicketStore", "client_tickets"]

#: Tickets a store keeps; the oldest go first.
MAX_TICKETS = 4096


class TicketStore:
    """A listener's issued tickets (aioquic's fetcher and handler)."""

    def __init__(self, limit: int = MAX_TICKETS) -> None:
        self._tickets: OrderedDict[bytes, SessionTicket] = OrderedDict()
        self._limit = limit

    def add(self, ticket: SessionTicket) -> None:
        """Keep a ticket the listener just issued."""
        self._tickets[ticket.ticket] = ticket
        while len(self._tickets) > self._limit:
            self._tickets.popitem(last=False)

    def pop(self, label: bytes) -> SessionTicket | None:
        """The ticket a client presents, removed: each is good once."""
        return self._tickets.pop(label, None)

    def __len__(self) -> int:
        return len(self._tickets)


class ClientTickets:
    """Tickets dialers received, one per server they dialed."""

    def __init__(self, limit: int = MAX_TICKETS) -> None:
        self._tickets: OrderedDict[tuple[Any, ...], SessionTicket] = OrderedDict()
        self._limit = limit

    def handler(self, key: tuple[Any, ...]) -> Any:
        """aioquic's ``session_ticket_handler`` for a dial to ``key``."""

        def keep(ticket: SessionTicket) -> None:
            self._tickets[key] = ticket
            self._tickets.move_to_end(key)
            while len(self._tickets) > self._limit:
                self._tickets.popitem(last=False)

        return keep

    def take(self, key: tuple[Any, ...]) -> SessionTicket | None:
        """The ticket for ``key`` if it is still valid (removed: a ticket is used once)."""
        ticket = self._tickets.pop(key, None)
        if ticket is None or not ticket.is_valid:
            return None
        return ticket

    def clear(self) -> None:
        """Forget every ticket."""
        self._tickets.clear()


#: The process-wide store of dialers' tickets.
client_tickets = ClientTickets()
