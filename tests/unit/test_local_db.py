"""steps/local_db.py: the readiness poll of the local database is bounded and says why."""

from __future__ import annotations

import socket

import pytest

from conveyor.errors import DatabaseNotReady
from conveyor.steps.local_db import wait_for_postgres, with_connect_timeout


def test_connect_timeout_is_added_once():
    assert with_connect_timeout("postgresql://u@h/db", 3) == "postgresql://u@h/db?connect_timeout=3"
    assert with_connect_timeout("postgresql://u@h/db?sslmode=disable", 3) == (
        "postgresql://u@h/db?sslmode=disable&connect_timeout=3")
    assert with_connect_timeout("postgresql://u@h/db?connect_timeout=9", 3) == (
        "postgresql://u@h/db?connect_timeout=9")


def test_wait_for_postgres_is_bounded_and_masks_the_password():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(DatabaseNotReady, match="did not accept connections within") as info:
        wait_for_postgres(f"postgresql://notes:s3cret-pw@127.0.0.1:{port}/notes", 0.3,
                          interval=0.05)
    assert "s3cret-pw" not in str(info.value) and "notes:***@" in str(info.value)
    assert info.value.exit_code == 7
