"""The health step: the app answers its health URL (polled from where the plan runs), and the
fallback's check that the previous version serves again. One poller: `conveyor.http`."""

from __future__ import annotations

import json
from typing import Any

from conveyor.commands import docker
from conveyor.errors import HealthCheckFailed
from conveyor.http import Poll, wait_for_http
from conveyor.plan import Step, StepIO
from conveyor.state.deploy import DeployState
from conveyor.targets.remote import Remote


def container_state(remote: Remote, name: str) -> dict[str, Any] | None:
    r = remote.transport.run(docker.inspect(name, "{{json .State}} {{.RestartCount}}"),
                             check=False, timeout=60)
    if r.returncode != 0:
        return None
    state_json, _, restarts = r.stdout.strip().rpartition(" ")
    try:
        state = json.loads(state_json)
    except ValueError:
        return None
    state["RestartCount"] = int(restarts) if restarts.isdigit() else 0
    return state


def wait_healthy(remote: Remote, timeout: float, *, watch_container: bool = True) -> Poll:
    """Poll the health URL until it answers the expected status (bounded). With
    `watch_container`, a container that exited or restarts ends the wait early."""
    hc = remote.app.health

    def alive() -> str | None:
        state = container_state(remote, remote.app_container)
        if state is None:
            return "the container is gone"
        if state.get("Status") in ("exited", "dead") or state.get("RestartCount", 0) > 0:
            return (f"the container is {state.get('Status')} (exit code {state.get('ExitCode')}, "
                    f"restarted {state.get('RestartCount', 0)} times)")
        return None

    return wait_for_http(remote.health_url, expect=hc.expect_status, timeout=timeout,
                         interval=hc.interval, alive=alive if watch_container else None)


def fallback_check(remote: Remote) -> dict[str, Any]:
    """After putting the previous version back: does it answer? (kept in the state/record)"""
    p = wait_healthy(remote, remote.app.health.timeout, watch_container=False)
    out: dict[str, Any] = {"ok": p.ok, "status": p.status, "seconds": round(p.seconds, 2),
                           "url": p.url}
    if not p.ok:
        out["error"] = p.last
    return out


def health_step(remote: Remote) -> Step[DeployState]:
    hc = remote.app.health
    url = remote.health_url

    def action(st: DeployState, io: StepIO) -> None:
        poll = wait_healthy(remote, hc.timeout)
        if poll.ok:
            io.note(poll.detail)
            return
        logs = io.run(docker.logs(remote.app_container, tail=40), check=False, timeout=60)
        for line in (logs.stdout + logs.stderr).splitlines():
            io.log(f"[{remote.app_container}] {line}")
        raise HealthCheckFailed(
            poll.detail,
            hint="the previous app container is put back; the new one is kept as "
            f"{remote.failed_container} (`conveyor logs {remote.name} app` shows its log)")

    return Step("health", action, describe=[(f"GET {url} until HTTP {hc.expect_status} "
                                            f"(every {hc.interval:g} s, at most {hc.timeout:g} s)")])
