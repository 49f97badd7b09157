"""conveyor's own lint checks: what squawk misses (TRUNCATE, DELETE/UPDATE without WHERE,
DROP ... CASCADE, statements that cannot run in a transaction block, table rewrites)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from conveyor.migrations.lint_facts import Facts, name_list
from conveyor.migrations.sqllex import Statement, Token


@dataclass
class OwnFinding:
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


def own_checks(stmt: Statement, facts: Facts, run_in_transaction: bool,
                multi_statement: bool) -> list[OwnFinding]:
    toks = stmt.tokens
    w = stmt.words()
    out: list[OwnFinding] = []
    if not w:
        return out
    first = toks[0]

    if w[0] == "TRUNCATE":
        tables = ", ".join(facts.targets) or "the table"
        out.append(OwnFinding(
            "truncate", "destructive", first,
            f"TRUNCATE deletes every row of {tables}.",
            "If the data really has to go, take a backup first and say so in the migration; to "
            "remove some rows, DELETE them with a WHERE (in batches for large tables).",
            frozenset({"ban-truncate-cascade"})))

    for verb, i in _dml_without_where(stmt):
        table, _ = name_list(toks, i + (2 if verb == "DELETE" else 1))
        name = table[0] if table else "the table"
        if verb == "DELETE":
            out.append(OwnFinding(
                "delete-without-where", "destructive", toks[i],
                f"DELETE without WHERE deletes every row of {name}.",
                "Add a WHERE clause for the rows you mean; if every row really has to go, take a "
                "backup first and delete in batches outside the deploy."))
        else:
            out.append(OwnFinding(
                "update-without-where", "warning", toks[i],
                f"UPDATE without WHERE rewrites every row of {name} and locks them all until "
                "the migration commits.",
                "Add a WHERE clause; for a backfill, update in batches (e.g. by primary key "
                "ranges) outside the schema migration."))

    if w[:2] == ["DROP", "OWNED"]:
        out.append(OwnFinding(
            "drop-owned", "destructive", first,
            "DROP OWNED drops every object (tables included) owned by the role.",
            "Drop the objects you mean by name, or REASSIGN OWNED first."))

    if w[0] == "DROP" and len(w) > 1 and w[1] in ("TYPE", "DOMAIN", "EXTENSION") and facts.cascade:
        what = w[1].lower()
        out.append(OwnFinding(
            f"drop-{what}-cascade", "destructive", first,
            f"DROP {w[1]} ... CASCADE also drops every column (and its data) that uses the "
            f"{what}.",
            f"Change or drop the columns that use the {what} first (in a reviewed migration), "
            "then drop it without CASCADE so PostgreSQL refuses if anything still depends on it."))

    label = _not_in_transaction(stmt)
    if label is not None:
        if run_in_transaction:
            out.append(OwnFinding(
                "concurrently-in-transaction" if "CONCURRENTLY" in label
                else "not-in-transaction-block", "error", first,
                f"{label} cannot run inside a transaction block, and this migration runs in "
                "one: it will fail when applied.",
                "Move the statement alone into its own migration and add metadata.toml with "
                "`run_in_transaction = false`."))
        elif multi_statement:
            out.append(OwnFinding(
                "non-transactional-not-alone", "error", first,
                f"{label} cannot run inside a transaction block; with `run_in_transaction = "
                "false` the whole up.sql is still sent as one query, which PostgreSQL runs as "
                "one implicit transaction when it holds several statements: it will fail when "
                "applied.",
                "Make it the only statement of its migration (move the other statements into "
                "another migration)."))

    if w[0] == "VACUUM" and "FULL" in w[:3]:
        out.append(OwnFinding(
            "vacuum-full", "warning", first,
            "VACUUM FULL rewrites the table under an ACCESS EXCLUSIVE lock (no reads or writes).",
            "Use plain VACUUM, or pg_repack, outside the deploy."))
    if w[0] == "CLUSTER":
        out.append(OwnFinding(
            "cluster", "warning", first,
            "CLUSTER rewrites the table under an ACCESS EXCLUSIVE lock (no reads or writes).",
            "Use pg_repack outside the deploy, or skip it."))
    if w[:2] == ["ALTER", "TABLE"]:
        for k in range(2, len(w) - 1):
            if w[k] == "SET" and w[k + 1] in ("TABLESPACE", "LOGGED", "UNLOGGED"):
                out.append(OwnFinding(
                    "table-rewrite", "warning", toks[k],
                    f"ALTER TABLE ... SET {w[k + 1]} rewrites the table under an ACCESS "
                    "EXCLUSIVE lock (no reads or writes).",
                    "Do it in a maintenance window, or build a new table and switch over."))
                break
    if w[:3] == ["REFRESH", "MATERIALIZED", "VIEW"] and "CONCURRENTLY" not in w[:4]:
        out.append(OwnFinding(
            "refresh-materialized-view", "warning", first,
            "REFRESH MATERIALIZED VIEW without CONCURRENTLY blocks reads of the view while it "
            "runs.",
            "Use REFRESH MATERIALIZED VIEW CONCURRENTLY (it needs a unique index on the "
            "view)."))
    if w[0] == "LOCK":
        out.append(OwnFinding(
            "lock-table", "warning", first,
            "LOCK TABLE holds the lock until the migration commits (ACCESS EXCLUSIVE by default: "
            "no reads or writes).",
            "Take the weakest lock mode that works, set a lock_timeout, and keep the migration "
            "short."))
    return out
