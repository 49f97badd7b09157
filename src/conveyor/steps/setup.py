"""Setting up an environment's host once: the network, the database volume, the
conveyor-managed PostgreSQL container (never recreated by a deploy), its readiness; or, for a
database reached by URL, just the state directory."""

from __future__ import annotations

import time

from conveyor.commands import docker
from conveyor.errors import DatabaseNotReady
from conveyor.plan import Step, StepIO
from conveyor.state.deploy import DeployState
from conveyor.targets.remote import Remote, env_file, tail
from conveyor.transport import sh

READY_TIMEOUT = 120.0


def network_step(remote: Remote) -> Step[DeployState]:
    assert remote.network
    argv = sh(docker.network_inspect(remote.network), ">/dev/null", "2>&1", "||",
              docker.network_create(remote.network, remote.labels("network")))

    def action(st: DeployState, io: StepIO) -> None:
        io.run(argv, timeout=120)
        io.note(remote.network or "")

    return Step("network", action, describe=[argv])


def volume_step(remote: Remote) -> Step[DeployState]:
    assert remote.db_volume
    argv = sh(docker.volume_inspect(remote.db_volume), ">/dev/null", "2>&1", "||",
              docker.volume_create(remote.db_volume, remote.labels("db-volume")))

    def action(st: DeployState, io: StepIO) -> None:
        io.run(argv, timeout=120)
        io.note(remote.db_volume or "")

    return Step("volume", action, describe=[argv])


def database_argv(remote: Remote) -> tuple[str, ...]:
    """Env file from stdin; the database container created once (never recreated); started."""
    db = remote.managed_database("setup")
    assert remote.db_container
    run_db = docker.run(db.image, name=remote.db_container, detach=True,
                        network=remote.network, restart="unless-stopped",
                        env_file=remote.db_env_file,
                        volumes=[f"{remote.db_volume}:/var/lib/postgresql/data"],
                        labels=remote.labels("db"))
    return sh(("umask", "077"), "&&", ("mkdir", "-p", remote.state_dir), "&&", ("cat",),
              ">", (remote.db_env_file,), "&&",
              "{", docker.inspect(remote.db_container, "{{.Id}}"), ">/dev/null", "2>&1",
              "||", run_db, ">/dev/null", ";", "}", "&&",
              docker.start(remote.db_container), ">/dev/null", "&&",
              docker.inspect(remote.db_container, "{{.Config.Image}} {{.State.Status}}"))


def database_step(remote: Remote) -> Step[DeployState]:
    db = remote.managed_database("setup")
    argv = database_argv(remote)

    def action(st: DeployState, io: StepIO) -> None:
        contents = env_file(remote.db_env(), f"environments.{remote.name}.database")
        r = io.run(argv, input=contents, timeout=600)
        image_now, _, status = r.stdout.strip().rpartition(" ")
        if image_now != db.image:
            io.note(f"kept the existing container (image {image_now}; setup never "
                    f"recreates the database)")
        else:
            io.note(f"{remote.db_container} {status}")

    return Step("database", action, describe=[
        argv, f"stdin: the database env file (0600 at {remote.db_env_file})"])


def ready_step(remote: Remote) -> Step[DeployState]:
    db = remote.managed_database("setup")
    assert remote.db_container
    argv = docker.exec_(remote.db_container, ["pg_isready", "-h", "127.0.0.1", "-p", "5432",
                                              "-U", db.user, "-d", db.name])

    def action(st: DeployState, io: StepIO) -> None:
        deadline = time.monotonic() + READY_TIMEOUT
        while True:
            r = io.run(argv, check=False, timeout=60)
            if r.returncode == 0:
                io.note("accepting connections")
                return
            if time.monotonic() > deadline:
                raise DatabaseNotReady(
                    f"the database container {remote.db_container} did not become ready "
                    f"in {READY_TIMEOUT:g} s: {tail(r.stdout + r.stderr)}",
                    hint=f"`conveyor logs {remote.name} db` shows its log")
            time.sleep(0.5)

    return Step("ready", action, describe=[argv])


def state_dir_step(remote: Remote) -> Step[DeployState]:
    argv = ("mkdir", "-p", remote.state_dir)

    def action(st: DeployState, io: StepIO) -> None:
        io.run(argv, timeout=60)
        io.note("database reached by URL: nothing to create")

    return Step("state dir", action, describe=[argv])
