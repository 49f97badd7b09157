"""Migration lint: flag destructive and locking/rewriting statements before they reach prod.

``conveyor migrate lint`` runs :func:`conveyor.migrations.lint_cli.main`; the prod stage calls
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

import bisect
import os
from collections.abc import Iterable, Sequence

from conveyor.migrations.lint_checks import own_checks
from conveyor.migrations.lint_facts import normalize_name, statement_facts
from conveyor.migrations.lint_report import (
    EXIT_CLEAN,
    EXIT_DESTRUCTIVE,
    EXIT_LINT_FAILED,
    EXIT_WARNINGS,
    JSON_FORMAT,
    SEVERITIES,
    SEVERITY_ORDER,
    Finding,
    LintError,
    LintReport,
)
from conveyor.migrations.lint_rules import (
    CASCADE_ESCALATED,
    MORE_SPECIFIC_CONSTRAINT_RULES,
    SQUAWK_DOCS,
    SQUAWK_HINTS,
    SQUAWK_IGNORED,
    squawk_severity,
)
from conveyor.migrations.sqllex import Statement, split_statements
from conveyor.migrations.squawk import MigrationLike, find_squawk, squawk_all, squawk_version

__all__ = [
    "EXIT_CLEAN",
    "EXIT_DESTRUCTIVE",
    "EXIT_LINT_FAILED",
    "EXIT_WARNINGS",
    "JSON_FORMAT",
    "SEVERITIES",
    "Finding",
    "LintError",
    "LintReport",
    "find_squawk",
    "lint_migrations",
    "split_statements",
]


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
    existing = {normalize_name(t) for t in existing_tables or ()}
    new_tables: set[str] = set()
    new_indexes: dict[str, str] = {}  # index name -> its (new) table

    all_violations = squawk_all(binary, migrations)
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
            for own in own_checks(st, facts, m.run_in_transaction, multi):
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
                    if v.get("rule_name") in MORE_SPECIFIC_CONSTRAINT_RULES}
            for v, off in squawk_here:
                rule = str(v.get("rule_name"))
                if rule in CASCADE_ESCALATED and CASCADE_ESCALATED[rule] in cascade_kinds:
                    continue  # reported as destructive by our own check
                if rule == "ban-concurrent-index-creation-in-transaction" and \
                        "concurrently-in-transaction" in own_rules:
                    continue  # ours is authoritative: squawk skips single-statement files
                if rule == "constraint-missing-not-valid" and \
                        (v.get("line_end"), v.get("column_end")) in ends:
                    continue
                severity = squawk_severity(rule)
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
            severity = squawk_severity(rule)
            report.findings.append(_squawk_finding(m, file, lines, v, off, rule, severity, ""))

    order = {(v, n): i for i, (v, n) in enumerate(report.migrations)}
    report.findings.sort(key=lambda f: (order.get((f.version, f.migration), 0), f.line,
                                        f.column or 0, SEVERITY_ORDER[f.severity], f.rule))
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
