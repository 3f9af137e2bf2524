"""purenng's built-in transports, each loaded through its entry point."""
