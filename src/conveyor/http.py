"""The one HTTP poller: GET a URL until it answers the expected status, bounded in time.

Used by every health check (local `up`, `status`, the dev and prod health steps, the fallback
after a failed deploy). `alive` is asked every few seconds whether waiting still makes sense
(for example: the container exited); a reason ends the wait early.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

USER_AGENT = "conveyor"


def http_get(url: str, timeout: float) -> tuple[int | None, str]:
    """(status, first 2 kB of the body) or (None, what went wrong)."""
    import http.client  # here, not at the top: it loads ssl, and the controller and the runner
    # import this module on their way to the first step (15-20 ms each); the first poll of a
    # health check waits for the app to start anyway

    parts = urlsplit(url)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    cls = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    conn = cls(parts.hostname or "127.0.0.1", parts.port, timeout=timeout)
    try:
        conn.request("GET", path, headers={"User-Agent": USER_AGENT})
        resp = conn.getresponse()
        return resp.status, resp.read(2048).decode(errors="replace")
    except (OSError, http.client.HTTPException, ValueError) as exc:
        return None, f"{type(exc).__name__}: {exc}"
    finally:
        conn.close()


@dataclass(frozen=True)
class Poll:
    """How a wait ended."""

    ok: bool
    url: str
    status: int | None
    attempts: int
    seconds: float
    last: str  # the last answer ("HTTP 503: ..." or the connection error), or "" when ok
    expect: int = 200
    timeout: float = 0.0
    stopped: str | None = None  # why `alive` ended the wait early

    @property
    def detail(self) -> str:
        if self.ok:
            return f"{self.url} answered {self.status} after {self.seconds:.2f}s"
        if self.stopped:
            return (f"{self.url} did not answer {self.expect}: {self.stopped}; last answer: "
                    f"{self.last}")
        return (f"{self.url} did not answer {self.expect} within {self.timeout:g} s "
                f"({self.attempts} attempts); last answer: {self.last}")


def wait_for_http(url: str, *, expect: int = 200, timeout: float, interval: float = 0.25,
                  request_timeout: float = 5.0, alive: Callable[[], str | None] | None = None,
                  alive_every: float = 3.0,
                  clock: Callable[[], float] = time.monotonic) -> Poll:
    """Poll until `url` answers `expect` or `timeout` seconds pass (at least one attempt)."""
    t0 = clock()
    deadline = t0 + timeout
    next_alive = t0 + min(2.0, alive_every)
    attempts = 0
    last = "no answer"
    while True:
        attempts += 1
        status, body = http_get(url, max(0.5, min(request_timeout, deadline - clock())))
        if status == expect:
            return Poll(True, url, status, attempts, clock() - t0, "", expect, timeout)
        last = f"HTTP {status}: {' '.join(body.split())[:200]}" if status else body
        now = clock()
        if now >= deadline:
            return Poll(False, url, status, attempts, now - t0, last, expect, timeout)
        if alive is not None and now >= next_alive:
            next_alive = now + alive_every
            reason = alive()
            if reason:
                return Poll(False, url, status, attempts, now - t0, last, expect, timeout,
                            stopped=reason)
        time.sleep(min(interval, max(0.0, deadline - now)))
