"""`conveyor init` recognises the project's migration tool (one test per tool) and its health
route, and writes a conveyor.toml that loads with the matching `migrations.*` keys."""

from __future__ import annotations

from pathlib import Path

import pytest

from conveyor.config import load_config
from conveyor.init import init_project, inspect_project

DOCKERFILE = "FROM python:3.12-slim\nWORKDIR /app\nCOPY . .\nEXPOSE 8000\n"


def _project(root: Path, files: dict[str, str]) -> Path:
    for rel, text in {"Dockerfile": DOCKERFILE, **files}.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    return root


def _init(root: Path):
    init_project(root)
    return load_config(root).migrations


def test_alembic(tmp_path):
    root = _project(tmp_path / "shop", {"alembic.ini": "[alembic]\nscript_location = alembic\n",
                                        "alembic/env.py": "", "app/main.py": ""})
    assert inspect_project(root).tool.name == "Alembic"
    m = _init(root)
    assert m.command == ["alembic", "upgrade", "head"]
    assert m.status_command == ["alembic", "current"]
    assert m.revert_command == ["alembic", "downgrade", "-1"]
    # the pending range's SQL (current:head), the same recipe as docs/migration-tools.md
    assert m.sql_command[:2] == ["sh", "-c"] and '"$rev:head" --sql' in m.sql_command[2]
    doc = (Path(__file__).resolve().parents[2] / "docs" / "migration-tools.md").read_text()
    assert m.sql_command[2].replace('"', '\\"') in doc
    assert m.timeout == 3600
    assert "found: alembic.ini (Alembic)" in (root / "conveyor.toml").read_text()


def test_diesel_toml_and_a_diesel_directory_keep_the_built_in_engine(tmp_path):
    root = _project(tmp_path / "api", {
        "diesel.toml": "[migrations_directory]\ndir = \"migrations\"\n",
        "migrations/2024-01-01-000000_init/up.sql": "CREATE TABLE t (id int);\n",
        "Cargo.toml": "[package]\nname = \"api\"\n"})
    facts = inspect_project(root)
    assert facts.tool is None and facts.migrations_dir == "migrations"
    assert facts.migrations_source == "diesel.toml"
    m = _init(root)
    assert m.command == [] and m.container_dir == "/app/migrations"
    bare = _project(tmp_path / "bare", {
        "migrations/2024-01-01-000000_init/up.sql": "CREATE TABLE t (id int);\n"})
    assert inspect_project(bare).migrations_count == 1


def test_django(tmp_path):
    root = _project(tmp_path / "site", {
        "manage.py": "import os\nos.environ.setdefault('DJANGO_SETTINGS_MODULE', 'site.settings')\n"
                     "from django.core.management import execute_from_command_line\n"})
    assert inspect_project(root).tool.name == "Django"
    m = _init(root)
    assert m.command == ["python", "manage.py", "migrate", "--noinput"]
    assert m.status_command == ["python", "manage.py", "showmigrations", "--plan"]


def test_rails(tmp_path):
    root = _project(tmp_path / "blog", {"bin/rails": "#!/usr/bin/env ruby\n",
                                        "config/routes.rb": 'Rails.application.routes.draw do\n'
                                        '  get "up" => "rails/health#show"\nend\n'})
    facts = inspect_project(root)
    assert facts.tool.name == "Rails"
    assert facts.health_path == "/up" and facts.health_source == "a route in config/routes.rb"
    m = _init(root)
    assert m.command == ["bin/rails", "db:migrate"]
    assert m.status_command == ["bin/rails", "db:migrate:status"]
    assert m.revert_command == ["bin/rails", "db:rollback"]
    assert load_config(root).app.health.path == "/up"


def test_prisma(tmp_path):
    root = _project(tmp_path / "web", {"prisma/schema.prisma": "datasource db {}\n",
                                       "package.json": "{}"})
    facts = inspect_project(root)
    assert facts.tool.name == "Prisma" and facts.tool.marker == "prisma/schema.prisma"
    m = _init(root)
    assert m.command == ["npx", "prisma", "migrate", "deploy"]
    assert m.status_command == ["npx", "prisma", "migrate", "status"]


@pytest.mark.parametrize(("code", "path"), [
    ('@app.get("/healthz")\ndef h(): ...\n', "/healthz"),
    ('@app.get("/api/health")\n@app.get("/status")\n', "/api/health"),
    ('r.HandleFunc("/livez", live)\n', "/livez"),
])
def test_the_health_route_is_found_in_the_code(tmp_path, code, path):
    root = _project(tmp_path / "svc", {"app/main.py" if "@" in code else "main.go": code})
    facts = inspect_project(root)
    assert facts.health_path == path
    init_project(root)
    assert load_config(root).app.health.path == path


def test_no_health_route_says_the_guess(tmp_path):
    root = _project(tmp_path / "svc", {"app/main.py": "print('hi')\n"})
    facts = inspect_project(root)
    assert facts.health_path is None
    assert any("no health route found" in n for n in facts.notes)
