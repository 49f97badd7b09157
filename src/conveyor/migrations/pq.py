"""A minimal PostgreSQL client over libpq: one connection, simple-protocol queries.

Why not psycopg's high-level API: ``import psycopg`` costs 0.3-0.45 s of start-up here, which
alone breaks the 0.15 s budget of a no-op ``conveyor migrate run``. libpq itself is what psycopg
uses; it loads in ~5 ms through ``ctypes``. This module talks to libpq directly and offers only
what the engine needs: connect, send one simple-protocol query (``PQsendQuery``, the same
protocol as Diesel's ``batch_execute``/``PQexec``), collect every result, and report server
errors with all their fields (message, detail, hint, position, SQLSTATE).

Two interchangeable backends, same semantics (both are libpq):

* ``ctypes``: libpq loaded with ctypes (``$CONVEYOR_LIBPQ``, then the system ``libpq.so.5``,
  then the copy bundled in the ``psycopg_binary`` wheel);
* ``psycopg``: psycopg's own low-level libpq wrapper (``psycopg.pq``), used when no libpq can be
  loaded by ctypes (or when ``CONVEYOR_PQ=psycopg``).

Waiting for results uses ``select()`` so that Ctrl-C interrupts a long migration: the running
query is cancelled (``PQcancel``) and the interruption is re-raised.

Stdlib only at import time. The two backends live in ``pq_backends``.
"""

from __future__ import annotations

import os
import select

from conveyor.migrations.pq_backends import (
    ConnectError,
    CtypesBackend,
    PsycopgBackend,
    load_ctypes_libpq,
)

TYPE_CHECKING = False  # not `from typing import ...`: typing costs ~3 ms of start-up
if TYPE_CHECKING:
    from typing import Self

# libpq ExecStatusType
EMPTY_QUERY, COMMAND_OK, TUPLES_OK, COPY_OUT, COPY_IN = 0, 1, 2, 3, 4
BAD_RESPONSE, NONFATAL_ERROR, FATAL_ERROR, COPY_BOTH = 5, 6, 7, 8
# PGTransactionStatusType
TRANS_IDLE, TRANS_ACTIVE, TRANS_INTRANS, TRANS_INERROR, TRANS_UNKNOWN = 0, 1, 2, 3, 4

# error field codes (PG_DIAG_*)
_FIELDS = {
    "severity": ord("V"),  # non-localized severity
    "sqlstate": ord("C"),
    "message": ord("M"),
    "detail": ord("D"),
    "hint": ord("H"),
    "position": ord("P"),
    "internal_position": ord("p"),
    "internal_query": ord("q"),
    "context": ord("W"),
    "schema": ord("s"),
    "table": ord("t"),
    "column": ord("c"),
    "constraint": ord("n"),
}


class PgError(Exception):
    """An error result from the server (or from libpq while running a query)."""

    def __init__(self, fields: dict[str, str | None], results: list | None = None) -> None:
        self.fields = fields
        self.sqlstate = fields.get("sqlstate")
        self.message = fields.get("message") or "unknown error"
        self.detail = fields.get("detail")
        self.hint = fields.get("hint")
        self.context = fields.get("context")
        pos = fields.get("position")
        self.position = int(pos) if pos and pos.isdigit() else None
        #: results of the statements that completed before the error, in order
        self.results = results or []
        super().__init__(self.message)


class Result:
    __slots__ = ("command", "rows", "status")

    def __init__(self, status: int, command: str, rows: list[tuple]) -> None:
        self.status = status
        self.command = command
        self.rows = rows

    def __repr__(self) -> str:  # pragma: no cover - debugging aid
        return f"Result({self.command!r}, {len(self.rows)} rows)"


_backend: CtypesBackend | PsycopgBackend | None = None


def backend():
    """The libpq backend in use (loaded on first call)."""
    global _backend
    if _backend is None:
        choice = os.environ.get("CONVEYOR_PQ", "auto")
        if choice in ("auto", "ctypes"):
            lib = load_ctypes_libpq()
            if lib is not None:
                _backend = CtypesBackend(lib)
            elif choice == "ctypes":
                raise ConnectError("CONVEYOR_PQ=ctypes but no libpq could be loaded "
                                   "(set CONVEYOR_LIBPQ to its path)")
        if _backend is None:
            try:
                _backend = PsycopgBackend()
            except ImportError as exc:
                raise ConnectError(
                    "Neither libpq (libpq.so.5) nor psycopg is available to talk to PostgreSQL; "
                    "install psycopg[binary] or the libpq5 package"
                ) from exc
    return _backend


# --------------------------------------------------------------------------- connection


class Connection:
    """One libpq connection. ``execute(sql)`` sends ``sql`` as a single simple-protocol query."""

    def __init__(self, conninfo: str) -> None:
        self._b = backend()
        self._h = self._b.connect(conninfo.encode("utf-8"))
        self.notices: list[str] = []
        self._notice_ref = self._b.set_notice_sink(self._h, self.notices)

    @property
    def backend_name(self) -> str:
        return self._b.name

    @property
    def backend_pid(self) -> int:
        return self._b.backend_pid(self._h)

    @property
    def server_version(self) -> int:
        return self._b.server_version(self._h)

    @property
    def transaction_status(self) -> int:
        return self._b.transaction_status(self._h)

    @property
    def closed(self) -> bool:
        return self._h is None

    def close(self) -> None:
        if self._h is not None:
            self._b.finish(self._h)
            self._h = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _wait(self) -> None:
        """Until ``get_result`` would not block (``select()``: Ctrl-C interrupts the wait)."""
        b, h = self._b, self._h
        while b.is_busy(h):  # parses what was already received
            select.select([b.socket(h)], [], [])
            if not b.consume_input(h):
                raise ConnectError(b.error_message(h) or "connection lost")

    def execute(self, sql: str, only_rows_starting: str | None = None) -> list[Result]:
        """Run ``sql`` (possibly many statements) as one simple query; return every result.

        Raises ``PgError`` for the first error (PostgreSQL stops the query string there);
        ``PgError.results`` holds the results of the statements that completed before it.
        With ``only_rows_starting``, the rows of a result are fetched only when it is a single
        row whose first value starts with that text (the engine's markers): the other results
        are still counted, with no rows (fetching every value of every user SELECT would cost
        more than running it).
        """
        b, h = self._b, self._h
        if h is None:
            raise ConnectError("connection is closed")
        if not b.send_query(h, sql.encode("utf-8")):
            raise ConnectError(b.error_message(h) or "could not send the query")
        results: list[Result] = []
        error: PgError | None = None
        prefix = None if only_rows_starting is None else only_rows_starting.encode("utf-8")
        # the per-result calls, bound once (this loop runs once per statement of the query)
        is_busy, get_result, result_status, clear = (b.is_busy, b.get_result, b.result_status,
                                                     b.clear)
        append = results.append
        try:
            while True:
                if is_busy(h):
                    self._wait()
                r = get_result(h)
                if r is None:
                    break
                try:
                    st = result_status(r)
                    if st == COMMAND_OK:
                        append(Result(st, "", []))
                    elif st == TUPLES_OK:
                        if prefix is None or b.is_marker(r, prefix):
                            append(Result(st, "", b.rows(r)))
                        else:
                            append(Result(st, "", []))
                    elif st in (FATAL_ERROR, BAD_RESPONSE):
                        if error is None:
                            fields = {k: b.error_field(r, c) for k, c in _FIELDS.items()}
                            if not fields.get("message"):
                                fields["message"] = b.result_error_message(r) or b.error_message(h)
                            error = PgError(fields, results)
                    elif st == COPY_IN:
                        b.put_copy_end(h, b"COPY FROM STDIN is not supported in migrations")
                    elif st == COPY_OUT:
                        b.drain_copy_out(h)
                    else:
                        append(Result(st, "", []))
                finally:
                    clear(r)
        except KeyboardInterrupt:
            b.cancel(h)
            try:
                while True:  # drain what the cancelled query still sends
                    self._wait()
                    r = get_result(h)
                    if r is None:
                        break
                    clear(r)
            except (ConnectError, KeyboardInterrupt):
                pass
            raise
        if error is not None:
            raise error
        return results

    def query(self, sql: str) -> list[tuple]:
        """Rows of the last result that returned rows."""
        rows: list[tuple] = []
        for r in self.execute(sql):
            if r.status == TUPLES_OK:
                rows = r.rows
        return rows


def connect(conninfo: str) -> Connection:
    return Connection(conninfo)


def quote_literal(value: str) -> str:
    """A SQL string literal that is correct whatever standard_conforming_strings is."""
    if "\x00" in value:
        raise ValueError("NUL character in a SQL literal")
    if "\\" in value:
        return "E'" + value.replace("\\", "\\\\").replace("'", "''") + "'"
    return "'" + value.replace("'", "''") + "'"


def quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'
