"""The ``purenng`` command line: one command, one module per subcommand."""
