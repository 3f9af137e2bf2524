"""purenng's built-in protocols, each loaded through its entry point."""
