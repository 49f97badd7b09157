"""The shared SQL lexer: statement boundaries and line/column, as the engine uses them to
describe a failing migration (the lint's use is tested in test_migrations_lint)."""

from __future__ import annotations

from conveyor.migrations.sqllex import line_col, split_statements, statement_at


def stmts(sql: str) -> list[str]:
    return [st.text(sql) for st in split_statements(sql)]


def test_line_col_counts_characters_like_postgresql_positions():
    text = "-- é comment\nSELECT 1;\n  SELEC 2;\n"
    off = text.index("SELEC 2")
    assert line_col(text, off) == (3, 3)
    assert line_col(text, 0) == (1, 1)
    assert line_col(text, text.index("SELECT")) == (2, 1)
    assert line_col(text, 10_000) == line_col(text, len(text))


def test_split_plain_statements_and_comments():
    sql = "-- header; not a statement\nCREATE TABLE a (x int);\n/* block; */ INSERT INTO a VALUES (1);\nSELECT 1"
    assert stmts(sql) == ["CREATE TABLE a (x int);", "INSERT INTO a VALUES (1);", "SELECT 1"]


def test_split_respects_quotes_dollar_quotes_and_nested_comments():
    sql = (
        "INSERT INTO t VALUES ('a;b', 'it''s; fine', E'back\\\\slash\\'; still');\n"
        'CREATE TABLE "semi;colon" (x int);\n'
        "CREATE FUNCTION f() RETURNS int AS $$ BEGIN RETURN 1; END; $$ LANGUAGE plpgsql;\n"
        "CREATE FUNCTION g() RETURNS text AS $body$ SELECT $$;$$ $body$ LANGUAGE sql;\n"
        "/* outer /* inner; */ still comment; */ SELECT 2;\n"
    )
    out = stmts(sql)
    assert len(out) == 5
    assert out[2].startswith("CREATE FUNCTION f()") and out[2].endswith("plpgsql;")
    assert out[4] == "SELECT 2;"


def test_split_sql_standard_function_body():
    sql = (
        "CREATE FUNCTION f(a int) RETURNS int LANGUAGE sql\nBEGIN ATOMIC\n"
        "  SELECT CASE WHEN a > 0 THEN 1 ELSE 0 END;\n  SELECT 2;\nEND;\nSELECT 3;\n"
    )
    out = stmts(sql)
    assert len(out) == 2 and out[1] == "SELECT 3;"


def test_empty_statements_are_skipped_and_statement_at_finds_the_span():
    sql = "SELECT 1;;\n\n;SELECT 2;"
    assert stmts(sql) == ["SELECT 1;", "SELECT 2;"]
    st = statement_at(sql, sql.index("2"))
    assert st is not None and st.text(sql) == "SELECT 2;"
    assert statement_at("", 0) is None
