"""Docker Compose argv builders (Compose v2 `docker compose` and v1 `docker-compose`).

Pure: no I/O, no shell strings. Which flavour is installed is decided by the caller from two
facts (does `docker compose version` succeed, where is `docker-compose` on PATH) through
`choose()`; every builder then takes the chosen `Compose`. The two flavours share the flags
used here (`-p`, `-f`, `up -d --no-build`, `down --volumes`, `logs --tail/--since/-f`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from conveyor.errors import DockerUnavailable

Argv = tuple[str, ...]

PROJECT_LABEL = "com.docker.compose.project"
SERVICE_LABEL = "com.docker.compose.service"


@dataclass(frozen=True)
class Compose:
    """The compose command to run: `("docker", "compose")` (v2) or `("docker-compose",)` (v1)."""

    command: tuple[str, ...]
    flavor: str  # "v2" | "v1"

    @property
    def display(self) -> str:
        return " ".join(self.command)


V2 = Compose(("docker", "compose"), "v2")


def v1(path: str = "docker-compose") -> Compose:
    return Compose((path,), "v1")


def probe_v2() -> Argv:
    """Succeeds only when the docker CLI has the Compose v2 plugin."""
    return ("docker", "compose", "version", "--short")


def choose(v2_works: bool, v1_path: str | None, forced: str | None = None) -> Compose:
    """Prefer Compose v2, fall back to v1; `forced` ("docker compose" / "docker-compose", from
    $CONVEYOR_COMPOSE) overrides detection."""
    if forced:
        words = tuple(forced.split())
        return Compose(words, "v2" if words[-1] == "compose" and len(words) > 1 else "v1")
    if v2_works:
        return V2
    if v1_path:
        return v1(v1_path)
    raise DockerUnavailable(
        "neither Docker Compose v2 (`docker compose`) nor v1 (`docker-compose`) is installed",
        hint="install one: the docker-compose-plugin (v2) or, on Debian, "
        "`apt-get install docker-compose` (v1)",
    )


def _base(c: Compose, project: str, files: Sequence[str]) -> list[str]:
    argv = [*c.command, "--project-name", project]
    for f in files:
        argv += ["--file", f]
    return argv


def config(c: Compose, project: str, files: Sequence[str]) -> Argv:
    """The resolved configuration (v2: JSON; v1: normalised YAML)."""
    extra = ("--format", "json") if c.flavor == "v2" else ()
    return (*_base(c, project, files), "config", *extra)


def up(c: Compose, project: str, files: Sequence[str], *, services: Iterable[str] = (),
       build: bool = False, remove_orphans: bool = False) -> Argv:
    argv = _base(c, project, files) + ["up", "--detach"]
    argv.append("--build" if build else "--no-build")
    if remove_orphans:
        argv.append("--remove-orphans")
    return (*argv, *services)


def down(c: Compose, project: str, files: Sequence[str], *, volumes: bool = False) -> Argv:
    argv = _base(c, project, files) + ["down"]
    if volumes:
        argv.append("--volumes")
    return tuple(argv)


def logs(c: Compose, project: str, files: Sequence[str], services: Sequence[str] = (), *,
         follow: bool = False, since: str | None = None, tail: int | None = None,
         timestamps: bool = False) -> Argv:
    argv = _base(c, project, files) + ["logs", "--no-color"]
    if follow:
        argv.append("--follow")
    if since:
        argv += ["--since", since]
    if tail is not None:
        argv += ["--tail", str(tail)]
    if timestamps:
        argv.append("--timestamps")
    return (*argv, *services)


def project_containers(project: str, fmt: str) -> Argv:
    """`docker ps` of every container of a compose project (any state), both flavours."""
    return ("docker", "ps", "--all", "--no-trunc", "--filter", f"label={PROJECT_LABEL}={project}",
            "--format", fmt)


# ------------------------------------------------------------------------- parsing (pure)

PS_FORMAT = ('{{.ID}}\t{{.State}}\t{{.Label "' + SERVICE_LABEL + '"}}\t{{.Image}}\t{{.Names}}'
             '\t{{.Status}}\t{{.Ports}}')


@dataclass(frozen=True)
class Container:
    id: str
    state: str  # running | exited | created | restarting | paused | dead
    service: str
    image: str
    name: str
    status: str  # e.g. "Up 3 minutes (healthy)"
    ports: str = ""

    @property
    def health(self) -> str | None:
        m = re.search(r"\((healthy|unhealthy|health: starting)\)", self.status)
        return m.group(1) if m else None


def parse_ps(text: str) -> list[Container]:
    out = []
    for line in text.splitlines():
        if not line.strip():
            continue
        parts = line.split("\t")
        parts += [""] * (7 - len(parts))
        out.append(Container(*parts[:7]))
    return out


def parse_config_images(text: str, flavor: str) -> dict[str, str | None]:
    """Service name -> image reference (None: the service only has `build`), from the output of
    `config()` (v2 prints JSON, v1 YAML; JSON is YAML too)."""
    if flavor == "v2":
        data = json.loads(text)
    else:
        import yaml

        data = yaml.safe_load(text) or {}
    return {str(name): (svc or {}).get("image")
            for name, svc in (data.get("services") or {}).items()}


_CHANGE = re.compile(r"\b(Creating|Recreating|Starting|Pulling|Created|Recreated|Started|"
                     r"Pulled|Restarting)\b")


def changed_services(output: str) -> list[str]:
    """Which containers `up` touched, from its output (v1: `Creating notes_db_1 ... done`,
    v2: `Container notes-db-1  Started`). Empty when all were already up to date."""
    names: list[str] = []
    for line in output.splitlines():
        if "network" in line.lower() or "volume" in line.lower():
            continue
        if _CHANGE.search(line):
            for word in line.replace("...", " ").split():
                if (not _CHANGE.fullmatch(word) and word not in ("Container", "done", "-")
                        and not word.startswith("\x1b") and word not in names):
                    names.append(word)
                    break
    return names

