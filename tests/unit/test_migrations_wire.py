"""conveyor.migrations.wire.literal: its shortcut quotes exactly as psycopg does."""

from __future__ import annotations

import pytest
from psycopg import sql

from conveyor.migrations.wire import literal


@pytest.mark.parametrize("value", [
    "20240101000001", "2024-01-01-000001_create_users", "", "a b", "café ünïcode",
    "4408e50392a6cfae12b4cf7d0fa25a066ba2bbb6afe493b02b67f926a520c914", "conveyor:ab12:3:end",
    "it's", "back\\slash", "both ' and \\", "user@host", "tab\tnewline\n", 42, None, 1.5,
])
def test_literal_is_psycopgs(value):
    assert literal(None, value) == sql.Literal(value).as_string(None)  # type: ignore[arg-type]


def test_nul_goes_to_psycopg_which_refuses_it():
    with pytest.raises(Exception):  # noqa: B017 - psycopg's DataError (or ValueError)
        literal(None, "a\0b")  # type: ignore[arg-type]
