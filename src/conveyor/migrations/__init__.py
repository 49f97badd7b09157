"""conveyor's Diesel-compatible migration engine.

Library API (imported lazily so that ``import conveyor.migrations`` stays cheap and psycopg is
loaded only when a database is used)::

    from conveyor.migrations import discover, Migrator
    m = Migrator("postgresql://...", "migrations")
    m.status(); m.plan(); m.run(); m.revert(1); m.revert(all=True); m.redo(1)

The package imports only the standard library, psycopg 3 and ``conveyor.masking``, so it runs
with ``python -m conveyor.migrations run ...`` wherever psycopg is installed (conveyor's own
process, or a container of conveyor's runner image).
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
    "Status": "conveyor.migrations.records",
    "RunResult": "conveyor.migrations.records",
    "AppliedRow": "conveyor.migrations.records",
    "StepResult": "conveyor.migrations.records",
    "generate": "conveyor.migrations.generate",
    "Problem": "conveyor.migrations.records",
    "LOCK_KEY": "conveyor.migrations.lock",
}

__all__ = [
    "LOCK_KEY",
    "AppliedRow",
    "ConnectionFailed",
    "DiscoveryError",
    "DriftError",
    "LockTimeout",
    "Migration",
    "MigrationError",
    "MigrationFailed",
    "Migrator",
    "NotRevertible",
    "Problem",
    "RunResult",
    "Status",
    "StepResult",
    "discover",
    "generate",
    "version_from_name",
]


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'conveyor.migrations' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
