"""conveyor.toml as `conveyor init` writes it: every found value commented, every guess marked."""

from __future__ import annotations

import json
from collections.abc import Callable

from conveyor.init.facts import POSTGRES_PORT, Facts
from conveyor.init.yaml_text import compose_variables, to_conveyor_interpolation


def toml_str(value: str) -> str:
    """A TOML basic string."""
    return json.dumps(value, ensure_ascii=True)


def toml_array(values: list[str]) -> str:
    return "[" + ", ".join(toml_str(v) for v in values) + "]"


def render_config(facts: Facts) -> str:
    P = facts.env_prefix
    port = facts.port or 8000
    health = facts.health_path or "/health"
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
    add(f"name = {toml_str(facts.name)}")
    add(f"image = {toml_str(facts.name)}", "repository; the registry address is prefixed")
    add(f"dockerfile = {toml_str(facts.dockerfile or 'Dockerfile')}",
        None if facts.dockerfile else "guess: no Dockerfile found")
    add(f"context = {toml_str(facts.context)}")
    add(f"port = {port}", f"found: {facts.port_source}" if facts.port_source else
        "guess: the port the app listens on inside its container")
    add("stop_timeout = 10")
    add("")
    add("[app.build_args]")
    if facts.build_args:
        add(f"# found: build args of the compose service `{facts.app_service}`")
        for k, v in facts.build_args.items():
            add(f"{k} = {toml_str(v)}")
    else:
        add("# none found; e.g. BASE_IMAGE = \"${BASE_IMAGE:-python:3.12-slim}\"")
    add("")
    add("[app.health]")
    add(f"path = {toml_str(health)}", f"found: {facts.health_source}" if facts.health_source else
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
    if facts.tool is not None:
        _foreign_migrations(facts, add)
    else:
        _builtin_migrations(facts, add)
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
        add(f"compose_file = {toml_str(facts.compose_file)}")
    else:
        add("# no compose file found: the local stage needs one (db + app services)")
        add("# compose_file = \"docker-compose.yml\"")
    if facts.app_service:
        add(f"app_service = {toml_str(facts.app_service)}", "the compose service that runs the app")
    add(f"address = {toml_str(facts.app_host_ip or '127.0.0.1')}")
    host_port = facts.app_host_port or port
    add(f"port = {host_port}", None if facts.app_host_port else "guess: the app's published port")
    raw = facts.app_host_port_raw
    if raw and compose_variables(raw):
        url = f"http://{facts.app_host_ip or '127.0.0.1'}:{to_conveyor_interpolation(raw)}"
        add(f"url = {toml_str(url)}")
    if facts.test_command:
        add(f"test_command = {toml_array(facts.test_command)}")
    else:
        add("test_command = []", "e.g. [\"pytest\", \"-q\", \"tests\"]")
    add("")
    add("[environments.local.database]")
    db = facts.db
    if db is not None:
        add("kind = \"compose\"")
        add(f"service = {toml_str(db.service)}", f"found: {facts.compose_file}")
        add(f"name = {toml_str(db.name)}")
        add(f"user = {toml_str(db.user)}")
        if db.password_var and db.password_default:
            add(f"# the default below is the one {facts.compose_file} declares for local "
                "development")
            add(f"password = {{ env = {toml_str(db.password_var)}, "
                f"default = {toml_str(db.password_default)} }}")
        elif db.password_var:
            add(f"password = {{ env = {toml_str(db.password_var)} }}")
        else:
            if db.password_literal:
                add(f"# {facts.compose_file} sets a literal POSTGRES_PASSWORD; it is not copied "
                    "here:")
                add(f"# export {P}_DB_PASSWORD with that value (or make the compose file read it)")
            add(f"password = {{ env = {toml_str(P + '_DB_PASSWORD')} }}")
        add(f"host = {toml_str(db.host_ip)}")
        if db.host_port and db.host_port_raw and compose_variables(db.host_port_raw):
            add(f"port = {toml_str(to_conveyor_interpolation(db.host_port_raw))}",
                f"the port {facts.compose_file} publishes")
        else:
            add(f"port = {db.host_port or POSTGRES_PORT}",
                None if db.host_port else "guess: publish 5432 in the compose file")
    else:
        add("# no PostgreSQL service found in a compose file: an existing server by URL")
        add("kind = \"url\"")
        add(f"url = {{ env = {toml_str(P + '_LOCAL_DATABASE_URL')} }}")
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
                add(f"test_command = {toml_array(facts.test_command)}")
            else:
                add("test_command = []")
        else:
            add("promote_from = \"dev\"", "prod only takes an image that passed dev")
            add(f"checks = [{{ path = {toml_str(health)}, status = 200 }}]")
            add("# production validation: a read-only smoke test suite, run against the new app")
            add("validate_command = []")
            add("# zero-downtime: a reverse proxy (nginx, `conveyor setup prod`) publishes the "
                "port; the new")
            add("# version starts beside the old one and takes the traffic once healthy. "
                "Contract migrations")
            add("# (drop, rename, type change, SET NOT NULL) wait for a later deploy, or "
                "--strategy recreate.")
            add("strategy = \"zero-downtime\"", "\"recreate\": stop, migrate, start (a short "
                "downtime)")
        add("")
        add(f"[environments.{env}.env]")
        add(f"APP_ENV = {toml_str(env)}")
        add("")
        add(f"[environments.{env}.database]")
        add("# a PostgreSQL container that conveyor manages on the VM (`conveyor setup "
            f"{env}`), or an")
        add(f"# existing server: kind = \"url\" and url = {{ env = \"{P}_{E}_DATABASE_URL\" }}")
        add("kind = \"container\"")
        add(f"image = {toml_str(pg_image)}")
        add(f"name = {toml_str(db_name)}")
        add(f"user = {toml_str(db_user)}")
        add(f"password = {{ env = {toml_str(f'{P}_{E}_DB_PASSWORD')} }}")
        add("")
        if env == "prod":
            add("[environments.prod.backup]")
            add(f"dir = {toml_str('/var/lib/conveyor/backups/' + facts.name)}")
            add("keep = 10")
            add("")
    return "\n".join(L).rstrip() + "\n"


def _builtin_migrations(facts: Facts, add: Callable[..., None]) -> None:
    mig_dir = facts.migrations_dir or "migrations"
    container_dir = facts.migrations_container_dir or "/app/migrations"
    mig_note = (f"found: {facts.migrations_count} migration(s)"
                + (" (diesel.toml)" if facts.migrations_source == "diesel.toml" else "")
                if facts.migrations_dir else "guess: no migrations directory found")
    add(f"dir = {toml_str(mig_dir)}", mig_note)
    add("# Diesel layout: <version>_<name>/{up.sql,down.sql[,metadata.toml]}")
    add(f"container_dir = {toml_str(container_dir)}",
        "found: the Dockerfile's COPY" if facts.migrations_container_dir else
        "guess: where the image holds the migrations")
    add("command = []",
        "[] = conveyor's built-in engine; or e.g. [\"diesel\", \"migration\", \"run\"]")
    add("lock_timeout = 60")


def _foreign_migrations(facts: Facts, add: Callable[..., None]) -> None:
    """The project's own migration tool: conveyor runs its commands in a temporary container
    of the app image (docs/migration-tools.md)."""
    tool = facts.tool
    assert tool is not None
    add(f"# found: {tool.marker} ({tool.name}): the project's own tool migrates; conveyor runs")
    add("# these commands in a temporary container of the app image, with the app's environment")
    add("# and DATABASE_URL (see conveyor's docs/migration-tools.md)")
    add(f"command = {toml_array(tool.command)}", "at every `up` and every deploy")
    add(f"status_command = {toml_array(tool.status_command)}",
        "shown by `conveyor status` and prod's plan")
    add(f"sql_command = {toml_array(tool.sql_command)}",
        "the SQL `command` would run, linted before prod")
    add(f"revert_command = {toml_array(tool.revert_command)}", "`rollback --migrations`")
    add("timeout = 3600", "seconds the command may run")
