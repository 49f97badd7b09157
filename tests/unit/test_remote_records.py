"""Git revisions, JUnit parsing, the migration engine bundle, and the remote config fields
(records.py: tests/unit/test_records.py)."""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys
import zipfile

import pytest

from conveyor import git, records
from conveyor.config import load_config
from conveyor.errors import ConfigError
from conveyor.steps import migrate_engine
from conveyor.steps.tests import junit_summary


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


def test_junit_summary_counts_cases(tmp_path):
    p = tmp_path / "j.xml"
    p.write_text('<testsuites><testsuite name="pytest" tests="3" failures="1" errors="0" '
                 'skipped="1"><testcase classname="t" name="a"/><testcase classname="t" '
                 'name="b"><failure/></testcase><testcase classname="t" name="c"><skipped/>'
                 '</testcase></testsuite></testsuites>')
    s = junit_summary(p)
    assert (s["tests"], s["passed"], s["failed"], s["skipped"]) == (3, 1, 1, 1)
    assert s["cases"] == ["t.a", "t.b", "t.c"]
    assert junit_summary(tmp_path / "missing.xml") is None


# --------------------------------------------------------------------------- engine bundle


def test_engine_zip_is_deterministic_and_holds_only_python_sources():
    z = migrate_engine.engine_zip()
    names = zipfile.ZipFile(io.BytesIO(z)).namelist()
    assert "conveyor/__init__.py" in names and "conveyor/migrations/engine.py" in names
    assert "conveyor_migrate_driver.py" in names
    assert all(n.endswith(".py") for n in names)
    migrate_engine.engine_zip.cache_clear()
    assert migrate_engine.engine_zip() == z


def test_bootstrap_runs_the_shipped_engine_and_reports_a_masked_error(tmp_path):
    """The bootstrap with a plain python3 (no conveyor installed: `-I` isolates it from this
    environment's site-packages and cwd)."""
    stdin = migrate_engine.engine_stdin("run", "postgresql://u:pw-secret@127.0.0.1:1/x",
                                        str(tmp_path), lock_timeout=1, applied_by="t")
    p = subprocess.run([sys.executable, "-I", "-c", migrate_engine.BOOTSTRAP], input=stdin,
                       capture_output=True, check=False, cwd=tmp_path, timeout=60)
    out = migrate_engine.parse_output(p.stdout.decode())
    assert p.returncode == 1
    assert out.result["ok"] is False and out.result["error"] in ("ConnectionFailed",
                                                                  "DiscoveryError")
    assert "pw-secret" not in p.stdout.decode() + p.stderr.decode()


def test_parse_output_separates_the_result_line():
    text = ("2 pending\napplying a ...\n" + migrate_engine.RESULT_MARK
            + json.dumps({"ok": True, "applied": [{"version": "1", "name": "1_a"}]}) + "\n")
    out = migrate_engine.parse_output(text)
    assert out.lines == ["2 pending", "applying a ..."]
    assert out.applied == ["1_a"]
    assert migrate_engine.parse_output("garbage").result is None


def test_engine_argv_has_no_secret_and_the_fixed_bootstrap():
    argv = migrate_engine.engine_argv("r/notes@sha256:x", name="m", network="net",
                                      labels={"conveyor.app": "notes"})
    assert argv == ("docker", "run", "--rm", "--interactive", "--name", "m", "--network", "net",
                    "--label", "conveyor.app=notes", "--entrypoint", "python3",
                    "r/notes@sha256:x", "-c", migrate_engine.BOOTSTRAP)
    assert migrate_engine.describe_engine_argv(argv) == [
        "docker", "run", "--rm", "--interactive", "--name", "m", "--network", "net",
        "--label", "conveyor.app=notes", "--entrypoint", "python3", "r/notes@sha256:x", "-c",
        "<conveyor engine bootstrap>"]


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
