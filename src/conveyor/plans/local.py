"""The plan of `conveyor up`: the app and its PostgreSQL on this machine with Docker Compose.

1. docker        `docker info` answers, and which Compose is installed (v2 or v1);
2. compose file  the services and their images (`compose config`, cached by its inputs);
3. image         build the app image only when its inputs changed (the hash of the build
                 context honouring .dockerignore, the Dockerfile and the build args, kept as
                 the image label `conveyor.inputs`);
4. containers    `compose up --detach --no-build`, skipped when the containers conveyor started
                 last time still run and nothing compose reads has changed;
5. postgres      a bounded readiness poll (a real libpq connection and `SELECT 1`);
6. migrations    pending migrations with the built-in engine (or `migrations.command`);
7. health        a bounded poll of the app's health URL.

Each step is a function of (LocalState, StepIO) in its own module under `conveyor.steps`; the
plan is built before anything runs and printed by `conveyor up --dry-run`.
"""

from __future__ import annotations

from conveyor.commands import compose as composecmd
from conveyor.commands import docker as dockercmd
from conveyor.masking import mask_secrets
from conveyor.plan import Plan, Step
from conveyor.state.local import LocalState
from conveyor.steps import (
    compose_file,
    docker_engine,
    local_containers,
    local_db,
    local_health,
    local_image,
    local_migrate,
)

#: the Compose shown by --dry-run before the docker step has found the installed one
UNKNOWN_COMPOSE = composecmd.Compose(("<docker compose|docker-compose>",), "v2")


def up_plan(state: LocalState) -> Plan[LocalState]:
    """The plan of `conveyor up` (printable with --dry-run before anything runs)."""
    stack, cfg = state.target, state.target.cfg
    compose = state.compose or UNKNOWN_COMPOSE
    project, files = stack.project, stack.compose_files
    app_image = state.app_image or local_migrate.APP_IMAGE_PLACEHOLDER.format(
        service=stack.app_service)
    health = cfg.app.health
    return Plan("up", [
        Step("docker", docker_engine.docker, describe=docker_engine.DESCRIBE,
             reads=docker_engine.READS, writes=docker_engine.WRITES),
        Step("compose file", compose_file.compose_file,
             describe=[composecmd.config(compose, project, files)],
             reads=compose_file.READS, writes=compose_file.WRITES),
        Step("image", local_image.image,
             describe=[dockercmd.image_inspect(app_image, "{{.Id}}"),
                       "when the inputs hash differs from the image's conveyor.inputs label:",
                       local_image.build_argv(state, app_image, "<inputs hash>")],
             reads=local_image.READS, writes=local_image.WRITES),
        Step("containers", local_containers.containers,
             describe=[composecmd.up(compose, project, files)],
             reads=local_containers.READS, writes=local_containers.WRITES),
        Step("postgres", local_db.postgres,
             describe=[(f"connect to {mask_secrets(stack.database_url())} until it answers "
                        f"(at most {state.db_timeout:g} s)")],
             reads=local_db.READS, writes=local_db.WRITES),
        Step("migrations", local_migrate.migrations, describe=local_migrate.describe(state),
             reads=local_migrate.READS, writes=local_migrate.WRITES),
        Step("health", local_health.health,
             describe=[(f"GET {stack.health_url} until {health.expect_status} "
                        f"(at most {health.timeout:g} s)")],
             reads=local_health.READS, writes=local_health.WRITES),
    ])
