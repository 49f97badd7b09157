"""The SSH master connection's lifetime against a real sshd (the test bed's prod VM): `close()`
ends it at once (`ssh -O exit`), and a conveyor killed with SIGKILL leaves it behind only for
the ControlPersist time (issue 15, item 19: it was ten minutes)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conveyor.transport import SshTarget, SshTransport

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]


def _target(testbed: dict) -> SshTarget:
    vm = testbed["vms"]["prod"]
    return SshTarget(host=vm["address"], user=vm["ssh_user"], port=vm["ssh_port"],
                     known_hosts=testbed["known_hosts"], identity=testbed["ssh_key"])


def masters(control: str) -> list[int]:
    """PIDs of ssh master processes (ControlMaster=yes) on this control path."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            argv = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if (argv and argv[0].endswith(b"ssh") and f"ControlPath={control}".encode() in argv
                and b"ControlMaster=yes" in argv):
            pids.append(int(entry))
    return pids


def wait_gone(control: str, within: float) -> float:
    """Seconds until no master is left on `control` (polled); fails after `within`."""
    t0 = time.monotonic()
    while masters(control):
        elapsed = time.monotonic() - t0
        assert elapsed < within, f"ssh master still running after {elapsed:.1f} s: " \
            f"{masters(control)}"
        time.sleep(0.1)
    return time.monotonic() - t0


def test_close_exits_the_master_at_once(testbed):
    t = SshTransport(_target(testbed))
    control = os.path.join(t.control_dir, "cm")
    try:
        assert t.run(["echo", "hi"]).stdout == "hi\n"
        (pid,) = masters(control)  # the transport runs its commands over one master
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        assert b"ControlPersist=30" in argv  # a short idle time (it was 600 s)
    finally:
        t.close()
    assert wait_gone(control, within=5) < 5  # not ControlPersist (30 s) later


_HOLDER = """
import json, sys, time
from conveyor.transport import SshTarget, SshTransport
t = SshTransport(SshTarget(**json.loads(sys.argv[1])), persist=int(sys.argv[2]))
t.run(["true"])
print(t.control_dir, flush=True)
time.sleep(600)
"""


def test_a_killed_run_leaves_the_master_only_for_the_persist_time(testbed):
    persist = 3
    target = _target(testbed)
    spec = {"host": target.host, "user": target.user, "port": target.port,
            "known_hosts": target.known_hosts, "identity": target.identity}
    proc = subprocess.Popen([sys.executable, "-c", _HOLDER, json.dumps(spec), str(persist)],
                            stdout=subprocess.PIPE, text=True, cwd=REPO)
    control_dir = ""
    try:
        assert proc.stdout is not None
        control_dir = proc.stdout.readline().strip()
        assert control_dir, "the holder connected"
        control = os.path.join(control_dir, "cm")
        assert masters(control), "the master runs while its holder lives"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        # the session's ssh client ends with its holder (its stdin closes); the master then
        # idles for ControlPersist seconds and exits by itself
        gone = wait_gone(control, within=persist + 10)
        assert gone > 0.5, "the master outlives its holder (then ControlPersist ends it)"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for pid in masters(os.path.join(control_dir, "cm")) if control_dir else []:
            os.kill(pid, signal.SIGTERM)
        if control_dir:
            shutil.rmtree(control_dir, ignore_errors=True)


def test_a_master_gone_idle_is_connected_again(testbed):
    """A master that exited after ControlPersist idle seconds (a first deploy builds the runner
    image for longer than that before its first command on the host) is connected again by
    the next command. It was an AssertionError on a fresh machine's first deploy."""
    t = SshTransport(_target(testbed), persist=1, session=False)
    control = os.path.join(t.control_dir, "cm")
    try:
        t.connect()
        assert t.connections_opened == 1
        wait_gone(control, within=60)  # idle for ControlPersist=1 s: the master exits
        assert not os.path.exists(control)
        assert t.run(["echo", "again"]).stdout == "again\n"
        assert t.connections_opened == 2
    finally:
        t.close()
