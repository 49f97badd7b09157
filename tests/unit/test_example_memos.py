"""Static checks of examples/memos (Node.js + pg, an image without python3): its migrations,
Dockerfile, compose file, lock file and conveyor.toml, and that its config mirrors
examples/notes' environments. The example's own HTTP tests need a running app: they run in
tests/e2e/test_example_memos_local.py."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conveyor.config import load_config

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "memos"
NOTES = ROOT / "examples" / "notes"
CHECK_JSONSCHEMA = Path(sys.executable).parent / "check-jsonschema"
DIESEL_DIR = re.compile(r"^(\d{4}-\d{2}-\d{2}-\d{6})_[a-z0-9_]+$")
SECRETS = {"MEMOS_DEV_DB_PASSWORD": "dev-pw", "MEMOS_PROD_DB_PASSWORD": "prod-pw",
           "NOTES_DEV_DB_PASSWORD": "dev-pw", "NOTES_PROD_DB_PASSWORD": "prod-pw"}


@pytest.fixture
def secrets(monkeypatch):
    for k, v in SECRETS.items():
        monkeypatch.setenv(k, v)
    for k in ("COMPOSE_PROJECT_NAME", "MEMOS_APP_PORT", "MEMOS_DB_PORT", "NOTES_APP_PORT",
              "NOTES_DB_PORT"):
        monkeypatch.delenv(k, raising=False)


def test_migrations_have_the_diesel_layout():
    dirs = sorted(p for p in (EXAMPLE / "migrations").iterdir() if p.is_dir())
    assert len(dirs) >= 2
    for d in dirs:
        assert DIESEL_DIR.match(d.name), d.name
        assert {p.name for p in d.iterdir()} <= {"up.sql", "down.sql", "metadata.toml"}
        assert (d / "up.sql").read_text().strip() and (d / "down.sql").read_text().strip()
    versions = [DIESEL_DIR.match(d.name).group(1) for d in dirs]
    assert len(set(versions)) == len(versions)


def test_config_uses_the_built_in_engine_and_the_image_holds_the_migrations(secrets,
                                                                            monkeypatch):
    # the defaults (the test bed's `scripts/testbed env` points these at its offline images)
    monkeypatch.delenv("BASE_NODE_IMAGE", raising=False)
    monkeypatch.delenv("BASE_NODE_BUILD_IMAGE", raising=False)
    cfg = load_config(EXAMPLE)
    assert cfg.migrations.command == []  # no python3 in the image: nothing of conveyor runs there
    dockerfile = (EXAMPLE / "Dockerfile").read_text()
    assert f"COPY migrations {cfg.migrations.container_dir}\n" in dockerfile
    assert cfg.app.build_args == {"BASE_NODE_BUILD_IMAGE": "node:20",
                                  "BASE_NODE_IMAGE": "node:20-slim"}
    assert cfg.app.health.path == "/health"


def test_config_mirrors_the_notes_example_with_its_own_names_and_ports(secrets):
    memos, notes = load_config(EXAMPLE), load_config(NOTES)
    assert set(memos.environment_names) == set(notes.environment_names) == {"local", "dev",
                                                                            "prod"}
    for name in memos.environment_names:
        env, other = memos.environment(name), notes.environment(name)
        assert env.host == other.host and env.address == other.address
        assert env.known_hosts == other.known_hosts and env.ssh_key == other.ssh_key
        assert env.port != other.port
        assert type(env.database) is type(other.database)
        assert env.database.name == env.database.user == "memos"
    local = memos.environment("local")
    assert local.compose_project == "memos" and local.url == "http://127.0.0.1:8001"
    assert local.test_command == ["node", "--test", "tests/"]
    assert memos.environment("dev").test_command == ["node", "--test", "tests/"]
    prod = memos.environment("prod")
    assert prod.promote_from == "dev" and prod.validate_command == ["node", "--test", "tests/"]
    text = (EXAMPLE / "conveyor.toml").read_text()
    assert 'password = { env = "MEMOS_DEV_DB_PASSWORD" }' in text
    assert 'password = { env = "MEMOS_PROD_DB_PASSWORD" }' in text
    assert 'dir = "/var/lib/conveyor/backups/memos"' in text


def test_dockerfile_is_two_stages_and_the_final_one_has_no_npm():
    text = (EXAMPLE / "Dockerfile").read_text()
    assert "ARG BASE_NODE_BUILD_IMAGE=node:20\n" in text
    assert "ARG BASE_NODE_IMAGE=node:20-slim\n" in text
    froms = re.findall(r"(?m)^FROM (.+)$", text)
    assert froms == ["${BASE_NODE_BUILD_IMAGE} AS build", "${BASE_NODE_IMAGE}"]
    build, final = text.split("\nFROM ${BASE_NODE_IMAGE}\n")
    assert "RUN npm ci --omit=dev" in build
    assert "COPY package.json package-lock.json .npmrc ./" in build
    instructions = [ln for ln in final.splitlines() if re.match(r"(RUN|COPY|ENV|CMD) ", ln)]
    assert instructions and not [ln for ln in instructions if re.search("npm|python", ln)]
    assert "COPY --from=build /app/node_modules /app/node_modules" in final


def test_lock_file_pins_exactly_the_declared_dependencies_without_a_registry_address():
    package = json.loads((EXAMPLE / "package.json").read_text())
    lock = json.loads((EXAMPLE / "package-lock.json").read_text())
    assert lock["lockfileVersion"] == 3
    assert lock["packages"][""]["dependencies"] == package["dependencies"]
    assert lock["packages"]["node_modules/pg"]["version"] == package["dependencies"]["pg"]
    for name, entry in lock["packages"].items():
        if name:
            assert entry.get("integrity", "").startswith("sha512-"), name
            assert "resolved" not in entry, name
    assert "omit-lockfile-registry-resolved=true" in (EXAMPLE / ".npmrc").read_text()


def test_dockerignore_admits_only_the_build_inputs():
    lines = [ln for ln in (EXAMPLE / ".dockerignore").read_text().splitlines()
             if ln and not ln.startswith("#")]
    assert lines == ["*", "!package.json", "!package-lock.json", "!.npmrc", "!src/",
                     "!migrations/"]


def test_compose_file_validates_and_takes_the_base_images():
    assert CHECK_JSONSCHEMA.exists(), f"check-jsonschema not installed: {CHECK_JSONSCHEMA}"
    compose = EXAMPLE / "docker-compose.yml"
    r = subprocess.run([str(CHECK_JSONSCHEMA), "--builtin-schema", "vendor.compose-spec",
                        str(compose)], capture_output=True, text=True, timeout=120, check=False)
    assert r.returncode == 0, r.stdout + r.stderr
    text = compose.read_text()
    for needle in ("BASE_NODE_BUILD_IMAGE: ${BASE_NODE_BUILD_IMAGE:-node:20}",
                   "BASE_NODE_IMAGE: ${BASE_NODE_IMAGE:-node:20-slim}",
                   "image: ${BASE_POSTGRES_IMAGE:-postgres:15}",
                   '"127.0.0.1:${MEMOS_APP_PORT:-8001}:3000"',
                   '"127.0.0.1:${MEMOS_DB_PORT:-54330}:5432"', "image: memos:local"):
        assert needle in text, needle


def test_sources_and_tests_parse():
    assert shutil.which("node"), "node is not installed (the example's tests need Node 18+)"
    for path in [*(EXAMPLE / "src").glob("*.js"), *(EXAMPLE / "tests").glob("*.js")]:
        r = subprocess.run(["node", "--check", str(path)], capture_output=True, text=True,
                           timeout=60, check=False)
        assert r.returncode == 0, f"{path}: {r.stderr}"
