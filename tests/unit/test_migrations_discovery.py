"""Discovery of Diesel-layout migrations: the rules of Diesel's own source (see
docs/diesel-compat.md), checked on real directories under tmp_path."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from conveyor.migrations.discovery import Migration, discover, version_from_name
from conveyor.migrations.errors import DiscoveryError, MigrationError


def mk(root: Path, name: str, up: str | bytes | None = "SELECT 1;\n", down: str | None = None,
       meta: str | None = None) -> Path:
    d = root / name
    d.mkdir(parents=True)
    if up is not None:
        (d / "up.sql").write_bytes(up.encode() if isinstance(up, str) else up)
    if down is not None:
        (d / "down.sql").write_text(down)
    if meta is not None:
        (d / "metadata.toml").write_text(meta)
    return d


def diesel_version_from_string(path: str) -> str:
    """migrations_internals::version_from_string, transcribed:
    path.split('_').next().map(|s| s.replace('-', ""))"""
    return path.split("_")[0].replace("-", "")


@pytest.mark.parametrize("name, version", [
    ("2023-11-01-120000_x", "20231101120000"),
    ("20231101120000_x", "20231101120000"),
    ("2026-07-30-140000-0000_x", "202607301400000000"),
    ("00000000000000_diesel_initial_setup", "00000000000000"),
    ("2024-01-01-000000_create_users_and_posts", "20240101000000"),
    ("noversionseparator", "noversionseparator"),
    ("2024-09-01 100000_spaces in the name", "20240901 100000"),
    ("v1-2-3_semver_like", "v123"),
])
def test_version_is_text_before_first_underscore_without_dashes(name, version):
    assert version_from_name(name) == version == diesel_version_from_string(name)


def test_diesel2_generated_version_has_18_characters():
    assert len(version_from_name("2026-07-30-140000-0000_x")) == 18


def test_discover_sorts_by_version_as_string_and_reads_files(tmp_path):
    mk(tmp_path, "20240102000000_b", "CREATE TABLE b ();\n", "DROP TABLE b;\n")
    mk(tmp_path, "2024-01-01-000000_a", "CREATE TABLE a ();\n")
    mk(tmp_path, "2024-01-01-000000-0001_c", "SELECT 3;\n")
    ms = discover(tmp_path)
    assert [m.version for m in ms] == ["20240101000000", "202401010000000001", "20240102000000"]
    a, _c, b = ms
    assert a.name == "2024-01-01-000000_a"
    assert a.directory == tmp_path / "2024-01-01-000000_a"
    assert a.up_path == tmp_path / "2024-01-01-000000_a" / "up.sql"
    assert a.up_sql == "CREATE TABLE a ();\n"
    assert a.down_sql is None  # down.sql is optional
    assert b.down_sql == "DROP TABLE b;\n"
    assert a.run_in_transaction is True
    assert a.checksum == hashlib.sha256(b"CREATE TABLE a ();\n").hexdigest()


def test_dot_directories_and_plain_files_are_ignored(tmp_path):
    mk(tmp_path, "2024-01-01-000000_a")
    (tmp_path / ".hidden").mkdir()
    (tmp_path / ".git").mkdir()
    (tmp_path / ".hidden" / "whatever").write_text("x")
    (tmp_path / "README.md").write_text("notes")
    (tmp_path / ".diesel_lock").write_text("")
    (tmp_path / ".keep").write_text("")
    assert [m.name for m in discover(tmp_path)] == ["2024-01-01-000000_a"]


def test_empty_migration_directory_is_refused_like_diesel(tmp_path):
    # Diesel: FileBasedMigrations::from_path -> UnknownMigrationFormat (no up.sql in it)
    (tmp_path / "2024-01-01-000000_empty").mkdir()
    with pytest.raises(DiscoveryError) as e:
        discover(tmp_path)
    assert "2024-01-01-000000_empty is empty" in str(e.value)
    assert e.value.exit_code == 2


def test_directory_without_up_sql_is_an_error(tmp_path):
    mk(tmp_path, "2024-01-01-000000_nothing", up=None, down="DROP TABLE x;\n")
    with pytest.raises(DiscoveryError, match="has no up.sql"):
        discover(tmp_path)


def test_directory_with_only_dot_files_counts_as_empty(tmp_path):
    d = mk(tmp_path, "2024-01-01-000000_x", up=None)
    (d / ".gitkeep").write_text("")
    with pytest.raises(DiscoveryError, match="is empty"):
        discover(tmp_path)


def test_empty_up_sql_is_an_error_but_a_comment_is_fine(tmp_path):
    mk(tmp_path, "2024-01-01-000000_comment", up="-- nothing to do\n")
    assert len(discover(tmp_path)) == 1
    mk(tmp_path, "2024-01-02-000000_empty", up="")
    with pytest.raises(DiscoveryError, match=r"up\.sql is empty"):
        discover(tmp_path)


def test_two_directories_with_the_same_version_are_refused_naming_both(tmp_path):
    mk(tmp_path, "2024-01-01-000000_first")
    mk(tmp_path, "20240101000000_second")
    with pytest.raises(DiscoveryError) as e:
        discover(tmp_path)
    text = str(e.value)
    assert "'2024-01-01-000000_first'" in text and "'20240101000000_second'" in text
    assert "20240101000000" in text


def test_version_longer_than_diesel_column_is_refused(tmp_path):
    mk(tmp_path, "1" * 51 + "_too_long")
    with pytest.raises(DiscoveryError, match=r"51 characters long.*VARCHAR\(50\)"):
        discover(tmp_path)
    mk(tmp_path / "ok", "1" * 50 + "_fits")
    assert discover(tmp_path / "ok")[0].version == "1" * 50


def test_name_starting_with_underscore_has_no_version(tmp_path):
    mk(tmp_path, "_oops")
    with pytest.raises(DiscoveryError, match="has no version"):
        discover(tmp_path)


@pytest.mark.parametrize("meta, expected", [
    (None, True),  # no metadata.toml: TomlMetadata::default() -> true
    ("run_in_transaction = false\n", False),
    ("run_in_transaction = true\n", True),
    ("# for CREATE INDEX CONCURRENTLY\nrun_in_transaction=false # trailing comment\n", False),
    ("", False),  # present without the key: #[serde(default)] bool -> false
    ("# only a comment\n", False),
    ("other_key = 1\n", False),
    ("run_in_transaction = false\n[extra]\nname = \"x\"\n", False),
    ("other = \"run_in_transaction = true\"\n", False),
])
def test_metadata_toml_run_in_transaction(tmp_path, meta, expected):
    mk(tmp_path, "2024-01-01-000000_a", meta=meta)
    assert discover(tmp_path)[0].run_in_transaction is expected


@pytest.mark.parametrize("meta, message", [
    ("run_in_transaction = flase\n", "not valid TOML"),
    ("run_in_transaction = \"false\"\n", "must be a boolean"),
])
def test_metadata_toml_that_diesel_would_silently_ignore_is_refused(tmp_path, meta, message):
    mk(tmp_path, "2024-01-01-000000_a", meta=meta)
    with pytest.raises(DiscoveryError, match=message):
        discover(tmp_path)


def test_directory_names_may_contain_spaces(tmp_path):
    mk(tmp_path, "2024-01-01-000000_with some spaces", down="SELECT 2;\n")
    (m,) = discover(tmp_path)
    assert m.name == "2024-01-01-000000_with some spaces"
    assert m.down_sql == "SELECT 2;\n"


def test_missing_directory_and_non_utf8_file(tmp_path):
    with pytest.raises(DiscoveryError, match="does not exist"):
        discover(tmp_path / "nope")
    mk(tmp_path, "2024-01-01-000000_latin1", up="SELECT 'caf\xe9';\n".encode("latin-1"))
    with pytest.raises(DiscoveryError, match="not valid UTF-8"):
        discover(tmp_path)


def test_nul_byte_is_refused(tmp_path):
    mk(tmp_path, "2024-01-01-000000_nul", up=b"SELECT 1;\x00SELECT 2;\n")
    with pytest.raises(DiscoveryError, match="NUL byte"):
        discover(tmp_path)


def test_migration_is_an_immutable_value(tmp_path):
    mk(tmp_path, "2024-01-01-000000_a", down="SELECT 2;\n")
    (m,) = discover(tmp_path)
    (again,) = discover(tmp_path)
    assert m == again and hash(m) == hash(again)
    with pytest.raises(AttributeError):
        m.version = "x"  # type: ignore[misc]
    assert isinstance(m, Migration)
    assert issubclass(DiscoveryError, MigrationError)
