"""Typed plan states: what the steps of a plan find and do, field by field (no dict of strings)."""
