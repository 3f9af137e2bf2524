"""What a ``purenng`` command is: the contract every subcommand implements.

``purenng NAME ...`` runs the command registered under ``NAME`` in the
entry-point group ``purenng.commands``.  purenng's own commands (``cat``,
``plugins``, ``bench`` ...) are registered there exactly like a third-party
one::

    [project.entry-points."purenng.commands"]
    zerotier = "purenng_zerotier.command"     # a module, or "module:object"

The entry point's value is a module (or an object in a module) with:

* ``HELP``: a one-line description, a string constant.  It is the
  description of ``purenng NAME --help``.  (A string constant rather than the
  docstring, because ``python -OO`` strips docstrings.)
* ``add_arguments(parser)``: add the command's options to an
  :class:`argparse.ArgumentParser` whose ``prog`` is ``purenng NAME``.
* ``run(args) -> int``: do the work with the parsed
  :class:`argparse.Namespace`; the return value is the exit status (None
  counts as 0).  KeyboardInterrupt exits with 130.

Plugin authors import :class:`Command` from :mod:`purenng.plugin`.

Rules (enforced by :mod:`purenng.cli.main`):

* ``purenng --help`` imports no command: it lists them from package
  metadata.  purenng's own carry their one-line help in
  :data:`purenng.cli.main.BUILTIN_HELP`; a third-party command is shown with
  its distribution's name and summary.
* A command module is imported only when its command runs.  One that fails
  to import, or lacks ``add_arguments`` or ``run``, breaks only its own
  command: ``purenng NAME`` then prints an error naming the distribution, the
  entry point and the cause, and exits with status 1.
* A name claimed by purenng and by another distribution stays purenng's; a
  warning names both.  A name claimed by two other distributions runs
  neither until ``plugins.toml`` disables one (``[plugins] disabled =
  ["dist:NAME"]``).
* ``[plugins] disabled`` applies to third-party commands as to transports.
  ``PURENNG_DISABLE_PLUGIN_AUTOLOAD`` does not: a command loads only when
  someone types its name, which is never automatic.  purenng's own commands
  are always available.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    import argparse

__all__ = ["GROUP", "Command"]

#: The entry-point group of ``purenng`` subcommands.
GROUP = "purenng.commands"


@runtime_checkable
class Command(Protocol):
    """A ``purenng`` subcommand: usually a module, registered in ``purenng.commands``.

    Example (``src/purenng_hello/command.py``)::

        import argparse

        HELP = "print a greeting"

        def add_arguments(parser: argparse.ArgumentParser) -> None:
            parser.add_argument("name")

        def run(args: argparse.Namespace) -> int:
            print(f"hello, {args.name}")
            return 0
    """

    @property
    def HELP(self) -> str:
        """One line: what the command does (the description of ``purenng NAME --help``)."""
        ...

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        """Add the command's options and positional arguments to ``parser``."""
        ...

    def run(self, args: argparse.Namespace) -> int:
        """Run the command; the return value is the exit status."""
        ...
