"""`conveyor migrate generate`: diesel_cli's naming (diesel_cli/src/migrations/mod.rs)."""

from __future__ import annotations

import calendar

import pytest

from conveyor.migrations.cli import main
from conveyor.migrations.discovery import discover
from conveyor.migrations.errors import UsageError
from conveyor.migrations.generate import DOWN_TEMPLATE, UP_TEMPLATE, generate

NOW = calendar.timegm((2026, 11, 26, 14, 0, 5, 0, 0, 0))


def test_diesel_style_version_with_subversion(tmp_path):
    d1 = generate(tmp_path, "create_users", now=NOW)
    d2 = generate(tmp_path, "create_posts", now=NOW)
    assert d1.name == "2026-11-26-140005-0000_create_users"
    assert d2.name == "2026-11-26-140005-0001_create_posts"
    assert (d1 / "up.sql").read_text() == UP_TEMPLATE == "-- Your SQL goes here\n"
    assert (d1 / "down.sql").read_text() == DOWN_TEMPLATE
    assert [m.version for m in discover(tmp_path)] == ["202611261400050000", "202611261400050001"]


def test_compact_style_explicit_version_no_down_and_no_transaction(tmp_path):
    d = generate(tmp_path, "add_index", version_style="compact", now=NOW, down=False,
                 run_in_transaction=False)
    assert d.name == "20261126140005_add_index"
    assert not (d / "down.sql").exists()
    assert discover(tmp_path)[0].run_in_transaction is False
    e = generate(tmp_path, "explicit", version="42")
    assert e.name == "42_explicit"
    with pytest.raises(UsageError, match="already starts with"):
        generate(tmp_path, "again", version="42")
    with pytest.raises(UsageError, match="Invalid migration name"):
        generate(tmp_path, "../escape")


def test_generate_through_the_cli_creates_the_directory(tmp_path, capsys):
    mdir = tmp_path / "migrations"
    assert main(["generate", "create_things", "--migration-dir", str(mdir)]) == 0
    (d,) = list(mdir.iterdir())
    assert d.name.endswith("_create_things") and len(d.name.split("_")[0]) == 22
    assert "Creating" in capsys.readouterr().out
