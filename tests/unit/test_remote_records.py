"""Git revisions, JUnit parsing, the migration engine's container and driver, and the remote
config fields (records.py: tests/unit/test_records.py)."""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys

import pytest

from conveyor import git, host, records
from conveyor.config import load_config
from conveyor.errors import ConfigError
from conveyor.runner import image as runner_image
from conveyor.steps import migrate_engine
from conveyor.steps.tests import junit_summary
from conveyor.targets.remote import Remote


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


# --------------------------------------------------------------------------- the engine


RUNNER = "127.0.0.1:5000/conveyor-runner:0.0.0-test"


def test_driver_as_a_module_reads_the_header_on_stdin_and_reports_a_masked_error(tmp_path):
    """`python -m conveyor.steps.migrate_driver`, as the engine container runs it (`-I`: not
    this checkout's cwd or PYTHONPATH, only the installed conveyor): the one header line of
    `engine_stdin` on stdin, the migrations where the container mounts them (here a directory
    of this host instead of /migrations), a database that refuses connections."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mig = tmp_path / "migrations" / "2026-01-01-000001_create_notes"
    mig.mkdir(parents=True)
    (mig / "up.sql").write_text("CREATE TABLE notes (id bigint);\n")
    (mig / "down.sql").write_text("DROP TABLE notes;\n")
    stdin = migrate_engine.engine_stdin("run", f"postgresql://u:pw-secret@127.0.0.1:{port}/x",
                                        lock_timeout=1, applied_by="t")
    head, nl, rest = stdin.partition(b"\n")
    assert nl == b"\n" and rest == b""  # one header line, nothing else (no zip)
    header = json.loads(head)
    assert header["migration_dir"] == migrate_engine.ENGINE_DIR == "/migrations"
    header["migration_dir"] = str(tmp_path / "migrations")  # the mount's stand-in
    p = subprocess.run([sys.executable, "-I", "-m", "conveyor.steps.migrate_driver"],
                       input=json.dumps(header).encode() + b"\n", capture_output=True,
                       check=False, cwd=tmp_path, timeout=60)
    stdout, stderr = p.stdout.decode(), p.stderr.decode()
    assert p.returncode == 1, (stdout, stderr)
    assert stdout.splitlines()[-1].startswith(migrate_engine.RESULT_MARK)
    out = migrate_engine.parse_output(stdout)
    assert out.result["ok"] is False and out.result["error"] == "ConnectionFailed"
    assert "postgresql://u:***@127.0.0.1:" in out.result["message"]
    assert "pw-secret" not in stdout + stderr


def test_engine_argv_runs_the_driver_in_the_runner_image_with_the_migrations_mounted():
    argv = migrate_engine.engine_argv(RUNNER, "/srv/c/shop/dev/runs/D1/migrations", name="m",
                                      network="net", labels={"conveyor.app": "notes"})
    assert argv == ("docker", "run", "--rm", "--interactive", "--name", "m", "--network", "net",
                    "--volume", "/srv/c/shop/dev/runs/D1/migrations:/migrations:ro",
                    "--label", "conveyor.app=notes", "--entrypoint", "python", RUNNER,
                    "-m", "conveyor.steps.migrate_driver")
    # no name, no network (as `conveyor migrate status` on a database reached by URL may)
    assert migrate_engine.engine_argv(RUNNER, "/d", name=None, network=None, labels={}) == (
        "docker", "run", "--rm", "--interactive", "--volume", "/d:/migrations:ro",
        "--entrypoint", "python", RUNNER, "-m", "conveyor.steps.migrate_driver")


def _remote(tmp_path):
    (tmp_path / "conveyor.toml").write_text(CFG.format(extra='state_dir = "/srv/c"'))
    return Remote(load_config(tmp_path), "dev", transport_factory=lambda r: None)


def test_engine_image_is_the_runners_own_else_computed_from_conveyor(tmp_path, monkeypatch):
    remote = _remote(tmp_path)
    monkeypatch.setenv("CONVEYOR_RUNNER_IMAGE", RUNNER)
    assert migrate_engine.engine_image(remote) == RUNNER
    monkeypatch.delenv("CONVEYOR_RUNNER_IMAGE")
    assert migrate_engine.engine_image(remote) == runner_image.image_ref(remote.cfg)
    assert migrate_engine.engine_image(remote).startswith("conveyor-runner:")  # no registry


def test_the_migrations_are_copied_out_of_the_image_into_the_runs_directory(tmp_path):
    remote = _remote(tmp_path)
    dest = migrate_engine.migrations_dir(remote, "D1")
    assert dest == "/srv/c/shop/dev/runs/D1/migrations"
    assert migrate_engine.migrations_dir(remote, "D1", "revert") == "/srv/c/shop/dev/runs/D1/revert"
    assert migrate_engine.copy_out_argv(remote, "r/shop@sha256:x", dest) == (
        "sh", "-c", host.script("copy_out"), "conveyor-copy-out", "r/shop@sha256:x",
        "/app/migrations", dest, "--label", "conveyor.app=shop", "--label", "conveyor.env=dev",
        "--label", "conveyor.role=inspect")
    # never run: created, copied from, removed
    script = host.script("copy_out")
    assert 'docker create "$@" "$img" true' in script and "docker start" not in script
    assert 'docker cp "$c:$dir/." "$dest"' in script and 'docker rm -f "$c"' in script


def test_parse_output_separates_the_result_line():
    text = ("2 pending\napplying a ...\n" + migrate_engine.RESULT_MARK
            + json.dumps({"ok": True, "applied": [{"version": "1", "name": "1_a"}]}) + "\n")
    out = migrate_engine.parse_output(text)
    assert out.lines == ["2 pending", "applying a ..."]
    assert out.applied == ["1_a"]
    assert migrate_engine.parse_output("garbage").result is None


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
