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
import re
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


HISTORY_HEADER = ["ID", "KIND", "RESULT", "STARTED", "WHO", "REVISION", "IMAGE", "DURATION",
                  "TESTS", "MIGRATIONS"]


def history_table(entries: list[dict[str, Any]]) -> list[list[str]]:
    """The rows of `conveyor history ENV` (the columns of HISTORY_HEADER)."""
    rows = []
    for e in entries:
        rows.append([e["id"], e.get("kind", "deploy"), e["result"],
                     zoned(e.get("started_at")) or "-", e.get("who", "-"),
                     (e.get("revision") or "-")[:12], _short_image(e.get("image")),
                     _fmt_duration(e.get("duration")), tests_cell(e.get("tests")),
                     ", ".join(e.get("migrations_applied") or []) or "-"])
    return rows


def history_lines(entries: list[dict[str, Any]]) -> list[str]:
    """`conveyor history ENV`: the table, and under each deployment that did not succeed, the
    step that failed and the first line of why."""
    rows = [HISTORY_HEADER] + history_table(entries)
    widths = [max(len(r[i]) for r in rows) for i in range(len(HISTORY_HEADER) - 1)]
    out = []
    for n, r in enumerate(rows):
        out.append(("  ".join(c.ljust(w) for c, w in zip(r, widths)) + "  " + r[-1]).rstrip())
        reason = failure_reason(entries[n - 1]) if n else None
        if reason:
            out.append(f"  └ failed at {reason[0]}: {reason[1]}")
    return out


def failure_reason(entry: dict[str, Any]) -> tuple[str, str] | None:
    """(the step that failed, one line of why) of a deployment that did not succeed."""
    if entry.get("result") in ("ok", "running", None):
        return None
    steps = entry.get("steps") or []
    outcome = (entry.get("details") or {}).get("outcome") or {}
    failed = next((s["name"] for s in steps if s.get("status") == "failed"), None)
    step = failed or outcome.get("failed_step")
    error = first_line(entry.get("error"))
    if entry.get("result") == "tests-failed":
        step = step or "test"
        counts = counts_text(entry.get("tests"))
        error = error or ("the tests failed" + (f" ({counts})" if counts else ""))
    if step is None and error is None:
        return None
    return step or "?", error or entry.get("result") or "failed"


def first_line(text: str | None, limit: int = 200) -> str | None:
    """The first non-empty line of an error, cut at `limit` characters."""
    for line in (text or "").splitlines():
        if line.strip():
            line = line.strip()
            return line if len(line) <= limit else line[: limit - 1] + "…"
    return None


def zoned(stamp: str | None) -> str | None:
    """An ISO 8601 timestamp with its zone: one written without (UTC by convention) gets
    +00:00."""
    if not stamp:
        return stamp
    text = str(stamp)
    tail = text[10:]
    if text.endswith("Z") or "+" in tail or "-" in tail:
        return text
    return text + "+00:00"


_STARTING = re.compile(r"^(applying|reverting) (\S+) \.\.\.$")
_FINISHED = re.compile(r"^(applied|reverted) (\S+)(?: \(.*\))?$")


def migration_output_in_order(lines: list[str]) -> list[str]:
    """A migrate step's kept output with each "applying X ..." right before its "applied X"
    (the engine sends a batch of migrations in one message and the driver announced them all
    first: "applying 1, applying 2, applied 1, applied 2"). Other lines keep their place."""
    out: list[str] = []
    held: list[tuple[str, str]] = []  # (name, line) announced, not finished yet
    for line in lines:
        start, done = _STARTING.match(line.strip()), _FINISHED.match(line.strip())
        if start:
            held.append((start.group(2), line))
            continue
        if done:
            k = next((i for i, (name, _) in enumerate(held) if name == done.group(2)), None)
            if k is not None:
                out.append(held.pop(k)[1])
            out.append(line)
            continue
        out += [h for _, h in held[:1]]  # the one that was running when this line came
        held = held[1:]
        out.append(line)
    return out + [h for _, h in held]


# --------------------------------------------------------------------------- test counts

_PYTEST_COUNT = re.compile(r"(\d+) (passed|failed|errors?|skipped|xfailed|xpassed|deselected)\b")
_PYTEST_SUMMARY = re.compile(r"^=*\s*(?:\d+ \w+(?:, )?)+.* in [\d.]+s(?: \([^)]*\))?\s*=*$")
_NODE_COUNT = re.compile(r"^(?:#|ℹ)\s*(tests|pass|fail|skipped|todo|cancelled) (\d+)\s*$")
_NODE_KEYS = {"tests": "tests", "pass": "passed", "fail": "failed", "skipped": "skipped",
              "cancelled": "errors"}


def counts_from_output(lines: Iterable[str]) -> dict[str, int] | None:
    """Test counts from a test run's output when there is no JUnit: pytest's last summary line
    ("2 failed, 29 passed in 1.20s") or node --test's ("# pass 4", "# fail 1", or "ℹ pass 4")."""
    pytest_counts: dict[str, int] | None = None
    node: dict[str, int] = {}
    for raw in lines:
        line = raw.strip()
        if _PYTEST_SUMMARY.match(line):
            found: dict[str, int] = {}
            for n, what in _PYTEST_COUNT.findall(line):
                key = "errors" if what.startswith("error") else what
                found[key] = found.get(key, 0) + int(n)
            if found:
                pytest_counts = found
            continue
        m = _NODE_COUNT.match(line)
        if m and m.group(1) in _NODE_KEYS:
            node[_NODE_KEYS[m.group(1)]] = int(m.group(2))
    if pytest_counts is not None:
        counts = {k: pytest_counts.get(k, 0) for k in ("passed", "failed", "errors", "skipped")}
        counts["tests"] = sum(counts.values())
        return counts
    if "passed" in node or "failed" in node:
        counts = {k: node.get(k, 0) for k in ("passed", "failed", "errors", "skipped")}
        counts["tests"] = node.get("tests", sum(counts.values()))
        return counts
    return None


def test_counts(record: dict[str, Any]) -> dict[str, Any] | None:
    """The record's tests with their counts: the JUnit's when kept, else read from the test
    step's (or prod's validate step's) output."""
    tests = record.get("tests")
    if not tests:
        return tests
    if any(k in tests for k in ("passed", "failed")):
        return tests
    for s in record.get("steps") or []:
        if s.get("name") in ("test", "tests", "validate"):
            counts = counts_from_output(s.get("output") or [])
            if counts:
                return {**tests, **counts}
    return tests


def counts_text(tests: dict[str, Any] | None) -> str:
    """"1 failed, 30 passed" (the counts that are not zero), or ""."""
    t = tests or {}
    return ", ".join(f"{t[k]} {k}" for k in ("failed", "errors", "passed", "skipped") if t.get(k))


def tests_cell(tests: dict[str, Any] | None) -> str:
    """"passed (31 passed)", "FAILED (1 failed, 30 passed)", "passed" or "-"."""
    if not tests:
        return "-"
    word = "passed" if tests.get("ok") else "FAILED"
    counts = counts_text(tests)
    return f"{word} ({counts})" if counts else word


def _short_image(image: str | None) -> str:
    if not image:
        return "-"
    if "@sha256:" in image:
        return "sha256:" + image.split("@sha256:", 1)[1][:12]
    return image
