"""records: the local image log, deployment ids and records, summaries and history rows."""

from __future__ import annotations

import re

from conveyor import records
from conveyor.plan import StepResult


def test_image_log_remembers_newest_last_and_finds_by_revision(tmp_path):
    assert records.find_image(tmp_path, "pushed") is None
    records.remember_image(tmp_path, "pushed", {"revision": "r1", "repository": "a", "n": 1})
    records.remember_image(tmp_path, "pushed", {"revision": "r2", "repository": "a", "n": 2})
    records.remember_image(tmp_path, "pushed", {"revision": "r1", "repository": "a", "n": 3})
    assert records.find_image(tmp_path, "pushed", revision="r1")["n"] == 3
    assert records.find_image(tmp_path, "pushed", revision="r2", repository="b") is None
    assert (tmp_path / ".conveyor" / ".gitignore").read_text().strip().endswith("*")
    for i in range(60):
        records.remember_image(tmp_path, "built", {"n": i})
    assert len(records.load_images(tmp_path)["built"]) == 50


def test_deployment_id_sorts_by_time():
    a = records.new_id(1_700_000_000)
    b = records.new_id(1_700_000_001)
    assert re.fullmatch(r"\d{8}T\d{6}Z-[0-9a-f]{4}", a) and a < b


def _record(**kw):
    rec = records.DeploymentRecord(id="20260101T000000Z-abcd", app="notes", env="dev",
                                   kind="deploy", who="alice", started_at=1_700_000_000.0,
                                   image="r/notes@sha256:" + "ab" * 32, revision="rev1", **kw)
    rec.finished_at = rec.started_at + 12.5
    return rec


def test_step_entries_keep_the_last_lines():
    r = StepResult("migrate", "ok", 1.23456, ["n"], [f"line {i}\n" for i in range(10)])
    [entry] = records.step_entries([r], keep=3)
    assert entry["output"] == ["... (7 earlier lines not kept)", "line 7", "line 8", "line 9"]
    assert entry["duration"] == 1.235


def test_summary_drops_output_and_test_cases():
    rec = _record(tests={"ok": True, "passed": 2, "cases": ["a", "b"]})
    rec.steps = [{"name": "lock", "status": "ok", "duration": 0.1, "output": ["x"],
                  "notes": [], "error": None}]
    s = rec.summary()
    assert s["steps"] == [{"name": "lock", "status": "ok", "duration": 0.1, "lines": 1}]
    assert "cases" not in s["tests"] and rec.as_dict()["tests"]["cases"] == ["a", "b"]
    assert s["duration"] == 12.5 and s["started_at"].startswith("2023-11-14T22:13:20")


def test_markdown_summary_shows_result_steps_and_failed_output():
    rec = _record(migrations_applied=["2026_a"],
                  tests={"ok": False, "passed": 3, "failed": 1})
    rec.result = "failed"
    rec.error = "migration failed on dev: syntax error\nmore"
    rec.steps = [{"name": "lock", "status": "ok", "duration": 0.1, "output": []},
                 {"name": "migrate", "status": "failed", "duration": 0.5,
                  "output": ["applying 2026_a ..."], "error": "syntax error"}]
    md = records.markdown_summary(rec.as_dict())
    assert md.startswith("## ❌ conveyor deploy notes → dev: failed")
    assert "| migrations applied | 2026_a |" in md
    assert "| tests | FAILED (3 passed, 1 failed) |" in md
    assert "| migrate | failed | 0.50s |" in md
    assert "applying 2026_a ..." in md and "**Error:** migration failed on dev: syntax error" in md


def test_history_rows():
    rows = records.history_table([_record(migrations_applied=["2026_a", "2026_b"]).summary()])
    assert rows == [["20260101T000000Z-abcd", "deploy", "running", "2023-11-14T22:13:20+00:00",
                     "alice", "rev1", "sha256:abababababab", "12.50s", "-", "2026_a, 2026_b"]]
    assert records.history_table([{"id": "x", "result": "ok"}]) == [
        ["x", "deploy", "ok", "-", "-", "-", "-", "-", "-", "-"]]
