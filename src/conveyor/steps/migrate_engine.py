"""conveyor's migration engine in a temporary container of conveyor's RUNNER image, on the
database's network: the app's image needs neither python3 nor libpq, only its migrations
(`migrations.container_dir`), which are copied out of it first without running it
(host/copy_out.sh) into the run's directory on the host and mounted read-only:

    docker run --rm --interactive --network NET --volume DIR:/migrations:ro RUNNER_IMAGE \
        (entrypoint python) -m conveyor.steps.migrate_driver

The driver reads one JSON header line on stdin (the database URL among it): the URL never
appears in any argv: not in `ps` on the host, not in `--dry-run`, not in records.

With `migrations.command` set, that command runs instead in a temporary container of the APP
image, with DATABASE_URL from an env file (0600, removed when the command ends).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from conveyor import host
from conveyor.commands import docker
from conveyor.migrations import queries
from conveyor.steps.migrate_driver import RESULT_MARK
from conveyor.targets.remote import Remote

ENGINE_DIR = "/migrations"  # where the engine container sees the migrations


def engine_image(remote: Remote) -> str:
    """The runner image (the runner knows its own; elsewhere it is computed from conveyor)."""
    own = os.environ.get("CONVEYOR_RUNNER_IMAGE")
    if own:
        return own
    from conveyor.runner.image import image_ref

    return image_ref(remote.cfg)


def migrations_dir(remote: Remote, deployment_id: str, what: str = "migrations") -> str:
    """Where a run keeps the migrations it copied out of an image, on the host."""
    return f"{remote.state_dir}/runs/{deployment_id}/{what}"


def copy_out_argv(remote: Remote, image_ref: str, dest: str) -> tuple[str, ...]:
    labels = [a for k, v in remote.labels("inspect").items() for a in ("--label", f"{k}={v}")]
    return host.argv("copy_out", image_ref, remote.cfg.migrations.container_dir, dest, *labels)


def engine_stdin(command: str, database_url: str, *, lock_timeout: float, applied_by: str,
                 versions: Sequence[str] | None = None, allow_drift: bool = False) -> bytes:
    """The driver's one header line. `versions`: what `revert` reverts, newest first;
    `allow_drift`: `run` applies the pending migrations despite drift (deploy --allow-drift)."""
    header: dict[str, Any] = {
        "command": command, "database_url": database_url, "migration_dir": ENGINE_DIR,
        "lock_timeout": lock_timeout, "applied_by": applied_by}
    if versions is not None:
        header["versions"] = list(versions)
    if allow_drift:
        header["allow_drift"] = True
    return json.dumps(header).encode() + b"\n"


def engine_argv(runner_image: str, migrations: str, *, name: str | None, network: str | None,
                labels: Mapping[str, str]) -> tuple[str, ...]:
    return docker.run(runner_image, name=name, rm=True, interactive=True, network=network,
                      labels=labels, volumes=[f"{migrations}:{ENGINE_DIR}:ro"],
                      entrypoint="python", command=("-m", "conveyor.steps.migrate_driver"))


def user_command_argv(image: str, command: Sequence[str], *, name: str | None,
                      network: str | None, env_file: str,
                      labels: Mapping[str, str]) -> tuple[str, ...]:
    return docker.run(image, name=name, rm=True, network=network, env_file=env_file,
                      labels=labels, command=tuple(command))


# --------------------------------------------------------------------------- fingerprints
# `conveyor build` labels the image with a fingerprint of its migrations (versions and up.sql
# checksums, as the engine computes them; checked inside the built image). A deploy compares it
# with what the database has applied (Diesel's table joined with conveyor's checksums, read in
# the lock step's round trip): when they are equal there is nothing to migrate and no drift, and
# the temporary container is not started. Any doubt (no label, a row without checksum, a
# database reached by URL, `migrations.command`) runs the engine as usual.

FINGERPRINT_LABEL = "conveyor.migrations"

#: the one query for the applied migrations (Diesel's table joined with conveyor's checksums)
APPLIED_SQL = queries.APPLIED_SQL


def fingerprint(pairs: Sequence[tuple[str, str]]) -> str:
    """`<count>:sha256:<hex>` over the sorted (version, checksum) pairs."""
    import hashlib

    text = "".join(f"{v} {c}\n" for v, c in sorted(pairs))
    return f"{len(pairs)}:sha256:{hashlib.sha256(text.encode()).hexdigest()}"


def applied_fingerprint(lines: Sequence[str]) -> str | None:
    """The fingerprint of what the database has applied, from APPLIED_SQL's rows; None when
    any row lacks a Diesel row, a checksum row or a checksum (the engine must look)."""
    pairs = queries.fingerprint_pairs(lines)
    return None if pairs is None else fingerprint(pairs)


def local_fingerprint(migrations_dir: Path) -> tuple[str, int] | None:
    """(fingerprint, count) of a migration directory, or None when it does not exist."""
    from conveyor.migrations import discover
    from conveyor.migrations.errors import DiscoveryError

    if not migrations_dir.is_dir():
        return None
    try:
        found = discover(migrations_dir)
    except DiscoveryError:
        return None
    return fingerprint([(m.version, m.checksum) for m in found]), len(found)


@dataclass
class EngineOutput:
    lines: list[str]
    result: dict[str, Any] | None

    @property
    def applied(self) -> list[str]:
        if not self.result:
            return []
        return [s["name"] or s["version"] for s in self.result.get("applied", [])]


def parse_output(text: str) -> EngineOutput:
    lines, result = [], None
    for line in text.splitlines():
        if line.startswith(RESULT_MARK):
            try:
                result = json.loads(line[len(RESULT_MARK):])
            except ValueError:
                result = None
            continue
        lines.append(line)
    return EngineOutput(lines, result)
