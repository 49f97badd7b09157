"""``conveyor migrate generate NAME``: a new migration directory named as diesel_cli names it.

diesel_cli 2.x (diesel_cli/src/migrations/mod.rs, ``create_migration_dir``): the version is the
current UTC time formatted ``%Y-%m-%d-%H%M%S`` (diesel_cli/src/main.rs, ``TIMESTAMP_FORMAT``)
followed by ``-{n:04x}``, the first sub-version for which no existing directory name starts
with the full version; an explicit ``--version`` is used as is (and refused if a directory
already starts with it). up.sql and down.sql get Diesel's placeholder comments.
"""

from __future__ import annotations

import time
from pathlib import Path

from conveyor.migrations.discovery import MAX_VERSION_LENGTH, version_from_name
from conveyor.migrations.errors import UsageError

UP_TEMPLATE = "-- Your SQL goes here\n"
DOWN_TEMPLATE = "-- This file should undo anything in `up.sql`\n"


def diesel_timestamp(now: float | None = None, style: str = "diesel") -> str:
    t = time.gmtime(now if now is not None else time.time())
    return time.strftime("%Y-%m-%d-%H%M%S" if style == "diesel" else "%Y%m%d%H%M%S", t)


def generate(
    migrations_dir: Path | str,
    name: str,
    *,
    version_style: str = "diesel",
    version: str | None = None,
    down: bool = True,
    run_in_transaction: bool = True,
    now: float | None = None,
) -> Path:
    """Create ``<migrations_dir>/<version>_<name>/`` with up.sql (and down.sql); return it."""
    if not name or "/" in name or "\\" in name or name in (".", "..") or name.startswith("."):
        raise UsageError(f"Invalid migration name {name!r}.",
                         "Use a short description such as create_users (no '/', not starting "
                         "with '.').")
    migrations_dir = Path(migrations_dir)
    migrations_dir.mkdir(parents=True, exist_ok=True)
    existing = [p.name for p in migrations_dir.iterdir() if p.is_dir()]
    if version is not None:
        if "_" in version:
            raise UsageError(f"Invalid version {version!r}: it must not contain '_' (the "
                             "version is the part of the directory name before the first '_').")
        if any(e.startswith(version) for e in existing):
            raise UsageError(f"A migration directory in {migrations_dir} already starts with "
                             f"the version {version!r}.", "Choose another --version.")
        full = version
    else:
        base = diesel_timestamp(now, version_style)
        for sub in range(0x10000):
            full = f"{base}-{sub:04x}" if version_style == "diesel" else (
                base if sub == 0 else f"{base}{sub:04d}")
            if not any(e.startswith(full) for e in existing):
                break
        else:  # pragma: no cover - 65536 migrations in one second
            raise UsageError("Too many migrations generated in the same second.")
    if not version_from_name(full) or len(version_from_name(full)) > MAX_VERSION_LENGTH:
        raise UsageError(f"Invalid version {full!r}: the version (without '-') must have 1 to "
                         f"{MAX_VERSION_LENGTH} characters.")
    directory = migrations_dir / f"{full}_{name}"
    directory.mkdir()
    (directory / "up.sql").write_text(UP_TEMPLATE)
    if down:
        (directory / "down.sql").write_text(DOWN_TEMPLATE)
    if not run_in_transaction:
        (directory / "metadata.toml").write_text("run_in_transaction = false\n")
    return directory
