"""Resolved targets: an environment's names, paths and transport, computed from the config."""
