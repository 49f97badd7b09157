"""The health step: a bounded poll of the app's health URL (`conveyor.http.wait_for_http`)."""

from __future__ import annotations

from conveyor.config import HealthCheck
from conveyor.errors import HealthCheckFailed
from conveyor.http import Poll, http_get, wait_for_http
from conveyor.plan import StepIO
from conveyor.state.local import LocalState

READS = ()
WRITES = ()
PROBE_TIMEOUT = 3.0  # seconds for the single probe of `conveyor status`


def check_health(url: str, health: HealthCheck) -> Poll:
    """Poll `url` until it answers the expected status; HealthCheckFailed after the timeout."""
    poll = wait_for_http(url, expect=health.expect_status, timeout=health.timeout,
                         interval=health.interval)
    if not poll.ok:
        raise HealthCheckFailed(
            f"{url} did not answer {health.expect_status} within {health.timeout:g} s "
            f"({poll.attempts} attempts); last answer: {poll.last}",
            hint="see the app container's log above (`conveyor logs app`); [app.health] "
            "sets the path and the timeout")
    return poll


def probe(url: str, expect: int, timeout: float = PROBE_TIMEOUT) -> dict[str, object]:
    """One GET (for `conveyor status`): {"url", "ok", "status"} or {"url", "ok", "error"}."""
    status, body = http_get(url, timeout)
    if status == expect:
        return {"url": url, "ok": True, "status": status}
    error = f"HTTP {status}: {' '.join(body.split())[:200]}" if status else body
    return {"url": url, "ok": False, "error": error}


def health(state: LocalState, io: StepIO) -> None:
    h = state.target.cfg.app.health
    poll = check_health(state.target.health_url, h)
    io.note(f"GET {h.path} -> {poll.status}"
            + (f" after {poll.attempts} attempts" if poll.attempts > 1 else ""))
