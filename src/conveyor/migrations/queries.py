"""The SQL the engine and the stages share: the tables, the session set-up, and the ONE query
for the applied migrations with the parser of its rows.

The applied migrations: :data:`APPLIED_SQL`
--------------------------------------------
Diesel's table joined with conveyor's (``FULL JOIN``: a checksum row whose Diesel row was
deleted by ``diesel_cli`` shows too), one text value per row, ``ORDER BY 1``::

    <diesel version|-> <conveyor version|-> <checksum|->\\x1f<version>\\x1f<run_on>\\x1f<name>
        \\x1f<applied_at>\\x1f<duration_ms>\\x1f<applied_by>\\x1f<source>

* the **head**, before the first ``\\x1f`` (unit separator), is the three space-separated
  fields that the stages read through ``psql -XAtq`` (``-`` for NULL): that is all the
  fingerprint logic needs (:func:`fingerprint_pairs`, :func:`applied_versions`);
* the **tail** holds what the engine's status needs, each field empty for NULL: the version
  (Diesel's, else conveyor's), ``run_on`` and ``applied_at`` as ISO 8601 (``applied_at`` in UTC
  with a ``Z``), the directory name, the duration in milliseconds, who applied it and how
  (``conveyor`` | ``adopted``).

Read it with :func:`parse_applied` (one line per row, as psql prints them). The engine itself
reads :func:`applied_columns_sql`: the same rows, one column per field.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

DIESEL_TABLE = "__diesel_schema_migrations"
CONVEYOR_TABLE = "__conveyor_migrations"

#: Diesel's own statement, byte for byte (diesel/src/migration/setup_migration_table.sql)
DIESEL_CREATE_TABLE = (
    "CREATE TABLE IF NOT EXISTS __diesel_schema_migrations (\n"
    "       version VARCHAR(50) PRIMARY KEY NOT NULL,\n"
    "       run_on TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP\n"
    ");\n"
)

CONVEYOR_CREATE_TABLE = (
    "CREATE TABLE IF NOT EXISTS __conveyor_migrations (\n"
    "    version VARCHAR(50) PRIMARY KEY NOT NULL,\n"
    "    name TEXT NOT NULL,\n"
    "    checksum TEXT NOT NULL,\n"
    "    applied_at TIMESTAMPTZ NOT NULL DEFAULT now(),\n"
    "    duration_ms DOUBLE PRECISION,\n"
    "    applied_by TEXT,\n"
    "    db_user TEXT NOT NULL DEFAULT current_user,\n"
    "    source TEXT NOT NULL DEFAULT 'conveyor'\n"
    ");\n"
)

SESSION_SETUP = (
    "SET TIME ZONE 'UTC';\n"
    "SET client_encoding TO 'UTF8';\n"
    "SELECT pg_catalog.set_config('application_name', 'conveyor migrate', false)"
    " WHERE pg_catalog.current_setting('application_name') = '';\n"
)

TABLES_EXIST_SQL = (
    "SELECT pg_catalog.to_regclass('__diesel_schema_migrations') IS NOT NULL,"
    " pg_catalog.to_regclass('__conveyor_migrations') IS NOT NULL"
)

FIELD_SEP = "\x1f"  # the unit separator

_TS = "'YYYY-MM-DD\"T\"HH24:MI:SS.US'"
_TAIL = (
    "COALESCE(d.version, c.version)",
    f"pg_catalog.to_char(d.run_on, {_TS})",
    "c.name",
    f"pg_catalog.to_char(c.applied_at AT TIME ZONE 'UTC', {_TS}) || 'Z'",
    "c.duration_ms",
    "c.applied_by",
    "c.source",
)
_ROW = (
    "COALESCE(d.version, '-') || ' ' || COALESCE(c.version, '-') || ' ' || "
    "COALESCE(c.checksum, '-')"
    + "".join(f" || E'\\x1f' || COALESCE(({expr})::text, '')" for expr in _TAIL)
)
_JOIN = "FULL JOIN __conveyor_migrations c ON c.version = d.version"
#: conveyor's table does not exist yet (a database migrated by diesel_cli only): no rows
_NO_JOIN = ("LEFT JOIN (SELECT NULL::varchar AS version, NULL::text AS name,"
            " NULL::text AS checksum, NULL::timestamptz AS applied_at,"
            " NULL::float8 AS duration_ms, NULL::text AS applied_by, NULL::text AS source)"
            " c ON false")


def applied_sql(conveyor_table: bool = True) -> str:
    """The applied-migrations query (module docstring); ``conveyor_table=False`` when only
    Diesel's table exists (same row format, conveyor's fields empty)."""
    return (f"SELECT {_ROW} FROM __diesel_schema_migrations d"
            f" {_JOIN if conveyor_table else _NO_JOIN} ORDER BY 1")


#: the one query for the applied migrations (rows: see the module docstring)
APPLIED_SQL = applied_sql()


def applied_columns_sql(conveyor_table: bool = True) -> str:
    """The rows of :func:`applied_sql`, one column per field (text, NULL for NULL), in the
    order of :class:`AppliedLine`'s fields; ``conveyor_table=False`` as for :func:`applied_sql`."""
    cols = ", ".join(["d.version", "c.version", "c.checksum"]
                     + [f"({expr})::text" for expr in _TAIL])
    return (f"SELECT {cols} FROM __diesel_schema_migrations d"
            f" {_JOIN if conveyor_table else _NO_JOIN} ORDER BY 4")


@dataclass
class AppliedLine:
    """One parsed row of :data:`APPLIED_SQL` (None for NULL)."""

    diesel_version: str | None
    conveyor_version: str | None
    checksum: str | None
    version: str
    run_on: str | None = None
    name: str | None = None
    applied_at: str | None = None
    duration_ms: str | None = None
    applied_by: str | None = None
    source: str | None = None

    @property
    def in_diesel(self) -> bool:
        """Diesel's table has the row (else: a stale checksum row of conveyor's)."""
        return self.diesel_version is not None


def parse_applied_line(line: str) -> AppliedLine | None:
    """One row of :data:`APPLIED_SQL`; None when it is not one (e.g. a version with a space
    broke the head, or the row was cut)."""
    head, sep, rest = line.partition(FIELD_SEP)
    parts = head.split(" ")
    if len(parts) != 3:
        return None
    dv, cv, checksum = (None if p == "-" else p for p in parts)
    if not sep:  # the head alone (e.g. an older three-field query)
        version = dv or cv
        return None if version is None else AppliedLine(dv, cv, checksum, version)
    tail = [f or None for f in rest.split(FIELD_SEP)]
    if len(tail) != 7 or tail[0] is None:
        return None
    version, run_on, name, applied_at, duration_ms, applied_by, source = tail
    return AppliedLine(dv, cv, checksum, version or "", run_on, name, applied_at, duration_ms,
                       applied_by, source)


def parse_applied(lines: Iterable[str]) -> list[AppliedLine] | None:
    """Every row of :data:`APPLIED_SQL` (psql's lines; empty lines skipped); None when one of
    them cannot be read."""
    out = []
    for line in lines:
        if not line.strip():
            continue
        row = parse_applied_line(line.rstrip("\r\n"))
        if row is None:
            return None
        out.append(row)
    return out


def fingerprint_pairs(lines: Iterable[str]) -> list[tuple[str, str]] | None:
    """(version, checksum) of every applied migration, from :data:`APPLIED_SQL`'s lines, for
    the image fingerprint; None when any row lacks a Diesel row, a checksum row or a checksum
    (or cannot be read): the engine must look."""
    rows = parse_applied(lines)
    if rows is None:
        return None
    pairs = []
    for r in rows:
        if r.diesel_version is None or r.conveyor_version is None or r.checksum is None \
                or r.diesel_version != r.conveyor_version:
            return None
        pairs.append((r.diesel_version, r.checksum))
    return pairs


def applied_versions(lines: Iterable[str]) -> list[str] | None:
    """The versions in Diesel's table, sorted, from :data:`APPLIED_SQL`'s lines; None when a
    line cannot be read."""
    rows = parse_applied(lines)
    if rows is None:
        return None
    return sorted(r.diesel_version for r in rows if r.diesel_version is not None)
