"""`conveyor init`: inspection, conveyor.toml, CI files (validated against their published
schemas offline), no overwrite without --force, no secret values in what is written.

The CLI is run for real (`uv run conveyor ...`); the CI files are checked with check-jsonschema
from this venv (its vendored schemas need no network), and the shell parts that handle the SSH
key are executed with a stub `conveyor` to see the files' modes and the environment it gets.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from conveyor.config import load_config
from conveyor.errors import InitRefused
from conveyor.init import (
    CI_FILES,
    CI_SYSTEMS,
    ci_needs,
    init_project,
    inspect_project,
    parse_yaml_subset,
    resolve_defaults,
    to_conveyor_interpolation,
)

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "notes"
CHECK_JSONSCHEMA = Path(sys.executable).parent / "check-jsonschema"
SCHEMAS = {
    "github": ("vendor.github-workflows", []),
    "gitlab": ("vendor.gitlab-ci", ["--data-transform", "gitlab-ci"]),
    "cloudbuild": ("vendor.cloudbuild", []),
}
# variables a developer's shell (or the test bed) may export; the CLI runs without them unless
# a test sets them on purpose
_TESTBED_VARS = ("CONVEYOR_", "BASE_PYTHON_IMAGE", "BASE_POSTGRES_IMAGE", "NOTES_",
                 "GITHUB_", "GITLAB_", "CI")


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(_TESTBED_VARS)}
    env.update(extra)
    return env


def conveyor(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    uv = shutil.which("uv")
    assert uv, "uv is not on PATH (scripts/setup installs it)"
    return subprocess.run([uv, "run", "conveyor", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=120, check=False,
                          env=env if env is not None else clean_env())


def validate(system: str, *paths: Path) -> subprocess.CompletedProcess:
    assert CHECK_JSONSCHEMA.exists(), f"check-jsonschema missing: {CHECK_JSONSCHEMA}"
    schema, extra = SCHEMAS[system]
    return subprocess.run([str(CHECK_JSONSCHEMA), "--builtin-schema", schema, *extra,
                           *map(str, paths)], capture_output=True, text=True, timeout=120,
                          check=False)


@pytest.fixture
def notes(tmp_path: Path) -> Path:
    """A copy of the example app without its conveyor.toml."""
    dest = tmp_path / "notes"
    shutil.copytree(EXAMPLE, dest, ignore=shutil.ignore_patterns("__pycache__", ".pytest_cache"))
    (dest / "conveyor.toml").unlink()
    return dest


def yaml_load(path: Path):
    from ruamel.yaml import YAML  # a dependency of check-jsonschema (dev group)

    return YAML(typ="safe").load(path.read_text())


# --------------------------------------------------------------------------- conveyor.toml


def test_init_on_example_is_accepted_by_config_check(notes: Path) -> None:
    r = conveyor("init", "-C", str(notes))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "wrote conveyor.toml" in r.stdout
    assert "warning" not in r.stdout

    check = conveyor("config", "check", "-C", str(notes), "--json")
    assert check.returncode == 0, check.stdout + check.stderr
    data = json.loads(check.stdout)
    assert data["app"]["name"] == "notes"
    assert data["app"]["port"] == 8000
    assert data["app"]["health"]["path"] == "/health"
    assert data["app"]["build_args"] == {"BASE_IMAGE": "python:3.12-slim"}
    assert data["migrations"]["dir"] == str(notes / "migrations")
    assert data["migrations"]["container_dir"] == "/app/migrations"
    assert set(data["environments"]) == {"local", "dev", "prod"}


def test_generated_config_matches_the_hand_written_example(notes: Path, monkeypatch) -> None:
    """What init finds in the example agrees with the example's own conveyor.toml."""
    for k in list(os.environ):
        if k.startswith(_TESTBED_VARS):
            monkeypatch.delenv(k)
    init_project(notes)
    ours, theirs = load_config(notes), load_config(EXAMPLE)
    for key in ("name", "image", "dockerfile", "context", "port", "build_args"):
        assert getattr(ours.app, key) == getattr(theirs.app, key), key
    assert ours.app.health.path == theirs.app.health.path
    assert ours.migrations.dir == theirs.migrations.dir
    assert ours.migrations.container_dir == theirs.migrations.container_dir
    assert ours.image_repository() == theirs.image_repository()
    lo, lt = ours.environment("local"), theirs.environment("local")
    assert (lo.compose_file, lo.app_service, lo.address, lo.port, lo.url) == \
        (lt.compose_file, lt.app_service, lt.address, lt.port, lt.url)
    assert lo.database.model_dump() == lt.database.model_dump()
    assert ours.database_url("local") == theirs.database_url("local")
    for env in ("dev", "prod"):
        o, t = ours.environment(env), theirs.environment(env)
        assert (o.host, o.known_hosts, o.ssh_key, o.address, o.port) == \
            (t.host, t.known_hosts, t.ssh_key, t.address, t.port), env
        # init writes password references (for the CI's secret store); the example leaves
        # them out: conveyor generates each one on its host at setup
        assert ({**o.database.model_dump(), "password": None}
                == {**t.database.model_dump(), "password": None}), env
    assert ours.environment("prod").promote_from == "dev"


def test_config_check_with_the_test_bed_variables(notes: Path) -> None:
    """With the CI's variables set, the dev and prod environments validate and use them."""
    assert conveyor("init", "-C", str(notes)).returncode == 0
    env = clean_env(CONVEYOR_REGISTRY="127.0.0.1:5000", CONVEYOR_DEV_HOST="root@127.0.1.1:22",
                    CONVEYOR_DEV_ADDRESS="127.0.1.1", CONVEYOR_KNOWN_HOSTS="/tmp/kh",
                    CONVEYOR_SSH_KEY="/tmp/key", NOTES_DEV_DB_PASSWORD="pw")
    r = conveyor("config", "check", "-C", str(notes), "--env", "dev", "--json", env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    dev = json.loads(r.stdout)["environments"]["dev"]
    assert dev["host"] == "root@127.0.1.1:22"
    assert dev["address"] == "127.0.1.1"
    assert dev["database"]["url"] == "postgresql://notes:***@notes-dev-db:5432/notes"


# --------------------------------------------------------------------------- CI files


@pytest.mark.parametrize("system", CI_SYSTEMS)
def test_ci_files_validate_against_their_schemas(notes: Path, system: str) -> None:
    r = conveyor("init", "-C", str(notes), "--ci", system)
    assert r.returncode == 0, r.stdout + r.stderr
    files = [notes / f for f in CI_FILES[system]]
    for f in files:
        assert f.is_file(), f
        assert f"wrote {f.relative_to(notes)}" in r.stdout
    v = validate(system, *files)
    assert v.returncode == 0, v.stdout + v.stderr


@pytest.mark.parametrize("system", CI_SYSTEMS)
def test_package_option_reaches_the_ci_file(notes: Path, system: str) -> None:
    spec = 'conveyor @ git+https://git.example.invalid/ops/conveyor@v0.1.0 ; python_version>="3.11"'
    r = conveyor("init", "-C", str(notes), "--ci", system, "--package", spec)
    assert r.returncode == 0, r.stdout + r.stderr
    for f in CI_FILES[system]:
        path = notes / f
        assert validate(system, path).returncode == 0
        text = json.dumps(yaml_load(path))
        assert json.dumps(spec)[1:-1] in text, f


BREAKAGES = {
    # a key that the schema does not know, in a place where it forbids unknown keys
    "github": ("    runs-on: ubuntu-latest\n", "    runs_on: ubuntu-latest\n"),
    # `when` takes a fixed set of words
    "gitlab": ("      when: manual\n", "      when: sometimes\n"),
    # substitutionOption is an enum
    "cloudbuild": ("substitutionOption: ALLOW_LOOSE", "substitutionOption: LOOSE"),
}


@pytest.mark.parametrize("system", CI_SYSTEMS)
def test_validator_rejects_a_broken_ci_file(notes: Path, system: str) -> None:
    """The schema check can fail: a broken copy of each generated file is rejected."""
    init_project(notes, ci=system)
    path = notes / CI_FILES[system][0]
    text = path.read_text()
    old, new = BREAKAGES[system]
    assert old in text
    path.write_text(text.replace(old, new, 1))
    v = validate(system, path)
    assert v.returncode != 0, v.stdout
    assert "Schema validation errors" in v.stdout + v.stderr


def test_github_workflow_shape(notes: Path) -> None:
    init_project(notes, ci="github")
    wf = yaml_load(notes / ".github/workflows/conveyor.yml")
    on = wf.get("on", wf.get(True))  # YAML 1.1 readers turn `on` into True
    assert "push" in on
    dev, prod = wf["jobs"]["dev"], wf["jobs"]["prod"]
    assert dev["if"] == "github.ref_name != github.event.repository.default_branch"
    assert prod["if"] == "github.ref_name == github.event.repository.default_branch"
    assert prod["environment"] == "production"  # protected: required reviewers
    runs = lambda job: "\n".join(s.get("run", "") for s in job["steps"])
    assert "conveyor ci --junit conveyor-junit.xml --summary conveyor-summary.md" in runs(dev)
    assert "conveyor ci --promote --junit" in runs(prod)
    assert "--promote" not in runs(dev)
    for job in (dev, prod):
        upload = [s for s in job["steps"]
                  if s.get("uses", "").startswith("actions/upload-artifact")]
        assert upload and upload[0]["if"] == "always()"
        assert "conveyor-junit.xml" in upload[0]["with"]["path"]
        assert "conveyor-summary.md" in upload[0]["with"]["path"]
    # prod secrets reach only the promote job
    dev_env = json.dumps([s.get("env", {}) for s in dev["steps"]])
    prod_env = json.dumps([s.get("env", {}) for s in prod["steps"]])
    assert "NOTES_PROD_DB_PASSWORD" not in dev_env
    assert "${{ secrets.NOTES_PROD_DB_PASSWORD }}" in prod_env
    assert "${{ secrets.NOTES_DEV_DB_PASSWORD }}" in dev_env


def test_gitlab_shape(notes: Path) -> None:
    init_project(notes, ci="gitlab")
    ci = yaml_load(notes / ".gitlab-ci.yml")
    dev, prod = ci["conveyor-dev"], ci["conveyor-prod"]
    assert dev["rules"] == [{"if": "$CI_COMMIT_BRANCH && $CI_COMMIT_BRANCH != $CI_DEFAULT_BRANCH"}]
    assert prod["rules"] == [{"if": "$CI_COMMIT_BRANCH == $CI_DEFAULT_BRANCH", "when": "manual"}]
    assert prod["environment"]["name"] == "production"
    assert prod["script"] == [("conveyor ci --promote --junit conveyor-junit.xml "
                               "--summary conveyor-summary.md")]
    art = ci[".conveyor"]["artifacts"]
    assert art["when"] == "always" and art["reports"]["junit"] == "conveyor-junit.xml"


def test_cloudbuild_shape(notes: Path) -> None:
    init_project(notes, ci="cloudbuild")
    for name, promote in (("cloudbuild.yaml", False), ("cloudbuild-promote.yaml", True)):
        cb = yaml_load(notes / name)
        step = cb["steps"][0]
        script = step["args"][1]
        assert ("conveyor ci --promote " in script) == promote
        # every secretEnv is provided by availableSecrets (the schema does not check this)
        provided = {s["env"] for s in cb["availableSecrets"]["secretManager"]}
        assert set(step["secretEnv"]) == provided
        assert ("NOTES_PROD_DB_PASSWORD" in provided) == promote
        for s in cb["availableSecrets"]["secretManager"]:
            assert re.fullmatch(r"projects/\$PROJECT_ID/secrets/[a-z0-9-]+/versions/latest",
                                s["versionName"])
        # every user substitution used is declared; bash's own `$` are escaped as `$$`
        used = set(re.findall(r"\$\{(_[A-Z0-9_]+)\}", json.dumps(cb["steps"])))
        assert used <= set(cb["substitutions"])
        for line in script.splitlines():
            assert not re.search(r"(?<!\$)\$(?!\$)[A-Za-z_{(]", line.replace("$$", "")), line
        assert cb["steps"][-1]["id"] == "result"


# --------------------------------------------------------------------------- the SSH key steps


def _fake_conveyor(bin_dir: Path, out: Path) -> None:
    bin_dir.mkdir(parents=True, exist_ok=True)
    script = bin_dir / "conveyor"
    script.write_text(f"#!/bin/sh\nenv > {out}\necho \"$@\" >> {out}.args\n")
    script.chmod(0o755)


def test_github_key_step_writes_0600_files_and_unsets_empty_values(notes: Path,
                                                                   tmp_path: Path) -> None:
    init_project(notes, ci="github")
    wf = yaml_load(notes / ".github/workflows/conveyor.yml")
    steps = {s.get("name"): s for s in wf["jobs"]["dev"]["steps"]}
    key_step = steps["SSH key and known_hosts (files of mode 0600, from secrets)"]
    runner_temp, github_env = tmp_path / "runner", tmp_path / "github_env"
    runner_temp.mkdir()
    env = {"PATH": os.environ["PATH"], "RUNNER_TEMP": str(runner_temp),
           "GITHUB_ENV": str(github_env), "SSH_KEY": "-----BEGIN KEY-----\nabc\n-----END KEY-----",
           "KNOWN_HOSTS": "[127.0.1.1]:22 ssh-ed25519 AAAA"}
    r = subprocess.run(["bash", "-eo", "pipefail", "-c", key_step["run"]], env=env,
                       capture_output=True, text=True, check=False)
    assert r.returncode == 0, r.stderr
    exported = dict(line.split("=", 1) for line in github_env.read_text().splitlines())
    key, kh = Path(exported["CONVEYOR_SSH_KEY"]), Path(exported["CONVEYOR_KNOWN_HOSTS"])
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert stat.S_IMODE(kh.stat().st_mode) == 0o600
    assert stat.S_IMODE(key.parent.stat().st_mode) == 0o700
    assert key.read_text() == env["SSH_KEY"] + "\n"
    # a missing secret stops the job with its name
    r = subprocess.run(["bash", "-eo", "pipefail", "-c", key_step["run"]],
                       env={**env, "SSH_KEY": ""}, capture_output=True, text=True,
                       check=False)
    assert r.returncode != 0 and "CONVEYOR_SSH_KEY" in r.stdout

    # the conveyor step: empty values (unset GitHub variables/secrets) are unset
    ci_step = steps["conveyor ci"]
    _fake_conveyor(tmp_path / "bin", tmp_path / "seen")
    env = {"PATH": f"{tmp_path / 'bin'}:{os.environ['PATH']}", "CONVEYOR_DEV_HOST": "",
           "NOTES_DEV_DB_PASSWORD": "from-the-secret-store", "CONVEYOR_REGISTRY": "r:5000"}
    r = subprocess.run(["bash", "-eo", "pipefail", "-c", ci_step["run"]], env=env,
                       capture_output=True, text=True, check=False)
    assert r.returncode == 0, r.stderr
    seen = (tmp_path / "seen").read_text().splitlines()
    assert "CONVEYOR_REGISTRY=r:5000" in seen
    assert "NOTES_DEV_DB_PASSWORD=from-the-secret-store" in seen
    assert not any(line.startswith("CONVEYOR_DEV_HOST=") for line in seen)


def test_gitlab_key_script_copies_file_variables_to_0600_files(notes: Path,
                                                               tmp_path: Path) -> None:
    init_project(notes, ci="gitlab")
    ci = yaml_load(notes / ".gitlab-ci.yml")
    script = next(s for s in ci[".conveyor"]["before_script"] if "CONVEYOR_SSH_KEY" in s)
    key_src, kh_src = tmp_path / "gitlab-key", tmp_path / "gitlab-kh"
    key_src.write_text("KEY\n")
    kh_src.write_text("KH\n")
    key_src.chmod(0o644)
    script += '\necho "$CONVEYOR_SSH_KEY $CONVEYOR_KNOWN_HOSTS"\n'
    env = {"PATH": os.environ["PATH"], "CONVEYOR_SSH_KEY": str(key_src),
           "CONVEYOR_KNOWN_HOSTS": str(kh_src), "CI_JOB_ID": "77", "TMPDIR": str(tmp_path)}
    r = subprocess.run(["sh", "-e", "-c", script], env=env, capture_output=True, text=True,
                       check=False)
    assert r.returncode == 0, r.stderr
    key, kh = map(Path, r.stdout.split())
    assert key.parent == tmp_path / "conveyor-ssh-77"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600 and key.read_text() == "KEY\n"
    assert stat.S_IMODE(kh.stat().st_mode) == 0o600 and kh.read_text() == "KH\n"


def test_cloudbuild_key_lines_write_0600_files(notes: Path, tmp_path: Path) -> None:
    init_project(notes, ci="cloudbuild")
    script = yaml_load(notes / "cloudbuild.yaml")["steps"][0]["args"][1].replace("$$", "$")
    lines = script.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("umask 077"))
    end = next(i for i, line in enumerate(lines) if line.startswith("export CONVEYOR_SSH_KEY"))
    part = "\n".join(lines[start:end + 1]) + '\necho "$CONVEYOR_SSH_KEY"; env\n'
    env = {"PATH": os.environ["PATH"], "TMPDIR": str(tmp_path),
           "CONVEYOR_SSH_KEY_DATA": "KEY", "CONVEYOR_KNOWN_HOSTS_DATA": "KH"}
    r = subprocess.run(["bash", "-eu", "-c", part], env=env, capture_output=True, text=True,
                       check=False)
    assert r.returncode == 0, r.stderr
    out = r.stdout.splitlines()
    key = Path(out[0])
    assert stat.S_IMODE(key.stat().st_mode) == 0o600 and key.read_text() == "KEY\n"
    assert not any(line.startswith("CONVEYOR_SSH_KEY_DATA=") for line in out)


# --------------------------------------------------------------------------- overwrite, secrets


def test_never_overwrites_without_force(notes: Path) -> None:
    (notes / "conveyor.toml").write_text("# mine\n")
    r = conveyor("init", "-C", str(notes), "--ci", "github")
    assert r.returncode == InitRefused.exit_code == 24
    assert f"refusing to overwrite {notes / 'conveyor.toml'}" in r.stderr
    assert "--force" in r.stderr and "--ci-only" in r.stderr
    assert (notes / "conveyor.toml").read_text() == "# mine\n"
    assert not (notes / ".github").exists(), "all or nothing: the CI file was written"

    # --ci-only keeps conveyor.toml and derives the CI file from it
    (notes / "conveyor.toml").write_text((EXAMPLE / "conveyor.toml").read_text())
    r = conveyor("init", "-C", str(notes), "--ci", "gitlab", "--ci-only")
    assert r.returncode == 0, r.stderr
    assert (notes / "conveyor.toml").read_text() == (EXAMPLE / "conveyor.toml").read_text()
    assert "CONVEYOR_PROD_HOST" in (notes / ".gitlab-ci.yml").read_text()

    # an existing CI file alone is refused too
    (notes / ".gitlab-ci.yml").write_text("# theirs\n")
    r = conveyor("init", "-C", str(notes), "--ci", "gitlab", "--ci-only")
    assert r.returncode == InitRefused.exit_code and str(notes / ".gitlab-ci.yml") in r.stderr
    assert (notes / ".gitlab-ci.yml").read_text() == "# theirs\n"

    r = conveyor("init", "-C", str(notes), "--ci", "gitlab", "--force")
    assert r.returncode == 0, r.stderr
    assert (notes / "conveyor.toml").read_text().startswith("# conveyor configuration of")
    assert (notes / ".gitlab-ci.yml").read_text().startswith("# conveyor pipeline")


def test_no_secret_values_in_generated_files(notes: Path) -> None:
    # a literal password in the compose file and secrets in the environment of `init`
    compose = notes / "docker-compose.yml"
    compose.write_text(compose.read_text().replace(
        "POSTGRES_PASSWORD: ${NOTES_DB_PASSWORD:-notes-local}",
        "POSTGRES_PASSWORD: literal-Compose-Pw-123"))
    secret_values = {
        "NOTES_DEV_DB_PASSWORD": "dev-Secret-Value-1",
        "NOTES_PROD_DB_PASSWORD": "prod-Secret-Value-2",
        "CONVEYOR_SSH_KEY": "-----BEGIN OPENSSH PRIVATE KEY-----xyz",
        "CONVEYOR_REGISTRY_PASSWORD": "registry-Secret-3",
    }
    written = []
    for system in CI_SYSTEMS:
        r = conveyor("init", "-C", str(notes), "--ci", system, "--force",
                     env=clean_env(**secret_values))
        assert r.returncode == 0, r.stderr
        written += [notes / f for f in CI_FILES[system]]
    written.append(notes / "conveyor.toml")
    for path in written:
        text = path.read_text()
        for value in [*secret_values.values(), "literal-Compose-Pw-123"]:
            assert value not in text, f"{value!r} in {path}"
        assert "BEGIN" not in text and "PRIVATE KEY" not in text
    config = tomllib.loads((notes / "conveyor.toml").read_text())
    # every password is a reference; the local one names a variable to export instead
    assert config["environments"]["local"]["database"]["password"] == {"env": "NOTES_DB_PASSWORD"}
    for env in ("dev", "prod"):
        assert config["environments"][env]["database"]["password"] == \
            {"env": f"NOTES_{env.upper()}_DB_PASSWORD"}
    text = (notes / "conveyor.toml").read_text()
    assert "literal POSTGRES_PASSWORD; it is not copied" in text
    # the CI files take every secret from the CI's store
    gh = (notes / ".github/workflows/conveyor.yml").read_text()
    for name in ("CONVEYOR_SSH_KEY", "CONVEYOR_KNOWN_HOSTS", "NOTES_DEV_DB_PASSWORD",
                 "NOTES_PROD_DB_PASSWORD", "CONVEYOR_REGISTRY_PASSWORD"):
        assert f"${{{{ secrets.{name} }}}}" in gh


# --------------------------------------------------------------------------- inspection


def test_yaml_subset_parser_agrees_with_a_yaml_library() -> None:
    from ruamel.yaml import YAML

    def stringify(v):
        if isinstance(v, dict):
            return {str(k): stringify(x) for k, x in v.items()}
        if isinstance(v, list):
            return [stringify(x) for x in v]
        return None if v is None else (str(v).lower() if isinstance(v, bool) else str(v))

    samples = [(EXAMPLE / "docker-compose.yml").read_text(), """
services:
  db:
    image: "postgres:16"   # quoted, with a comment
    environment:
      - POSTGRES_USER=app
      - POSTGRES_PASSWORD=${DB_PW:?set it}
    ports: ["5432:5432", '127.0.0.1:6543:5432']
    command: >
      postgres -c fsync=off
      -c full_page_writes=off
  web:
    build: {context: ., dockerfile: docker/Dockerfile}
    ports:
    - target: 3000
      published: "8080"
      host_ip: 127.0.0.1
    healthcheck:
      test: ["CMD", "curl", "-f", "http://localhost:3000/healthz"]
    labels:
      a.b: "x: y # not a comment"
volumes:
  data: {}
  empty:
"""]
    for text in samples:
        assert parse_yaml_subset(text) == stringify(YAML(typ="safe").load(text))


def _write(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    return root


def test_inspect_other_layout(tmp_path: Path, monkeypatch) -> None:
    """compose.yaml with list environment, long port syntax, diesel.toml, a Rust app."""
    monkeypatch.delenv("SHOP_DB_PASSWORD", raising=False)
    root = _write(tmp_path / "My Shop", {
        "Cargo.toml": "[package]\nname = \"shop\"\n",
        "diesel.toml": "[migrations_directory]\ndir = \"db/schema-migrations\"\n",
        "db/schema-migrations/2024-01-01-000000_init/up.sql": "CREATE TABLE t (id int);\n",
        "db/schema-migrations/2024-01-02-000000_more/up.sql": "ALTER TABLE t ADD x int;\n",
        "docker/Dockerfile": "FROM rust\nWORKDIR /srv\nCOPY db/schema-migrations/ ./migrations/\n"
                             "EXPOSE 3000\n",
        "compose.yaml": """services:
  database:
    image: postgres:16-alpine
    environment:
      - POSTGRES_USER=shop
      - POSTGRES_DB=shopdb
      - POSTGRES_PASSWORD=${SHOP_DB_PASSWORD}
    ports:
      - target: 5432
        published: 6543
        host_ip: 127.0.0.1
  web:
    build: {context: ., dockerfile: docker/Dockerfile}
    image: registry.example.com/team/shop-web:dev
    environment:
      SECRET_KEY: ${SECRET_KEY}
      RUST_LOG: info
    ports: ["127.0.0.1:8081:3000"]
""",
    })
    facts = inspect_project(root)
    assert facts.name == "shop-web"
    assert facts.dockerfile == "docker/Dockerfile"
    assert facts.port == 3000 and facts.app_host_port == 8081
    assert facts.migrations_dir == "db/schema-migrations" and facts.migrations_count == 2
    assert facts.migrations_container_dir == "/srv/migrations"
    assert facts.test_command == ["cargo", "test"]
    assert facts.db is not None
    assert (facts.db.service, facts.db.user, facts.db.name, facts.db.host_port) == \
        ("database", "shop", "shopdb", 6543)
    assert (facts.db.password_var, facts.db.password_default) == ("SHOP_DB_PASSWORD", None)
    assert facts.app_env_names == ["RUST_LOG", "SECRET_KEY"]
    init_project(root, ci="github")
    cfg = load_config(root)
    assert cfg.environment("local").app_service == "web"
    assert cfg.environment("local").database.port == 6543
    assert cfg.environment("dev").database.password.env == "SHOP_WEB_DEV_DB_PASSWORD"
    assert cfg.environment("dev").test_command == ["cargo", "test"]
    v = validate("github", root / ".github/workflows/conveyor.yml")
    assert v.returncode == 0, v.stdout


def test_inspect_bare_directory(tmp_path: Path) -> None:
    """Nothing to find: a loadable config anyway, every guess said."""
    root = tmp_path / "bare"
    root.mkdir()
    facts = inspect_project(root)
    text = " ".join(facts.notes)
    assert "no Dockerfile" in text and "port" in text and "migrations" in text
    init_project(root, ci="cloudbuild")
    cfg = load_config(root)
    assert cfg.app.port == 8000
    assert cfg.environment("local").database.kind == "url"
    assert "guess" in (root / "conveyor.toml").read_text()
    v = validate("cloudbuild", root / "cloudbuild.yaml", root / "cloudbuild-promote.yaml")
    assert v.returncode == 0, v.stdout


def test_ci_needs_from_the_example_config() -> None:
    needs = ci_needs((EXAMPLE / "conveyor.toml").read_text())
    names = [n for n, _ in needs.variables]
    assert "CONVEYOR_DEV_HOST" in names and "CONVEYOR_REGISTRY" in names
    assert "CONVEYOR_SSH_KEY" not in names  # written to a file by the job, not a variable
    # the example's database passwords are generated on the hosts: the CI keeps none of them
    assert needs.secrets == []
    assert needs.prod_secrets == []
    assert [n for n, _ in needs.prod_variables] == ["CONVEYOR_PROD_HOST", "CONVEYOR_PROD_ADDRESS"]


def test_compose_interpolation_translation() -> None:
    t = to_conveyor_interpolation
    assert t("${A:-x}") == "${A:-x}"
    assert t("${A-x}") == "${A:-x}"
    assert t("$A/${B}") == "${A:-}/${B:-}"
    assert t("${A:?need it}") == "${A:-}"
    assert t("$$literal") == "$$literal"
    assert resolve_defaults("127.0.0.1:${P:-8000}") == "127.0.0.1:8000"
