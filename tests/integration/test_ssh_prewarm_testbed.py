"""transport.prewarm against a real sshd (the test bed's prod VM): the connection opened before
the CLI is imported is the one the command's transport then uses (one master, one handshake);
a host key it cannot verify is refused with the transport's own error; a master nobody took is
closed at exit."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from conveyor.config import load_config
from conveyor.errors import HostKeyError
from conveyor.targets.remote import ssh_target
from conveyor.transport import SshTransport, prewarm
from tests.integration.test_ssh_master_testbed import masters, wait_gone

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]


def write_project(root: Path, testbed: dict, known_hosts: str) -> Path:
    vm = testbed["vms"]["prod"]
    root.mkdir(parents=True, exist_ok=True)
    (root / "conveyor.toml").write_text(f"""
[app]
name = "prewarm"
image = "prewarm"
port = 8000

[environments.prod]
host = "{vm['ssh_user']}@{vm['address']}:{vm['ssh_port']}"
known_hosts = "{known_hosts}"
ssh_key = "{testbed['ssh_key']}"
address = "{vm['address']}"
port = 8080

[environments.prod.database]
kind = "url"
url = {{ env = "PREWARM_DATABASE_URL" }}
""")
    return root


def early_control(target) -> str:
    """The control socket of the master `start` made for `target` (still untaken)."""
    warm = prewarm._WARM[prewarm._key(target, prewarm.CONNECT_TIMEOUT)]
    return os.path.join(warm.control_dir, "cm")


def test_the_command_uses_the_connection_opened_early(testbed, tmp_path):
    project = write_project(tmp_path / "app", testbed, testbed["known_hosts"])
    try:
        assert prewarm.start(["-C", str(project), "deploy", "prod"]) == ["prod"]
        target = ssh_target(load_config(project), "prod")
        control = early_control(target)
        t = SshTransport(target, direct_first=True)
        try:
            assert t.run(["echo", "hi"]).stdout == "hi\n"
            assert t.connections_opened == 1
            assert os.path.join(t.control_dir, "cm") == control
            assert len(masters(control)) == 1
        finally:
            t.close()
        assert wait_gone(control, within=5) < 5
    finally:
        prewarm.close_all()


def test_an_unknown_host_key_is_refused_with_the_transports_error(testbed, tmp_path):
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    project = write_project(tmp_path / "app", testbed, str(empty))
    try:
        assert prewarm.start(["-C", str(project), "status", "prod"]) == ["prod"]
        t = SshTransport(ssh_target(load_config(project), "prod"), direct_first=True)
        try:
            with pytest.raises(HostKeyError, match="its host key is not in") as early:
                t.run(["true"])
        finally:
            t.close()
    finally:
        prewarm.close_all()
    # the same error as a transport connecting by itself gives
    t = SshTransport(ssh_target(load_config(project), "prod"), direct_first=True)
    try:
        with pytest.raises(HostKeyError) as own:
            t.run(["true"])
    finally:
        t.close()
    assert (str(early.value), early.value.hint) == (str(own.value), own.value.hint)


_UNTAKEN = """
import sys
from conveyor.transport import prewarm
assert prewarm.start(["-C", sys.argv[1], "deploy", "prod"]) == ["prod"]
warm = next(iter(prewarm._WARM.values()))
warm._ensure_master()  # connected, then the process exits without using it
print(warm.control_dir, flush=True)
"""


def test_a_master_nobody_took_is_closed_at_exit(testbed, tmp_path):
    project = write_project(tmp_path / "app", testbed, testbed["known_hosts"])
    p = subprocess.run([sys.executable, "-c", _UNTAKEN, str(project)], capture_output=True,
                       text=True, cwd=REPO, timeout=120, check=False)
    assert p.returncode == 0, p.stderr
    control_dir = p.stdout.strip()
    assert control_dir
    assert wait_gone(os.path.join(control_dir, "cm"), within=5) < 5
    assert not os.path.exists(control_dir), "its private directory is removed"
