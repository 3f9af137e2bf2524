"""Helpers shared by purenng's own test suite (not part of the installed package).

* :mod:`support.waiting`: poll a condition with a deadline (``wait_for`` from
  a thread, ``await_for`` on a loop); a timeout is an ``AssertionError``
  naming what was awaited.
* :mod:`support.raw_sp`: a hand-made SP peer over a plain socket (header,
  frames, bounded reads) and a listener that hands such peers out.
* :mod:`support.peers`: child processes for external peers (line reader
  with a deadline, kill on close, skip or fail when a peer is missing) and
  ``closing_all`` for fixtures that close everything they started.

``tests/`` is on ``sys.path`` while pytest runs (``tests/conftest.py`` is a
rootdir conftest, imported in pytest's default ``prepend`` mode), so test
modules import these as ``from support.waiting import wait_for``.
"""
