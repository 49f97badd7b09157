"""The SSH transport against a real sshd (the test bed's prod VM): one master connection and one
command session (host/session.sh) for many commands, input framed, exit codes kept, and an
unknown host key refused."""

from __future__ import annotations

import pytest

from conveyor.errors import CommandFailed, HostKeyError
from conveyor.transport import SshTarget, SshTransport

pytestmark = pytest.mark.integration


def _target(testbed: dict, known_hosts: str) -> SshTarget:
    vm = testbed["vms"]["prod"]
    return SshTarget(host=vm["address"], user=vm["ssh_user"], port=vm["ssh_port"],
                     known_hosts=known_hosts, identity=testbed["ssh_key"])


def test_commands_share_one_connection_and_one_session(testbed):
    with SshTransport(_target(testbed, testbed["known_hosts"])) as t:
        assert t.run(["echo", "a b", "$HOME"]).stdout == "a b $HOME\n"
        data = b"x" * 100_000
        assert t.run(["wc", "-c"], input=data).stdout.strip() == "100000"
        assert t.run(["head", "-c", "2"], input=b"abcdef").stdout == "ab"
        r = t.run(["sh", "-c", "echo out; echo err >&2; exit 3"], check=False)
        assert (r.returncode, r.stdout, r.stderr, r.host) == (3, "out\n", "err\n", t.name)
        with pytest.raises(CommandFailed) as info:
            t.run(["false"])
        assert info.value.host == t.name
        lines: list[str] = []
        t.run(["sh", "-c", "echo 1; echo 2"], stream=lines.append)
        assert lines == ["1", "2"]
        assert (t.connections_opened, t.sessions_opened, t.commands_run) == (1, 1, 6)


def test_without_session_each_command_is_its_own_ssh_command(testbed):
    with SshTransport(_target(testbed, testbed["known_hosts"]), session=False) as t:
        assert t.run(["sh", "-c", "cat; echo end"], input="in\n").stdout == "in\nend\n"
        assert t.run(["sh", "-c", "exit 5"], check=False).returncode == 5
        assert (t.connections_opened, t.sessions_opened) == (1, 0)


def test_an_unknown_host_key_is_refused(testbed, tmp_path):
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    with SshTransport(_target(testbed, str(empty))) as t, pytest.raises(HostKeyError) as info:
        t.run(["true"])
    assert f"its host key is not in {empty}" in str(info.value)
    assert "conveyor hosts trust" in (info.value.hint or "")
