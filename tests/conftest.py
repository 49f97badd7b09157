"""Shared fixtures. Services are real; when one cannot be started, tests fail loudly (no skips)."""

from __future__ import annotations

import pytest

from tests.support import pgserver


@pytest.fixture(scope="session")
def pg_server():
    """A private PostgreSQL 15 server on 127.0.0.1 for this test session."""
    try:
        server = pgserver.start_server()
    except pgserver.PgServerError as exc:  # pragma: no cover - environment failure
        pytest.fail(f"cannot start the test PostgreSQL server: {exc}", pytrace=False)
    yield server
    pgserver.cleanup(server)


@pytest.fixture
def pg_url(pg_server, request):
    """URL of a fresh, empty database on the session's server (one per test)."""
    name = "t_" + "".join(c if c.isalnum() else "_" for c in request.node.name)[:50].lower()
    return pg_server.createdb(name)


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    """Skips are loud: list each one; under CI a skip fails the run (a missing service must
    never turn into a green build)."""
    skipped = terminalreporter.stats.get("skipped", [])
    if not skipped:
        return
    terminalreporter.section("SKIPPED TESTS (each one is a gap in what this run proves)", red=True)
    for rep in skipped:
        reason = rep.longrepr[2] if isinstance(rep.longrepr, tuple) else str(rep.longrepr)
        terminalreporter.write_line(f"SKIPPED {rep.nodeid}: {reason}", red=True)


def pytest_sessionfinish(session, exitstatus):
    import os

    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = reporter.stats.get("skipped", []) if reporter else []
    if skipped and os.environ.get("CI") and os.environ.get("CONVEYOR_ALLOW_SKIPS") != "1":
        session.exitstatus = 1
