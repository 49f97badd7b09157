"""Plan the files `conveyor init` writes, and write all of them or none."""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass
from pathlib import Path

from conveyor.errors import InitRefused
from conveyor.init.ci_files import CI_FILES, CI_SYSTEMS, RENDERERS, render_cloudbuild
from conveyor.init.ci_needs import CiNeeds, ci_needs
from conveyor.init.config_text import render_config
from conveyor.init.detect import inspect_project
from conveyor.init.facts import Facts


class FileExistsRefused(InitRefused):
    def __init__(self, paths: list[Path], ci_only_possible: bool = False) -> None:
        self.paths = paths
        names = ", ".join(str(p) for p in paths)
        hint = "pass --force to overwrite, or move the file aside and run `conveyor init` again"
        if ci_only_possible:
            hint += "; to keep conveyor.toml and write only the CI file: --ci-only"
        super().__init__(
            f"refusing to overwrite {names}: "
            f"{'it exists' if len(paths) == 1 else 'they exist'} already; nothing was written",
            hint=hint,
        )


@dataclass
class InitResult:
    facts: Facts
    written: list[Path]
    needs: CiNeeds | None
    config_reused: bool = False


def plan_files(root: Path, ci: str | None, facts: Facts, existing_config: str | None = None,
               package: str | None = None) -> tuple[dict[Path, str], CiNeeds | None]:
    files: dict[Path, str] = {}
    config_text = existing_config if existing_config is not None else render_config(facts)
    if existing_config is None:
        files[root / "conveyor.toml"] = config_text
    needs = None
    if ci is not None:
        if ci not in RENDERERS:
            raise InitRefused(f"unknown CI system {ci!r}; expected one of: {', '.join(CI_SYSTEMS)}")
        needs = ci_needs(config_text)
        if ci == "cloudbuild":
            files[root / CI_FILES[ci][0]] = render_cloudbuild(facts, needs, package=package)
            files[root / CI_FILES[ci][1]] = render_cloudbuild(facts, needs, promote=True,
                                                              package=package)
        else:
            files[root / CI_FILES[ci][0]] = RENDERERS[ci](facts, needs, package=package)
    return files, needs


def write_files(files: dict[Path, str], force: bool) -> list[Path]:
    """Write all files, or none: an existing one is refused (naming it) unless `force`."""
    existing = [p for p in files if p.exists() or p.is_symlink()]
    if existing and not force:
        ci_only = any(p.name == "conveyor.toml" for p in existing) and len(files) > 1
        raise FileExistsRefused(existing, ci_only_possible=ci_only)
    written = []
    for path, text in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".conveyor-tmp")
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
        written.append(path)
    return written


def init_project(root: Path, ci: str | None = None, force: bool = False,
                 ci_only: bool = False, package: str | None = None) -> InitResult:
    """Inspect `root` and write conveyor.toml and (with `ci`) the CI file.

    `ci_only`: keep an existing conveyor.toml and derive the CI file from it.
    """
    root = root.resolve()
    facts = inspect_project(root)
    existing = None
    if ci_only:
        if ci is None:
            raise InitRefused("--ci-only needs --ci github|gitlab|cloudbuild")
        cfg = root / "conveyor.toml"
        try:
            existing = cfg.read_text(encoding="utf-8")
            tomllib.loads(existing)
        except OSError:
            raise InitRefused(f"--ci-only: {cfg} does not exist",
                            hint="run `conveyor init` without --ci-only to write it") from None
        except tomllib.TOMLDecodeError as exc:
            raise InitRefused(f"{cfg}: not valid TOML: {exc}") from None
    if package is not None and (not package.strip() or "\n" in package):
        raise InitRefused(f"--package {package!r}: expected one pip requirement")
    files, needs = plan_files(root, ci, facts, existing, package=package)
    written = write_files(files, force)
    return InitResult(facts, written, needs, config_reused=existing is not None)
