"""`conveyor init`: inspect an application repository, write conveyor.toml and a CI file.

What is inspected (best effort; every guess is written as a commented value that the user can
check, and what could not be found is said in a comment and in the command's output):

* the Dockerfile: the port it EXPOSEs, the path its HEALTHCHECK requests, where it COPYs the
  migrations directory;
* the compose file (docker-compose.yml, compose.yaml, ...): the PostgreSQL service (image, user,
  database, password variable, published port) and the app service (build context, Dockerfile,
  build args, published port, image name);
* a Diesel-layout migrations directory (`<version>_<name>/up.sql`, `diesel.toml` honoured);
* the test suite (pytest, cargo, npm, go, make) for the environments' `test_command`.

Secrets are never copied: every password is a reference (`{ env = "VAR" }`). The one value
taken over is a local-development default password that the compose file itself declares
(`${VAR:-default}`), so that `conveyor up` and `docker compose up` agree; it is marked as such.

The CI files are `string.Template` files in `conveyor/templates` with `@@{name}` placeholders
(`$` and `${{ }}` belong to the shells and CI systems). No YAML library is needed at runtime: the
compose file is read with PyYAML's safe loader.
"""

from __future__ import annotations

import json
import os
import re
import string
import tomllib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from conveyor.errors import ConveyorError

CI_SYSTEMS = ("github", "gitlab", "cloudbuild")
CI_FILES = {
    "github": (".github/workflows/conveyor.yml",),
    "gitlab": (".gitlab-ci.yml",),
    "cloudbuild": ("cloudbuild.yaml", "cloudbuild-promote.yaml"),
}
COMPOSE_NAMES = ("compose.yaml", "compose.yml", "docker-compose.yaml", "docker-compose.yml")
POSTGRES_PORT = 5432
JUNIT_FILE = "conveyor-junit.xml"
SUMMARY_FILE = "conveyor-summary.md"


class InitError(ConveyorError):
    exit_code = 2


class FileExistsRefused(InitError):
    def __init__(self, paths: list[Path], ci_only_possible: bool = False) -> None:
        self.paths = paths
        names = ", ".join(str(p) for p in paths)
        hint = "pass --force to overwrite, or move the file aside and run `conveyor init` again"
        if ci_only_possible:
            hint += "; to keep conveyor.toml and write only the CI file: --ci-only"
        super().__init__(
            f"refusing to overwrite {names}: "
            f"{'it exists' if len(paths) == 1 else 'they exist'} already; nothing was written",
            hint=hint,
        )


# --------------------------------------------------------------------------- YAML


class YamlSubsetError(ValueError):
    pass


def _stringify(value: Any) -> Any:
    """Scalars as strings (compose values are read as text: ports, versions, booleans)."""
    if isinstance(value, dict):
        return {str(k): _stringify(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_stringify(v) for v in value]
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def parse_yaml_subset(text: str) -> Any:
    """Parse a compose file with PyYAML (safe loader); scalars become strings."""
    import yaml

    try:
        return _stringify(yaml.safe_load(text))
    except yaml.YAMLError as exc:
        raise YamlSubsetError(str(exc)) from None


# --------------------------------------------------------------------------- interpolation

_COMPOSE_VAR = re.compile(
    r"\$(?:(\$)|\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}|([A-Za-z_][A-Za-z0-9_]*))")


def resolve_defaults(value: str) -> str:
    """A compose value with each `${VAR:-default}` replaced by its default ('' without one).

    The process environment is ignored on purpose: what `init` writes must not depend on what
    happens to be exported on the machine that runs it.
    """
    def sub(m: re.Match[str]) -> str:
        if m.group(1):
            return "$"
        if m.group(3) and m.group(3).endswith("-"):
            return m.group(4)
        return ""

    return _COMPOSE_VAR.sub(sub, value)


def to_conveyor_interpolation(value: str) -> str:
    """Compose interpolation -> conveyor.toml's (`${VAR}`, `${VAR:-default}`, `$$`).

    A variable without a default becomes `${VAR:-}` (compose too reads an unset one as empty),
    so that a global section of conveyor.toml still loads where it is not set.
    """
    def sub(m: re.Match[str]) -> str:
        if m.group(1):
            return "$$"
        name = m.group(2) or m.group(5)
        if m.group(3) and m.group(3).endswith("-"):
            return "${%s:-%s}" % (name, m.group(4))
        return "${%s:-}" % name

    return _COMPOSE_VAR.sub(sub, value)


def compose_variables(value: str) -> list[tuple[str, str | None]]:
    """The variables a compose value uses, each with its default (None when it has none)."""
    out = []
    for m in _COMPOSE_VAR.finditer(value):
        if m.group(1):
            continue
        name = m.group(2) or m.group(5)
        default = m.group(4) if m.group(3) and m.group(3).endswith("-") else None
        out.append((name, default))
    return out


# --------------------------------------------------------------------------- inspection


@dataclass
class PortMapping:
    container: int
    host: int | None
    host_ip: str | None
    raw_host: str | None  # the published port as written (may hold ${VAR:-default})


@dataclass
class DbFacts:
    service: str
    image_raw: str
    image: str
    user: str
    name: str
    password_var: str | None
    password_default: str | None
    password_literal: bool
    host_ip: str
    host_port: int | None
    host_port_raw: str | None = None


@dataclass
class Facts:
    root: Path
    name: str
    dockerfile: str | None = None
    context: str = "."
    port: int | None = None
    port_source: str | None = None
    health_path: str | None = None
    health_source: str | None = None
    build_args: dict[str, str] = field(default_factory=dict)
    compose_file: str | None = None
    compose_error: str | None = None
    app_service: str | None = None
    app_host_ip: str = "127.0.0.1"
    app_host_port: int | None = None
    app_host_port_raw: str | None = None
    app_env_names: list[str] = field(default_factory=list)
    db: DbFacts | None = None
    migrations_dir: str | None = None
    migrations_count: int = 0
    migrations_source: str | None = None
    migrations_container_dir: str | None = None
    test_command: list[str] = field(default_factory=list)
    test_setup: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def env_prefix(self) -> str:
        return re.sub(r"[^A-Z0-9]+", "_", self.name.upper()).strip("_") or "APP"


def _app_name(text: str) -> str:
    name = re.sub(r"[^a-z0-9_.-]+", "-", text.lower()).strip("-._")
    return name if name and re.match(r"^[a-z0-9]", name) else "app"


def _dockerfile_lines(text: str) -> list[str]:
    out, cur = [], ""
    for raw in text.splitlines():
        line = raw.strip()
        if not cur and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue
        if line.endswith("\\"):
            cur += line[:-1] + " "
            continue
        out.append((cur + line).strip())
        cur = ""
    if cur.strip():
        out.append(cur.strip())
    return out


def _inspect_dockerfile(facts: Facts, path: Path) -> None:
    try:
        lines = _dockerfile_lines(path.read_text(encoding="utf-8", errors="replace"))
    except OSError as exc:
        facts.notes.append(f"cannot read {path.name}: {exc.strerror}")
        return
    workdir = "/"
    copies: list[tuple[list[str], str, str]] = []
    for line in lines:
        word, _, rest = line.partition(" ")
        word = word.upper()
        rest = rest.strip()
        if word == "FROM":
            workdir = "/"
        elif word == "WORKDIR":
            workdir = rest if rest.startswith("/") else workdir.rstrip("/") + "/" + rest
        elif word == "EXPOSE" and facts.port is None:
            m = re.match(r"(\d+)", rest)
            if m:
                facts.port, facts.port_source = int(m.group(1)), f"{path.name} EXPOSE"
        elif word == "HEALTHCHECK" and facts.health_path is None:
            m = re.search(r"https?://[^/\s'\"]+(/[A-Za-z0-9_./~-]*)", rest)
            if m:
                facts.health_path, facts.health_source = m.group(1), f"{path.name} HEALTHCHECK"
        elif word in ("COPY", "ADD"):
            args = rest
            if args.startswith("["):
                try:
                    parts = json.loads(args)
                except ValueError:
                    continue
            else:
                parts = [p for p in args.split() if not p.startswith("--")]
            if len(parts) >= 2:
                copies.append((parts[:-1], parts[-1], workdir))
    facts._copies = copies  # type: ignore[attr-defined]


def _container_dir_for(facts: Facts) -> None:
    if not facts.migrations_dir:
        return
    wanted = facts.migrations_dir.strip("/").removeprefix("./")
    for sources, dest, workdir in getattr(facts, "_copies", []):
        for src in sources:
            s = src.strip("/").removeprefix("./")
            if s == wanted:
                # COPY of a directory copies its contents into the destination
                d = dest if dest.startswith("/") else workdir.rstrip("/") + "/" + dest
                facts.migrations_container_dir = os.path.normpath(d)
                return
            if s in (".", ""):
                d = dest if dest.startswith("/") else workdir.rstrip("/") + "/" + dest
                facts.migrations_container_dir = os.path.normpath(d.rstrip("/") + "/" + wanted)


def _ports(service: dict) -> list[PortMapping]:
    out = []
    for entry in service.get("ports") or []:
        if isinstance(entry, dict):
            target = str(entry.get("target") or "")
            published = entry.get("published")
            raw_host = str(published) if published is not None else None
            ip = entry.get("host_ip")
        else:
            text = str(entry).split("/")[0]
            # ip:host:container | host:container | container; ${VAR:-d} may hold ':'
            parts = re.findall(r"(?:\$\{[^}]*\}|[^:])+", text)
            target = parts[-1] if parts else ""
            raw_host = parts[-2] if len(parts) >= 2 else None
            ip = parts[-3] if len(parts) >= 3 else None
        try:
            container = int(resolve_defaults(target).split("-")[0])
        except ValueError:
            continue
        host = None
        if raw_host:
            try:
                host = int(resolve_defaults(raw_host).split("-")[0])
            except ValueError:
                host = None
        out.append(PortMapping(container, host, resolve_defaults(ip) if ip else None, raw_host))
    return out


def _environment(service: dict) -> dict[str, str | None]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        out: dict[str, str | None] = {}
        for item in env:
            k, sep, v = str(item).partition("=")
            out[k] = v if sep else None
        return out
    if isinstance(env, dict):
        return {str(k): (None if v is None else str(v)) for k, v in env.items()}
    return {}


_PG_IMAGE = re.compile(r"(^|/)(postgres|postgis|timescaledb[^:/]*|pgvector|supabase/postgres)"
                       r"(:|$)|postgres", re.I)


def _inspect_compose(facts: Facts, path: Path) -> None:
    facts.compose_file = path.name
    try:
        data = parse_yaml_subset(path.read_text(encoding="utf-8", errors="replace"))
    except (OSError, YamlSubsetError) as exc:
        facts.compose_error = str(exc)
        facts.notes.append(f"could not read {path.name} ({exc}); its services were not used")
        return
    services = (data or {}).get("services") if isinstance(data, dict) else None
    if not isinstance(services, dict):
        facts.notes.append(f"{path.name} has no `services` table")
        return
    db_name = app_name = None
    for name, svc in services.items():
        if not isinstance(svc, dict):
            continue
        image = resolve_defaults(str(svc.get("image") or ""))
        env = _environment(svc)
        if db_name is None and (_PG_IMAGE.search(image) or
                                any(k.startswith("POSTGRES_") for k in env)) \
                and not svc.get("build"):
            db_name = name
    candidates = [n for n, s in services.items() if isinstance(s, dict) and s.get("build")
                  and n != db_name]
    if not candidates:
        candidates = [n for n, s in services.items() if isinstance(s, dict) and n != db_name]
    if candidates:
        app_name = candidates[0]

    if db_name is not None:
        svc = services[db_name]
        env = _environment(svc)
        user = resolve_defaults(env.get("POSTGRES_USER") or "") or "postgres"
        dbname = resolve_defaults(env.get("POSTGRES_DB") or "") or user
        raw_pw = env.get("POSTGRES_PASSWORD")
        pw_var = pw_default = None
        literal = False
        if raw_pw:
            used = compose_variables(raw_pw)
            if used and re.fullmatch(r"\$\{?[A-Za-z_][A-Za-z0-9_]*(:?-[^}]*)?\}?", raw_pw):
                pw_var, pw_default = used[0]
            else:
                literal = True
        mapping = next((p for p in _ports(svc) if p.container == POSTGRES_PORT), None)
        image_raw = str(svc.get("image") or "postgres:16")
        facts.db = DbFacts(
            service=db_name, image_raw=image_raw, image=resolve_defaults(image_raw),
            user=user, name=dbname, password_var=pw_var, password_default=pw_default,
            password_literal=literal,
            host_ip=(mapping.host_ip if mapping and mapping.host_ip else "127.0.0.1"),
            host_port=mapping.host if mapping else None,
            host_port_raw=mapping.raw_host if mapping else None,
        )
        if mapping is None or mapping.host is None:
            facts.notes.append(
                f"the compose service `{db_name}` publishes no port for 5432: conveyor's local "
                f"stage connects from this machine, so publish one (e.g. "
                f"\"127.0.0.1:5432:5432\") and set environments.local.database.port")
    else:
        facts.notes.append(f"no PostgreSQL service found in {path.name}")

    if app_name is not None:
        facts.app_service = app_name
        svc = services[app_name]
        build = svc.get("build")
        if isinstance(build, str):
            facts.context = build
        elif isinstance(build, dict):
            facts.context = str(build.get("context") or ".")
            if build.get("dockerfile"):
                facts.dockerfile = str(build["dockerfile"])
            args = build.get("args") or {}
            if isinstance(args, list):
                args = {str(a).partition("=")[0]: str(a).partition("=")[2] for a in args}
            for k, v in (args or {}).items():
                if v is not None:
                    facts.build_args[str(k)] = to_conveyor_interpolation(str(v))
        image = str(svc.get("image") or "")
        if image:
            base = resolve_defaults(image).rsplit("/", 1)[-1].split(":")[0].split("@")[0]
            if base:
                facts.name = _app_name(base)
        facts.app_env_names = sorted(k for k in _environment(svc) if k != "DATABASE_URL")
        ports = _ports(svc)
        chosen = next((p for p in ports if facts.port and p.container == facts.port), None)
        chosen = chosen or (ports[0] if ports else None)
        if chosen:
            if facts.port is None:
                facts.port, facts.port_source = chosen.container, f"{path.name} ports"
            facts.app_host_port = chosen.host
            facts.app_host_port_raw = chosen.raw_host
            if chosen.host_ip:
                facts.app_host_ip = chosen.host_ip
        hc = svc.get("healthcheck")
        if facts.health_path is None and isinstance(hc, dict):
            test = hc.get("test")
            text = " ".join(map(str, test)) if isinstance(test, list) else str(test or "")
            m = re.search(r"https?://[^/\s'\"]+(/[A-Za-z0-9_./~-]*)", text)
            if m:
                facts.health_path, facts.health_source = m.group(1), f"{path.name} healthcheck"


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
        raise InitError(f"{root} is not a directory", hint="pass the application's directory "
                        "with -C DIR")
    facts = Facts(root=root, name=_app_name(root.name))
    compose = next((root / n for n in COMPOSE_NAMES if (root / n).is_file()), None)
    # the Dockerfile first: its EXPOSE port decides which of the compose ports is the app's
    df = root / "Dockerfile"
    if df.is_file():
        facts.dockerfile = "Dockerfile"
        _inspect_dockerfile(facts, df)
    if compose is not None:
        _inspect_compose(facts, compose)
        if facts.dockerfile and facts.dockerfile != "Dockerfile":
            other = root / facts.context / facts.dockerfile
            if other.is_file():
                _inspect_dockerfile(facts, other)
    if facts.dockerfile is None:
        facts.notes.append("no Dockerfile found: conveyor builds the app image from one; "
                           "[app] dockerfile = \"Dockerfile\" is a guess")
    if facts.port is None:
        facts.notes.append("the app's port was not found (no EXPOSE, no compose ports); "
                           "[app] port = 8000 is a guess")
    _find_migrations(facts)
    _container_dir_for(facts)
    if facts.migrations_dir and facts.migrations_container_dir is None:
        facts.notes.append(
            f"the Dockerfile does not COPY {facts.migrations_dir}/ into the image: conveyor "
            f"runs the migrations from a temporary container of the app image, so add e.g. "
            f"`COPY {facts.migrations_dir} /app/migrations`")
    _find_tests(facts)
    return facts


# --------------------------------------------------------------------------- conveyor.toml


def _q(value: str) -> str:
    """A TOML basic string."""
    return json.dumps(value, ensure_ascii=True)


def _arr(values: list[str]) -> str:
    return "[" + ", ".join(_q(v) for v in values) + "]"


def render_config(facts: Facts) -> str:
    P = facts.env_prefix
    port = facts.port or 8000
    health = facts.health_path or "/health"
    mig_dir = facts.migrations_dir or "migrations"
    container_dir = facts.migrations_container_dir or "/app/migrations"
    L: list[str] = []

    def add(line: str, comment: str | None = None) -> None:
        L.append(f"{line:<37} # {comment}" if comment else line)

    add(f"# conveyor configuration of \"{facts.name}\", written by `conveyor init` from what it")
    add("# found in this directory: check every value marked `# found:` or `# guess:`.")
    add("#")
    add("# Values may use ${VAR} and ${VAR:-default} from the environment. Secrets are always")
    add("# references, { env = \"VAR\" } or { file = \"path\" }, never literal values: in CI they")
    add("# come from the CI system's secret store (see the CI file and conveyor's docs/ci.md).")
    add("# Check this file with `conveyor config check`.")
    add("")
    add("[app]")
    add(f"name = {_q(facts.name)}")
    add(f"image = {_q(facts.name)}", "repository; the registry address is prefixed")
    add(f"dockerfile = {_q(facts.dockerfile or 'Dockerfile')}",
        None if facts.dockerfile else "guess: no Dockerfile found")
    add(f"context = {_q(facts.context)}")
    add(f"port = {port}", f"found: {facts.port_source}" if facts.port_source else
        "guess: the port the app listens on inside its container")
    add("stop_timeout = 10")
    add("")
    add("[app.build_args]")
    if facts.build_args:
        add(f"# found: build args of the compose service `{facts.app_service}`")
        for k, v in facts.build_args.items():
            add(f"{k} = {_q(v)}")
    else:
        add("# none found; e.g. BASE_IMAGE = \"${BASE_IMAGE:-python:3.12-slim}\"")
    add("")
    add("[app.health]")
    add(f"path = {_q(health)}", f"found: {facts.health_source}" if facts.health_source else
        "guess: the app must answer 200 here once it can serve")
    add("timeout = 60")
    add("interval = 0.5")
    add("")
    add("[app.env]")
    add("# Plain settings for every environment. DATABASE_URL is set by conveyor.")
    if facts.app_env_names:
        add(f"# {facts.compose_file} gives the app these variables (not copied; add what dev and")
        add("# prod need, and put secrets under [app.secrets] as references):")
        add("#   " + ", ".join(facts.app_env_names))
    add("")
    add("[app.secrets]")
    add("# e.g. SECRET_KEY = { env = \"" + P + "_SECRET_KEY\" }")
    add("")
    add("[migrations]")
    mig_note = (f"found: {facts.migrations_count} migration(s)"
                + (" (diesel.toml)" if facts.migrations_source == "diesel.toml" else "")
                if facts.migrations_dir else "guess: no migrations directory found")
    add(f"dir = {_q(mig_dir)}", mig_note)
    add("# Diesel layout: <version>_<name>/{up.sql,down.sql[,metadata.toml]}")
    add(f"container_dir = {_q(container_dir)}",
        "found: the Dockerfile's COPY" if facts.migrations_container_dir else
        "guess: where the image holds the migrations")
    add("command = []",
        "[] = conveyor's built-in engine; or e.g. [\"diesel\", \"migration\", \"run\"]")
    add("lock_timeout = 60")
    add("")
    add("[registry]")
    add("# CI sets CONVEYOR_REGISTRY (e.g. europe-docker.pkg.dev/PROJECT/REPO, ghcr.io/OWNER);")
    add("# the default is a registry on this machine: docker run -p 127.0.0.1:5000:5000 registry:2")
    add("address = \"${CONVEYOR_REGISTRY:-127.0.0.1:5000}\"")
    add("# The CI file logs in with `docker login`; to have conveyor log in instead:")
    add("# username = { env = \"CONVEYOR_REGISTRY_USERNAME\" }")
    add("# password = { env = \"CONVEYOR_REGISTRY_PASSWORD\" }")
    add("")

    # -- local
    add("[environments.local]")
    if facts.compose_file:
        add(f"compose_file = {_q(facts.compose_file)}")
    else:
        add("# no compose file found: the local stage needs one (db + app services)")
        add("# compose_file = \"docker-compose.yml\"")
    if facts.app_service:
        add(f"app_service = {_q(facts.app_service)}", "the compose service that runs the app")
    add(f"address = {_q(facts.app_host_ip or '127.0.0.1')}")
    host_port = facts.app_host_port or port
    add(f"port = {host_port}", None if facts.app_host_port else "guess: the app's published port")
    raw = facts.app_host_port_raw
    if raw and compose_variables(raw):
        url = f"http://{facts.app_host_ip or '127.0.0.1'}:{to_conveyor_interpolation(raw)}"
        add(f"url = {_q(url)}")
    if facts.test_command:
        add(f"test_command = {_arr(facts.test_command)}")
    else:
        add("test_command = []", "e.g. [\"pytest\", \"-q\", \"tests\"]")
    add("")
    add("[environments.local.database]")
    db = facts.db
    if db is not None:
        add("kind = \"compose\"")
        add(f"service = {_q(db.service)}", f"found: {facts.compose_file}")
        add(f"name = {_q(db.name)}")
        add(f"user = {_q(db.user)}")
        if db.password_var and db.password_default:
            add(f"# the default below is the one {facts.compose_file} declares for local "
                "development")
            add(f"password = {{ env = {_q(db.password_var)}, "
                f"default = {_q(db.password_default)} }}")
        elif db.password_var:
            add(f"password = {{ env = {_q(db.password_var)} }}")
        else:
            if db.password_literal:
                add(f"# {facts.compose_file} sets a literal POSTGRES_PASSWORD; it is not copied "
                    "here:")
                add(f"# export {P}_DB_PASSWORD with that value (or make the compose file read it)")
            add(f"password = {{ env = {_q(P + '_DB_PASSWORD')} }}")
        add(f"host = {_q(db.host_ip)}")
        if db.host_port and db.host_port_raw and compose_variables(db.host_port_raw):
            add(f"port = {_q(to_conveyor_interpolation(db.host_port_raw))}",
                f"the port {facts.compose_file} publishes")
        else:
            add(f"port = {db.host_port or POSTGRES_PORT}",
                None if db.host_port else "guess: publish 5432 in the compose file")
    else:
        add("# no PostgreSQL service found in a compose file: an existing server by URL")
        add("kind = \"url\"")
        add(f"url = {{ env = {_q(P + '_LOCAL_DATABASE_URL')} }}")
    add("")

    # -- dev and prod
    pg_image = db.image_raw if db is not None else "postgres:16"
    pg_image = to_conveyor_interpolation(pg_image)
    db_name = db.name if db is not None else facts.name.replace("-", "_")
    db_user = db.user if db is not None else facts.name.replace("-", "_")
    for env in ("dev", "prod"):
        E = env.upper()
        add(f"[environments.{env}]")
        add(f"# The {env} VM, reached over SSH; the host key is always verified against "
            "known_hosts.")
        add(f"host = \"${{CONVEYOR_{E}_HOST:-deploy@{env}.example.internal:22}}\"",
            "user@host[:port]")
        add("known_hosts = \"${CONVEYOR_KNOWN_HOSTS:-~/.ssh/known_hosts}\"")
        add("ssh_key = \"${CONVEYOR_SSH_KEY:-~/.ssh/id_ed25519}\"")
        add(f"address = \"${{CONVEYOR_{E}_ADDRESS:-127.0.0.1}}\"",
            "the VM address the app is published on")
        add(f"port = {8080}")
        if env == "dev":
            if facts.test_command:
                add(f"test_command = {_arr(facts.test_command)}")
            else:
                add("test_command = []")
        else:
            add("promote_from = \"dev\"", "prod only takes an image that passed dev")
            add(f"checks = [{{ path = {_q(health)}, status = 200 }}]")
            add("# production validation: a read-only smoke test suite, run against the new app")
            add("validate_command = []")
        add("")
        add(f"[environments.{env}.env]")
        add(f"APP_ENV = {_q(env)}")
        add("")
        add(f"[environments.{env}.database]")
        add("# a PostgreSQL container that conveyor manages on the VM (`conveyor setup "
            f"{env}`), or an")
        add(f"# existing server: kind = \"url\" and url = {{ env = \"{P}_{E}_DATABASE_URL\" }}")
        add("kind = \"container\"")
        add(f"image = {_q(pg_image)}")
        add(f"name = {_q(db_name)}")
        add(f"user = {_q(db_user)}")
        add(f"password = {{ env = {_q(f'{P}_{E}_DB_PASSWORD')} }}")
        add("")
        if env == "prod":
            add("[environments.prod.backup]")
            add(f"dir = {_q('/var/lib/conveyor/backups/' + facts.name)}")
            add("keep = 10")
            add("")
    return "\n".join(L).rstrip() + "\n"


# --------------------------------------------------------------------------- CI files


@dataclass
class CiNeeds:
    """What a CI job needs from the CI system, derived from conveyor.toml."""

    #: (name, default or None): plain settings, e.g. CONVEYOR_DEV_HOST
    variables: list[tuple[str, str | None]]
    #: environment variables that hold secrets (SecretRef env), e.g. NOTES_DEV_DB_PASSWORD
    secrets: list[str]
    #: secrets only the prod job needs
    prod_secrets: list[str]
    prod_variables: list[tuple[str, str | None]]


#: written to files by the CI job (the variables then hold the files' paths)
FILE_SECRETS = ("CONVEYOR_SSH_KEY", "CONVEYOR_KNOWN_HOSTS")
REGISTRY_SECRETS = ("CONVEYOR_REGISTRY_USERNAME", "CONVEYOR_REGISTRY_PASSWORD")
_CONVEYOR_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def ci_needs(config_text: str) -> CiNeeds:
    raw = tomllib.loads(config_text)

    def walk(value: Any, variables: dict, secrets: list, key: str = "") -> None:
        if isinstance(value, dict):
            if "env" in value and isinstance(value["env"], str) and \
                    set(value) <= {"env", "default"} and key != "env":
                if value["env"] not in secrets:
                    secrets.append(value["env"])
                return
            for k, v in value.items():
                walk(v, variables, secrets, k)
        elif isinstance(value, list):
            for v in value:
                walk(v, variables, secrets, key)
        elif isinstance(value, str):
            for m in _CONVEYOR_VAR.finditer(value):
                variables.setdefault(m.group(1), m.group(2))

    def of(section: Any) -> tuple[dict, list]:
        variables: dict = {}
        secrets: list = []
        walk(section, variables, secrets)
        return variables, secrets

    envs = raw.get("environments", {})
    g_vars, g_secrets = of({k: v for k, v in raw.items() if k in ("registry",)})
    d_vars, d_secrets = of(envs.get("dev", {}))
    p_vars, p_secrets = of(envs.get("prod", {}))
    dev_vars = {**g_vars, **d_vars}
    skip = set(FILE_SECRETS) | set(REGISTRY_SECRETS)
    variables = [(k, v) for k, v in dev_vars.items() if k not in skip]
    prod_variables = [(k, v) for k, v in p_vars.items() if k not in skip and k not in dev_vars]
    secrets = [s for s in g_secrets + d_secrets if s not in skip]
    prod_secrets = [s for s in p_secrets if s not in skip and s not in secrets]
    return CiNeeds(variables, list(dict.fromkeys(secrets)), prod_secrets, prod_variables)


class _Template(string.Template):
    delimiter = "@@"


def _template(name: str) -> _Template:
    text = resources.files("conveyor.templates").joinpath(name).read_text(encoding="utf-8")
    return _Template(text)


def _indent(lines: list[str], n: int) -> str:
    pad = " " * n
    return "\n".join(pad + line if line else "" for line in lines)


def default_package_spec() -> str:
    """How the CI job installs conveyor (pip requirement); `conveyor init --package` overrides.

    Point it at where your conveyor comes from (a wheel URL, `git+https://...@vX.Y.Z`, your
    package index): a bare name on a public index could resolve to someone else's package.
    """
    from conveyor import __version__

    return os.environ.get("CONVEYOR_INIT_PACKAGE") or f"conveyor=={__version__}"


def _test_setup(facts: Facts) -> str:
    import shlex

    return shlex.join(facts.test_setup) if facts.test_setup else ""


def render_github(facts: Facts, needs: CiNeeds, package: str | None = None) -> str:
    def job(promote: bool) -> dict[str, str]:
        variables = needs.variables + (needs.prod_variables if promote else [])
        secrets = needs.secrets + (needs.prod_secrets if promote else [])
        env = [f"{n}: ${{{{ vars.{n} }}}}" for n, _ in variables]
        env += [f"{n}: ${{{{ secrets.{n} }}}}" for n in secrets]
        names = [n for n, _ in variables] + secrets
        return {
            "env": _indent(env, 10) if env else " " * 10 + "{}",
            "names": " ".join(names) or "CONVEYOR_NOTHING",
        }

    dev, prod = job(False), job(True)
    setup = _test_setup(facts)
    return _template("github.yml").substitute(
        app=facts.name,
        package=_q(package or default_package_spec()),
        dev_env=dev["env"], dev_names=dev["names"],
        prod_env=prod["env"], prod_names=prod["names"],
        test_setup=setup or "true  # nothing to install for the tests",
        secrets_list=_indent(_secret_doc(needs, "github"), 0),
        junit=JUNIT_FILE, summary=SUMMARY_FILE,
    )


def render_gitlab(facts: Facts, needs: CiNeeds, package: str | None = None) -> str:
    setup = _test_setup(facts)
    return _template("gitlab-ci.yml").substitute(
        app=facts.name,
        package=_q(package or default_package_spec()),
        test_setup=_q(setup or "true"),
        secrets_list=_indent(_secret_doc(needs, "gitlab"), 0),
        junit=JUNIT_FILE, summary=SUMMARY_FILE,
    )


def _secret_id(name: str) -> str:
    return name.lower().replace("_", "-")


def render_cloudbuild(facts: Facts, needs: CiNeeds, promote: bool = False,
                      package: str | None = None) -> str:
    """cloudbuild.yaml (feature branches: dev) or cloudbuild-promote.yaml (main: dev + prod).

    Two files, so that the feature-branch trigger never fetches the prod secrets: give the
    promote trigger its own service account (the only one allowed to read them) and an approval.
    """
    variables = needs.variables + (needs.prod_variables if promote else [])
    secrets = needs.secrets + (needs.prod_secrets if promote else [])
    env_lines = [f"- {n}=${{_{n}}}" for n, _ in variables]
    # empty = "not set": conveyor.toml's default applies (the defaults are listed above)
    subs = [f"_{n}: \"\"" for n, _ in variables]
    secret_env = ["CONVEYOR_SSH_KEY_DATA", "CONVEYOR_KNOWN_HOSTS_DATA"] + secrets
    available = []
    for s in ["CONVEYOR_SSH_KEY", "CONVEYOR_KNOWN_HOSTS"] + secrets:
        env_name = s + "_DATA" if s in FILE_SECRETS else s
        available.append(f"- versionName: projects/$PROJECT_ID/secrets/{_secret_id(s)}"
                         f"/versions/latest")
        available.append(f"  env: {env_name}")
    names = [n for n, _ in variables] + secrets
    setup = _test_setup(facts)
    if promote:
        purpose = ["# For the trigger on the default branch (main), with \"Require approval\" "
                   "on", "# the trigger and its own service account: the only one that may read "
                   "the prod", "# secrets. After dev, `conveyor ci --promote` promotes the image "
                   "digest that just", "# passed dev to prod."]
    else:
        purpose = ["# For the trigger on every branch except the default one (branch regex such as",
                   "# ^main$ with \"invert regex\"). Its service account needs no prod secrets."]
    return _template("cloudbuild.yaml").substitute(
        app=facts.name,
        purpose="\n".join(purpose),
        package=_q(package or default_package_spec()),
        env_lines=_indent(env_lines, 6) if env_lines else "",
        substitutions=_indent(subs, 2),
        secret_env=_indent([f"- {s}" for s in secret_env], 6),
        available=_indent(available, 4),
        names=" ".join(names) or "CONVEYOR_NOTHING",
        test_setup=setup.replace("$", "$$") or "true",
        secrets_list=_indent(_secret_doc(needs, "cloudbuild", promote), 0),
        ci_args="--promote " if promote else "",
        timeout="3600s" if promote else "2700s",
        junit=JUNIT_FILE, summary=SUMMARY_FILE,
    )


def _secret_doc(needs: CiNeeds, system: str, promote: bool = True) -> list[str]:
    """The header comment that lists what to create in the CI system."""
    out = []
    if system == "github":
        out.append("#   secrets (Settings > Secrets and variables > Actions; put the prod-only "
                   "ones in")
        out.append("#   the `production` environment, so that only the promote job can read them):")
        out.append("#     CONVEYOR_SSH_KEY          the deploy user's private SSH key")
        out.append("#     CONVEYOR_KNOWN_HOSTS      known_hosts lines of the VMs (ssh-keyscan, "
                   "verified)")
        out.append("#     CONVEYOR_REGISTRY_USERNAME, CONVEYOR_REGISTRY_PASSWORD   (optional)")
        for s in needs.secrets + needs.prod_secrets:
            out.append(f"#     {s}")
        out.append("#   variables (... > Variables):")
        for n, d in needs.variables + needs.prod_variables:
            out.append(f"#     {n}" + (f"   (default {d})" if d else ""))
    elif system == "gitlab":
        out.append("#   Settings > CI/CD > Variables; mark them Masked, and Protected for "
                   "prod-only")
        out.append("#   ones (protected variables reach only protected branches such as main):")
        out.append("#     CONVEYOR_SSH_KEY          type File: the deploy user's private SSH key")
        out.append("#     CONVEYOR_KNOWN_HOSTS      type File: known_hosts lines of the VMs")
        out.append("#     CONVEYOR_REGISTRY_USERNAME, CONVEYOR_REGISTRY_PASSWORD   (optional; for "
                   "GitLab's")
        out.append("#       registry use $CI_REGISTRY_USER / $CI_REGISTRY_PASSWORD and "
                   "CONVEYOR_REGISTRY=$CI_REGISTRY_IMAGE)")
        for s in needs.secrets + needs.prod_secrets:
            out.append(f"#     {s}")
        for n, d in needs.variables + needs.prod_variables:
            out.append(f"#     {n}   (plain variable" + (f"; default {d})" if d else ")"))
    else:
        out.append("#   Secret Manager secrets (the build's service account needs "
                   "roles/secretmanager.secretAccessor):")
        prod = needs.prod_secrets if promote else []
        for s in ["CONVEYOR_SSH_KEY", "CONVEYOR_KNOWN_HOSTS"] + needs.secrets + prod:
            out.append(f"#     {_secret_id(s):<28}-> ${s}" if s not in FILE_SECRETS else
                       f"#     {_secret_id(s):<28}-> written to a 0600 file, ${s} is its path")
        out.append("#   substitutions (set on the trigger):")
        for n, d in needs.variables + (needs.prod_variables if promote else []):
            out.append(f"#     _{n}" + (f"   (default {d})" if d else ""))
    return out


RENDERERS = {"github": render_github, "gitlab": render_gitlab, "cloudbuild": render_cloudbuild}


# --------------------------------------------------------------------------- writing


@dataclass
class InitResult:
    facts: Facts
    written: list[Path]
    needs: CiNeeds | None
    config_reused: bool = False


def plan_files(root: Path, ci: str | None, facts: Facts, existing_config: str | None = None,
               package: str | None = None) -> tuple[dict[Path, str], CiNeeds | None]:
    files: dict[Path, str] = {}
    config_text = existing_config if existing_config is not None else render_config(facts)
    if existing_config is None:
        files[root / "conveyor.toml"] = config_text
    needs = None
    if ci is not None:
        if ci not in RENDERERS:
            raise InitError(f"unknown CI system {ci!r}; expected one of: {', '.join(CI_SYSTEMS)}")
        needs = ci_needs(config_text)
        if ci == "cloudbuild":
            files[root / CI_FILES[ci][0]] = render_cloudbuild(facts, needs, package=package)
            files[root / CI_FILES[ci][1]] = render_cloudbuild(facts, needs, promote=True,
                                                              package=package)
        else:
            files[root / CI_FILES[ci][0]] = RENDERERS[ci](facts, needs, package=package)
    return files, needs


def write_files(files: dict[Path, str], force: bool) -> list[Path]:
    """Write all files, or none: an existing one is refused (naming it) unless `force`."""
    existing = [p for p in files if p.exists() or p.is_symlink()]
    if existing and not force:
        ci_only = any(p.name == "conveyor.toml" for p in existing) and len(files) > 1
        raise FileExistsRefused(existing, ci_only_possible=ci_only)
    written = []
    for path, text in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".conveyor-tmp")
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
        written.append(path)
    return written


def init_project(root: Path, ci: str | None = None, force: bool = False,
                 ci_only: bool = False, package: str | None = None) -> InitResult:
    """Inspect `root` and write conveyor.toml and (with `ci`) the CI file.

    `ci_only`: keep an existing conveyor.toml and derive the CI file from it.
    """
    root = root.resolve()
    facts = inspect_project(root)
    existing = None
    if ci_only:
        if ci is None:
            raise InitError("--ci-only needs --ci github|gitlab|cloudbuild")
        cfg = root / "conveyor.toml"
        try:
            existing = cfg.read_text(encoding="utf-8")
            tomllib.loads(existing)
        except OSError:
            raise InitError(f"--ci-only: {cfg} does not exist",
                            hint="run `conveyor init` without --ci-only to write it") from None
        except tomllib.TOMLDecodeError as exc:
            raise InitError(f"{cfg}: not valid TOML: {exc}") from None
    if package is not None and (not package.strip() or "\n" in package):
        raise InitError(f"--package {package!r}: expected one pip requirement")
    files, needs = plan_files(root, ci, facts, existing, package=package)
    written = write_files(files, force)
    return InitResult(facts, written, needs, config_reused=existing is not None)
