"""The prod stage's validation: the environment's HTTP checks (from where the plan runs) and
its validate_command (on the controller, in the project directory)."""

from __future__ import annotations

import shlex

from conveyor.errors import ValidationFailed
from conveyor.http import http_get
from conveyor.imageref import ImageRef
from conveyor.plan import Step, StepIO
from conveyor.state.deploy import DeployState, ProdOptions
from conveyor.steps.tests import Verdicts, answer, app_env, with_junit
from conveyor.targets.remote import Remote, tail


def validate_step(remote: Remote, opts: ProdOptions, deployment_id: str,
                  image: ImageRef, verdicts: Verdicts | None = None) -> Step[DeployState]:
    checks = list(remote.env.checks)
    command = with_junit(list(remote.env.validate_command), opts.junit) if opts.validate else []
    env = app_env(remote, deployment_id, image)
    request = {"kind": "command", "argv": command, "env": env,
               "project_dir": str(opts.project_dir), "timeout": remote.env.test_timeout}

    def action(st: DeployState, io: StepIO) -> None:
        failures = []
        for c in checks:
            url = remote.url + c.path
            status, body = http_get(url, timeout=10.0)
            ok = status == c.status and (c.contains is None or c.contains in body)
            io.log(f"GET {url} -> {status if status else body}"
                   + (f" (expected {c.status}" + (f" containing {c.contains!r}" if c.contains
                                                   else "") + ")" if not ok else " ok"))
            if not ok:
                failures.append(f"GET {c.path} answered {status or body}"
                                + (f", expected {c.status}" if status != c.status else
                                   f" without {c.contains!r}"))
        rc = None
        if command and not failures:
            reply = (verdicts.ask("validate", request, io) if verdicts is not None
                     else answer(request, io.log))
            rc = int(reply["rc"])
            if reply.get("error"):
                failures.append(str(reply["error"]))
            elif rc != 0:
                failures.append(f"`{shlex.join(command)}` exited {rc}: "
                                f"{tail(chr(10).join(io.output), 3)}")
        st.validation = {"ok": not failures, "checks": len(checks),
                         "command": shlex.join(command) if command else None, "exit_code": rc}
        if failures:
            raise ValidationFailed(
                f"the validation of {remote.name} failed: " + "; ".join(failures),
                hint="the previous version is started again; what serves and what the database "
                "holds: above")
        parts = [f"{len(checks)} HTTP check(s) passed"] if checks else []
        if command:
            parts.append(f"`{shlex.join(command)}` passed")
        io.note("; ".join(parts) or "nothing to validate (no checks, no validate_command)")

    describe = [f"GET {remote.url}{c.path} -> HTTP {c.status}"
                + (f" containing {c.contains!r}" if c.contains else "") for c in checks]
    if command:
        describe.append(f"APP_URL={remote.url} {shlex.join(command)}   (locally, in "
                        f"{opts.project_dir})")
    return Step("validate", action, describe=describe or ["(nothing configured)"],
                writes=("validation",))
