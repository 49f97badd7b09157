"""Inspect an application repository: Dockerfile, compose file, migrations, test suite."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from conveyor.errors import InitRefused
from conveyor.init.compose import inspect_compose
from conveyor.init.dockerfile import container_dir_for, inspect_dockerfile
from conveyor.init.facts import COMPOSE_NAMES, Facts, app_name
from conveyor.init.tools import find_health_route, find_tool


def _find_migrations(facts: Facts) -> None:
    root = facts.root
    diesel = root / "diesel.toml"
    candidates: list[tuple[str, str]] = []
    if diesel.is_file():
        try:
            cfg = tomllib.loads(diesel.read_text())
            d = (cfg.get("migrations_directory") or {}).get("dir")
            if isinstance(d, str):
                candidates.append((d, "diesel.toml"))
        except (OSError, tomllib.TOMLDecodeError):
            facts.notes.append("diesel.toml is not valid TOML; ignored")
    for rel in ("migrations", "db/migrations", "database/migrations", "sql/migrations",
                "src/migrations"):
        candidates.append((rel, "found"))
    for rel, source in candidates:
        d = root / rel
        if not d.is_dir():
            continue
        ups = [p for p in d.glob("*/up.sql") if not p.parent.name.startswith(".")]
        if ups or source == "diesel.toml":
            facts.migrations_dir = rel.strip("/")
            facts.migrations_count = len(ups)
            facts.migrations_source = source
            return
    facts.notes.append("no Diesel-layout migrations directory (<dir>/<version>_<name>/up.sql) "
                       "found; [migrations] dir = \"migrations\" is a guess")


def _find_tests(facts: Facts) -> None:
    root = facts.root
    pyproject = root / "pyproject.toml"
    py_tests = (root / "pytest.ini").is_file() or (root / "conftest.py").is_file() or \
        ((root / "tests").is_dir() and any((root / "tests").glob("test_*.py")))
    if not py_tests and pyproject.is_file():
        try:
            py_tests = "pytest" in tomllib.loads(pyproject.read_text()).get("tool", {})
        except (OSError, tomllib.TOMLDecodeError):
            pass
    if py_tests:
        facts.test_command = ["pytest", "-q"] + (["tests"] if (root / "tests").is_dir() else [])
        for req in ("requirements-test.txt", "requirements-tests.txt", "requirements-dev.txt",
                    "test-requirements.txt"):
            if (root / req).is_file():
                facts.test_setup = ["python", "-m", "pip", "install", "-r", req]
                break
        else:
            facts.test_setup = ["python", "-m", "pip", "install", "pytest"]
    elif (root / "Cargo.toml").is_file():
        facts.test_command = ["cargo", "test"]
    elif (root / "package.json").is_file():
        facts.test_command = ["npm", "test"]
        facts.test_setup = ["npm", "ci"]
    elif (root / "go.mod").is_file():
        facts.test_command = ["go", "test", "./..."]
    elif (root / "Makefile").is_file() and re.search(r"(?m)^test:", (root / "Makefile").read_text(
            errors="replace")):
        facts.test_command = ["make", "test"]
    else:
        facts.notes.append("no test suite recognised; test_command is empty (add one: it runs "
                           "against the deployed app, APP_URL in its environment)")


def inspect_project(root: Path) -> Facts:
    root = root.resolve()
    if not root.is_dir():
        raise InitRefused(f"{root} is not a directory", hint="pass the application's directory "
                        "with -C DIR")
    facts = Facts(root=root, name=app_name(root.name))
    compose = next((root / n for n in COMPOSE_NAMES if (root / n).is_file()), None)
    # the Dockerfile first: its EXPOSE port decides which of the compose ports is the app's
    df = root / "Dockerfile"
    if df.is_file():
        facts.dockerfile = "Dockerfile"
        inspect_dockerfile(facts, df)
    if compose is not None:
        inspect_compose(facts, compose)
        if facts.dockerfile and facts.dockerfile != "Dockerfile":
            other = root / facts.context / facts.dockerfile
            if other.is_file():
                inspect_dockerfile(facts, other)
    if facts.dockerfile is None:
        facts.notes.append("no Dockerfile found: conveyor builds the app image from one; "
                           "[app] dockerfile = \"Dockerfile\" is a guess")
    if facts.port is None:
        facts.notes.append("the app's port was not found (no EXPOSE, no compose ports); "
                           "[app] port = 8000 is a guess")
    find_health_route(facts)
    facts.tool = find_tool(facts)
    if facts.tool is None:
        _find_migrations(facts)
        container_dir_for(facts)
    if facts.tool is None and facts.migrations_dir and facts.migrations_container_dir is None:
        facts.notes.append(
            f"the Dockerfile does not COPY {facts.migrations_dir}/ into the image: conveyor "
            f"runs the migrations from a temporary container of the app image, so add e.g. "
            f"`COPY {facts.migrations_dir} /app/migrations`")
    _find_tests(facts)
    return facts
