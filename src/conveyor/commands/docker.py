"""`docker ...` argv builders. Pure: no I/O, no shell strings. Unit tests compare whole tuples."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

Argv = tuple[str, ...]
LABEL = "conveyor.app"


def _labels(labels: Mapping[str, str] | None) -> list[str]:
    out: list[str] = []
    for k, v in (labels or {}).items():
        out += ["--label", f"{k}={v}"]
    return out


def build(tag: str, context: str, dockerfile: str | None = None,
          build_args: Mapping[str, str] | None = None, labels: Mapping[str, str] | None = None,
          extra_tags: Iterable[str] = ()) -> Argv:
    argv = ["docker", "build", "--tag", tag]
    for t in extra_tags:
        argv += ["--tag", t]
    if dockerfile:
        argv += ["--file", dockerfile]
    for k, v in (build_args or {}).items():
        argv += ["--build-arg", f"{k}={v}"]
    argv += _labels(labels)
    return (*argv, context)


def image_inspect(ref: str, fmt: str | None = None) -> Argv:
    return ("docker", "image", "inspect", *(("--format", fmt) if fmt else ()), ref)


def tag(source: str, target: str) -> Argv:
    return ("docker", "tag", source, target)


def push(ref: str) -> Argv:
    return ("docker", "push", ref)


def pull(ref: str) -> Argv:
    return ("docker", "pull", ref)


def inspect(name: str, fmt: str | None = None) -> Argv:
    return ("docker", "inspect", *(("--format", fmt) if fmt else ()), name)


def run(image: str, *, name: str | None = None, detach: bool = False, rm: bool = False,
        network: str | None = None, env_file: str | None = None,
        env: Mapping[str, str] | None = None, env_names: Iterable[str] = (),
        publish: Iterable[str] = (), volumes: Iterable[str] = (),
        labels: Mapping[str, str] | None = None, restart: str | None = None,
        interactive: bool = False, stop_timeout: int | None = None,
        entrypoint: str | None = None, command: Sequence[str] = (),
        extra: Sequence[str] = ()) -> Argv:
    argv = ["docker", "run"]
    if detach:
        argv.append("--detach")
    if rm:
        argv.append("--rm")
    if interactive:
        argv.append("--interactive")
    if name:
        argv += ["--name", name]
    if network:
        argv += ["--network", network]
    if restart:
        argv += ["--restart", restart]
    if stop_timeout is not None:
        argv += ["--stop-timeout", str(stop_timeout)]
    if env_file:
        argv += ["--env-file", env_file]
    for k, v in (env or {}).items():
        argv += ["--env", f"{k}={v}"]
    for k in env_names:  # value taken from the docker client's own environment: not in argv
        argv += ["--env", k]
    for p in publish:
        argv += ["--publish", p]
    for v in volumes:
        argv += ["--volume", v]
    argv += _labels(labels)
    if entrypoint is not None:
        argv += ["--entrypoint", entrypoint]
    argv += list(extra)
    return (*argv, image, *command)


def start(name: str) -> Argv:
    return ("docker", "start", name)


def stop(name: str, timeout: int | None = None) -> Argv:
    return ("docker", "stop", *(("--time", str(timeout)) if timeout is not None else ()), name)


def rm(name: str, force: bool = False) -> Argv:
    return ("docker", "rm", *(("--force",) if force else ()), name)


def rename(old: str, new: str) -> Argv:
    return ("docker", "rename", old, new)


def logs(name: str, *, follow: bool = False, since: str | None = None,
         tail: int | None = None, timestamps: bool = False) -> Argv:
    argv = ["docker", "logs"]
    if follow:
        argv.append("--follow")
    if since:
        argv += ["--since", since]
    if tail is not None:
        argv += ["--tail", str(tail)]
    if timestamps:
        argv.append("--timestamps")
    return (*argv, name)


def exec_(name: str, command: Sequence[str], *, interactive: bool = False,
          env: Mapping[str, str] | None = None, user: str | None = None) -> Argv:
    argv = ["docker", "exec"]
    if interactive:
        argv.append("--interactive")
    if user:
        argv += ["--user", user]
    for k, v in (env or {}).items():
        argv += ["--env", f"{k}={v}"]
    return (*argv, name, *command)


def network_create(name: str, labels: Mapping[str, str] | None = None) -> Argv:
    return ("docker", "network", "create", *_labels(labels), name)


def network_inspect(name: str) -> Argv:
    return ("docker", "network", "inspect", "--format", "{{.Name}}", name)


def volume_create(name: str, labels: Mapping[str, str] | None = None) -> Argv:
    return ("docker", "volume", "create", *_labels(labels), name)


def ps(filters: Mapping[str, str] | None = None, all: bool = True,
       fmt: str = "{{json .}}") -> Argv:
    argv = ["docker", "ps"]
    if all:
        argv.append("--all")
    for k, v in (filters or {}).items():
        argv += ["--filter", f"{k}={v}"]
    return (*argv, "--no-trunc", "--format", fmt)


def info(fmt: str = "{{.ServerVersion}}") -> Argv:
    return ("docker", "info", "--format", fmt)


# --------------------------------------------------------------------------- remote stages


def login(registry: str, username: str) -> Argv:
    """The password is read from stdin: never in argv."""
    return ("docker", "login", "--username", username, "--password-stdin", registry)


def volume_inspect(name: str) -> Argv:
    return ("docker", "volume", "inspect", "--format", "{{.Name}}", name)


def image_repo_digests(ref: str) -> Argv:
    return ("docker", "image", "inspect", "--format", "{{json .RepoDigests}}", ref)


def image_present_or_pull(ref: str) -> tuple[Argv, Argv]:
    """(check, pull): pull only when the check (the image is already there) fails."""
    return image_inspect(ref, "{{.Id}}"), pull(ref)


def exec_env_names(name: str, command: Sequence[str], env_names: Iterable[str] = ()) -> Argv:
    argv = ["docker", "exec"]
    for k in env_names:
        argv += ["--env", k]
    return (*argv, name, *command)


def container_state(name: str) -> Argv:
    """One JSON object (or an error when the container does not exist)."""
    return inspect(name, "{{json .}}")


def rmi(ref: str) -> Argv:
    return ("docker", "rmi", ref)
