"""Pure helpers on SQL text: statement boundaries and line/column of an offset.

The splitter follows PostgreSQL's lexer closely enough to find statement boundaries in
migration files: single-quoted strings (with ``''``), ``E''`` strings (with backslash escapes),
double-quoted identifiers, dollar quoting (``$tag$ ... $tag$``), ``--`` comments, nested
``/* */`` comments, and SQL-standard function bodies (``BEGIN ATOMIC ... END``) whose inner
semicolons do not end the statement. It is used only to *describe* a failure (which statement,
which line); the SQL sent to PostgreSQL is always the whole file, unchanged.
"""

from __future__ import annotations

import re

_IDENT_START = re.compile(r"[A-Za-z_\u0080-\uffff]")
_WORD = re.compile(r"[A-Za-z_\u0080-\uffff][A-Za-z0-9_$\u0080-\uffff]*")
_DOLLAR_TAG = re.compile(r"\$([A-Za-z_\u0080-\uffff][A-Za-z0-9_\u0080-\uffff]*)?\$")


def line_col(text: str, offset: int) -> tuple[int, int]:
    """1-based (line, column) of character ``offset`` (0-based) in ``text``; columns count
    characters, like PostgreSQL's error positions. Offsets past the end map to the end."""
    offset = max(0, min(offset, len(text)))
    line = text.count("\n", 0, offset) + 1
    col = offset - (text.rfind("\n", 0, offset) + 1) + 1
    return line, col


def split_statements(sql: str) -> list[tuple[int, int]]:
    """(start, end) character offsets of each statement in ``sql``.

    ``start`` is the first character that is not whitespace or a comment; ``end`` is the offset
    just after the terminating ``;`` (or the end of the text). Empty statements are skipped.
    """
    spans: list[tuple[int, int]] = []
    n = len(sql)
    i = 0
    start: int | None = None
    atomic_depth = 0  # inside BEGIN ATOMIC ... END
    prev_word = ""
    while i < n:
        c = sql[i]
        if c in " \t\r\n\f\v":
            i += 1
            continue
        if c == "-" and sql.startswith("--", i):
            j = sql.find("\n", i)
            i = n if j < 0 else j + 1
            continue
        if c == "/" and sql.startswith("/*", i):
            depth, i = 1, i + 2
            while i < n and depth:
                if sql.startswith("/*", i):
                    depth, i = depth + 1, i + 2
                elif sql.startswith("*/", i):
                    depth, i = depth - 1, i + 2
                else:
                    i += 1
            continue
        if c == ";" and start is None:
            i += 1  # an empty statement: PostgreSQL's parser drops it too
            continue
        if start is None:
            start = i
        if c == ";":
            if atomic_depth == 0:
                spans.append((start, i + 1))
                start = None
                prev_word = ""
            i += 1
            continue
        if c == "'":
            escapes = i > 0 and sql[i - 1] in "eE" and (i < 2 or not _is_word_char(sql[i - 2]))
            i = _skip_quoted(sql, i, "'", backslash=escapes)
            prev_word = ""
            continue
        if c == '"':
            i = _skip_quoted(sql, i, '"', backslash=False)
            prev_word = ""
            continue
        if c == "$":
            m = _DOLLAR_TAG.match(sql, i)
            if m and not (i > 0 and _is_word_char(sql[i - 1])):
                tag = m.group(0)
                j = sql.find(tag, m.end())
                i = n if j < 0 else j + len(tag)
                prev_word = ""
                continue
            i += 1
            continue
        if _IDENT_START.match(c):
            m = _WORD.match(sql, i)
            word = m.group(0).upper()
            if word == "ATOMIC" and prev_word == "BEGIN":
                atomic_depth += 1
            elif atomic_depth and word == "CASE":
                atomic_depth += 1
            elif atomic_depth and word == "END":
                atomic_depth -= 1
            prev_word = word
            i = m.end()
            continue
        prev_word = ""
        i += 1
    if start is not None:
        spans.append((start, n))
    return spans


def _is_word_char(c: str) -> bool:
    return c.isalnum() or c in "_$"


def _skip_quoted(sql: str, i: int, q: str, backslash: bool) -> int:
    n = len(sql)
    i += 1
    while i < n:
        c = sql[i]
        if backslash and c == "\\":
            i += 2
            continue
        if c == q:
            if i + 1 < n and sql[i + 1] == q:
                i += 2
                continue
            return i + 1
        i += 1
    return n


def statement_at(sql: str, offset: int) -> tuple[int, int] | None:
    """The (start, end) span of the statement containing character ``offset`` (an offset in
    the whitespace or comments before a statement belongs to that statement; past the last
    statement, the last one)."""
    spans = split_statements(sql)
    for span in spans:
        if offset < span[1]:
            return span
    return spans[-1] if spans else None
