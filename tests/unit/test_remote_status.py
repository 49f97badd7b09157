"""remote_status.gather_status: ONE round trip to the host (status.sh: containers, lock, last
deployment, runner journal, applied migrations, the image's migration files), the health check
beside it; `conveyor status` asks each host over one SSH connection of its own (no master, no
session). The output and exit codes are those of before (tests/unit/test_status_exit.py)."""

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

import pytest

from conveyor import host
from conveyor.config import load_config
from conveyor.migrations import discover, queries
from conveyor.remote_status import applied_rows, gather_status, parse_sections, status_argv
from conveyor.steps.pending import applied_now
from conveyor.targets.remote import Remote
from conveyor.transport.base import Result, Transport

MIGRATIONS = {"2026-01-01-000001_init": "CREATE TABLE t (id int);\n",
              "2026-02-01-000001_add_color": "ALTER TABLE t ADD COLUMN color text;\n"}
NO_TABLE = 'ERROR:  relation "__diesel_schema_migrations" does not exist\n'


class Health(http.server.BaseHTTPRequestHandler):
    status = 200

    def do_GET(self):
        self.send_response(Health.status)
        self.end_headers()
        self.wfile.write(b'{"status": "ok"}')

    def log_message(self, *args):
        pass


@pytest.fixture
def app_port():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Health)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    Health.status = 200
    yield server.server_address[1]
    server.shutdown()


def project(tmp_path: Path, port: int, extra: str = "",
            db: str = 'kind = "container"\nname = "notes"\nuser = "notes"') -> Path:
    (tmp_path / "known_hosts").write_text("")
    (tmp_path / "conveyor.toml").write_text(textwrap.dedent(f"""
        [app]
        name = "notes"
        image = "notes"
        port = 8000
        [migrations]
        container_dir = "/app/migrations"
        {extra}
        [registry]
        address = "127.0.0.1:5000"
        [environments.dev]
        host = "root@127.0.0.1:22"
        known_hosts = "known_hosts"
        address = "127.0.0.1"
        port = {port}
        state_dir = "/srv/state"
        [environments.dev.database]
    """) + db + "\n")
    return tmp_path


def migrations_tgz(tmp_path: Path) -> tuple[str, dict[str, str]]:
    """(base64 of the gzip'd tar of the migrations, version -> checksum)."""
    src = tmp_path / "src-migrations"
    for name, up in MIGRATIONS.items():
        (src / name).mkdir(parents=True)
        (src / name / "up.sql").write_text(up)
        (src / name / "down.sql").write_text("SELECT 1;\n")
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        tf.add(src, arcname=".")
    checksums = {m.version: m.checksum for m in discover(src)}
    return base64.b64encode(gzip.compress(buf.getvalue())).decode(), checksums


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def container(name: str, state: str = "running", **labels: str) -> str:
    return json.dumps({"Name": f"/{name}", "Id": "c" * 64, "Image": "sha256:" + "1" * 64,
                       "RestartCount": 0,
                       "State": {"Status": state, "Running": state == "running",
                                 "StartedAt": "2026-01-01T00:00:00Z"},
                       "Config": {"Image": "r/notes@sha256:ab", "Labels": {
                           "conveyor.image": "r/notes@sha256:ab", **labels}}})


def answer(tmp_path: Path, *, containers: list[str] | None = None, rows: str | None = None,
           rows_rc: int = 0, rows_err: str = "", files: bool = True, lock: str = "null",
           journal: str = "null") -> str:
    tgz, checksums = migrations_tgz(tmp_path)
    if rows is None:
        rows = f"20260101000001 20260101000001 {checksums['20260101000001']}\n"
    containers = [container("notes-dev-app", **{"conveyor.deployment": "d1"}),
                  container("notes-dev-db")] if containers is None else containers
    out = ["::containers::", *containers, "::lock::", lock,
           "::last::", '{"id": "d1", "result": "ok", "who": "me", "started_at": "t"}',
           "::journal::", journal,
           f"::applied:: {rows_rc}", b64(rows), "::applied-err::", b64(rows_err)]
    if files:
        out += ["::files:: 0", tgz[:40], tgz[40:], "::files-err::", ""]
    return "\n".join(out) + "\n\n"


class FakeHost(Transport):
    name = "root@127.0.0.1:22"

    def __init__(self, stdout: str) -> None:
        self.stdout = stdout
        self.calls: list[tuple[str, ...]] = []
        self.psql: Result | None = None

    def run(self, argv, *, input=None, timeout=None, check=True, stream=None, env=None):
        args = tuple(str(a) for a in argv)
        self.calls.append(args)
        if args[:2] == ("docker", "exec") and self.psql is not None:
            return self.psql
        return Result(args, 0, self.stdout, "", 0.01, host=self.name)


def remote_for(cfg_dir: Path, fake: FakeHost) -> Remote:
    return Remote(load_config(cfg_dir), "dev", transport_factory=lambda r: fake)


def test_one_round_trip_gives_the_whole_status(tmp_path, app_port):
    fake = FakeHost(answer(tmp_path, lock='{"id": "d9", "who": "ann"}'))
    d = gather_status(remote_for(project(tmp_path, app_port), fake))

    assert len(fake.calls) == 1 and fake.calls[0][2] == host.script("status")
    assert d["app"]["state"] == "running" and d["app"]["deployment"] == "d1"
    assert d["app"]["image"] == "r/notes@sha256:ab" and d["app"]["digest"] == "sha256:ab"
    assert d["db"]["state"] == "running" and d["previous"] is None
    assert d["lock"] == {"id": "d9", "who": "ann"} and d["last_deployment"]["id"] == "d1"
    assert d["runner"] is None
    assert d["health"] == {"url": f"http://127.0.0.1:{app_port}/health", "ok": True,
                           "status": 200, "error": None}
    m = d["migrations"]
    assert m["ok"] is True
    assert [a["version"] for a in m["applied"]] == ["20260101000001"]
    assert m["pending"] == [{"version": "20260201000001", "name": "2026-02-01-000001_add_color"}]
    assert m["drift"] == [] and d["problems"] == [] and d["exit_code"] == 0


def test_the_argv_carries_the_query_and_the_files_directory(tmp_path, app_port):
    remote = remote_for(project(tmp_path, app_port), FakeHost(""))
    argv = status_argv(remote)
    assert argv[3:13] == ("conveyor-status", "/srv/state/notes/dev", "notes-dev-app",
                          "notes-dev-app-previous", "notes-dev-db", "notes-dev-runner", "",
                          "notes", "notes", queries.APPLIED_SQL)
    assert argv[13] == "/app/migrations"
    assert "conveyor.role=inspect" in argv[14:]
    # without migrations: neither
    assert status_argv(remote, migrations=False)[10:] == ("", "", "", "")


def test_a_database_reached_by_url_gets_no_query(tmp_path, app_port):
    cfg = project(tmp_path, app_port, db='kind = "url"\nurl = { env = "NOTES_DEV_DATABASE_URL" }')
    argv = status_argv(Remote(load_config(cfg), "dev", transport_factory=lambda r: FakeHost("")))
    assert argv[7] == "" and argv[10:13] == ("", "", "") and argv[13] == "/app/migrations"


def test_no_diesel_table_is_nothing_applied_and_other_failures_are_unknown(tmp_path, app_port):
    cfg = project(tmp_path, app_port)
    d = gather_status(remote_for(cfg, FakeHost(answer(tmp_path, rows="", rows_rc=1,
                                                      rows_err=NO_TABLE))))
    assert d["migrations"]["ok"] is True and d["migrations"]["applied"] == []
    assert len(d["migrations"]["pending"]) == 2

    d = gather_status(remote_for(cfg, FakeHost(answer(tmp_path / "b", rows="", rows_rc=2,
                                                      rows_err="psql: connection refused"))))
    assert d["migrations"]["ok"] is False
    assert "cannot read the applied migrations" in d["migrations"]["error"]


def test_an_edited_migration_is_blocking_drift(tmp_path, app_port):
    rows = "20260101000001 20260101000001 " + "2" * 64 + "\n"
    d = gather_status(remote_for(project(tmp_path, app_port),
                                 FakeHost(answer(tmp_path, rows=rows))))
    assert [p["kind"] for p in d["migrations"]["drift"]] == ["edited"]
    assert d["exit_code"] == 8


def test_missing_containers_an_unhealthy_app_and_a_running_deployment(tmp_path, app_port):
    Health.status = 503
    runner = container("notes-dev-runner", **{"conveyor.deployment": "d2", "conveyor.who": "bo",
                                              "conveyor.what": "dev deploy"})
    fake = FakeHost(answer(tmp_path, containers=[container("notes-dev-db", "exited"),
                                                 container("notes-dev-app-previous", "exited"),
                                                 runner],
                           journal='{"event": "step_started", "step": "pull"}'))
    d = gather_status(remote_for(project(tmp_path, app_port), fake))

    assert d["app"] == {"name": "notes-dev-app", "state": "missing"}
    assert d["db"]["state"] == "exited"
    assert d["previous"] == {"name": "notes-dev-app-previous", "state": "exited"}
    assert d["runner"]["running"] is True and d["runner"]["deployment"] == "d2"
    assert d["runner"]["step"] == "pull" and d["runner"]["who"] == "bo"
    assert d["health"]["ok"] is False and d["health"]["status"] == 503
    assert d["migrations"]["ok"] is False
    assert [p["code"] for p in d["problems"]] == [20, 9, 9] and d["exit_code"] == 20


def test_unreadable_image_files_are_unknown_migrations(tmp_path, app_port):
    text = answer(tmp_path, files=False) + "::files:: 1\n::files-err::\n" + b64(
        "Error: No such container:path: x:/app/migrations\n") + "\n"
    d = gather_status(remote_for(project(tmp_path, app_port), FakeHost(text)))
    assert d["migrations"]["ok"] is False
    assert "cannot read the migrations of r/notes@sha256:ab at /app/migrations" in (
        d["migrations"]["error"])
    assert "No such container" in d["migrations"]["error"]


def test_sections_keep_their_word_and_lines():
    s = parse_sections("::a::\n{}\n::b:: 3\nx\n\ny\n::c::\n")
    assert s == {"a": ("", ["{}"]), "b": ("3", ["x", "y"]), "c": ("", [])}


def test_applied_now_and_applied_rows_are_the_same_query(tmp_path, app_port):
    fake = FakeHost("")
    remote = remote_for(project(tmp_path, app_port), fake)
    fake.psql = Result((), 0, "20260101000001 20260101000001 x\n", "", 0.0)
    assert applied_rows(remote) == ["20260101000001 20260101000001 x"]
    assert applied_now(remote) == ["20260101000001"]
    assert fake.calls[0] == fake.calls[1] == (
        "docker", "exec", "notes-dev-db", "psql", "-XAtq", "-v", "ON_ERROR_STOP=1", "-U",
        "notes", "-d", "notes", "-c", queries.APPLIED_SQL)
    fake.psql = Result((), 1, "", NO_TABLE, 0.0)
    assert applied_rows(remote) == [] and applied_now(remote) == []
    fake.psql = Result((), 2, "", "psql: error: connection refused", 0.0)
    assert applied_rows(remote) is None and applied_now(remote) is None


def test_the_projects_own_tool_reports_its_status_and_no_files_are_copied(tmp_path, app_port,
                                                                         monkeypatch):
    import conveyor.steps.foreign_remote as foreign

    seen = []
    monkeypatch.setattr(foreign, "tool_status", lambda remote, image: seen.append(image) or {
        "ok": True, "applied": [], "pending": [], "drift": [], "tool": True})
    cfg = project(tmp_path, app_port, extra='command = ["alembic", "upgrade", "head"]')
    fake = FakeHost(answer(tmp_path, files=False))
    remote = remote_for(cfg, fake)
    assert status_argv(remote)[13] == ""  # no files copied for the tool
    d = gather_status(remote)
    assert seen == ["r/notes@sha256:ab"] and d["migrations"]["tool"] is True


def test_start_early_begins_each_remote_round_trip_and_status_data_takes_it(tmp_path,
                                                                           app_port,
                                                                           monkeypatch):
    import conveyor.remote_status as rs

    cfg_dir = project(tmp_path, app_port)
    started: list[str] = []

    def fake(cfg, env_name):
        started.append(env_name)
        return {"environment": env_name, "n": len(started)}

    monkeypatch.setattr(rs, "_status_data", fake)
    monkeypatch.setattr(rs, "_EARLY", {})
    rs.start_early(["status", "dev", "dev", "--json", "-C", str(cfg_dir)])
    cfg = load_config(cfg_dir)
    assert rs.status_data(cfg, "dev") == {"environment": "dev", "n": 1}
    assert started == ["dev"]  # once, though named twice
    assert rs.status_data(cfg, "dev") == {"environment": "dev", "n": 2}  # taken once only

    # anything it does not know, and nothing starts
    for argv in (["dev", "--help", "-C", str(cfg_dir)], ["nope", "-C", str(cfg_dir)],
                 ["-C", str(cfg_dir)], ["dev", "-C", str(tmp_path / "missing")],
                 ["dev", "--frobnicate", "-C", str(cfg_dir)]):
        rs.start_early(["status", *argv])
        assert rs._EARLY == {}, argv
    assert started == ["dev", "dev"]


def test_an_early_error_is_raised_where_the_status_is_taken(tmp_path, app_port, monkeypatch):
    import conveyor.remote_status as rs

    def boom(cfg, env_name):
        raise RuntimeError("a bug")

    monkeypatch.setattr(rs, "_status_data", boom)
    monkeypatch.setattr(rs, "_EARLY", {})
    cfg_dir = project(tmp_path, app_port)
    rs.start_early(["--project-dir=" + str(cfg_dir), "status", "dev"])
    with pytest.raises(RuntimeError, match="a bug"):
        rs.status_data(load_config(cfg_dir), "dev")


def test_a_zero_downtime_environment_shows_its_proxy(tmp_path, app_port):
    cfg = project(tmp_path, app_port)
    toml = cfg / "conveyor.toml"
    toml.write_text(toml.read_text().replace('state_dir = "/srv/state"\n',
                                             'state_dir = "/srv/state"\n'
                                             'strategy = "zero-downtime"\n'))
    proxy = container("notes-dev-proxy")
    fake = FakeHost(answer(tmp_path, containers=[container("notes-dev-app"),
                                                 container("notes-dev-db"), proxy]))
    remote = remote_for(cfg, fake)
    assert status_argv(remote)[9] == "notes-dev-proxy"
    d = gather_status(remote)
    assert d["proxy"]["name"] == "notes-dev-proxy" and d["proxy"]["state"] == "running"
    fake.stdout = answer(tmp_path / "b")
    assert gather_status(remote)["proxy"] == {"state": "missing"}


def test_the_console_entry_starts_status_early_and_nothing_else(monkeypatch):
    import conveyor.cli
    import conveyor.main
    import conveyor.remote_status as rs

    seen: list[list[str]] = []
    monkeypatch.setattr(rs, "start_early", lambda argv: seen.append(argv))
    monkeypatch.setattr(conveyor.cli, "run", lambda argv: None)
    conveyor.main.main(["-v", "status", "dev", "prod", "-C", "/p"])
    assert seen == [["-v", "status", "dev", "prod", "-C", "/p"]]
    conveyor.main.main(["history", "dev"])
    assert len(seen) == 1
