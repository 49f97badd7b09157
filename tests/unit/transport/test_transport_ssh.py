"""transport.ssh: what the SSH transport sends to OpenSSH (whole argv) and how it classifies
connection errors. No network here: tests/integration/test_transport_ssh.py runs it against
the test bed's sshd VMs."""

from __future__ import annotations

import os
import shlex

import pytest

from conveyor.errors import ConveyorError, HostKeyError, HostUnreachable
from conveyor.transport import SshTarget, SshTransport


@pytest.fixture
def transport(tmp_path):
    t = SshTransport(SshTarget(host="10.0.0.5", user="deploy", port=2222,
                               known_hosts=str(tmp_path / "known_hosts"),
                               identity=str(tmp_path / "id")))
    yield t
    t.close()


def test_ssh_argv_always_verifies_the_host_key_and_multiplexes(transport, tmp_path):
    assert transport.base_argv() == [
        "ssh", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes",
        "-o", f"UserKnownHostsFile={tmp_path / 'known_hosts'}",
        "-o", "GlobalKnownHostsFile=/dev/null", "-o", "UpdateHostKeys=no",
        "-o", "ConnectTimeout=10", "-o", "ServerAliveInterval=15", "-o", "ServerAliveCountMax=4",
        "-o", f"ControlPath={os.path.join(transport.control_dir, 'cm')}", "-p", "2222",
        "-i", str(tmp_path / "id"), "-o", "IdentitiesOnly=yes", "-l", "deploy",
    ]


def test_ssh_argv_without_user_or_identity(tmp_path):
    t = SshTransport(SshTarget(host="h", known_hosts="~/kh"), connect_timeout=3)
    try:
        assert t.base_argv() == [
            "ssh", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes",
            "-o", f"UserKnownHostsFile={os.path.expanduser('~/kh')}",
            "-o", "GlobalKnownHostsFile=/dev/null", "-o", "UpdateHostKeys=no",
            "-o", "ConnectTimeout=3", "-o", "ServerAliveInterval=15",
            "-o", "ServerAliveCountMax=4",
            "-o", f"ControlPath={os.path.join(t.control_dir, 'cm')}", "-p", "22",
        ]
        assert t.name == "h:22"
    finally:
        t.close()


def test_ssh_without_known_hosts_is_refused():
    with pytest.raises(ConveyorError) as info:
        SshTransport(SshTarget(host="h", known_hosts=None))
    assert str(info.value) == "no known_hosts file configured for h:22"
    assert "never turns host key checking off" in (info.value.hint or "")


def test_remote_command_quotes_each_argument_once(transport):
    cmd = transport.remote_command(["docker", "run", "--label", "a=b c", "img", "sh", "-c",
                                    "x; y"], env={"K": "v w"})
    assert cmd == "env 'K=v w' docker run --label 'a=b c' img sh -c 'x; y'"
    assert shlex.split(cmd) == ["env", "K=v w", "docker", "run", "--label", "a=b c", "img",
                                "sh", "-c", "x; y"]


def test_connect_errors_are_classified_with_a_hint(transport, tmp_path):
    changed = transport.connect_error(
        "@@@ WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED! @@@\n"
        "Host key verification failed.\n")
    assert isinstance(changed, HostKeyError)
    assert str(changed) == ("refusing to connect to deploy@10.0.0.5:2222: its host key does NOT "
                            f"match the one in {tmp_path / 'known_hosts'}")
    assert "conveyor hosts trust" in (changed.hint or "")
    unknown = transport.connect_error("No ED25519 host key is known for 10.0.0.5 and you have "
                                      "requested strict checking.\n"
                                      "Host key verification failed.")
    assert isinstance(unknown, HostKeyError) and "is not in" in str(unknown)
    refused = transport.connect_error(
        "ssh: connect to host 10.0.0.5 port 2222: Connection refused\n")
    assert isinstance(refused, HostUnreachable)
    assert str(refused) == ("cannot connect to deploy@10.0.0.5:2222: ssh: connect to host "
                            "10.0.0.5 port 2222: Connection refused")
    assert (HostKeyError.exit_code, HostUnreachable.exit_code) == (21, 4)


def test_close_removes_the_control_directory(tmp_path):
    t = SshTransport(SshTarget(host="h", known_hosts=str(tmp_path / "kh")))
    d = t.control_dir
    assert os.path.isdir(d)
    t.close()
    assert not os.path.exists(d)


def test_the_host_key_hint_names_the_environment(tmp_path):
    stderr = "No ED25519 host key is known for h.\nHost key verification failed.\n"
    t = SshTransport(SshTarget(host="h", known_hosts=str(tmp_path / "kh"), env_name="dev"))
    try:
        err = t.connect_error(stderr)
        assert isinstance(err, HostKeyError)
        assert "`conveyor hosts trust dev`" in (err.hint or "")
        assert "ENV" not in (err.hint or "")
    finally:
        t.close()
    # without an environment (a bare target) the placeholder stays
    t = SshTransport(SshTarget(host="h", known_hosts=str(tmp_path / "kh")))
    try:
        assert "`conveyor hosts trust ENV`" in (t.connect_error(stderr).hint or "")
    finally:
        t.close()


def test_the_master_outlives_a_killed_run_only_briefly(transport, monkeypatch, fake_master):
    """ControlPersist is short (a killed conveyor leaves no master for ten minutes)."""
    import subprocess

    seen: list[list[str]] = []

    def fake_run(argv, **kw):
        seen.append(list(argv))
        return subprocess.CompletedProcess(argv, 0, b"", b"")

    monkeypatch.setattr(subprocess, "run", fake_run)
    transport._ensure_master()
    master = fake_master[0]
    assert master[len(transport.base_argv()):] == [
        "-o", "ControlMaster=yes", "-o", "ControlPersist=30", "-o", "ExitOnForwardFailure=yes",
        "-N", "-f", "10.0.0.5"]
    # close() asks the master to exit at once
    transport.close()
    assert seen[-1][-3:] == ["-O", "exit", "10.0.0.5"]


def test_direct_first_runs_the_first_command_without_a_master(tmp_path, monkeypatch,
                                                              fake_master):
    """`conveyor status`: one SSH connection of its own for its one command (no master, no
    session: one handshake); a second command sets the master up as usual."""
    import subprocess

    import conveyor.transport.ssh as ssh_mod

    direct: list[list[str]] = []
    masters = fake_master

    def fake_process(cmd, **kw):
        direct.append(list(cmd))
        return 0, "out\n", ""

    monkeypatch.setattr(ssh_mod, "run_process", fake_process)
    monkeypatch.setattr(subprocess, "run",
                        lambda argv, **kw: subprocess.CompletedProcess(argv, 0, b"", b""))
    t = SshTransport(SshTarget(host="10.0.0.5", known_hosts=str(tmp_path / "kh")),
                     direct_first=True, session=False)
    try:
        r = t.run(["docker", "ps"])
        assert (r.returncode, r.stdout) == (0, "out\n")
        cmd = direct[0]
        assert "ControlPath=none" in cmd and "ControlMaster=no" in cmd
        assert not any(a.startswith("ControlPath=/") for a in cmd)
        assert cmd[-3:] == ["10.0.0.5", "--", "docker ps"]
        assert masters == [] and t.connections_opened == 1 and not os.path.exists(
            os.path.join(t.control_dir, "cm"))
        t.run(["true"])  # the second: over the master
        assert masters and "ControlMaster=yes" in masters[0]
        assert any(a.startswith("ControlPath=/") for a in direct[1])
    finally:
        t.close()


def test_a_direct_connection_that_fails_is_a_connection_error(tmp_path, monkeypatch):
    import conveyor.transport.ssh as ssh_mod

    answers = iter([
        (255, "", "ssh: connect to host 10.0.0.5 port 22: Connection refused\n"),
        (255, "", ("No ED25519 host key is known for 10.0.0.5 and you have requested strict "
                  "checking.\nHost key verification failed.\n")),
        (255, "", "root@10.0.0.5: Permission denied (publickey).\n"),
        (255, "", "the command's own 255\n"),
    ])
    monkeypatch.setattr(ssh_mod, "run_process", lambda cmd, **kw: next(answers))

    def first(**kw):
        return SshTransport(SshTarget(host="10.0.0.5", known_hosts=str(tmp_path / "kh")),
                            direct_first=True)

    with pytest.raises(HostUnreachable, match="Connection refused"):
        first().run(["true"])
    with pytest.raises(HostKeyError, match="is not in"):
        first().run(["true"])
    with pytest.raises(HostUnreachable, match="Permission denied"):
        first().run(["true"])
    assert first().run(["sh", "-c", "exit 255"], check=False).returncode == 255


def test_ssh_failed_tells_opensshs_errors_from_a_commands_exit_255():
    from conveyor.transport.ssh import ssh_failed

    assert ssh_failed(255, "ssh: Could not resolve hostname nope: Name or service not known\n")
    assert ssh_failed(255, "Connection closed by 10.0.0.5 port 22\r\n")
    assert ssh_failed(255, "kex_exchange_identification: read: Connection reset by peer\n")
    assert not ssh_failed(255, "")
    assert not ssh_failed(1, "ssh: connect to host h port 22: Connection refused")


def test_a_master_gone_idle_is_connected_again(transport, monkeypatch, fake_master):
    """The master exits after ControlPersist idle seconds (a first deploy builds the runner
    image for longer than that with no session open): the next command connects again
    instead of failing (it was an AssertionError)."""
    import subprocess

    monkeypatch.setattr(subprocess, "run",
                        lambda argv, **kw: subprocess.CompletedProcess(argv, 0, b"", b""))
    control = os.path.join(transport.control_dir, "cm")
    transport._ensure_master()
    open(control, "w").close()  # the live master's socket
    transport._ensure_master()
    assert len(fake_master) == 1 and transport.connections_opened == 1
    os.remove(control)  # the master exited: ssh removes its socket
    transport._ensure_master()
    assert len(fake_master) == 2 and transport.connections_opened == 2
