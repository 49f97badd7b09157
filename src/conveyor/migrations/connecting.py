"""Connecting to the database in a thread while the migrations are read (the two overlap:
connecting is mostly waiting for the server)."""

from __future__ import annotations

from conveyor.migrations import pq
from conveyor.migrations.errors import ConnectionFailed

TYPE_CHECKING = False  # not `from typing import ...`: typing costs ~3 ms of start-up
if TYPE_CHECKING:
    import _thread


class Connecting:
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
        self._done: _thread.LockType | None = _thread.allocate_lock()
        self._done.acquire()
        try:
            _thread.start_new_thread(self._run, ())
        except RuntimeError:  # no thread available: connect when asked, in the caller's thread
            self._done = None

    def _run(self) -> None:
        conn: pq.Connection | None = None
        error: BaseException | None = None
        try:
            conn = pq.connect(self._conninfo)
        except BaseException as exc:  # noqa: BLE001 - handed over to the thread that waits
            error = exc
        with self._mutex:
            if self._abandoned:
                if conn is not None:
                    conn.close()
            else:
                self._conn, self._error = conn, error
        assert self._done is not None  # the thread runs only when it could be started
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


def execute(conn: pq.Connection, sql: str) -> list[pq.Result]:
    """``conn.execute(sql)``; a lost connection becomes :class:`ConnectionFailed`."""
    try:
        return conn.execute(sql)
    except pq.ConnectError as exc:
        raise ConnectionFailed(f"Lost the connection to the database: {exc}.",
                               "Check the server; `conveyor migrate status` shows what was "
                               "applied.") from None
