"""steps/compose_file.py: what `compose config` depends on (its cache key), the services the
local stage needs, and the step through a fake transport."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conveyor.commands import compose as composecmd
from conveyor.config import load_config
from conveyor.errors import ComposeFailed, ConfigError
from conveyor.plan import StepIO
from conveyor.state.local import LocalState
from conveyor.steps.compose_file import check_services, compose_file, compose_inputs
from conveyor.targets.local import open_stack
from conveyor.transport import Result, Transport

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "notes"


@pytest.fixture
def stack(monkeypatch, tmp_path):
    monkeypatch.setenv("COMPOSE_PROJECT_NAME", "cvunit")
    monkeypatch.setenv("CONVEYOR_CACHE_DIR", str(tmp_path / "cache"))
    return open_stack(load_config(EXAMPLE))


def test_services_must_include_app_and_db_with_an_app_image(stack):
    with pytest.raises(ConfigError, match="no service 'app'"):
        check_services(stack, {"web": "x", "db": "y"})
    with pytest.raises(ConfigError, match="has no `image:`"):
        check_services(stack, {"app": None, "db": "y"})
    check_services(stack, {"app": "notes:local", "db": "postgres:15"})


def test_compose_inputs_follow_what_compose_reads(tmp_path):
    f = tmp_path / "docker-compose.yml"
    f.write_text("services:\n  app:\n    image: x:${TAG:-1}\n")
    env = {"TAG": "1", "UNRELATED": "a"}
    k0, texts = compose_inputs([str(f)], env, "v1", "p")
    assert texts == [f.read_text()]
    assert compose_inputs([str(f)], {**env, "UNRELATED": "b"}, "v1", "p")[0] == k0
    assert compose_inputs([str(f)], {**env, "TAG": "2"}, "v1", "p")[0] != k0
    assert compose_inputs([str(f)], {**env, "COMPOSE_PROFILES": "x"}, "v1", "p")[0] != k0
    assert compose_inputs([str(f)], env, "v2", "p")[0] != k0
    assert compose_inputs([str(f)], env, "v1", "q")[0] != k0
    (tmp_path / ".env").write_text("TAG=3\n")
    assert compose_inputs([str(f)], env, "v1", "p")[0] != k0


class ComposeConfig(Transport):
    def __init__(self, rc: int, stdout: str, stderr: str = "") -> None:
        self.answer = (rc, stdout, stderr)
        self.calls: list[tuple[str, ...]] = []

    def run(self, argv, *, input=None, timeout=None, check=True, stream=None, env=None):
        self.calls.append(tuple(argv))
        return Result(tuple(argv), *self.answer, 0.0)


def test_the_step_reads_the_services_once_then_from_the_cache(stack):
    text = json.dumps({"services": {"app": {"image": "notes:local"}, "db": {"image": "pg"}}})
    engine = ComposeConfig(0, text)
    state = LocalState(stack, compose=composecmd.V2)
    compose_file(state, StepIO("compose file", engine))
    assert engine.calls == [("docker", "compose", "--project-name", "cvunit", "--file",
                             str(EXAMPLE / "docker-compose.yml"), "config", "--format", "json")]
    assert (state.services, state.app_image, state.services_cached) == (
        {"app": "notes:local", "db": "pg"}, "notes:local", False)
    again = LocalState(stack, compose=composecmd.V2)
    compose_file(again, StepIO("compose file", engine))
    assert len(engine.calls) == 1 and again.services_cached is True


def test_a_compose_file_compose_cannot_read_fails_the_step(stack):
    state = LocalState(stack, compose=composecmd.V2)
    with pytest.raises(ComposeFailed, match="services.app.ports must be a list"):
        compose_file(state, StepIO("compose file",
                                   ComposeConfig(15, "", "services.app.ports must be a list\n")))
