"""Fixtures for tests on the test bed (scripts/testbed). Keep this file small: helpers live in
tests/testbed.py."""

from __future__ import annotations

import pytest

from tests.testbed import testbed_up


@pytest.fixture(scope="session")
def testbed() -> dict:
    """The running test bed's `scripts/testbed status` JSON; brings it up first (fails, never
    skips, when it cannot come up)."""
    return testbed_up()
