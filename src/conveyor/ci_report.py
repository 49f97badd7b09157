"""`conveyor ci`'s report: the stages' outcome (`CiReport`), as JUnit XML and Markdown.

`CiReport` renders as one JUnit file (a `conveyor` suite with one case per stage and per deploy
step, plus the app's own test suites) and as a Markdown summary that says which stage failed,
why, and which tests. `redact_report` removes secrets from both before they are written.
"""

from __future__ import annotations

import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from conveyor.ci_env import CiEnv
from conveyor.errors import ConveyorError
from conveyor.render import Redactor

#: a failed stage whose error carries no exit code of its own
EXIT_FAILED = ConveyorError.exit_code


@dataclass
class StageReport:
    name: str
    status: str = "not run"  # ok | failed | not run
    duration: float = 0.0
    detail: str = ""
    error: str | None = None
    hint: str | None = None
    exit_code: int | None = None
    output: list[str] = field(default_factory=list)
    #: sub-steps (the deploy's lock, pull, migrate, ...): name, status, duration, error
    steps: list[dict[str, Any]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.status == "ok"


@dataclass
class FailedTest:
    name: str
    message: str


@dataclass
class CiReport:
    ci: CiEnv
    app: str
    dev_env: str
    prod_env: str
    promote: bool
    stages: list[StageReport]
    started_at: float = field(default_factory=time.time)
    finished_at: float | None = None
    revision: str | None = None
    image: str | None = None
    dev_url: str | None = None
    deployment_id: str | None = None
    migrations_applied: list[str] = field(default_factory=list)
    tests: dict[str, Any] | None = None
    failed_tests: list[FailedTest] = field(default_factory=list)
    #: the app's test suites (JUnit <testsuite> elements from the test command)
    test_suites: list[ET.Element] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(s.ok for s in self.stages)

    @property
    def failed_stage(self) -> StageReport | None:
        return next((s for s in self.stages if s.status == "failed"), None)

    @property
    def exit_code(self) -> int:
        failed = self.failed_stage
        if failed is None:
            return 0
        return failed.exit_code or EXIT_FAILED

    @property
    def duration(self) -> float:
        return (self.finished_at or time.time()) - self.started_at

    def stage(self, name: str) -> StageReport:
        return next(s for s in self.stages if s.name == name)



def read_test_junit(report: CiReport, path: Path) -> None:
    """The failed tests and the suites of the test command's JUnit file, into `report`."""
    try:
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError) as exc:
        report.warnings.append(f"cannot read the tests' JUnit file: {exc}")
        return
    suites = [root] if root.tag == "testsuite" else list(root.iter("testsuite"))
    report.test_suites = suites
    for suite in suites:
        for case in suite.iter("testcase"):
            for kind in ("failure", "error"):
                el = case.find(kind)
                if el is not None:
                    name = case.get("name") or "?"
                    cls = case.get("classname") or ""
                    full = f"{cls}::{name}" if cls else name
                    msg = (el.get("message") or (el.text or "").strip() or kind)
                    report.failed_tests.append(FailedTest(full, msg.strip().splitlines()[0]
                                                          if msg.strip() else kind))
                    break


def redact_report(report: CiReport, red: Redactor) -> None:
    for s in report.stages:
        s.error = red(s.error) if s.error else s.error
        s.hint = red(s.hint) if s.hint else s.hint
        s.detail = red(s.detail)
        s.output = red(s.output)
        s.steps = red(s.steps)
    for t in report.failed_tests:
        t.message = red(t.message)
    report.warnings = red(report.warnings)



# --------------------------------------------------------------------------- reports

_ICON = {"ok": "✅", "failed": "❌", "not run": "⏭️"}


def _dur(seconds: float) -> str:
    return f"{seconds:.1f}s" if seconds else "-"


def _md_cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def markdown(report: CiReport) -> str:
    ci = report.ci
    failed = report.failed_stage
    if failed is None:
        head = f"## ✅ conveyor ci: {report.app} passed"
    else:
        head = f"## ❌ conveyor ci: {report.app} failed at stage **{failed.name}**"
        if failed.name == "test" and report.failed_tests:
            head += f" ({len(report.failed_tests)} failed test" \
                    f"{'s' if len(report.failed_tests) != 1 else ''})"
    run = f" ([run]({ci.run_url}))" if ci.run_url else ""
    lines = [head, "", "| | |", "|---|---|",
             f"| branch | `{ci.branch or '-'}` on {ci.label}{run} |",
             f"| commit | `{(report.revision or ci.commit or '-')}` |"]
    if report.image:
        lines.append(f"| image | `{report.image}` |")
    if report.dev_url:
        dep = f" (deployment `{report.deployment_id}`)" if report.deployment_id else ""
        lines.append(f"| {report.dev_env} | {report.dev_url}{dep} |")
    if report.deployment_id:
        lines.append(f"| migrations applied | "
                     f"{_md_cell(', '.join(report.migrations_applied) or 'none')} |")
    if report.tests:
        t = report.tests
        counts = ", ".join(f"{t[k]} {k}" for k in ("passed", "failed", "errors", "skipped")
                           if t.get(k))
        lines.append(f"| tests | {'passed' if t.get('ok') else 'FAILED'}"
                     f"{f' ({counts})' if counts else ''} |")
    lines.append(f"| duration | {_dur(report.duration)} |")
    lines += ["", "| stage | result | duration | |", "|---|---|---|---|"]
    for s in report.stages:
        lines.append(f"| {s.name} | {_ICON.get(s.status, '')} {s.status} | {_dur(s.duration)} "
                     f"| {_md_cell(s.detail)} |")
    if report.failed_tests:
        lines += ["", "### Failed tests", ""]
        for ft in report.failed_tests[:50]:
            lines.append(f"- `{ft.name}`: {_md_cell(ft.message)}")
        if len(report.failed_tests) > 50:
            lines.append(f"- ... and {len(report.failed_tests) - 50} more")
    if failed is not None:
        lines += ["", f"### Stage {failed.name} failed", ""]
        failed_steps = [s for s in failed.steps if s["status"] not in ("ok", "skipped")]
        if failed_steps:
            lines.append("Step: " + ", ".join(f"`{s['name']}` ({s['status']})"
                                              for s in failed_steps))
            lines.append("")
        if failed.error:
            lines += ["```text", failed.error.strip(), "```"]
        if failed.hint:
            lines += ["", f"Hint: {failed.hint}"]
        if failed.output:
            lines += ["", f"<details><summary>{failed.name}: last lines of output</summary>",
                      "", "```text", *failed.output, "```", "", "</details>"]
    if report.warnings:
        lines += ["", "### Warnings", ""] + [f"- {_md_cell(w)}" for w in report.warnings]
    return "\n".join(lines) + "\n"


def junit_xml(report: CiReport) -> bytes:
    """One JUnit document: the pipeline's stages as a suite, then the app's test suites."""
    root = ET.Element("testsuites", name=f"conveyor ci {report.app}")
    cases: list[tuple[str, str, float, str | None, str | None, list[str]]] = []
    for s in report.stages:
        if s.steps and s.name.startswith(("deploy", "promote")):
            for step in s.steps:
                st = "ok" if step["status"] == "ok" else (
                    "failed" if step["status"] in ("failed", "undo-failed") else step["status"])
                err = step.get("error")
                if st == "undone":
                    err = "done, then undone because a later step failed"
                cases.append((f"{s.name}: {step['name']}", st, step["duration"], err, None,
                              s.output if st == "failed" else []))
            if s.status == "not run" or (s.status == "failed" and not any(
                    step["status"] == "failed" for step in s.steps)):
                cases.append((s.name, s.status, s.duration, s.error, s.hint, s.output))
        else:
            cases.append((s.name, s.status, s.duration, s.error, s.hint, s.output))
    failures = sum(1 for c in cases if c[1] == "failed")
    skipped = sum(1 for c in cases if c[1] not in ("ok", "failed"))
    suite = ET.SubElement(root, "testsuite", name="conveyor", tests=str(len(cases)),
                          failures=str(failures), errors="0", skipped=str(skipped),
                          time=f"{sum(c[2] for c in cases):.3f}")
    props = ET.SubElement(suite, "properties")
    for k, v in (("branch", report.ci.branch), ("commit", report.revision or report.ci.commit),
                 ("run_url", report.ci.run_url), ("image", report.image),
                 ("deployment", report.deployment_id)):
        if v:
            ET.SubElement(props, "property", name=k, value=str(v))
    for name, status, duration, error, hint, output in cases:
        case = ET.SubElement(suite, "testcase", classname=f"conveyor.{report.app}", name=name,
                             time=f"{duration:.3f}")
        if status == "failed":
            el = ET.SubElement(case, "failure",
                               message=(error or "failed").strip().splitlines()[0][:500])
            el.text = "\n".join(x for x in [error, f"hint: {hint}" if hint else None,
                                            "\n".join(output)] if x)
        elif status == "undone":
            ET.SubElement(case, "skipped", message=error or "undone")
        elif status != "ok":
            ET.SubElement(case, "skipped", message=f"{status}: an earlier stage failed")
    for test_suite in report.test_suites:
        copy = _copy(test_suite)
        copy.set("name", f"{report.dev_env}: {copy.get('name') or 'tests'}")
        root.append(copy)
    total = sum(int(s.get("tests", 0)) for s in root.iter("testsuite"))
    root.set("tests", str(total))
    root.set("failures", str(sum(int(s.get("failures", 0)) for s in root.iter("testsuite"))))
    root.set("errors", str(sum(int(s.get("errors", 0)) for s in root.iter("testsuite"))))
    ET.indent(root)
    return ET.tostring(root, encoding="utf-8", xml_declaration=True)


def _copy(el: ET.Element) -> ET.Element:
    return ET.fromstring(ET.tostring(el))


def write_reports(report: CiReport, *, junit: Path | None, summary: Path | None,
                  step_summary: str | None) -> list[Path]:
    """Write the JUnit file, the summary file, and append the summary to the CI's job summary
    ($GITHUB_STEP_SUMMARY) unless that is the same file."""
    written = []
    if junit is not None:
        junit.parent.mkdir(parents=True, exist_ok=True)
        junit.write_bytes(junit_xml(report))
        written.append(junit)
    md = markdown(report)
    if summary is not None:
        summary.parent.mkdir(parents=True, exist_ok=True)
        summary.write_text(md, encoding="utf-8")
        written.append(summary)
    if step_summary:
        target = Path(step_summary)
        same = summary is not None and target.exists() and summary.exists() and \
            target.resolve() == summary.resolve()
        if not same:
            with open(target, "a", encoding="utf-8") as f:
                f.write(md)
            written.append(target)
    return written
