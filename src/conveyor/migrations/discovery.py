"""Discovery of migrations in Diesel's on-disk layout, exactly as Diesel reads it.

Layout: ``<dir>/<version>_<name>/up.sql`` with optional ``down.sql`` and ``metadata.toml``.
The rules below follow Diesel's own source (see docs/diesel-compat.md for the files):

* every entry of ``<dir>`` that is not a plain file and whose name does not start with ``.``
  is a migration directory; it must contain ``up.sql`` (Diesel: ``UnknownMigrationFormat``
  otherwise, which includes an empty directory);
* the version is the part of the directory name before the first ``_`` with every ``-``
  removed (``migrations_internals::version_from_string``);
* ``metadata.toml`` is optional; when absent ``run_in_transaction`` is true; when present the
  key defaults to *false* (``#[serde(default)] bool``);
* migrations are ordered by version compared as strings.

Where Diesel silently does something surprising, conveyor refuses with a ``DiscoveryError``
instead (documented in docs/diesel-compat.md): two directories with the same version, a version
longer than Diesel's ``VARCHAR(50)`` column or an empty one, an empty ``up.sql``, a
``metadata.toml`` that is not valid TOML or whose ``run_in_transaction`` is not a boolean.

Standard library only.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from conveyor.migrations.errors import DiscoveryError

#: Diesel's version column is VARCHAR(50)
MAX_VERSION_LENGTH = 50


def version_from_name(name: str) -> str:
    """Diesel's ``version_from_string``: text before the first ``_``, every ``-`` removed."""
    return name.split("_", 1)[0].replace("-", "")


class Migration:
    """One migration directory (immutable value: equality, hash and repr over its fields).

    Written by hand rather than as a frozen dataclass because ``down_sql`` is read from disk
    only when first asked for (most commands never need it), yet takes part in equality.
    """

    __slots__ = (
        "_dir",
        "_down",
        "checksum",
        "name",
        "run_in_transaction",
        "up_sql",
        "version",
    )
    _FIELDS = ("version", "name", "directory", "up_sql", "down_sql", "run_in_transaction",
               "checksum")

    _dir: Path | str
    _down: str | None | _Unread
    version: str
    #: the full directory name, e.g. ``2023-11-01-120000_create_users``
    name: str
    up_sql: str
    run_in_transaction: bool
    #: sha256 hex digest of the bytes of up.sql
    checksum: str

    def __init__(self, version: str, name: str, directory: Path | str, up_sql: str,
                 down_sql: str | None | _Unread, run_in_transaction: bool,
                 checksum: str) -> None:
        set_ = object.__setattr__  # __setattr__ refuses (immutable)
        set_(self, "version", version)
        set_(self, "name", name)
        set_(self, "_dir", directory)  # made a Path when first asked for (discover: a str)
        set_(self, "up_sql", up_sql)
        set_(self, "_down", down_sql)
        set_(self, "run_in_transaction", run_in_transaction)
        set_(self, "checksum", checksum)

    @property
    def directory(self) -> Path:
        d = self._dir
        if not isinstance(d, Path):
            d = Path(d)
            object.__setattr__(self, "_dir", d)
        return d

    @property
    def down_sql(self) -> str | None:
        """The text of down.sql, or None without one (read when first asked for: most
        commands never need it)."""
        down = self._down
        if isinstance(down, _Unread):
            path = os.path.join(self._dir, "down.sql")
            text: str | None
            try:
                text = _read_text(path)[1]
            except DiscoveryError:
                if os.path.lexists(path):
                    raise
                text = None
            object.__setattr__(self, "_down", text)
            return text
        return down

    def __setattr__(self, key, value):
        raise AttributeError(f"Migration is immutable (cannot set {key!r})")

    def __delattr__(self, key):
        raise AttributeError(f"Migration is immutable (cannot delete {key!r})")

    def _key(self) -> tuple:
        return tuple(getattr(self, k) for k in self._FIELDS)

    def __eq__(self, other):
        if other.__class__ is not self.__class__:
            return NotImplemented
        return self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __repr__(self) -> str:
        return (f"Migration(version={self.version!r}, name={self.name!r}, "
                f"directory={self.directory!r}, run_in_transaction={self.run_in_transaction!r}, "
                f"checksum={self.checksum[:12]!r}...)")

    def __reduce__(self):
        return (Migration, self._key())

    @property
    def up_path(self) -> Path:
        return self.directory / "up.sql"

    @property
    def down_path(self) -> Path:
        return self.directory / "down.sql"

    @property
    def metadata_path(self) -> Path:
        return self.directory / "metadata.toml"

    @property
    def has_down(self) -> bool:
        return self.down_sql is not None


class _Unread:
    def __repr__(self) -> str:
        return "<not read yet>"


_UNREAD = _Unread()


def checksum_of(data: bytes) -> str:
    """sha256 hex digest (of up.sql's bytes)."""
    return hashlib.sha256(data).hexdigest()


def _read_bytes(path: str) -> bytes:
    fd = os.open(path, os.O_RDONLY)
    try:
        chunks = []
        while True:
            chunk = os.read(fd, 1 << 20)
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        os.close(fd)
    return b"".join(chunks)


class _NoUpSql(Exception):
    pass


def _decode(data: bytes, path) -> str:
    nul = data.find(b"\x00")
    if nul >= 0:
        raise DiscoveryError(
            f"{path} contains a NUL byte (at byte {nul}).", path,
            "PostgreSQL cannot receive it in a query (Diesel fails on it too); remove it.",
        )
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DiscoveryError(
            f"{path} is not valid UTF-8 (byte {exc.start}).", path,
            "Diesel reads migration files as UTF-8 text; re-save the file as UTF-8.",
        ) from exc


def _read_text(path) -> tuple[bytes, str]:
    try:
        data = _read_bytes(os.fspath(path))
    except OSError as exc:
        raise DiscoveryError(f"Cannot read {path}: {exc.strerror or exc}.", path,
                             "Check the file's permissions.") from exc
    return data, _decode(data, path)


def _run_in_transaction(path) -> bool:
    if not os.path.isfile(path):
        return True  # no metadata.toml: Diesel's TomlMetadata::default(), i.e. true
    _, text = _read_text(path)
    import tomllib  # only for a migration with a metadata.toml

    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise DiscoveryError(
            f"{path} is not valid TOML: {exc}.", path,
            "Diesel would silently ignore this file and run the migration in a transaction; "
            "conveyor refuses to guess. Fix the file (e.g. `run_in_transaction = false`).",
        ) from exc
    value = data.get("run_in_transaction", False)
    if not isinstance(value, bool):
        raise DiscoveryError(
            f"{path}: run_in_transaction must be a boolean (true or false), got {value!r}.", path,
            "Diesel would silently ignore the whole file and run the migration in a "
            "transaction; write `run_in_transaction = false` or `= true` without quotes.",
        )
    return value


def load_migration(directory: Path | str, names: list[str] | None = None, *,
                   _name: str | None = None) -> Migration:
    """Read one migration directory (which must contain up.sql). ``names``: its file names,
    when the caller has listed it already. (``_name``: the directory's base name, when
    ``discover`` knows it; ``directory`` is then a plain joined path.)"""
    dir_s = os.fspath(directory)
    name = _name if _name is not None else os.path.basename(dir_s)
    version = version_from_name(name)
    if not version:
        raise DiscoveryError(
            f"Migration directory {dir_s} has no version: its name starts with '_'.",
            dir_s,
            "Name it <version>_<name>, e.g. 2024-01-31-120000_create_users "
            "(`conveyor migrate generate NAME` does this).",
        )
    if len(version) > MAX_VERSION_LENGTH:
        raise DiscoveryError(
            f"Migration directory {dir_s} gives the version {version!r}, "
            f"{len(version)} characters long; Diesel's __diesel_schema_migrations.version is "
            f"VARCHAR({MAX_VERSION_LENGTH}).",
            dir_s,
            "Shorten the part of the name before the first '_' (the version is that part "
            "with every '-' removed).",
        )
    base = dir_s + os.sep if _name is not None else os.path.join(dir_s, "")
    up_path = base + "up.sql"
    try:
        up_bytes = _read_bytes(up_path)
    except FileNotFoundError:
        raise _NoUpSql(dir_s) from None
    except OSError as exc:
        raise DiscoveryError(f"Cannot read {up_path}: {exc.strerror or exc}.", up_path,
                             "Check the file's permissions.") from exc
    up_sql = _decode(up_bytes, up_path)
    if not up_bytes:
        raise DiscoveryError(
            f"{up_path} is empty.", up_path,
            "Diesel refuses to run an empty migration (EmptyMigration); write the SQL, or "
            "put a comment such as `-- nothing to do` in it.",
        )
    return Migration(
        version=version,
        name=name,
        directory=directory,
        up_sql=up_sql,
        down_sql=_UNREAD if names is None or "down.sql" in names else None,
        run_in_transaction=(_run_in_transaction(base + "metadata.toml")
                            if names is None or "metadata.toml" in names else True),
        checksum=checksum_of(up_bytes),
    )


def discover(directory: Path | str) -> list[Migration]:
    """All migrations in ``directory``, sorted by version (as a string).

    Raises ``DiscoveryError`` when the directory is missing or not in Diesel's layout.
    """
    directory = os.fspath(directory)
    try:
        entries = list(os.scandir(directory))
    except FileNotFoundError as exc:
        raise DiscoveryError(
            f"The migration directory {directory} does not exist.", directory,
            "Create it (`conveyor migrate generate NAME` creates it), or point "
            "--migration-dir / the config's migrations directory at the right place.",
        ) from exc
    except NotADirectoryError as exc:
        raise DiscoveryError(f"The migration directory {directory} is not a directory.",
                             directory, "Point --migration-dir at a directory.") from exc
    except OSError as exc:
        raise DiscoveryError(f"Cannot read the migration directory {directory}: "
                             f"{exc.strerror or exc}.", directory,
                             "Check its permissions.") from exc

    migrations: list[Migration] = []
    by_version: dict[str, Migration] = {}
    for entry in entries:
        if entry.name.startswith("."):
            continue  # Diesel skips dot entries (e.g. .diesel_lock, .git)
        try:
            if not entry.is_dir():  # plain files (README.md, ...) are ignored like Diesel does
                continue
        except OSError:
            continue
        path = entry.path
        try:
            # up.sql is opened directly (listing each directory would cost more than reading)
            migration = load_migration(path, _name=entry.name)
        except _NoUpSql:
            try:
                names = [n for n in os.listdir(path) if not n.startswith(".")]
            except OSError:
                names = []
            what = "is empty" if not names else "has no up.sql"
            raise DiscoveryError(
                f"Migration directory {path} {what}; every directory in {directory} that does "
                "not start with '.' must contain an up.sql (Diesel refuses it too: "
                "UnknownMigrationFormat).",
                path,
                "Add the up.sql, or remove or rename the directory to start with '.'.",
            ) from None
        other = by_version.get(migration.version)
        if other is not None:
            first, second = sorted([other.name, migration.name])
            raise DiscoveryError(
                f"Two migration directories give the same version {migration.version!r}: "
                f"{first!r} and {second!r} in {directory} (Diesel would silently keep only one).",
                path,
                "Give one of them a new version (rename the directory's leading timestamp).",
            )
        by_version[migration.version] = migration
        migrations.append(migration)
    migrations.sort(key=lambda m: m.version)
    return migrations
