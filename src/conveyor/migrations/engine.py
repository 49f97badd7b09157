"""The migration engine: plan, apply, revert and redo Diesel-layout migrations on PostgreSQL.

Compatibility with Diesel (see docs/diesel-compat.md for the source files):

* Diesel's table is created with Diesel's exact statement and written with Diesel's exact
  ``INSERT`` (``version`` only; ``run_on`` defaults to ``CURRENT_TIMESTAMP``, in UTC as the
  session's time zone is UTC like Diesel's);
* each migration file is sent, unchanged, inside one simple-protocol query, as Diesel's
  ``batch_execute`` does; transactional migrations run between ``BEGIN`` and ``COMMIT``
  together with their bookkeeping, non-transactional ones are sent alone (so PostgreSQL
  runs a multi-statement file as one implicit transaction, exactly as with Diesel);
* the session uses ``TimeZone=UTC`` and ``client_encoding=UTF8`` as Diesel's PgConnection does;
  a migration that mentions ``search_path`` has it restored afterwards, as current Diesel does
  after every migration (the bookkeeping statements use schema-qualified names anyway).

Additions of conveyor's own:

* ``__conveyor_migrations`` (side table: checksum of up.sql, applied_at, duration, who);
* a session-level advisory lock (``LOCK_KEY``) taken *before* anything else, including the
  ``CREATE TABLE IF NOT EXISTS`` of both tables, polled rather than waited for (see
  ``_lock_and_setup``);
* speed: the statements of many consecutive transactional migrations (each still in its own
  transaction) travel in one simple query, so applying N migrations costs one round trip instead
  of ~3N. The checksum ``INSERT ... RETURNING 'conveyor:<nonce>:<k>:end', <elapsed ms>`` of each
  migration marks it as completed (and times it); PostgreSQL's error position (relative to the
  whole query string) is mapped back to the failing file, line and column, and an error without
  a position is attributed by counting the statement results after the last marker.

Stdlib + libpq only (see ``pq.py``).
"""

from __future__ import annotations

import builtins
import os
import time
TYPE_CHECKING = False  # not `from typing import ...`: typing costs ~3 ms of start-up

from conveyor.migrations import pq
from conveyor.migrations.discovery import Migration, discover

if TYPE_CHECKING:  # pathlib is imported lazily: it is not needed to run migrations
    from pathlib import Path
from conveyor.migrations.errors import (
    ConnectionFailed,
    DriftError,
    LockTimeout,
    MigrationError,
    MigrationFailed,
    NotRevertible,
    mask_secrets,
)

#: the advisory lock taken around run/revert/redo: int.from_bytes(b"conveyor", "big"),
#: i.e. ``SELECT pg_advisory_lock(7165066986957401970)``; per database.
LOCK_KEY = 7165066986957401970

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

# When a migration mentions one of these settings, it may change how PostgreSQL lexes the SQL
# that follows it; it then ends the batch, so later files are parsed after it has run.
_LEXER_SETTINGS = ("standard_conforming_strings", "backslash_quote")

_LOCK_BUSY = "conveyor: migration lock busy"

#: milliseconds since the current transaction began: the duration of a migration that runs in
#: its own transaction (BEGIN, the file, then this in its bookkeeping)
_TX_ELAPSED_MS = ("pg_catalog.round((pg_catalog.date_part('epoch', pg_catalog.clock_timestamp()"
                  " - pg_catalog.transaction_timestamp()) * 1000)::numeric, 3)")
#: milliseconds since the current query string began
_QUERY_ELAPSED_MS = ("pg_catalog.round((pg_catalog.date_part('epoch',"
                     " pg_catalog.clock_timestamp() - pg_catalog.statement_timestamp()) * 1000)"
                     "::numeric, 3)")
#: words that may drop prepared statements (DEALLOCATE, DISCARD ALL/PLANS)
_DROPS_PREPARED = ("deallocate", "discard")

MAX_BATCH_MIGRATIONS = 250
MAX_BATCH_CHARS = 8_000_000

BLOCKING_PROBLEMS = ("edited", "missing")


# --------------------------------------------------------------------------- result types


class _Record:
    """A small value class: keyword construction, equality and repr over ``__slots__``
    (``dataclasses`` is avoided: its import alone costs a good part of the no-op budget)."""

    __slots__: tuple = ()
    _defaults: dict = {}

    def __init__(self, *args, **kwargs) -> None:
        values = dict(self._defaults)
        values.update(zip(self.__slots__, args))
        values.update(kwargs)
        for k in self.__slots__:
            if k not in values:
                raise TypeError(f"{type(self).__name__}() missing {k!r}")
            object.__setattr__(self, k, values[k])

    def __eq__(self, other):
        if other.__class__ is not self.__class__:
            return NotImplemented
        return all(getattr(self, k) == getattr(other, k) for k in self.__slots__)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={getattr(self, k)!r}" for k in self.__slots__)
        return f"{type(self).__name__}({fields})"


class Problem(_Record):
    """Something the status of a database and a migration directory should tell.

    kind: ``edited`` | ``missing`` (both block ``run`` unless allowed) | ``unrecorded`` |
    ``out_of_order``.
    """

    __slots__ = ("kind", "version", "name", "message")

    @property
    def blocking(self) -> bool:
        return self.kind in BLOCKING_PROBLEMS

    def __str__(self) -> str:
        return self.message

    def to_dict(self) -> dict:
        return {"kind": self.kind, "version": self.version, "name": self.name,
                "blocking": self.blocking, "message": self.message}


class AppliedRow(_Record):
    """One row of Diesel's table, joined with conveyor's checksum row and the file on disk."""

    __slots__ = ("version", "run_on", "name", "recorded_checksum", "applied_at", "duration_ms",
                 "applied_by", "source", "migration")
    _defaults = {"name": None, "recorded_checksum": None, "applied_at": None,
                 "duration_ms": None, "applied_by": None, "source": None, "migration": None}

    @property
    def state(self) -> str:
        if self.migration is None:
            return "missing"
        if self.recorded_checksum is None:
            return "unrecorded"
        if self.recorded_checksum != self.migration.checksum:
            return "edited"
        return "applied"

    def to_dict(self) -> dict:
        return {
            "version": self.version,
            "name": self.migration.name if self.migration else self.name,
            "state": self.state,
            "run_on": self.run_on,
            "applied_at": self.applied_at,
            "duration_ms": self.duration_ms,
            "applied_by": self.applied_by,
            "recorded_checksum": self.recorded_checksum,
            "checksum": self.migration.checksum if self.migration else None,
        }


class Status(_Record):
    """applied: ascending by version; pending: in the order ``run`` would apply them."""

    __slots__ = ("applied", "pending", "problems", "tables_exist")
    _defaults = {"tables_exist": True}

    def __setattr__(self, k, v):
        object.__setattr__(self, k, v)

    @property
    def blocking_problems(self) -> list:
        return [p for p in self.problems if p.blocking]

    def to_dict(self) -> dict:
        return {
            "applied": [a.to_dict() for a in self.applied],
            "pending": [_migration_dict(m) for m in self.pending],
            "problems": [p.to_dict() for p in self.problems],
        }


class StepResult(_Record):
    """One migration applied (direction ``up``) or reverted (``down``)."""

    __slots__ = ("version", "name", "direction", "duration_ms")

    def to_dict(self) -> dict:
        return {"version": self.version, "name": self.name, "direction": self.direction,
                "duration_ms": self.duration_ms}


class RunResult(_Record):
    __slots__ = ("steps", "problems", "adopted", "duration_ms")

    def __init__(self, steps=None, problems=None, adopted=None, duration_ms=0.0) -> None:
        super().__init__(steps if steps is not None else [],
                         problems if problems is not None else [],
                         adopted if adopted is not None else [], duration_ms)

    def __setattr__(self, k, v):
        object.__setattr__(self, k, v)

    @property
    def applied(self) -> list:
        return [s for s in self.steps if s.direction == "up"]

    @property
    def reverted(self) -> list:
        return [s for s in self.steps if s.direction == "down"]

    def to_dict(self) -> dict:
        return {
            "applied": [s.to_dict() for s in self.applied],
            "reverted": [s.to_dict() for s in self.reverted],
            "adopted_checksums": self.adopted,
            "problems": [p.to_dict() for p in self.problems],
            "duration_ms": round(self.duration_ms, 3),
        }


def _migration_dict(m: Migration) -> dict:
    return {"version": m.version, "name": m.name, "directory": str(m.directory),
            "run_in_transaction": m.run_in_transaction, "checksum": m.checksum,
            "up_sql": m.up_sql}


# --------------------------------------------------------------------------- batches


class _Segment:
    """One migration body in a message, with the character offsets needed to attribute an
    error position, and ``lead``: how many statement results precede the body after the
    previous segment's end marker (BEGIN, the previous COMMIT, a leading UPDATE)."""

    __slots__ = ("migration", "direction", "sql", "start", "body_start", "body_end", "end",
                 "lead")

    def __init__(self, migration, direction, sql, start, body_start, body_end, end, lead):
        self.migration, self.direction, self.sql = migration, direction, sql
        self.start, self.body_start, self.body_end, self.end = start, body_start, body_end, end
        self.lead = lead

    @property
    def path(self) -> Path:
        return self.migration.up_path if self.direction == "up" else self.migration.down_path


class _Message:
    """One simple query made of segments."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.length = 0
        self.segments: list[_Segment] = []
        self.leading_results = 0  # results of statements before the first segment's BEGIN

    def add(self, text: str) -> None:
        self.parts.append(text)
        self.length += len(text)

    def add_segment(self, m: Migration, direction: str, sql: str, start: int, lead: int,
                    bookkeeping: str) -> None:
        body_start = self.length
        self.add(sql)
        body_end = self.length
        self.add(bookkeeping)
        self.segments.append(_Segment(m, direction, sql, start, body_start, body_end,
                                      self.length, lead))

    def text(self) -> str:
        return "".join(self.parts)


class _Session:
    """One operation on one connection (holding the advisory lock)."""

    def __init__(self, conn: pq.Connection, rows: list[tuple], search_path: str,
                 diesel_table: str, conveyor_table: str) -> None:
        self.conn = conn
        self.rows = rows
        self.search_path = search_path
        self.diesel = diesel_table
        self.conveyor = conveyor_table
        self.nonce = os.urandom(6).hex()
        #: (version, duration_ms) of applied migrations, written in the next query
        self.durations: list[tuple[str, float]] = []
        #: name prefix of the prepared bookkeeping statements (None: not prepared, or maybe
        #: deallocated by a migration), and how many sets were prepared
        self.prepared: str | None = None
        self.prepare_count = 0

    def flush_sql(self) -> str:
        if not self.durations:
            return ""
        values = ", ".join(f"({pq.quote_literal(v)}, {d!r}::float8)" for v, d in self.durations)
        self.durations = []
        return (f"UPDATE {self.conveyor} AS c SET duration_ms = v.d FROM (VALUES {values})"
                " AS v(version, d) WHERE c.version = v.version;\n")


class _Connecting:
    """``pq.connect(conninfo)`` in a thread of its own (``_thread``: importing ``threading``
    costs ~4 ms of start-up). ``result()`` waits for it and returns the connection or raises
    the error; ``abandon()`` closes it, now or when it is made."""

    def __init__(self, conninfo: str) -> None:
        import _thread

        self._conninfo = conninfo
        self._conn: pq.Connection | None = None
        self._error: BaseException | None = None
        self._abandoned = False
        self._mutex = _thread.allocate_lock()
        self._done = _thread.allocate_lock()
        self._done.acquire()
        try:
            _thread.start_new_thread(self._run, ())
        except RuntimeError:  # no thread available: connect when asked, in the caller's thread
            self._done = None

    def _run(self) -> None:
        conn = error = None
        try:
            conn = pq.connect(self._conninfo)
        except BaseException as exc:  # handed over to the thread that waits for the result
            error = exc
        with self._mutex:
            if self._abandoned:
                if conn is not None:
                    conn.close()
            else:
                self._conn, self._error = conn, error
        self._done.release()

    def result(self) -> pq.Connection:
        if self._done is None:
            return pq.connect(self._conninfo)
        try:
            self._done.acquire()  # interruptible (Ctrl-C)
        except BaseException:
            self.abandon()
            raise
        self._done.release()
        if self._error is not None:
            error, self._error = self._error, None
            raise error
        assert self._conn is not None
        return self._conn

    def abandon(self) -> None:
        with self._mutex:
            self._abandoned = True
            conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()


class Migrator:
    """Apply, revert and inspect the Diesel-layout migrations in ``migrations_dir``.

    Every operation opens one connection and closes it before returning.
    """

    def __init__(
        self,
        conninfo: str,
        migrations_dir: str | Path,
        *,
        lock_timeout: float = 60.0,
        applied_by: str | None = None,
        on_event=None,
    ) -> None:
        self.conninfo = conninfo
        self._migrations_dir = os.fspath(migrations_dir)
        self.lock_timeout = lock_timeout
        self.applied_by = applied_by or _default_applied_by()
        #: optional callable(event: str, **data), e.g. for progress output
        self.on_event = on_event
        self.notices: list[str] = []

    # ------------------------------------------------------------------ public API

    @property
    def migrations_dir(self) -> Path:
        from pathlib import Path

        return Path(self._migrations_dir)

    def discover(self) -> list[Migration]:
        return discover(self._migrations_dir)

    def status(self) -> Status:
        """Applied and pending migrations and problems (read-only: creates no table)."""
        migrations, conn = self._discover_and_connect()
        with conn:
            conn.execute(SESSION_SETUP)
            exists = conn.query(
                "SELECT pg_catalog.to_regclass('__diesel_schema_migrations') IS NOT NULL,"
                " pg_catalog.to_regclass('__conveyor_migrations') IS NOT NULL"
            )[0]
            rows: list[tuple] = []
            if exists[0] == "t":
                rows = _parse_rows(conn.query(_read_sql(conveyor_table=exists[1] == "t"))[0][0])
        status = _build_status(migrations, rows)
        status.tables_exist = exists[0] == "t"
        return status

    def plan(self) -> Status:
        """What ``run`` would do: the pending migrations in order (read-only)."""
        return self.status()

    def run(self, *, allow_drift: bool = False) -> RunResult:
        """Apply every pending migration, in version order, each in its own transaction
        (unless ``run_in_transaction = false``)."""
        t0 = time.perf_counter()
        migrations, conn = self._discover_and_connect()
        with conn:
            s = self._lock_and_setup(conn)
            status = _build_status(migrations, s.rows)
            blocking = status.blocking_problems
            if blocking and not allow_drift:
                raise DriftError(blocking)
            result = RunResult(problems=status.problems)
            housekeeping = self._housekeeping_sql(s, status, result)
            if housekeeping:
                conn.execute(housekeeping)
            self._emit("plan", pending=status.pending, problems=status.problems)
            self._execute_steps(s, [(m, "up") for m in status.pending], result,
                                single_transaction=False)
            self._finish(s)
        result.duration_ms = (time.perf_counter() - t0) * 1000
        return result

    def revert(self, n: int | None = 1, *, all: bool = False) -> RunResult:
        """Revert the last ``n`` applied migrations (Diesel: by version, descending), or all."""
        t0 = time.perf_counter()
        migrations, conn = self._discover_and_connect()
        with conn:
            s = self._lock_and_setup(conn)
            status = _build_status(migrations, s.rows)
            to_revert = self._revertible(_newest_applied(status, n, all))
            result = RunResult(problems=status.problems)
            self._emit("plan", reverting=to_revert, problems=status.problems)
            self._execute_steps(s, [(m, "down") for m in to_revert], result,
                                single_transaction=False)
            self._finish(s)
        result.duration_ms = (time.perf_counter() - t0) * 1000
        return result

    def redo(self, n: int | None = 1, *, all: bool = False) -> RunResult:
        """Revert the last ``n`` (or all) applied migrations and apply them again; in one
        transaction when all of them are transactional (as diesel_cli does)."""
        t0 = time.perf_counter()
        migrations, conn = self._discover_and_connect()
        with conn:
            s = self._lock_and_setup(conn)
            status = _build_status(migrations, s.rows)
            to_revert = self._revertible(_newest_applied(status, n, all))
            steps = [(m, "down") for m in to_revert]
            steps += [(m, "up") for m in sorted(to_revert, key=lambda m: m.version)]
            one_tx = builtins.all(m.run_in_transaction for m in to_revert)
            result = RunResult(problems=status.problems)
            self._emit("plan", redoing=to_revert, single_transaction=one_tx,
                       problems=status.problems)
            self._execute_steps(s, steps, result, single_transaction=one_tx)
            self._finish(s)
        result.duration_ms = (time.perf_counter() - t0) * 1000
        return result

    # ------------------------------------------------------------------ internals

    def _emit(self, event: str, **data) -> None:
        if self.on_event is not None:
            self.on_event(event, **data)

    def _discover_and_connect(self) -> tuple[list[Migration], pq.Connection]:
        """Read the migrations while libpq connects in another thread: connecting is mostly
        waiting for the server (a backend's start, SCRAM's round trips), so the two overlap.
        A discovery error still wins (the connection, once made, is closed)."""
        connecting = _Connecting(self.conninfo)
        try:
            migrations = self.discover()
        except BaseException:
            connecting.abandon()
            raise
        return migrations, self._connect(connecting)

    def _connect(self, connecting: _Connecting | None = None) -> pq.Connection:
        try:
            conn = pq.connect(self.conninfo) if connecting is None else connecting.result()
        except pq.ConnectError as exc:
            raise ConnectionFailed(
                f"Cannot connect to the database {mask_secrets(_describe_target(self.conninfo))}: "
                f"{exc}.",
                "Check the database URL (--database-url, DATABASE_URL or the config), that the "
                "server is running and reachable, and the credentials.",
            ) from None
        self.notices = conn.notices
        return conn

    def _lock_and_setup(self, conn: pq.Connection) -> _Session:
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
            + _read_sql(conveyor_table=True)
        )
        deadline = time.monotonic() + max(0.0, self.lock_timeout)
        pause = 0.01
        while True:
            try:
                results = self._exec(conn, sql)
                break
            except pq.PgError as exc:
                if _LOCK_BUSY not in (exc.message or ""):
                    raise _setup_error(exc) from None
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise LockTimeout(LOCK_KEY, self.lock_timeout, self._lock_holders(conn))
            if pause >= 0.05:
                self._emit("waiting_for_lock", key=LOCK_KEY, remaining=remaining)
            time.sleep(min(pause, remaining))
            pause = min(pause * 2, 0.25)
        tuples = [r for r in results if r.status == pq.TUPLES_OK]
        search_path, diesel_schema, conveyor_schema = tuples[-2].rows[0]
        return _Session(conn, _parse_rows(tuples[-1].rows[0][0]), search_path,
                        f"{diesel_schema}.{DIESEL_TABLE}", f"{conveyor_schema}.{CONVEYOR_TABLE}")

    @staticmethod
    def _exec(conn: pq.Connection, sql: str) -> list:
        try:
            return conn.execute(sql)
        except pq.ConnectError as exc:
            raise ConnectionFailed(f"Lost the connection to the database: {exc}.",
                                   "Check the server; `conveyor migrate status` shows what was "
                                   "applied.") from None

    def _lock_holders(self, conn: pq.Connection) -> list[dict]:
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

    def _revertible(self, targets: list[AppliedRow]) -> list[Migration]:
        out = []
        for row in targets:
            m = row.migration
            if m is None:
                raise NotRevertible(
                    f"Cannot revert version {row.version}: it is applied in the database but no "
                    f"migration directory in {self._migrations_dir} gives that version.",
                    "Restore the migration's directory (e.g. from git) so its down.sql can run.",
                )
            if m.down_sql is None:
                raise NotRevertible(
                    f"Cannot revert {m.name}: it has no down.sql ({m.down_path}).",
                    "Write a down.sql that undoes up.sql (Diesel refuses too: "
                    "NoMigrationRevertFile).",
                )
            if m.down_sql == "":
                raise NotRevertible(
                    f"Cannot revert {m.name}: {m.down_path} is empty.",
                    "Write the SQL that undoes up.sql, or a comment such as `-- nothing to undo` "
                    "(Diesel refuses an empty file too: EmptyMigration).",
                )
            out.append(m)
        return out

    def _housekeeping_sql(self, s: _Session, status: Status, result: RunResult) -> str:
        """Record checksums of migrations applied by another tool (first sight) and drop
        checksum rows whose Diesel row is gone (reverted by diesel_cli)."""
        parts = []
        stale = [r[0] for r in s.rows if r[1] != "t"]  # conveyor row without Diesel row
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
                    f" {pq.quote_literal(self.applied_by)}, 'adopted')"
                    " ON CONFLICT (version) DO NOTHING;\n"
                )
                result.adopted.append(m.version)
        return "".join(parts)

    def _prepare_sql(self, s: _Session) -> str:
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
            f" {pq.quote_literal(self.applied_by)}, 'conveyor') RETURNING $4, duration_ms;\n"
        )

    def _bookkeeping(self, s: _Session, m: Migration, direction: str, sql: str,
                     marker: str, own_tx: bool = False) -> str:
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
            f" pg_catalog.clock_timestamp(){duration}, {pq.quote_literal(self.applied_by)},"
            f" 'conveyor') RETURNING '{marker}', {returned};\n"
        )

    def _finish(self, s: _Session) -> None:
        self._exec(s.conn, s.flush_sql() + f"SELECT pg_catalog.pg_advisory_unlock({LOCK_KEY});")

    def _execute_steps(self, s: _Session, steps: list[tuple[Migration, str]], result: RunResult,
                       *, single_transaction: bool) -> None:
        i = 0
        while i < len(steps):
            msg = _Message()
            first_tx = steps[i][0].run_in_transaction or single_transaction
            if first_tx:
                flush = s.flush_sql()
                if flush:
                    # its own transaction: a BEGIN after it would otherwise absorb it into the
                    # first migration's transaction
                    msg.add("BEGIN;\n" + flush + "COMMIT;\n")
                    msg.leading_results += 3
            if first_tx and not single_transaction and s.prepared is None \
                    and steps[i][1] == "up":
                msg.add(self._prepare_sql(s))
                msg.leading_results += 2
            if single_transaction:
                msg.add("BEGIN;\n")
            first = i
            while i < len(steps):
                m, direction = steps[i]
                sql = m.up_sql if direction == "up" else (m.down_sql or "")
                k = len(msg.segments)
                marker = f"conveyor:{s.nonce}:{k}:end"
                if not (m.run_in_transaction or single_transaction):
                    if i > first:
                        break
                    # Sent alone and unchanged, as Diesel does; bookkeeping in a second query.
                    msg.add_segment(m, direction, sql, msg.length, 0, "")
                    i += 1
                    break
                if not single_transaction and i > first and (
                        i - first >= MAX_BATCH_MIGRATIONS
                        or msg.length + len(sql) > MAX_BATCH_CHARS):
                    break
                start = msg.length
                if single_transaction:
                    lead = msg.leading_results + 1 if k == 0 else 0
                else:
                    msg.add("BEGIN;\n")
                    lead = msg.leading_results + 1 if k == 0 else 2
                lowered = sql.lower()
                drops_prepared = any(x in lowered for x in _DROPS_PREPARED)
                if drops_prepared:
                    s.prepared = None  # this file may drop them: its own bookkeeping is plain
                msg.add_segment(m, direction, sql, start, lead,
                                "\n;\n" + self._bookkeeping(s, m, direction, sql, marker,
                                                            own_tx=not single_transaction)
                                + ("" if single_transaction else "COMMIT;\n"))
                i += 1
                if not single_transaction and any(x in lowered for x in _LEXER_SETTINGS):
                    break
                if drops_prepared:
                    break  # the next message prepares the statements again
            if single_transaction and i >= len(steps):
                msg.add("COMMIT;\n")
            self._send(s, msg, result, single_transaction)

    def _send(self, s: _Session, msg: _Message, result: RunResult,
              single_transaction: bool) -> None:
        seg0 = msg.segments[0]
        alone = not (seg0.migration.run_in_transaction or single_transaction)
        for seg in msg.segments:
            self._emit("start", version=seg.migration.version, name=seg.migration.name,
                       direction=seg.direction)
        t0 = time.perf_counter()
        try:
            results = s.conn.execute(msg.text(), only_rows_starting=f"conveyor:{s.nonce}:")
        except pq.ConnectError as exc:
            raise ConnectionFailed(
                f"Lost the connection to the database while running {seg0.migration.name}"
                f"{' and the following migrations' if len(msg.segments) > 1 else ''}: {exc}.",
                "Run `conveyor migrate status` to see what was applied (each migration commits "
                "together with its bookkeeping, so the tables tell the truth).",
            ) from None
        except pq.PgError as exc:
            s.prepared = None  # the PREPARE may not have run: the next message prepares again
            raise self._failure(s, msg, exc, result, single_transaction) from None
        if alone:
            duration = round((time.perf_counter() - t0) * 1000, 3)
            m = seg0.migration
            book = self._bookkeeping(s, m, seg0.direction, seg0.sql, f"conveyor:{s.nonce}:0:end")
            try:
                s.conn.execute(book)
            except pq.PgError as exc:
                raise MigrationFailed(
                    m.version, m.name, str(seg0.path), None, None,
                    f"the migration ran but recording it in {DIESEL_TABLE} / {CONVEYOR_TABLE} "
                    f"failed: {exc.message}",
                    exc.hint, None, detail=exc.detail, sqlstate=exc.sqlstate,
                    direction=seg0.direction, rolled_back=False,
                ) from None
            self._record_step(s, result, m, seg0.direction, duration)
            return
        self._record_markers(s, msg, results, result, upto=None,
                             own_tx=not single_transaction)

    def _record_markers(self, s: _Session, msg: _Message, results: list, result: RunResult,
                        upto: int | None, own_tx: bool) -> int:
        """Record the steps whose end marker is among ``results``; return how many.
        ``own_tx``: each marker carries its migration's duration (already stored), otherwise
        the time elapsed since the query started."""
        previous = 0.0
        count = 0
        for _, k, elapsed in _markers(results, s.nonce):
            if upto is not None and k >= upto:
                break
            seg = msg.segments[k]
            if own_tx:
                duration = elapsed
            else:
                duration = None if elapsed is None else round(max(0.0, elapsed - previous), 3)
                previous = elapsed if elapsed is not None else previous
            self._record_step(s, result, seg.migration, seg.direction, duration, stored=own_tx)
            count += 1
        return count

    def _record_step(self, s: _Session, result: RunResult, m: Migration, direction: str,
                     duration: float | None, stored: bool = False) -> None:
        step = StepResult(m.version, m.name, direction, duration)
        result.steps.append(step)
        if direction == "up" and duration is not None and not stored:
            s.durations.append((m.version, duration))
        self._emit("done", step=step)

    def _failure(self, s: _Session, msg: _Message, exc: pq.PgError, result: RunResult,
                 single_transaction: bool) -> MigrationFailed:
        results = exc.results
        markers = list(_markers(results, s.nonce))
        # which segment failed?
        k_fail = None
        if exc.position is not None:
            p = exc.position - 1
            for k, seg in enumerate(msg.segments):
                if p < seg.end:
                    k_fail = k
                    break
            if k_fail is None:
                k_fail = len(msg.segments) - 1
        if k_fail is None:
            k_fail = min(len(markers), len(msg.segments) - 1)
        seg = msg.segments[k_fail]
        cleanup = ""
        if s.conn.transaction_status in (pq.TRANS_INERROR, pq.TRANS_INTRANS):
            cleanup = "ROLLBACK;\n"
        if not single_transaction:
            self._record_markers(s, msg, results, result, upto=k_fail, own_tx=True)
        else:
            s.durations = []  # everything was rolled back
        failure = self._describe_failure(s, msg, seg, k_fail, exc, markers, single_transaction)
        try:
            cleanup += s.flush_sql()
            if cleanup:
                s.conn.execute(cleanup)
        except (pq.PgError, pq.ConnectError):
            pass
        if not results and k_fail > 0 and not single_transaction:
            # Nothing ran: PostgreSQL rejected the whole query string while parsing it (a
            # syntax error in a later file). Apply the migrations before the failing one, as
            # Diesel would have, then report the failure.
            earlier = [(x.migration, x.direction) for x in msg.segments[:k_fail]]
            try:
                self._execute_steps(s, earlier, result, single_transaction=False)
                cleanup = s.flush_sql()
                if cleanup:
                    s.conn.execute(cleanup)
            except MigrationFailed as other:  # pragma: no cover - an earlier one fails after all
                other.completed = result.steps[:]
                return other
        failure.completed = result.steps[:]
        return failure

    def _describe_failure(self, s: _Session, msg: _Message, seg: _Segment, k_fail: int,
                          exc: pq.PgError, markers: list, single_transaction: bool
                          ) -> MigrationFailed:
        from conveyor.migrations.sqltext import line_col, split_statements, statement_at

        m, sql = seg.migration, seg.sql
        line = col = None
        statement = None
        message = exc.message
        hint = exc.hint
        in_file = None  # character offset of the error in the file
        bookkeeping_failed = False
        if exc.position is not None:
            p = exc.position - 1
            if seg.body_start <= p < seg.body_end:
                in_file = p - seg.body_start
            elif p >= seg.body_end:
                if exc.sqlstate == "42601" and sql.strip():
                    # the parser ran past the end of the file into what follows it
                    in_file = len(sql.rstrip())
                    message += " (at the end of the file: is the last statement incomplete?)"
                else:
                    bookkeeping_failed = True
        else:
            # No position (an execution error): count the statements that completed after the
            # previous segment's end marker to find the failing one.
            last_marker_index = -1
            for ri, k, _ in markers:
                if k < k_fail:
                    last_marker_index = ri
            done = len(exc.results) - (last_marker_index + 1) - seg.lead
            spans = split_statements(sql)
            if 0 <= done < len(spans):
                in_file = spans[done][0]
                statement = sql[spans[done][0]:spans[done][1]]
            elif done >= len(spans):
                bookkeeping_failed = True
        if bookkeeping_failed:
            message = (f"the migration's SQL ran, but recording it in {DIESEL_TABLE} / "
                       f"{CONVEYOR_TABLE} failed: {exc.message}")
        if in_file is not None:
            line, col = line_col(sql, in_file)
            if statement is None:
                span = statement_at(sql, in_file)
                if span:
                    statement = sql[span[0]:span[1]]
        if exc.sqlstate == "25001" and not hint:  # active_sql_transaction
            hint = ("This statement cannot run inside a transaction: put it in a migration of "
                    "its own with `run_in_transaction = false` in metadata.toml (even then, a "
                    "file with several statements is one query, which PostgreSQL runs as one "
                    "transaction, as with Diesel)")
        detail = exc.detail
        if exc.context:
            ctx = exc.context.replace("\n", "; ")
            detail = (detail.rstrip(".") + ". " if detail else "") + "Context: " + ctx
        return MigrationFailed(
            m.version, m.name, str(seg.path), line, col, message, hint, statement,
            detail=detail, sqlstate=exc.sqlstate, direction=seg.direction,
            rolled_back=m.run_in_transaction or single_transaction,
            position=(in_file + 1) if in_file is not None else None,
        )


def _markers(results, nonce: str):
    """(result index, segment index, elapsed ms) for every end-marker row in ``results``."""
    prefix = f"conveyor:{nonce}:"
    for ri, r in enumerate(results):
        if r.status != pq.TUPLES_OK or len(r.rows) != 1:
            continue
        row = r.rows[0]
        if len(row) == 2 and isinstance(row[0], str) and row[0].startswith(prefix):
            k = int(row[0].split(":")[2])
            yield ri, k, (float(row[1]) if row[1] is not None else None)


_US, _RS = "\x1f", "\x1e"  # unit and record separators of the aggregated read


def _read_sql(conveyor_table: bool) -> str:
    """Applied rows (Diesel's table joined with conveyor's) aggregated into one text value:
    one value to fetch instead of ~9 per migration (it matters with hundreds of them)."""
    def col(expr: str) -> str:
        return f"COALESCE(({expr})::text, '')"

    ts = "'YYYY-MM-DD\"T\"HH24:MI:SS.US'"
    if conveyor_table:
        cols = [
            "COALESCE(d.version, c.version)", "d.version IS NOT NULL",
            f"pg_catalog.to_char(d.run_on, {ts})", "c.name", "c.checksum",
            f"pg_catalog.to_char(c.applied_at AT TIME ZONE 'UTC', {ts}) || 'Z'",
            "c.duration_ms", "c.applied_by", "c.source",
        ]
        source = ("FROM __diesel_schema_migrations d FULL JOIN __conveyor_migrations c"
                  " ON c.version = d.version")
    else:
        cols = ["d.version", "true", f"pg_catalog.to_char(d.run_on, {ts})",
                "NULL", "NULL", "NULL", "NULL", "NULL", "NULL"]
        source = "FROM __diesel_schema_migrations d"
    joined = " || E'\\x1f' || ".join(col(c) for c in cols)
    return f"SELECT pg_catalog.string_agg({joined}, E'\\x1e') {source};\n"


def _parse_rows(value: str | None) -> list[tuple]:
    """The aggregated read back into (version, in_diesel 't'/'f', run_on, name, checksum,
    applied_at, duration_ms, applied_by, source) tuples, None for NULL."""
    if not value:
        return []
    rows = []
    for rec in value.split(_RS):
        f = [x if x != "" else None for x in rec.split(_US)]
        f[1] = "t" if f[1] == "true" else "f"
        rows.append(tuple(f))
    return rows


def _newest_applied(status: Status, n: int | None, all: bool) -> list:
    """The applied migrations to revert: the newest ``n`` (Diesel: by version, descending)."""
    targets = list(reversed(status.applied))
    return targets if all else targets[: max(0, n or 0)]


def _build_status(migrations: list[Migration], rows: list[tuple]) -> Status:
    by_version = {m.version: m for m in migrations}
    applied: list[AppliedRow] = []
    problems: list[Problem] = []
    applied_versions = set()
    for version, in_diesel, run_on, name, checksum, applied_at, duration, by, source in rows:
        if in_diesel != "t":
            continue  # stale checksum row: its Diesel row was deleted (diesel_cli revert)
        applied_versions.add(version)
        applied.append(AppliedRow(
            version=version, run_on=run_on, name=name, recorded_checksum=checksum,
            applied_at=applied_at, duration_ms=float(duration) if duration else None,
            applied_by=by, source=source, migration=by_version.get(version),
        ))
    applied.sort(key=lambda a: a.version)
    for a in applied:
        state = a.state
        if state == "missing":
            problems.append(Problem(
                "missing", a.version, a.name,
                f"version {a.version}{' (' + a.name + ')' if a.name else ''} is applied in the "
                "database but no migration directory gives it (deleted or renamed, or this "
                "checkout is older than the database)",
            ))
        elif state == "edited":
            m = a.migration
            assert m is not None
            problems.append(Problem(
                "edited", a.version, m.name,
                f"{m.up_path} was edited after it was applied (sha256 recorded "
                f"{a.recorded_checksum[:12]}..., now {m.checksum[:12]}...)",
            ))
        elif state == "unrecorded":
            m = a.migration
            assert m is not None
            problems.append(Problem(
                "unrecorded", a.version, m.name,
                f"{m.name} was applied without conveyor (e.g. by diesel_cli): no checksum is "
                "recorded yet; the next `conveyor migrate run` records the current up.sql's",
            ))
    pending = [m for m in migrations if m.version not in applied_versions]
    latest = max(applied_versions) if applied_versions else None
    for m in pending:
        if latest is not None and m.version < latest:
            problems.append(Problem(
                "out_of_order", m.version, m.name,
                f"{m.name} is pending but older than the latest applied version {latest}; it "
                "will be applied anyway (as Diesel does), after the newer ones",
            ))
    return Status(applied=applied, pending=pending, problems=problems)


def _setup_error(exc: pq.PgError) -> MigrationError:
    detail = f" ({exc.detail})" if exc.detail else ""
    state = f" [SQLSTATE {exc.sqlstate}]" if exc.sqlstate else ""
    return MigrationError(
        f"Preparing the database for migrations failed: {exc.message}{detail}{state}.",
        "conveyor needs to create __diesel_schema_migrations and __conveyor_migrations in the "
        "first schema of the search_path: check the role's privileges (CREATE on that schema).",
    )


def _describe_target(conninfo: str) -> str:
    return conninfo if "://" in conninfo or "=" in conninfo else repr(conninfo)


def _default_applied_by() -> str:
    user = os.environ.get("USER") or os.environ.get("LOGNAME")
    if not user:
        try:
            import pwd

            user = pwd.getpwuid(os.getuid()).pw_name
        except Exception:  # pragma: no cover - exotic platforms
            user = "unknown"
    try:
        host = os.uname().nodename
    except AttributeError:  # pragma: no cover - Windows
        host = "localhost"
    return f"{user}@{host}"
