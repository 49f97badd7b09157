"""Helpers for tests that need the test bed (scripts/testbed): a Docker engine, a registry on
127.0.0.1:5000 and two SSH "VMs" (dev on 127.0.1.1, prod on 127.0.2.1), each with its own engine.

    from tests.testbed import testbed_up, ssh_argv, vm_docker_env, testbed_labels

`testbed_up()` runs `scripts/testbed up` once per session and returns the parsed
`scripts/testbed status` JSON. When the bed cannot come up it FAILS the test (never skips),
with the tail of the script's output, which names the step and the relevant log.

The `testbed` fixture itself is defined in tests/integration/conftest.py and tests/e2e/conftest.py.

Label everything a test creates with `testbed_labels()` / `label_args()` (conveyor.test=1 plus
the owner PID): the next `scripts/testbed up` removes labelled leftovers, except those of a
session that is still running.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
TESTBED = REPO_ROOT / "scripts" / "testbed"

TEST_LABEL = "conveyor.test"
OWNER_LABEL = "conveyor.test.owner"

_UP_TIMEOUT = 30 * 60  # a cold bed builds two base images: a few minutes, normally

_session_status: dict | None = None
_session_failure: str | None = None  # a failed `up` is not retried by every test of the session


def _tail(text: str, lines: int = 60) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


def testbed_status() -> dict:
    """The parsed `scripts/testbed status` (whether or not everything is up)."""
    proc = subprocess.run(
        [sys.executable, str(TESTBED), "status"],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
    )
    try:
        return json.loads(proc.stdout)
    except ValueError:
        pytest.fail(
            f"scripts/testbed status printed no JSON (exit {proc.returncode}):\n"
            f"{_tail(proc.stdout)}\n{_tail(proc.stderr)}",
            pytrace=False,
        )


def testbed_up() -> dict:
    """Bring the bed up (once per session) and return its status. Fails loudly, never skips."""
    global _session_status, _session_failure
    if _session_status is not None:
        return _session_status
    if _session_failure is not None:
        pytest.fail(_session_failure, pytrace=False)
    try:
        proc = subprocess.run(
            [sys.executable, str(TESTBED), "up"],
            check=False,
            capture_output=True,
            text=True,
            timeout=_UP_TIMEOUT,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired as exc:
        pytest.fail(
            f"scripts/testbed up did not finish in {_UP_TIMEOUT}s:\n{_tail(str(exc.stderr or ''))}",
            pytrace=False,
        )
    except OSError as exc:
        pytest.fail(f"cannot run {TESTBED}: {exc}", pytrace=False)
    if proc.returncode != 0:
        _session_failure = (
            f"the test bed did not come up (scripts/testbed up exited {proc.returncode}):\n"
            f"{_tail(proc.stderr)}"
        )
        pytest.fail(_session_failure, pytrace=False)
    status = testbed_status()
    if not status.get("up"):
        _session_failure = (
            "scripts/testbed up succeeded but status says not everything is up:\n"
            + json.dumps(status, indent=2)
        )
        pytest.fail(_session_failure, pytrace=False)
    _session_status = status
    return status


def _status() -> dict:
    return _session_status if _session_status is not None else testbed_status()


def _vm(vm: str) -> dict:
    vms = _status()["vms"]
    if vm not in vms:
        raise KeyError(f"no VM {vm!r} in the test bed (have: {', '.join(vms)})")
    return vms[vm]


def ssh_argv(vm: str, *argv: str) -> list[str]:
    """ssh argv that runs `argv` as root on a VM ("dev" or "prod"), host key checking on.

    Each word of argv is shell-quoted for the remote shell, so argv semantics hold:
    ssh_argv("prod", "docker", "run", "--name", "x", ...). With no argv: an interactive login
    argv (useful as a prefix). The remote session's DOCKER_HOST is that VM's own engine.
    """
    st = _status()
    info = _vm(vm)
    out = [
        "ssh",
        "-i",
        st["ssh_key"],
        "-o",
        f"UserKnownHostsFile={st['known_hosts']}",
        "-o",
        "StrictHostKeyChecking=yes",
        "-o",
        "IdentitiesOnly=yes",
        "-o",
        "BatchMode=yes",
        "-o",
        "ConnectTimeout=10",
        "-p",
        str(info.get("ssh_port", 22)),
        f"root@{info['address']}",
    ]
    if argv:
        out += ["--", " ".join(shlex.quote(a) for a in argv)]
    return out


def vm_docker_env(vm: str, base: dict[str, str] | None = None) -> dict[str, str]:
    """Environment for running the docker CLI on this machine against a VM's own engine."""
    env = dict(os.environ if base is None else base)
    env.pop("DOCKER_CONTEXT", None)
    env["DOCKER_HOST"] = _vm(vm)["docker_host"]
    return env


def main_docker_env(base: dict[str, str] | None = None) -> dict[str, str]:
    """Environment for the docker CLI against the main engine (where images are built)."""
    env = dict(os.environ if base is None else base)
    env.pop("DOCKER_CONTEXT", None)
    env["DOCKER_HOST"] = _status()["engine"]["docker_host"]
    return env


def testbed_env() -> dict[str, str]:
    """The variables of `scripts/testbed env` (BASE_PYTHON_IMAGE, CONVEYOR_PROD_HOST, ...)."""
    proc = subprocess.run(
        [sys.executable, str(TESTBED), "env"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    env = {}
    for line in proc.stdout.splitlines():
        if line.startswith("export "):
            name, _, value = line[len("export ") :].partition("=")
            env[name] = shlex.split(value)[0] if value else ""
    return env


def testbed_labels() -> dict[str, str]:
    """Labels for anything a test creates on an engine (containers, networks, volumes, images)."""
    return {TEST_LABEL: "1", OWNER_LABEL: str(os.getpid())}


def label_args() -> list[str]:
    """`--label k=v` arguments for docker commands, from testbed_labels()."""
    return [a for k, v in testbed_labels().items() for a in ("--label", f"{k}={v}")]


# Names starting with "test" are collected by pytest where they are imported: these are not tests.
for _f in (testbed_up, testbed_status, testbed_env, testbed_labels):
    _f.__test__ = False  # type: ignore[attr-defined]
