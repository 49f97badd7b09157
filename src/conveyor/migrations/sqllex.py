"""The SQL statement lexer shared by the lint and the engine.

It follows PostgreSQL's lexer closely enough to find tokens and statement boundaries in
migration files: single-quoted strings (with ``''``), ``E''`` strings (with backslash escapes),
``U&''`` strings and identifiers, double-quoted identifiers, dollar quoting
(``$tag$ ... $tag$``), ``--`` comments, nested ``/* */`` comments, and SQL-standard function
bodies (``CREATE ... BEGIN ATOMIC ... END``) whose inner semicolons do not end the statement.

* the lint reads :func:`split_statements`' tokens to decide what each statement does;
* the engine uses it only to *describe* a failure (which statement, which line and column:
  :func:`statement_at`, :func:`line_col`); the SQL sent to PostgreSQL is always the whole file,
  unchanged.

Standard library only; imported lazily by the engine (only when a migration fails).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Statement", "Token", "line_col", "split_statements", "statement_at", "tokenize"]


@dataclass(frozen=True)
class Token:
    kind: str  #: "word", "qident", "string", "number", "param", "op"
    text: str
    start: int
    end: int

    @property
    def up(self) -> str:
        """Upper-cased text for keyword comparison ('' unless a bare word)."""
        return self.text.upper() if self.kind == "word" else ""


@dataclass
class Statement:
    tokens: list[Token]
    start: int  #: offset of the first token
    end: int  #: offset just past the terminating ';' (or the last token)
    index: int  #: 0-based position in the file

    def words(self) -> list[str]:
        return [t.up for t in self.tokens]

    def text(self, sql: str) -> str:
        return sql[self.start:self.end]


def _is_ident_start(c: str) -> bool:
    return c.isalpha() or c == "_" or ord(c) > 127


def _is_ident_char(c: str) -> bool:
    return c.isalnum() or c in "_$" or ord(c) > 127


def tokenize(sql: str) -> list[Token]:
    """Tokens of ``sql`` without whitespace and comments. Never raises: an unterminated quote or
    comment runs to the end of the text (PostgreSQL would reject it; squawk reports that)."""
    tokens: list[Token] = []
    i, n = 0, len(sql)
    while i < n:
        c = sql[i]
        if c.isspace():
            i += 1
        elif c == "-" and sql.startswith("--", i):
            j = sql.find("\n", i)
            i = n if j < 0 else j + 1
        elif c == "/" and sql.startswith("/*", i):
            depth, j = 1, i + 2
            while j < n and depth:
                if sql.startswith("/*", j):
                    depth, j = depth + 1, j + 2
                elif sql.startswith("*/", j):
                    depth, j = depth - 1, j + 2
                else:
                    j += 1
            i = j
        elif c == "'":
            j = _end_of_quoted(sql, i + 1, "'", backslash=False)
            tokens.append(Token("string", sql[i:j], i, j))
            i = j
        elif c == '"':
            j = _end_of_quoted(sql, i + 1, '"', backslash=False)
            tokens.append(Token("qident", sql[i:j], i, j))
            i = j
        elif c == "$":
            j = i + 1
            if j < n and (sql[j] == "$" or _is_ident_start(sql[j])):
                k = j
                while k < n and sql[k] != "$" and _is_ident_char(sql[k]):
                    k += 1
                if k < n and sql[k] == "$":  # $tag$ or $$: a dollar-quoted string
                    tag = sql[i:k + 1]
                    close = sql.find(tag, k + 1)
                    end = n if close < 0 else close + len(tag)
                    tokens.append(Token("string", sql[i:end], i, end))
                    i = end
                    continue
            while j < n and sql[j].isdigit():
                j += 1
            tokens.append(Token("param", sql[i:j], i, j))
            i = j
        elif _is_ident_start(c):
            j = i + 1
            while j < n and _is_ident_char(sql[j]):
                j += 1
            if j < n and sql[j] == "'" and sql[i:j] in ("E", "e"):  # E'...' escape string
                k = _end_of_quoted(sql, j + 1, "'", backslash=True)
                tokens.append(Token("string", sql[i:k], i, k))
                i = k
                continue
            if j < n and sql[j] == "&" and sql[i:j] in ("U", "u") and j + 1 < n \
                    and sql[j + 1] in "'\"":  # U&'...' / U&"..."
                q = sql[j + 1]
                k = _end_of_quoted(sql, j + 2, q, backslash=False)
                tokens.append(Token("string" if q == "'" else "qident", sql[i:k], i, k))
                i = k
                continue
            tokens.append(Token("word", sql[i:j], i, j))
            i = j
        elif c.isdigit() or (c == "." and i + 1 < n and sql[i + 1].isdigit()):
            j = i + 1
            while j < n and (sql[j].isalnum() or sql[j] in "._"):
                j += 1
            tokens.append(Token("number", sql[i:j], i, j))
            i = j
        else:
            tokens.append(Token("op", c, i, i + 1))
            i += 1
    return tokens


def _end_of_quoted(sql: str, i: int, quote: str, *, backslash: bool) -> int:
    n = len(sql)
    while i < n:
        c = sql[i]
        if backslash and c == "\\":
            i += 2
        elif c == quote:
            if i + 1 < n and sql[i + 1] == quote:  # doubled quote
                i += 2
            else:
                return i + 1
        else:
            i += 1
    return n


def split_statements(sql: str) -> list[Statement]:
    """Split ``sql`` at top-level semicolons, like psql does (``BEGIN ATOMIC ... END`` bodies of
    SQL-standard functions are kept whole). Empty statements are skipped."""
    statements: list[Statement] = []
    current: list[Token] = []
    atomic_depth = 0

    def flush(end: int) -> None:
        if current:
            statements.append(Statement(list(current), current[0].start, end, len(statements)))
            current.clear()

    tokens = tokenize(sql)
    for pos, tok in enumerate(tokens):
        if tok.kind == "op" and tok.text == ";" and atomic_depth == 0:
            flush(tok.end)
            continue
        up = tok.up
        if up and current:
            opens_body = (current[0].up == "CREATE" and up == "BEGIN"
                          and pos + 1 < len(tokens) and tokens[pos + 1].up == "ATOMIC")
            if opens_body or (atomic_depth and up == "CASE"):
                atomic_depth += 1
            elif atomic_depth and up == "END":
                atomic_depth -= 1
        current.append(tok)
    flush(tokens[-1].end if tokens else len(sql))
    return statements


def statement_at(sql: str, offset: int) -> Statement | None:
    """The statement containing character ``offset`` (an offset in the whitespace or comments
    before a statement belongs to that statement; past the last statement, the last one)."""
    statements = split_statements(sql)
    for st in statements:
        if offset < st.end:
            return st
    return statements[-1] if statements else None


def line_col(text: str, offset: int) -> tuple[int, int]:
    """1-based (line, column) of character ``offset`` (0-based) in ``text``; columns count
    characters, like PostgreSQL's error positions. Offsets past the end map to the end."""
    offset = max(0, min(offset, len(text)))
    line = text.count("\n", 0, offset) + 1
    col = offset - (text.rfind("\n", 0, offset) + 1) + 1
    return line, col
