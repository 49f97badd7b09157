"""The app image on the host: registry login, pull by digest (before anything stops), and the
files inside an image (its migrations) read without running it."""

from __future__ import annotations

import base64
import gzip
import io as _io
import json
import tarfile
from pathlib import Path
from typing import Any

from conveyor import host
from conveyor.commands import docker
from conveyor.errors import ConveyorError
from conveyor.imageref import REVISION_LABEL, ImageRef
from conveyor.plan import Step, StepIO
from conveyor.state.deploy import DeployState
from conveyor.targets.remote import Remote, tail


def login_step(remote: Remote) -> Step[DeployState] | None:
    reg = remote.cfg.registry
    if reg is None or reg.username is None or reg.password is None:
        return None
    username, password = reg.username, reg.password

    def action(st: DeployState, io: StepIO) -> None:
        user = remote.secret(username, "registry.username")
        pw = remote.secret(password, "registry.password")
        io.run(docker.login(reg.address, user), input=pw + "\n", timeout=120)

    return Step("login", action, describe=[docker.login(reg.address, "<username>"),
                                           "stdin: the registry password"])


def pull_argv(image: ImageRef) -> tuple[str, ...]:
    """Pull by digest unless the image is there already; print its labels either way."""
    from conveyor.transport import sh

    labels = docker.image_inspect(image.ref, "{{json .Config.Labels}}")
    return sh(labels, "2>/dev/null", "||", "{", docker.pull(image.ref), "&&", labels, ";", "}")


def _image_labels(st: DeployState, image: ImageRef, labels: dict[str, str]) -> None:
    st.image_labels = labels
    st.image_revision = labels.get(REVISION_LABEL) or image.revision


def pull_step(remote: Remote, image: ImageRef) -> Step[DeployState]:
    def action(st: DeployState, io: StepIO) -> None:
        if st.image_present_labels is not None:  # seen by the lock step's round trip
            _image_labels(st, image, st.image_present_labels)
            io.note(f"already present: {image.ref}")
            return
        assert io.transport is not None
        r = io.transport.run(pull_argv(image), timeout=1800,
                             stream=lambda line: None if line.startswith("{") else io.log(line))
        labels_line = r.stdout.strip().splitlines()[-1] if r.stdout.strip() else "null"
        try:
            labels = json.loads(labels_line) or {}
        except ValueError:
            labels = {}
        _image_labels(st, image, labels)
        pulled = "Digest:" in r.stdout or "Status:" in r.stdout
        io.note(("pulled " if pulled else "already present: ") + image.ref)

    return Step("pull", action, describe=[
        pull_argv(image), "(nothing to do when the lock step found the image on the host)"],
        reads=("image_present_labels",), writes=("image_labels", "image_revision"))


# --------------------------------------------------------------------------- image contents


def image_files_argv(remote: Remote, image_ref: str, directory: str) -> tuple[str, ...]:
    labels = [a for k, v in remote.labels("inspect").items() for a in ("--label", f"{k}={v}")]
    return host.argv("image_files", image_ref, directory, *labels)


def _extract(data: bytes, dest: Path) -> None:
    with tarfile.open(fileobj=_io.BytesIO(data)) as tf:
        if hasattr(tarfile, "data_filter"):
            tf.extractall(dest, filter="data")
            return
        # Python < 3.11.4 (Debian 12's python3 in the runner image): check every member
        for member in tf.getmembers():
            name = Path(member.name)
            if name.is_absolute() or ".." in name.parts or not (member.isfile()
                                                                 or member.isdir()):
                raise ConveyorError(f"unexpected entry in the image's migrations: {member.name}")
        tf.extractall(dest)


def fetch_image_migrations(remote: Remote, image_ref: str, dest: Path) -> list[Any]:
    """The migrations inside an image (present on the host), discovered from a local copy."""
    directory = remote.cfg.migrations.container_dir
    r = remote.transport.run(image_files_argv(remote, image_ref, directory), check=False,
                             timeout=300)
    return unpack_image_migrations(image_ref, directory, r.returncode, r.stdout, r.stderr, dest)


def unpack_image_migrations(image_ref: str, directory: str, returncode: int, stdout: str,
                            stderr: str, dest: Path) -> list[Any]:
    """The migrations from image_files.sh's answer (also status.sh's `files` section),
    unpacked into `dest` and discovered."""
    from conveyor.migrations import MigrationError, discover

    if returncode != 0:
        raise ConveyorError(
            f"cannot read the migrations of {image_ref} at {directory}: {tail(stderr)}",
            hint="migrations.container_dir must be where the image holds its migrations")
    try:
        _extract(gzip.decompress(base64.b64decode(stdout)), dest)
        return discover(dest)
    except MigrationError as exc:
        raise ConveyorError(f"the migrations in {image_ref} ({directory}) are not valid: "
                            f"{exc}") from None
    except (OSError, ValueError, tarfile.TarError) as exc:
        raise ConveyorError(f"cannot unpack the migrations of {image_ref}: {exc}") from None
