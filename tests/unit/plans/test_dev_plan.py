"""The dev stage's plan (conveyor.plans.dev) against a fake host (unit tests only): which
commands run in which order, what --dry-run shows, where secrets go, and what happens on each
failure; and the small pieces its steps are made of."""

from __future__ import annotations

import http.server
import json
import shlex
import textwrap
import threading
from pathlib import Path

import pytest

from conveyor import host as host_scripts
from conveyor.config import load_config
from conveyor.errors import (
    CommandFailed,
    ConfigError,
    ConveyorError,
    HealthCheckFailed,
    LockHeld,
    MigrationStepFailed,
)
from conveyor.imageref import REVISION_LABEL, ImageRef
from conveyor.plan import execute
from conveyor.plans.deployment import run_deployment
from conveyor.plans.dev import deploy_plans
from conveyor.plans.setup import setup_plan, setup_state
from conveyor.state.deploy import DeployOptions
from conveyor.steps import migrate_engine
from conveyor.steps.app import app_run_argv, replace_argv
from conveyor.steps.lock import describe_holder
from conveyor.steps.tests import is_pytest, junit_summary
from conveyor.targets.remote import Remote, env_file
from conveyor.transport import Result, Transport

DIGEST = "sha256:" + "ab" * 32
PASSWORD = "s3cret-pw-xyz"
DID = "20260101T000000Z-abcd"
RUNNER = "127.0.0.1:5000/conveyor-runner:0.0.0-test"  # CONVEYOR_RUNNER_IMAGE in env_secrets
LABELS = ("--label", "conveyor.app=notes", "--label", "conveyor.env=dev")
#: where the run keeps the migrations copied out of the image, on the host
RUN_MIGRATIONS = f"/srv/conveyor/notes/dev/runs/{DID}/migrations"
#: the image's migrations copied out (never run) into the run's directory
COPY_OUT_ARGV = ("sh", "-c", host_scripts.script("copy_out"), "conveyor-copy-out",
                 f"127.0.0.1:5000/notes@{DIGEST}", "/app/migrations", RUN_MIGRATIONS,
                 *LABELS, "--label", "conveyor.role=inspect", "--label", "conveyor.test=1")
#: conveyor's engine in a temporary container of the runner image, the migrations mounted
MIGRATE_ARGV = ("docker", "run", "--rm", "--interactive",
                "--name", "notes-dev-migrate-20260101t000000z-abcd", "--network", "notes-dev",
                "--volume", f"{RUN_MIGRATIONS}:/migrations:ro", *LABELS,
                "--label", "conveyor.role=migrate", "--label", "conveyor.test=1",
                "--label", f"conveyor.deployment={DID}", "--entrypoint", "python", RUNNER,
                "-m", "conveyor.steps.migrate_driver")


class FakeHost(Transport):
    """Records every argv; answers from rules (first match wins), else exit 0, no output."""

    name = "fake"

    def __init__(self) -> None:
        self.calls: list[tuple[tuple[str, ...], bytes | str | None]] = []
        self.rules: list = []
        self.closed = False

    def on(self, match, rc=0, out="", err=""):
        self.rules.append((match, lambda argv, inp: (rc, out, err)))
        return self

    def run(self, argv, *, input=None, timeout=None, check=True, stream=None, env=None):
        argv = tuple(str(a) for a in argv)
        self.calls.append((argv, input))
        rc, out, err = 0, "", ""
        for match, handler in self.rules:
            if match(argv):
                rc, out, err = handler(argv, input)
                break
        if stream:
            for line in out.splitlines():
                stream(line)
        if check and rc:
            raise CommandFailed(argv, rc, err or out, host=self.name)
        return Result(argv, rc, out, err, 0.0, host=self.name)

    def close(self):
        self.closed = True

    def names(self) -> list[str]:
        return [kind(a) for a, _ in self.calls]


def kind(argv) -> str:
    text = " ".join(argv)
    for name in ("lock", "record", "unlock", "copy_out"):
        if len(argv) > 2 and argv[2] == host_scripts.script(name):
            return name
    if "docker pull" in text:
        return "pull"
    if argv[:2] == ("docker", "run") and argv[-2:] == ("-m", "conveyor.steps.migrate_driver"):
        return "migrate"
    if "docker run --detach --name notes-dev-app " in text:
        return "replace"
    if "notes-dev-app-previous notes-dev-app" in text:
        return "restore"
    if text.startswith("docker inspect --format {{json .State}}"):
        return "state"
    if text.startswith("docker logs"):
        return "logs"
    return text[:40]


def is_(name):
    return lambda argv: kind(argv) == name


@pytest.fixture
def health_server():
    """A real HTTP server on 127.0.0.1 whose /health answers `state['status']`."""
    state = {"status": 200}

    class H(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(state["status"])
            self.end_headers()
            self.wfile.write(b'{"status": "ok"}')

        def log_message(self, *a):
            pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
    threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.02},
                     daemon=True).start()
    yield srv.server_address[1], state
    srv.shutdown()


def make_config(tmp_path: Path, port: int, *, test_command=None, migrations_command=None,
                health_timeout=1.0):
    (tmp_path / "known_hosts").write_text("")
    test_cmd = json.dumps(test_command or ["python3", "-c", "print('tests ok')"])
    mig = f"command = {json.dumps(migrations_command)}" if migrations_command else ""
    (tmp_path / "conveyor.toml").write_text(textwrap.dedent(f"""
        [app]
        name = "notes"
        image = "notes"
        port = 8000
        [app.health]
        timeout = {health_timeout}
        interval = 0.05
        [app.secrets]
        API_TOKEN = {{ env = "NOTES_API_TOKEN" }}
        [migrations]
        {mig}
        [registry]
        address = "127.0.0.1:5000"
        [environments.dev]
        host = "root@10.0.0.5:22"
        known_hosts = "known_hosts"
        address = "127.0.0.1"
        port = {port}
        test_command = {test_cmd}
        state_dir = "/srv/conveyor"
        labels = {{ "conveyor.test" = "1" }}
        [environments.dev.database]
        kind = "container"
        image = "postgres:15"
        name = "notes"
        user = "notes"
        password = {{ env = "NOTES_DEV_DB_PASSWORD" }}
    """))
    return load_config(tmp_path)


@pytest.fixture
def env_secrets(monkeypatch):
    monkeypatch.setenv("NOTES_DEV_DB_PASSWORD", PASSWORD)
    monkeypatch.setenv("NOTES_API_TOKEN", "tok-123456")
    monkeypatch.setenv("CONVEYOR_ACTOR", "alice")
    monkeypatch.setenv("CONVEYOR_RUNNER_IMAGE", RUNNER)


def lock_output(current: bool = True, db: bool = True, applied: str = "::unknown::") -> str:
    app = {"Name": "/notes-dev-app",
           "Config": {"Image": "old", "Labels": {"conveyor.image": "127.0.0.1:5000/notes@"
                                                 + "sha256:" + "cd" * 32,
                                                 REVISION_LABEL: "oldrev"}}}
    dbc = {"Name": "/notes-dev-db", "State": {"Running": True, "Status": "running"}}
    return ("::containers::\n" + (json.dumps(app) + "\n" if current else "")
            + (json.dumps(dbc) + "\n" if db else "") + "::applied::\n" + applied + "\n"
            + "::image::\n::missing::\n")


def healthy_host(current: bool = True, applied: str = "::unknown::",
                 image_labels: dict | None = None) -> FakeHost:
    host = FakeHost()
    host.on(is_("lock"), out=lock_output(current, applied=applied))
    host.on(is_("pull"), out=json.dumps({REVISION_LABEL: "newrev", **(image_labels or {})})
            + "\n")
    result = {"ok": True, "applied": [{"version": "2", "name": "2_add", "direction": "up",
                                       "duration_ms": 1.0}], "reverted": []}
    host.on(is_("migrate"), out="applying 2_add ...\napplied 2_add (1 ms)\n"
            + migrate_engine.RESULT_MARK + json.dumps(result) + "\n")
    host.on(is_("replace"), out="0123456789abcdef\n")
    return host


def plan_for(tmp_path, port, host, **kw):
    cfg = make_config(tmp_path, port, **{k: v for k, v in kw.items()
                                         if k in ("test_command", "migrations_command",
                                                  "health_timeout")})
    remote = Remote(cfg, "dev", transport_factory=lambda r: host)
    image = ImageRef("127.0.0.1:5000/notes", DIGEST, "newrev-local")
    dep = deploy_plans(remote, image, DeployOptions(project_dir=tmp_path,
                                                          junit=kw.get("junit")),
                          deployment_id=DID)
    return remote, dep


def events_sink():
    events: list[dict] = []
    return events, events.append


# --------------------------------------------------------------------------- happy path


def test_deploy_runs_steps_in_order_in_few_round_trips(tmp_path, env_secrets, health_server):
    port, _ = health_server
    host = healthy_host()
    _, dep = plan_for(tmp_path, port, host)
    assert [s.name for s in dep.main.steps] == ["lock", "pull", "migrate", "replace", "health",
                                               "test"]
    _, emit = events_sink()
    result = run_deployment(dep, emit)
    assert result.ok, result.error
    assert host.names() == ["lock", "pull", "copy_out", "migrate", "replace", "record"]
    copy_out, migrate = (a for a, _ in host.calls if kind(a) in ("copy_out", "migrate"))
    assert copy_out == COPY_OUT_ARGV
    assert migrate == MIGRATE_ARGV
    rec = dep.record
    assert rec.result == "ok"
    assert rec.migrations_applied == ["2_add"]
    assert rec.revision == "newrev"
    assert rec.previous_revision == "oldrev"
    assert rec.who == "alice"
    assert rec.tests["ok"] is True
    assert [s["name"] for s in rec.steps] == ["lock", "pull", "migrate", "replace", "health",
                                              "test"]


def test_the_record_is_written_redacted_and_releases_our_lock(tmp_path, env_secrets,
                                                               health_server):
    port, _ = health_server
    host = healthy_host()
    _, dep = plan_for(tmp_path, port, host)
    run_deployment(dep, lambda e: None)
    argv, data = next((a, i) for a, i in host.calls if kind(a) == "record")
    assert argv == ("sh", "-c", host_scripts.script("record"), "conveyor-record",
                    "/srv/conveyor/notes/dev", dep.record.id, dep.record.id)
    line, _, body = data.partition("\n")
    assert json.loads(line)["id"] == dep.record.id
    assert json.loads(body)["steps"][2]["output"] == ["applying 2_add ...",
                                                      "applied 2_add (1 ms)"]
    assert PASSWORD not in data and "tok-123456" not in data


def test_database_url_and_secrets_travel_on_stdin_only(tmp_path, env_secrets, health_server):
    port, _ = health_server
    host = healthy_host()
    _, dep = plan_for(tmp_path, port, host)
    run_deployment(dep, lambda e: None)
    for argv, _ in host.calls:
        assert not any(PASSWORD in a or "tok-123456" in a for a in argv), argv
    assert next(i for a, i in host.calls if kind(a) == "copy_out") is None
    migrate_argv, migrate_in = next((a, i) for a, i in host.calls if kind(a) == "migrate")
    assert migrate_argv == MIGRATE_ARGV
    head, nl, rest = migrate_in.partition(b"\n")
    assert nl == b"\n" and rest == b""  # the driver's one header line, nothing after it
    header = json.loads(head)
    assert header == {"command": "run",
                      "database_url": f"postgresql://notes:{PASSWORD}@notes-dev-db:5432/notes",
                      "migration_dir": "/migrations", "lock_timeout": header["lock_timeout"],
                      "applied_by": "alice via conveyor deploy dev"}
    env_in = next(i for a, i in host.calls if kind(a) == "replace")
    assert f"DATABASE_URL=postgresql://notes:{PASSWORD}@notes-dev-db:5432/notes" in env_in
    assert "API_TOKEN=tok-123456" in env_in


def test_dry_run_description_has_every_step_and_no_secret(tmp_path, env_secrets,
                                                          health_server):
    port, _ = health_server
    host = FakeHost()
    _, dep = plan_for(tmp_path, port, host)
    text = json.dumps(dep.describe())
    assert host.calls == []  # describing runs nothing
    assert [d["step"] for d in dep.describe()] == ["lock", "pull", "migrate", "replace",
                                                   "health", "test", "record (always)"]
    assert PASSWORD not in text and "tok-123456" not in text
    assert f"docker pull 127.0.0.1:5000/notes@{DIGEST}" in text
    assert "--restart unless-stopped" in text and f"--publish 127.0.0.1:{port}:8000" in text
    assert "--label conveyor.test=1" in text
    migrate = next(d for d in dep.describe() if d["step"] == "migrate")["commands"]
    assert migrate[0] == shlex.join(host_scripts.shown(COPY_OUT_ARGV))
    assert migrate[1] == shlex.join(MIGRATE_ARGV).replace(
        RUNNER, shlex.quote("<conveyor's runner image>"))
    assert migrate[2].startswith("stdin: a JSON header with DATABASE_URL (never in argv)")
    # host scripts are named by their summary, not printed in full
    assert f"<lock script: {host_scripts.SUMMARIES['lock']}>" in text
    assert f"<record script: {host_scripts.SUMMARIES['record']}>" in text
    assert json.dumps(host_scripts.script("lock")) not in text


def test_app_container_argv(tmp_path, env_secrets, health_server):
    port, _ = health_server
    cfg = make_config(tmp_path, port)
    remote = Remote(cfg, "dev", transport_factory=lambda r: FakeHost())
    image = ImageRef("127.0.0.1:5000/notes", DIGEST)
    assert app_run_argv(remote, image, "ID", "rev1") == (
        "docker", "run", "--detach", "--name", "notes-dev-app", "--network", "notes-dev",
        "--restart", "unless-stopped", "--stop-timeout", "10",
        "--env-file", "/srv/conveyor/notes/dev/app.env", "--publish", f"127.0.0.1:{port}:8000",
        "--label", "conveyor.app=notes", "--label", "conveyor.env=dev",
        "--label", "conveyor.role=app", "--label", "conveyor.test=1",
        "--label", "conveyor.deployment=ID", "--label", f"conveyor.image=127.0.0.1:5000/notes@{DIGEST}",
        "--label", "org.opencontainers.image.revision=rev1",
        f"127.0.0.1:5000/notes@{DIGEST}")
    write_env = ("umask 077 && mkdir -p /srv/conveyor/notes/dev && cat > "
                 "/srv/conveyor/notes/dev/app.env && { docker rm --force notes-dev-app-previous "
                 ">/dev/null 2>&1 ; } && ")
    first = replace_argv(remote, ("docker", "run", "x"), has_current=False)
    assert first == ("sh", "-c", write_env + "docker run x")
    assert "docker stop" not in first[2] and first[2].endswith("docker run x")
    again = replace_argv(remote, ("docker", "run", "x"), has_current=True)
    # the older -previous is removed while the serving container stops; the rename waits
    assert again == ("sh", "-c", ("umask 077 && mkdir -p /srv/conveyor/notes/dev && cat > "
                     "/srv/conveyor/notes/dev/app.env && { docker rm --force "
                     "notes-dev-app-previous >/dev/null 2>&1 & } && docker stop --time 10 "
                     "notes-dev-app >/dev/null && wait && docker rename notes-dev-app "
                     "notes-dev-app-previous && docker run x"))


# a fake docker: `rm` and `stop` each wait (bounded) until the other has started, and say
# whether they met; `rename` says whether the `rm` had finished; `run` prints an id
OVERLAP_DOCKER = r"""#!/bin/sh
d=$FAKE_DIR
echo "$1" >> "$d/calls"
meet() {
  touch "$d/$1-started"; i=0
  while [ ! -e "$d/$2-started" ] && [ $i -lt 100 ]; do sleep 0.05; i=$((i + 1)); done
  [ $i -lt 100 ] && echo "$1 met $2" >> "$d/seen" || echo "$1 alone" >> "$d/seen"
}
case $1 in
  rm) meet rm stop; touch "$d/rm-done" ;;
  stop) meet stop rm ;;
  rename) [ -e "$d/rm-done" ] && echo "rename after rm" >> "$d/seen" ;;
  run) echo 0123456789abcdef ;;
esac
"""


def test_replace_removes_the_older_previous_while_the_app_stops(tmp_path, env_secrets,
                                                                health_server):
    """The script itself, in sh: the older -previous is removed while the serving container
    stops (they overlap), and the rename comes after both."""
    import subprocess

    port, _ = health_server
    remote = Remote(make_config(tmp_path, port), "dev", transport_factory=lambda r: FakeHost())
    fake = tmp_path / "fake"
    (fake / "bin").mkdir(parents=True)
    (fake / "bin" / "docker").write_text(OVERLAP_DOCKER)
    (fake / "bin" / "docker").chmod(0o755)
    argv = replace_argv(remote, ("docker", "run", "x"), has_current=True)
    script = argv[2].replace("/srv/conveyor", str(tmp_path / "state"))

    r = subprocess.run(["sh", "-c", script], input=b"A=1\n", capture_output=True, timeout=60,
                       env={"PATH": f"{fake / 'bin'}:/usr/bin:/bin", "FAKE_DIR": str(fake)},
                       check=False)

    assert (r.returncode, r.stdout) == (0, b"0123456789abcdef\n")
    assert sorted((fake / "seen").read_text().splitlines()) == [
        "rename after rm", "rm met stop", "stop met rm"]
    assert (fake / "calls").read_text().split()[-2:] == ["rename", "run"]
    assert (tmp_path / "state" / "notes" / "dev" / "app.env").read_bytes() == b"A=1\n"


# --------------------------------------------------------------------------- failures


def test_lock_held_is_refused_naming_the_holder_and_nothing_else_runs(tmp_path, env_secrets,
                                                                      health_server):
    port, _ = health_server
    host = FakeHost().on(is_("lock"), rc=75, out=json.dumps(
        {"id": "X1", "who": "bob@ci", "since": "2026-01-01T00:00:00Z", "what": "deploy dev"}))
    _, dep = plan_for(tmp_path, port, host)
    result = run_deployment(dep, lambda e: None)
    assert isinstance(result.error, LockHeld)
    assert "bob@ci" in str(result.error) and "X1" in str(result.error)
    assert result.error.exit_code == 18
    assert host.names() == ["lock"]  # no record, and the other holder's lock is left alone


def test_a_failing_migration_stops_before_the_app_is_touched(tmp_path, env_secrets,
                                                             health_server):
    port, _ = health_server
    host = healthy_host()
    host.rules.insert(0, (is_("migrate"), lambda a, i: (
        1, "applying 2_add ...\n" + migrate_engine.RESULT_MARK + json.dumps(
            {"ok": False, "error": "MigrationFailed",
             "message": "2_add/up.sql line 1: syntax error"}) + "\n", "")))
    _, dep = plan_for(tmp_path, port, host)
    result = run_deployment(dep, lambda e: None)
    assert isinstance(result.error, MigrationStepFailed)
    assert result.error.exit_code == 8
    assert "syntax error" in str(result.error) and "previous version keeps serving" in \
        result.error.hint
    assert "replace" not in host.names() and "restore" not in host.names()
    assert host.names()[-1] == "record"  # recorded, lock released
    assert dep.record.result == "failed"


def test_migrations_that_cannot_be_copied_out_stop_before_the_engine_and_the_app(
        tmp_path, env_secrets, health_server):
    port, _ = health_server
    host = healthy_host()
    host.rules.insert(0, (is_("copy_out"), lambda a, i: (
        1, "", "Error response from daemon: Could not find the file /app/migrations\n")))
    _, dep = plan_for(tmp_path, port, host)
    result = run_deployment(dep, lambda e: None)
    assert isinstance(result.error, MigrationStepFailed)
    assert result.error.exit_code == 8
    assert f"cannot copy the migrations out of 127.0.0.1:5000/notes@{DIGEST}" in \
        str(result.error)
    assert "(/app/migrations)" in str(result.error) and "Could not find the file" in \
        str(result.error)
    assert "migrations.container_dir" in result.error.hint
    assert host.names() == ["lock", "pull", "copy_out", "record"]  # no engine, app untouched
    assert dep.record.result == "failed"


def test_a_failing_health_check_restores_the_previous_container(tmp_path, env_secrets,
                                                                health_server):
    port, state = health_server
    state["status"] = 503
    host = healthy_host()
    host.on(is_("state"), out=json.dumps({"Status": "running"}) + " 0\n")
    host.on(is_("logs"), out="Traceback: boom\n")

    def restore(argv, stdin):  # the previous app answers again once it is back
        state["status"] = 200
        return 0, "", ""

    host.rules.insert(0, (is_("restore"), restore))
    _, dep = plan_for(tmp_path, port, host, health_timeout=0.3)
    result = run_deployment(dep, lambda e: None)
    assert isinstance(result.error, HealthCheckFailed)
    assert result.error.exit_code == 9
    names = host.names()
    assert names.index("replace") < names.index("logs") < names.index("restore")
    assert names[-1] == "record"
    health = next(s for s in dep.record.steps if s["name"] == "health")
    assert "[notes-dev-app] Traceback: boom" in health["output"]
    replace = next(s for s in dep.record.steps if s["name"] == "replace")
    assert replace["status"] == "undone"
    assert any(line.startswith("previous app: http://127.0.0.1:") for line in replace["output"])
    assert "test" not in [s["name"] for s in dep.record.steps]


def test_failing_tests_are_reported_without_rolling_back(tmp_path, env_secrets,
                                                         health_server):
    port, _ = health_server
    host = healthy_host()
    junit = tmp_path / "out" / "junit.xml"
    _, dep = plan_for(tmp_path, port, host, junit=junit,
                      test_command=["python3", "-c", ("import sys; print('bad'); "
                                                      "sys.exit(1)")])
    result = run_deployment(dep, lambda e: None)
    assert result.ok
    assert dep.record.result == "tests-failed"
    assert "restore" not in host.names()
    test = next(s for s in dep.record.steps if s["name"] == "test")
    assert test["status"] == "failed" and "bad" in test["output"]
    # not pytest: conveyor writes a one-case JUnit file for the command
    summary = junit_summary(junit)
    assert summary["tests"] == 1 and summary["failed"] == 1


def test_a_host_not_set_up_is_set_up_by_the_first_deploy(tmp_path, env_secrets, health_server):
    """No database container yet: the lock step does what `conveyor setup dev` does (network,
    volume, database, ready) and the deploy goes on."""
    port, _ = health_server
    host = healthy_host(current=False)
    host.rules.insert(0, (is_("lock"), lambda a, i: (0, lock_output(current=False, db=False), "")))
    _, dep = plan_for(tmp_path, port, host)
    result = run_deployment(dep, lambda e: None)
    assert result.ok, result.error
    texts = [" ".join(a) for a, _ in host.calls]
    lock_at = host.names().index("lock")
    network_at = next(i for i, t in enumerate(texts) if "docker network create" in t)
    ready_at = next(i for i, t in enumerate(texts) if "pg_isready" in t)
    assert lock_at < network_at < ready_at < host.names().index("pull")
    db_stdin = next(i for a, i in host.calls if "docker run --detach --name notes-dev-db" in " ".join(a))
    assert "POSTGRES_PASSWORD=" + PASSWORD in db_stdin  # the configured password, on stdin only
    assert any("set up dev" in n for n in result.steps[0].notes)
    assert host.names()[-1] == "record"


def test_a_database_without_a_password_gets_one_generated_on_the_host(tmp_path, env_secrets,
                                                                     health_server):
    port, _ = health_server
    make_config(tmp_path, port)
    cfg_file = tmp_path / "conveyor.toml"
    cfg_file.write_text(cfg_file.read_text().replace(
        'password = { env = "NOTES_DEV_DB_PASSWORD" }\n', ""))
    generated = "Gen3rated0Passw0rdOfThirtyTwoCh"
    host = healthy_host(current=False)
    host.rules.insert(0, (is_("lock"), lambda a, i: (0, lock_output(current=False, db=False), "")))
    asked = []

    def password(argv, inp):
        asked.append(argv[-1])
        return 0, generated + "\n", ""

    host.rules.insert(0, (lambda a: len(a) > 2 and a[2] == host_scripts.script("db_password"),
                          password))
    remote = Remote(load_config(tmp_path), "dev", transport_factory=lambda r: host)
    dep = deploy_plans(remote, ImageRef("127.0.0.1:5000/notes", DIGEST, "rev"),
                       DeployOptions(project_dir=tmp_path, run_tests=False))
    events: list = []
    result = run_deployment(dep, events.append)
    assert result.ok, result.error
    assert asked[0] == "create"  # setup generates it (kept on the host, 0600)
    db_stdin = next(i for a, i in host.calls if "docker run --detach --name notes-dev-db" in " ".join(a))
    assert "POSTGRES_PASSWORD=" + generated in db_stdin
    header = json.loads(next(i for a, i in host.calls if kind(a) == "migrate"))
    assert header["database_url"] == f"postgresql://notes:{generated}@notes-dev-db:5432/notes"
    for a, _ in host.calls:
        assert generated not in " ".join(a)  # never in an argv
    assert generated not in json.dumps(events)  # nor in what is shown


def test_user_migration_command_gets_the_url_from_a_removed_env_file(tmp_path, env_secrets,
                                                                     health_server):
    port, _ = health_server
    host = healthy_host()
    host.rules.insert(0, (lambda a: "diesel" in a, lambda a, i: (0, "done\n", "")))
    _, dep = plan_for(tmp_path, port, host,
                      migrations_command=["diesel", "migration", "run"])
    result = run_deployment(dep, lambda e: None)
    assert result.ok, result.error
    argv, stdin = next((a, i) for a, i in host.calls if "diesel" in a)
    env_path = "/srv/conveyor/notes/dev/migrate-20260101T000000Z-abcd.env"
    assert argv == (
        "sh", "-c", host_scripts.script("with_env_file"), "conveyor-with-env-file", env_path,
        "docker", "run", "--rm", "--name", "notes-dev-migrate-20260101t000000z-abcd",
        "--network", "notes-dev", "--env-file", env_path,
        "--label", "conveyor.app=notes", "--label", "conveyor.env=dev",
        "--label", "conveyor.role=migrate", "--label", "conveyor.test=1",
        "--label", "conveyor.deployment=20260101T000000Z-abcd",
        f"127.0.0.1:5000/notes@{DIGEST}", "diesel", "migration", "run")
    assert "trap 'rm -f \"$f\"' EXIT" in argv[2]
    assert stdin.decode().startswith("DATABASE_URL=postgresql://notes:")


# --------------------------------------------------------------------------- skip migrate


def test_no_migration_container_when_the_database_has_exactly_the_images_migrations(
        tmp_path, env_secrets, health_server):
    port, _ = health_server
    pairs = [("20260101000001", "a" * 64), ("20260102000001", "b" * 64)]
    fp = migrate_engine.fingerprint(pairs)
    rows = "\n".join(f"{v} {v} {c}" for v, c in pairs)
    host = healthy_host(applied=rows, image_labels={migrate_engine.FINGERPRINT_LABEL: fp})
    _, dep = plan_for(tmp_path, port, host)
    result = run_deployment(dep, lambda e: None)
    assert result.ok, result.error
    assert "migrate" not in host.names() and "copy_out" not in host.names()
    migrate = next(s for s in dep.record.steps if s["name"] == "migrate")
    assert "nothing to migrate" in migrate["notes"][0] and dep.record.migrations_applied == []
    lock_argv = host.calls[0][0]
    assert lock_argv == ("sh", "-c", host_scripts.script("lock"), "conveyor-lock",
                         "/srv/conveyor/notes/dev", "notes-dev-app", "notes-dev-db",
                         "notes", "notes", migrate_engine.APPLIED_SQL,
                         f"127.0.0.1:5000/notes@{DIGEST}")


def test_an_image_already_on_the_host_is_not_pulled_again(tmp_path, env_secrets,
                                                          health_server):
    port, _ = health_server
    host = healthy_host()
    host.rules.insert(0, (is_("lock"), lambda a, i: (0, lock_output() + "::image::\n" + json.dumps(
        {REVISION_LABEL: "present-rev"}) + "\n", "")))
    _, dep = plan_for(tmp_path, port, host)
    assert run_deployment(dep, lambda e: None).ok
    assert host.names() == ["lock", "copy_out", "migrate", "replace", "record"]
    pull = next(s for s in dep.record.steps if s["name"] == "pull")
    assert pull["notes"][0].startswith("already present")
    assert dep.record.revision == "present-rev"


def test_the_lock_step_takes_the_reads_started_for_it_once(tmp_path, env_secrets,
                                                           health_server):
    """The runner's reads started as it started (conveyor.runner.prefetch) are handed to the
    lock step's lock.sh ($8) when they are for exactly its arguments; a second try of the
    lock reads for itself."""
    from conveyor.steps.lock import lock_args

    port, _ = health_server
    host = healthy_host()
    remote, dep = plan_for(tmp_path, port, host)
    args = lock_args(remote, dep.state.image)
    host_scripts.reads_started("lock", [*args[1:6], "other@sha256:00"], "/tmp/not-these")
    host_scripts.reads_started("lock", args[1:], "/tmp/conveyor-reads-x")
    try:
        assert run_deployment(dep, lambda e: None).ok
        lock_calls = [argv for argv, _ in host.calls if argv[3:4] == ("conveyor-lock",)]
        assert lock_calls == [host_scripts.argv("lock", *args, "/tmp/conveyor-reads-x")]
        assert host_scripts.take_reads("lock", args[1:]) == ""
    finally:
        host_scripts.take_reads("lock", [*args[1:6], "other@sha256:00"])


@pytest.mark.parametrize("rows", [
    "20260101000001 20260101000001 " + "a" * 64,                      # one not applied yet
    "20260101000001 20260101000001 " + "a" * 64 + "\n20260102000001 - -",  # no checksum row
    "::unknown::",                                                     # cannot read the tables
])
def test_any_doubt_runs_the_migration_container(tmp_path, env_secrets, health_server, rows):
    port, _ = health_server
    pairs = [("20260101000001", "a" * 64), ("20260102000001", "b" * 64)]
    host = healthy_host(applied=rows, image_labels={
        migrate_engine.FINGERPRINT_LABEL: migrate_engine.fingerprint(pairs)})
    _, dep = plan_for(tmp_path, port, host)
    assert run_deployment(dep, lambda e: None).ok
    names = host.names()
    assert names.index("copy_out") + 1 == names.index("migrate")


def test_applied_fingerprint_needs_both_tables_and_checksums():
    assert migrate_engine.applied_fingerprint([]) == migrate_engine.fingerprint([])
    assert migrate_engine.applied_fingerprint(["1 1 x"]) == migrate_engine.fingerprint(
        [("1", "x")])
    assert migrate_engine.applied_fingerprint(["1 - -"]) is None
    assert migrate_engine.applied_fingerprint(["- 1 x"]) is None
    assert migrate_engine.fingerprint([("2", "b"), ("1", "a")]) == \
        migrate_engine.fingerprint([("1", "a"), ("2", "b")])


# --------------------------------------------------------------------------- setup


def test_setup_plan_creates_once_and_never_recreates(tmp_path, env_secrets, health_server):
    port, _ = health_server
    host = FakeHost().on(lambda a: "docker start notes-dev-db" in " ".join(a),
                         out="postgres:15 running\n")
    cfg = make_config(tmp_path, port)
    remote = Remote(cfg, "dev", transport_factory=lambda r: host)
    plan = setup_plan(remote)
    assert [s.name for s in plan.steps] == ["network", "volume", "database", "ready"]
    text = json.dumps(plan.describe())
    assert PASSWORD not in text
    assert plan.steps[0].describe[0][2].startswith(
        "docker network inspect --format '{{.Name}}' notes-dev >/dev/null 2>&1 || docker "
        "network create")
    assert "--volume notes-dev-pgdata:/var/lib/postgresql/data" in plan.steps[2].describe[0][2]
    execute(plan, setup_state(remote), lambda e: None, transport=remote.transport)
    db_argv, db_in = host.calls[2]
    assert f"POSTGRES_PASSWORD={PASSWORD}" in db_in
    assert "docker inspect --format '{{.Id}}' notes-dev-db >/dev/null 2>&1 || docker run" in \
        db_argv[2]
    assert host.calls[3][0] == ("docker", "exec", "notes-dev-db", "pg_isready", "-h",
                                "127.0.0.1", "-p", "5432", "-U", "notes", "-d", "notes")


# --------------------------------------------------------------------------- small pieces


def test_image_ref_parse():
    ref = ImageRef.parse(f"127.0.0.1:5000/notes:abc@{DIGEST}")
    assert (ref.repository, ref.tag, ref.digest) == ("127.0.0.1:5000/notes", "abc", DIGEST)
    assert ref.ref == f"127.0.0.1:5000/notes@{DIGEST}"
    with pytest.raises(ConveyorError, match="not an image reference by digest"):
        ImageRef.parse("127.0.0.1:5000/notes:latest")


def test_env_file_refuses_line_breaks():
    assert env_file({"A": "1", "B": "x=y z"}, "k") == "A=1\nB=x=y z\n"
    with pytest.raises(ConfigError, match="line break"):
        env_file({"A": "1\nB=2"}, "k")


def test_describe_holder():
    assert describe_holder({}) .startswith("an unknown holder")
    text = describe_holder({"who": "bob", "what": "deploy dev x", "since": "T",
                               "id": "D1"})
    assert text == "bob for `deploy dev x` since T (deployment D1)"


def test_is_pytest():
    assert is_pytest(["pytest", "-q"]) and is_pytest(["/venv/bin/py.test"])
    assert is_pytest(["python3", "-m", "pytest", "tests"])
    assert not is_pytest(["make", "test"]) and not is_pytest([])
