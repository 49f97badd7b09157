"""Pure argv builders (no I/O): each function returns a tuple of strings to run."""
