"""Interop with Diesel, checked against the derivation read in Diesel's source (cited in
docs/diesel-compat.md): the version strings and table conveyor writes equal what Diesel writes
for the same directories, and a database can go from Diesel's harness to conveyor and back.

diesel_cli itself is not installed here (no crates.io access), so Diesel's harness is replayed
with its exact statements over psycopg (the file over the simple protocol, as `batch_execute`;
the version bound as a parameter, as Diesel's `insert_into`):
`CREATE TABLE IF NOT EXISTS ...` (setup_migration_table.sql), then per migration `BEGIN`, the
file as one query, `INSERT INTO __diesel_schema_migrations (version) VALUES (...)`, `COMMIT`
(migration_harness.rs, run_migration); revert: `BEGIN`, down.sql, `DELETE ... WHERE version`,
`COMMIT`."""

from __future__ import annotations

import json

import psycopg
import pytest

from conveyor.migrations.discovery import discover
from tests.integration.test_migrations_common import (
    DIESEL_SETUP_SQL,
    cli,
    diesel_version,
    psql,
    rows,
    write_migration,
)
from tests.support.pgserver import pg_bin

pytestmark = pytest.mark.integration

NAMES = [
    "00000000000000_diesel_initial_setup",
    "2023-11-01-120000_dashed",
    "20231101120001_compact",
    "2026-07-30-140000-0000_diesel_two",
    "2026-07-30-140000-0001_same_second",
    "2026-08-01-000000_with_more_underscores_in_name",
    "2026-08-02-000000_with spaces in it",
    "v42_not_a_timestamp",
]


def diesel_pending(url: str, directory) -> list[str]:
    """MigrationHarness::pending_migrations: on disk minus applied, sorted by version."""
    on_disk = {diesel_version(p.name) for p in directory.iterdir()
               if p.is_dir() and not p.name.startswith(".")}
    applied = {r[0] for r in rows(url, "SELECT version FROM __diesel_schema_migrations")}
    return sorted(on_disk - applied)


class DieselHarness:
    """Diesel's harness statements, replayed over psycopg (no parameters: the simple
    protocol, which takes a file of many statements)."""

    def __init__(self, url: str):
        self.conn = psycopg.connect(url, autocommit=True)
        self.conn.execute("SET TIME ZONE 'UTC'; SET CLIENT_ENCODING TO 'UTF8'")

    def applied(self) -> list[str]:
        self.conn.execute(DIESEL_SETUP_SQL)
        return [r[0] for r in self.conn.execute(
            "SELECT version FROM __diesel_schema_migrations ORDER BY version DESC")]

    def run(self, path) -> None:
        self.conn.execute("BEGIN")
        self.conn.execute((path / "up.sql").read_text())
        self.conn.execute("INSERT INTO __diesel_schema_migrations (version) VALUES (%s)",
                          (diesel_version(path.name),))
        self.conn.execute("COMMIT")

    def revert(self, path) -> None:
        self.conn.execute("BEGIN")
        self.conn.execute((path / "down.sql").read_text())
        self.conn.execute("DELETE FROM __diesel_schema_migrations WHERE version = %s",
                          (diesel_version(path.name),))
        self.conn.execute("COMMIT")

    def close(self):
        self.conn.close()


@pytest.fixture
def mdir(tmp_path):
    d = tmp_path / "migrations"
    for i, name in enumerate(NAMES):
        write_migration(d, name, f"CREATE TABLE t{i} (id int);\n", f"DROP TABLE t{i};\n")
    return d


def test_mig_interop_versions_equal_diesel_derivation(pg_url, mdir, capsys):
    code, _out, err = cli(capsys, "run", "--database-url", pg_url, "--migration-dir", str(mdir))
    assert code == 0, err
    written = [r[0] for r in rows(pg_url, "SELECT version FROM __diesel_schema_migrations"
                                          " ORDER BY version")]
    assert written == sorted(diesel_version(n) for n in NAMES)
    assert "202607301400000000" in written and "20231101120000" in written
    assert ["20260802000000 with spaces in it"][0] not in written  # sanity
    assert [m.version for m in discover(mdir)] == written
    assert diesel_pending(pg_url, mdir) == []


def test_mig_interop_table_definition_is_diesels(pg_server, pg_url, mdir, capsys):
    assert cli(capsys, "run", "--database-url", pg_url, "--migration-dir", str(mdir))[0] == 0
    ref = pg_server.createdb("t_mig_interop_ref")
    psql(ref, DIESEL_SETUP_SQL)

    def table_dump(url):
        import subprocess

        out = subprocess.run([str(pg_bin() / "pg_dump"), "--schema-only", "-t",
                              "__diesel_schema_migrations", "-d", url],
                             capture_output=True, text=True, check=True).stdout
        return [ln for ln in out.splitlines()
                if not ln.startswith(("--", "\\restrict", "\\unrestrict"))]

    assert table_dump(pg_url) == table_dump(ref)
    cols = rows(pg_url, "SELECT column_name, data_type, character_maximum_length, is_nullable,"
                        " column_default FROM information_schema.columns WHERE table_name ="
                        " '__diesel_schema_migrations' ORDER BY ordinal_position")
    assert cols == [("version", "character varying", 50, "NO", None),
                    ("run_on", "timestamp without time zone", None, "NO", "CURRENT_TIMESTAMP")]


def test_mig_interop_diesel_then_conveyor_then_diesel(pg_url, mdir, capsys):
    paths = sorted((p for p in mdir.iterdir()), key=lambda p: diesel_version(p.name))
    diesel = DieselHarness(pg_url)
    assert diesel.applied() == []
    for p in paths[:3]:
        diesel.run(p)
    args = ("--database-url", pg_url, "--migration-dir", str(mdir))
    code, out, _ = cli(capsys, "status", "--json", *args)
    data = json.loads(out)
    assert [a["state"] for a in data["applied"]] == ["unrecorded"] * 3
    assert len(data["pending"]) == len(NAMES) - 3 and not data["run_would_refuse"]
    code, out, err = cli(capsys, "run", *args)
    assert code == 0, err
    assert out.count("Applied ") == len(NAMES) - 3
    # Diesel sees nothing pending and reverts conveyor's last migration its own way
    assert diesel_pending(pg_url, mdir) == []
    assert diesel.applied()[0] == diesel_version(paths[-1].name)
    diesel.revert(paths[-1])
    diesel.close()
    code, out, _ = cli(capsys, "status", "--json", *args)
    data = json.loads(out)
    assert [p["name"] for p in data["pending"]] == [paths[-1].name]
    assert data["problems"] == [] and {a["state"] for a in data["applied"]} == {"applied"}
    code, out, err = cli(capsys, "run", *args)
    assert code == 0 and f"Applied {paths[-1].name}" in out, err
    assert rows(pg_url, "SELECT count(*) FROM __conveyor_migrations")[0][0] == len(NAMES)
    # and conveyor reverts everything, Diesel's rows included
    assert cli(capsys, "revert", "--all", *args)[0] == 0
    assert rows(pg_url, "SELECT count(*) FROM __diesel_schema_migrations")[0][0] == 0
