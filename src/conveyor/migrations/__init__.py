"""conveyor's Diesel-compatible migration engine.

Library API (imported lazily so that ``import conveyor.migrations`` stays cheap and psycopg is
loaded only when a database is used)::

    from conveyor.migrations import discover, Migrator
    m = Migrator("postgresql://...", "migrations")
    m.status(); m.plan(); m.run(); m.revert(1); m.revert(all=True); m.redo(1)

The core (discovery, engine, cli) imports only the standard library and psycopg, so it can run
inside the application's image with ``python -m conveyor.migrations run ...``.
"""

from __future__ import annotations

_EXPORTS = {
    "Migration": "conveyor.migrations.discovery",
    "discover": "conveyor.migrations.discovery",
    "version_from_name": "conveyor.migrations.discovery",
    "MigrationError": "conveyor.migrations.errors",
    "DiscoveryError": "conveyor.migrations.errors",
    "MigrationFailed": "conveyor.migrations.errors",
    "LockTimeout": "conveyor.migrations.errors",
    "DriftError": "conveyor.migrations.errors",
    "NotRevertible": "conveyor.migrations.errors",
    "ConnectionFailed": "conveyor.migrations.errors",
    "Migrator": "conveyor.migrations.engine",
    "Status": "conveyor.migrations.engine",
    "RunResult": "conveyor.migrations.engine",
    "AppliedRow": "conveyor.migrations.engine",
    "StepResult": "conveyor.migrations.engine",
    "generate": "conveyor.migrations.generate",
    "Problem": "conveyor.migrations.engine",
    "LOCK_KEY": "conveyor.migrations.engine",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'conveyor.migrations' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
