"""The engine's connection to PostgreSQL, on psycopg 3.

* :func:`connect`: an autocommit connection (the engine writes its own ``BEGIN``/``COMMIT``),
  with a default ``connect_timeout`` (:data:`CONNECT_TIMEOUT`), the server's notices collected,
  and clear errors for a URL that is not PostgreSQL's or a server that cannot be reached;
* :func:`simple`: one multi-statement query over the simple protocol, as Diesel's
  ``batch_execute`` sends a migration file. psycopg's ``execute`` runs such a query too, but on
  an error it keeps only the error: the engine needs the results of the statements that
  completed before it (which migrations of a batch committed, and which statement of the
  failing file failed when PostgreSQL gives no position), so this one function reads the
  results itself from ``conn.pgconn`` (psycopg's libpq wrapper). Everything else goes
  through ``conn.execute`` with parameters.
"""

from __future__ import annotations

import select
import time
from dataclasses import dataclass, field

import psycopg
from psycopg import pq, sql
from psycopg.conninfo import conninfo_to_dict
from psycopg.errors import Diagnostic

from conveyor.masking import mask_secrets
from conveyor.migrations.errors import ConnectionFailed, UsageError

#: seconds to wait for a server to answer when the URL does not say (``connect_timeout``)
CONNECT_TIMEOUT = 10

#: one statement's result in :func:`simple`: its row (the first one) when it was fetched, else
#: None (a command, or rows nobody asked for)
Result = tuple | None


class ConnectionLost(Exception):
    """The connection broke while a query ran."""


@dataclass
class ServerError(Exception):
    """An error reported by PostgreSQL, with the fields the engine reports."""

    message: str
    sqlstate: str | None = None
    detail: str | None = None
    hint: str | None = None
    context: str | None = None
    position: int | None = None
    #: results of the statements that completed before the error (:func:`simple` only)
    results: list[Result] = field(default_factory=list)

    def __post_init__(self) -> None:
        super().__init__(self.message)

    def __str__(self) -> str:
        return self.message

    @classmethod
    def from_diag(cls, diag: Diagnostic, results: list[Result] | None = None) -> ServerError:
        pos = diag.statement_position
        return cls(diag.message_primary or "unknown error", diag.sqlstate, diag.message_detail,
                   diag.message_hint, diag.context,
                   int(pos) if pos and pos.isdigit() else None, results or [])


def translate(exc: psycopg.Error) -> ServerError | ConnectionLost:
    """A psycopg error as the engine's: the server's (it has a SQLSTATE) or a lost connection."""
    if exc.sqlstate:
        return ServerError.from_diag(exc.diag)
    return ConnectionLost(" ".join(str(exc).split()) or "connection lost")


def check_url(conninfo: str) -> None:
    """Refuse what is not a PostgreSQL URL or conninfo string, before libpq's own message
    (``missing "=" after "mysql://..."``)."""
    scheme, sep, _ = conninfo.partition("://")
    if sep and scheme.lower() not in ("postgresql", "postgres"):
        raise UsageError(
            f"The database URL {mask_secrets(conninfo)} is not a PostgreSQL URL (scheme "
            f"{scheme!r}): conveyor's migrations run on PostgreSQL only.",
            "Use postgresql://USER:PASSWORD@HOST:PORT/DBNAME (or a libpq string such as "
            "'host=HOST dbname=DBNAME').")
    try:
        conninfo_to_dict(conninfo)
    except psycopg.Error as exc:
        raise UsageError(
            f"The database URL {mask_secrets(conninfo)} cannot be read: "
            f"{mask_secrets(' '.join(str(exc).split()))}.",
            "Use postgresql://USER:PASSWORD@HOST:PORT/DBNAME or a libpq key=value string.",
        ) from None


def connect(conninfo: str, notices: list[str]) -> psycopg.Connection:
    """An autocommit connection; the server's notices are appended to ``notices``."""
    check_url(conninfo)
    import os

    timeout: int | None = None  # libpq's: the URL's connect_timeout, else $PGCONNECT_TIMEOUT
    if "connect_timeout" not in conninfo_to_dict(conninfo) \
            and not os.environ.get("PGCONNECT_TIMEOUT"):
        timeout = CONNECT_TIMEOUT
    try:
        if timeout is None:
            conn = psycopg.connect(conninfo, autocommit=True, prepare_threshold=None)
        else:
            conn = psycopg.connect(conninfo, autocommit=True, prepare_threshold=None,
                                   connect_timeout=timeout)
    except psycopg.Error as exc:
        text = " ".join(str(exc).split()).removeprefix("connection failed: ")
        if "timeout expired" in text:  # psycopg's ConnectionTimeout (3.2+; 3.1: its message)
            text = (f"no answer within {timeout} s (connect_timeout)" if timeout
                    else "no answer within connect_timeout")
        target = conninfo if "://" in conninfo or "=" in conninfo else repr(conninfo)
        raise ConnectionFailed(
            f"Cannot connect to the database {mask_secrets(target)}: {mask_secrets(text)}.",
            "Check the database URL (--database-url, DATABASE_URL or the config), that the "
            "server is running and reachable, and the credentials.",
        ) from None

    def on_notice(diag: Diagnostic) -> None:
        notices.append(f"{diag.severity or 'NOTICE'}:  {diag.message_primary or ''}")

    conn.add_notice_handler(on_notice)
    return conn


def execute(conn: psycopg.Connection, sql: str, params: tuple | list | None = None) -> list:
    """``conn.execute(sql, params)``: the rows (empty for a command); errors translated."""
    try:
        cur = conn.execute(sql, params)
        return cur.fetchall() if cur.description is not None else []
    except psycopg.Error as exc:
        raise translate(exc) from None


def simple(conn: psycopg.Connection, sql: str, rows_starting: str | None = None,
           ) -> list[Result]:
    """Run ``sql`` (possibly many statements) as ONE simple-protocol query; return one entry per
    statement result. The first row of a result is fetched when ``rows_starting`` is None, or
    when the result is a single row whose first value starts with it (the engine's markers):
    decoding every row of every user SELECT would cost more than running it.

    Raises :class:`ServerError` for the first error (PostgreSQL stops the query there), with
    the results before it; :class:`ConnectionLost`. Ctrl-C cancels the query, waits for the
    server to stop it, and re-raises."""
    pgconn = conn.pgconn
    prefix = None if rows_starting is None else rows_starting.encode()
    results: list[Result] = []
    error: ServerError | None = None
    try:
        pgconn.send_query(sql.encode())
        while True:
            r = _next_result(pgconn)
            if r is None:
                break
            st = r.status
            if st == pq.ExecStatus.TUPLES_OK:
                first = r.get_value(0, 0) if r.ntuples == 1 and r.nfields else None
                if r.ntuples and (prefix is None or (first is not None
                                                     and first.startswith(prefix))):
                    results.append(tuple(None if (v := r.get_value(0, j)) is None
                                         else v.decode("utf-8", "replace")
                                         for j in range(r.nfields)))
                else:
                    results.append(None)
            elif st == pq.ExecStatus.FATAL_ERROR or st == pq.ExecStatus.BAD_RESPONSE:
                if error is None:
                    error = ServerError.from_diag(Diagnostic(r, "utf-8"), results)
            elif st == pq.ExecStatus.COPY_IN:
                pgconn.put_copy_end(b"COPY FROM STDIN is not supported in migrations")
            elif st == pq.ExecStatus.COPY_OUT:
                while pgconn.get_copy_data(0)[0] > 0:
                    pass
            else:
                results.append(None)
    except KeyboardInterrupt:
        _cancel(conn)
        raise
    except psycopg.OperationalError as exc:
        raise ConnectionLost(" ".join(str(exc).split()) or "connection lost") from None
    if error is not None:
        raise error
    return results


def _next_result(pgconn: pq.abc.PGconn) -> pq.abc.PGresult | None:
    """The next result, waiting on the socket with ``select()`` (Ctrl-C interrupts it)."""
    _wait(pgconn, None)
    return pgconn.get_result()


def _wait(pgconn: pq.abc.PGconn, deadline: float | None) -> bool:
    """Until the connection is not busy (True), or until `deadline` (monotonic) passes."""
    while pgconn.is_busy():
        left = None if deadline is None else deadline - time.monotonic()
        if left is not None and left <= 0:
            return False
        select.select([pgconn.socket], [], [], left)
        pgconn.consume_input()
    return True


#: PostgreSQL drops a cancel that reaches a backend not running a query (one that has not
#: begun the batch the engine just sent): the cancel is sent again this often, this many times
CANCEL_WAIT = 2.0
CANCEL_TRIES = 5


def _drain(pgconn: pq.abc.PGconn, wait: float | None) -> bool:
    """Read the running query's results until it ends (True), or for `wait` seconds."""
    deadline = None if wait is None else time.monotonic() + wait
    while _wait(pgconn, deadline):
        if pgconn.get_result() is None:
            return True
    return False


def _cancel(conn: psycopg.Connection) -> None:
    """Cancel the running query and read what it still sends (best effort): the cancel is sent
    again while the query goes on (the first may have been lost), then waited for."""
    try:
        for _ in range(CANCEL_TRIES):
            if hasattr(conn, "cancel_safe"):  # psycopg 3.2+
                conn.cancel_safe(timeout=5.0)
            else:  # pragma: no cover - psycopg 3.1
                conn.cancel()
            if _drain(conn.pgconn, CANCEL_WAIT):
                return
        _drain(conn.pgconn, None)  # e.g. a long rollback: it ends on its own
    except (psycopg.Error, KeyboardInterrupt, OSError):
        pass


def literal(conn: psycopg.Connection, value: object) -> str:
    """``value`` as a SQL literal for this connection (psycopg's quoting), for the statements
    that travel inside a multi-statement query (which takes no parameters). A string with no
    quote, backslash or NUL is quoted here, as psycopg would (``'...'`` whatever
    ``standard_conforming_strings`` says): three of them per migration in a batch."""
    if type(value) is str and "'" not in value and "\\" not in value and "\0" not in value:
        return f"'{value}'"
    return sql.Literal(value).as_string(conn)
