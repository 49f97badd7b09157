"""The inputs of the app image: what a `docker build` depends on, hashed without Docker.

`.dockerignore` is matched like Docker's build-context walker (moby/patternmatcher), so the hash
covers exactly the files Docker would send: change a file the build cannot see and `up` does
not rebuild. The hash is kept as the image label `conveyor.inputs` (see `steps.local_image`).
Pure functions: they read files, nothing else.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class _Pattern:
    text: str
    regex: re.Pattern[str]
    exclusion: bool


def _pattern_regex(pattern: str) -> re.Pattern[str]:
    """Docker's .dockerignore syntax (moby/patternmatcher): `*`, `?`, `[...]`, `**`, `\\`."""
    out = "^"
    i, n = 0, len(pattern)
    while i < n:
        ch = pattern[i]
        if ch == "*":
            if i + 1 < n and pattern[i + 1] == "*":
                i += 2
                if i < n and pattern[i] == "/":
                    i += 1
                if i >= n:
                    out += ".*"
                else:
                    out += "(?:.*/)?"
                continue
            out += "[^/]*"
        elif ch == "?":
            out += "[^/]"
        elif ch == "[":
            j = pattern.find("]", i + 1)
            if j == -1:
                out += re.escape(ch)
            else:
                body = pattern[i + 1:j]
                if body.startswith(("!", "^")):
                    body = "^" + body[1:]
                out += "[" + body.replace("\\", "\\\\") + "]"
                i = j
        elif ch == "\\" and i + 1 < n:
            i += 1
            out += re.escape(pattern[i])
        else:
            out += re.escape(ch)
        i += 1
    return re.compile(out + "$")


class DockerIgnore:
    """Matches paths (relative, '/'-separated) like Docker's build-context walker."""

    def __init__(self, lines: Iterable[str]) -> None:
        self.patterns: list[_Pattern] = []
        for raw in lines:
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            exclusion = line.startswith("!")
            if exclusion:
                line = line[1:].strip()
            line = os.path.normpath(line).replace(os.sep, "/")
            if len(line) > 1 and line.startswith("/"):
                line = line[1:]
            if line == ".":
                continue
            self.patterns.append(_Pattern(line, _pattern_regex(line), exclusion))

    @classmethod
    def for_context(cls, context: Path) -> DockerIgnore:
        try:
            return cls((context / ".dockerignore").read_text(errors="replace").splitlines())
        except FileNotFoundError:
            return cls([])

    @property
    def has_exceptions(self) -> bool:
        return any(p.exclusion for p in self.patterns)

    def excluded(self, path: str) -> bool:
        parts = path.split("/")
        parent = parts[:-1]
        matched = False
        for p in self.patterns:
            if p.exclusion != matched:
                continue
            hit = bool(p.regex.match(path))
            # a pattern that matches a parent directory matches everything inside it (moby's
            # MatchesOrParentMatches)
            for i in range(len(parent)):
                if hit:
                    break
                hit = bool(p.regex.match("/".join(parent[:i + 1])))
            if hit:
                matched = not p.exclusion
        return matched

    def prune(self, directory: str) -> bool:
        """Whether an excluded directory can be skipped whole (Docker's own rule: only when no
        exception pattern starts with the directory's path)."""
        if not self.has_exceptions:
            return True
        prefix = directory + "/"
        return not any(p.exclusion and (p.text + "/").startswith(prefix) for p in self.patterns)


def context_files(context: Path, ignore: DockerIgnore) -> list[tuple[str, Path]]:
    """The files Docker would send as the build context, sorted, as (relative path, path)."""
    out: list[tuple[str, Path]] = []
    context = context.resolve()
    for root, dirs, files in os.walk(context, followlinks=False):
        rel_root = os.path.relpath(root, context).replace(os.sep, "/")
        rel_root = "" if rel_root == "." else rel_root + "/"
        keep = []
        for d in sorted(dirs):
            rel = rel_root + d
            if os.path.islink(os.path.join(root, d)):
                if not ignore.excluded(rel):
                    out.append((rel, Path(root, d)))
                continue
            if ignore.excluded(rel) and ignore.prune(rel):
                continue
            keep.append(d)
        dirs[:] = keep
        for f in files:
            rel = rel_root + f
            if not ignore.excluded(rel):
                out.append((rel, Path(root, f)))
    out.sort()
    return out


def inputs_hash(context: Path, dockerfile: Path, build_args: Mapping[str, str]) -> str:
    """sha256 over what a build depends on: the Dockerfile, the build args and every file of the
    context that .dockerignore lets through (path, executable bit, content; symlink targets)."""
    h = hashlib.sha256(b"conveyor-inputs-v1\0")
    h.update(b"dockerfile\0" + dockerfile.read_bytes() + b"\0")
    for k in sorted(build_args):
        h.update(f"arg {k}={build_args[k]}\0".encode())
    for rel, path in context_files(context, DockerIgnore.for_context(context)):
        try:
            st = path.lstat()
        except OSError:
            continue
        if os.path.islink(path):
            h.update(f"link {rel}\0{os.readlink(path)}\0".encode())
            continue
        h.update(f"file {rel}\0{'x' if st.st_mode & 0o111 else '-'}\0".encode())
        with open(path, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
        h.update(b"\0")
    return h.hexdigest()

