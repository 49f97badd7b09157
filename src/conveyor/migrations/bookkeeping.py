"""The bookkeeping SQL around each migration: Diesel's table written with Diesel's exact
``INSERT`` (``version`` only; ``run_on`` takes its default), conveyor's side table (checksum,
applied_at, duration, who), prepared once per batch, and the housekeeping of rows written by
other tools."""

from __future__ import annotations

from conveyor.migrations import pq

TYPE_CHECKING = False  # not `from typing import ...`: typing costs ~3 ms of start-up
if TYPE_CHECKING:
    from conveyor.migrations.batch import Session
    from conveyor.migrations.discovery import Migration
    from conveyor.migrations.records import RunResult, Status

#: milliseconds since the current transaction began: the duration of a migration that runs in
#: its own transaction (BEGIN, the file, then this in its bookkeeping)
_TX_ELAPSED_MS = ("pg_catalog.round((pg_catalog.date_part('epoch', pg_catalog.clock_timestamp()"
                  " - pg_catalog.transaction_timestamp()) * 1000)::numeric, 3)")
#: milliseconds since the current query string began
_QUERY_ELAPSED_MS = ("pg_catalog.round((pg_catalog.date_part('epoch',"
                     " pg_catalog.clock_timestamp() - pg_catalog.statement_timestamp()) * 1000)"
                     "::numeric, 3)")
#: words that may drop prepared statements (DEALLOCATE, DISCARD ALL/PLANS): a file that holds
#: one gets plain bookkeeping, and the next message prepares the statements again
DROPS_PREPARED = ("deallocate", "discard")


def housekeeping_sql(s: Session, status: Status, result: RunResult, applied_by: str) -> str:
    """Record checksums of migrations applied by another tool (first sight) and drop
    checksum rows whose Diesel row is gone (reverted by diesel_cli)."""
    parts: list[str] = []
    stale = [r.version for r in s.rows if not r.in_diesel]  # conveyor row without Diesel row
    if stale:
        parts.append(
            f"DELETE FROM {s.conveyor} WHERE version IN ("
            + ", ".join(pq.quote_literal(v) for v in stale) + ");\n"
        )
    for a in status.applied:
        if a.recorded_checksum is None and a.migration is not None:
            m = a.migration
            v = pq.quote_literal(m.version)
            parts.append(
                f"INSERT INTO {s.conveyor} (version, name, checksum, applied_at, applied_by,"
                f" source) VALUES ({v}, {pq.quote_literal(m.name)},"
                f" {pq.quote_literal(m.checksum)},"
                f" COALESCE((SELECT run_on AT TIME ZONE 'UTC' FROM {s.diesel}"
                f" WHERE version = {v}), pg_catalog.now()),"
                f" {pq.quote_literal(applied_by)}, 'adopted')"
                " ON CONFLICT (version) DO NOTHING;\n"
            )
            result.adopted.append(m.version)
    return "".join(parts)


def prepare_sql(s: Session, applied_by: str) -> str:
    """PREPARE the bookkeeping of a migration applied in its own transaction: executing a
    prepared statement saves PostgreSQL parsing and planning both INSERTs for every
    migration (a third of the server's time on a batch of trivial migrations). Diesel's
    row is the same: only the version, ``run_on`` from its default (Diesel itself binds
    the version as a parameter)."""
    s.prepare_count += 1
    name = f"conveyor_{s.nonce}_{s.prepare_count}"
    s.prepared = name
    return (
        f"PREPARE {name}_d(text) AS INSERT INTO {s.diesel} (version) VALUES ($1);\n"
        f"PREPARE {name}_c(text, text, text, text) AS INSERT INTO {s.conveyor}"
        " (version, name, checksum, applied_at, duration_ms, applied_by, source)"
        f" VALUES ($1, $2, $3, pg_catalog.clock_timestamp(), {_TX_ELAPSED_MS},"
        f" {pq.quote_literal(applied_by)}, 'conveyor') RETURNING $4, duration_ms;\n"
    )


def bookkeeping_sql(s: Session, m: Migration, direction: str, sql: str, marker: str,
                applied_by: str, own_tx: bool = False) -> str:
    """What follows a migration's body: restore search_path when the file mentions it (as
    Diesel does after every migration), write both tables, and return the end marker with
    a time in milliseconds: with ``own_tx`` (the migration runs in a transaction of its
    own, begun just before it) the migration's duration, also stored in conveyor's table;
    otherwise the time elapsed since the query started (durations written later)."""
    v = pq.quote_literal(m.version)
    out = ""
    if "search_path" in sql.lower():
        out = (f"SELECT pg_catalog.set_config('search_path', "
               f"{pq.quote_literal(s.search_path)}, false);\n")
    if direction == "down":
        return (out
                + f"DELETE FROM {s.diesel} WHERE version = {v};\n"
                + f"DELETE FROM {s.conveyor} WHERE version = {v};\n"
                + f"SELECT '{marker}', {_TX_ELAPSED_MS if own_tx else _QUERY_ELAPSED_MS};\n")
    if own_tx and s.prepared is not None:
        name = s.prepared
        return (out
                + f"EXECUTE {name}_d({v});\n"
                + f"EXECUTE {name}_c({v}, {pq.quote_literal(m.name)},"
                f" {pq.quote_literal(m.checksum)}, '{marker}');\n")
    if own_tx:
        duration_col, duration, returned = ", duration_ms", f", {_TX_ELAPSED_MS}", "duration_ms"
    else:
        duration_col, duration, returned = "", "", _QUERY_ELAPSED_MS
    return (
        out
        # Diesel's own bookkeeping: only the version; run_on takes its default
        + f"INSERT INTO {s.diesel} (version) VALUES ({v});\n"
        + f"INSERT INTO {s.conveyor} (version, name, checksum, applied_at{duration_col},"
        " applied_by, source)"
        f" VALUES ({v}, {pq.quote_literal(m.name)}, {pq.quote_literal(m.checksum)},"
        f" pg_catalog.clock_timestamp(){duration}, {pq.quote_literal(applied_by)},"
        f" 'conveyor') RETURNING '{marker}', {returned};\n"
    )
