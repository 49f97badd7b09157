"""Backups and restores of a remote environment's database, against a fake host (unit tests):
names, argv, parsing, the restore plan's order and what it undoes."""

from __future__ import annotations

import json

import pytest
from tests.unit.test_prod_plans import (  # noqa: F401 - fixtures
    DID,
    PASSWORD,
    FakeProdHost,
    app_server,
    env_secrets,
    kind,
    lock_output,
    make_config,
)

from conveyor.errors import ConveyorError
from conveyor.stages import backup as bk
from conveyor.stages import prod
from conveyor.stages import remote as rs

BACKUP = "20251224T180000Z-beef"


def remote_for(tmp_path, port, host):
    cfg = make_config(tmp_path, port)
    return rs.Remote(cfg, "prod", transport_factory=lambda r: host)


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
    assert argv[3:] == ("conveyor-backups", "/srv/backups", bk.file_pattern(remote))


def test_a_failed_backup_says_where_to_look(tmp_path, app_server):
    port, app = app_server
    host = FakeProdHost(app).on("backup", rc=11, err="the dump is empty")
    remote = remote_for(tmp_path, port, host)
    with pytest.raises(bk.BackupFailed, match="the dump is empty") as exc:
        bk.take_backup(remote, DID, bk.BackupOptions())
    assert "/srv/backups" in exc.value.hint


def test_restore_swaps_in_a_new_database_and_drops_the_old_one_last(tmp_path, app_server):
    port, app = app_server
    host = FakeProdHost(app)
    host.on("lock", out=lock_output())
    host.on("verify", out="::backup:: 4096 12\n")
    host.on("backup", out="::backup:: 1000 10\n")
    remote = remote_for(tmp_path, port, host)
    dep = prod.restore_plans(remote, BACKUP, prod.ProdOptions(project_dir=tmp_path),
                             deployment_id=DID)
    assert [s.name for s in dep.main.steps] == ["lock", "inspect", "verify", "backup", "stop",
                                               "restore", "swap", "start", "health", "cleanup"]
    result = prod.run_prod(dep, lambda e: None)
    assert result.ok, result.error
    assert host.names() == ["lock", "verify", "backup", "stop", "restore-db", "swap",
                            "start-old", "drop-db", "record"]
    backup_argv = next(a for a, _ in host.calls if kind(a) == "backup")
    assert backup_argv[-1] == f"notes-prod-{BACKUP}"  # retention never removes the source
    restore = next(a for a, _ in host.calls if kind(a) == "restore-db")
    assert restore[3:] == ("conveyor-restore", f"/srv/backups/notes-prod-{BACKUP}.dump",
                           "notes-prod-db", "notes", "notes_restoring_abcd",
                           'DROP DATABASE IF EXISTS "notes_restoring_abcd"',
                           'CREATE DATABASE "notes_restoring_abcd" OWNER "notes"')
    swap = next(a for a, _ in host.calls if kind(a) == "swap")
    assert swap[-1] == ('BEGIN; ALTER DATABASE "notes" RENAME TO "notes_pre_restore_abcd"; '
                        'ALTER DATABASE "notes_restoring_abcd" RENAME TO "notes"; COMMIT;')
    drop = next(a for a, _ in host.calls if kind(a) == "drop-db")
    assert drop[-1] == 'DROP DATABASE IF EXISTS "notes_pre_restore_abcd"'
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
    dep = prod.restore_plans(remote, BACKUP, prod.ProdOptions(project_dir=tmp_path),
                             deployment_id=DID)
    result = prod.run_prod(dep, lambda e: None)
    assert isinstance(result.error, rs.HealthCheckFailed)
    assert len(swaps) == 2 and swaps[1] == (
        'BEGIN; ALTER DATABASE "notes" RENAME TO "notes_restoring_abcd"; '
        'ALTER DATABASE "notes_pre_restore_abcd" RENAME TO "notes"; COMMIT;')
    names = host.names()
    assert "drop-db" in names and names.index("drop-db") > names.index("swap")
    assert dep.values["fallback"]["ok"] is True  # the app answers again on the old data
    statuses = {s["name"]: s["status"] for s in dep.record.steps}
    assert statuses["swap"] == "undone" and statuses["restore"] == "undone"
    assert "cleanup" not in statuses


def test_a_missing_backup_stops_before_the_app_is_touched(tmp_path, app_server):
    port, app = app_server
    host = FakeProdHost(app)
    host.on("lock", out=lock_output())
    host.on("verify", rc=20, err="no backup file /srv/backups/x.dump (or it is empty)")
    remote = remote_for(tmp_path, port, host)
    dep = prod.restore_plans(remote, BACKUP, prod.ProdOptions(project_dir=tmp_path),
                             deployment_id=DID)
    result = prod.run_prod(dep, lambda e: None)
    assert isinstance(result.error, bk.RestoreFailed)
    assert host.names() == ["lock", "verify", "record"]
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
    remote = rs.Remote(cfg, "prod", transport_factory=lambda r: FakeProdHost(app))
    with pytest.raises(ConveyorError, match="conveyor-managed database"):
        bk.require_managed_db(remote)
