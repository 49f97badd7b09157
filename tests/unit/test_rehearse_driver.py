"""The rehearsal driver on a real PostgreSQL server: the migrations on the scratch database,
the locks each one held (its own sampler), and the drop of the scratch database whatever the
migrations did; it refuses to drop anything that is not a scratch database."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import psycopg

from conveyor.steps import migrate_driver
from conveyor.steps import rehearse_driver as rd

BACKFILL = "2027-01-01-000001_notes_backfill"
UNIQUE = "2027-01-02-000001_notes_title_unique"


def scratch(pg_server, name: str = "app_rehearse_t1") -> str:
    url = pg_server.createdb(name)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE TABLE notes (id bigserial PRIMARY KEY, title text NOT NULL)")
        conn.execute("INSERT INTO notes (title) SELECT 'n' || (g % 50) FROM "
                     "generate_series(1, 500) g")
    return url


def migrations(tmp_path: Path, *names_sql: tuple[str, str]) -> Path:
    root = tmp_path / "migrations"
    for name, sql in names_sql:
        (root / name).mkdir(parents=True)
        (root / name / "up.sql").write_text(sql)
        (root / name / "down.sql").write_text("SELECT 1;\n")
    return root


def run(url: str, name: str, files: Path) -> tuple[int, list[str]]:
    header = {"command": "run", "database_url": url, "migration_dir": str(files),
              "lock_timeout": 10, "applied_by": "test", "scratch": name,
              "maintenance_db": "postgres", "sample_every": 0.01}
    p = subprocess.run([sys.executable, "-m", "conveyor.steps.rehearse_driver"],
                       input=json.dumps(header) + "\n", capture_output=True, text=True,
                       timeout=120, check=False)
    return p.returncode, p.stdout.splitlines()


def exists(pg_server, name: str) -> bool:
    with psycopg.connect(pg_server.url(), autocommit=True) as conn:
        return conn.execute("SELECT count(*) FROM pg_database WHERE datname = %s",
                            (name,)).fetchone() == (1,)


def test_the_migrations_run_their_locks_are_sampled_and_the_scratch_is_dropped(pg_server,
                                                                               tmp_path):
    url = scratch(pg_server)
    sql = ("ALTER TABLE notes ADD COLUMN extra text;\nUPDATE notes SET extra = title;\n"
           "SELECT pg_sleep(0.3);\n")
    files = migrations(tmp_path, (BACKFILL, sql))

    rc, lines = run(url, "app_rehearse_t1", files)

    assert rc == 0, lines
    assert f"applying {BACKFILL} ..." in lines
    result = json.loads(next(x for x in lines if x.startswith(migrate_driver.RESULT_MARK))
                        [len(migrate_driver.RESULT_MARK):])
    assert result["ok"] and [s["name"] for s in result["applied"]] == [BACKFILL]
    locks = json.loads(next(x for x in lines if x.startswith(rd.LOCKS_MARK))
                       [len(rd.LOCKS_MARK):])
    assert locks["error"] is None
    assert "AccessExclusiveLock" in locks["migrations"][BACKFILL]["locks"]["notes"]
    assert lines[-1] == rd.DROPPED_MARK
    assert not exists(pg_server, "app_rehearse_t1")


def test_a_failing_migration_reports_the_data_problem_and_still_drops(pg_server, tmp_path):
    url = scratch(pg_server, "app_rehearse_t2")
    files = migrations(tmp_path, (UNIQUE, "CREATE UNIQUE INDEX notes_title_key ON notes (title);"))

    rc, lines = run(url, "app_rehearse_t2", files)

    assert rc == 1
    result = json.loads(next(x for x in lines if x.startswith(migrate_driver.RESULT_MARK))
                        [len(migrate_driver.RESULT_MARK):])
    assert result["ok"] is False and result["name"] == UNIQUE
    assert "could not create unique index" in result["message"]
    assert lines[-1] == rd.DROPPED_MARK
    assert not exists(pg_server, "app_rehearse_t2")


def test_it_refuses_to_drop_a_database_that_is_not_a_scratch_one(pg_server, tmp_path):
    url = pg_server.createdb("app_prod_t3")
    rc, lines = run(url, "app_prod_t3", migrations(tmp_path, (BACKFILL, "SELECT 1;\n")))
    assert rc != 0 and rd.DROPPED_MARK not in lines
    assert exists(pg_server, "app_prod_t3")


def test_a_drop_that_fails_says_so(pg_server, tmp_path):
    # the maintenance database does not exist: the drop fails, the step is told why
    url = scratch(pg_server, "app_rehearse_t5")
    files = migrations(tmp_path, (BACKFILL, "SELECT 1;\n"))
    header = {"command": "run", "database_url": url, "migration_dir": str(files),
              "lock_timeout": 10, "applied_by": "test", "scratch": "app_rehearse_t5",
              "maintenance_db": "no_such_db"}
    p = subprocess.run([sys.executable, "-m", "conveyor.steps.rehearse_driver"],
                       input=json.dumps(header) + "\n", capture_output=True, text=True,
                       timeout=120, check=False)
    last = p.stdout.splitlines()[-1]
    assert p.returncode == 0  # the migrations passed: the step drops it with rehearse.sh
    assert last.startswith(rd.DROP_FAILED_MARK) and "no_such_db" in last
    assert pg_server.password not in p.stdout
    assert exists(pg_server, "app_rehearse_t5")
