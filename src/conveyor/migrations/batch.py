"""One operation's session and the simple queries ("messages") it sends.

Many consecutive transactional migrations (each still in its own transaction) travel in one
simple query: a :class:`Message` is made of :class:`Segment` s, one per migration body with its
bookkeeping, and keeps the character offsets needed to map PostgreSQL's error position back to
the failing file. Each segment ends with a marker row ``conveyor:<nonce>:<k>:end`` that says it
completed, with the migration's own duration (:func:`markers`).
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import psycopg

    from conveyor.migrations.discovery import Migration
    from conveyor.migrations.queries import AppliedLine
    from conveyor.migrations.wire import Result

MAX_BATCH_MIGRATIONS = 250
MAX_BATCH_CHARS = 8_000_000


@dataclass
class Segment:
    """One migration body in a message, with the character offsets needed to attribute an
    error position, and ``lead``: how many statement results precede the body after the
    previous segment's end marker (BEGIN, the previous COMMIT, the leading statements)."""

    migration: Migration
    direction: str
    sql: str
    start: int
    body_start: int
    body_end: int
    end: int
    lead: int

    @property
    def path(self) -> Path:
        return self.migration.up_path if self.direction == "up" else self.migration.down_path


@dataclass
class Message:
    """One simple query made of segments."""

    parts: list[str] = field(default_factory=list)
    length: int = 0
    segments: list[Segment] = field(default_factory=list)
    #: results of statements before the first segment's BEGIN
    leading_results: int = 0

    def add(self, text: str, results: int = 0) -> None:
        """Append ``text``, which returns ``results`` results before the first segment."""
        self.parts.append(text)
        self.length += len(text)
        self.leading_results += results

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


@dataclass
class Session:
    """One operation on one connection (holding the advisory lock)."""

    conn: psycopg.Connection
    rows: list[AppliedLine]
    search_path: str
    #: both tables, schema-qualified
    diesel: str
    conveyor: str
    nonce: str = field(default_factory=lambda: os.urandom(6).hex())
    #: name prefix of the prepared bookkeeping statements (None: not prepared, or maybe
    #: deallocated by a migration), and how many sets were prepared
    prepared: str | None = None
    prepare_count: int = 0


def markers(results: Sequence[Result], nonce: str) -> Iterator[tuple[int, int, float | None]]:
    """(result index, segment index, the migration's duration in ms) for every end-marker row
    in ``results``."""
    prefix = f"conveyor:{nonce}:"
    for ri, row in enumerate(results):
        if row is not None and len(row) >= 2 and isinstance(row[0], str) \
                and row[0].startswith(prefix):
            k = int(row[0].split(":")[2])
            yield ri, k, (float(row[1]) if row[1] is not None else None)
