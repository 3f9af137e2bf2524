"""Compatibility layers: other libraries' APIs on top of purenng.

* :mod:`purenng.compat.pynng` presents pynng 0.9's public surface (class
  names, constructor keywords, options in milliseconds, pynng's exception
  names) so that ``import purenng.compat.pynng as pynng`` runs pynng
  programs unchanged; ``purenng.compat.pynng.install()`` makes a plain
  ``import pynng`` resolve there too.  See ``docs/compat-pynng.md``.

Nothing here is imported by ``import purenng``: a layer loads only when it
is imported by name.
"""
