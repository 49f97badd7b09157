"""`conveyor ci`'s reports (Markdown summary, JUnit), without services.

(The job itself runs end to end in tests/e2e/test_ci.py.)
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from conveyor.ci_env import CiEnv
from conveyor.ci_pipeline import CiOptions, stage_names
from conveyor.ci_report import (
    EXIT_FAILED,
    CiReport,
    FailedTest,
    StageReport,
    junit_xml,
    markdown,
    write_reports,
)
from conveyor.errors import MigrationStepFailed, TestsFailed

GH = CiEnv(system="github", branch="feature/x", commit="a" * 40, default_branch="main",
           run_url="https://github.com/acme/notes/actions/runs/7", is_ci=True)


def _report(**kw) -> CiReport:
    stages = [StageReport(n) for n in stage_names(CiOptions())]
    r = CiReport(ci=GH, app="notes", dev_env="dev", prod_env="prod", promote=False,
                 stages=stages, revision="a" * 40, **kw)
    return r


def _ok(stage: StageReport, detail: str = "", duration: float = 1.0) -> None:
    stage.status, stage.detail, stage.duration = "ok", detail, duration


def test_passed_report() -> None:
    r = _report(image="127.0.0.1:5000/notes@sha256:" + "b" * 64, dev_url="http://127.0.1.1:8080",
                deployment_id="20261126T000000Z-abcd", migrations_applied=["2026_x"],
                tests={"ok": True, "passed": 31})
    for s in r.stages:
        _ok(s, f"{s.name} detail")
    r.stage("deploy dev").steps = [{"name": n, "status": "ok", "duration": 0.1, "error": None}
                                   for n in ("lock", "pull", "migrate", "replace", "health")]
    assert r.ok and r.exit_code == 0 and r.failed_stage is None
    md = markdown(r)
    assert md.startswith("## ✅ conveyor ci: notes passed\n")
    assert "| branch | `feature/x` on GitHub Actions ([run](https://github.com/acme/notes/" \
           "actions/runs/7)) |" in md
    assert "| tests | passed (31 passed) |" in md
    assert "| migrations applied | 2026_x |" in md
    assert "Failed" not in md
    root = ET.fromstring(junit_xml(r))
    suite = root.find("testsuite[@name='conveyor']")
    names = [c.get("name") for c in suite.iter("testcase")]
    assert names == ["build", "push", "setup dev", "deploy dev: lock", "deploy dev: pull",
                     "deploy dev: migrate", "deploy dev: replace", "deploy dev: health", "test"]
    assert suite.get("failures") == "0" and suite.get("skipped") == "0"
    props = {p.get("name"): p.get("value") for p in suite.iter("property")}
    assert props["branch"] == "feature/x" and props["image"].endswith("b" * 64)


def test_failed_migration_names_the_stage_and_step_and_skips_the_rest() -> None:
    r = _report(image="reg/notes@sha256:" + "c" * 64)
    _ok(r.stages[0]), _ok(r.stages[1]), _ok(r.stages[2])
    dep = r.stage("deploy dev")
    dep.status, dep.exit_code = "failed", MigrationStepFailed.exit_code
    dep.error = ("migration failed on dev: 2026-12-01-000001_broken: syntax error at or near "
                 "\"TABL\"")
    dep.hint = "the app was not touched: the previous version keeps serving"
    dep.output = ["applying 2026-12-01-000001_broken ...", "ERROR: syntax error"]
    dep.steps = [{"name": "lock", "status": "ok", "duration": 0.2, "error": None},
                 {"name": "pull", "status": "ok", "duration": 0.2, "error": None},
                 {"name": "migrate", "status": "failed", "duration": 0.5, "error": dep.error}]
    assert not r.ok and r.exit_code == 8 and r.failed_stage is dep
    md = markdown(r)
    assert md.startswith("## ❌ conveyor ci: notes failed at stage **deploy dev**\n")
    assert "### Stage deploy dev failed" in md
    assert "Step: `migrate` (failed)" in md
    assert 'syntax error at or near "TABL"' in md
    assert "Hint: the app was not touched" in md
    assert "| test | ⏭️ not run | - |" in md
    suite = ET.fromstring(junit_xml(r)).find("testsuite[@name='conveyor']")
    cases = {c.get("name"): c for c in suite.iter("testcase")}
    assert cases["deploy dev: migrate"].find("failure") is not None
    assert "2026-12-01-000001_broken" in cases["deploy dev: migrate"].find("failure").get("message")
    assert cases["test"].find("skipped") is not None
    assert suite.get("failures") == "1" and suite.get("skipped") == "1"


def test_failed_tests_are_listed_and_the_app_suites_kept() -> None:
    r = _report(tests={"ok": False, "passed": 30, "failed": 1, "exit_code": 1})
    for s in r.stages[:-1]:
        _ok(s)
    t = r.stage("test")
    t.status, t.exit_code = "failed", TestsFailed.exit_code
    t.error = "the tests failed against http://127.0.1.1:8080"
    r.failed_tests = [FailedTest("tests.test_api::test_delete_note", "assert 500 == 204")]
    r.test_suites = [ET.fromstring(
        '<testsuite name="pytest" tests="2" failures="1"><testcase classname="tests.test_api" '
        'name="test_ok"/><testcase classname="tests.test_api" name="test_delete_note">'
        '<failure message="assert 500 == 204">trace</failure></testcase></testsuite>')]
    assert r.exit_code == 19
    md = markdown(r)
    assert md.startswith("## ❌ conveyor ci: notes failed at stage **test** (1 failed test)")
    assert "- `tests.test_api::test_delete_note`: assert 500 == 204" in md
    assert "| tests | FAILED (30 passed, 1 failed) |" in md
    root = ET.fromstring(junit_xml(r))
    app_suite = root.find("testsuite[@name='dev: pytest']")
    assert app_suite is not None and len(list(app_suite.iter("testcase"))) == 2
    assert root.get("failures") == "2"  # the test stage and the app's test case


def test_markdown_escapes_table_cells() -> None:
    r = _report()
    _ok(r.stages[0], detail="a | b\nc")
    assert "| a \\| b c |" in markdown(r)


def test_write_reports_appends_to_the_step_summary_once(tmp_path: Path) -> None:
    r = _report()
    step = tmp_path / "step.md"
    step.write_text("before\n")
    junit, summary = tmp_path / "out" / "j.xml", tmp_path / "out" / "s.md"
    written = write_reports(r, junit=junit, summary=summary, step_summary=str(step))
    assert written == [junit, summary, step]
    assert step.read_text() == "before\n" + summary.read_text()
    ET.parse(junit)
    # --summary $GITHUB_STEP_SUMMARY: written once, not twice
    step.write_text("")
    written = write_reports(r, junit=None, summary=step, step_summary=str(step))
    assert written == [step] and step.read_text() == markdown(r)


def test_a_failed_stage_without_an_exit_code_fails_the_job_with_1() -> None:
    r = _report()
    _ok(r.stages[0])
    r.stages[1].status = "failed"
    assert r.exit_code == EXIT_FAILED == 1 and r.failed_stage is r.stages[1]
