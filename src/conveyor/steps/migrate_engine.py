"""Migrations in a temporary container of the new image, on the database's network.

The image holds python3 + libpq and its migrations (`migrations.container_dir`), not conveyor.
conveyor's engine is shipped at run time: an in-memory zip of `conveyor.migrations` (its .py
files: standard library + libpq only) and a small driver, piped on stdin to

    docker run --rm --interactive --network NET IMAGE@DIGEST python3 -c BOOTSTRAP

The first stdin line is a JSON header (the database URL among it), then the zip. The URL thus
never appears in any argv: not in `ps` on the host, not in `--dry-run`, not in records.

With `migrations.command` set, that command runs instead, with DATABASE_URL from an env file
(0600, removed when the command ends, whatever its outcome).
"""

from __future__ import annotations

import functools
import io
import json
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from conveyor.commands import docker
from conveyor.migrations import queries
from conveyor.steps.migrate_driver import RESULT_MARK

DRIVER_MODULE = "conveyor_migrate_driver"

# Kept short: it is visible in `ps` on the host (and contains no secret).
BOOTSTRAP = (
    "import sys,json,tempfile\n"
    "i=sys.stdin.buffer\n"
    "h=json.loads(i.readline())\n"
    "z=i.read(h['zip'])\n"
    "f=tempfile.NamedTemporaryFile(prefix='conveyor-engine-',suffix='.zip',delete=False)\n"
    "f.write(z);f.close()\n"
    "sys.path.insert(0,f.name)\n"
    f"import {DRIVER_MODULE} as d\n"
    "sys.exit(d.main(h))\n"
)

_FIXED_TIME = (2020, 1, 1, 0, 0, 0)


@functools.lru_cache(maxsize=1)
def engine_zip() -> bytes:
    """conveyor.migrations (.py files only) + the driver, deterministic bytes."""
    import conveyor.migrations as pkg

    root = Path(pkg.__file__).parent
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:

        def add(name: str, data: bytes) -> None:
            info = zipfile.ZipInfo(name, _FIXED_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            zf.writestr(info, data)

        add("conveyor/__init__.py", b'"""conveyor (only its migration engine, shipped)."""\n')
        masking = root.parent / "masking.py"
        if masking.exists():  # the engine's one dependency outside its package
            add("conveyor/masking.py", masking.read_bytes())
        for path in sorted(root.rglob("*.py")):
            add(f"conveyor/migrations/{path.relative_to(root).as_posix()}", path.read_bytes())
        driver = Path(__file__).with_name("migrate_driver.py")  # conveyor.steps.migrate_driver
        add(f"{DRIVER_MODULE}.py", driver.read_bytes())
    return buf.getvalue()


def engine_stdin(command: str, database_url: str, migration_dir: str, *,
                 lock_timeout: float, applied_by: str,
                 versions: Sequence[str] | None = None) -> bytes:
    """What the bootstrap reads: one JSON header line (holds the URL), then the zip.
    `versions`: the migrations `revert` reverts, newest first."""
    z = engine_zip()
    header: dict[str, Any] = {
        "command": command, "database_url": database_url, "migration_dir": migration_dir,
        "lock_timeout": lock_timeout, "applied_by": applied_by, "zip": len(z)}
    if versions is not None:
        header["versions"] = list(versions)
    return json.dumps(header).encode() + b"\n" + z


def engine_argv(image: str, *, name: str | None, network: str | None,
                labels: Mapping[str, str]) -> tuple[str, ...]:
    return docker.run(image, name=name, rm=True, interactive=True, network=network,
                      labels=labels, entrypoint="python3", command=("-c", BOOTSTRAP))


def describe_engine_argv(argv: Sequence[str]) -> list[str]:
    """The argv as shown by --dry-run: the bootstrap abbreviated (it is fixed text)."""
    return ["<conveyor engine bootstrap>" if a == BOOTSTRAP else a for a in argv]


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
