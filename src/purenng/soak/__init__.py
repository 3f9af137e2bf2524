"""``purenng soak``: hours of mixed traffic with peers dying, judged at the end.

``python -m purenng.soak --minutes 30`` (``make soak``) runs PUSH/PULL,
REQ/REP, PUB/SUB, SURVEYOR/RESPONDENT, BUS and PAIR1 traffic over every
built-in transport (tcp, ipc, inproc, tls+tcp, ws, wss) at once, kills and
restarts peer processes and closes and reopens dialers on a schedule, and
samples each child's RSS, fds and threads.  It exits non-zero on a loss on
a reliable path, a corrupt message, a hang or unbounded growth, and writes
a summary table, a JSON file and a PNG figure.  docs/soak.md is the guide.

Modules: :mod:`.traffic` (the child processes), :mod:`.runner` (the
schedule, loss accounting and hang checks), :mod:`.report` (growth
verdicts, table, figure), :mod:`.command` (the command line).
Nothing here is imported by ``import purenng``.
"""

from __future__ import annotations

__all__: list[str] = []
