"""commands/compose.py: Compose argv builders (whole argv compared) and the parsers of
Compose's output."""

from __future__ import annotations

import json

import pytest

from conveyor.commands import compose as c
from conveyor.errors import DockerUnavailable

V1 = c.v1("/usr/bin/docker-compose")
FILES = ("/p/docker-compose.yml",)


def test_choose_prefers_v2_then_v1_and_fails_clearly_without_either():
    assert c.choose(True, "/usr/bin/docker-compose") == c.V2
    assert c.choose(False, "/usr/bin/docker-compose") == V1
    with pytest.raises(DockerUnavailable) as info:
        c.choose(False, None)
    assert "docker compose" in str(info.value) and "docker-compose" in str(info.value)
    assert info.value.exit_code == 3


def test_choose_can_be_forced():
    assert c.choose(True, None, forced="docker-compose") == c.Compose(("docker-compose",), "v1")
    assert c.choose(False, None, forced="docker compose") == c.V2


def test_up_argv_v1_and_v2():
    assert c.up(V1, "notes", FILES) == (
        "/usr/bin/docker-compose", "--project-name", "notes", "--file", "/p/docker-compose.yml",
        "up", "--detach", "--no-build")
    assert c.up(c.V2, "notes", FILES, services=["db"]) == (
        "docker", "compose", "--project-name", "notes", "--file", "/p/docker-compose.yml",
        "up", "--detach", "--no-build", "db")


def test_down_keeps_volumes_unless_asked():
    assert c.down(V1, "p", FILES) == (
        "/usr/bin/docker-compose", "--project-name", "p", "--file", "/p/docker-compose.yml", "down")
    assert c.down(V1, "p", FILES, volumes=True) == (
        "/usr/bin/docker-compose", "--project-name", "p", "--file", "/p/docker-compose.yml", "down",
        "--volumes")


def test_logs_argv():
    assert c.logs(c.V2, "p", FILES, ["app"], follow=True, since="10m", tail=30) == (
        "docker", "compose", "--project-name", "p", "--file", "/p/docker-compose.yml", "logs",
        "--no-color", "--follow", "--since", "10m", "--tail", "30", "app")


def test_config_argv_asks_v2_for_json():
    assert c.config(c.V2, "p", FILES) == (
        "docker", "compose", "--project-name", "p", "--file", "/p/docker-compose.yml", "config",
        "--format", "json")
    assert c.config(V1, "p", FILES) == (
        "/usr/bin/docker-compose", "--project-name", "p", "--file", "/p/docker-compose.yml",
        "config")


def test_project_containers_filters_by_compose_label():
    argv = c.project_containers("notes", "{{.ID}}")
    assert argv == ("docker", "ps", "--all", "--no-trunc", "--filter",
                    "label=com.docker.compose.project=notes", "--format", "{{.ID}}")


V1_CONFIG = """\
services:
  app:
    build:
      args:
        BASE_IMAGE: python:3.12-slim
      context: /work/notes
    depends_on:
      db:
        condition: service_healthy
    environment:
      DATABASE_URL: postgresql://notes:secret@db:5432/notes
      image: not-this-one
    image: notes:local
    ports:
    - 127.0.0.1:8000:8000/tcp
  db:
    image: 'conveyor-base/postgres:15'
  worker:
    build:
      context: /work/notes
version: '3.8'
volumes:
  pgdata: {}
"""


def test_parse_config_images_v1_yaml():
    assert c.parse_config_images(V1_CONFIG, "v1") == {
        "app": "notes:local", "db": "conveyor-base/postgres:15", "worker": None}


def test_parse_config_images_v2_json():
    text = json.dumps({"name": "p", "services": {"app": {"image": "notes:local"},
                                                 "db": {"image": "postgres:15"}}})
    assert c.parse_config_images(text, "v2") == {"app": "notes:local", "db": "postgres:15"}


@pytest.mark.parametrize("output, changed", [
    ("cvx_db_1 is up-to-date\ncvx_app_1 is up-to-date\n", []),
    (('Creating network "cvx_default" with the default driver\nCreating volume "cvx_pgdata"\n'
     "Creating cvx_db_1 ... \nCreating cvx_db_1 ... done\nCreating cvx_app_1 ... done\n"),
     ["cvx_db_1", "cvx_app_1"]),
    ("cvx_db_1 is up-to-date\nRecreating cvx_app_1 ... done\n", ["cvx_app_1"]),
    (" Network cvx_default  Created\n Container cvx-db-1  Started\n Container cvx-app-1  Running\n",
     ["cvx-db-1"]),
    (" Container cvx-db-1  Running\n Container cvx-app-1  Running\n", []),
])
def test_changed_services_from_up_output(output, changed):
    assert c.changed_services(output) == changed


def test_parse_ps_and_health():
    text = ("abc\trunning\tdb\tpostgres:15\tp_db_1\tUp 3 minutes (healthy)\t127.0.0.1:5432->5432/tcp\n"
            "def\texited\tapp\tnotes:local\tp_app_1\tExited (1) 2 seconds ago\t\n")
    rows = c.parse_ps(text)
    assert [(r.service, r.state, r.health) for r in rows] == [
        ("db", "running", "healthy"), ("app", "exited", None)]
    assert rows[0].ports == "127.0.0.1:5432->5432/tcp"
