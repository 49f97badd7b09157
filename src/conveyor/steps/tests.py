"""The dev stage's test step: the environment's test command, run where the plan's controller
is (the project directory), against the deployed app; JUnit XML and counts."""

from __future__ import annotations

import os
import shlex
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from conveyor.errors import ConveyorError
from conveyor.imageref import ImageRef
from conveyor.plan import Step, StepIO
from conveyor.state.deploy import DeployState
from conveyor.targets.remote import Remote
from conveyor.transport import LocalTransport


def is_pytest(argv: list[str]) -> bool:
    if not argv:
        return False
    first = os.path.basename(argv[0])
    return first in ("pytest", "py.test") or (
        first.startswith("python") and len(argv) > 2 and argv[1] == "-m" and argv[2] == "pytest")


def with_junit(argv: list[str], junit: Path | None) -> list[str]:
    """pytest writes the JUnit file itself; other commands get one written for them."""
    return [*argv, f"--junitxml={junit}"] if junit is not None and is_pytest(argv) else argv


def test_command(remote: Remote, junit: Path | None) -> list[str]:
    return with_junit(list(remote.env.test_command), junit)


test_command.__test__ = False  # type: ignore[attr-defined]  # not a pytest test


def app_env(remote: Remote, deployment_id: str, image: ImageRef) -> dict[str, str]:
    """What the tests (and prod's validate_command) get to find the deployed app."""
    return {"APP_URL": remote.url, "CONVEYOR_ENV": remote.name,
            "CONVEYOR_DEPLOYMENT": deployment_id, "CONVEYOR_IMAGE": image.ref}


class Verdicts(Protocol):
    """Where a step asks the controller (the conveyor process on a laptop or CI runner) to run
    a command in the project directory and answer with its verdict. A runner on the host has
    one; a plan that runs in the controller itself runs the command directly (`answer`)."""

    def ask(self, step: str, request: dict[str, Any], io: StepIO) -> dict[str, Any]: ...


def run_local(argv: list[str], project_dir: Path, env: dict[str, str],
              log: Callable[[str], None], timeout: float | None) -> int:
    """Run a command on this machine in the project directory; its exit code (127: not found)."""
    try:
        r = LocalTransport(cwd=project_dir).run(argv, env=env, check=False, stream=log,
                                                timeout=timeout)
        return r.returncode
    except ConveyorError as exc:  # not found, timed out
        log(str(exc))
        return 127


def answer(request: dict[str, Any], log: Callable[[str], None]) -> dict[str, Any]:
    """Run a verdict request here (the controller): the tests (with their JUnit file) or a
    validation command. The reply carries the exit code, the output and the test counts."""
    argv = list(request["argv"])
    output: list[str] = []

    def sink(line: str) -> None:
        output.append(line)
        log(line)

    t0 = time.monotonic()
    rc = run_local(argv, Path(request["project_dir"]), dict(request["env"]), sink,
                   request.get("timeout"))
    duration = time.monotonic() - t0
    reply: dict[str, Any] = {"rc": rc, "output": output[-400:], "duration": duration}
    junit = Path(request["junit"]) if request.get("junit") else None
    if request.get("kind") == "tests" and junit is not None:
        if not is_pytest(argv):
            write_command_junit(junit, argv, rc, output, duration, suite=request["suite"])
        if junit.exists():
            reply["summary"] = junit_summary(junit)
    return reply


def tests_step(remote: Remote, project_dir: Path, *, junit: Path | None,
               deployment_id: str, image: ImageRef,
               verdicts: Verdicts | None = None) -> Step[DeployState]:
    argv = test_command(remote, junit)
    env = app_env(remote, deployment_id, image)
    request = {"kind": "tests", "argv": argv, "env": env, "project_dir": str(project_dir),
               "junit": str(junit) if junit is not None else None,
               "timeout": remote.env.test_timeout, "suite": remote.name}

    def action(st: DeployState, io: StepIO) -> None:
        reply = (verdicts.ask("test", request, io) if verdicts is not None
                 else answer(request, io.log))
        rc = int(reply["rc"])
        summary = reply.get("summary")
        tests: dict[str, Any] = {"ok": rc == 0, "exit_code": rc, "command": shlex.join(argv),
                                 **(summary or {})}
        if reply.get("error"):
            tests["error"] = reply["error"]
        st.tests = tests
        counts = ", ".join(f"{tests[k]} {k}" for k in ("passed", "failed", "errors", "skipped")
                           if tests.get(k))
        if rc != 0:
            st.tests_failed = True
            io.note(f"FAILED (exit {rc}{'; ' + counts if counts else ''})")
        else:
            io.note(counts or "passed")

    return Step("test", action, describe=[
        f"APP_URL={remote.url} " + shlex.join(argv) + f"   (locally, in {project_dir})"],
        writes=("tests", "tests_failed"))


def junit_summary(path: Path) -> dict[str, Any] | None:
    try:
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError):
        return None
    suites = [root] if root.tag == "testsuite" else list(root.iter("testsuite"))
    total = failures = errors = skipped = 0
    cases = []
    for s in suites:
        total += int(s.get("tests", 0))
        failures += int(s.get("failures", 0))
        errors += int(s.get("errors", 0))
        skipped += int(s.get("skipped", 0))
        cases += [f"{c.get('classname')}.{c.get('name')}" for c in s.iter("testcase")]
    return {"tests": total, "passed": total - failures - errors - skipped, "failed": failures,
            "errors": errors, "skipped": skipped, "cases": cases}


def write_command_junit(path: Path, argv: list[str], rc: int, output: list[str],
                        duration: float, suite: str) -> None:
    """A JUnit file for a test command that is not pytest: one case, the command itself."""
    ts = ET.Element("testsuite", name=f"conveyor {suite}", tests="1",
                    failures="0" if rc == 0 else "1", errors="0", skipped="0",
                    time=f"{duration:.3f}")
    case = ET.SubElement(ts, "testcase", classname=f"conveyor.{suite}", name=shlex.join(argv),
                         time=f"{duration:.3f}")
    text = "\n".join(output[-200:])
    if rc != 0:
        ET.SubElement(case, "failure", message=f"exit code {rc}").text = text
    ET.SubElement(case, "system-out").text = text
    path.parent.mkdir(parents=True, exist_ok=True)
    root = ET.Element("testsuites")
    root.append(ts)
    ET.ElementTree(root).write(path, encoding="utf-8", xml_declaration=True)
