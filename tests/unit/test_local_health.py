"""steps/local_health.py: the bounded health poll of `up` and the single probe of `status`,
against an in-process HTTP server on 127.0.0.1."""

from __future__ import annotations

import http.server
import socket
import threading
from typing import ClassVar

import pytest

from conveyor.config import HealthCheck
from conveyor.errors import HealthCheckFailed
from conveyor.steps.local_health import check_health, probe


class _Health(http.server.BaseHTTPRequestHandler):
    answers: ClassVar[list[int]] = []

    def do_GET(self):
        code = self.answers.pop(0) if self.answers else 200
        self.send_response(code)
        self.end_headers()
        self.wfile.write(b'{"status": "x"}')

    def log_message(self, *args):
        pass


@pytest.fixture
def health_server():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Health)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_health_polls_until_the_expected_status(health_server):
    _Health.answers = [503, 503]
    poll = check_health(health_server + "/health", HealthCheck(timeout=10, interval=0.01))
    assert (poll.status, poll.attempts) == (200, 3)


def test_health_is_bounded(health_server):
    _Health.answers = [503] * 1000
    with pytest.raises(HealthCheckFailed, match="did not answer 200 within") as info:
        check_health(health_server + "/health", HealthCheck(timeout=0.2, interval=0.05))
    assert "HTTP 503" in str(info.value) and info.value.exit_code == 9
    _Health.answers = []


def test_status_probe_once(health_server):
    _Health.answers = [503]
    url = health_server + "/health"
    assert probe(url, 200) == {"url": url, "ok": False, "error": 'HTTP 503: {"status": "x"}'}
    assert probe(url, 200) == {"url": url, "ok": True, "status": 200}


def test_status_probe_of_an_app_that_is_down():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    got = probe(f"http://127.0.0.1:{port}/health", 200, timeout=1)
    assert got["ok"] is False and "ConnectionRefusedError" in str(got["error"])
