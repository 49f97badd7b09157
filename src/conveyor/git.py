"""The git revision of the project being built: the image tag and labels come from it."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

from conveyor.errors import GitError

# conveyor's own per-project state (pushed digests); never makes the tree "dirty"
STATE_DIR = ".conveyor"

__all__ = ["STATE_DIR", "GitError", "Revision", "revision"]


@dataclass(frozen=True)
class Revision:
    sha: str
    dirty: bool
    branch: str | None = None

    @property
    def short(self) -> str:
        return self.sha[:12]

    @property
    def tag(self) -> str:
        """Image tag: the short commit, with `-dirty` when the tree had uncommitted changes."""
        return self.short + ("-dirty" if self.dirty else "")

    @property
    def label(self) -> str:
        return self.sha + ("-dirty" if self.dirty else "")


def _git(directory: Path, *args: str) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(["git", "-C", str(directory), *args], capture_output=True,
                              text=True, timeout=30, check=False)
    except FileNotFoundError:
        raise GitError("git is not installed", hint="install git (conveyor tags images with "
                       "the commit they were built from)") from None


def revision(directory: Path | str) -> Revision:
    """HEAD's commit, whether the work tree differs from it, and the branch (None if detached)."""
    directory = Path(directory)
    head = _git(directory, "rev-parse", "--verify", "HEAD")
    if head.returncode != 0:
        raise GitError(
            f"{directory.resolve()} is not in a git repository with at least one commit "
            f"({head.stderr.strip() or 'git rev-parse failed'})",
            hint="conveyor tags images with the commit they were built from: `git init` and "
            "commit, or pass --tag",
        )
    status = _git(directory, "status", "--porcelain", "--untracked-files=normal", "--", ".",
                  f":(exclude){STATE_DIR}")
    dirty = bool(status.stdout.strip()) if status.returncode == 0 else True
    branch = _git(directory, "symbolic-ref", "--quiet", "--short", "HEAD")
    return Revision(head.stdout.strip(), dirty,
                    branch.stdout.strip() if branch.returncode == 0 else None)
