"""Stages as plans: local (compose), dev and prod (remote hosts)."""
