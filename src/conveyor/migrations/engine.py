"""The migration engine: plan, apply, revert and redo Diesel-layout migrations on PostgreSQL.

Compatibility with Diesel (see docs/diesel-compat.md for the source files):

* Diesel's table is created with Diesel's exact statement and written with Diesel's exact
  ``INSERT`` (``version`` only; ``run_on`` defaults to ``CURRENT_TIMESTAMP``, in UTC as the
  session's time zone is UTC like Diesel's);
* each migration file is sent, unchanged, inside one simple-protocol query, as Diesel's
  ``batch_execute`` does (:func:`wire.simple`); transactional migrations run between ``BEGIN`` and ``COMMIT``
  together with their bookkeeping, non-transactional ones are sent alone (so PostgreSQL
  runs a multi-statement file as one implicit transaction, exactly as with Diesel);
* the session uses ``TimeZone=UTC`` and ``client_encoding=UTF8`` as Diesel's PgConnection does;
  a migration that mentions ``search_path`` has it restored afterwards, as current Diesel does
  after every migration (the bookkeeping statements use schema-qualified names anyway).

Additions of conveyor's own:

* ``__conveyor_migrations`` (side table: checksum of up.sql, applied_at, duration, who);
* a session-level advisory lock (``LOCK_KEY``) taken *before* anything else, including the
  ``CREATE TABLE IF NOT EXISTS`` of both tables, polled rather than waited for (see
  ``lock.lock_and_setup``);
* speed: the statements of many consecutive transactional migrations (each still in its own
  transaction) travel in one simple query, so applying N migrations costs one round trip instead
  of ~3N. The checksum ``INSERT ... RETURNING 'conveyor:<nonce>:<k>:end', <duration ms>`` of
  each migration marks it as completed (and times it: see ``bookkeeping``); PostgreSQL's error position (relative to the
  whole query string) is mapped back to the failing file, line and column, and an error without
  a position is attributed by counting the statement results after the last marker.

Where the rest lives: ``records`` (what is reported), ``queries`` (tables, the applied query),
``lock`` (the lock and set-up round trip), ``batch`` (sessions, messages, markers),
``bookkeeping`` (the SQL that writes both tables), ``failure`` (describing a failure),
``wire`` (the connection: psycopg 3).
"""

from __future__ import annotations

import builtins
import os
import time
from collections.abc import Callable
from pathlib import Path

import psycopg
from psycopg.pq import TransactionStatus

from conveyor.migrations.batch import (
    MAX_BATCH_CHARS,
    MAX_BATCH_MIGRATIONS,
    Message,
    Session,
    markers,
)
from conveyor.migrations.bookkeeping import (
    DROPS_PREPARED,
    START_SQL,
    bookkeeping_sql,
    housekeeping,
    prepare_sql,
    record_alone,
)
from conveyor.migrations.discovery import Migration, discover
from conveyor.migrations.errors import (
    ConnectionFailed,
    DriftError,
    MigrationFailed,
    NotRevertible,
)
from conveyor.migrations.lock import LOCK_KEY, lock_and_setup, lost
from conveyor.migrations.queries import (
    CONVEYOR_TABLE,
    DIESEL_TABLE,
    SESSION_SETUP,
    TABLES_EXIST_SQL,
    AppliedLine,
    applied_columns_sql,
)
from conveyor.migrations.records import (
    AppliedRow,
    Problem,
    RunResult,
    Status,
    StepResult,
    build_status,
    newest_applied,
)
from conveyor.migrations.wire import ConnectionLost, ServerError, connect, execute, simple

__all__ = ["LOCK_KEY", "AppliedRow", "Migrator", "Problem", "RunResult", "Status", "StepResult"]

# When a migration mentions one of these settings, it may change how PostgreSQL lexes the SQL
# that follows it; it then ends the batch, so later files are parsed after it has run.
_LEXER_SETTINGS = ("standard_conforming_strings", "backslash_quote")


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
        on_event: Callable[..., None] | None = None,
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
        return Path(self._migrations_dir)

    def discover(self) -> list[Migration]:
        return discover(self._migrations_dir)

    def status(self) -> Status:
        """Applied and pending migrations and problems (read-only: creates no table)."""
        migrations, conn = self._discover_and_connect()
        with conn:
            try:
                exists = simple(conn, SESSION_SETUP + TABLES_EXIST_SQL)[-1]
                assert exists is not None
                rows = []
                if exists[0] == "t":
                    query = applied_columns_sql(conveyor_table=exists[1] == "t")
                    rows = [AppliedLine(*r) for r in execute(conn, query)]
            except ConnectionLost as exc:
                raise lost(exc) from None
        status = build_status(migrations, rows)
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
            s = lock_and_setup(conn, self.lock_timeout, self._emit)
            status = build_status(migrations, s.rows)
            blocking = status.blocking_problems
            if blocking and not allow_drift:
                raise DriftError(blocking)
            result = RunResult(problems=status.problems)
            try:
                housekeeping(s, status, result, self.applied_by)
            except ConnectionLost as exc:
                raise lost(exc) from None
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
            s = lock_and_setup(conn, self.lock_timeout, self._emit)
            status = build_status(migrations, s.rows)
            to_revert = self._revertible(newest_applied(status, n, all))
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
            s = lock_and_setup(conn, self.lock_timeout, self._emit)
            status = build_status(migrations, s.rows)
            to_revert = self._revertible(newest_applied(status, n, all))
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

    def _emit(self, event: str, **data: object) -> None:
        if self.on_event is not None:
            self.on_event(event, **data)

    def _discover_and_connect(self) -> tuple[list[Migration], psycopg.Connection]:
        """The migrations (a discovery error comes first), then the connection."""
        migrations = self.discover()
        self.notices = []
        return migrations, connect(self.conninfo, self.notices)

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

    def _finish(self, s: Session) -> None:
        try:
            execute(s.conn, "SELECT pg_catalog.pg_advisory_unlock(%s)", (LOCK_KEY,))
        except ConnectionLost as exc:
            raise lost(exc) from None

    def _execute_steps(self, s: Session, steps: list[tuple[Migration, str]], result: RunResult,
                       *, single_transaction: bool) -> None:
        i = 0
        while i < len(steps):
            msg = Message()
            first_tx = steps[i][0].run_in_transaction or single_transaction
            if first_tx:
                msg.add(START_SQL, results=1)
            if first_tx and not single_transaction and s.prepared is None \
                    and steps[i][1] == "up":
                msg.add(prepare_sql(s, self.applied_by), results=2)
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
                drops_prepared = any(x in lowered for x in DROPS_PREPARED)
                if drops_prepared:
                    s.prepared = None  # this file may drop them: its own bookkeeping is plain
                msg.add_segment(m, direction, sql, start, lead,
                                "\n;\n" + bookkeeping_sql(s, m, direction, sql, marker,
                                                          self.applied_by)
                                + ("" if single_transaction else "COMMIT;\n"))
                i += 1
                if not single_transaction and any(x in lowered for x in _LEXER_SETTINGS):
                    break
                if drops_prepared:
                    break  # the next message prepares the statements again
            if single_transaction and i >= len(steps):
                msg.add("COMMIT;\n")
            self._send(s, msg, result, single_transaction)

    def _send(self, s: Session, msg: Message, result: RunResult,
              single_transaction: bool) -> None:
        seg0 = msg.segments[0]
        alone = not (seg0.migration.run_in_transaction or single_transaction)
        for seg in msg.segments:
            self._emit("start", version=seg.migration.version, name=seg.migration.name,
                       direction=seg.direction)
        t0 = time.perf_counter()
        try:
            results = simple(s.conn, msg.text(), rows_starting=f"conveyor:{s.nonce}:")
        except ConnectionLost as exc:
            raise ConnectionFailed(
                f"Lost the connection to the database while running {seg0.migration.name}"
                f"{' and the following migrations' if len(msg.segments) > 1 else ''}: {exc}.",
                "Run `conveyor migrate status` to see what was applied (each migration commits "
                "together with its bookkeeping, so the tables tell the truth).",
            ) from None
        except ServerError as exc:
            s.prepared = None  # the PREPARE may not have run: the next message prepares again
            raise self._failure(s, msg, exc, result, single_transaction) from None
        if alone:
            duration = round((time.perf_counter() - t0) * 1000, 3)
            m = seg0.migration
            try:
                record_alone(s, m, seg0.direction, duration, self.applied_by)
            except ConnectionLost as exc:
                raise lost(exc) from None
            except ServerError as exc:
                raise MigrationFailed(
                    m.version, m.name, str(seg0.path), None, None,
                    f"the migration ran but recording it in {DIESEL_TABLE} / {CONVEYOR_TABLE} "
                    f"failed: {exc.message}",
                    exc.hint, None, detail=exc.detail, sqlstate=exc.sqlstate,
                    direction=seg0.direction, rolled_back=False,
                ) from None
            self._record_step(result, m, seg0.direction, duration)
            return
        self._record_markers(s, msg, results, result, upto=None)

    def _record_markers(self, s: Session, msg: Message, results: list, result: RunResult,
                        upto: int | None) -> int:
        """Record the steps whose end marker is among ``results`` (each carries its
        migration's own duration, also stored); return how many."""
        count = 0
        for _, k, duration in markers(results, s.nonce):
            if upto is not None and k >= upto:
                break
            seg = msg.segments[k]
            self._record_step(result, seg.migration, seg.direction, duration)
            count += 1
        return count

    def _record_step(self, result: RunResult, m: Migration, direction: str,
                     duration: float | None) -> None:
        step = StepResult(m.version, m.name, direction, duration)
        result.steps.append(step)
        self._emit("done", step=step)

    def _failure(self, s: Session, msg: Message, exc: ServerError, result: RunResult,
                 single_transaction: bool) -> MigrationFailed:
        from conveyor.migrations.failure import describe_failure, failing_segment  # on failure

        results = exc.results
        found = list(markers(results, s.nonce))
        k_fail = failing_segment(msg.segments, exc, len(found))
        seg = msg.segments[k_fail]
        if not single_transaction:
            self._record_markers(s, msg, results, result, upto=k_fail)
        failure = describe_failure(seg, k_fail, exc, found, single_transaction)
        if s.conn.info.transaction_status in (TransactionStatus.INERROR,
                                              TransactionStatus.INTRANS):
            try:
                execute(s.conn, "ROLLBACK")
            except (ServerError, ConnectionLost):
                pass
        if not results and k_fail > 0 and not single_transaction:
            # Nothing ran: PostgreSQL rejected the whole query string while parsing it (a
            # syntax error in a later file). Apply the migrations before the failing one, as
            # Diesel would have, then report the failure.
            earlier = [(x.migration, x.direction) for x in msg.segments[:k_fail]]
            try:
                self._execute_steps(s, earlier, result, single_transaction=False)
            except MigrationFailed as other:  # pragma: no cover - an earlier one fails after all
                other.completed = result.steps[:]
                return other
        failure.completed = result.steps[:]
        return failure


def _default_applied_by() -> str:
    user = os.environ.get("USER") or os.environ.get("LOGNAME")
    if not user:
        try:
            import pwd

            user = pwd.getpwuid(os.getuid()).pw_name
        except Exception:  # noqa: BLE001  # pragma: no cover - exotic platforms
            user = "unknown"
    try:
        host = os.uname().nodename
    except AttributeError:  # pragma: no cover - Windows
        host = "localhost"
    return f"{user}@{host}"
