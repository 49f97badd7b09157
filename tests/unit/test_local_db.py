"""steps/local_db.py: the readiness poll of the local database is bounded and says why; the
engine (conveyor.migrations) reports a database that refuses connections the same way: quickly,
by type, the password masked."""

from __future__ import annotations

import socket
import time

import pytest

from conveyor.errors import DatabaseNotReady
from conveyor.migrations import ConnectionFailed, Migrator
from conveyor.steps.local_db import wait_for_postgres, with_connect_timeout


def closed_port() -> int:
    """A port of 127.0.0.1 where nothing listens (connections are refused)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_connect_timeout_is_added_once():
    assert with_connect_timeout("postgresql://u@h/db", 3) == "postgresql://u@h/db?connect_timeout=3"
    assert with_connect_timeout("postgresql://u@h/db?sslmode=disable", 3) == (
        "postgresql://u@h/db?sslmode=disable&connect_timeout=3")
    assert with_connect_timeout("postgresql://u@h/db?connect_timeout=9", 3) == (
        "postgresql://u@h/db?connect_timeout=9")


def test_wait_for_postgres_is_bounded_and_masks_the_password():
    port = closed_port()
    started = time.monotonic()
    with pytest.raises(DatabaseNotReady, match="did not accept connections within") as info:
        wait_for_postgres(f"postgresql://notes:s3cret-pw@127.0.0.1:{port}/notes", 0.3,
                          interval=0.05)
    assert time.monotonic() - started < 5
    assert "s3cret-pw" not in str(info.value) and "notes:***@" in str(info.value)
    assert "attempts" in str(info.value) and "last error:" in str(info.value)
    assert info.value.exit_code == 7


def test_the_engine_reports_a_refused_connection_quickly_and_masked(tmp_path):
    m = tmp_path / "2026-01-01-000001_create_notes"
    m.mkdir()
    (m / "up.sql").write_text("CREATE TABLE notes (id bigint);\n")
    (m / "down.sql").write_text("DROP TABLE notes;\n")
    url = with_connect_timeout(f"postgresql://notes:s3cret-pw@127.0.0.1:{closed_port()}/notes", 3)
    started = time.monotonic()
    with pytest.raises(ConnectionFailed) as info:
        Migrator(url, tmp_path, lock_timeout=1).status()
    assert time.monotonic() - started < 5
    text = str(info.value)
    assert "s3cret-pw" not in text and "notes:***@127.0.0.1:" in text
    assert "s3cret-pw" not in str(info.value.to_dict())
    assert info.value.exit_code == 1
