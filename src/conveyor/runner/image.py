"""conveyor's runner image: built here (the controller) from a Python base image, with this
very conveyor and its pinned dependencies, tagged by a hash of what went in (so it is rebuilt
only when conveyor or its recipe changes), pushed to the app's registry, pulled by the host.

The base image is `CONVEYOR_RUNNER_BASE_IMAGE`, else `BASE_PYTHON_IMAGE` (which
`scripts/testbed env` points at the test bed's offline Python image), else the official
`python:3.12-slim`.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from importlib import metadata, resources
from pathlib import Path

import conveyor
from conveyor.commands import docker
from conveyor.config import Config
from conveyor.errors import ConveyorError
from conveyor.targets.remote import Remote, tail
from conveyor.transport import LocalTransport

DEFAULT_BASE = "python:3.12-slim"
REPOSITORY = "conveyor-runner"
#: what the runner needs: psycopg (the engine), pydantic (the config), squawk (the lint)
REQUIREMENTS = ("psycopg", "psycopg-binary", "pydantic", "pydantic-core", "typing-extensions",
                "annotated-types", "typing-inspection", "squawk-cli")


def base_image() -> str:
    return (os.environ.get("CONVEYOR_RUNNER_BASE_IMAGE") or os.environ.get("BASE_PYTHON_IMAGE")
            or DEFAULT_BASE)


def _package_files() -> list[Path]:
    root = Path(conveyor.__file__).parent
    return sorted(p for p in root.rglob("*") if p.is_file() and "__pycache__" not in p.parts
                  and p.suffix not in (".pyc",))


def requirements() -> str:
    lines = []
    for name in REQUIREMENTS:
        try:
            lines.append(f"{name}=={metadata.version(name)}")
        except metadata.PackageNotFoundError:
            continue
    return "\n".join(lines) + "\n"


def recipe() -> str:
    """What the image is made of; its hash is the image's tag."""
    h = hashlib.sha256()
    h.update(resources.files(__package__).joinpath("Dockerfile").read_bytes())
    h.update(base_image().encode() + b"\0" + requirements().encode())
    root = Path(conveyor.__file__).parent
    for p in _package_files():
        h.update(str(p.relative_to(root)).encode() + b"\0" + p.read_bytes())
    return h.hexdigest()[:16]


def image_ref(cfg: Config) -> str:
    tag = f"{conveyor.__version__}-{recipe()}"
    if cfg.registry is not None:
        return f"{cfg.registry.address.rstrip('/')}/{REPOSITORY}:{tag}"
    return f"{REPOSITORY}:{tag}"


def build(ref: str, log: object = None) -> None:
    """Build the runner image here unless it exists already."""
    local = LocalTransport()
    if local.run(docker.image_inspect(ref, "{{.Id}}"), check=False, timeout=60).ok:
        return
    with tempfile.TemporaryDirectory(prefix="conveyor-runner-") as tmp:
        ctx = Path(tmp)
        shutil.copy(Path(str(resources.files(__package__).joinpath("Dockerfile"))),
                    ctx / "Dockerfile")
        (ctx / "requirements.txt").write_text(requirements())
        root = Path(conveyor.__file__).parent
        for p in _package_files():
            dest = ctx / "conveyor" / p.relative_to(root)
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(p, dest)
        r = local.run(docker.build(ref, str(ctx), str(ctx / "Dockerfile"),
                                   build_args={"BASE_IMAGE": base_image()},
                                   labels={docker.LABEL: "runner"}),
                      check=False, timeout=1800)
        if not r.ok:
            raise ConveyorError(f"building conveyor's runner image {ref} failed: "
                                f"{tail(r.stdout + r.stderr, 8)}",
                                hint="the runner image is built FROM $CONVEYOR_RUNNER_BASE_IMAGE "
                                f"(default {DEFAULT_BASE}); it needs Debian's apt and pip")


def ensure_on_host(remote: Remote, ref: str) -> None:
    """The runner image on the host: there already, else built here, pushed and pulled."""
    if remote.transport.run(docker.image_inspect(ref, "{{.Id}}"), check=False, timeout=60).ok:
        return
    bring_to_host(remote, ref)


def bring_to_host(remote: Remote, ref: str, log: Callable[[str], None] | None = None) -> None:
    """The runner image, not on the host: built here (unless it is already), pushed to the
    app's registry and pulled there; when there is no registry, or the push or the pull fails
    (the registry is down), streamed over the SSH connection instead (`docker save | docker
    load`), so that the deploy still runs on the host and leaves a record."""
    build(ref)
    why = "this project has no [registry]"
    if remote.cfg.registry is not None:
        local = LocalTransport()
        r = local.run(docker.push(ref), check=False, timeout=1800)
        if r.ok:
            r = remote.transport.run(docker.pull(ref), check=False, timeout=1800)
            if r.ok:
                return
            why = f"pulling it on {remote.host} failed: {tail(r.stderr)}"
        else:
            why = f"pushing it failed: {tail(r.stderr)}"
    if log is not None:
        log(f"conveyor's runner image {ref}: {why}; sending it over SSH instead")
    load_over_ssh(remote, ref)


def load_over_ssh(remote: Remote, ref: str) -> None:
    """`docker save` here, piped into `docker load` on the host (one SSH session)."""
    save = subprocess.Popen(["docker", "save", ref], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    load = remote.transport.popen(("docker", "load", "--quiet"))
    assert save.stdout is not None and load.stdin is not None
    try:
        shutil.copyfileobj(save.stdout, load.stdin, 1 << 20)
    except BrokenPipeError:
        pass
    finally:
        load.stdin.close()
    assert load.stdout is not None and load.stderr is not None and save.stderr is not None
    load.stdout.read()  # "Loaded image: ..." (small)
    load_err = load.stderr.read()
    load.wait(timeout=1800)
    save_err = save.stderr.read()
    save.wait(timeout=60)
    if save.returncode != 0 or load.returncode != 0:
        raise ConveyorError(
            f"conveyor's runner image {ref} could not be brought to {remote.host}: "
            + (f"docker save failed: {tail(save_err.decode(errors='replace'))}"
               if save.returncode != 0 else
               f"docker load there failed: {tail(load_err.decode(errors='replace'))}"),
            hint="check the registry (`conveyor push` uses it too) and the host's disk")
