"""The migration lock (a session-level advisory lock, taken before anything else) and the
set-up that shares its round trip: both tables created if needed, the applied rows read."""

from __future__ import annotations

import time
from collections.abc import Callable

import psycopg

from conveyor.migrations.batch import Session
from conveyor.migrations.errors import ConnectionFailed, LockTimeout, MigrationError
from conveyor.migrations.queries import (
    CONVEYOR_CREATE_TABLE,
    CONVEYOR_TABLE,
    DIESEL_CREATE_TABLE,
    DIESEL_TABLE,
    SESSION_SETUP,
    AppliedLine,
    applied_columns_sql,
)
from conveyor.migrations.wire import ConnectionLost, ServerError, execute, simple

#: the advisory lock taken around run/revert/redo: int.from_bytes(b"conveyor", "big"),
#: i.e. ``SELECT pg_advisory_lock(7165066986957401970)``; per database.
LOCK_KEY = 7165066986957401970

_LOCK_BUSY = "conveyor: migration lock busy"


def lock_and_setup(conn: psycopg.Connection, lock_timeout: float,
                   emit: Callable[..., None]) -> Session:
    """Take the advisory lock, then create both tables if needed and read the applied
    rows, all in two round trips when the lock is free.

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
    )
    deadline = time.monotonic() + max(0.0, lock_timeout)
    pause = 0.01
    while True:
        try:
            results = simple(conn, sql)
            break
        except ConnectionLost as exc:
            raise lost(exc) from None
        except ServerError as exc:
            if _LOCK_BUSY not in (exc.message or ""):
                raise setup_error(exc) from None
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise LockTimeout(LOCK_KEY, lock_timeout, lock_holders(conn))
        if pause >= 0.05:
            emit("waiting_for_lock", key=LOCK_KEY, remaining=remaining)
        time.sleep(min(pause, remaining))
        pause = min(pause * 2, 0.25)
    row = results[-1]
    assert row is not None
    search_path, diesel_schema, conveyor_schema = row
    try:
        applied = [AppliedLine(*r) for r in execute(conn, applied_columns_sql())]
    except ConnectionLost as exc:
        raise lost(exc) from None
    except ServerError as exc:
        raise setup_error(exc) from None
    return Session(conn, applied, search_path or "",
                   f"{diesel_schema}.{DIESEL_TABLE}", f"{conveyor_schema}.{CONVEYOR_TABLE}")


def lost(exc: ConnectionLost) -> ConnectionFailed:
    return ConnectionFailed(f"Lost the connection to the database: {exc}.",
                            "Check the server; `conveyor migrate status` shows what was "
                            "applied.")


def lock_holders(conn: psycopg.Connection) -> list[dict]:
    try:
        rows = execute(conn, 
            "SELECT a.pid, a.usename, a.application_name, a.client_addr::text,"
            " pg_catalog.to_char(a.backend_start AT TIME ZONE 'UTC',"
            " 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), a.state,"
            " pg_catalog.left(a.query, 200)"
            " FROM pg_catalog.pg_locks l JOIN pg_catalog.pg_stat_activity a USING (pid)"
            " WHERE l.locktype = 'advisory' AND l.granted"
            " AND l.database = (SELECT oid FROM pg_catalog.pg_database"
            "                   WHERE datname = pg_catalog.current_database())"
            " AND l.classid = %s::oid AND l.objid = %s::oid AND l.objsubid = 1",
            (LOCK_KEY >> 32, LOCK_KEY & 0xFFFFFFFF))
    except (ServerError, ConnectionLost):
        return []
    keys = ("pid", "usename", "application_name", "client_addr", "backend_start", "state",
            "query")
    return [dict(zip(keys, r)) for r in rows]


def setup_error(exc: ServerError) -> MigrationError:
    detail = f" ({exc.detail})" if exc.detail else ""
    state = f" [SQLSTATE {exc.sqlstate}]" if exc.sqlstate else ""
    return MigrationError(
        f"Preparing the database for migrations failed: {exc.message}{detail}{state}.",
        "conveyor needs to create __diesel_schema_migrations and __conveyor_migrations in the "
        "first schema of the search_path: check the role's privileges (CREATE on that schema).",
    )
