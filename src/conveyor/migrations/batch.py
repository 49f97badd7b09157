"""One operation's session and the simple queries ("messages") it sends.

Many consecutive transactional migrations (each still in its own transaction) travel in one
simple query: a :class:`Message` is made of :class:`Segment` s, one per migration body with its
bookkeeping, and keeps the character offsets needed to map PostgreSQL's error position back to
the failing file. Each segment ends with a marker row ``conveyor:<nonce>:<k>:end`` that says it
completed (:func:`markers`).
"""

from __future__ import annotations

import os

from conveyor.migrations import pq

TYPE_CHECKING = False  # not `from typing import ...`: typing costs ~3 ms of start-up
if TYPE_CHECKING:  # pathlib is imported lazily: it is not needed to run migrations
    from collections.abc import Iterator, Sequence
    from pathlib import Path

    from conveyor.migrations.discovery import Migration
    from conveyor.migrations.queries import AppliedLine

MAX_BATCH_MIGRATIONS = 250
MAX_BATCH_CHARS = 8_000_000


class Segment:
    """One migration body in a message, with the character offsets needed to attribute an
    error position, and ``lead``: how many statement results precede the body after the
    previous segment's end marker (BEGIN, the previous COMMIT, a leading UPDATE)."""

    __slots__ = ("body_end", "body_start", "direction", "end", "lead", "migration", "sql",
                 "start")

    def __init__(self, migration: Migration, direction: str, sql: str, start: int,
                 body_start: int, body_end: int, end: int, lead: int) -> None:
        self.migration, self.direction, self.sql = migration, direction, sql
        self.start, self.body_start, self.body_end, self.end = start, body_start, body_end, end
        self.lead = lead

    @property
    def path(self) -> Path:
        return self.migration.up_path if self.direction == "up" else self.migration.down_path


class Message:
    """One simple query made of segments."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.length = 0
        self.segments: list[Segment] = []
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
        self.segments.append(Segment(m, direction, sql, start, body_start, body_end,
                                     self.length, lead))

    def text(self) -> str:
        return "".join(self.parts)


class Session:
    """One operation on one connection (holding the advisory lock)."""

    def __init__(self, conn: pq.Connection, rows: list[AppliedLine], search_path: str,
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


def markers(results: Sequence[pq.Result], nonce: str) -> Iterator[tuple[int, int, float | None]]:
    """(result index, segment index, elapsed ms) for every end-marker row in ``results``."""
    prefix = f"conveyor:{nonce}:"
    for ri, r in enumerate(results):
        if r.status != pq.TUPLES_OK or len(r.rows) != 1:
            continue
        row = r.rows[0]
        if len(row) == 2 and isinstance(row[0], str) and row[0].startswith(prefix):
            k = int(row[0].split(":")[2])
            yield ri, k, (float(row[1]) if row[1] is not None else None)
