"""The squawk rules the lint keeps, how it classifies them, and how to do each safely.

squawk's style rules are dropped (:data:`SQUAWK_IGNORED`); its safety rules are kept and
classified: data loss (:data:`SQUAWK_DESTRUCTIVE`) is ``destructive``, what fails when applied
(:data:`SQUAWK_ERROR`) is an ``error``, everything else a ``warning``.
"""

from __future__ import annotations

SQUAWK_DOCS = "https://squawkhq.com/docs/"


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
CASCADE_ESCALATED = {
    "ban-drop-type": "type",
    "ban-drop-domain": "domain",
    "ban-drop-extension": "extension",
}

#: squawk's ``constraint-missing-not-valid`` also fires on the clause that one of these flags
#: more precisely (and wrongly on UNIQUE/PRIMARY KEY, which have no NOT VALID): keep the latter
MORE_SPECIFIC_CONSTRAINT_RULES = frozenset({
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


def squawk_severity(rule: str) -> str:
    """``error``, ``destructive`` or ``warning`` for one of squawk's rules."""
    return ("error" if rule in SQUAWK_ERROR else
            "destructive" if rule in SQUAWK_DESTRUCTIVE else "warning")
