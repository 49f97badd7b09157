"""Describing a failed migration: which file, line, column and statement, from PostgreSQL's
error position (relative to the whole query string) or, for an error without a position, by
counting the statement results after the last completed migration's end marker."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from conveyor.migrations.errors import MigrationFailed
from conveyor.migrations.queries import CONVEYOR_TABLE, DIESEL_TABLE
from conveyor.migrations.sqllex import line_col, split_statements, statement_at

if TYPE_CHECKING:
    from conveyor.migrations.batch import Segment
    from conveyor.migrations.wire import ServerError


def failing_segment(segments: Sequence[Segment], exc: ServerError, completed: int) -> int:
    """The index of the segment that failed: by the error position when there is one, else
    the first one without an end marker (``completed`` markers were seen)."""
    if exc.position is not None:
        p = exc.position - 1
        for k, seg in enumerate(segments):
            if p < seg.end:
                return k
        return len(segments) - 1
    return min(completed, len(segments) - 1)


def describe_failure(seg: Segment, k_fail: int, exc: ServerError,
                     markers: Sequence[tuple[int, int, float | None]],
                     single_transaction: bool) -> MigrationFailed:
    """The :class:`MigrationFailed` of segment ``seg`` (number ``k_fail`` of its message)."""

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
        statements = split_statements(sql)
        if 0 <= done < len(statements):
            in_file = statements[done].start
            statement = statements[done].text(sql)
        elif done >= len(statements):
            bookkeeping_failed = True
    if bookkeeping_failed:
        message = (f"the migration's SQL ran, but recording it in {DIESEL_TABLE} / "
                   f"{CONVEYOR_TABLE} failed: {exc.message}")
    if in_file is not None:
        line, col = line_col(sql, in_file)
        if statement is None:
            st = statement_at(sql, in_file)
            if st is not None:
                statement = st.text(sql)
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
