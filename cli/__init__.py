"""The `rollback` command: the one entry point for people. Thin: it parses, calls, prints."""
