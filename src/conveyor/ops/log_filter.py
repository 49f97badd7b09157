"""What `conveyor logs` shows of a container's log: a header naming the container, its image and
its deployment, and every line except the health probes' (the runner's and the HEALTHCHECK's
GETs of the health path), unless `--all`."""

from __future__ import annotations

import json
import re
from collections import deque
from collections.abc import Callable


def probe_pattern(health_path: str) -> re.Pattern[str]:
    """An access-log line of a GET of the health path: uvicorn's `"GET /health HTTP/1.1" 200`,
    a plain `GET /health 200 1.2ms`, with or without a query string."""
    path = re.escape(health_path or "/health")
    return re.compile(rf'"?(?:GET|HEAD) {path}(?:\?[^\s"]*)?(?: HTTP/[\d.]+"?)? \d{{3}}\b')


#: with probes left out and `--tail N`, the log's last LOOKBACK * N lines are read, so that N
#: lines remain after the probes (a probe every few seconds outnumbers the app's own lines)
LOOKBACK = 50


_STAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?Z")


def by_time(lines: list[str]) -> list[str]:
    """Lines of `logs --timestamps` in time order: the container's stdout and stderr arrive as
    two streams, each in order, interleaved as they come. A line without a stamp stays after
    the one before it."""
    keyed, last = [], ""
    for n, line in enumerate(lines):
        m = _STAMP.search(line)
        if m:
            last = m.group(0)
        # the fractional seconds have no fixed width: compare them as a number
        whole, _, frac = last.rstrip("Z").partition(".")
        keyed.append(((whole, float("0." + (frac or "0"))), n, line))
    return [line for _, _, line in sorted(keyed)]


class ProbeFilter:
    """Passes lines on to `write`, leaving the health probes out (counted). Unless following,
    the kept lines are held (only the last `tail`), then written in time order at `flush()`."""

    def __init__(self, health_path: str, write: Callable[[str], None], *,
                 keep_all: bool = False, tail: int | None = None, follow: bool = False
                 ) -> None:
        self.pattern = None if keep_all else probe_pattern(health_path)
        self.write = write
        self.left_out = 0
        self.tail = tail
        self.follow = follow
        self.held: deque[str] | None = None if follow else deque(maxlen=tail)

    def read_tail(self) -> int | None:
        """How many lines to ask the log for, to show `tail` after the probes are left out
        (following: the backlog is docker's own --tail)."""
        if self.tail is None or self.pattern is None or self.follow:
            return self.tail
        return max(self.tail * LOOKBACK, 1000)

    def __call__(self, line: str) -> None:
        if self.pattern is not None and self.pattern.search(line):
            self.left_out += 1
            return
        if self.held is not None:
            self.held.append(line)
        else:
            self.write(line)

    def flush(self) -> None:
        if self.held:
            for line in by_time(list(self.held)):
                self.write(line)
            self.held.clear()

    def note(self) -> str | None:
        if not self.left_out:
            return None
        return (f"({self.left_out} health-probe line{'s' if self.left_out != 1 else ''} left "
                "out; --all shows them)")


#: `docker inspect` of what the header names (one JSON line)
HEADER_FORMAT = ("[{{json .Name}},{{json .Config.Image}},{{json .Config.Labels}},"
                 "{{json .State.Status}},{{json .State.StartedAt}}]")


def header_line(inspected: str, fallback_name: str) -> str:
    """`# notes-dev-app: image R@sha256:…, revision abc123…, deployment 2026…, running since …`
    from HEADER_FORMAT's output (the container's own name if it cannot be read)."""
    try:
        name, image, labels, state, started = json.loads(inspected.strip().splitlines()[0])
    except (ValueError, TypeError, IndexError):
        return f"# {fallback_name}"
    labels = labels or {}
    words: list[str] = [f"image {labels.get('conveyor.image') or image}"]
    revision = labels.get("org.opencontainers.image.revision")
    if revision:
        words.append(f"revision {revision[:12]}")
    if labels.get("conveyor.deployment"):
        words.append(f"deployment {labels['conveyor.deployment']}")
    if state:
        words.append(f"{state} since {started}" if started else str(state))
    return f"# {str(name).lstrip('/')}: " + ", ".join(words)
