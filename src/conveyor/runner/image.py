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
import tempfile
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


def bring_to_host(remote: Remote, ref: str) -> None:
    """The runner image, not on the host: built here (unless it is already), pushed, pulled
    there."""
    build(ref)
    if remote.cfg.registry is None:
        raise ConveyorError("the runner image reaches the host through the registry, and this "
                            "project has no [registry]", hint="add a [registry] table")
    local = LocalTransport()
    r = local.run(docker.push(ref), check=False, timeout=1800)
    if not r.ok:
        raise ConveyorError(f"pushing conveyor's runner image {ref} failed: {tail(r.stderr)}")
    r = remote.transport.run(docker.pull(ref), check=False, timeout=1800)
    if not r.ok:
        raise ConveyorError(f"pulling conveyor's runner image {ref} on {remote.host} failed: "
                            f"{tail(r.stderr)}")
