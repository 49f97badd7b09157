"""What conveyor remembers.

* Locally, per project (`.conveyor/images.json`, git-ignored): the images `conveyor build` made
  and the digests `conveyor push` got back from the registry, so that `deploy` picks the exact
  digest of the current revision.
* On each environment's host (`<state_dir>/<app>/<env>/`): one JSON record per deployment
  (`deployments/<id>.json`: who, when, revision, image digest, migrations applied, each step's
  duration and kept output, result) and a one-line-per-deployment index (`history.jsonl`).

Pure data and formatting here; reading and writing the host's files is the stage's business.
"""

from __future__ import annotations

import getpass
import json
import os
import secrets
import socket
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from conveyor.errors import ConveyorError
from conveyor.git import STATE_DIR

RECORD_VERSION = 1
OUTPUT_LINES_KEPT = 400  # per step, the last lines


# --------------------------------------------------------------------------- local image log


def _state_file(project_dir: Path) -> Path:
    return Path(project_dir) / STATE_DIR / "images.json"


def load_images(project_dir: Path) -> dict[str, list[dict[str, Any]]]:
    path = _state_file(project_dir)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return {"built": [], "pushed": []}
    except (OSError, ValueError) as exc:
        raise ConveyorError(f"cannot read {path}: {exc}",
                            hint="delete the file; `conveyor build` and `push` write it again")
    return {"built": list(data.get("built", [])), "pushed": list(data.get("pushed", []))}


def remember_image(project_dir: Path, kind: str, entry: dict[str, Any], keep: int = 50) -> None:
    """Append a built/pushed image to the project's local log (newest last)."""
    assert kind in ("built", "pushed")
    data = load_images(project_dir)
    data[kind] = (data[kind] + [entry])[-keep:]
    path = _state_file(project_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    ignore = path.parent / ".gitignore"
    if not ignore.exists():
        ignore.write_text("# conveyor's local state (built and pushed images)\n*\n")
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    os.replace(tmp, path)


def find_image(project_dir: Path, kind: str, *, revision: str | None = None,
               repository: str | None = None) -> dict[str, Any] | None:
    """The newest built/pushed entry for a revision label (and repository), if any."""
    for entry in reversed(load_images(project_dir)[kind]):
        if revision is not None and entry.get("revision") != revision:
            continue
        if repository is not None and entry.get("repository") != repository:
            continue
        return entry
    return None


# --------------------------------------------------------------------------- deployments


def new_id(now: float | None = None) -> str:
    """Sortable and unique: UTC time to the second plus 4 random hex digits."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now if now is not None else time.time()))
    return f"{stamp}-{secrets.token_hex(2)}"


def actor() -> str:
    """Who deploys: $CONVEYOR_ACTOR, else the CI's user, else user@machine."""
    for var in ("CONVEYOR_ACTOR", "GITHUB_ACTOR", "GITLAB_USER_LOGIN", "BUILDKITE_BUILD_CREATOR"):
        if os.environ.get(var):
            return os.environ[var]
    try:
        user = getpass.getuser()
    except Exception:  # noqa: BLE001 - no passwd entry in some containers
        user = str(os.getuid())
    return f"{user}@{socket.gethostname()}"


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds")


@dataclass
class DeploymentRecord:
    id: str
    app: str
    env: str
    kind: str  # "deploy" (issue 6 adds "promote", "rollback")
    who: str
    started_at: float
    image: str  # repository@sha256:...
    revision: str | None = None
    previous_image: str | None = None
    previous_revision: str | None = None
    finished_at: float | None = None
    result: str = "running"  # ok | failed | tests-failed | running
    error: str | None = None
    migrations_applied: list[str] = field(default_factory=list)
    steps: list[dict[str, Any]] = field(default_factory=list)
    tests: dict[str, Any] | None = None
    url: str | None = None
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def duration(self) -> float | None:
        return None if self.finished_at is None else round(self.finished_at - self.started_at, 3)

    def as_dict(self) -> dict[str, Any]:
        return {
            "version": RECORD_VERSION, "id": self.id, "app": self.app, "env": self.env,
            "kind": self.kind, "who": self.who, "started_at": iso(self.started_at),
            "finished_at": iso(self.finished_at) if self.finished_at else None,
            "duration": self.duration, "result": self.result, "error": self.error,
            "image": self.image, "revision": self.revision,
            "previous_image": self.previous_image, "previous_revision": self.previous_revision,
            "migrations_applied": self.migrations_applied, "tests": self.tests,
            "url": self.url, "options": self.options, "steps": self.steps,
        }

    def summary(self) -> dict[str, Any]:
        """The history index line: everything but the steps' output."""
        d = self.as_dict()
        d.pop("steps")
        if d.get("tests"):
            d["tests"] = {k: v for k, v in d["tests"].items() if k != "cases"}
        d["steps"] = [{"name": s["name"], "status": s["status"], "duration": s["duration"],
                       "lines": len(s.get("output") or [])} for s in self.steps]
        return d


def step_entries(results: Iterable[Any], keep: int = OUTPUT_LINES_KEPT) -> list[dict[str, Any]]:
    """pipeline.StepResult objects as record entries (output trimmed to the last lines)."""
    out = []
    for r in results:
        d = r.as_dict()
        lines = [ln.rstrip("\n") for ln in d["output"]]
        if len(lines) > keep:
            lines = [f"... ({len(lines) - keep} earlier lines not kept)"] + lines[-keep:]
        d["output"] = lines
        out.append(d)
    return out


# --------------------------------------------------------------------------- rendering


def _fmt_duration(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds:.2f}s"


def markdown_summary(record: dict[str, Any]) -> str:
    """A Markdown report for a CI job summary (e.g. $GITHUB_STEP_SUMMARY)."""
    icon = {"ok": "✅", "failed": "❌", "tests-failed": "❌"}.get(record["result"], "⚠️")
    lines = [
        (f"## {icon} conveyor {record['kind']} {record['app']} → {record['env']}: "
         f"{record['result']}"),
        "",
        "| | |",
        "|---|---|",
        f"| deployment | `{record['id']}` |",
        f"| who | {record['who']} |",
        f"| started | {record['started_at']} |",
        f"| duration | {_fmt_duration(record.get('duration'))} |",
        f"| image | `{record['image']}` |",
        f"| revision | `{record.get('revision') or '-'}` |",
        f"| previous image | `{record.get('previous_image') or '-'}` |",
        f"| URL | {record.get('url') or '-'} |",
        f"| migrations applied | {', '.join(record.get('migrations_applied') or []) or 'none'} |",
    ]
    tests = record.get("tests")
    if tests:
        counts = ", ".join(f"{v} {k}" for k, v in tests.items()
                           if k in ("passed", "failed", "errors", "skipped") and v)
        lines.append(f"| tests | {'passed' if tests.get('ok') else 'FAILED'}"
                     f"{f' ({counts})' if counts else ''} |")
    if record.get("error"):
        lines += ["", f"**Error:** {record['error'].splitlines()[0]}"]
    lines += ["", "| step | status | duration |", "|---|---|---|"]
    for s in record["steps"]:
        lines.append(f"| {s['name']} | {s['status']} | {_fmt_duration(s['duration'])} |")
    failed = [s for s in record["steps"] if s["status"] not in ("ok", "skipped")]
    for s in failed:
        tail = s.get("output", [])[-30:]
        if tail or s.get("error"):
            lines += ["", f"<details><summary>{s['name']}: output</summary>", "", "```text",
                      *tail, *(["", s["error"]] if s.get("error") else []), "```", "",
                      "</details>"]
    return "\n".join(lines) + "\n"


def history_table(entries: list[dict[str, Any]]) -> list[list[str]]:
    rows = []
    for e in entries:
        rows.append([e["id"], e.get("kind", "deploy"), e["result"], e.get("who", "-"),
                     (e.get("revision") or "-")[:12], _short_image(e.get("image")),
                     _fmt_duration(e.get("duration")),
                     ", ".join(e.get("migrations_applied") or []) or "-"])
    return rows


def _short_image(image: str | None) -> str:
    if not image:
        return "-"
    if "@sha256:" in image:
        return "sha256:" + image.split("@sha256:", 1)[1][:12]
    return image
