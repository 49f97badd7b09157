"""targets/local.py: the local stack resolved from the config (files, project name, secrets),
and the config errors that name their key."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from conveyor.config import load_config
from conveyor.errors import ConfigError
from conveyor.targets.local import normalize_project_name, open_stack

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "notes"


@pytest.fixture
def example_env(monkeypatch):
    for var, value in {"COMPOSE_PROJECT_NAME": "cvunit", "NOTES_APP_PORT": "18001",
                       "NOTES_DB_PORT": "18002", "NOTES_DB_PASSWORD": "s3cret-pw"}.items():
        monkeypatch.setenv(var, value)


def test_open_stack_from_the_example(example_env):
    stack = open_stack(load_config(EXAMPLE))
    assert stack.project == "cvunit"
    assert stack.app_service == "app" and stack.db_service == "db"
    assert stack.app_url == "http://127.0.0.1:18001"
    assert stack.health_url == "http://127.0.0.1:18001/health"
    assert stack.database_url() == "postgresql://notes:s3cret-pw@127.0.0.1:18002/notes"
    assert stack.compose_files == (str(EXAMPLE / "docker-compose.yml"),)
    assert stack.redactor("password s3cret-pw") == "password ***"


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
        open_stack(cfg, "dev")


def test_missing_compose_file_names_the_key(tmp_path):
    cfg = load_config(_config(tmp_path, """
        [environments.local]
        compose_file = "nope.yml"
        [environments.local.database]
        kind = "compose"
    """))
    with pytest.raises(ConfigError, match=r"key `environments\.local\.compose_file`"):
        open_stack(cfg)


def test_default_compose_file_and_project_name(tmp_path, monkeypatch):
    monkeypatch.delenv("COMPOSE_PROJECT_NAME", raising=False)
    d = _config(tmp_path, """
        [environments.local]
        [environments.local.database]
        kind = "compose"
    """)
    (d / "compose.yaml").write_text("services: {}\n")
    stack = open_stack(load_config(d))
    assert stack.compose_files == (str(d / "compose.yaml"),)
    assert stack.project == "shop"
    monkeypatch.setenv("COMPOSE_PROJECT_NAME", "My.Project")
    assert open_stack(load_config(d)).project == "myproject"


def test_normalize_project_name_like_compose():
    assert normalize_project_name("My.Project") == "myproject"
    assert normalize_project_name("_-x_Y") == "x_y"
    assert normalize_project_name("...") == "app"


def test_compose_project_is_validated(tmp_path):
    d = _config(tmp_path, """
        [environments.local]
        compose_project = "Bad Name"
        [environments.local.database]
        kind = "compose"
    """)
    with pytest.raises(ConfigError, match=r"key `environments\.local\.compose_project`"):
        load_config(d).environment("local")


def test_state_file_is_per_project_and_config(example_env, tmp_path, monkeypatch):
    monkeypatch.setenv("CONVEYOR_CACHE_DIR", str(tmp_path))
    stack = open_stack(load_config(EXAMPLE))
    path = stack.state_file()
    assert path is not None and path.parent == tmp_path / "local"
    assert path.name.startswith("cvunit-") and path.suffix == ".json"
