"""The docker step: a Docker engine answers `docker info`, and which Compose is installed.

Compose v2 (`docker compose`) is probed while `docker info` runs; v1 (`docker-compose` on
PATH) is the fallback; `$CONVEYOR_COMPOSE` forces one.
"""

from __future__ import annotations

import os
import shutil
import threading

from conveyor.commands import compose as composecmd
from conveyor.commands import docker as dockercmd
from conveyor.errors import ConveyorError, DockerUnavailable
from conveyor.plan import StepIO
from conveyor.state.local import LocalState
from conveyor.steps.local_common import TESTBED_WAY_OUT, Run

READS = ()
WRITES = ("docker_version", "compose")
DESCRIBE = (dockercmd.info(), composecmd.probe_v2())


def docker_unavailable(stderr: str, docker_host: str | None = None) -> DockerUnavailable:
    """The one-line error for "no Docker engine answers", naming both ways out."""
    where = docker_host or os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"
    text = stderr.strip()
    connect = ("Cannot connect to the Docker daemon", "Is the docker daemon running",
               "connect: no such file or directory", "connection refused", "no such host",
               "error during connect")
    if not text or any(c.lower() in text.lower() for c in connect):
        reason = f"no Docker engine answers at {where}"
    else:
        reason = f"the Docker engine at {where} does not answer `docker info` " \
                 f"({text.splitlines()[-1][:200]})"
    return DockerUnavailable(
        f"{reason}: start your Docker engine, or on a machine without one: {TESTBED_WAY_OUT}")


def check_docker(run: Run, timeout: float = 20.0) -> tuple[str, composecmd.Compose]:
    """`docker info`, and Compose detection at the same time: (engine version, Compose)."""
    found: dict[str, bool] = {}
    forced = os.environ.get("CONVEYOR_COMPOSE")

    def probe() -> None:
        try:
            found["v2"] = run(composecmd.probe_v2(), check=False, timeout=timeout).ok
        except ConveyorError:
            found["v2"] = False

    thread = None
    if not forced:
        thread = threading.Thread(target=probe, daemon=True)
        thread.start()
    try:
        r = run(dockercmd.info(), check=False, timeout=timeout)
    except ConveyorError as exc:
        if "command not found" in str(exc):
            raise DockerUnavailable(
                "the docker command is not installed: install Docker, or on a machine without "
                f"an engine: scripts/setup && {TESTBED_WAY_OUT}") from None
        raise docker_unavailable(f"no answer within {timeout:g} s") from None
    if thread is not None:
        thread.join()
    if not r.ok:
        raise docker_unavailable(r.stderr or r.stdout)
    compose = composecmd.choose(found.get("v2", False), shutil.which("docker-compose"), forced)
    return r.stdout.strip(), compose


def docker(state: LocalState, io: StepIO) -> None:
    state.docker_version, state.compose = check_docker(io.run)
    io.note(f"engine {state.docker_version}, {state.compose.display}")
