"""The transport tests' fake master connection."""

from __future__ import annotations

import subprocess
from typing import ClassVar

import pytest


class FakeMaster:
    """`subprocess.Popen` of the master (`ssh -f ...`): connected at once, no process."""

    started: ClassVar[list[list[str]]] = []

    def __init__(self, argv, **kw):
        FakeMaster.started.append(list(argv))
        self.returncode = 0

    def wait(self, timeout=None):
        return 0

    def poll(self):
        return 0

    def kill(self):
        raise AssertionError("a connected master is not killed")


@pytest.fixture
def fake_master(monkeypatch) -> list[list[str]]:
    """No master process: `subprocess.Popen` is a FakeMaster; the argv of each one started."""
    FakeMaster.started = []
    monkeypatch.setattr(subprocess, "Popen", FakeMaster)
    return FakeMaster.started
