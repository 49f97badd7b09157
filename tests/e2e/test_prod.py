"""End to end, the prod stage on the test bed: a copy of examples/notes is built, pushed, passed
through the dev VM (127.0.1.1) and promoted to the prod VM (127.0.2.1, its own sshd, engine and
PostgreSQL container) by the `conveyor` CLI as a subprocess. Each test asserts what serves
afterwards (HTTP on the prod VM's address) and what the prod database holds (row counts, the
schema, `__diesel_schema_migrations`).

The story, in order (the tests share one environment; each builds on the last):
  1. promote dev -> prod (v1), then notes are written to prod (two with the same title);
  2. an image that never passed dev is refused without --force;
  3. v3 passed dev, but its migration fails halfway on prod's data (a UNIQUE constraint on a
     duplicated title): v1 serves again, schema and rows unchanged;
  4. the data is fixed; v4 passed dev, but its /health answers 500 in prod: v1 serves again,
     automatically; v4's migrations stay applied (and the report says so);
  5. v5 passed dev; a prod validation test fails: v1 serves again;
  6. v5 is promoted; `rollback --migrations` goes back to v1 and v1's schema;
  7. v5 is promoted again, notes change; `restore` of that deployment's backup gives exactly
     the rows and migrations from before it;
  8. v6's destructive migration is refused without --allow-destructive (nothing stops), and
     applied with it.
Isolation and cleanup: see tests/e2e/helpers.py.
"""

from __future__ import annotations

import json
import secrets
from typing import ClassVar

import pytest

from tests.e2e.helpers import ORIGINAL_MIGRATIONS, Project, http, version_of

pytestmark = pytest.mark.e2e

V1_MIGRATIONS = [version_of(n) for n in ORIGINAL_MIGRATIONS]
SLUG = "2026-12-01-000001_notes_slug"
COLOR = "2026-12-02-000001_notes_color"
DROP_COLOR = "2026-12-03-000001_drop_notes_color"
HEALTH_500_IN_PROD = '''\
async def health(request: Request) -> JSONResponse:
    if os.environ.get("APP_ENV") == "prod":  # a prod-only misconfiguration
        return JSONResponse({"status": "broken in prod"}, status_code=500)
'''


class State:
    """What the tests learn along the way."""

    images: ClassVar[dict[str, str]] = {}
    promote_v1: str = ""
    app_id: str = ""


@pytest.fixture(scope="module")
def p(testbed, tmp_path_factory):
    project = Project.create(tmp_path_factory.mktemp("prod-e2e"), testbed,
                             app=f"notes-pe2e-{secrets.token_hex(2)}", health_timeout=8)
    # these tests follow migrations that fail on prod's data after the app stopped (the
    # fallback); the rehearsal that catches such a failure first has its own tests
    # (tests/e2e/test_rehearsal.py)
    cfg = project.dir / "conveyor.toml"
    text = cfg.read_text()
    assert text.count('promote_from = "dev"\n') == 1
    cfg.write_text(text.replace('promote_from = "dev"\n',
                                'promote_from = "dev"\nrehearse = "never"\n'))
    project.commit("prod: no rehearsal in these tests")
    try:
        State.images["v1"] = project.build_and_push()
        project.ok("setup", "dev")
        project.ok("deploy", "dev")
        project.ok("setup", "prod")
        yield project
    finally:
        project.cleanup()


def prod_health(p: Project) -> tuple[int | None, dict | str]:
    return http("GET", p.url("prod") + "/health")


def serving_version(p: Project) -> str:
    status, body = prod_health(p)
    assert status == 200 and body["database"] == "ok", (status, body)
    return body["version"]


def prod_app(p: Project) -> dict:
    c = p.vms["prod"].inspect(p.container("prod"))
    assert c is not None, "no prod app container"
    return c


def ship(p: Project, version: str, message: str) -> str:
    """Commit, build, push, deploy to dev (its tests pass): the image can be promoted."""
    p.set_version(version)
    p.commit(message)
    image = p.build_and_push()
    p.ok("deploy", "dev")
    State.images[version] = image
    return image


def last(p: Project) -> dict:
    return p.history("prod")[-1]


# --------------------------------------------------------------------------- 1


def test_promote_dev_to_prod(p):
    dev_ok = [e for e in p.history("dev") if e["result"] == "ok"][-1]
    r = p.ok("promote", "dev", "prod")
    assert f"passed dev in deployment {dev_ok['id']}" in r.stdout
    assert serving_version(p) == "v1"
    c = prod_app(p)
    assert c["Config"]["Labels"]["conveyor.image"] == State.images["v1"] == dev_ok["image"]
    assert p.migrations("prod") == V1_MIGRATIONS
    assert p.count("prod") == 0  # the validation's notes were deleted again

    rec = last(p)
    State.promote_v1 = rec["id"]
    assert rec["kind"] == "promote" and rec["result"] == "ok"
    assert [s["name"] for s in rec["steps"]] == [
        "lock", "pull", "plan", "backup", "prepare", "stop", "migrate", "start", "health",
        "validate"]
    assert all(s["status"] == "ok" and s["duration"] >= 0 for s in rec["steps"])
    assert rec["details"]["provenance"]["source_deployment"] == dev_ok["id"]
    assert rec["details"]["pending"] == ORIGINAL_MIGRATIONS
    assert rec["migrations_applied"] == ORIGINAL_MIGRATIONS
    listed = json.loads(p.ok("backups", "prod", "--json").stdout)
    assert [b["id"] for b in listed] == [rec["details"]["backup"]["id"]]
    assert listed[0]["size"] > 0
    assert p.passwords["prod"] not in r.stdout + r.stderr

    # data written to prod from now on (two notes share a title)
    for title in ("alpha", "beta", "dup", "dup", "gamma", "delta"):
        assert http("POST", p.url("prod") + "/notes", {"title": title})[0] == 201
    assert p.count("prod") == 6
    State.app_id = prod_app(p)["Id"]


# --------------------------------------------------------------------------- 2


def test_an_image_that_never_passed_dev_is_refused_without_force(p):
    p.set_version("unvetted")
    p.commit("an image that skips dev")
    image = p.build_and_push()
    r = p.fails(11, "deploy", "prod", "--image", image)
    assert "has not passed dev" in r.stderr and "--force" in r.stderr
    # nothing happened on prod: not even pulled; the same container serves
    assert p.vms["prod"].docker("image", "inspect", image, check=False).returncode != 0
    assert serving_version(p) == "v1" and prod_app(p)["Id"] == State.app_id
    r = p.ok("deploy", "prod", "--image", image, "--force", "--dry-run")
    assert "WARNING" in r.stdout and "NOT passed dev" in r.stdout
    assert len(p.history("prod")) == 1


# --------------------------------------------------------------------------- 3


def test_a_migration_failing_halfway_leaves_the_old_version_and_the_schema(p):
    p.add_migration(SLUG, "ALTER TABLE notes ADD COLUMN slug text;\n"
                          "UPDATE notes SET slug = lower(title);\n"
                          "ALTER TABLE notes ADD CONSTRAINT notes_slug_key UNIQUE (slug);\n",
                    "ALTER TABLE notes DROP COLUMN slug;\n")
    ship(p, "v3", "notes.slug, unique")  # dev has no duplicated titles: it passes there
    columns = p.columns("prod")
    r = p.fails(8, "deploy", "prod")  # MigrationStepFailed
    assert "could not create unique index" in r.stderr and "notes_slug_key" in r.stderr
    assert "The previous version is serving again" in r.stdout
    assert "The database schema is unchanged" in r.stdout

    assert serving_version(p) == "v1"
    c = prod_app(p)
    assert c["Id"] == State.app_id and c["State"]["Running"]  # restarted, not recreated
    assert p.vms["prod"].inspect(p.container("prod", "app-next")) is None
    assert p.migrations("prod") == V1_MIGRATIONS
    assert p.columns("prod") == columns and "slug" not in columns
    assert p.count("prod") == 6
    rec = last(p)
    assert rec["result"] == "failed" and rec["details"]["outcome"]["failed_step"] == "migrate"
    steps = {s["name"]: s["status"] for s in rec["steps"]}
    assert steps["stop"] == "undone" and steps["migrate"] == "failed" and "start" not in steps


# --------------------------------------------------------------------------- 4


def test_a_new_version_whose_health_never_passes_falls_back_automatically(p):
    dup = [n["id"] for n in http("GET", p.url("prod") + "/notes?limit=500")[1]["notes"]
           if n["title"] == "dup"]
    assert http("DELETE", f"{p.url('prod')}/notes/{dup[0]}")[0] == 204  # the data is fixed
    p.add_migration(COLOR, "ALTER TABLE notes ADD COLUMN color text;\n",
                    "ALTER TABLE notes DROP COLUMN color;\n")
    app_py = p.dir / "app" / "notes" / "app.py"
    original = app_py.read_text()
    head = "async def health(request: Request) -> JSONResponse:\n"
    assert original.count(head) == 1
    app_py.write_text(original.replace(head, HEALTH_500_IN_PROD))
    image = ship(p, "v4", "health answers 500 in prod")

    r = p.fails(9, "deploy", "prod")  # HealthCheckFailed
    assert "did not answer 200" in r.stderr
    out = r.stdout
    assert "The previous version is serving again" in out
    assert f"stay applied: {SLUG}, {COLOR}" in out and "must cope" in out
    assert f"conveyor rollback prod --to {State.promote_v1} --migrations" in out
    backup_id = last(p)["details"]["backup"]["id"]
    assert f"conveyor restore prod {backup_id}" in out

    assert serving_version(p) == "v1"
    assert prod_app(p)["Id"] == State.app_id
    failed = p.vms["prod"].inspect(p.container("prod", "app-failed"))
    assert failed["Config"]["Labels"]["conveyor.image"] == image
    assert not failed["State"]["Running"]
    assert p.migrations("prod") == V1_MIGRATIONS + [version_of(SLUG), version_of(COLOR)]
    assert {"slug", "color"} <= set(p.columns("prod"))
    assert p.count("prod") == 5
    app_py.write_text(original)


# --------------------------------------------------------------------------- 5


def test_a_failing_validation_falls_back_automatically(p):
    ship(p, "v5", "health fixed")
    failing = p.dir / "tests" / "test_zz_prod_only.py"
    failing.write_text("def test_prod_validation():\n"
                       "    assert False, 'the prod validation says no'\n")
    try:
        r = p.fails(10, "deploy", "prod")
    finally:
        failing.unlink()
    assert "the validation of prod failed" in r.stderr
    assert "The previous version is serving again" in r.stdout
    assert "changed no migrations" in r.stdout  # v4's stayed applied; v5 has the same ones
    assert serving_version(p) == "v1" and prod_app(p)["Id"] == State.app_id
    assert p.migrations("prod") == V1_MIGRATIONS + [version_of(SLUG), version_of(COLOR)]
    assert p.count("prod") == 5
    rec = last(p)
    assert rec["details"]["outcome"]["failed_step"] == "validate"
    assert {s["name"]: s["status"] for s in rec["steps"]}["start"] == "undone"


# --------------------------------------------------------------------------- 6


def test_rollback_with_migrations_restores_the_previous_image_and_schema(p):
    p.ok("deploy", "prod")
    assert serving_version(p) == "v5"
    assert prod_app(p)["Config"]["Labels"]["conveyor.image"] == State.images["v5"]

    r = p.ok("rollback", "prod", "--migrations")
    assert f"reverted {COLOR}, {SLUG}" in r.stdout
    assert serving_version(p) == "v1"
    assert prod_app(p)["Config"]["Labels"]["conveyor.image"] == State.images["v1"]
    assert p.migrations("prod") == V1_MIGRATIONS
    assert not {"slug", "color"} & set(p.columns("prod"))
    assert p.count("prod") == 5
    rec = last(p)
    assert rec["kind"] == "rollback" and rec["result"] == "ok"
    assert rec["details"]["migrations_reverted"] == [COLOR, SLUG]
    assert rec["details"]["backup"]["size"] > 0  # taken before reverting


# --------------------------------------------------------------------------- 7


def test_restore_from_the_pre_deploy_backup(p):
    before_rows = p.psql("prod", "SELECT id, title FROM notes ORDER BY id")
    assert p.migrations("prod") == V1_MIGRATIONS
    p.ok("deploy", "prod")
    backup_id = last(p)["details"]["backup"]["id"]
    assert p.migrations("prod") == V1_MIGRATIONS + [version_of(SLUG), version_of(COLOR)]
    for title in ("after-1", "after-2", "after-3"):
        assert http("POST", p.url("prod") + "/notes", {"title": title})[0] == 201
    assert p.count("prod") == len(before_rows) + 3

    r = p.fails(1, "restore", "prod", backup_id)  # no terminal, no --yes: nothing happens
    assert "without confirmation" in r.stderr
    assert p.count("prod") == len(before_rows) + 3

    r = p.ok("restore", "prod", backup_id, "--yes")
    assert p.psql("prod", "SELECT id, title FROM notes ORDER BY id") == before_rows
    assert p.count("prod") == 5
    assert p.migrations("prod") == V1_MIGRATIONS
    assert not {"slug", "color"} & set(p.columns("prod"))
    assert f"has migrations the restored database lacks: {SLUG}, {COLOR}" in r.stdout
    # the serving app answers on the restored data; no database was left behind
    assert serving_version(p) == "v5"
    assert http("GET", p.url("prod") + "/notes?limit=500")[0] == 200
    dbs = p.psql("prod", "SELECT datname FROM pg_database WHERE datname LIKE 'notes%'")
    assert dbs == ["notes"]
    rec = last(p)
    assert rec["kind"] == "restore" and rec["result"] == "ok"
    safety = rec["details"]["backup"]["id"]  # the replaced data was backed up first
    ids = [b["id"] for b in json.loads(p.ok("backups", "prod", "--json").stdout)]
    assert backup_id in ids and safety in ids


# --------------------------------------------------------------------------- 8


def test_a_destructive_migration_is_refused_without_the_flag(p):
    p.add_migration(DROP_COLOR, "ALTER TABLE notes DROP COLUMN color;\n",
                    "ALTER TABLE notes ADD COLUMN color text;\n")
    ship(p, "v6", "drop notes.color")
    started = prod_app(p)["State"]["StartedAt"]
    r = p.fails(12, "deploy", "prod")
    assert "ban-drop-column" in r.stdout + r.stderr and "--allow-destructive" in r.stderr
    assert "Nothing was stopped" in r.stdout
    c = prod_app(p)
    assert c["State"]["StartedAt"] == started and c["State"]["Running"]
    assert serving_version(p) == "v5"
    assert p.migrations("prod") == V1_MIGRATIONS
    assert p.count("prod") == 5

    p.ok("deploy", "prod", "--allow-destructive")
    assert serving_version(p) == "v6"
    assert p.migrations("prod") == V1_MIGRATIONS + [version_of(n) for n in (SLUG, COLOR,
                                                                             DROP_COLOR)]
    assert "color" not in p.columns("prod") and "slug" in p.columns("prod")
    assert p.count("prod") == 5
