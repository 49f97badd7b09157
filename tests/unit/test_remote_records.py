"""Records (local image log, deployment records, summaries), git revisions, JUnit parsing,
the migration engine bundle, and the remote config fields."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap
import zipfile
import io

import pytest

from conveyor import git, records
from conveyor.config import load_config
from conveyor.errors import ConfigError
from conveyor.pipeline import StepResult
from conveyor.stages import remote as rs
from conveyor.stages import remote_migrate


def _git(path, *args):
    subprocess.run(["git", "-C", str(path), *args], check=True, capture_output=True,
                   env={"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t",
                        "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t",
                        "PATH": "/usr/bin:/bin:/usr/local/bin", "HOME": str(path)})


def test_git_revision_clean_dirty_and_conveyor_state_ignored(tmp_path):
    with pytest.raises(git.GitError):
        git.revision(tmp_path)
    _git(tmp_path, "init", "-q", "-b", "main")
    (tmp_path / "a.txt").write_text("a")
    _git(tmp_path, "add", "a.txt")
    _git(tmp_path, "commit", "-q", "-m", "one")
    rev = git.revision(tmp_path)
    assert re.fullmatch(r"[0-9a-f]{40}", rev.sha) and not rev.dirty
    assert rev.tag == rev.sha[:12] and rev.label == rev.sha and rev.branch == "main"
    records.remember_image(tmp_path, "built", {"ref": "x", "revision": rev.label})
    assert not git.revision(tmp_path).dirty  # .conveyor/ never makes the tree dirty
    (tmp_path / "a.txt").write_text("changed")
    dirty = git.revision(tmp_path)
    assert dirty.dirty and dirty.tag == rev.sha[:12] + "-dirty"
    assert dirty.label == rev.sha + "-dirty"


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
    rows = records.history_table([_record().summary()])
    assert rows[0][:3] == ["20260101T000000Z-abcd", "deploy", "running"]
    assert rows[0][5] == "sha256:abababababab"


def test_junit_summary_counts_cases(tmp_path):
    p = tmp_path / "j.xml"
    p.write_text('<testsuites><testsuite name="pytest" tests="3" failures="1" errors="0" '
                 'skipped="1"><testcase classname="t" name="a"/><testcase classname="t" '
                 'name="b"><failure/></testcase><testcase classname="t" name="c"><skipped/>'
                 '</testcase></testsuite></testsuites>')
    s = rs.junit_summary(p)
    assert (s["tests"], s["passed"], s["failed"], s["skipped"]) == (3, 1, 1, 1)
    assert s["cases"] == ["t.a", "t.b", "t.c"]
    assert rs.junit_summary(tmp_path / "missing.xml") is None


# --------------------------------------------------------------------------- engine bundle


def test_engine_zip_is_deterministic_and_holds_only_python_sources():
    z = remote_migrate.engine_zip()
    names = zipfile.ZipFile(io.BytesIO(z)).namelist()
    assert "conveyor/__init__.py" in names and "conveyor/migrations/engine.py" in names
    assert "conveyor_migrate_driver.py" in names
    assert all(n.endswith(".py") for n in names)
    remote_migrate.engine_zip.cache_clear()
    assert remote_migrate.engine_zip() == z


def test_bootstrap_runs_the_shipped_engine_and_reports_a_masked_error(tmp_path):
    """The bootstrap with a plain python3 (no conveyor installed: `-I` isolates it from this
    environment's site-packages and cwd)."""
    stdin = remote_migrate.engine_stdin("run", "postgresql://u:pw-secret@127.0.0.1:1/x",
                                        str(tmp_path), lock_timeout=1, applied_by="t")
    p = subprocess.run([sys.executable, "-I", "-c", remote_migrate.BOOTSTRAP], input=stdin,
                       capture_output=True, cwd=tmp_path, timeout=60)
    out = remote_migrate.parse_output(p.stdout.decode())
    assert p.returncode == 1
    assert out.result["ok"] is False and out.result["error"] in ("ConnectionFailed",
                                                                  "DiscoveryError")
    assert "pw-secret" not in p.stdout.decode() + p.stderr.decode()


def test_parse_output_separates_the_result_line():
    text = ("2 pending\napplying a ...\n" + remote_migrate.RESULT_MARK
            + json.dumps({"ok": True, "applied": [{"version": "1", "name": "1_a"}]}) + "\n")
    out = remote_migrate.parse_output(text)
    assert out.lines == ["2 pending", "applying a ..."]
    assert out.applied == ["1_a"]
    assert remote_migrate.parse_output("garbage").result is None


def test_engine_argv_has_no_secret_and_the_fixed_bootstrap():
    argv = remote_migrate.engine_argv("r/notes@sha256:x", name="m", network="net",
                                      labels={"conveyor.app": "notes"})
    assert argv == ("docker", "run", "--rm", "--interactive", "--name", "m", "--network", "net",
                    "--label", "conveyor.app=notes", "--entrypoint", "python3",
                    "r/notes@sha256:x", "-c", remote_migrate.BOOTSTRAP)
    assert remote_migrate.describe_engine_argv(argv)[-1] == "<conveyor engine bootstrap>"


# --------------------------------------------------------------------------- config


CFG = """
[app]
name = "shop"
image = "shop"
port = 8000
[environments.dev]
host = "deploy@10.0.0.5"
known_hosts = "kh"
{extra}
[environments.dev.database]
kind = "url"
url = {{ env = "SHOP_URL" }}
"""


def test_remote_config_defaults_and_state_dir(tmp_path):
    (tmp_path / "conveyor.toml").write_text(CFG.format(extra=""))
    cfg = load_config(tmp_path)
    env = cfg.environment("dev")
    assert (env.state_dir, env.restart, env.labels) == ("/var/lib/conveyor", "unless-stopped",
                                                        {})
    assert cfg.host_state_dir("dev") == "/var/lib/conveyor/shop/dev"
    (tmp_path / "conveyor.toml").write_text(CFG.format(
        extra='state_dir = "/srv/c/"\nrestart = "always"\nlabels = { team = "a" }'))
    cfg = load_config(tmp_path)
    assert cfg.host_state_dir("dev") == "/srv/c/shop/dev"


@pytest.mark.parametrize("extra", ['state_dir = "relative"', 'state_dir = "/a/../b"',
                                   'restart = "sometimes"'])
def test_remote_config_errors_name_the_key(tmp_path, extra):
    (tmp_path / "conveyor.toml").write_text(CFG.format(extra=extra))
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path).environment("dev")
    key = extra.split(" ")[0]
    assert f"environments.dev.{key}" in str(info.value)
