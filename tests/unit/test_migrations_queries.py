"""The one applied-migrations query and the parsers of its rows (conveyor.migrations.queries)."""

from __future__ import annotations

from conveyor.migrations import queries as q

US = "\x1f"


def line(head: str, *tail: str) -> str:
    return head + US + US.join(tail)


def test_the_query_keeps_the_three_field_head_the_stages_read():
    assert q.APPLIED_SQL.startswith(
        "SELECT COALESCE(d.version, '-') || ' ' || COALESCE(c.version, '-') || ' ' || "
        "COALESCE(c.checksum, '-')")
    assert "FULL JOIN __conveyor_migrations c ON c.version = d.version" in q.APPLIED_SQL
    assert q.APPLIED_SQL.endswith("ORDER BY 1")
    assert q.applied_sql() == q.APPLIED_SQL
    # the engine's own query: the same rows, one column per field
    assert q.APPLIED_SQL.split(" FROM ", 1)[1].removesuffix(" ORDER BY 1") == \
        q.applied_columns_sql().split(" FROM ", 1)[1].removesuffix(" ORDER BY 4")
    assert "__conveyor_migrations" not in q.applied_sql(conveyor_table=False)


def test_psql_lines_give_fingerprint_pairs_and_versions():
    lines = [
        line("1 1 aa", "1", "2024-01-01T00:00:00.000000", "1_a", "2024-01-01T00:00:00.000000Z",
             "1.5", "me@h", "conveyor"),
        line("2 2 bb", "2", "2024-01-02T00:00:00.000000", "2_b", "", "", "", "adopted"),
        "",
    ]
    assert q.fingerprint_pairs(lines) == [("1", "aa"), ("2", "bb")]
    assert q.applied_versions(lines) == ["1", "2"]
    [first, _] = q.parse_applied(lines) or []
    assert (first.version, first.name, first.duration_ms, first.in_diesel) == \
        ("1", "1_a", "1.5", True)


def test_any_doubt_gives_no_fingerprint():
    unrecorded = line("3 - -", "3", "2024-01-03T00:00:00.000000", "", "", "", "", "")
    stale = line("- 4 cc", "4", "", "4_d", "2024-01-04T00:00:00.000000Z", "", "", "conveyor")
    assert q.fingerprint_pairs([unrecorded]) is None
    assert q.fingerprint_pairs([stale]) is None
    assert q.applied_versions([unrecorded, stale]) == ["3"]
    assert q.fingerprint_pairs(["garbage"]) is None
    assert q.fingerprint_pairs(["5 5 ee"]) == [("5", "ee")]  # the head alone still reads


def test_a_row_of_columns_is_an_applied_line():
    row = ("1", "1", "aa", "1", "2024-01-01T00:00:00.000000", "1_a", None, "2", "me@h",
           "conveyor")
    a = q.AppliedLine(*row)
    assert (a.version, a.in_diesel, a.checksum, a.duration_ms) == ("1", True, "aa", "2")
    assert not q.AppliedLine(None, "9", "cc", "9").in_diesel
