"""Fixtures for the notes HTTP tests: they talk to a running app over HTTP only.

Environment:
    APP_URL               base URL of the running app (default http://127.0.0.1:8000)
    APP_WAIT_SECONDS      how long to wait for APP_URL to accept connections (default 15)
    APP_EXPECTED_VERSION  if set, /health must report exactly this version

If APP_URL cannot be reached, every test fails (never skips) with a message that
says so: a deployment whose app is unreachable must not pass validation.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator

import httpx
import pytest

DEFAULT_APP_URL = "http://127.0.0.1:8000"


def _app_url() -> str:
    return (os.environ.get("APP_URL") or DEFAULT_APP_URL).rstrip("/")


def _wait_reachable(url: str, wait_seconds: float) -> str | None:
    """Return None once url/health answers at all (any status), else the last error."""
    deadline = time.monotonic() + wait_seconds
    last = "no attempt made"
    while True:
        try:
            httpx.get(f"{url}/health", timeout=5.0)
            return None
        except httpx.HTTPError as exc:
            last = f"{type(exc).__name__}: {exc}"
        if time.monotonic() >= deadline:
            return last
        time.sleep(0.5)


@pytest.fixture(scope="session")
def app_url() -> str:
    return _app_url()


@pytest.fixture(scope="session", autouse=True)
def _require_reachable_app(app_url: str) -> None:
    wait = float(os.environ.get("APP_WAIT_SECONDS", "15"))
    error = _wait_reachable(app_url, wait)
    if error is not None:
        pytest.fail(
            f"notes app not reachable at APP_URL={app_url} (waited {wait:g}s): {error}. "
            "Start the app (e.g. docker-compose up -d) and set APP_URL to its address.",
            pytrace=False,
        )


@pytest.fixture(scope="session")
def client(app_url: str, _require_reachable_app: None) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=app_url, timeout=10.0) as c:
        yield c


@pytest.fixture
def unique_title() -> str:
    return f"conveyor-test {uuid.uuid4()}"


@pytest.fixture
def created_notes(client: httpx.Client) -> Iterator[list[int]]:
    """Ids appended here are deleted after the test (tests may run against prod)."""
    ids: list[int] = []
    yield ids
    for note_id in ids:
        client.delete(f"/notes/{note_id}")
