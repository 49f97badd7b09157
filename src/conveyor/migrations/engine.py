"""The migration engine: plan, apply, revert and redo Diesel-layout migrations on PostgreSQL.

Compatibility with Diesel (see docs/diesel-compat.md for the source files):

* Diesel's table is created with Diesel's exact statement and holds exactly Diesel's rows
  (``version``, ``run_on`` = start of the migration, UTC, like Diesel's session time zone);
* each migration file is sent, unchanged, inside one simple-protocol query, as Diesel's
  ``batch_execute`` does; transactional migrations run between ``BEGIN`` and ``COMMIT``
  together with their bookkeeping, non-transactional ones are sent alone (so PostgreSQL
  runs a multi-statement file as one implicit transaction, exactly as with Diesel);
* the session uses ``TimeZone=UTC`` and ``client_encoding=UTF8`` as Diesel's PgConnection does,
  and ``search_path`` is restored after every migration, as current Diesel does.

Additions of conveyor's own:

* ``__conveyor_migrations`` (side table: checksum of up.sql, applied_at, duration, who);
* a session-level advisory lock (``LOCK_KEY``) taken *before* anything else, including the
  ``CREATE TABLE IF NOT EXISTS`` of both tables;
* speed: the statements of many consecutive transactional migrations (each still in its own
  transaction) travel in one simple query, so applying N migrations costs one round trip instead
  of ~3N. Markers (``SELECT ..., 'conveyor:<nonce>:...'``) between migrations tell which ones
  completed, and PostgreSQL's error position (relative to the whole query string) is mapped back
  to the failing file, line and column.

Stdlib + libpq only (see ``pq.py``).
"""

from __future__ import annotations

import builtins
import os
import time
from pathlib import Path

from conveyor.migrations import pq
from conveyor.migrations.discovery import Migration, discover
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
    """One migration body in a message: character offsets of the body and of the end of its
    bookkeeping."""

    __slots__ = ("migration", "direction", "body_start", "body_end", "end")

    def __init__(self, migration, direction, body_start, body_end, end) -> None:
        self.migration, self.direction = migration, direction
        self.body_start, self.body_end, self.end = body_start, body_end, end


class _Message:
    """One simple query made of segments, with the offsets needed to attribute errors."""

    def __init__(self, nonce: str) -> None:
        self.nonce = nonce
        self.parts: list[str] = []
        self.length = 0
        self.segments: list[_Segment] = []

    def add(self, text: str) -> None:
        self.parts.append(text)
        self.length += len(text)

    def add_body(self, m: Migration, direction: str, sql: str, bookkeeping: str) -> None:
        start = self.length
        self.add(sql)
        body_end = self.length
        self.add(bookkeeping)
        self.segments.append(_Segment(m, direction, start, body_end, self.length))

    def text(self) -> str:
        return "".join(self.parts)


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
        self.migrations_dir = Path(migrations_dir)
        self.lock_timeout = lock_timeout
        self.applied_by = applied_by or _default_applied_by()
        #: optional callable(event: str, **data), e.g. for progress output
        self.on_event = on_event
        self.notices: list[str] = []

    # ------------------------------------------------------------------ public API

    def discover(self) -> list[Migration]:
        return discover(self.migrations_dir)

    def status(self) -> Status:
        """Applied and pending migrations and problems (read-only: creates no table)."""
        migrations = self.discover()
        with self._connect() as conn:
            conn.execute(SESSION_SETUP)
            exists = conn.query(
                "SELECT pg_catalog.to_regclass('__diesel_schema_migrations') IS NOT NULL,"
                " pg_catalog.to_regclass('__conveyor_migrations') IS NOT NULL"
            )[0]
            rows: list[tuple] = []
            if exists[0] == "t":
                rows = conn.query(_read_sql(conveyor_table=exists[1] == "t"))
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
        migrations = self.discover()
        with self._connect() as conn:
            rows, search_path = self._lock_and_setup(conn)
            status = _build_status(migrations, rows)
            blocking = status.blocking_problems
            if blocking and not allow_drift:
                raise DriftError(blocking)
            result = RunResult(problems=status.problems)
            housekeeping = self._housekeeping_sql(status, rows, result)
            self._emit("plan", pending=status.pending, problems=status.problems)
            steps = [(m, "up") for m in status.pending]
            self._execute_steps(conn, steps, search_path, result, prologue=housekeeping,
                                single_transaction=False)
            conn.execute(f"SELECT pg_catalog.pg_advisory_unlock({LOCK_KEY})")
        result.duration_ms = (time.perf_counter() - t0) * 1000
        return result

    def revert(self, n: int | None = 1, *, all: bool = False) -> RunResult:
        """Revert the last ``n`` applied migrations (Diesel: by version, descending), or all."""
        t0 = time.perf_counter()
        migrations = self.discover()
        with self._connect() as conn:
            rows, search_path = self._lock_and_setup(conn)
            status = _build_status(migrations, rows)
            targets = list(reversed(status.applied))
            if not all:
                targets = targets[: max(0, n or 0)]
            to_revert = self._revertible(targets)
            result = RunResult(problems=status.problems)
            self._emit("plan", reverting=to_revert, problems=status.problems)
            self._execute_steps(conn, [(m, "down") for m in to_revert], search_path, result,
                                prologue="", single_transaction=False)
            conn.execute(f"SELECT pg_catalog.pg_advisory_unlock({LOCK_KEY})")
        result.duration_ms = (time.perf_counter() - t0) * 1000
        return result

    def redo(self, n: int | None = 1, *, all: bool = False) -> RunResult:
        """Revert the last ``n`` (or all) applied migrations and apply them again; in one
        transaction when all of them are transactional (as diesel_cli does)."""
        t0 = time.perf_counter()
        migrations = self.discover()
        with self._connect() as conn:
            rows, search_path = self._lock_and_setup(conn)
            status = _build_status(migrations, rows)
            targets = list(reversed(status.applied))
            if not all:
                targets = targets[: max(0, n or 0)]
            to_revert = self._revertible(targets)
            steps = [(m, "down") for m in to_revert]
            steps += [(m, "up") for m in sorted(to_revert, key=lambda m: m.version)]
            one_tx = all_tx = builtins.all(m.run_in_transaction for m in to_revert)
            result = RunResult(problems=status.problems)
            self._emit("plan", redoing=to_revert, single_transaction=all_tx,
                       problems=status.problems)
            self._execute_steps(conn, steps, search_path, result, prologue="",
                                single_transaction=one_tx)
            conn.execute(f"SELECT pg_catalog.pg_advisory_unlock({LOCK_KEY})")
        result.duration_ms = (time.perf_counter() - t0) * 1000
        return result

    # ------------------------------------------------------------------ internals

    def _emit(self, event: str, **data) -> None:
        if self.on_event is not None:
            self.on_event(event, **data)

    def _connect(self) -> pq.Connection:
        try:
            conn = pq.connect(self.conninfo)
        except pq.ConnectError as exc:
            raise ConnectionFailed(
                f"Cannot connect to the database {mask_secrets(_describe_target(self.conninfo))}: "
                f"{exc}.",
                "Check the database URL (--database-url, DATABASE_URL or the config), that the "
                "server is running and reachable, and the credentials.",
            ) from None
        self.notices = conn.notices
        return conn

    def _lock_and_setup(self, conn: pq.Connection) -> tuple[list[tuple], str]:
        """Take the advisory lock, create both tables if needed, read the applied rows."""
        timeout_ms = max(1, int(self.lock_timeout * 1000))
        sql = (
            SESSION_SETUP
            + f"SET lock_timeout = '{timeout_ms}ms';\n"
            + f"SELECT pg_catalog.pg_advisory_lock({LOCK_KEY});\n"
            + "RESET lock_timeout;\n"
            + DIESEL_CREATE_TABLE
            + CONVEYOR_CREATE_TABLE
            + "SELECT pg_catalog.current_setting('search_path');\n"
            + _read_sql(conveyor_table=True)
        )
        try:
            results = conn.execute(sql)
        except pq.PgError as exc:
            if exc.sqlstate == "55P03":  # lock_not_available: lock_timeout expired
                raise LockTimeout(LOCK_KEY, self.lock_timeout, self._lock_holders(conn)) from None
            raise _setup_error(exc) from None
        rows_results = [r for r in results if r.status == pq.TUPLES_OK]
        search_path = rows_results[-2].rows[0][0]
        return rows_results[-1].rows, search_path

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
        except pq.PgError:
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
                    f"migration directory in {self.migrations_dir} gives that version.",
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

    def _housekeeping_sql(self, status: Status, rows: list[tuple], result: RunResult) -> str:
        """Record checksums of migrations applied by another tool (first sight) and drop
        checksum rows whose Diesel row is gone (reverted by diesel_cli)."""
        parts = []
        stale = [r[0] for r in rows if r[1] != "t"]  # conveyor row without Diesel row
        if stale:
            parts.append(
                "DELETE FROM __conveyor_migrations WHERE version IN ("
                + ", ".join(pq.quote_literal(v) for v in stale) + ");\n"
            )
        for a in status.applied:
            if a.recorded_checksum is None and a.migration is not None:
                m = a.migration
                parts.append(
                    "INSERT INTO __conveyor_migrations (version, name, checksum, applied_at,"
                    " applied_by, source) VALUES ("
                    f"{pq.quote_literal(m.version)}, {pq.quote_literal(m.name)},"
                    f" {pq.quote_literal(m.checksum)},"
                    f" COALESCE((SELECT run_on AT TIME ZONE 'UTC' FROM __diesel_schema_migrations"
                    f" WHERE version = {pq.quote_literal(m.version)}), now()),"
                    f" {pq.quote_literal(self.applied_by)}, 'adopted')"
                    " ON CONFLICT (version) DO NOTHING;\n"
                )
                result.adopted.append(m.version)
        return "".join(parts)

    def _bookkeeping(self, m: Migration, direction: str, marker: str, search_path: str,
                     started: str = "pg_catalog.current_setting('conveyor.started_at')"
                                    "::timestamptz") -> str:
        """SQL run after a migration's body: restore search_path (as Diesel does), emit the end
        marker with the duration, and write both tables."""
        v = pq.quote_literal(m.version)
        restore = (
            f"SELECT pg_catalog.set_config('search_path', {pq.quote_literal(search_path)}, false),"
            f" '{marker}',"
            " pg_catalog.round((pg_catalog.date_part('epoch', pg_catalog.clock_timestamp()"
            f" - {started}) * 1000)::numeric, 3);\n"
        )
        if direction == "down":
            return (
                restore
                + f"DELETE FROM __diesel_schema_migrations WHERE version = {v};\n"
                + f"DELETE FROM __conveyor_migrations WHERE version = {v};\n"
            )
        return (
            restore
            + "INSERT INTO __diesel_schema_migrations (version, run_on) VALUES"
            f" ({v}, {started} AT TIME ZONE 'UTC');\n"
            + "INSERT INTO __conveyor_migrations (version, name, checksum, applied_at, duration_ms,"
            " applied_by, source) VALUES ("
            f"{v}, {pq.quote_literal(m.name)}, {pq.quote_literal(m.checksum)}, {started},"
            f" pg_catalog.date_part('epoch', pg_catalog.clock_timestamp() - {started}) * 1000,"
            f" {pq.quote_literal(self.applied_by)}, 'conveyor')"
            " ON CONFLICT (version) DO UPDATE SET name = EXCLUDED.name,"
            " checksum = EXCLUDED.checksum, applied_at = EXCLUDED.applied_at,"
            " duration_ms = EXCLUDED.duration_ms, applied_by = EXCLUDED.applied_by,"
            " db_user = EXCLUDED.db_user, source = EXCLUDED.source;\n"
        )

    def _execute_steps(
        self,
        conn: pq.Connection,
        steps: list[tuple[Migration, str]],
        search_path: str,
        result: RunResult,
        *,
        prologue: str,
        single_transaction: bool,
    ) -> None:
        nonce = os.urandom(6).hex()
        if prologue:
            conn.execute(prologue)  # housekeeping (rare): its own query, before any migration
        i = 0
        while i < len(steps):
            msg = _Message(nonce)
            if single_transaction:
                msg.add("BEGIN;\n")
            first = i
            while i < len(steps):
                m, direction = steps[i]
                sql = m.up_sql if direction == "up" else (m.down_sql or "")
                transactional = m.run_in_transaction
                if not transactional and i > first:
                    break  # a non-transactional file is sent alone
                if i > first and (
                    i - first >= MAX_BATCH_MIGRATIONS or msg.length + len(sql) > MAX_BATCH_CHARS
                ) and not single_transaction:
                    break
                marker = f"conveyor:{nonce}:{len(msg.segments)}"
                if transactional:
                    if not single_transaction:
                        msg.add("BEGIN;\n")
                    msg.add(
                        "SELECT pg_catalog.set_config('conveyor.started_at',"
                        f" pg_catalog.clock_timestamp()::text, true), '{marker}:start';\n"
                    )
                    msg.add_body(m, direction, sql,
                                 "\n;\n" + self._bookkeeping(m, direction, marker + ":end",
                                                             search_path)
                                 + ("" if single_transaction else "COMMIT;\n"))
                    i += 1
                    if any(s in sql.lower() for s in _LEXER_SETTINGS):
                        break
                else:
                    # Sent alone, as Diesel does; bookkeeping follows in a second query.
                    msg.add_body(m, direction, sql, "")
                    i += 1
                    break
            if single_transaction and i >= len(steps):
                msg.add("COMMIT;\n")
            self._send(conn, msg, result, search_path, single_transaction)

    def _send(self, conn: pq.Connection, msg: _Message, result: RunResult, search_path: str,
              single_transaction: bool) -> None:
        text = msg.text()
        seg0 = msg.segments[0]
        non_tx = not seg0.migration.run_in_transaction and len(msg.segments) == 1
        for seg in msg.segments:
            self._emit("start", version=seg.migration.version, name=seg.migration.name,
                       direction=seg.direction)
        t0 = time.perf_counter()
        try:
            results = conn.execute(text)
        except pq.PgError as exc:
            self._handle_failure(conn, msg, exc, result, search_path, single_transaction)
            raise AssertionError("unreachable")  # _handle_failure always raises
        if non_tx:
            duration = (time.perf_counter() - t0) * 1000
            m = seg0.migration
            marker = f"conveyor:{msg.nonce}:0:end"
            book = self._bookkeeping(
                m, seg0.direction, marker, search_path,
                started=f"(pg_catalog.clock_timestamp() - interval '{duration:.3f} milliseconds')",
            )
            try:
                conn.execute(book)
            except pq.PgError as exc:
                raise MigrationFailed(
                    m.version, m.name, str(m.up_path if seg0.direction == "up" else m.down_path),
                    None, None,
                    f"the migration ran but recording it in {DIESEL_TABLE} failed: {exc.message}",
                    exc.hint, None, detail=exc.detail, sqlstate=exc.sqlstate,
                    direction=seg0.direction, rolled_back=False,
                ) from None
            self._record_step(result, m, seg0.direction, round(duration, 3))
            return
        for step_marker_rows in _markers(results, msg.nonce):
            idx, kind, value = step_marker_rows
            if kind == "end":
                seg = msg.segments[idx]
                self._record_step(result, seg.migration, seg.direction,
                                  float(value) if value is not None else None)

    def _record_step(self, result: RunResult, m: Migration, direction: str,
                     duration: float | None) -> None:
        step = StepResult(m.version, m.name, direction, duration)
        result.steps.append(step)
        self._emit("done", step=step)

    def _handle_failure(self, conn, msg: _Message, exc: pq.PgError, result: RunResult,
                        search_path: str, single_transaction: bool) -> None:
        if conn.transaction_status in (pq.TRANS_INERROR, pq.TRANS_INTRANS):
            try:
                conn.execute("ROLLBACK")
            except pq.PgError:
                pass
        markers = list(_markers(exc.results, msg.nonce))
        # which segment failed?
        seg_index = None
        if exc.position is not None:
            p = exc.position - 1
            for k, seg in enumerate(msg.segments):
                if p < seg.end or k == len(msg.segments) - 1:
                    seg_index = k
                    break
        if seg_index is None:
            started = [idx for idx, kind, _ in markers if kind == "start"]
            seg_index = started[-1] if started else 0
        seg = msg.segments[seg_index]
        # migrations of this message that completed (committed unless single transaction)
        completed = [idx for idx, kind, _ in markers if kind == "end" and idx < seg_index]
        if not single_transaction:
            for idx, kind, value in markers:
                if kind == "end" and idx < seg_index:
                    s = msg.segments[idx]
                    self._record_step(result, s.migration, s.direction,
                                      float(value) if value is not None else None)
        failure = self._describe_failure(msg, seg, seg_index, exc, markers, single_transaction)
        failure.completed = result.steps[:]
        if (not single_transaction and not completed and seg_index > 0
                and not any(kind == "start" for _, kind, _ in markers)):
            # Nothing ran: PostgreSQL rejected the whole query string while parsing it (a syntax
            # error in a later file). Apply the migrations before the failing one, as Diesel
            # would have, then report the failure.
            earlier = [(s.migration, s.direction) for s in msg.segments[:seg_index]]
            self._execute_steps(conn, earlier, search_path, result, prologue="",
                                single_transaction=False)
            failure.completed = result.steps[:]  # type: ignore[attr-defined]
        raise failure

    def _describe_failure(self, msg: _Message, seg: _Segment, seg_index: int, exc: pq.PgError,
                          markers: list, single_transaction: bool) -> MigrationFailed:
        from conveyor.migrations.sqltext import line_col, split_statements, statement_at

        m = seg.migration
        sql = m.up_sql if seg.direction == "up" else (m.down_sql or "")
        path = m.up_path if seg.direction == "up" else m.down_path
        line = col = None
        statement = None
        message = exc.message
        position_in_file = None
        if exc.position is not None:
            p = exc.position - 1
            if seg.body_start <= p < seg.body_end:
                position_in_file = p - seg.body_start
            elif p >= seg.body_end:
                # inside our bookkeeping: either the file ends in an incomplete statement (the
                # parser ran into what follows it) or the bookkeeping itself failed
                if exc.sqlstate and exc.sqlstate.startswith("42") and sql.rstrip():
                    position_in_file = len(sql.rstrip())
                    message += " (at the end of the file: is the last statement incomplete?)"
                else:
                    message = (f"the migration ran but recording it in {DIESEL_TABLE} / "
                               f"{CONVEYOR_TABLE} failed: {exc.message}")
        else:
            # No position (an execution error): count the statements that completed after this
            # migration's start marker to find the failing one.
            done = 0
            seen_start = False
            for r in exc.results:
                if r.status == pq.TUPLES_OK and r.rows and len(r.rows[0]) >= 2 and \
                        isinstance(r.rows[0][1], str) and r.rows[0][1].startswith(
                            f"conveyor:{msg.nonce}:{seg_index}:"):
                    seen_start = r.rows[0][1].endswith(":start")
                    if not seen_start:
                        break
                    done = 0
                    continue
                if seen_start:
                    done += 1
            if not m.run_in_transaction:
                done = sum(1 for _ in exc.results)
                seen_start = True
            ended = any(idx == seg_index and kind == "end" for idx, kind, _ in markers)
            if ended:
                message = (f"the migration ran but recording it in {DIESEL_TABLE} / "
                           f"{CONVEYOR_TABLE} failed: {exc.message}")
            elif seen_start:
                spans = split_statements(sql)
                if done < len(spans):
                    position_in_file = spans[done][0]
                    statement = sql[spans[done][0]:spans[done][1]]
        if position_in_file is not None:
            line, col = line_col(sql, position_in_file)
            if statement is None:
                span = statement_at(sql, position_in_file)
                if span:
                    statement = sql[span[0]:span[1]]
        detail = exc.detail
        if exc.context and not exc.context.startswith("SQL statement \"SELECT pg_catalog"):
            detail = (detail + ". " if detail else "") + "Context: " + exc.context.replace("\n", "; ")
        return MigrationFailed(
            m.version, m.name, str(path), line, col, message, exc.hint, statement,
            detail=detail, sqlstate=exc.sqlstate, direction=seg.direction,
            rolled_back=m.run_in_transaction or single_transaction,
            position=(position_in_file + 1) if position_in_file is not None else None,
        )


def _markers(results, nonce: str):
    """(segment index, 'start'|'end', duration) for every marker row among ``results``."""
    prefix = f"conveyor:{nonce}:"
    for r in results:
        if r.status != pq.TUPLES_OK or len(r.rows) != 1:
            continue
        row = r.rows[0]
        if len(row) >= 2 and isinstance(row[1], str) and row[1].startswith(prefix):
            _, _, idx, kind = row[1].split(":")
            yield int(idx), kind, (row[2] if len(row) > 2 else None)


def _read_sql(conveyor_table: bool) -> str:
    """Applied rows: Diesel's table joined with conveyor's, newest version first."""
    if conveyor_table:
        return (
            "SELECT COALESCE(d.version, c.version), d.version IS NOT NULL,"
            " pg_catalog.to_char(d.run_on, 'YYYY-MM-DD\"T\"HH24:MI:SS.US'),"
            " c.name, c.checksum,"
            " pg_catalog.to_char(c.applied_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'),"
            " c.duration_ms, c.applied_by, c.source"
            " FROM __diesel_schema_migrations d FULL JOIN __conveyor_migrations c"
            " ON c.version = d.version ORDER BY 1 DESC;\n"
        )
    return (
        "SELECT d.version, true, pg_catalog.to_char(d.run_on, 'YYYY-MM-DD\"T\"HH24:MI:SS.US'),"
        " NULL, NULL, NULL, NULL, NULL, NULL"
        " FROM __diesel_schema_migrations d ORDER BY 1 DESC;\n"
    )


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
