"""Importing psycopg quickly, for a short-lived ``conveyor migrate`` process.

``import psycopg`` is most of a no-op ``conveyor migrate run`` (about 600 of its 800 million
instructions, counted with ``valgrind --tool=callgrind``). Part of that is not needed:

* ``psycopg/version.py`` and ``psycopg_binary/version.py`` each ask ``importlib.metadata`` for
  their distribution's version, which imports ``importlib.metadata`` (with ``email``,
  ``zipfile``, ``csv``...) and scans ``sys.path``: ~8 % of the import. :func:`seed_versions`
  puts both modules in ``sys.modules`` first, with the same value read from the ``Version:``
  line of the distribution's ``METADATA`` next to the package -- only when the installed
  ``version.py`` is exactly the file that does just that (otherwise, or when anything is not
  as expected, it leaves the import alone: never a wrong ``psycopg.__version__``);
* the cyclic garbage collector runs dozens of times while an import creates its classes and
  functions, none of which is garbage, and walks them all again at exit: :func:`gc_paused`.

Standard library only; costs well under a millisecond.
"""

from __future__ import annotations

import gc
import os
import sys
import types
from collections.abc import Iterator
from contextlib import contextmanager

#: the code lines of psycopg's and psycopg_binary's version.py (3.1 to 3.3), docstring and
#: comments aside; ``{dist}`` is the distribution's name
_VERSION_PY = (
    "from importlib import metadata",
    "try:",
    '    __version__ = metadata.version("{dist}")',
    "except metadata.PackageNotFoundError:",
    '    __version__ = "0.0.0.0"',
)

_PACKAGES = (("psycopg", "psycopg"), ("psycopg_binary", "psycopg-binary"))


@contextmanager
def gc_paused(*, freeze: bool = False) -> Iterator[None]:
    """The cyclic garbage collector off for the block (as it was afterwards). With ``freeze``
    (a process that exits when its command is done), what exists at the end of the block is
    frozen (``gc.freeze``: modules, classes and functions, alive until the exit anyway), so
    that neither later collections nor the one at exit walk it again (~8 % of a no-op ``run``);
    never when someone else froze objects already."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if freeze and gc.get_freeze_count() == 0:
            gc.freeze()
        if enabled:
            gc.enable()


def seed_versions() -> None:
    """Before the first ``import psycopg``: seed ``psycopg.version`` and
    ``psycopg_binary.version`` (module docstring). Does nothing once psycopg is imported."""
    if "psycopg" in sys.modules:
        return
    for package, dist in _PACKAGES:
        name = f"{package}.version"
        if name in sys.modules:
            continue
        try:
            version = _version_without_metadata(package, dist)
        except (OSError, UnicodeDecodeError, ValueError, ImportError):
            version = None
        if version is None:
            continue
        module = types.ModuleType(name, f"{dist} distribution version file.")
        module.__package__ = package
        module.__version__ = version  # type: ignore[attr-defined]
        sys.modules[name] = module


def _version_without_metadata(package: str, dist: str) -> str | None:
    """What ``importlib.metadata.version(dist)`` gives for the installed ``package``, read
    from its ``*.dist-info/METADATA``; None when the package, its version.py or its
    dist-info is not exactly as expected."""
    from importlib.machinery import BuiltinImporter, FrozenImporter, PathFinder

    if any(f not in (BuiltinImporter, FrozenImporter, PathFinder) for f in sys.meta_path):
        return None  # an import hook may find the package elsewhere
    spec = PathFinder.find_spec(package)  # where `import package` finds it (sys.path)
    if spec is None or not spec.submodule_search_locations or not spec.origin \
            or os.path.basename(spec.origin) != "__init__.py":
        return None
    pkg_dir = os.path.dirname(spec.origin)
    with open(os.path.join(pkg_dir, "version.py"), encoding="utf-8") as f:
        text = f.read()
    if _code_lines(text) != tuple(line.format(dist=dist) for line in _VERSION_PY):
        return None
    site = os.path.dirname(pkg_dir)
    want = _normalized(dist)
    found = [e for e in os.listdir(site) if e.endswith(".dist-info")
             and _normalized(e[:-len(".dist-info")].rpartition("-")[0]) == want]
    if len(found) != 1:
        return None
    with open(os.path.join(site, found[0], "METADATA"), encoding="utf-8") as f:
        headers: dict[str, str] = {}
        for line in f:
            if not line.strip():
                break  # the headers end at the first empty line
            key, sep, value = line.partition(":")
            if sep:
                headers[key.strip().lower()] = value.strip()
    version = headers.get("version")
    if _normalized(headers.get("name", "")) != want or not version:
        return None
    return version


def _normalized(name: str) -> str:
    """A distribution name as PEP 503 compares them (``psycopg_binary`` = ``psycopg-binary``)."""
    return name.lower().replace("_", "-").replace(".", "-")


def _code_lines(text: str) -> tuple[str, ...]:
    """The lines of ``text`` that are code: the leading docstring, comments and blank lines
    aside, trailing spaces stripped."""
    body = text.lstrip()
    if body.startswith('"""'):
        end = body.find('"""', 3)
        if end < 0:
            return ()
        body = body[end + 3:]
    return tuple(line.rstrip() for line in body.splitlines()
                 if line.strip() and not line.lstrip().startswith("#"))
