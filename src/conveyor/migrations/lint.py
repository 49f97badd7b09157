"""Migration lint: flag destructive and locking/rewriting statements before they reach prod.

``conveyor migrate lint`` runs this module's :func:`main`; the prod stage calls
:func:`lint_migrations` on the pending set and gates on :meth:`LintReport.exit_code`.

How it works
------------
* **squawk** (PyPI ``squawk-cli``, a Rust binary installed next to the Python interpreter) lints
  each ``up.sql`` (fed on stdin, ``--reporter json``). For migrations that run in a transaction
  a second run with ``--assume-in-transaction`` contributes the transaction rules
  (``CREATE INDEX CONCURRENTLY`` or ``BEGIN``/``COMMIT`` inside one); the first run is without
  it, because in that mode squawk exempts tables created earlier in the same file on its own,
  and conveyor makes that decision itself, across files (see below). squawk's style rules
  (``prefer-robust-stmts``, ``prefer-bigint-over-int``, ``require-lock-timeout``, ...) are
  dropped; its safety rules are kept and classified: data loss
  (``ban-drop-table``, ``ban-drop-column``, ``ban-drop-schema``, ``ban-drop-database``,
  ``ban-truncate-cascade``) is ``destructive``; everything else is a ``warning``.
  A project's ``.squawk.toml`` (found by squawk from the migration directory upwards) and
  ``-- squawk-ignore`` comments are honoured.
* **conveyor's own checks** cover what squawk 2.x misses: ``TRUNCATE`` (squawk only flags
  ``TRUNCATE ... CASCADE``), ``DELETE`` without ``WHERE``, ``UPDATE`` without ``WHERE``,
  ``DROP OWNED``, ``DROP TYPE/DOMAIN/EXTENSION ... CASCADE`` (escalated to destructive: it drops
  the columns using them), statements that cannot run in a transaction block (``CREATE INDEX
  CONCURRENTLY``, which squawk 2.70 reports only when the file holds more than one statement,
  ``DROP INDEX CONCURRENTLY``, ``REINDEX ... CONCURRENTLY``, ``DETACH PARTITION ...
  CONCURRENTLY``, ``VACUUM``, ``CREATE DATABASE``, ...) in a transactional migration (rule
  ``concurrently-in-transaction`` / ``not-in-transaction-block``), such a statement *with
  other statements* in a non-transactional migration (Diesel sends the whole file as one query,
  which PostgreSQL runs as one implicit transaction, so it fails there too), and table rewrites
  squawk does not know (``VACUUM FULL``, ``CLUSTER``, ``ALTER TABLE ... SET TABLESPACE/LOGGED/
  UNLOGGED``, ``REFRESH MATERIALIZED VIEW`` without ``CONCURRENTLY``, ``LOCK TABLE``).
  They run on a small SQL tokenizer that understands quotes, ``E''`` strings, quoted
  identifiers, dollar quoting, nested block comments and ``BEGIN ATOMIC`` bodies, so the text of
  function bodies and strings never produces findings.
* **New tables are fine.** A table created earlier in the set being linted (an earlier
  statement of the same file or an earlier migration of the set; the CLI treats the VERSIONs
  it is given as one set, and every migration as a set of its own when it lints the whole
  directory, whose old tables hold data by now) is empty and unused: locking,
  rewriting and destructive findings on it are dropped (``CREATE INDEX`` without
  ``CONCURRENTLY`` on a table created in the same migration is the usual case). Renames and
  drops are followed; ``existing_tables`` (names known to exist in the target database) keeps a
  ``CREATE TABLE IF NOT EXISTS`` of one of them from counting as new. Findings that fail at run
  time (severity ``error``) are never dropped.

Severities: ``error`` (the migration will fail when applied, e.g. ``CONCURRENTLY`` inside a
transaction), ``destructive`` (loses data), ``warning`` (locks, rewrites, breaks clients).
Exit codes: 0 clean (or only warnings without ``--strict``), 1 warnings with ``--strict``,
2 any destructive or error finding, 3 lint could not run (bad arguments, unreadable migrations,
squawk missing or failing).

Only the standard library is imported at module import time (the migrate CLI loads this lazily).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Protocol, Sequence

from conveyor.migrations.errors import MigrationError

__all__ = [
    "Finding",
    "LintError",
    "LintReport",
    "find_squawk",
    "lint_migrations",
    "main",
    "split_statements",
]

#: JSON document format version (bump on incompatible changes)
JSON_FORMAT = 1

SEVERITIES = ("error", "destructive", "warning")
EXIT_CLEAN = 0
EXIT_WARNINGS = 1
EXIT_DESTRUCTIVE = 2
EXIT_LINT_FAILED = 3

SQUAWK_DOCS = "https://squawkhq.com/docs/"
SQUAWK_TIMEOUT = 60.0


class LintError(MigrationError):
    """The lint could not run (squawk missing or failing, bad arguments)."""

    exit_code = EXIT_LINT_FAILED


class MigrationLike(Protocol):  # what discovery.Migration provides
    version: str
    name: str
    up_sql: str
    run_in_transaction: bool

    @property
    def up_path(self) -> Path: ...


# --------------------------------------------------------------------------- squawk rules

#: squawk rules about style or robustness, not about safety: dropped
SQUAWK_IGNORED = frozenset({
    "prefer-robust-stmts",
    "prefer-big-int",
    "prefer-bigint-over-int",
    "prefer-bigint-over-smallint",
    "prefer-identity",
    "prefer-text-field",
    "prefer-timestamptz",
    "ban-char-field",
    "require-lock-timeout",
    "require-statement-timeout",
    "require-timeout-settings",
    "require-table-schema",
    "prefer-repack",
    "require-enum-value-ordering",
})

#: squawk rules whose statement loses data
SQUAWK_DESTRUCTIVE = frozenset({
    "ban-drop-table",
    "ban-drop-column",
    "ban-drop-schema",
    "ban-drop-database",
    "ban-truncate-cascade",
})

#: squawk rules whose statement fails when the migration is applied
SQUAWK_ERROR = frozenset({"ban-concurrent-index-creation-in-transaction"})

#: rules taken from squawk's ``--assume-in-transaction`` run for transactional migrations
SQUAWK_TX_RULES = frozenset({
    "ban-concurrent-index-creation-in-transaction",
    "transaction-nesting",
})

#: dropped when SQL with CASCADE makes it destructive (re-reported by conveyor's own check)
_CASCADE_ESCALATED = {
    "ban-drop-type": "type",
    "ban-drop-domain": "domain",
    "ban-drop-extension": "extension",
}

#: squawk's ``constraint-missing-not-valid`` also fires on the clause that one of these flags
#: more precisely (and wrongly on UNIQUE/PRIMARY KEY, which have no NOT VALID): keep the latter
_MORE_SPECIFIC_CONSTRAINT_RULES = frozenset({
    "adding-foreign-key-constraint",
    "disallowed-unique-constraint",
    "adding-serial-primary-key-field",
})

#: how to do it safely, for the squawk rules that matter most (squawk's own help otherwise)
SQUAWK_HINTS = {
    "ban-drop-table": "Stop using the table in the application and deploy that first; drop it "
    "in a later release, after a backup (or rename it aside and drop it once nothing breaks).",
    "ban-drop-column": "Deploy application code that no longer reads or writes the column first "
    "(e.g. Diesel: remove it from the schema and structs), then drop it in a later migration.",
    "ban-drop-schema": "Make sure nothing uses the schema, take a backup, then drop it in its own "
    "reviewed migration.",
    "ban-drop-database": "Databases are not dropped by migrations; do it by hand after a backup.",
    "ban-truncate-cascade": "Delete the rows you mean explicitly (and in batches), without "
    "CASCADE, so that no other table is emptied by accident.",
    "adding-required-field": "Add the column as nullable (or with a constant DEFAULT, which needs "
    "no rewrite on PostgreSQL 11+), backfill in batches, then add a CHECK (col IS NOT NULL) NOT "
    "VALID, VALIDATE it, and SET NOT NULL.",
    "require-concurrent-index-creation": "Use CREATE INDEX CONCURRENTLY in its own migration with "
    "`run_in_transaction = false` in metadata.toml (it must be the only statement in up.sql).",
    "require-concurrent-index-deletion": "Use DROP INDEX CONCURRENTLY in its own migration with "
    "`run_in_transaction = false` in metadata.toml (it must be the only statement in up.sql).",
    "changing-column-type": "Add a new column of the new type, backfill it in batches, switch the "
    "application over, then drop the old column in a later release.",
    "constraint-missing-not-valid": "Add the constraint with NOT VALID (instant), then run "
    "ALTER TABLE ... VALIDATE CONSTRAINT in a later migration (it takes a weaker lock).",
    "adding-foreign-key-constraint": "Add the foreign key with NOT VALID (instant), then run "
    "ALTER TABLE ... VALIDATE CONSTRAINT in a later migration.",
    "renaming-table": "Create the new name (e.g. a view with the old name, or a new table plus "
    "dual writes), move the application over, and drop the old name in a later release.",
    "renaming-column": "Add the new column, write to both and backfill, move the application "
    "over, then drop the old column in a later release.",
    "adding-not-nullable-field": "Add CHECK (col IS NOT NULL) NOT VALID, VALIDATE CONSTRAINT in "
    "a later migration, then SET NOT NULL (PostgreSQL 12+ uses the check and skips the scan).",
    "disallowed-unique-constraint": "CREATE UNIQUE INDEX CONCURRENTLY (own non-transactional "
    "migration), then ALTER TABLE ... ADD CONSTRAINT ... UNIQUE USING INDEX.",
    "adding-serial-primary-key-field": "CREATE UNIQUE INDEX CONCURRENTLY (own non-transactional "
    "migration), then ALTER TABLE ... ADD CONSTRAINT ... PRIMARY KEY USING INDEX.",
    "ban-concurrent-index-creation-in-transaction": "Put the statement alone in its own migration "
    "and add metadata.toml with `run_in_transaction = false`.",
    "transaction-nesting": "Diesel/conveyor already wrap the migration in a transaction: remove "
    "BEGIN/COMMIT, or set `run_in_transaction = false` if you manage transactions yourself.",
    "renaming-object": "Add the new name alongside the old one, move the application over, "
    "then remove the old name in a later release.",
    "adding-field-with-default": "Add the column without the volatile default or generated "
    "expression, backfill it in batches, and keep it current from the application or a trigger.",
    "require-concurrent-reindex": "Use REINDEX ... CONCURRENTLY in its own migration with "
    "`run_in_transaction = false` in metadata.toml (it must be the only statement in up.sql).",
    "ban-drop-constraint": "Make sure the application no longer relies on the constraint; drop "
    "it in its own reviewed migration.",
    "ban-drop-not-null": "Deploy application code that handles NULL in the column first; "
    "then drop NOT NULL in its own reviewed migration.",
    "ban-create-domain-with-constraint": "Put the rule in CHECK constraints on the columns "
    "(added NOT VALID, validated later) instead of a domain constraint.",
    "syntax-error": "squawk could not parse this statement, so it was not checked; make sure it "
    "is valid PostgreSQL (it may be valid syntax squawk does not know yet).",
}


# --------------------------------------------------------------------------- findings


@dataclass(frozen=True)
class Finding:
    """One problem in one migration."""

    version: str
    migration: str  #: the migration's directory name
    file: str
    line: int  #: 1-based
    column: int | None  #: 1-based, in characters
    rule: str
    severity: str  #: "error" | "destructive" | "warning"
    message: str
    hint: str
    source: str  #: "squawk" | "conveyor"
    statement: str  #: the statement, on one line, shortened

    def to_dict(self) -> dict:
        return {
            "version": self.version,
            "migration": self.migration,
            "file": self.file,
            "line": self.line,
            "column": self.column,
            "rule": self.rule,
            "severity": self.severity,
            "message": self.message,
            "hint": self.hint,
            "source": self.source,
            "statement": self.statement,
            "docs": SQUAWK_DOCS + self.rule if self.source == "squawk" else None,
        }

    def location(self, relative_to: Path | None = None) -> str:
        file = self.file
        if relative_to is not None:
            try:
                file = os.path.relpath(file, relative_to)
                if file.startswith(".." + os.sep):
                    file = self.file
            except ValueError:
                pass
        loc = f"{file}:{self.line}"
        if self.column is not None:
            loc += f":{self.column}"
        return loc

    def render(self, relative_to: Path | None = None) -> str:
        return (f"{self.location(relative_to)}: {self.severity} [{self.rule}] {self.message} "
                f"(migration {self.migration})\n    hint: {self.hint}")


_SEVERITY_ORDER = {s: i for i, s in enumerate(SEVERITIES)}


@dataclass
class LintReport:
    findings: list[Finding] = field(default_factory=list)
    #: (version, directory name) of every migration linted, in order
    migrations: list[tuple[str, str]] = field(default_factory=list)
    squawk_version: str | None = None

    def count(self, severity: str) -> int:
        return sum(1 for f in self.findings if f.severity == severity)

    @property
    def has_destructive(self) -> bool:
        return any(f.severity == "destructive" for f in self.findings)

    @property
    def has_errors(self) -> bool:
        return any(f.severity == "error" for f in self.findings)

    @property
    def has_warnings(self) -> bool:
        return any(f.severity == "warning" for f in self.findings)

    def exit_code(self, strict: bool = False) -> int:
        if self.has_destructive or self.has_errors:
            return EXIT_DESTRUCTIVE
        if strict and self.has_warnings:
            return EXIT_WARNINGS
        return EXIT_CLEAN

    def summary(self, strict: bool = False) -> dict:
        return {
            "migrations": len(self.migrations),
            "findings": len(self.findings),
            "error": self.count("error"),
            "destructive": self.count("destructive"),
            "warning": self.count("warning"),
            "strict": strict,
            "exit_code": self.exit_code(strict),
            "squawk_version": self.squawk_version,
        }

    def to_dict(self, strict: bool = False) -> dict:
        return {
            "format": JSON_FORMAT,
            "findings": [f.to_dict() for f in self.findings],
            "summary": self.summary(strict),
        }

    def to_json(self, strict: bool = False, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(strict), indent=indent, ensure_ascii=False)

    def render_text(self, strict: bool = False, relative_to: Path | None = None) -> str:
        lines = [f.render(relative_to) for f in self.findings]
        n = len(self.migrations)
        what = f"{n} migration{'s' if n != 1 else ''}"
        if not self.findings:
            lines.append(f"lint: no findings in {what}.")
        else:
            parts = [f"{self.count(s)} {s}" + ("s" if s == "warning" and self.count(s) != 1 else "")
                     for s in SEVERITIES if self.count(s)]
            verdict = {
                EXIT_DESTRUCTIVE: "blocked (exit 2): destructive or failing statements need review",
                EXIT_WARNINGS: "failed (exit 1, --strict): warnings",
                EXIT_CLEAN: "passed with warnings",
            }[self.exit_code(strict)]
            n_found = len(self.findings)
            lines.append(f"lint: {n_found} finding{'s' if n_found != 1 else ''} in {what} "
                         f"({', '.join(parts)}); {verdict}.")
        return "\n".join(lines)


# --------------------------------------------------------------------------- SQL tokenizer

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
            first = current[0].up
            if first == "CREATE" and up == "BEGIN" and pos + 1 < len(tokens) \
                    and tokens[pos + 1].up == "ATOMIC":
                atomic_depth += 1
            elif atomic_depth and up == "CASE":
                atomic_depth += 1
            elif atomic_depth and up == "END":
                atomic_depth -= 1
        current.append(tok)
    flush(tokens[-1].end if tokens else len(sql))
    return statements


# --------------------------------------------------------------------------- names

def _ident(tok: Token) -> str | None:
    if tok.kind == "word":
        return tok.text.lower()
    if tok.kind == "qident" and tok.text.startswith('"'):
        return tok.text[1:-1].replace('""', '"')
    return None


def _normalize_name(name: str) -> str:
    """``public.t`` and ``t`` are the same table (default search_path)."""
    return name[len("public."):] if name.startswith("public.") else name


def _qualified_name(tokens: Sequence[Token], i: int) -> tuple[str | None, int]:
    """Parse ``ident[.ident[.ident]]`` at ``i``: (normalized name, index after it)."""
    if i >= len(tokens):
        return None, i
    first = _ident(tokens[i])
    if first is None:
        return None, i
    parts = [first]
    j = i + 1
    while j + 1 < len(tokens) and tokens[j].text == "." and tokens[j].kind == "op":
        nxt = _ident(tokens[j + 1])
        if nxt is None:
            break
        parts.append(nxt)
        j += 2
    return _normalize_name(".".join(parts[-2:])), j


def _skip_words(tokens: Sequence[Token], i: int, *words: str) -> int:
    """Skip any of ``words`` (each may be a space-separated sequence) at ``i``, repeatedly."""
    seqs = [w.split() for w in words]
    moved = True
    while moved:
        moved = False
        for seq in seqs:
            if [t.up for t in tokens[i:i + len(seq)]] == seq:
                i += len(seq)
                moved = True
    return i


def _name_list(tokens: Sequence[Token], i: int) -> tuple[list[str], int]:
    names: list[str] = []
    while True:
        i = _skip_words(tokens, i, "ONLY")
        name, j = _qualified_name(tokens, i)
        if name is None:
            break
        names.append(name)
        i = j
        if i < len(tokens) and tokens[i].text == "*":  # TRUNCATE t * (descendants)
            i += 1
        if i < len(tokens) and tokens[i].text == ",":
            i += 1
            continue
        break
    return names, i


# --------------------------------------------------------------------------- statement facts

@dataclass
class Facts:
    """What one statement does, as far as the lint needs to know."""

    verb: str = ""  #: e.g. "CREATE TABLE", "ALTER TABLE", "CREATE INDEX", "DROP TABLE", ...
    creates_table: str | None = None
    creates_if_not_exists: bool = False
    creates_index: str | None = None
    #: tables the statement changes; a finding on it is dropped when all of them are new
    targets: list[str] = field(default_factory=list)
    dropped_tables: list[str] = field(default_factory=list)
    renamed_to: str | None = None
    concurrently: bool = False
    cascade: bool = False


_CREATE_TABLE_PREFIXES = ("GLOBAL", "LOCAL", "TEMP", "TEMPORARY", "UNLOGGED")


def statement_facts(stmt: Statement, new_indexes: dict[str, str]) -> Facts:
    toks = stmt.tokens
    w = stmt.words()
    f = Facts()
    f.concurrently = "CONCURRENTLY" in w
    f.cascade = "CASCADE" in w
    if not w:
        return f
    if w[0] == "CREATE":
        i = _skip_words(toks, 1, "OR REPLACE", *_CREATE_TABLE_PREFIXES)
        if i < len(w) and w[i] == "TABLE":
            f.verb = "CREATE TABLE"
            j = _skip_words(toks, i + 1, "IF NOT EXISTS")
            f.creates_if_not_exists = j != i + 1
            f.creates_table, _ = _qualified_name(toks, j)
        elif w[i:i + 2] == ["MATERIALIZED", "VIEW"]:  # a new relation, like a table
            f.verb = "CREATE MATERIALIZED VIEW"
            j = _skip_words(toks, i + 2, "IF NOT EXISTS")
            f.creates_if_not_exists = j != i + 2
            f.creates_table, _ = _qualified_name(toks, j)
        elif i < len(w) and (w[i] == "INDEX" or w[i:i + 2] == ["UNIQUE", "INDEX"]):
            f.verb = "CREATE INDEX"
            j = i + (2 if w[i] == "UNIQUE" else 1)
            j = _skip_words(toks, j, "CONCURRENTLY", "IF NOT EXISTS")
            index_name = None
            if j < len(w) and w[j] != "ON":
                index_name, j = _qualified_name(toks, j)
            if j < len(w) and w[j] == "ON":
                table, _ = _qualified_name(toks, _skip_words(toks, j + 1, "ONLY"))
                if table:
                    f.targets = [table]
                    if index_name:
                        f.creates_index = index_name
        elif i < len(w):
            f.verb = "CREATE " + w[i]
    elif w[0] == "ALTER" and len(w) > 1 and w[1] == "TABLE":
        f.verb = "ALTER TABLE"
        j = _skip_words(toks, 2, "IF EXISTS", "ONLY")
        table, j = _qualified_name(toks, j)
        if table:
            f.targets = [table]
            if w[j:j + 2] == ["RENAME", "TO"]:
                f.renamed_to, _ = _qualified_name(toks, j + 2)
                if f.renamed_to and "." in table and "." not in f.renamed_to:
                    f.renamed_to = _normalize_name(table.rsplit(".", 1)[0] + "." + f.renamed_to)
    elif w[0] == "DROP" and len(w) > 1:
        if w[1] == "TABLE":
            f.verb = "DROP TABLE"
            names, _ = _name_list(toks, _skip_words(toks, 2, "IF EXISTS"))
            f.targets = f.dropped_tables = names
        elif w[1] == "INDEX":
            f.verb = "DROP INDEX"
            names, _ = _name_list(toks, _skip_words(toks, 2, "CONCURRENTLY", "IF EXISTS"))
            tables = [new_indexes.get(n) for n in names]
            if names and all(tables):
                f.targets = [t for t in tables if t]
        else:
            f.verb = "DROP " + w[1]
    elif w[:3] == ["REFRESH", "MATERIALIZED", "VIEW"]:
        f.verb = "REFRESH MATERIALIZED VIEW"
        name, _ = _qualified_name(toks, _skip_words(toks, 3, "CONCURRENTLY"))
        f.targets = [name] if name else []
    elif w[0] == "TRUNCATE":
        f.verb = "TRUNCATE"
        f.targets, _ = _name_list(toks, _skip_words(toks, 1, "TABLE"))
    elif w[0] == "DELETE" and len(w) > 1 and w[1] == "FROM":
        f.verb = "DELETE"
        f.targets, _ = _name_list(toks, 2)
        f.targets = f.targets[:1]
    elif w[0] == "UPDATE":
        f.verb = "UPDATE"
        f.targets, _ = _name_list(toks, 1)
        f.targets = f.targets[:1]
    else:
        f.verb = w[0]
    return f


# --------------------------------------------------------------------------- own checks

@dataclass
class _Own:
    rule: str
    severity: str
    token: Token
    message: str
    hint: str
    #: squawk rules that, on the same statement, already report this
    covered_by: frozenset[str] = frozenset()


def _paren_depths(tokens: Sequence[Token]) -> list[int]:
    depths, d = [], 0
    for t in tokens:
        if t.kind == "op" and t.text == ")":
            d = max(0, d - 1)
        depths.append(d)
        if t.kind == "op" and t.text == "(":
            d += 1
    return depths


def _dml_without_where(stmt: Statement) -> list[tuple[str, int]]:
    """(verb, token index) of every top-level or CTE ``DELETE FROM`` / ``UPDATE`` that has no
    ``WHERE`` of its own (subqueries' WHEREs do not count)."""
    toks = stmt.tokens
    w = stmt.words()
    depths = _paren_depths(toks)
    starts: list[int] = []
    for i, word in enumerate(w):
        if word not in ("DELETE", "UPDATE"):
            continue
        if i == 0:
            starts.append(i)
        elif w[0] == "WITH":
            prev = [t.up or t.text for t in toks[max(0, i - 3):i]]
            in_cte = prev[-1:] == ["("] and ("AS" in prev or "MATERIALIZED" in prev)
            main = depths[i] == 0 and not any(depths[k] == 0 and w[k] in (
                "SELECT", "INSERT", "DELETE", "UPDATE", "MERGE") for k in range(1, i))
            if in_cte or main:
                starts.append(i)
    found = []
    for i in starts:
        if w[i] == "DELETE" and (i + 1 >= len(w) or w[i + 1] != "FROM"):
            continue
        d = depths[i]
        has_where = False
        for k in range(i + 1, len(toks)):
            if depths[k] < d:
                break
            if depths[k] == d and w[k] == "WHERE":
                has_where = True
                break
        if not has_where:
            found.append((w[i], i))
    return found


#: statements PostgreSQL refuses inside a transaction block: (words at the start, label)
def _not_in_transaction(stmt: Statement) -> str | None:
    w = stmt.words()
    if not w:
        return None
    if w[0] == "CREATE" and "INDEX" in w[:3] and "CONCURRENTLY" in w[:5]:
        return "CREATE INDEX CONCURRENTLY"
    if w[:3] == ["DROP", "INDEX", "CONCURRENTLY"]:
        return "DROP INDEX CONCURRENTLY"
    if w[0] == "REINDEX" and "CONCURRENTLY" in w:
        return "REINDEX CONCURRENTLY"
    if w[:2] == ["ALTER", "TABLE"] and "DETACH" in w and "CONCURRENTLY" in w:
        return "DETACH PARTITION CONCURRENTLY"
    if w[0] == "VACUUM":
        return "VACUUM"
    if w[:2] in (["CREATE", "DATABASE"], ["DROP", "DATABASE"], ["CREATE", "TABLESPACE"],
                 ["DROP", "TABLESPACE"], ["ALTER", "SYSTEM"], ["CREATE", "SUBSCRIPTION"],
                 ["DROP", "SUBSCRIPTION"]):
        return " ".join(w[:2])
    if w[:2] == ["ALTER", "DATABASE"] and "TABLESPACE" in w:
        return "ALTER DATABASE ... SET TABLESPACE"
    return None


def _own_checks(stmt: Statement, facts: Facts, run_in_transaction: bool,
                multi_statement: bool) -> list[_Own]:
    toks = stmt.tokens
    w = stmt.words()
    out: list[_Own] = []
    if not w:
        return out
    first = toks[0]

    if w[0] == "TRUNCATE":
        tables = ", ".join(facts.targets) or "the table"
        out.append(_Own(
            "truncate", "destructive", first,
            f"TRUNCATE deletes every row of {tables}.",
            "If the data really has to go, take a backup first and say so in the migration; to "
            "remove some rows, DELETE them with a WHERE (in batches for large tables).",
            frozenset({"ban-truncate-cascade"})))

    for verb, i in _dml_without_where(stmt):
        table, _ = _name_list(toks, i + (2 if verb == "DELETE" else 1))
        name = table[0] if table else "the table"
        if verb == "DELETE":
            out.append(_Own(
                "delete-without-where", "destructive", toks[i],
                f"DELETE without WHERE deletes every row of {name}.",
                "Add a WHERE clause for the rows you mean; if every row really has to go, take a "
                "backup first and delete in batches outside the deploy."))
        else:
            out.append(_Own(
                "update-without-where", "warning", toks[i],
                f"UPDATE without WHERE rewrites every row of {name} and locks them all until "
                "the migration commits.",
                "Add a WHERE clause; for a backfill, update in batches (e.g. by primary key "
                "ranges) outside the schema migration."))

    if w[:2] == ["DROP", "OWNED"]:
        out.append(_Own(
            "drop-owned", "destructive", first,
            "DROP OWNED drops every object (tables included) owned by the role.",
            "Drop the objects you mean by name, or REASSIGN OWNED first."))

    if w[0] == "DROP" and len(w) > 1 and w[1] in ("TYPE", "DOMAIN", "EXTENSION") and facts.cascade:
        what = w[1].lower()
        out.append(_Own(
            f"drop-{what}-cascade", "destructive", first,
            f"DROP {w[1]} ... CASCADE also drops every column (and its data) that uses the "
            f"{what}.",
            f"Change or drop the columns that use the {what} first (in a reviewed migration), "
            "then drop it without CASCADE so PostgreSQL refuses if anything still depends on it."))

    label = _not_in_transaction(stmt)
    if label is not None:
        if run_in_transaction:
            out.append(_Own(
                "concurrently-in-transaction" if "CONCURRENTLY" in label
                else "not-in-transaction-block", "error", first,
                f"{label} cannot run inside a transaction block, and this migration runs in "
                "one: it will fail when applied.",
                "Move the statement alone into its own migration and add metadata.toml with "
                "`run_in_transaction = false`."))
        elif multi_statement:
            out.append(_Own(
                "non-transactional-not-alone", "error", first,
                f"{label} cannot run inside a transaction block; with `run_in_transaction = "
                "false` the whole up.sql is still sent as one query, which PostgreSQL runs as "
                "one implicit transaction when it holds several statements: it will fail when "
                "applied.",
                "Make it the only statement of its migration (move the other statements into "
                "another migration)."))

    if w[0] == "VACUUM" and "FULL" in w[:3]:
        out.append(_Own(
            "vacuum-full", "warning", first,
            "VACUUM FULL rewrites the table under an ACCESS EXCLUSIVE lock (no reads or writes).",
            "Use plain VACUUM, or pg_repack, outside the deploy."))
    if w[0] == "CLUSTER":
        out.append(_Own(
            "cluster", "warning", first,
            "CLUSTER rewrites the table under an ACCESS EXCLUSIVE lock (no reads or writes).",
            "Use pg_repack outside the deploy, or skip it."))
    if w[:2] == ["ALTER", "TABLE"]:
        for k in range(2, len(w) - 1):
            if w[k] == "SET" and w[k + 1] in ("TABLESPACE", "LOGGED", "UNLOGGED"):
                out.append(_Own(
                    "table-rewrite", "warning", toks[k],
                    f"ALTER TABLE ... SET {w[k + 1]} rewrites the table under an ACCESS "
                    "EXCLUSIVE lock (no reads or writes).",
                    "Do it in a maintenance window, or build a new table and switch over."))
                break
    if w[:3] == ["REFRESH", "MATERIALIZED", "VIEW"] and "CONCURRENTLY" not in w[:4]:
        out.append(_Own(
            "refresh-materialized-view", "warning", first,
            "REFRESH MATERIALIZED VIEW without CONCURRENTLY blocks reads of the view while it "
            "runs.",
            "Use REFRESH MATERIALIZED VIEW CONCURRENTLY (it needs a unique index on the "
            "view)."))
    if w[0] == "LOCK":
        out.append(_Own(
            "lock-table", "warning", first,
            "LOCK TABLE holds the lock until the migration commits (ACCESS EXCLUSIVE by default: "
            "no reads or writes).",
            "Take the weakest lock mode that works, set a lock_timeout, and keep the migration "
            "short."))
    return out


# --------------------------------------------------------------------------- squawk

def find_squawk(explicit: str | os.PathLike[str] | None = None) -> Path:
    """The squawk binary: ``explicit``, else ``$CONVEYOR_SQUAWK``, else next to the running
    Python (``.venv/bin/squawk`` from the ``squawk-cli`` dependency), else on ``PATH``."""
    if explicit is None:
        explicit = os.environ.get("CONVEYOR_SQUAWK") or None
    if explicit is not None:
        path = Path(explicit)
        if path.is_file() and os.access(path, os.X_OK):
            return path
        raise LintError(f"squawk was not found at {path} (given explicitly or by CONVEYOR_SQUAWK).",
                        "Point it at the squawk binary, or unset CONVEYOR_SQUAWK.")
    beside = Path(sys.executable).parent / "squawk"
    if beside.is_file() and os.access(beside, os.X_OK):
        return beside
    found = shutil.which("squawk")
    if found:
        return Path(found)
    raise LintError(
        f"squawk (the SQL linter conveyor's lint runs) was not found next to {sys.executable} "
        "nor on PATH.",
        "Install conveyor's dependencies (`uv sync` installs the squawk-cli package, which "
        "provides it), or `pip install squawk-cli`, or set CONVEYOR_SQUAWK to the binary.")


def squawk_version(squawk: Path) -> str | None:
    try:
        r = subprocess.run([str(squawk), "--version"], capture_output=True, text=True,
                           timeout=SQUAWK_TIMEOUT)
    except (OSError, subprocess.TimeoutExpired):
        return None
    out = r.stdout.strip()
    return out.split()[-1] if out else None


def _squawk_json(argv: list[str], stdin: bytes | None, cwd: Path | None, what: str) -> list[dict]:
    try:
        r = subprocess.run(argv, input=stdin, capture_output=True, timeout=SQUAWK_TIMEOUT,
                           stdin=None if stdin is not None else subprocess.DEVNULL,
                           cwd=cwd if cwd and cwd.is_dir() else None)
    except subprocess.TimeoutExpired as exc:
        raise LintError(f"squawk did not finish within {SQUAWK_TIMEOUT:g} s on {what}.",
                        "Run it by hand to see why: " + " ".join(argv[:6]) + " ...") from exc
    except OSError as exc:
        raise LintError(f"cannot run squawk ({argv[0]}): {exc}.",
                        "Reinstall the squawk-cli package.") from exc
    stdout = r.stdout.decode("utf-8", "replace").strip()
    try:
        data = json.loads(stdout) if stdout else []
    except json.JSONDecodeError:
        data = None
    # squawk exits 1 when it found violations; anything else (or no JSON) is a failure
    if r.returncode not in (0, 1) or not isinstance(data, list) \
            or (r.returncode == 1 and not data):
        err = (r.stderr.decode("utf-8", "replace").strip() or stdout)[-500:]
        raise LintError(f"squawk failed on {what} (exit {r.returncode}): {err}",
                        "Check the squawk installation and any .squawk.toml it reads.")
    return data


def _mode(in_transaction: bool) -> str:
    return "--assume-in-transaction" if in_transaction else "--no-assume-in-transaction"


def run_squawk(squawk: Path, sql: str, *, filepath: str, in_transaction: bool,
               cwd: Path | None = None) -> list[dict]:
    """squawk's JSON violations for ``sql`` (fed on stdin, so odd file names are no problem)."""
    argv = [str(squawk), "--reporter", "json", "--stdin-filepath", filepath, _mode(in_transaction)]
    return _squawk_json(argv, sql.encode("utf-8"), cwd, filepath)


def run_squawk_files(squawk: Path, paths: Sequence[str], *, in_transaction: bool,
                     cwd: Path | None = None) -> dict[str, list[dict]]:
    """squawk's JSON violations for several files in one process, by path as given. squawk
    takes paths as glob patterns: give it only paths without glob characters."""
    argv = [str(squawk), "--reporter", "json", _mode(in_transaction), "--", *paths]
    out: dict[str, list[dict]] = {p: [] for p in paths}
    for v in _squawk_json(argv, None, cwd, f"{len(paths)} files"):
        out.setdefault(str(v.get("file")), []).append(v)
    return out


_GLOB_CHARS = frozenset("*?[]{}!")
_BATCH = 300


def _squawk_all(binary: Path, migrations: Sequence[MigrationLike]) -> list[list[dict]]:
    """squawk's violations of each migration's up.sql. Without ``--assume-in-transaction``
    (in that mode squawk exempts tables created earlier in the file on its own; conveyor
    decides what is new, across files and knowing existing_tables), plus the transaction rules
    from a run with it for transactional migrations. Files that are on disk as given are linted
    in batches (one squawk process for many files); the others are fed on stdin."""
    plain: list[list[dict] | None] = [None] * len(migrations)
    tx: list[list[dict] | None] = [None] * len(migrations)
    on_disk: list[int] = []
    for i, m in enumerate(migrations):
        path = str(m.up_path)
        if _GLOB_CHARS.isdisjoint(path) and not path.startswith("-"):
            try:
                if Path(path).read_bytes().decode("utf-8") == m.up_sql:
                    on_disk.append(i)
            except (OSError, UnicodeDecodeError):
                pass
    for in_tx, results in ((False, plain), (True, tx)):
        todo = [i for i in on_disk if not in_tx or migrations[i].run_in_transaction]
        for start in range(0, len(todo), _BATCH):
            chunk = todo[start:start + _BATCH]
            paths = [os.path.abspath(migrations[i].up_path) for i in chunk]
            cwd = Path(os.path.commonpath([os.path.dirname(p) for p in paths]))
            try:
                found = run_squawk_files(binary, paths, in_transaction=in_tx, cwd=cwd)
            except LintError:
                continue  # e.g. a path squawk cannot take as a pattern: stdin below says why
            for i, p in zip(chunk, paths):
                results[i] = found.get(p, [])
    violations = []
    for i, m in enumerate(migrations):
        up_path = Path(m.up_path)
        got = plain[i]
        if got is None:
            got = run_squawk(binary, m.up_sql, filepath=str(up_path), in_transaction=False,
                             cwd=up_path.parent)
        if m.run_in_transaction:
            got = [v for v in got if v.get("rule_name") not in SQUAWK_TX_RULES]
            extra = tx[i]
            if extra is None:
                extra = run_squawk(binary, m.up_sql, filepath=str(up_path), in_transaction=True,
                                   cwd=up_path.parent)
            got += [v for v in extra if v.get("rule_name") in SQUAWK_TX_RULES]
        violations.append(got)
    return violations


class _LineIndex:
    """Offsets of line starts, to turn squawk's 0-based (line, UTF-8 byte column) into a
    character offset and a 1-based (line, character column)."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.starts = [0]
        for i, c in enumerate(text):
            if c == "\n":
                self.starts.append(i + 1)

    def offset(self, line0: int, byte_col: int) -> int:
        line0 = min(max(line0, 0), len(self.starts) - 1)
        start = self.starts[line0]
        end = self.starts[line0 + 1] if line0 + 1 < len(self.starts) else len(self.text)
        raw = self.text[start:end].encode("utf-8")[:max(byte_col, 0)]
        return start + len(raw.decode("utf-8", "ignore"))

    def line_col(self, offset: int) -> tuple[int, int]:
        import bisect

        line0 = bisect.bisect_right(self.starts, offset) - 1
        return line0 + 1, offset - self.starts[line0] + 1


def _statement_at(statements: Sequence[Statement], offset: int) -> Statement | None:
    best = None
    for s in statements:
        if s.start <= offset < max(s.end, s.start + 1):
            return s
        if s.start > offset:
            return s if best is None else best
        best = s
    return best


def _excerpt(text: str, limit: int = 160) -> str:
    one = " ".join(text.split())
    return one if len(one) <= limit else one[:limit - 3] + "..."


# --------------------------------------------------------------------------- the lint

def lint_migrations(
    migrations: Iterable[MigrationLike],
    *,
    existing_tables: Iterable[str] | None = None,
    one_set: bool = True,
    squawk: str | os.PathLike[str] | None = None,
) -> LintReport:
    """Lint the ``up.sql`` of ``migrations`` (in the order given, as they would be applied).

    ``one_set`` (the default, for the pending set of a deploy): a table created by an earlier
    migration of ``migrations`` is new (empty, unused) for the later ones. ``one_set=False``
    treats every migration on its own, as if the earlier ones had been applied long ago (right
    for linting a whole history, where the tables of old migrations hold data by now).
    ``existing_tables``: names (``table`` or ``schema.table``) known to exist in the target
    database; a ``CREATE TABLE IF NOT EXISTS`` of one of them does not make it a new table.
    Raises :class:`LintError` when squawk is missing or fails.
    """
    migrations = list(migrations)
    binary = find_squawk(squawk)
    report = LintReport(squawk_version=squawk_version(binary))
    existing = {_normalize_name(t) for t in existing_tables or ()}
    new_tables: set[str] = set()
    new_indexes: dict[str, str] = {}  # index name -> its (new) table

    all_violations = _squawk_all(binary, migrations)
    for m, violations in zip(migrations, all_violations):
        report.migrations.append((m.version, m.name))
        if not one_set:
            new_tables.clear()
            new_indexes.clear()
        sql = m.up_sql
        file = str(m.up_path)
        statements = split_statements(sql)
        lines = _LineIndex(sql)

        # squawk's findings, attached to our statements
        by_stmt: dict[int, list[tuple[dict, int]]] = {}
        loose: list[tuple[dict, int]] = []
        for v in violations:
            rule = str(v.get("rule_name") or "")
            if rule in SQUAWK_IGNORED:
                continue
            off = lines.offset(int(v.get("line") or 0), int(v.get("column") or 0))
            st = _statement_at(statements, off)
            (by_stmt.setdefault(st.index, []) if st else loose).append((v, off))

        multi = len(statements) > 1
        for st in statements:
            facts = statement_facts(st, new_indexes)
            # "new" is decided before this statement's own effects (CREATE TABLE t is new after)
            on_new_table = bool(facts.targets) and all(t in new_tables for t in facts.targets)
            squawk_here = by_stmt.get(st.index, [])
            squawk_rules = {str(v.get("rule_name")) for v, _ in squawk_here}
            cascade_kinds = set()
            own_rules = set()
            for own in _own_checks(st, facts, m.run_in_transaction, multi):
                if own.covered_by & squawk_rules:
                    continue
                own_rules.add(own.rule)
                if own.rule.startswith("drop-") and own.rule.endswith("-cascade"):
                    cascade_kinds.add(own.rule[len("drop-"):-len("-cascade")])
                if on_new_table and own.severity != "error":
                    continue
                line, col = lines.line_col(own.token.start)
                report.findings.append(Finding(
                    m.version, m.name, file, line, col, own.rule, own.severity, own.message,
                    own.hint, "conveyor", _excerpt(st.text(sql))))
            ends = {(v.get("line_end"), v.get("column_end")) for v, _ in squawk_here
                    if v.get("rule_name") in _MORE_SPECIFIC_CONSTRAINT_RULES}
            for v, off in squawk_here:
                rule = str(v.get("rule_name"))
                if rule in _CASCADE_ESCALATED and _CASCADE_ESCALATED[rule] in cascade_kinds:
                    continue  # reported as destructive by our own check
                if rule == "ban-concurrent-index-creation-in-transaction" and \
                        "concurrently-in-transaction" in own_rules:
                    continue  # ours is authoritative: squawk skips single-statement files
                if rule == "constraint-missing-not-valid" and \
                        (v.get("line_end"), v.get("column_end")) in ends:
                    continue
                severity = ("error" if rule in SQUAWK_ERROR else
                            "destructive" if rule in SQUAWK_DESTRUCTIVE else "warning")
                if on_new_table and severity != "error":
                    continue
                report.findings.append(_squawk_finding(m, file, lines, v, off, rule, severity,
                                                       _excerpt(st.text(sql))))
            # effects on the set of new tables, for the statements that follow
            if facts.creates_table:
                name = facts.creates_table
                if not (facts.creates_if_not_exists and name in existing):
                    new_tables.add(name)
            if facts.creates_index and on_new_table:
                new_indexes[facts.creates_index] = facts.targets[0]
            for t in facts.dropped_tables:
                new_tables.discard(t)
            if facts.renamed_to and on_new_table:
                new_tables.discard(facts.targets[0])
                new_tables.add(facts.renamed_to)
        for v, off in loose:
            rule = str(v.get("rule_name"))
            severity = ("error" if rule in SQUAWK_ERROR else
                        "destructive" if rule in SQUAWK_DESTRUCTIVE else "warning")
            report.findings.append(_squawk_finding(m, file, lines, v, off, rule, severity, ""))

    order = {(v, n): i for i, (v, n) in enumerate(report.migrations)}
    report.findings.sort(key=lambda f: (order.get((f.version, f.migration), 0), f.line,
                                        f.column or 0, _SEVERITY_ORDER[f.severity], f.rule))
    return report


def _squawk_finding(m: MigrationLike, file: str, lines: _LineIndex, v: dict, off: int,
                    rule: str, severity: str, statement: str) -> Finding:
    line, col = lines.line_col(off)
    message = str(v.get("message") or rule).strip()
    hint = SQUAWK_HINTS.get(rule) or str(v.get("help") or "").strip()
    if not hint and rule.startswith("ban-drop-"):
        what = rule[len("ban-drop-"):].replace("-", " ")
        hint = (f"Stop using the {what} in the application and deploy that first; drop it in a "
                "later release, in its own reviewed migration.")
    hint = hint or f"See {SQUAWK_DOCS}{rule} for the safe way."
    return Finding(m.version, m.name, file, line, col, rule, severity, message, hint, "squawk",
                   statement)


# --------------------------------------------------------------------------- CLI

class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # exit 3 (lint could not run), not argparse's 2 (destructive)
        self.print_usage(sys.stderr)
        raise LintError(f"conveyor migrate lint: {message}.", "See `conveyor migrate lint --help`.")


def _parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="conveyor migrate lint",
        description="Lint migrations' up.sql for destructive and locking/rewriting statements "
        "(squawk plus conveyor's own checks).",
        epilog="Exit codes: 0 clean (or only warnings without --strict), 1 warnings with "
        "--strict, 2 destructive or failing statements, 3 lint could not run.",
    )
    p.add_argument("versions", nargs="*", metavar="VERSION",
                   help="lint only these migrations (version, e.g. 20240131120000, or directory "
                   "name), as one set applied together: a table created by an earlier one is "
                   "new for the later ones; default: every migration in the directory")
    p.add_argument("--all", action="store_true",
                   help="lint every migration in the directory (the default without VERSIONs), "
                   "each on its own: tables created by earlier migrations count as existing")
    p.add_argument("--migration-dir", metavar="DIR",
                   help="the migrations directory (default: the config's, else ./migrations)")
    p.add_argument("-C", "--project-dir", metavar="DIR", default=None,
                   help="the project directory (where conveyor.toml is)")
    p.add_argument("--json", action="store_true", help="print a JSON document instead of text")
    p.add_argument("--strict", action="store_true", help="exit 1 on warnings")
    return p


def _migration_dir(args: argparse.Namespace) -> Path:
    project = Path(args.project_dir) if args.project_dir else Path(".")
    if args.migration_dir:
        d = Path(args.migration_dir)
        return d if d.is_absolute() or not args.project_dir else project / d
    if (project / "conveyor.toml").is_file():
        from conveyor.config import load_config  # lazy: pydantic is slow to import

        try:
            return Path(load_config(project).migrations_dir)
        except Exception as exc:  # ConfigError renders file, key and hint
            raise LintError(f"cannot read the configuration: {exc}",
                            "Fix conveyor.toml, or pass --migration-dir.") from exc
    return project / "migrations"


def _select(migrations: list, versions: list[str]) -> list:
    if not versions:
        return migrations
    wanted = []
    for v in versions:
        key = v.replace("-", "") if "_" not in v else v
        match = [m for m in migrations if m.version == key or m.name == v]
        if not match:
            raise LintError(f"no migration with version or name {v!r} in the directory.",
                            "Run `conveyor migrate status` to list them.")
        wanted.extend(m for m in match if m not in wanted)
    return [m for m in migrations if m in wanted]


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    as_json = "--json" in argv
    try:
        args = _parser().parse_args(argv)
        if args.all and args.versions:
            raise LintError("give either --all or VERSIONs, not both.")
        from conveyor.migrations.discovery import discover

        directory = _migration_dir(args)
        migrations = _select(discover(directory), args.versions)
        # VERSIONs name the set about to be applied together; a whole history is not one
        report = lint_migrations(migrations, one_set=bool(args.versions))
    except MigrationError as exc:
        code = EXIT_LINT_FAILED
        if as_json:
            print(json.dumps({"format": JSON_FORMAT, "error": type(exc).__name__,
                              "message": str(exc), "exit_code": code}, indent=2))
        else:
            print(f"conveyor migrate lint: error: {exc}", file=sys.stderr)
        return code
    if args.json:
        print(report.to_json(args.strict))
    else:
        print(report.render_text(args.strict, relative_to=Path.cwd()))
    return report.exit_code(args.strict)


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
