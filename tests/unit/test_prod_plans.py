"""The prod stage's plans against a fake host (unit tests only; the real thing is in
tests/e2e/test_prod.py): which commands run in which order, where secrets go, what the lint
stops, and what each failure undoes and reports. Health and validation talk to a real HTTP
server on 127.0.0.1 whose answers follow the fake host's container moves."""

from __future__ import annotations

import base64
import gzip
import http.server
import io
import json
import tarfile
import textwrap
import threading
from pathlib import Path
from typing import ClassVar

import pytest

from conveyor import host as hs
from conveyor import promotion
from conveyor.config import load_config
from conveyor.errors import (
    BackupFailed,
    CommandFailed,
    ConveyorError,
    DatabaseAhead,
    HealthCheckFailed,
    LintBlocked,
    LockHeld,
    MigrationStepFailed,
    NoRollbackTarget,
    NotPromotable,
    RestoreFailed,
    ValidationFailed,
)
from conveyor.imageref import REVISION_LABEL, ImageRef
from conveyor.plans.deployment import run_deployment
from conveyor.plans.prod import prod_plans
from conveyor.plans.rollback import rollback_plans, rollback_target
from conveyor.state.deploy import ProdOptions, RevertPlan
from conveyor.steps import app as app_steps
from conveyor.steps import backup as bk
from conveyor.steps import migrate_driver
from conveyor.steps import migrate_engine as engine
from conveyor.targets.remote import Remote
from conveyor.transport import Result, Transport

OLD = "127.0.0.1:5000/notes@sha256:" + "cd" * 32
NEW_DIGEST = "sha256:" + "ab" * 32
NEW = "127.0.0.1:5000/notes@" + NEW_DIGEST
PASSWORD = "pr0d-s3cret-pw"
DID = "20260101T000000Z-abcd"

V1 = {"2026-01-01-000001_create_notes": {"up.sql": "CREATE TABLE notes (id bigint);\n",
                                         "down.sql": "DROP TABLE notes;\n"}}
V2 = {**V1, "2026-02-01-000001_add_color": {"up.sql": "ALTER TABLE notes ADD COLUMN color text;\n",
                                            "down.sql": "ALTER TABLE notes DROP COLUMN color;\n"}}
APPLIED_V1 = "20260101000001 20260101000001 " + "0" * 64
APPLIED_V2 = APPLIED_V1 + "\n20260201000001 20260201000001 " + "1" * 64
RUNNER = "127.0.0.1:5000/conveyor-runner:0.0.0-test"  # CONVEYOR_RUNNER_IMAGE in env_secrets
RUN_DIR = f"/srv/conveyor/notes/prod/runs/{DID}"  # the run's directory on the host
NO_TABLE = 'ERROR:  relation "__diesel_schema_migrations" does not exist\n'


def copy_out_argv(image: str, dest: str) -> tuple[str, ...]:
    """The image's migrations copied out (never run) into `dest` on the host."""
    return ("sh", "-c", hs.script("copy_out"), "conveyor-copy-out", image, "/app/migrations",
            dest, "--label", "conveyor.app=notes", "--label", "conveyor.env=prod",
            "--label", "conveyor.role=inspect")


def engine_run_argv(role: str, dest: str) -> tuple[str, ...]:
    """conveyor's engine in a temporary container of the runner image, `dest` mounted."""
    return ("docker", "run", "--rm", "--interactive", "--name", f"notes-prod-{role}-{DID}".lower(),
            "--network", "notes-prod", "--volume", f"{dest}:/migrations:ro",
            "--label", "conveyor.app=notes", "--label", "conveyor.env=prod",
            "--label", f"conveyor.role={role}", "--label", f"conveyor.deployment={DID}",
            "--entrypoint", "python", RUNNER, "-m", "conveyor.steps.migrate_driver")


def tar_b64(files: dict[str, dict[str, str]]) -> str:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        for d, contents in files.items():
            info = tarfile.TarInfo(f"./{d}")
            info.type = tarfile.DIRTYPE
            tf.addfile(info)
            for name, text in contents.items():
                data = text.encode()
                info = tarfile.TarInfo(f"./{d}/{name}")
                info.size = len(data)
                tf.addfile(info, io.BytesIO(data))
    return base64.b64encode(gzip.compress(buf.getvalue())).decode() + "\n"


def kind(argv) -> str:
    text = " ".join(argv)
    script = argv[2] if len(argv) > 2 else None
    names = {hs.script("lock"): "lock", hs.script("record"): "record",
             hs.script("unlock"): "unlock", hs.script("image_files"): "files",
             hs.script("backup"): "backup", hs.script("verify_backup"): "verify",
             hs.script("restore"): "restore-db", hs.script("swap"): "swap",
             hs.script("list_backups"): "list", hs.script("copy_out"): "copy-out"}
    if script in names:
        return names[script]
    if "no previous container to restore" in text:
        return "fallback"
    if "docker create" in text:
        return "prepare"
    if "docker rename notes-prod-app-next notes-prod-app" in text:
        return "start"
    driver = argv[:2] == ("docker", "run") and argv[-2:] == ("-m", "conveyor.steps.migrate_driver")
    if driver and "-migrate-" in text:
        return "migrate"
    if driver and "-revert-" in text:
        return "revert"
    if driver:
        return "engine"
    if argv[:2] == ("docker", "stop"):
        return "stop"
    if argv == ("docker", "start", "notes-prod-app"):
        return "start-old"
    if argv == ("docker", "rm", "--force", "notes-prod-app-next"):
        return "rm-next"
    if "psql" in text and engine.APPLIED_SQL in argv:
        return "applied"
    if "DROP DATABASE" in text:
        return "drop-db"
    if argv[:1] == ("tail",):
        return "history"
    if text.startswith("docker inspect --format {{json .Config.Labels}}"):
        return "labels"
    if text.startswith("docker inspect --format {{json .State}}"):
        return "state"
    if "docker pull" in text:
        return "pull"
    if text.startswith("docker logs"):
        return "logs"
    return text[:50]


class App:
    """What answers on the app's port: the old version, the new one, or nothing."""

    def __init__(self) -> None:
        self.serving = "old"
        self.new_status = 200

    def status(self) -> int:
        return {"old": 200, "new": self.new_status}.get(self.serving, 503)


class FakeProdHost(Transport):
    name = "fake-prod"

    def __init__(self, app: App) -> None:
        self.app = app
        self.calls: list[tuple[tuple[str, ...], bytes | str | None]] = []
        self.answers: dict[str, tuple[int, str, str]] = {}

    def on(self, what: str, rc: int = 0, out: str = "", err: str = "") -> FakeProdHost:
        self.answers[what] = (rc, out, err)
        return self

    def run(self, argv, *, input=None, timeout=None, check=True, stream=None, env=None):
        argv = tuple(str(a) for a in argv)
        k = kind(argv)
        self.calls.append((argv, input))
        rc, out, err = self.answers.get(k, (0, "", ""))
        if rc == 0:  # the containers' moves, as the app's port sees them
            if k == "stop":
                self.app.serving = "down"
            elif k == "start":
                self.app.serving = "new"
            elif k == "fallback" or (k == "start-old" and self.app.serving == "down"):
                self.app.serving = "old"
        if stream:
            for line in out.splitlines():
                stream(line)
        if check and rc:
            raise CommandFailed(argv, rc, err or out, host=self.name)
        return Result(argv, rc, out, err, 0.0, host=self.name)

    def names(self) -> list[str]:
        return [kind(a) for a, _ in self.calls]


@pytest.fixture
def app_server():
    app = App()

    class H(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            status = app.status()
            self.send_response(status)
            self.end_headers()
            self.wfile.write(b'{"status": "ok"}' if status == 200 else b'{"status": "no"}')

        def log_message(self, *a):
            pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
    threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.02},
                     daemon=True).start()
    yield srv.server_address[1], app
    srv.shutdown()


@pytest.fixture(autouse=True)
def env_secrets(monkeypatch):
    monkeypatch.setenv("NOTES_PROD_DB_PASSWORD", PASSWORD)
    monkeypatch.setenv("NOTES_DEV_DB_PASSWORD", "dev-pw-123")
    monkeypatch.setenv("CONVEYOR_ACTOR", "alice")
    monkeypatch.setenv("CONVEYOR_RUNNER_IMAGE", RUNNER)


def make_config(tmp_path: Path, port: int, *, validate_ok: bool = True,
                rehearse: str = "never"):  # the rehearsal: tests/unit/test_rehearse.py
    (tmp_path / "known_hosts").write_text("")
    validate = json.dumps(["python3", "-c", (f"import sys; print('validating'); "
                                            f"sys.exit({0 if validate_ok else 1})")])
    (tmp_path / "conveyor.toml").write_text(textwrap.dedent(f"""
        [app]
        name = "notes"
        image = "notes"
        port = 8000
        stop_timeout = 3
        [app.health]
        timeout = 1.0
        interval = 0.05
        [registry]
        address = "127.0.0.1:5000"
        [environments.dev]
        host = "root@10.0.0.5:22"
        known_hosts = "known_hosts"
        [environments.dev.database]
        kind = "container"
        password = {{ env = "NOTES_DEV_DB_PASSWORD" }}
        [environments.prod]
        host = "root@10.0.0.6:22"
        known_hosts = "known_hosts"
        address = "127.0.0.1"
        port = {port}
        promote_from = "dev"
        validate_command = {validate}
        checks = [{{ path = "/health", status = 200, contains = "ok" }}]
        state_dir = "/srv/conveyor"
        rehearse = "{rehearse}"
        [environments.prod.database]
        kind = "container"
        image = "postgres:15"
        name = "notes"
        user = "notes"
        password = {{ env = "NOTES_PROD_DB_PASSWORD" }}
        [environments.prod.backup]
        dir = "/srv/backups"
        keep = 3
    """))
    return load_config(tmp_path)


def lock_output(applied: str = APPLIED_V1, current: bool = True) -> str:
    app = {"Name": "/notes-prod-app", "State": {"Running": True},
           "Config": {"Image": "old", "Labels": {"conveyor.image": OLD,
                                                 "conveyor.deployment": "20251201T000000Z-0001",
                                                 REVISION_LABEL: "oldrev"}}}
    db = {"Name": "/notes-prod-db", "State": {"Running": True, "Status": "running"}}
    return ("::containers::\n" + (json.dumps(app) + "\n" if current else "") + json.dumps(db)
            + "\n::applied::\n" + applied + "\n::image::\n"
            + json.dumps({REVISION_LABEL: "newrev"}) + "\n")


def migrate_ok(*names: str) -> str:
    result = {"ok": True, "applied": [{"version": n.split("_")[0].replace("-", ""), "name": n,
                                       "direction": "up", "duration_ms": 1.0} for n in names],
              "reverted": []}
    return "".join(f"applied {n}\n" for n in names) + engine.RESULT_MARK \
        + json.dumps(result) + "\n"


def host_for(app: App, files=V2, applied: str = APPLIED_V1, current: bool = True) -> FakeProdHost:
    host = FakeProdHost(app)
    host.on("lock", out=lock_output(applied, current))
    host.on("files", out=tar_b64(files))
    host.on("backup", out="::backup:: 1234 9\n")
    host.on("prepare", out="feedfacecafe1234\n")
    host.on("migrate", out=migrate_ok("2026-02-01-000001_add_color"))
    host.on("applied", out=applied + "\n")
    return host


def plan(tmp_path, port, host, *, validate_ok=True, allow_destructive=False):
    cfg = make_config(tmp_path, port, validate_ok=validate_ok)
    remote = Remote(cfg, "prod", transport_factory=lambda r: host)
    image = ImageRef("127.0.0.1:5000/notes", NEW_DIGEST, "newrev")
    opts = ProdOptions(project_dir=tmp_path, allow_destructive=allow_destructive)
    dep = prod_plans(remote, image, opts, provenance={"source": "dev"}, deployment_id=DID)
    return remote, dep


# --------------------------------------------------------------------------- the plan


def test_the_prod_plan_pulls_plans_and_backs_up_before_anything_stops(tmp_path, app_server):
    port, app = app_server
    _remote, dep = plan(tmp_path, port, host_for(app))
    names = [s.name for s in dep.main.steps]
    assert names == ["lock", "pull", "plan", "backup", "prepare", "stop", "migrate", "start",
                     "health", "validate"]
    assert names.index("pull") < names.index("stop") and names.index("backup") < \
        names.index("stop") < names.index("migrate") < names.index("start")
    assert [s.name for s in dep.finalize.steps] == ["report", "record"]


def test_dry_run_describes_every_step_without_secrets_and_touches_nothing(tmp_path, app_server):
    port, app = app_server
    host = host_for(app)
    _remote, dep = plan(tmp_path, port, host)
    text = json.dumps(dep.describe())
    assert host.calls == []
    assert PASSWORD not in text
    prepare = next(d for d in dep.describe() if d["step"] == "prepare")["commands"][0]
    assert "docker create --name notes-prod-app-next" in prepare
    assert "docker rm --force notes-prod-app-previous" in prepare
    stop = next(d for d in dep.describe() if d["step"] == "stop")
    assert stop["commands"] == ["docker stop --time 3 notes-prod-app"]
    assert stop["undo"][0] == "docker start notes-prod-app"


def test_create_argv_keeps_every_option_of_the_run_argv():
    run = ("docker", "run", "--detach", "--name", "a-app", "--network", "n", "--publish",
           "127.0.0.1:1:2", "--label", "x=y", "img@sha256:1")
    assert app_steps.create_argv(run, "a-app-next") == (
        "docker", "create", "--name", "a-app-next", "--network", "n", "--publish",
        "127.0.0.1:1:2", "--label", "x=y", "img@sha256:1")
    with pytest.raises(ValueError):
        app_steps.create_argv(("docker", "run", "--rm", "img"), "x")


def test_start_renames_old_to_previous_and_next_to_the_app_name():
    remote = type("R", (), {"app_container": "a-app", "previous_container": "a-app-previous",
                            "next_container": "a-app-next"})()
    assert app_steps.start_argv(remote, has_current=True) == (
        "sh", "-c", ("docker rename a-app a-app-previous && docker rename a-app-next a-app && "
        "docker start a-app"))
    assert app_steps.start_argv(remote, has_current=False) == (
        "sh", "-c", "docker rename a-app-next a-app && docker start a-app")


# --------------------------------------------------------------------------- happy path


def test_a_promotion_runs_in_order_and_records_plan_backup_and_outcome(tmp_path, app_server):
    port, app = app_server
    host = host_for(app)
    _remote, dep = plan(tmp_path, port, host)
    result = run_deployment(dep, lambda e: None)
    assert result.ok, result.error
    assert host.names() == ["lock", "files", "backup", "prepare", "stop", "copy-out", "migrate",
                            "start", "record"]
    copy_out, migrate = (a for a, _ in host.calls if kind(a) in ("copy-out", "migrate"))
    assert copy_out == copy_out_argv(NEW, f"{RUN_DIR}/migrations")
    assert migrate == engine_run_argv("migrate", f"{RUN_DIR}/migrations")
    assert app.serving == "new"
    rec = dep.record.as_dict()
    assert rec["result"] == "ok" and rec["kind"] == "promote"
    assert rec["migrations_applied"] == ["2026-02-01-000001_add_color"]
    assert rec["previous_image"] == OLD
    assert rec["details"]["pending"] == ["2026-02-01-000001_add_color"]
    assert rec["details"]["backup"] == {"id": DID, "file": f"/srv/backups/notes-prod-{DID}.dump",
                                        "size": 1234, "objects": 9}
    assert rec["details"]["lint"]["summary"]["destructive"] == 0
    # recreate too records each pending migration's class (the rollback guard reads them)
    assert rec["details"]["migration_classes"] == {"2026-02-01-000001_add_color": "expand"}
    assert rec["details"]["validation"]["ok"] is True
    assert [s["name"] for s in rec["steps"]] == [s.name for s in dep.main.steps]
    # the history line keeps the lint's counts, not its findings
    assert dep.record.summary()["details"]["lint"]["destructive"] == 0


def test_secrets_travel_on_stdin_only(tmp_path, app_server):
    port, app = app_server
    host = host_for(app)
    _remote, dep = plan(tmp_path, port, host)
    run_deployment(dep, lambda e: None)
    for argv, stdin in host.calls:
        assert not any(PASSWORD in a for a in argv), argv
        if kind(argv) not in ("prepare", "migrate"):
            assert stdin is None or PASSWORD.encode() not in (
                stdin if isinstance(stdin, bytes) else stdin.encode()), kind(argv)
    env_in = next(i for a, i in host.calls if kind(a) == "prepare")
    assert f"DATABASE_URL=postgresql://notes:{PASSWORD}@notes-prod-db:5432/notes" in env_in
    migrate_in = next(i for a, i in host.calls if kind(a) == "migrate")
    head, _, rest = migrate_in.partition(b"\n")
    assert rest == b""  # the driver's one header line: the URL there, never in argv
    assert json.loads(head)["database_url"] == \
        f"postgresql://notes:{PASSWORD}@notes-prod-db:5432/notes"
    assert json.loads(head)["migration_dir"] == "/migrations"
    backup_in = json.loads(next(i for a, i in host.calls if kind(a) == "backup"))
    assert backup_in["image"] == OLD and backup_in["migrations"] == ["20260101000001"]


def test_backup_argv_and_retention_pattern(tmp_path, app_server):
    port, app = app_server
    remote, _ = plan(tmp_path, port, host_for(app))
    argv = bk.backup_argv(remote, DID, protect="20250101T000000Z-0000")
    assert argv == ("sh", "-c", hs.script("backup"), "conveyor-backup", "/srv/backups",
                    f"notes-prod-{DID}", "notes-prod-db", "notes", "notes", "3",
                    r"^notes-prod-[0-9]{8}T[0-9]{6}Z-[0-9a-f]{4}[.]dump$",
                    "notes-prod-20250101T000000Z-0000")
    # nothing to protect: the last argument is empty (the script's $8)
    assert bk.backup_argv(remote, DID) == (
        "sh", "-c", hs.script("backup"), "conveyor-backup", "/srv/backups", f"notes-prod-{DID}",
        "notes-prod-db", "notes", "notes", "3",
        r"^notes-prod-[0-9]{8}T[0-9]{6}Z-[0-9a-f]{4}[.]dump$", "")


# --------------------------------------------------------------------------- lint


def test_a_destructive_migration_stops_before_anything_stops(tmp_path, app_server):
    port, app = app_server
    files = {**V1, "2026-03-01-000001_drop": {"up.sql": "DROP TABLE notes;\n",
                                               "down.sql": "SELECT 1;\n"}}
    host = host_for(app, files=files)
    _remote, dep = plan(tmp_path, port, host)
    result = run_deployment(dep, lambda e: None)
    assert isinstance(result.error, LintBlocked)
    assert "ban-drop-table" in str(result.error) and "--allow-destructive" in result.error.hint
    assert host.names() == ["lock", "files", "record"]
    assert app.serving == "old"
    out = dep.state.outcome
    assert out["failed_step"] == "plan"
    assert out["lines"] == [("Nothing was stopped: the previous version kept serving "
                            "throughout, and the database was not changed.")]
    assert dep.record.details["lint"]["summary"]["destructive"] == 1


def test_allow_destructive_goes_on_after_the_backup(tmp_path, app_server):
    port, app = app_server
    files = {**V1, "2026-03-01-000001_drop": {"up.sql": "DROP TABLE notes;\n",
                                               "down.sql": "SELECT 1;\n"}}
    host = host_for(app, files=files)
    _remote, dep = plan(tmp_path, port, host, allow_destructive=True)
    result = run_deployment(dep, lambda e: None)
    assert result.ok, result.error
    assert "backup" in host.names()


def test_a_database_ahead_of_the_image_is_refused_before_stopping(tmp_path, app_server):
    port, app = app_server
    host = host_for(app, files=V1, applied=APPLIED_V2)
    _remote, dep = plan(tmp_path, port, host)
    result = run_deployment(dep, lambda e: None)
    assert isinstance(result.error, DatabaseAhead)
    assert "20260201000001" in str(result.error)
    assert "stop" not in host.names()


# --------------------------------------------------------------------------- failures


def test_a_failing_migration_restarts_the_old_container_and_says_the_schema_is_unchanged(
        tmp_path, app_server):
    port, app = app_server
    host = host_for(app)
    failure = {"ok": False, "error": "MigrationFailed", "name": "2026-02-01-000001_add_color",
               "rolled_back": True, "message": "boom",
               "text": "Migration 2026-02-01-000001_add_color failed: boom. The migration ran in "
                       "a transaction, which was rolled back"}
    host.on("migrate", rc=1, out=engine.RESULT_MARK + json.dumps(failure) + "\n")
    _remote, dep = plan(tmp_path, port, host)
    result = run_deployment(dep, lambda e: None)
    assert isinstance(result.error, MigrationStepFailed)
    assert "boom" in str(result.error)
    assert host.names()[:10] == ["lock", "files", "backup", "prepare", "stop", "copy-out",
                                 "migrate", "start-old", "rm-next", "applied"]
    assert host.names()[-1] == "record"
    assert app.serving == "old"
    out = dep.state.outcome
    assert out["failed_step"] == "migrate"
    assert any("serving again" in line for line in out["lines"])
    assert any("schema is unchanged" in line for line in out["lines"])
    assert out["commands"] == []
    statuses = {s["name"]: s["status"] for s in dep.record.steps}
    assert statuses["stop"] == "undone" and statuses["migrate"] == "failed"
    assert dep.record.details["outcome"]["failed_step"] == "migrate"


def test_a_partial_migration_failure_names_what_stays_applied(tmp_path, app_server):
    port, app = app_server
    host = host_for(app)
    failure = {"ok": False, "error": "MigrationFailed", "rolled_back": True, "message": "x"}
    host.on("migrate", rc=1, out=engine.RESULT_MARK + json.dumps(failure) + "\n")
    host.on("applied", out=APPLIED_V2 + "\n")  # the first of two committed before the failure
    _remote, dep = plan(tmp_path, port, host)
    run_deployment(dep, lambda e: None)
    out = dep.state.outcome
    assert any("committed before the failure stay applied: 20260201000001" in line
               for line in out["lines"])
    assert out["commands"][0].startswith(
        "conveyor rollback prod --to 20251201T000000Z-0001 --migrations")


def test_a_health_check_that_never_passes_puts_the_old_version_back(tmp_path, app_server):
    port, app = app_server
    app.new_status = 500
    host = host_for(app)
    _remote, dep = plan(tmp_path, port, host)
    result = run_deployment(dep, lambda e: None)
    assert isinstance(result.error, HealthCheckFailed)
    names = host.names()
    i = names.index("start")
    assert "fallback" in names[i:] and names.index("fallback") < names.index("start-old")
    assert app.serving == "old"
    out = dep.state.outcome
    assert out["failed_step"] == "health"
    text = "\n".join(out["lines"])
    assert "The previous version is serving again" in text
    assert "stay applied: 2026-02-01-000001_add_color" in text and "must cope" in text
    assert "kept (stopped) as notes-prod-app-failed" in text
    assert out["commands"][0].startswith(
        "conveyor rollback prod --to 20251201T000000Z-0001 --migrations")
    assert any(c.startswith(f"conveyor restore prod {DID}") for c in out["commands"])
    assert dep.state.fallback["ok"] is True


def test_a_failing_validation_puts_the_old_version_back(tmp_path, app_server):
    port, app = app_server
    host = host_for(app)
    _remote, dep = plan(tmp_path, port, host, validate_ok=False)
    result = run_deployment(dep, lambda e: None)
    assert isinstance(result.error, ValidationFailed)
    assert "exited 1" in str(result.error)
    assert app.serving == "old"
    assert dep.state.outcome["failed_step"] == "validate"
    assert dep.record.result == "failed"
    assert dep.record.details["validation"]["ok"] is False


def test_the_first_deployment_has_nothing_to_fall_back_to(tmp_path, app_server):
    port, app = app_server
    app.serving = "none"
    app.new_status = 500
    host = host_for(app, current=False, applied="::unknown::")
    # no Diesel table yet: the lock step could not read it; psql in the database container
    # says so (nothing applied), no engine container runs for the status
    host.on("applied", rc=1, err=NO_TABLE)
    _remote, dep = plan(tmp_path, port, host)
    result = run_deployment(dep, lambda e: None)
    assert isinstance(result.error, HealthCheckFailed)
    assert dep.record.details["pending"] == list(V2)
    names = host.names()
    assert "engine" not in names  # the status: psql and the image's files, no container
    assert names.index("files") < names.index("applied") < names.index("backup")
    assert names.index("copy-out") + 1 == names.index("migrate")
    psql = next(a for a, _ in host.calls if kind(a) == "applied")
    assert psql == ("docker", "exec", "notes-prod-db", "psql", "-XAtq", "-v", "ON_ERROR_STOP=1",
                    "-U", "notes", "-d", "notes", "-c", engine.APPLIED_SQL)
    parked = [a for a, _ in host.calls if "docker rename notes-prod-app notes-prod-app-failed"
              in " ".join(a)]
    assert parked, host.names()  # the failing new container is stopped, kept as -failed
    assert not [a for a, _ in host.calls if kind(a) in ("stop", "start-old")]
    out = dep.state.outcome
    assert any("no previous version" in line for line in out["lines"])


def test_the_status_of_a_managed_database_reads_rows_by_psql_and_runs_no_container(tmp_path,
                                                                                   app_server):
    from conveyor.migrations import discover
    from conveyor.remote_status import migration_status

    port, app = app_server
    d = tmp_path / "m"
    for name, contents in V2.items():
        (d / name).mkdir(parents=True)
        for f, text in contents.items():
            (d / name / f).write_text(text)
    checksum = {m.version: m.checksum for m in discover(d)}
    # V1's migration applied as it is in the image, and one the image does not have
    rows = (f"20260101000001 20260101000001 {checksum['20260101000001']}\n"
            "20251201000001 20251201000001 " + "2" * 64 + "\n")
    host = host_for(app).on("applied", out=rows)
    remote = Remote(make_config(tmp_path, port), "prod", transport_factory=lambda r: host)
    status = migration_status(remote, NEW)
    assert host.names() == ["files", "applied"]  # no copy out, no engine container
    assert status["ok"] is True
    assert [(a["version"], a["state"]) for a in status["applied"]] == [
        ("20260101000001", "applied"), ("20251201000001", "missing")]
    assert status["pending"] == [{"version": "20260201000001",
                                  "name": "2026-02-01-000001_add_color"}]
    assert [(p["kind"], p["version"]) for p in status["drift"]] == [("missing", "20251201000001")]
    # an applied migration edited since: drift; no Diesel table yet: nothing applied
    host.on("applied", out=APPLIED_V1 + "\n")
    assert [p["kind"] for p in migration_status(remote, NEW)["drift"]] == ["edited"]
    host.on("applied", rc=1, err=NO_TABLE)
    status = migration_status(remote, NEW)
    assert status["ok"] is True and status["applied"] == [] and len(status["pending"]) == 2
    # any other psql failure is unknown, not "nothing applied"
    host.on("applied", rc=2, err="psql: error: connection refused\n")
    status = migration_status(remote, NEW)
    assert status["ok"] is False and "cannot read the applied migrations" in status["error"]
    assert "engine" not in host.names() and "copy-out" not in host.names()


# --------------------------------------------------------------------------- which image


def test_the_default_image_is_the_newest_that_passed_dev(tmp_path, monkeypatch, app_server):
    port, _ = app_server
    cfg = make_config(tmp_path, port)
    passed = [{"id": "d1", "image": OLD, "result": "ok", "revision": "r1"},
              {"id": "d2", "image": NEW, "result": "ok", "revision": "r2"}]
    monkeypatch.setattr(promotion, "passed_images", lambda cfg, source, limit=1000: passed)
    ref, prov = promotion.choose_image(cfg, "prod", None)
    assert ref.ref == NEW and prov == {"source": "dev", "source_deployment": "d2",
                                       "source_at": None, "forced": False}
    ref, prov = promotion.choose_image(cfg, "prod", OLD)
    assert ref.ref == OLD and prov["source_deployment"] == "d1"


def test_an_image_that_never_passed_dev_needs_force(tmp_path, monkeypatch, app_server):
    port, _ = app_server
    cfg = make_config(tmp_path, port)
    monkeypatch.setattr(promotion, "passed_images", lambda cfg, source, limit=1000: [
        {"id": "d1", "image": OLD, "result": "ok"}])
    with pytest.raises(NotPromotable) as exc:
        promotion.choose_image(cfg, "prod", NEW)
    assert "has not passed dev" in str(exc.value) and "--force" in exc.value.hint
    ref, prov = promotion.choose_image(cfg, "prod", NEW, force=True)
    assert ref.ref == NEW and prov["forced"] is True and "FORCED" in prov["warning"]


def test_nothing_passed_dev_yet(tmp_path, monkeypatch, app_server):
    port, _ = app_server
    cfg = make_config(tmp_path, port)
    monkeypatch.setattr(promotion, "passed_images", lambda cfg, source, limit=1000: [])
    with pytest.raises(NotPromotable, match="nothing has passed dev"):
        promotion.choose_image(cfg, "prod", None)


# --------------------------------------------------------------------------- rollback


def history_lines(*entries: dict) -> str:
    return "".join(json.dumps(e) + "\n" for e in entries)


def test_rollback_goes_to_the_image_before_the_serving_ones_deployment(tmp_path, app_server):
    port, app = app_server
    host = FakeProdHost(app)
    v0 = "127.0.0.1:5000/notes@sha256:" + "00" * 32
    host.on("history", out=history_lines(
        {"id": "20260101T000000Z-0000", "kind": "promote", "result": "ok", "image": v0},
        {"id": "20260102T000000Z-0001", "kind": "promote", "result": "ok", "image": OLD,
         "previous_image": v0},
        {"id": "20260103T000000Z-0002", "kind": "promote", "result": "failed", "image": NEW,
         "previous_image": OLD}))
    host.on("labels", out=json.dumps({"conveyor.image": OLD}) + "\n")
    cfg = make_config(tmp_path, port)
    remote = Remote(cfg, "prod", transport_factory=lambda r: host)
    ref, info = rollback_target(remote, None)
    assert ref.ref == v0 and info == {"from_deployment": "20260102T000000Z-0001",
                                      "to": "20260101T000000Z-0000"}
    ref, info = rollback_target(remote, "20260102T000000Z-0001")
    assert ref.ref == OLD
    with pytest.raises(NoRollbackTarget, match="did not succeed"):
        rollback_target(remote, "20260103T000000Z-0002")
    host.on("labels", out=json.dumps({"conveyor.image": v0}) + "\n")
    with pytest.raises(NoRollbackTarget, match="first one"):
        rollback_target(remote, None)


def test_rollback_with_migrations_reverts_through_the_image_that_has_them(tmp_path, app_server):
    port, app = app_server
    host = host_for(app, files=V1, applied=APPLIED_V2)
    # the serving image (OLD in the lock output) has V2's migrations; the target has V1's
    calls = {"n": 0}
    orig = host.run

    def run(argv, **kw):
        if kind(tuple(argv)) == "files":
            calls["n"] += 1
            host.answers["files"] = (0, tar_b64(V1 if calls["n"] == 1 else V2), "")
        return orig(argv, **kw)

    host.run = run
    reverted = {"ok": True, "applied": [], "reverted": [
        {"version": "20260201000001", "name": "2026-02-01-000001_add_color",
         "direction": "down", "duration_ms": 1.0}]}
    host.on("revert", out=engine.RESULT_MARK + json.dumps(reverted) + "\n")
    cfg = make_config(tmp_path, port)
    remote = Remote(cfg, "prod", transport_factory=lambda r: host)
    target = ImageRef.parse("127.0.0.1:5000/notes@sha256:" + "00" * 32)
    dep = rollback_plans(remote, target, ProdOptions(project_dir=tmp_path, migrations=True),
                         deployment_id=DID)
    assert [s.name for s in dep.main.steps] == ["lock", "pull", "plan", "backup", "prepare",
                                               "stop", "revert", "start", "health", "validate"]
    result = run_deployment(dep, lambda e: None)
    assert result.ok, result.error
    assert dep.state.revert == RevertPlan(versions=["20260201000001"], image=OLD,
                                          names=["2026-02-01-000001_add_color"])
    assert dep.state.revert.as_dict() == {"versions": ["20260201000001"], "image": OLD,
                                          "names": ["2026-02-01-000001_add_color"]}
    assert dep.record.details["revert_plan"] == dep.state.revert.as_dict()
    # the down.sql copied out of the image that has them (the serving one, OLD), then the
    # engine in the runner image with that directory mounted
    names = host.names()
    assert names.index("copy-out") + 1 == names.index("revert")
    copy_out, copy_in = next((a, i) for a, i in host.calls if kind(a) == "copy-out")
    assert copy_out == copy_out_argv(OLD, f"{RUN_DIR}/revert") and copy_in is None
    revert_argv, revert_in = next((a, i) for a, i in host.calls if kind(a) == "revert")
    assert revert_argv == engine_run_argv("revert", f"{RUN_DIR}/revert")
    assert not any(PASSWORD in a for a in revert_argv)
    # the driver's one header line: command "revert", the versions, the URL that never is in
    # argv; nothing after it
    head, _, rest = revert_in.partition(b"\n")
    assert rest == b""
    assert json.loads(head) == {
        "command": "revert",
        "database_url": f"postgresql://notes:{PASSWORD}@notes-prod-db:5432/notes",
        "migration_dir": "/migrations", "lock_timeout": json.loads(head)["lock_timeout"],
        "applied_by": "alice via conveyor rollback prod", "versions": ["20260201000001"]}
    assert dep.record.kind == "rollback"
    assert dep.state.migrations_reverted == ["2026-02-01-000001_add_color"]


def test_the_engine_header_carries_the_versions_to_revert():
    url = f"postgresql://notes:{PASSWORD}@notes-prod-db:5432/notes"
    data = engine.engine_stdin("revert", url, lock_timeout=5.0, applied_by="alice",
                               versions=("20260201000001", "20260101000001"))
    head, _, rest = data.partition(b"\n")
    # the migrations are where the engine container mounts them
    assert json.loads(head) == {"command": "revert", "database_url": url,
                                "migration_dir": "/migrations", "lock_timeout": 5.0,
                                "applied_by": "alice",
                                "versions": ["20260201000001", "20260101000001"]}
    assert rest == b""  # one line: what `python -m conveyor.steps.migrate_driver` reads
    # without versions (run, status): no "versions" key
    data = engine.engine_stdin("run", url, lock_timeout=1.0, applied_by="a")
    assert json.loads(data) == {"command": "run", "database_url": url,
                                "migration_dir": "/migrations", "lock_timeout": 1.0,
                                "applied_by": "a"}
    assert data.endswith(b"\n") and data.count(b"\n") == 1


class FakeMigrator:
    """conveyor.migrations.Migrator as the driver uses it: status().applied, revert(n)."""

    applied: ClassVar[list[str]] = ["20260101000001", "20260201000001",
                                    "20260301000001"]  # oldest first
    reverted: ClassVar[list[int]] = []

    def __init__(self, url, directory, *, lock_timeout, applied_by, on_event):
        self.on_event = on_event

    def status(self):
        step = type("A", (), {})
        rows = []
        for v in self.applied:
            a = step()
            a.version = v
            rows.append(a)
        return type("S", (), {"applied": rows})()

    def revert(self, n=1, *, all=False):
        FakeMigrator.reverted.append(n)
        gone = list(reversed(self.applied))[:n]
        return type("R", (), {"to_dict": lambda self: {"applied": [], "reverted": [
            {"version": v, "name": v, "direction": "down"} for v in gone]}})()


def run_driver(monkeypatch, capsys, header):
    import conveyor.migrations

    FakeMigrator.reverted = []
    monkeypatch.setattr(conveyor.migrations, "Migrator", FakeMigrator)
    rc = migrate_driver.main({"database_url": "postgresql://x", "migration_dir": "/m", **header})
    lines = capsys.readouterr().out.splitlines()
    assert lines[-1].startswith(migrate_driver.RESULT_MARK)
    return rc, json.loads(lines[-1][len(migrate_driver.RESULT_MARK):])


def test_the_driver_reverts_exactly_the_given_newest_versions(monkeypatch, capsys):
    rc, out = run_driver(monkeypatch, capsys, {"command": "revert",
                                               "versions": ["20260301000001", "20260201000001"]})
    assert rc == 0 and FakeMigrator.reverted == [2]
    assert out == {"ok": True, "applied": [], "reverted": [
        {"version": "20260301000001", "name": "20260301000001", "direction": "down"},
        {"version": "20260201000001", "name": "20260201000001", "direction": "down"}]}


def test_the_driver_reverts_nothing_when_the_versions_are_not_the_newest(monkeypatch, capsys):
    rc, out = run_driver(monkeypatch, capsys, {"command": "revert",
                                               "versions": ["20260201000001"]})
    assert rc == 1 and FakeMigrator.reverted == []
    assert out["ok"] is False and out["error"] == "NotNewest"
    assert "nothing was reverted" in out["message"]
    # the right ones in the wrong order are not the newest either
    rc, out = run_driver(monkeypatch, capsys, {"command": "revert",
                                               "versions": ["20260201000001", "20260301000001"]})
    assert rc == 1 and FakeMigrator.reverted == [] and out["error"] == "NotNewest"


def test_rollback_without_migrations_leaves_them_and_says_so(tmp_path, app_server):
    port, app = app_server
    host = host_for(app, files=V1, applied=APPLIED_V2)
    cfg = make_config(tmp_path, port)
    remote = Remote(cfg, "prod", transport_factory=lambda r: host)
    target = ImageRef.parse("127.0.0.1:5000/notes@sha256:" + "00" * 32)
    dep = rollback_plans(remote, target, ProdOptions(project_dir=tmp_path),
                         deployment_id=DID)
    assert "revert" not in [s.name for s in dep.main.steps]
    result = run_deployment(dep, lambda e: None)
    assert result.ok, result.error
    plan_out = next(s for s in dep.record.steps if s["name"] == "plan")["output"]
    assert any("stay applied: 20260201000001" in line for line in plan_out)


def test_errors_have_distinct_exit_codes():
    codes = {c: c.exit_code for c in (ValidationFailed, NotPromotable, LintBlocked,
                                      NoRollbackTarget, BackupFailed, RestoreFailed,
                                      MigrationStepFailed, HealthCheckFailed, LockHeld,
                                      DatabaseAhead)}
    assert len(set(codes.values())) == 10
    assert {c.__name__: code for c, code in codes.items()} == {
        "ValidationFailed": 10, "NotPromotable": 11, "LintBlocked": 12, "BackupFailed": 13,
        "RestoreFailed": 14, "NoRollbackTarget": 15, "MigrationStepFailed": 8,
        "HealthCheckFailed": 9, "LockHeld": 18, "DatabaseAhead": 16}
    assert all(issubclass(c, ConveyorError) for c in codes)
