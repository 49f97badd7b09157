"""Expand or contract: can the version that serves now keep working on the schema a migration
leaves? Pure, on the lint's lexer (:mod:`conveyor.migrations.sqllex`).

* **expand**: the old code does not notice (CREATE TABLE / INDEX / VIEW / FUNCTION ..., ADD
  COLUMN nullable or with a DEFAULT, ADD CONSTRAINT [NOT VALID], VALIDATE CONSTRAINT, DROP NOT
  NULL, SET DEFAULT, DROP INDEX / CONSTRAINT, data changes such as a backfill);
* **contract**: the old code may break (DROP or RENAME a table or column, a type change, SET
  NOT NULL, ADD COLUMN NOT NULL without a DEFAULT, DROP DEFAULT, TRUNCATE, DROP VIEW / TYPE /
  FUNCTION ..., an ALTER TABLE action not recognised).

A zero-downtime deploy runs only expand migrations while the old version serves; each contract
finding says how to split it (expand now, contract in a later deploy), after pgroll's
expand/contract and strong_migrations' safe variants.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from conveyor.migrations.sqllex import Statement, Token, line_col, split_statements

EXPAND, CONTRACT = "expand", "contract"

HINTS = {
    "drop column": "deploy a version that no longer reads or writes the column first; drop it "
                   "in a later deploy",
    "rename column": "add the new column now (expand), have the app write both and backfill, "
                     "switch reads; drop the old column in a later deploy",
    "rename table": "create the new table (or a view under the new name) now, move the app to "
                    "it; drop or rename the old one in a later deploy",
    "type change": "add a column of the new type now, write both and backfill, switch the app; "
                   "drop the old column in a later deploy",
    "set not null": "add CHECK (col IS NOT NULL) NOT VALID and VALIDATE it now; SET NOT NULL in "
                    "a later deploy, once no serving version writes NULL",
    "add column not null": "add the column nullable or with a DEFAULT now; SET NOT NULL in a "
                           "later deploy, once the app always writes it",
    "drop default": "deploy a version that always writes the column first; drop the default in "
                    "a later deploy",
    "drop table": "deploy a version that no longer uses the table first; drop it in a later "
                  "deploy",
    "drop object": "deploy a version that no longer uses it first; drop it in a later deploy",
    "truncate": "the serving version would see its rows vanish: do it in a later deploy (or "
                "with --strategy recreate)",
    "alter": "split it: the additive part now, the part the serving version cannot live with in "
             "a later deploy",
}


@dataclass(frozen=True)
class Finding:
    """One statement of a migration the serving version may not live with."""

    migration: str
    line: int
    statement: str  # the statement's text, on one line, shortened
    what: str  # a key of HINTS
    hint: str

    def describe(self) -> str:
        return f"{self.migration}/up.sql:{self.line}: {self.statement} ({self.what})"

    def as_dict(self) -> dict[str, Any]:
        return {"migration": self.migration, "line": self.line, "statement": self.statement,
                "what": self.what, "hint": self.hint}


@dataclass(frozen=True)
class Classified:
    migration: str
    kind: str  # EXPAND or CONTRACT
    findings: tuple[Finding, ...] = ()


def _actions(tokens: Sequence[Token], start: int) -> list[list[str]]:
    """The comma-separated actions of an ALTER TABLE (top-level commas), as upper words."""
    actions: list[list[str]] = [[]]
    depth = 0
    for t in tokens[start:]:
        if t.kind == "op" and t.text == "(":
            depth += 1
        elif t.kind == "op" and t.text == ")":
            depth = max(0, depth - 1)
        elif t.kind == "op" and t.text == "," and depth == 0:
            actions.append([])
            continue
        if depth == 0:
            actions[-1].append(t.up or t.text)
    return [a for a in actions if a]


def _has(words: Sequence[str], *seq: str) -> bool:
    n = len(seq)
    return any(list(words[i:i + n]) == list(seq) for i in range(len(words) - n + 1))


def _alter_action(a: list[str]) -> str | None:
    """The contract kind of one ALTER TABLE action (None: expand)."""
    head = a[0]
    if head == "ADD":
        if "CONSTRAINT" in a[:2] or a[1:2] in (["CHECK"], ["FOREIGN"], ["UNIQUE"],
                                                ["PRIMARY"], ["EXCLUDE"]):
            return None
        if _has(a, "NOT", "NULL") and "DEFAULT" not in a and "GENERATED" not in a:
            return "add column not null"
        return None
    if head == "DROP":
        if a[1:2] == ["CONSTRAINT"]:
            return None
        return "drop column"
    if head == "RENAME":
        return "rename table" if a[1:2] == ["TO"] else "rename column"
    if head == "VALIDATE" or head in ("OWNER", "ENABLE", "DISABLE", "CLUSTER", "REPLICA"):
        return None
    if head == "SET" and a[1:2] == ["SCHEMA"]:
        return "rename table"
    if head == "SET" or head == "RESET":  # SET (storage params), SET LOGGED, ...
        return None
    if head == "ALTER":
        if _has(a, "TYPE"):
            return "type change"
        if _has(a, "SET", "NOT", "NULL"):
            return "set not null"
        if _has(a, "DROP", "DEFAULT"):
            return "drop default"
        if _has(a, "DROP", "NOT", "NULL") or _has(a, "SET", "DEFAULT") or _has(a, "SET") \
                or _has(a, "RESET"):
            return None
        return "alter"
    return "alter"


def statement_kind(stmt: Statement) -> str | None:
    """The contract kind of one statement (a key of HINTS), or None when it is expand."""
    w = stmt.words()
    if not w:
        return None
    if w[0] == "ALTER" and w[1:2] == ["TABLE"]:
        i = 2
        for skip in (["IF", "EXISTS"], ["ONLY"]):
            if w[i:i + len(skip)] == skip:
                i += len(skip)
        i += 1  # the table name
        while i < len(stmt.tokens) and stmt.tokens[i].kind == "op" and stmt.tokens[i].text == ".":
            i += 2
        for action in _actions(stmt.tokens, i):
            kind = _alter_action(action)
            if kind:
                return kind
        return None
    if w[0] == "ALTER" and w[1:2] == ["TYPE"] and ("RENAME" in w or _has(w, "DROP", "VALUE")):
        return "drop object"
    if w[0] == "ALTER" and "RENAME" in w and w[1:2] != ["INDEX"]:
        return "drop object"
    if w[0] == "DROP":
        if w[1:2] == ["TABLE"]:
            return "drop table"
        if w[1:2] == ["INDEX"]:
            return None
        return "drop object"
    if w[0] == "TRUNCATE":
        return "truncate"
    return None


def _one_line(text: str, limit: int = 120) -> str:
    s = " ".join(text.split())
    return s if len(s) <= limit else s[:limit - 1] + "…"


def classify_sql(migration: str, sql: str) -> Classified:
    findings = []
    for stmt in split_statements(sql):
        kind = statement_kind(stmt)
        if kind:
            line, _ = line_col(sql, stmt.start)
            findings.append(Finding(migration, line, _one_line(stmt.text(sql)), kind,
                                    HINTS[kind]))
    return Classified(migration, CONTRACT if findings else EXPAND, tuple(findings))


def classify(migrations: Iterable[Any]) -> list[Classified]:
    """Each migration (``.name``, ``.up_sql``) classified, in order."""
    return [classify_sql(m.name, m.up_sql) for m in migrations]


def refusal(classified: Sequence[Classified]) -> str | None:
    """The message refusing a zero-downtime deploy of contract migrations (None: all expand)."""
    contract = [f for c in classified for f in c.findings]
    if not contract:
        return None
    return ("contract migration(s) pending, which the serving version may not live with: "
            + "; ".join(f"{f.describe()}: {f.hint}" for f in contract))
