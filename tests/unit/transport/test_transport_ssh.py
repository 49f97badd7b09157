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


def test_the_master_outlives_a_killed_run_only_briefly(transport, monkeypatch):
    """ControlPersist is short (a killed conveyor leaves no master for ten minutes)."""
    import subprocess

    seen: list[list[str]] = []

    def fake_run(argv, **kw):
        seen.append(list(argv))
        return subprocess.CompletedProcess(argv, 0, b"", b"")

    monkeypatch.setattr(subprocess, "run", fake_run)
    transport._ensure_master()
    master = seen[0]
    assert master[len(transport.base_argv()):] == [
        "-o", "ControlMaster=yes", "-o", "ControlPersist=30", "-o", "ExitOnForwardFailure=yes",
        "-N", "-f", "10.0.0.5"]
    # close() asks the master to exit at once
    transport.close()
    assert seen[-1][-3:] == ["-O", "exit", "10.0.0.5"]
