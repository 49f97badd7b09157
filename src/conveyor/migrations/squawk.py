"""Running squawk (PyPI ``squawk-cli``, a Rust binary next to the Python interpreter): find
it, lint up.sql files in batches or on stdin, and collect its JSON violations."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

from conveyor.migrations.lint_report import LintError
from conveyor.migrations.lint_rules import SQUAWK_TX_RULES

SQUAWK_TIMEOUT = 60.0


class MigrationLike(Protocol):  # what discovery.Migration provides
    version: str
    name: str
    up_sql: str
    run_in_transaction: bool

    @property
    def up_path(self) -> Path: ...


def find_squawk(explicit: str | os.PathLike[str] | None = None) -> Path:
    """The squawk binary: ``explicit``, else ``$CONVEYOR_SQUAWK``, else next to the running
    Python (``.venv/bin/squawk`` from the ``squawk-cli`` dependency), else on ``PATH``."""
    if explicit is None:
        explicit = os.environ.get("CONVEYOR_SQUAWK") or None
    if explicit is not None:
        path = Path(explicit)
        if path.is_file() and os.access(path, os.X_OK):
            return path
        raise LintError(f"squawk was not found at {path} (given explicitly or by CONVEYOR_SQUAWK).",
                        "Point it at the squawk binary, or unset CONVEYOR_SQUAWK.")
    beside = Path(sys.executable).parent / "squawk"
    if beside.is_file() and os.access(beside, os.X_OK):
        return beside
    found = shutil.which("squawk")
    if found:
        return Path(found)
    raise LintError(
        f"squawk (the SQL linter conveyor's lint runs) was not found next to {sys.executable} "
        "nor on PATH.",
        "Install conveyor's dependencies (`uv sync` installs the squawk-cli package, which "
        "provides it), or `pip install squawk-cli`, or set CONVEYOR_SQUAWK to the binary.")


def squawk_version(squawk: Path) -> str | None:
    try:
        r = subprocess.run([str(squawk), "--version"], capture_output=True, text=True,
                           timeout=SQUAWK_TIMEOUT, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    out = r.stdout.strip()
    return out.split()[-1] if out else None


def _squawk_json(argv: list[str], stdin: bytes | None, cwd: Path | None, what: str) -> list[dict]:
    try:
        r = subprocess.run(argv, input=stdin, capture_output=True, timeout=SQUAWK_TIMEOUT,
                           stdin=None if stdin is not None else subprocess.DEVNULL,
                           cwd=cwd if cwd and cwd.is_dir() else None, check=False)
    except subprocess.TimeoutExpired as exc:
        raise LintError(f"squawk did not finish within {SQUAWK_TIMEOUT:g} s on {what}.",
                        "Run it by hand to see why: " + " ".join(argv[:6]) + " ...") from exc
    except OSError as exc:
        raise LintError(f"cannot run squawk ({argv[0]}): {exc}.",
                        "Reinstall the squawk-cli package.") from exc
    stdout = r.stdout.decode("utf-8", "replace").strip()
    try:
        data = json.loads(stdout) if stdout else []
    except json.JSONDecodeError:
        data = None
    # squawk exits 1 when it found violations; anything else (or no JSON) is a failure
    if r.returncode not in (0, 1) or not isinstance(data, list) \
            or (r.returncode == 1 and not data):
        err = (r.stderr.decode("utf-8", "replace").strip() or stdout)[-500:]
        raise LintError(f"squawk failed on {what} (exit {r.returncode}): {err}",
                        "Check the squawk installation and any .squawk.toml it reads.")
    return data


def _mode(in_transaction: bool) -> str:
    return "--assume-in-transaction" if in_transaction else "--no-assume-in-transaction"


def run_squawk(squawk: Path, sql: str, *, filepath: str, in_transaction: bool,
               cwd: Path | None = None) -> list[dict]:
    """squawk's JSON violations for ``sql`` (fed on stdin, so odd file names are no problem)."""
    argv = [str(squawk), "--reporter", "json", "--stdin-filepath", filepath, _mode(in_transaction)]
    return _squawk_json(argv, sql.encode("utf-8"), cwd, filepath)


def run_squawk_files(squawk: Path, paths: Sequence[str], *, in_transaction: bool,
                     cwd: Path | None = None) -> dict[str, list[dict]]:
    """squawk's JSON violations for several files in one process, by path as given. squawk
    takes paths as glob patterns: give it only paths without glob characters."""
    argv = [str(squawk), "--reporter", "json", _mode(in_transaction), "--", *paths]
    out: dict[str, list[dict]] = {p: [] for p in paths}
    for v in _squawk_json(argv, None, cwd, f"{len(paths)} files"):
        out.setdefault(str(v.get("file")), []).append(v)
    return out


_GLOB_CHARS = frozenset("*?[]{}!")
_BATCH = 300


def squawk_all(binary: Path, migrations: Sequence[MigrationLike]) -> list[list[dict]]:
    """squawk's violations of each migration's up.sql. Without ``--assume-in-transaction``
    (in that mode squawk exempts tables created earlier in the file on its own; conveyor
    decides what is new, across files and knowing existing_tables), plus the transaction rules
    from a run with it for transactional migrations. Files that are on disk as given are linted
    in batches (one squawk process for many files); the others are fed on stdin."""
    plain: list[list[dict] | None] = [None] * len(migrations)
    tx: list[list[dict] | None] = [None] * len(migrations)
    on_disk: list[int] = []
    for i, m in enumerate(migrations):
        path = str(m.up_path)
        if _GLOB_CHARS.isdisjoint(path) and not path.startswith("-"):
            try:
                if Path(path).read_bytes().decode("utf-8") == m.up_sql:
                    on_disk.append(i)
            except (OSError, UnicodeDecodeError):
                pass
    for in_tx, results in ((False, plain), (True, tx)):
        todo = [i for i in on_disk if not in_tx or migrations[i].run_in_transaction]
        for start in range(0, len(todo), _BATCH):
            chunk = todo[start:start + _BATCH]
            paths = [os.path.abspath(migrations[i].up_path) for i in chunk]
            cwd = Path(os.path.commonpath([os.path.dirname(p) for p in paths]))
            try:
                found = run_squawk_files(binary, paths, in_transaction=in_tx, cwd=cwd)
            except LintError:
                continue  # e.g. a path squawk cannot take as a pattern: stdin below says why
            for i, p in zip(chunk, paths):
                results[i] = found.get(p, [])
    violations = []
    for i, m in enumerate(migrations):
        up_path = Path(m.up_path)
        got = plain[i]
        if got is None:
            got = run_squawk(binary, m.up_sql, filepath=str(up_path), in_transaction=False,
                             cwd=up_path.parent)
        if m.run_in_transaction:
            got = [v for v in got if v.get("rule_name") not in SQUAWK_TX_RULES]
            extra = tx[i]
            if extra is None:
                extra = run_squawk(binary, m.up_sql, filepath=str(up_path), in_transaction=True,
                                   cwd=up_path.parent)
            got += [v for v in extra if v.get("rule_name") in SQUAWK_TX_RULES]
        violations.append(got)
    return violations
