"""Issue 15 item 10: `conveyor history` says why a deployment failed (the step and one line),
reads test counts from the test output when there is no JUnit, shows migration output in order
and timestamps with their zone."""

from __future__ import annotations

from conveyor import records
from conveyor.cli.remote import _print_record

FAILED = {"id": "20261201T223202Z-3524", "kind": "deploy", "result": "failed", "who": "alice",
          "started_at": "2026-12-01T22:32:07+00:00", "duration": 0.191,
          "error": "the database container notes-dev-db on root@127.0.1.1:22 is missing\nmore",
          "image": "r/notes@sha256:" + "07" * 32, "revision": "fc88605f011d6f91",
          "migrations_applied": [], "tests": None,
          "steps": [{"name": "lock", "status": "ok", "duration": 0.1, "lines": 0},
                    {"name": "pull", "status": "failed", "duration": 0.2, "lines": 3}]}
OK = {**FAILED, "id": "20261201T223213Z-3185", "result": "ok", "error": None,
      "started_at": "2026-12-01T22:32:19", "tests": {"ok": True, "passed": 31},
      "migrations_applied": ["2026_a"], "steps": []}
TESTS_FAILED = {**FAILED, "id": "20261201T223300Z-0001", "result": "tests-failed", "error": None,
                "tests": {"ok": False, "failed": 1, "passed": 30},
                "steps": [{"name": "test", "status": "ok", "duration": 2.0, "lines": 9}]}


def test_the_list_says_which_step_failed_and_why_in_one_line():
    lines = records.history_lines([FAILED, OK, TESTS_FAILED])
    assert lines[0].split() == ["ID", "KIND", "RESULT", "STARTED", "WHO", "REVISION", "IMAGE",
                                "DURATION", "TESTS", "MIGRATIONS"]
    assert lines[1].split()[:4] == ["20261201T223202Z-3524", "deploy", "failed",
                                    "2026-12-01T22:32:07+00:00"]
    assert lines[2] == ("  └ failed at pull: the database container notes-dev-db on "
                        "root@127.0.1.1:22 is missing")
    assert "2026-12-01T22:32:19+00:00" in lines[3]  # a stamp without its zone gets UTC's
    assert "passed (31 passed)" in lines[3]
    assert lines[5] == "  └ failed at test: the tests failed (1 failed, 30 passed)"
    assert len(lines) == 6


def test_a_prod_failure_is_filed_under_the_outcomes_failed_step():
    entry = {**FAILED, "steps": [], "details": {"outcome": {"failed_step": "health"}}}
    assert records.failure_reason(entry) == (
        "health", "the database container notes-dev-db on root@127.0.1.1:22 is missing")
    assert records.failure_reason(OK) is None


def test_counts_from_pytest_output():
    assert records.counts_from_output([".......   [100%]", "31 passed in 0.76s"]) == {
        "passed": 31, "failed": 0, "errors": 0, "skipped": 0, "tests": 31}
    out = ["FAILED tests/test_x.py::test_y - assert 1 == 2",
           "==== 2 failed, 29 passed, 1 skipped, 1 error in 1.20s ===="]
    assert records.counts_from_output(out) == {"passed": 29, "failed": 2, "errors": 1,
                                               "skipped": 1, "tests": 33}
    assert records.counts_from_output(["1 passed, 2 warnings in 0.10s"])["passed"] == 1
    assert records.counts_from_output(["nothing here", "3 passed trains"]) is None


def test_counts_from_node_test_output():
    tap = ["ok 1 - a", "not ok 2 - b", "# tests 5", "# suites 1", "# pass 4", "# fail 1",
           "# cancelled 0", "# skipped 0", "# todo 0", "# duration_ms 51.2"]
    assert records.counts_from_output(tap) == {"passed": 4, "failed": 1, "errors": 0,
                                               "skipped": 0, "tests": 5}
    spec = ["✔ a (1.2ms)", "ℹ tests 3", "ℹ pass 3", "ℹ fail 0"]
    assert records.counts_from_output(spec)["passed"] == 3


def test_a_record_without_junit_shows_the_counts_of_its_output(capsys):
    rec = {**OK, "app": "notes", "env": "dev", "tests": {"ok": True, "exit_code": 0,
                                                          "command": "pytest -q tests"},
           "steps": [{"name": "test", "status": "ok", "duration": 2.4, "notes": ["passed"],
                      "output": ["......  [100%]", "31 passed in 0.76s"], "error": None}]}
    _print_record(rec)
    out = capsys.readouterr().out
    assert "tests           passed (31 passed): pytest -q tests" in out
    assert "?" not in out


def test_a_failed_record_says_where_and_why_first(capsys):
    rec = {**FAILED, "app": "notes", "env": "dev", "finished_at": "2026-12-01T22:32:07+00:00",
           "steps": [{"name": "pull", "status": "failed", "duration": 0.2, "notes": [],
                      "output": [], "error": "manifest unknown"}]}
    _print_record(rec)
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].split(None, 2) == ["failed", "at", ("pull: the database container "
                                       "notes-dev-db on root@127.0.1.1:22 is missing")]
    assert "  started_at      2026-12-01T22:32:07+00:00" in lines


BATCH = ["3 pending migration(s): a, b, c",
         "applying 2026-01-01-000001_a ...", "applying 2026-01-02-000001_b ...",
         "applied 2026-01-01-000001_a (6 ms)", "applied 2026-01-02-000001_b (4 ms)",
         "applying 2026-01-03-000001_c ...", "applied 2026-01-03-000001_c (4 ms)"]


def test_migration_output_in_order():
    assert records.migration_output_in_order(BATCH) == [
        "3 pending migration(s): a, b, c",
        "applying 2026-01-01-000001_a ...", "applied 2026-01-01-000001_a (6 ms)",
        "applying 2026-01-02-000001_b ...", "applied 2026-01-02-000001_b (4 ms)",
        "applying 2026-01-03-000001_c ...", "applied 2026-01-03-000001_c (4 ms)"]
    failed = ["applying a ...", "applying b ...", "applied a (1 ms)",
              "Migration b failed: ERROR: boom"]
    assert records.migration_output_in_order(failed) == [
        "applying a ...", "applied a (1 ms)", "applying b ...", "Migration b failed: ERROR: boom"]


def test_the_record_shows_migration_output_in_order(capsys):
    rec = {**OK, "app": "notes", "env": "dev",
           "steps": [{"name": "migrate", "status": "ok", "duration": 1.4, "notes": [],
                      "output": BATCH, "error": None}]}
    _print_record(rec)
    out = [line.strip() for line in capsys.readouterr().out.splitlines()]
    i = out.index("applying 2026-01-02-000001_b ...")
    assert out[i - 1] == "applied 2026-01-01-000001_a (6 ms)"
