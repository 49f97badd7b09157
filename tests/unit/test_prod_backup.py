"""Backups and restores of a remote environment's database, against a fake host (unit tests):
names, argv, parsing, the restore plan's order and what it undoes."""

from __future__ import annotations

import json

import pytest
from tests.unit import test_prod_plans as pp
from tests.unit.test_prod_plans import (
    DID,
    PASSWORD,
    FakeProdHost,
    kind,
    lock_output,
    make_config,
)

from conveyor import host as hs
from conveyor.errors import (
    BackupFailed,
    ConveyorError,
    HealthCheckFailed,
    NotSetUp,
    RestoreFailed,
)
from conveyor.plans.deployment import run_deployment
from conveyor.plans.restore import restore_plans
from conveyor.state.deploy import ProdOptions
from conveyor.steps import backup as bk
from conveyor.steps import restore as rst
from conveyor.targets.remote import Remote

# the fake host and the environment of test_prod_plans (pytest fixtures)
app_server = pp.app_server
env_secrets = pp.env_secrets

BACKUP = "20251224T180000Z-beef"


def remote_for(tmp_path, port, host):
    cfg = make_config(tmp_path, port)
    return Remote(cfg, "prod", transport_factory=lambda r: host)


def test_backup_names_and_refs(tmp_path, app_server):
    port, app = app_server
    remote = remote_for(tmp_path, port, FakeProdHost(app))
    assert bk.backup_path(remote, BACKUP) == f"/srv/backups/notes-prod-{BACKUP}.dump"
    for ref in (BACKUP, f"notes-prod-{BACKUP}.dump", f"/srv/backups/notes-prod-{BACKUP}.dump",
                f"notes-prod-{BACKUP}"):
        assert bk.parse_backup_ref(remote, ref) == BACKUP
    with pytest.raises(ConveyorError, match="not a backup of notes prod"):
        bk.parse_backup_ref(remote, "notes-dev-20251224T180000Z-beef.dump")
    with pytest.raises(ConveyorError):
        bk.parse_backup_ref(remote, "../../etc/passwd")


def test_the_retention_pattern_matches_only_this_environment():
    import re

    class R:
        app = type("A", (), {"name": "my.app"})()
        name = "prod"

    pattern = re.compile(bk.file_pattern(R()))
    assert pattern.match(f"my.app-prod-{BACKUP}.dump")
    assert not pattern.match(f"my.app-prod-eu-{BACKUP}.dump")
    assert not pattern.match(f"myXapp-prod-{BACKUP}.dump")
    assert not pattern.match(f"my.app-prod-{BACKUP}.json")


def test_backups_are_listed_with_their_metadata(tmp_path, app_server):
    port, app = app_server
    host = FakeProdHost(app)
    meta = {"id": BACKUP, "reason": "manual", "migrations": ["1", "2"]}
    host.on("list", out=f"notes-prod-{BACKUP}.dump\t2048\t{json.dumps(meta)}\n"
                        f"notes-prod-20251225T000000Z-0001.dump\t10\t\n")
    remote = remote_for(tmp_path, port, host)
    items = bk.list_backups(remote)
    assert items == [
        {"id": BACKUP, "reason": "manual", "migrations": ["1", "2"],
         "file": f"/srv/backups/notes-prod-{BACKUP}.dump", "size": 2048},
        {"id": "20251225T000000Z-0001", "file": "/srv/backups/notes-prod-20251225T000000Z-0001"
         ".dump", "size": 10}]
    argv, _ = host.calls[0]
    assert argv == ("sh", "-c", hs.script("list_backups"), "conveyor-list-backups",
                    "/srv/backups", r"^notes-prod-[0-9]{8}T[0-9]{6}Z-[0-9a-f]{4}[.]dump$")
    assert argv == bk.list_argv(remote)


def test_a_failed_backup_says_where_to_look(tmp_path, app_server):
    port, app = app_server
    host = FakeProdHost(app).on("backup", rc=11, err="the dump is empty")
    remote = remote_for(tmp_path, port, host)
    with pytest.raises(BackupFailed, match="the dump is empty") as exc:
        bk.take_backup(remote, DID, bk.BackupOptions())
    assert "/srv/backups" in exc.value.hint


def test_restore_swaps_in_a_new_database_and_drops_the_old_one_last(tmp_path, app_server):
    port, app = app_server
    host = FakeProdHost(app)
    host.on("lock", out=lock_output())
    host.on("verify", out="::backup:: 4096 12\n")
    host.on("backup", out="::backup:: 1000 10\n")
    remote = remote_for(tmp_path, port, host)
    dep = restore_plans(remote, BACKUP, ProdOptions(project_dir=tmp_path),
                        deployment_id=DID)
    assert [s.name for s in dep.main.steps] == ["lock", "database", "inspect", "verify", "backup",
                                               "stop", "restore", "swap", "start", "health",
                                               "cleanup"]
    result = run_deployment(dep, lambda e: None)
    assert result.ok, result.error
    assert host.names() == ["lock", "verify", "backup", "stop", "restore-db", "swap",
                            "start-old", "drop-db", "record"]
    backup_argv = next(a for a, _ in host.calls if kind(a) == "backup")
    assert backup_argv == (  # retention never removes the source (the last argument)
        "sh", "-c", hs.script("backup"), "conveyor-backup", "/srv/backups", f"notes-prod-{DID}",
        "notes-prod-db", "notes", "notes", "3",
        r"^notes-prod-[0-9]{8}T[0-9]{6}Z-[0-9a-f]{4}[.]dump$", f"notes-prod-{BACKUP}")
    verify = next(a for a, _ in host.calls if kind(a) == "verify")
    assert verify == ("sh", "-c", hs.script("verify_backup"), "conveyor-verify-backup",
                      f"/srv/backups/notes-prod-{BACKUP}.dump", "notes-prod-db")
    restore = next(a for a, _ in host.calls if kind(a) == "restore-db")
    assert restore == ("sh", "-c", hs.script("restore"), "conveyor-restore",
                       f"/srv/backups/notes-prod-{BACKUP}.dump", "notes-prod-db", "notes",
                       "notes_restoring_abcd", 'DROP DATABASE IF EXISTS "notes_restoring_abcd"',
                       'CREATE DATABASE "notes_restoring_abcd" OWNER "notes"')
    swap = next(a for a, _ in host.calls if kind(a) == "swap")
    assert swap == ("sh", "-c", hs.script("swap"), "conveyor-swap", "notes-prod-db", "notes",
                    ("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname IN "
                    "('notes', 'notes_restoring_abcd') AND pid <> pg_backend_pid()"),
                    ('BEGIN; ALTER DATABASE "notes" RENAME TO "notes_pre_restore_abcd"; '
                    'ALTER DATABASE "notes_restoring_abcd" RENAME TO "notes"; COMMIT;'))
    drop = next(a for a, _ in host.calls if kind(a) == "drop-db")
    assert drop == ("docker", "exec", "notes-prod-db", "psql", "-XAtq", "-v", "ON_ERROR_STOP=1",
                    "-U", "notes", "-d", "postgres", "-c",
                    'DROP DATABASE IF EXISTS "notes_pre_restore_abcd"')
    assert rst.restore_names(remote, DID) == {"live": "notes", "new": "notes_restoring_abcd",
                                              "old": "notes_pre_restore_abcd"}
    assert dep.record.kind == "restore" and dep.record.image.startswith("127.0.0.1:5000/notes@")
    for argv, _ in host.calls:
        assert not any(PASSWORD in a for a in argv)


def test_an_unhealthy_app_after_the_restore_swaps_the_old_database_back(tmp_path, app_server):
    port, app = app_server
    host = FakeProdHost(app)
    host.on("lock", out=lock_output())
    host.on("verify", out="::backup:: 4096 12\n")
    host.on("backup", out="::backup:: 1000 10\n")
    orig = host.run
    swaps = []

    def run(argv, **kw):
        r = orig(argv, **kw)
        if kind(tuple(argv)) == "swap":
            swaps.append(argv[-1])
            app.serving = "new" if len(swaps) == 1 else app.serving  # restored data: unhealthy
        if kind(tuple(argv)) == "start-old" and len(swaps) == 2:
            app.serving = "old"
        return r

    host.run = run
    app.new_status = 500
    remote = remote_for(tmp_path, port, host)
    dep = restore_plans(remote, BACKUP, ProdOptions(project_dir=tmp_path),
                        deployment_id=DID)
    result = run_deployment(dep, lambda e: None)
    assert isinstance(result.error, HealthCheckFailed)
    assert len(swaps) == 2 and swaps[1] == (
        'BEGIN; ALTER DATABASE "notes" RENAME TO "notes_restoring_abcd"; '
        'ALTER DATABASE "notes_pre_restore_abcd" RENAME TO "notes"; COMMIT;')
    swap_back = [a for a, _ in host.calls if kind(a) == "swap"][1]
    assert swap_back == rst.swap_argv(remote, "notes", "notes_pre_restore_abcd",
                                      "notes_restoring_abcd") == (
        "sh", "-c", hs.script("swap"), "conveyor-swap", "notes-prod-db", "notes",
        ("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname IN "
        "('notes', 'notes_pre_restore_abcd') AND pid <> pg_backend_pid()"),
        ('BEGIN; ALTER DATABASE "notes" RENAME TO "notes_restoring_abcd"; '
        'ALTER DATABASE "notes_pre_restore_abcd" RENAME TO "notes"; COMMIT;'))
    names = host.names()
    assert "drop-db" in names and names.index("drop-db") > names.index("swap")
    assert dep.state.fallback["ok"] is True  # the app answers again on the old data
    statuses = {s["name"]: s["status"] for s in dep.record.steps}
    assert statuses["swap"] == "undone" and statuses["restore"] == "undone"
    assert "cleanup" not in statuses


def test_a_missing_backup_stops_before_the_app_is_touched(tmp_path, app_server):
    port, app = app_server
    host = FakeProdHost(app)
    host.on("lock", out=lock_output())
    host.on("verify", rc=20, err="no backup file /srv/backups/x.dump (or it is empty)")
    remote = remote_for(tmp_path, port, host)
    dep = restore_plans(remote, BACKUP, ProdOptions(project_dir=tmp_path),
                        deployment_id=DID)
    result = run_deployment(dep, lambda e: None)
    assert isinstance(result.error, RestoreFailed)
    assert host.names() == ["lock", "verify", "record"]
    assert app.serving == "old"


def test_a_restore_without_a_database_container_is_filed_under_database_not_lock(
        tmp_path, app_server):
    port, app = app_server
    host = FakeProdHost(app)
    out = lock_output().replace(json.dumps({"Name": "/notes-prod-db", "State": {
        "Running": True, "Status": "running"}}), "")
    assert "notes-prod-db" not in out
    host.on("lock", out=out)
    remote = remote_for(tmp_path, port, host)
    dep = restore_plans(remote, BACKUP, ProdOptions(project_dir=tmp_path), deployment_id=DID)
    result = run_deployment(dep, lambda e: None)
    assert isinstance(result.error, NotSetUp)
    assert "notes-prod-db" in str(result.error) and "missing" in str(result.error)
    steps = {s["name"]: s["status"] for s in dep.record.as_dict()["steps"]}
    assert steps["lock"] == "ok" and steps["database"] == "failed"
    assert host.names() == ["lock", "record"]
    assert app.serving == "old"


def test_a_database_reached_by_url_has_no_backups(tmp_path, app_server):
    port, app = app_server
    cfg = make_config(tmp_path, port)
    text = (tmp_path / "conveyor.toml").read_text()
    text = text.replace('[environments.prod.database]\nkind = "container"\nimage = "postgres:15"'
                        '\nname = "notes"\nuser = "notes"\npassword = { env = '
                        '"NOTES_PROD_DB_PASSWORD" }',
                        '[environments.prod.database]\nkind = "url"\nurl = { env = '
                        '"NOTES_PROD_DB_PASSWORD" }')
    (tmp_path / "conveyor.toml").write_text(text)
    from conveyor.config import load_config

    cfg = load_config(tmp_path)
    remote = Remote(cfg, "prod", transport_factory=lambda r: FakeProdHost(app))
    with pytest.raises(ConveyorError, match="conveyor-managed database"):
        bk.require_managed_db(remote)
