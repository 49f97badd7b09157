"""steps/docker_engine.py: engine and Compose detection (through a fake transport), and the
one-line error when no engine answers."""

from __future__ import annotations

import pytest

from conveyor.commands import compose as composecmd
from conveyor.errors import DockerUnavailable
from conveyor.steps import docker_engine
from conveyor.steps.docker_engine import check_docker, docker_unavailable
from conveyor.transport import Result, Transport


class FakeTransport(Transport):
    def __init__(self, answers):
        self.answers = answers
        self.calls = []

    def run(self, argv, *, input=None, timeout=None, check=True, stream=None, env=None):
        argv = tuple(argv)
        self.calls.append(argv)
        rc, out, err = self.answers.get(argv[:3], (0, "", ""))
        return Result(argv, rc, out, err, 0.0)


def test_check_docker_detects_v1_when_the_plugin_is_missing(monkeypatch):
    monkeypatch.delenv("CONVEYOR_COMPOSE", raising=False)
    monkeypatch.setattr(docker_engine.shutil, "which", lambda name: "/usr/bin/docker-compose")
    fake = FakeTransport({("docker", "info", "--format"): (0, "20.10.24\n", ""),
                          ("docker", "compose", "version"): (1, "", "unknown command")})
    assert check_docker(fake.run) == ("20.10.24", composecmd.v1("/usr/bin/docker-compose"))
    assert sorted(fake.calls) == sorted([("docker", "info", "--format", "{{.ServerVersion}}"),
                                         ("docker", "compose", "version", "--short")])


def test_check_docker_without_an_engine():
    fake = FakeTransport({("docker", "info", "--format"): (
        1, "", ("Cannot connect to the Docker daemon at unix:///x.sock. Is the docker daemon "
        "running?\n"))})
    with pytest.raises(DockerUnavailable) as info:
        check_docker(fake.run)
    assert "\n" not in str(info.value) and "scripts/testbed up" in str(info.value)


def test_no_docker_engine_is_one_line_naming_both_ways_out():
    err = docker_unavailable(
        "Cannot connect to the Docker daemon at unix:///var/run/docker.sock. "
        "Is the docker daemon running?\n", docker_host="unix:///var/run/docker.sock")
    text = str(err)
    assert "\n" not in text and err.hint is None
    assert "no Docker engine answers at unix:///var/run/docker.sock" in text
    assert "start your Docker engine" in text
    assert 'scripts/testbed up && eval "$(scripts/testbed env)"' in text
    assert err.exit_code == 3
