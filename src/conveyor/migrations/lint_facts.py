"""What a statement does, as far as the lint needs to know: its verb, the tables it creates,
changes, drops or renames (:func:`statement_facts`), on the tokens of the shared lexer."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from conveyor.migrations.sqllex import Statement, Token


def _ident(tok: Token) -> str | None:
    if tok.kind == "word":
        return tok.text.lower()
    if tok.kind == "qident" and tok.text.startswith('"'):
        return tok.text[1:-1].replace('""', '"')
    return None


def normalize_name(name: str) -> str:
    """``public.t`` and ``t`` are the same table (default search_path)."""
    return name.removeprefix("public.")


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
    return normalize_name(".".join(parts[-2:])), j


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


def name_list(tokens: Sequence[Token], i: int) -> tuple[list[str], int]:
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
                    f.renamed_to = normalize_name(table.rsplit(".", 1)[0] + "." + f.renamed_to)
    elif w[0] == "DROP" and len(w) > 1:
        if w[1] == "TABLE":
            f.verb = "DROP TABLE"
            names, _ = name_list(toks, _skip_words(toks, 2, "IF EXISTS"))
            f.targets = f.dropped_tables = names
        elif w[1] == "INDEX":
            f.verb = "DROP INDEX"
            names, _ = name_list(toks, _skip_words(toks, 2, "CONCURRENTLY", "IF EXISTS"))
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
        f.targets, _ = name_list(toks, _skip_words(toks, 1, "TABLE"))
    elif w[0] == "DELETE" and len(w) > 1 and w[1] == "FROM":
        f.verb = "DELETE"
        f.targets, _ = name_list(toks, 2)
        f.targets = f.targets[:1]
    elif w[0] == "UPDATE":
        f.verb = "UPDATE"
        f.targets, _ = name_list(toks, 1)
        f.targets = f.targets[:1]
    else:
        f.verb = w[0]
    return f
