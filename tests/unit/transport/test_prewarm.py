"""transport.prewarm: which command lines open their host's SSH connection before the CLI is
imported, that the target it reads without pydantic is exactly the one the validated config
gives, and that the first transport for that target takes the connection over. No network here
(the master is a fake Popen); tests/integration/test_ssh_prewarm_testbed.py uses a real sshd."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

import conveyor.transport.ssh as ssh_mod
from conveyor.config import load_config
from conveyor.targets.remote import ssh_target
from conveyor.transport import SshTransport, prewarm

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "notes"


@pytest.mark.parametrize(("argv", "project", "names"), [
    (["deploy", "dev"], ".", ["dev"]),
    (["deploy", "prod", "--image", "x@sha256:1", "--json"], ".", ["prod"]),
    (["-C", "app", "deploy", "dev"], "app", ["dev"]),
    (["deploy", "-C", "app", "dev"], "app", ["dev"]),
    (["--project-dir=app", "rollback", "prod"], "app", ["prod"]),
    (["-v", "status", "dev", "prod", "--json"], ".", ["dev", "prod"]),
    (["status", "dev", "dev"], ".", ["dev"]),
    (["status"], ".", []),
    (["status", "--bogus", "dev"], ".", []),      # an option it does not know: nothing
    (["deploy", "--image", "x", "dev"], ".", []),  # not the word after the command: unsure
    (["deploy", "dev", "--dry-run"], ".", []),     # does not connect
    (["deploy", "dev", "--help"], ".", []),
    (["build"], ".", []),
    (["push", "dev"], ".", []),
    (["migrate", "run"], ".", []),
    ([], ".", []),
])
def test_which_environments_a_command_line_reaches(argv, project, names):
    assert prewarm.environments(argv) == (project, names)


@pytest.fixture
def project(tmp_path, monkeypatch):
    """A copy of the example's conveyor.toml, its hosts and paths from the environment."""
    shutil.copy(EXAMPLE / "conveyor.toml", tmp_path / "conveyor.toml")
    monkeypatch.setenv("CONVEYOR_DEV_HOST", "deploy@127.0.0.9:2201")
    monkeypatch.setenv("CONVEYOR_PROD_HOST", "127.0.0.10")
    monkeypatch.setenv("CONVEYOR_KNOWN_HOSTS", "keys/known_hosts")  # relative: to the project
    monkeypatch.setenv("CONVEYOR_SSH_KEY", "~/.ssh/id_test")
    return tmp_path


@pytest.mark.parametrize("env_name", ["dev", "prod"])
def test_the_target_read_early_is_the_validated_configs(project, monkeypatch, env_name):
    assert prewarm.target_of(str(project), env_name) == ssh_target(load_config(project), env_name)
    monkeypatch.chdir(project)  # and relative to the working directory (no -C)
    assert prewarm.target_of(".", env_name) == ssh_target(load_config("."), env_name)


def test_no_target_where_the_config_says_nothing_certain(project, monkeypatch, tmp_path):
    assert prewarm.target_of(str(project), "local") is None   # no host
    assert prewarm.target_of(str(project), "staging") is None  # no such environment
    assert prewarm.target_of(str(project / "nowhere"), "dev") is None
    monkeypatch.delenv("CONVEYOR_DEV_HOST")
    monkeypatch.setenv("CONVEYOR_DEV_HOST", "not a host")
    assert prewarm.target_of(str(project), "dev") is None
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "conveyor.toml").write_text("[environments.dev\nhost = 'x'\n")
    assert prewarm.target_of(str(broken), "dev") is None


@pytest.fixture
def fake_ssh(monkeypatch, fake_master):
    """No ssh process: the master is a FakeMaster, the commands answer "ok"."""
    commands: list[list[str]] = []
    monkeypatch.setattr(subprocess, "run",
                        lambda argv, **kw: subprocess.CompletedProcess(argv, 0, b"", b""))

    def fake_process(cmd, **kw):
        commands.append(list(cmd))
        return 0, "ok\n", ""

    monkeypatch.setattr(ssh_mod, "run_process", fake_process)
    yield fake_master, commands
    prewarm.close_all()


@pytest.mark.parametrize("direct_first", [False, True])
def test_the_first_transport_for_the_target_takes_the_early_master(project, fake_ssh,
                                                                   direct_first):
    masters, commands = fake_ssh
    assert prewarm.start(["-C", str(project), "deploy", "dev"]) == ["dev"]
    assert len(masters) == 1 and "ControlMaster=yes" in masters[0]
    control = next(a for a in masters[0] if a.startswith("ControlPath="))
    t = SshTransport(ssh_target(load_config(project), "dev"), direct_first=direct_first,
                     session=False)
    try:
        assert t.run(["docker", "ps"]).stdout == "ok\n"
        assert len(masters) == 1, "no second connection"
        assert t.connections_opened == 1
        assert control in commands[0], "the command runs over the early master"
        assert "ControlMaster=no" in commands[0]
        assert prewarm.take(t.target, t.connect_timeout) is None, "taken once"
    finally:
        t.close()
    # another transport for the same target connects on its own
    t2 = SshTransport(ssh_target(load_config(project), "dev"), session=False)
    try:
        t2.run(["true"])
        assert len(masters) == 2
    finally:
        t2.close()


def test_a_transport_for_another_target_or_timeout_does_not_take_it(project, fake_ssh):
    masters, _ = fake_ssh
    prewarm.start(["-C", str(project), "status", "dev", "prod"])
    assert len(masters) == 2
    cfg = load_config(project)
    t = SshTransport(ssh_target(cfg, "dev"), connect_timeout=3, session=False)
    try:
        t.run(["true"])
        assert len(masters) == 3
    finally:
        t.close()
    prewarm.close_all()
    assert prewarm.take(ssh_target(cfg, "prod"), prewarm.CONNECT_TIMEOUT) is None


def test_nothing_starts_for_a_local_environment_or_a_help(project, fake_ssh):
    masters, _ = fake_ssh
    assert prewarm.start(["-C", str(project), "deploy", "local"]) == []
    assert prewarm.start(["-C", str(project), "deploy", "dev", "--help"]) == []
    assert masters == []
