"""The app container on the host: replace it (dev), or prepare / stop / start it (prod).

Names: `<app>-<env>-app` serves; `-previous` is the version before (stopped, kept for the
fallback); `-next` is the new one created but not started (prod); `-failed` is a new one that
did not pass (stopped, kept for its log).
"""

from __future__ import annotations

from typing import Any

from conveyor.commands import docker
from conveyor.errors import ConveyorError, HealthCheckFailed
from conveyor.imageref import REVISION_LABEL, ImageRef
from conveyor.plan import Step, StepIO
from conveyor.state.deploy import DeployState
from conveyor.steps.health import fallback_check, wait_healthy
from conveyor.targets.remote import Remote, env_file
from conveyor.transport import sh


def app_run_argv(remote: Remote, image: ImageRef, deployment_id: str,
                 revision: str | None) -> tuple[str, ...]:
    extra = {"conveyor.deployment": deployment_id, "conveyor.image": image.ref}
    if revision:
        extra[REVISION_LABEL] = revision
    return docker.run(image.ref, name=remote.app_container, detach=True,
                      network=remote.network, restart=remote.env.restart,
                      stop_timeout=remote.app.stop_timeout, env_file=remote.app_env_file,
                      publish=[remote.publish], labels=remote.labels("app", **extra))


def _write_env_file(remote: Remote) -> list[Any]:
    return [("umask", "077"), "&&", ("mkdir", "-p", remote.state_dir), "&&", ("cat",), ">",
            (remote.app_env_file,), "&&"]


def replace_argv(remote: Remote, run_argv: tuple[str, ...], *,
                 has_current: bool) -> tuple[str, ...]:
    """One round trip: write the env file (stdin), keep the running container as `-previous`
    (stopped), start the new one. The older `-previous` is removed while the serving one stops
    (the rename waits for both)."""
    rm_previous = [docker.rm(remote.previous_container, force=True), ">/dev/null", "2>&1"]
    parts: list[Any] = [*_write_env_file(remote)]
    if has_current:
        parts += ["{", *rm_previous, "&", "}", "&&",
                  docker.stop(remote.app_container, remote.app.stop_timeout), ">/dev/null",
                  "&&", ("wait",), "&&",
                  docker.rename(remote.app_container, remote.previous_container), "&&"]
    else:
        parts += ["{", *rm_previous, ";", "}", "&&"]
    return sh(*parts, run_argv)


def restore_argv(remote: Remote) -> tuple[str, ...]:
    """Put the `-previous` container back (the failed new one is kept as `-failed`)."""
    return sh(
        "if", docker.inspect(remote.previous_container, "{{.Id}}"), ">/dev/null", "2>&1", ";",
        "then",
        "{", docker.rm(remote.failed_container, force=True), ">/dev/null", "2>&1", ";", "}", ";",
        "{", docker.stop(remote.app_container, remote.app.stop_timeout), ">/dev/null", "2>&1",
        "&&", docker.rename(remote.app_container, remote.failed_container), ";", "}", ";",
        docker.rename(remote.previous_container, remote.app_container), "&&",
        docker.start(remote.app_container), ";",
        "else", ("echo", "no previous container to restore"), ";", "fi")


def _revision(st: DeployState | None, image: ImageRef) -> str | None:
    return (st.image_revision if st else None) or image.revision


def deployed_env(remote: Remote, st: DeployState, image: ImageRef,
                 deployment_id: str) -> dict[str, str]:
    """The app's environment, plus what was deployed (the app may log it at start)."""
    return {**remote.app_env(), "APP_REVISION": _revision(st, image) or "",
            "CONVEYOR_DEPLOYMENT": deployment_id, "CONVEYOR_IMAGE": image.ref}


def replace_step(remote: Remote, image: ImageRef, deployment_id: str) -> Step[DeployState]:
    """dev: stop the serving container (kept as `-previous`) and start the new one."""

    def action(st: DeployState, io: StepIO) -> None:
        contents = env_file(deployed_env(remote, st, image, deployment_id),
                            f"environments.{remote.name}.env")
        argv = replace_argv(remote, app_run_argv(remote, image, deployment_id,
                                                 _revision(st, image)),
                            has_current=bool(st.current))
        try:
            r = io.run(argv, input=contents, timeout=300)
        except ConveyorError:
            if st.current:
                io.log("starting the new container failed: restoring the previous one")
                io.run(restore_argv(remote), check=False, timeout=300)
            raise
        st.app_container_id = r.stdout.strip().splitlines()[-1][:12]
        io.note(f"started {remote.app_container} ({st.app_container_id})"
                + (f"; previous kept stopped as {remote.previous_container}" if st.current
                   else ""))

    def undo(st: DeployState, io: StepIO) -> None:
        if not st.current:
            io.log("no previous app container: the new one is left as it is for inspection")
            return
        r = io.run(restore_argv(remote), timeout=300)
        io.log(r.stdout.strip() or f"restored the previous {remote.app_container}")
        # the undo is done when the previous app serves again (or says why not)
        poll = wait_healthy(remote, remote.app.health.timeout)
        io.log(f"previous app: {poll.detail}")
        if not poll.ok:
            raise HealthCheckFailed(f"the previous app was put back but does not answer: "
                                    f"{poll.detail}")

    return Step("replace", action,
                describe=[replace_argv(remote, app_run_argv(remote, image, deployment_id,
                                                            image.revision), has_current=True),
                          f"stdin: the app's env file (0600 at {remote.app_env_file})"],
                undo=undo, undo_describe=[restore_argv(remote)],
                reads=("current", "image_revision"), writes=("app_container_id",))


# --------------------------------------------------------------------------- prod


def create_argv(run_argv: tuple[str, ...], name: str) -> tuple[str, ...]:
    """`docker create` with the options of a `docker run --detach` argv, under `name`."""
    argv = list(run_argv)
    if argv[:3] != ["docker", "run", "--detach"] or "--name" not in argv:
        raise ValueError(f"not a detached docker run argv: {argv[:4]}")
    i = argv.index("--name")
    argv[i + 1] = name
    return ("docker", "create", *argv[3:])


def prepare_argv(remote: Remote, create: tuple[str, ...]) -> tuple[str, ...]:
    """Env file (stdin, 0600), drop leftovers (`-next`, the older `-previous`), create."""
    return sh(*_write_env_file(remote),
              "{", docker.rm(remote.next_container, force=True), ">/dev/null", "2>&1", ";",
              docker.rm(remote.previous_container, force=True), ">/dev/null", "2>&1", ";", "}",
              "&&", create)


def prepare_step(remote: Remote, image: ImageRef, deployment_id: str) -> Step[DeployState]:
    """Create (not start) the new app container while the old one still serves."""
    nxt = remote.next_container

    def argv(st: DeployState | None) -> tuple[str, ...]:
        return prepare_argv(remote, create_argv(
            app_run_argv(remote, image, deployment_id, _revision(st, image)), nxt))

    def action(st: DeployState, io: StepIO) -> None:
        contents = env_file(deployed_env(remote, st, image, deployment_id),
                            f"environments.{remote.name}.env")
        r = io.run(argv(st), input=contents, timeout=300)
        st.next_id = r.stdout.strip().splitlines()[-1][:12] if r.stdout.strip() else ""
        io.note(f"created {nxt} ({st.next_id}), not started")

    def undo(st: DeployState, io: StepIO) -> None:
        io.run(docker.rm(nxt, force=True), check=False, timeout=120)

    return Step("prepare", action,
                describe=[argv(None), f"stdin: the app's env file (0600 at {remote.app_env_file})"],
                undo=undo, undo_describe=[docker.rm(nxt, force=True)],
                reads=("image_revision",), writes=("next_id",))


def stop_step(remote: Remote) -> Step[DeployState]:
    """Stop the serving container; keep it (and Postgres) as it is. Undo: start it again and
    wait until it answers its health check."""
    argv = docker.stop(remote.app_container, remote.app.stop_timeout)
    start = docker.start(remote.app_container)

    def action(st: DeployState, io: StepIO) -> None:
        running = bool(st.current and (st.current.get("State") or {}).get("Running"))
        st.stopped_old = running
        if not st.current:
            io.note("no app container yet: first deployment")
            return
        if not running:
            io.note(f"{remote.app_container} was not running")
            return
        io.run(argv, timeout=remote.app.stop_timeout + 120)
        io.note(f"stopped {remote.app_container} (kept; the database keeps running)")

    def undo(st: DeployState, io: StepIO) -> None:
        # from what the lock step saw (not `stopped_old`): a recovery after the process running
        # this step died undoes it from the state as the step began
        if not (st.current and (st.current.get("State") or {}).get("Running")):
            return
        st.stopped_old = True
        # after the start step's undo `app` is the old container again; else it never moved
        io.run(start, timeout=300)
        io.log(f"started {remote.app_container} (the previous version) again")
        fb = fallback_check(remote)
        st.fallback = fb
        if not fb["ok"]:
            raise ConveyorError(
                f"the previous version did not answer {remote.health_url} after the fallback "
                f"({fb.get('error')})")
        io.log(f"the previous version answers {fb['url']} with HTTP {fb['status']} "
               f"({fb['seconds']}s after starting it)")

    return Step("stop", action, describe=[argv], undo=undo,
                undo_describe=[start, (f"GET {remote.health_url} until HTTP "
                               f"{remote.app.health.expect_status}")],
                reads=("current",), writes=("stopped_old", "fallback"))


def start_argv(remote: Remote, *, has_current: bool) -> tuple[str, ...]:
    parts: list[Any] = []
    if has_current:
        parts += [docker.rename(remote.app_container, remote.previous_container), "&&"]
    parts += [docker.rename(remote.next_container, remote.app_container), "&&",
              docker.start(remote.app_container)]
    return sh(*parts)


def park_failed_argv(remote: Remote) -> tuple[str, ...]:
    """No previous container (first deployment): stop the new one, keep it as `-failed`."""
    return sh("{", docker.rm(remote.failed_container, force=True), ">/dev/null", "2>&1", ";", "}",
              ";", docker.stop(remote.app_container, remote.app.stop_timeout), ">/dev/null",
              "&&", docker.rename(remote.app_container, remote.failed_container))


def start_step(remote: Remote) -> Step[DeployState]:
    """The old container becomes `-previous` (stopped), the new one takes the name and starts.
    Undo: the new one is stopped and kept as `-failed`, the old one gets its name back."""

    def action(st: DeployState, io: StepIO) -> None:
        has_current = bool(st.current)
        try:
            io.run(start_argv(remote, has_current=has_current), timeout=300)
        except ConveyorError:
            io.log("starting the new container failed: putting the previous one back")
            io.run(restore_argv(remote) if has_current else park_failed_argv(remote),
                   check=False, timeout=300)
            raise
        io.note(f"started {remote.app_container} ({st.next_id})"
                + (f"; the previous one is kept stopped as {remote.previous_container}"
                   if has_current else ""))

    def undo(st: DeployState, io: StepIO) -> None:
        argv = restore_argv(remote) if st.current else park_failed_argv(remote)
        r = io.run(argv, timeout=300)
        io.log((r.stdout.strip() + " ").lstrip() + f"the new container is kept stopped as "
               f"{remote.failed_container}")

    return Step("start", action, describe=[start_argv(remote, has_current=True)], undo=undo,
                undo_describe=[restore_argv(remote)], reads=("current", "next_id"))
