"""conveyor.migrations.startup: psycopg's version modules seeded without importlib.metadata,
only when the installed files are exactly as expected, and the GC paused around imports."""

from __future__ import annotations

import gc
import subprocess
import sys
import textwrap
from importlib import metadata
from importlib.machinery import BuiltinImporter, FrozenImporter, PathFinder
from pathlib import Path

import pytest

from conveyor.migrations import startup

VERSION_PY = '''"""
{dist} distribution version file.
"""

# Copyright (C) 2020 The Psycopg Team

from importlib import metadata

try:
    __version__ = metadata.version("{dist}")
except metadata.PackageNotFoundError:
    __version__ = "0.0.0.0"
'''


def _site(tmp_path: Path, *, version_py: str | None = None, dist_info: str = "fakepkg-1.2.3",
          meta_name: str = "fakepkg", meta_version: str = "1.2.3") -> Path:
    site = tmp_path / "site"
    pkg = site / "fakepkg"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "version.py").write_text(VERSION_PY.format(dist="fakepkg") if version_py is None
                                    else version_py)
    info = site / f"{dist_info}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {meta_name}\n"
                                   f"Version: {meta_version}\nSummary: x\n\nVersion: 9.9.9\n")
    return site


@pytest.fixture
def plain_import(monkeypatch: pytest.MonkeyPatch) -> None:
    """sys.meta_path as in `conveyor migrate` (pytest's assertion hook is not)."""
    monkeypatch.setattr(sys, "meta_path", [BuiltinImporter, FrozenImporter, PathFinder])


def test_version_read_from_metadata_next_to_the_package(tmp_path, monkeypatch, plain_import):
    site = _site(tmp_path)
    monkeypatch.syspath_prepend(str(site))
    assert startup._version_without_metadata("fakepkg", "fakepkg") == "1.2.3"


def test_dist_names_compare_normalized(tmp_path, monkeypatch, plain_import):
    site = tmp_path / "site"
    pkg = site / "fake_pkg"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "version.py").write_text(VERSION_PY.format(dist="fake-pkg"))
    (site / "fake_pkg-2.0.dist-info").mkdir()
    (site / "fake_pkg-2.0.dist-info" / "METADATA").write_text("Name: fake-pkg\nVersion: 2.0\n")
    monkeypatch.syspath_prepend(str(site))
    assert startup._version_without_metadata("fake_pkg", "fake-pkg") == "2.0"


@pytest.mark.parametrize("kwargs", [
    {"version_py": VERSION_PY.format(dist="fakepkg") + "EXTRA = 1\n"},  # another file
    {"version_py": '__version__ = "1.2.3"\n'},
    {"dist_info": "otherpkg-1.2.3"},  # no dist-info of its own
    {"meta_name": "otherpkg"},
    {"meta_version": ""},
])
def test_anything_unexpected_leaves_the_import_alone(tmp_path, monkeypatch, plain_import,
                                                     kwargs):
    site = _site(tmp_path, **kwargs)
    monkeypatch.syspath_prepend(str(site))
    assert startup._version_without_metadata("fakepkg", "fakepkg") is None


def test_two_dist_infos_leave_the_import_alone(tmp_path, monkeypatch, plain_import):
    site = _site(tmp_path)
    (site / "fakepkg-1.0.dist-info").mkdir()
    (site / "fakepkg-1.0.dist-info" / "METADATA").write_text("Name: fakepkg\nVersion: 1.0\n")
    monkeypatch.syspath_prepend(str(site))
    assert startup._version_without_metadata("fakepkg", "fakepkg") is None


def test_an_import_hook_leaves_the_import_alone(tmp_path, monkeypatch):
    site = _site(tmp_path)
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setattr(sys, "meta_path", [object(), PathFinder])
    assert startup._version_without_metadata("fakepkg", "fakepkg") is None


def test_missing_package():
    assert startup._version_without_metadata("no_such_package_here", "x") is None


def test_installed_psycopg_gives_what_importlib_metadata_gives(plain_import):
    for package, dist in startup._PACKAGES:
        if PathFinder.find_spec(package) is None:
            continue
        assert startup._version_without_metadata(package, dist) == metadata.version(dist)


def test_seed_versions_in_a_fresh_process():
    """In a fresh interpreter: psycopg imports with the seeded modules, without
    importlib.metadata, and its version is importlib.metadata's."""
    code = textwrap.dedent("""
        import sys
        from conveyor.migrations import startup
        startup.seed_versions()
        with startup.gc_paused():
            import psycopg
        seeded = "importlib.metadata" not in sys.modules
        from importlib import metadata
        print(seeded, psycopg.__version__ == metadata.version("psycopg"))
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.split()
    assert out == ["True", "True"]


def test_seed_versions_does_nothing_once_psycopg_is_imported(monkeypatch):
    import psycopg  # noqa: F401

    monkeypatch.delitem(sys.modules, "psycopg_binary.version", raising=False)
    before = dict(sys.modules)
    startup.seed_versions()
    assert sys.modules == before


def test_gc_paused_restores_the_state():
    assert gc.isenabled()
    with startup.gc_paused():
        assert not gc.isenabled()
    assert gc.isenabled()
    gc.disable()
    try:
        with startup.gc_paused():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()
    with pytest.raises(RuntimeError), startup.gc_paused():
        raise RuntimeError
    assert gc.isenabled()


def test_gc_paused_freezes_only_when_asked_and_nobody_froze_before():
    """In a fresh interpreter (a freeze would stay in pytest's)."""
    code = textwrap.dedent("""
        import gc
        from conveyor.migrations import startup
        with startup.gc_paused():
            pass
        print(gc.get_freeze_count() == 0)
        with startup.gc_paused(freeze=True):
            import json  # noqa: F401
        frozen = gc.get_freeze_count()
        print(frozen > 0, gc.isenabled())
        gc.unfreeze()
        gc.disable()
        gc.freeze()  # someone else's freeze
        theirs = gc.get_freeze_count()
        with startup.gc_paused(freeze=True):
            x = [[] for _ in range(1000)]
        print(gc.get_freeze_count() == theirs, gc.isenabled())
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.split()
    assert out == ["True", "True", "True", "True", "False"]


def test_the_cli_freezes_only_in_its_own_process(monkeypatch, tmp_path):
    """`conveyor migrate` (main.py, python -m conveyor.migrations) exits after the command: it
    passes exiting=True; an in-process call (tests, the Typer app) does not freeze."""
    from conveyor.migrations import cli

    seen = []
    real = startup.gc_paused

    def spy(*, freeze: bool = False):
        seen.append(freeze)
        return real(freeze=False)

    monkeypatch.setattr(startup, "gc_paused", spy)
    monkeypatch.delenv("DATABASE_URL", raising=False)
    # a status on an unreachable URL: the engine is imported, then the connection fails
    argv = ["status", "--database-url", "postgresql://u@127.0.0.1:1/x", "--migration-dir",
            str(tmp_path)]
    assert cli.main(argv) == 1 and seen == [False]
    seen.clear()
    assert cli.main(argv, exiting=True) == 1
    assert seen == [True]
