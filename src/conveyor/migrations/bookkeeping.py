"""The bookkeeping SQL around each migration: Diesel's table written with Diesel's exact
``INSERT`` (``version`` only; ``run_on`` takes its default), conveyor's side table (checksum,
applied_at, duration, who), prepared once per batch, and the housekeeping of rows written by
other tools.

Durations: PostgreSQL gives every statement of a multi-statement query the same
``statement_timestamp()`` and ``transaction_timestamp()`` (the time the query arrived), so
neither times one migration of a batch. The session keeps the time the previous migration
ended in the setting ``conveyor.mark`` (epoch seconds; set at the start of each message and by
each end marker): a migration's duration is the time since then.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from conveyor.migrations.wire import literal

if TYPE_CHECKING:
    from conveyor.migrations.batch import Session
    from conveyor.migrations.discovery import Migration
    from conveyor.migrations.records import RunResult, Status

_NOW = "pg_catalog.date_part('epoch', pg_catalog.clock_timestamp())"
#: milliseconds since the previous migration ended (or since the message began)
OWN_MS = (f"pg_catalog.round(((({_NOW}) - COALESCE(NULLIF("
          "pg_catalog.current_setting('conveyor.mark', true), '')::float8,"
          f" {_NOW})) * 1000)::numeric, 3)")
#: the marker's side effect: the next migration is timed from now
MARK = f"pg_catalog.set_config('conveyor.mark', ({_NOW})::text, false)"
#: the first statement of a message (one result)
START_SQL = f"SELECT {MARK};\n"
#: words that may drop prepared statements (DEALLOCATE, DISCARD ALL/PLANS): a file that holds
#: one gets plain bookkeeping, and the next message prepares the statements again
DROPS_PREPARED = ("deallocate", "discard")


def housekeeping(s: Session, status: Status, result: RunResult, applied_by: str) -> None:
    """Record checksums of migrations applied by another tool (first sight) and drop
    checksum rows whose Diesel row is gone (reverted by diesel_cli)."""
    from conveyor.migrations.wire import execute

    stale = [r.version for r in s.rows if not r.in_diesel]  # conveyor row without Diesel row
    if stale:
        execute(s.conn, f"DELETE FROM {s.conveyor} WHERE version = ANY(%s)", (stale,))
    adopted = [a.migration for a in status.applied
               if a.recorded_checksum is None and a.migration is not None]
    if adopted:
        with s.conn.cursor() as cur:
            cur.executemany(
                f"INSERT INTO {s.conveyor} (version, name, checksum, applied_at, applied_by,"
                " source) VALUES (%s, %s, %s, COALESCE((SELECT run_on AT TIME ZONE 'UTC'"
                f" FROM {s.diesel} WHERE version = %s), pg_catalog.now()), %s, 'adopted')"
                " ON CONFLICT (version) DO NOTHING",
                [(m.version, m.name, m.checksum, m.version, applied_by) for m in adopted])
        result.adopted += [m.version for m in adopted]


def prepare_sql(s: Session, applied_by: str) -> str:
    """PREPARE the bookkeeping of a migration applied in its own transaction: executing a
    prepared statement saves PostgreSQL parsing and planning both INSERTs for every
    migration (a third of the server's time on a batch of trivial migrations). Diesel's
    row is the same: only the version, ``run_on`` from its default (Diesel itself binds
    the version as a parameter). Two results."""
    s.prepare_count += 1
    name = f"conveyor_{s.nonce}_{s.prepare_count}"
    s.prepared = name
    return (
        f"PREPARE {name}_d(text) AS INSERT INTO {s.diesel} (version) VALUES ($1);\n"
        f"PREPARE {name}_c(text, text, text, text) AS INSERT INTO {s.conveyor}"
        " (version, name, checksum, applied_at, duration_ms, applied_by, source)"
        f" VALUES ($1, $2, $3, pg_catalog.clock_timestamp(), {OWN_MS},"
        f" {literal(s.conn, applied_by)}, 'conveyor') RETURNING $4, duration_ms, {MARK};\n"
    )


def bookkeeping_sql(s: Session, m: Migration, direction: str, sql: str, marker: str,
                    applied_by: str) -> str:
    """What follows a migration's body in a message: restore search_path when the file
    mentions it (as Diesel does after every migration), write both tables, and return the end
    marker with the migration's duration in milliseconds (also stored in conveyor's table)."""
    q = s.conn
    v = literal(q, m.version)
    out = ""
    if "search_path" in sql.lower():
        out = (f"SELECT pg_catalog.set_config('search_path', "
               f"{literal(q, s.search_path)}, false);\n")
    if direction == "down":
        return (out
                + f"DELETE FROM {s.diesel} WHERE version = {v};\n"
                + f"DELETE FROM {s.conveyor} WHERE version = {v};\n"
                + f"SELECT '{marker}', {OWN_MS}, {MARK};\n")
    if s.prepared is not None:
        name = s.prepared
        return (out
                + f"EXECUTE {name}_d({v});\n"
                + f"EXECUTE {name}_c({v}, {literal(q, m.name)},"
                f" {literal(q, m.checksum)}, '{marker}');\n")
    return (
        out
        # Diesel's own bookkeeping: only the version; run_on takes its default
        + f"INSERT INTO {s.diesel} (version) VALUES ({v});\n"
        + f"INSERT INTO {s.conveyor} (version, name, checksum, applied_at, duration_ms,"
        " applied_by, source)"
        f" VALUES ({v}, {literal(q, m.name)}, {literal(q, m.checksum)},"
        f" pg_catalog.clock_timestamp(), {OWN_MS}, {literal(q, applied_by)},"
        f" 'conveyor') RETURNING '{marker}', duration_ms, {MARK};\n"
    )


def record_alone(s: Session, m: Migration, direction: str, duration_ms: float,
                 applied_by: str) -> None:
    """The bookkeeping of a migration sent alone (``run_in_transaction = false``), with
    parameters, in one transaction, after it ran."""
    from conveyor.migrations.wire import execute

    with s.conn.transaction():
        if direction == "down":
            execute(s.conn, f"DELETE FROM {s.diesel} WHERE version = %s", (m.version,))
            execute(s.conn, f"DELETE FROM {s.conveyor} WHERE version = %s", (m.version,))
            return
        execute(s.conn, f"INSERT INTO {s.diesel} (version) VALUES (%s)", (m.version,))
        execute(s.conn, f"INSERT INTO {s.conveyor} (version, name, checksum, applied_at,"
                " duration_ms, applied_by, source) VALUES (%s, %s, %s,"
                " pg_catalog.clock_timestamp(), %s, %s, 'conveyor')",
                (m.version, m.name, m.checksum, duration_ms, applied_by))
