"""The engine connects in a thread while it reads the migrations: a discovery error still wins
and the connection is closed; a connection error is raised in the caller's thread."""

from __future__ import annotations

import threading
import time

import pytest

from conveyor.migrations import connecting, engine, pq
from conveyor.migrations.errors import ConnectionFailed, DiscoveryError


class FakeConn:
    def __init__(self) -> None:
        self.closed = False
        self.notices: list[str] = []

    def close(self) -> None:
        self.closed = True


def test_discovery_error_wins_and_the_connection_is_closed(tmp_path, monkeypatch):
    made: list[FakeConn] = []
    release = threading.Event()

    def connect(conninfo):
        release.wait(5)  # still connecting when discovery fails
        made.append(FakeConn())
        return made[-1]

    monkeypatch.setattr(pq, "connect", connect)
    (tmp_path / "1_empty").mkdir()
    m = engine.Migrator("postgresql://u@h/d", tmp_path)
    with pytest.raises(DiscoveryError):
        m.run()
    release.set()
    deadline = time.monotonic() + 5
    while not (made and made[0].closed) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert made and made[0].closed


def test_connection_error_is_raised_by_the_caller(tmp_path, monkeypatch):
    def connect(conninfo):
        raise pq.ConnectError("connection refused")

    monkeypatch.setattr(pq, "connect", connect)
    (tmp_path / "1_a").mkdir()
    (tmp_path / "1_a" / "up.sql").write_text("SELECT 1;\n")
    with pytest.raises(ConnectionFailed, match="connection refused"):
        engine.Migrator("postgresql://u:secret@h/d", tmp_path).status()


def test_result_returns_the_connection_once_made(monkeypatch):
    conn = FakeConn()
    monkeypatch.setattr(pq, "connect", lambda conninfo: conn)
    c = connecting.Connecting("x")
    assert c.result() is conn and not conn.closed
    c2 = connecting.Connecting("x")
    c2.result()
    c2.abandon()
    assert conn.closed
