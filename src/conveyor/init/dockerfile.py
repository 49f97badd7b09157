"""The Dockerfile: the port it EXPOSEs, its HEALTHCHECK path, where it COPYs the migrations."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from conveyor.init.facts import Facts


def _dockerfile_lines(text: str) -> list[str]:
    out, cur = [], ""
    for raw in text.splitlines():
        line = raw.strip()
        if not cur and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue
        if line.endswith("\\"):
            cur += line[:-1] + " "
            continue
        out.append((cur + line).strip())
        cur = ""
    if cur.strip():
        out.append(cur.strip())
    return out


def inspect_dockerfile(facts: Facts, path: Path) -> None:
    try:
        lines = _dockerfile_lines(path.read_text(encoding="utf-8", errors="replace"))
    except OSError as exc:
        facts.notes.append(f"cannot read {path.name}: {exc.strerror}")
        return
    workdir = "/"
    copies: list[tuple[list[str], str, str]] = []
    for line in lines:
        word, _, rest = line.partition(" ")
        word = word.upper()
        rest = rest.strip()
        if word == "FROM":
            workdir = "/"
        elif word == "WORKDIR":
            workdir = rest if rest.startswith("/") else workdir.rstrip("/") + "/" + rest
        elif word == "EXPOSE" and facts.port is None:
            m = re.match(r"(\d+)", rest)
            if m:
                facts.port, facts.port_source = int(m.group(1)), f"{path.name} EXPOSE"
        elif word == "HEALTHCHECK" and facts.health_path is None:
            m = re.search(r"https?://[^/\s'\"]+(/[A-Za-z0-9_./~-]*)", rest)
            if m:
                facts.health_path, facts.health_source = m.group(1), f"{path.name} HEALTHCHECK"
        elif word in ("COPY", "ADD"):
            args = rest
            if args.startswith("["):
                try:
                    parts = json.loads(args)
                except ValueError:
                    continue
            else:
                parts = [p for p in args.split() if not p.startswith("--")]
            if len(parts) >= 2:
                copies.append((parts[:-1], parts[-1], workdir))
    facts.copies = copies


def container_dir_for(facts: Facts) -> None:
    if not facts.migrations_dir:
        return
    wanted = facts.migrations_dir.strip("/").removeprefix("./")
    for sources, dest, workdir in facts.copies:
        for src in sources:
            s = src.strip("/").removeprefix("./")
            if s == wanted:
                # COPY of a directory copies its contents into the destination
                d = dest if dest.startswith("/") else workdir.rstrip("/") + "/" + dest
                facts.migrations_container_dir = os.path.normpath(d)
                return
            if s in (".", ""):
                d = dest if dest.startswith("/") else workdir.rstrip("/") + "/" + dest
                facts.migrations_container_dir = os.path.normpath(d.rstrip("/") + "/" + wanted)
