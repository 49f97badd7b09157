"""The migration lock (a session-level advisory lock, taken before anything else) and the
set-up that shares its round trip: both tables created if needed, the applied rows read."""

from __future__ import annotations

import time

from conveyor.migrations import pq
from conveyor.migrations.batch import Session
from conveyor.migrations.connecting import execute
from conveyor.migrations.errors import LockTimeout, MigrationError
from conveyor.migrations.queries import (
    CONVEYOR_CREATE_TABLE,
    CONVEYOR_TABLE,
    DIESEL_CREATE_TABLE,
    DIESEL_TABLE,
    SESSION_SETUP,
    applied_aggregate_sql,
    parse_applied_aggregate,
)

TYPE_CHECKING = False  # not `from typing import ...`: typing costs ~3 ms of start-up
if TYPE_CHECKING:
    from collections.abc import Callable

#: the advisory lock taken around run/revert/redo: int.from_bytes(b"conveyor", "big"),
#: i.e. ``SELECT pg_advisory_lock(7165066986957401970)``; per database.
LOCK_KEY = 7165066986957401970

_LOCK_BUSY = "conveyor: migration lock busy"


def lock_and_setup(conn: pq.Connection, lock_timeout: float,
                   emit: Callable[..., None]) -> Session:
    """Take the advisory lock, then create both tables if needed and read the applied
    rows, all in one query when the lock is free.

    The lock is *polled* with ``pg_try_advisory_lock`` rather than waited for with
    ``pg_advisory_lock``: a session blocked in ``pg_advisory_lock`` holds a snapshot, and
    the holder's ``CREATE INDEX CONCURRENTLY`` waits for every older snapshot to go away,
    which would deadlock the two runners. Between attempts the waiting session is idle.
    """
    where = ("FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n"
             " ON n.oid = c.relnamespace WHERE c.oid = pg_catalog.to_regclass")
    sql = (
        SESSION_SETUP
        # lock or stop the query here: when the lock is busy, the ELSE branch fails (a cast
        # of a non-constant text, so the planner cannot fold it ahead of time)
        + f"SELECT CASE WHEN pg_catalog.pg_try_advisory_lock({LOCK_KEY}) THEN 0 ELSE"
        f" ('{_LOCK_BUSY} ' || pg_catalog.pg_backend_pid())::int END;\n"
        + DIESEL_CREATE_TABLE
        + CONVEYOR_CREATE_TABLE
        + "SELECT pg_catalog.current_setting('search_path'),"
        f" (SELECT pg_catalog.quote_ident(n.nspname) {where}('__diesel_schema_migrations')),"
        f" (SELECT pg_catalog.quote_ident(n.nspname) {where}('__conveyor_migrations'));\n"
        + applied_aggregate_sql()
    )
    deadline = time.monotonic() + max(0.0, lock_timeout)
    pause = 0.01
    while True:
        try:
            results = execute(conn, sql)
            break
        except pq.PgError as exc:
            if _LOCK_BUSY not in (exc.message or ""):
                raise setup_error(exc) from None
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise LockTimeout(LOCK_KEY, lock_timeout, lock_holders(conn))
        if pause >= 0.05:
            emit("waiting_for_lock", key=LOCK_KEY, remaining=remaining)
        time.sleep(min(pause, remaining))
        pause = min(pause * 2, 0.25)
    tuples = [r for r in results if r.status == pq.TUPLES_OK]
    search_path, diesel_schema, conveyor_schema = tuples[-2].rows[0]
    return Session(conn, parse_applied_aggregate(tuples[-1].rows[0][0]), search_path,
                   f"{diesel_schema}.{DIESEL_TABLE}", f"{conveyor_schema}.{CONVEYOR_TABLE}")


def lock_holders(conn: pq.Connection) -> list[dict]:
    try:
        rows = conn.query(
            "SELECT a.pid, a.usename, a.application_name, a.client_addr::text,"
            " pg_catalog.to_char(a.backend_start AT TIME ZONE 'UTC',"
            " 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), a.state,"
            " pg_catalog.left(a.query, 200)"
            " FROM pg_catalog.pg_locks l JOIN pg_catalog.pg_stat_activity a USING (pid)"
            " WHERE l.locktype = 'advisory' AND l.granted"
            " AND l.database = (SELECT oid FROM pg_catalog.pg_database"
            "                   WHERE datname = pg_catalog.current_database())"
            f" AND l.classid = {LOCK_KEY >> 32} AND l.objid = {LOCK_KEY & 0xFFFFFFFF}"
            " AND l.objsubid = 1"
        )
    except (pq.PgError, pq.ConnectError):
        return []
    keys = ("pid", "usename", "application_name", "client_addr", "backend_start", "state",
            "query")
    return [dict(zip(keys, r)) for r in rows]


def setup_error(exc: pq.PgError) -> MigrationError:
    detail = f" ({exc.detail})" if exc.detail else ""
    state = f" [SQLSTATE {exc.sqlstate}]" if exc.sqlstate else ""
    return MigrationError(
        f"Preparing the database for migrations failed: {exc.message}{detail}{state}.",
        "conveyor needs to create __diesel_schema_migrations and __conveyor_migrations in the "
        "first schema of the search_path: check the role's privileges (CREATE on that schema).",
    )
