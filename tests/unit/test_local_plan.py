"""The local stage's plan and its pure decisions: stack resolution from the config, the plan's
steps, when `compose up` can be skipped, the summary, readiness polls (against an in-process
HTTP server on 127.0.0.1), and engine detection through a fake transport."""

from __future__ import annotations

import http.server
import textwrap
import threading
from pathlib import Path

import pytest

from conveyor.commands import compose as composecmd
from conveyor.config import load_config
from conveyor.errors import ConfigError, DockerUnavailable
from conveyor.pipeline import StepResult
from conveyor.stages import local as stage
from conveyor.transport import Result, Transport

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "notes"


@pytest.fixture
def example_env(monkeypatch):
    for var, value in {"COMPOSE_PROJECT_NAME": "cvunit", "NOTES_APP_PORT": "18001",
                       "NOTES_DB_PORT": "18002", "NOTES_DB_PASSWORD": "s3cret-pw"}.items():
        monkeypatch.setenv(var, value)


def test_open_stack_from_the_example(example_env):
    stack = stage.open_stack(load_config(EXAMPLE))
    assert stack.project == "cvunit"
    assert stack.app_service == "app" and stack.db_service == "db"
    assert stack.app_url == "http://127.0.0.1:18001"
    assert stack.health_url == "http://127.0.0.1:18001/health"
    assert stack.database_url() == "postgresql://notes:s3cret-pw@127.0.0.1:18002/notes"
    assert stack.compose_files == (str(EXAMPLE / "docker-compose.yml"),)
    assert stack.redactor("password s3cret-pw") == "password ***"


def test_up_plan_steps_and_dry_run_description(example_env):
    stack = stage.open_stack(load_config(EXAMPLE))
    stack.compose = composecmd.v1("/usr/bin/docker-compose")
    plan = stage.up_plan(stack)
    assert [s.name for s in plan.steps] == [
        "docker", "compose file", "image", "containers", "postgres", "migrations", "health"]
    described = {d["step"]: d["commands"] for d in plan.describe()}
    assert described["containers"] == [
        f"/usr/bin/docker-compose --project-name cvunit --file {EXAMPLE}/docker-compose.yml "
        "up --detach --no-build"]
    assert any("--label 'conveyor.inputs=<inputs hash>'" in c for c in described["image"])
    text = repr(plan.describe())
    assert "s3cret-pw" not in text and "notes:***@127.0.0.1:18002" in text


def _config(tmp_path: Path, local: str) -> Path:
    (tmp_path / "conveyor.toml").write_text(textwrap.dedent("""
        [app]
        name = "shop"
        image = "shop"
        port = 8000
    """) + textwrap.dedent(local))
    return tmp_path


def test_remote_environment_is_refused_with_its_key(tmp_path):
    cfg = load_config(_config(tmp_path, """
        [environments.dev]
        host = "deploy@10.0.0.5"
        known_hosts = "kh"
        [environments.dev.database]
        kind = "container"
    """))
    with pytest.raises(ConfigError, match=r"key `environments\.dev\.host`"):
        stage.open_stack(cfg, "dev")


def test_missing_compose_file_names_the_key(tmp_path):
    cfg = load_config(_config(tmp_path, """
        [environments.local]
        compose_file = "nope.yml"
        [environments.local.database]
        kind = "compose"
    """))
    with pytest.raises(ConfigError, match=r"key `environments\.local\.compose_file`"):
        stage.open_stack(cfg)


def test_default_compose_file_and_project_name(tmp_path, monkeypatch):
    monkeypatch.delenv("COMPOSE_PROJECT_NAME", raising=False)
    d = _config(tmp_path, """
        [environments.local]
        [environments.local.database]
        kind = "compose"
    """)
    (d / "compose.yaml").write_text("services: {}\n")
    stack = stage.open_stack(load_config(d))
    assert stack.compose_files == (str(d / "compose.yaml"),)
    assert stack.project == "shop"
    monkeypatch.setenv("COMPOSE_PROJECT_NAME", "My.Project")
    assert stage.open_stack(load_config(d)).project == "myproject"


def test_compose_project_is_validated(tmp_path):
    d = _config(tmp_path, """
        [environments.local]
        compose_project = "Bad Name"
        [environments.local.database]
        kind = "compose"
    """)
    with pytest.raises(ConfigError, match=r"key `environments\.local\.compose_project`"):
        load_config(d).environment("local")


def test_services_must_include_app_and_db_with_an_app_image(example_env):
    stack = stage.open_stack(load_config(EXAMPLE))
    with pytest.raises(ConfigError, match="no service 'app'"):
        stage._check_services(stack, {"web": "x", "db": "y"})
    with pytest.raises(ConfigError, match="has no `image:`"):
        stage._check_services(stack, {"app": None, "db": "y"})
    stage._check_services(stack, {"app": "notes:local", "db": "postgres:15"})


# ------------------------------------------------------------------ skipping `compose up`


def _c(service, cid, state="running"):
    return composecmd.Container(cid, state, service, "img", f"p_{service}_1", "Up")


def test_containers_unchanged_only_when_all_recorded_and_running():
    recorded = {"app": "a1", "db": "d1"}
    assert stage.containers_unchanged([_c("app", "a1"), _c("db", "d1")], ["app", "db"], recorded)
    assert not stage.containers_unchanged([_c("app", "a2"), _c("db", "d1")], ["app", "db"],
                                          recorded)
    assert not stage.containers_unchanged([_c("app", "a1", "exited"), _c("db", "d1")],
                                          ["app", "db"], recorded)
    assert not stage.containers_unchanged([_c("db", "d1")], ["app", "db"], recorded)
    assert not stage.containers_unchanged([_c("app", "a1"), _c("app", "a3"), _c("db", "d1")],
                                          ["app", "db"], recorded)


def test_compose_inputs_and_fingerprint_follow_what_compose_reads(tmp_path):
    f = tmp_path / "docker-compose.yml"
    f.write_text("services:\n  app:\n    image: x:${TAG:-1}\n    env_file: app.env\n")
    (tmp_path / "app.env").write_text("A=1\n")
    env = {"TAG": "1", "UNRELATED": "a"}
    k0, texts = stage.compose_inputs([str(f)], env, "v1", "p")
    assert stage.compose_inputs([str(f)], {**env, "UNRELATED": "b"}, "v1", "p")[0] == k0
    assert stage.compose_inputs([str(f)], {**env, "TAG": "2"}, "v1", "p")[0] != k0
    assert stage.compose_inputs([str(f)], env, "v2", "p")[0] != k0
    assert stage.compose_inputs([str(f)], env, "v1", "q")[0] != k0
    (tmp_path / ".env").write_text("TAG=3\n")
    assert stage.compose_inputs([str(f)], env, "v1", "p")[0] != k0

    ids = {"app": "sha256:a", "db": "sha256:d"}
    fp = stage.stack_fingerprint(k0, texts, tmp_path, ids)
    assert stage.stack_fingerprint(k0, texts, tmp_path, ids) == fp
    assert stage.stack_fingerprint(k0, texts, tmp_path, {**ids, "app": "sha256:b"}) != fp
    (tmp_path / "app.env").write_text("A=2\n")  # an env_file compose reads
    assert stage.stack_fingerprint(k0, texts, tmp_path, ids) != fp


def test_summary_says_nothing_changed_only_when_nothing_did(example_env):
    stack = stage.open_stack(load_config(EXAMPLE))
    steps = [StepResult("docker", "ok", 0.01234)]
    quiet = {"app_image": "notes:local", "built": False, "containers_changed": [],
             "migrations_applied": [], "migrations_total": 3}
    s = stage.up_summary(stack, quiet, steps)
    assert s["nothing_changed"] and s["url"] == "http://127.0.0.1:18001"
    assert s["steps"] == [{"name": "docker", "status": "ok", "duration": 0.012}]
    for change in ({"built": True}, {"containers_changed": ["p_app_1"]},
                   {"migrations_applied": ["2030-01-01-000000_x"]}):
        assert not stage.up_summary(stack, {**quiet, **change}, steps)["nothing_changed"]


# ------------------------------------------------------------------ engine detection


class FakeTransport(Transport):
    def __init__(self, answers):
        self.answers = answers
        self.calls = []

    def run(self, argv, *, input=None, timeout=None, check=True, stream=None, env=None):
        argv = tuple(argv)
        self.calls.append(argv)
        rc, out, err = self.answers.get(argv[:3], (0, "", ""))
        return Result(argv, rc, out, err, 0.0)


def test_check_docker_detects_v1_when_the_plugin_is_missing(example_env, monkeypatch):
    monkeypatch.delenv("CONVEYOR_COMPOSE", raising=False)
    monkeypatch.setattr(stage.shutil, "which", lambda name: "/usr/bin/docker-compose")
    fake = FakeTransport({("docker", "info", "--format"): (0, "20.10.24\n", ""),
                          ("docker", "compose", "version"): (1, "", "unknown command")})
    stack = stage.open_stack(load_config(EXAMPLE), transport=fake)
    assert stage.check_docker(stack) == "20.10.24"
    assert stack.compose == composecmd.v1("/usr/bin/docker-compose")


def test_check_docker_without_an_engine(example_env):
    fake = FakeTransport({("docker", "info", "--format"): (
        1, "", "Cannot connect to the Docker daemon at unix:///x.sock. Is the docker daemon "
        "running?\n")})
    stack = stage.open_stack(load_config(EXAMPLE), transport=fake)
    with pytest.raises(DockerUnavailable) as info:
        stage.check_docker(stack)
    assert "\n" not in str(info.value) and "scripts/testbed up" in str(info.value)


# ------------------------------------------------------------------ bounded polls


class _Health(http.server.BaseHTTPRequestHandler):
    answers: list[int] = []

    def do_GET(self):  # noqa: N802
        code = self.answers.pop(0) if self.answers else 200
        self.send_response(code)
        self.end_headers()
        self.wfile.write(b'{"status": "x"}')

    def log_message(self, *args):
        pass


@pytest.fixture
def health_server():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Health)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_wait_for_http_polls_until_the_expected_status(health_server):
    _Health.answers = [503, 503]
    status, attempts = stage.wait_for_http(health_server + "/health", timeout=10, interval=0.01)
    assert (status, attempts) == (200, 3)


def test_wait_for_http_is_bounded(health_server):
    _Health.answers = [503] * 1000
    with pytest.raises(stage.HealthCheckFailed, match="did not answer 200 within") as info:
        stage.wait_for_http(health_server + "/health", timeout=0.2, interval=0.05)
    assert "HTTP 503" in str(info.value) and info.value.exit_code == 9
    _Health.answers = []
