"""steps/local_image.py: the base images of a Dockerfile, pull failures that name the option
to change, the image step's decision to build (through a fake transport)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from conveyor.config import load_config
from conveyor.errors import ImageUnavailable
from conveyor.plan import StepIO
from conveyor.state.local import LocalState
from conveyor.steps import local_image
from conveyor.steps.build_inputs import inputs_hash
from conveyor.steps.local_image import base_image_error, base_images, is_pull_failure
from conveyor.targets.local import open_stack
from conveyor.transport import Result, Transport

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "notes"


def test_base_images_resolve_build_args_and_skip_stages():
    text = ("ARG BASE_IMAGE=python:3.12-slim\nARG TAG\nFROM ${BASE_IMAGE} AS build\nRUN x\n"
            "FROM build\nFROM --platform=linux/amd64 debian:${TAG:-bookworm}\nFROM scratch\n")
    assert base_images(text, {}) == [("python:3.12-slim", "BASE_IMAGE"),
                                     ("debian:bookworm", "TAG")]
    assert base_images(text, {"BASE_IMAGE": "conveyor-base/python:bookworm"})[0] == (
        "conveyor-base/python:bookworm", "BASE_IMAGE")


LEGACY_PULL_FAILURE = """Sending build context to Docker daemon  2.048kB
Step 1/3 : ARG BASE_IMAGE=python:3.12-slim
Step 2/3 : FROM ${BASE_IMAGE}
Get "https://registry-1.docker.io/v2/": dial tcp: lookup registry-1.docker.io on 10.0.0.53:53: no such host
"""


def test_pull_failure_names_the_base_image_option(monkeypatch):
    monkeypatch.delenv("BASE_PYTHON_IMAGE", raising=False)
    cfg = load_config(EXAMPLE)
    assert is_pull_failure(LEGACY_PULL_FAILURE)
    assert not is_pull_failure("Step 5/19 : RUN pip install\nERROR: syntax error\n")
    err = base_image_error(cfg, LEGACY_PULL_FAILURE, EXAMPLE / "Dockerfile")
    text = str(err)
    assert "python:3.12-slim" in text
    assert "`app.build_args.BASE_IMAGE`" in text and "$BASE_PYTHON_IMAGE" in text
    assert 'scripts/testbed up && eval "$(scripts/testbed env)"' in text
    assert isinstance(err, ImageUnavailable) and err.exit_code == 17


class ImageEngine(Transport):
    """Answers `docker image inspect` with a fixed label; records every argv."""

    def __init__(self, label: str | None) -> None:
        self.label = label
        self.calls: list[tuple[str, ...]] = []

    def run(self, argv, *, input=None, timeout=None, check=True, stream=None, env=None):
        argv = tuple(argv)
        self.calls.append(argv)
        if argv[:3] == ("docker", "image", "inspect"):
            if self.label is None:
                return Result(argv, 1, "", "No such image", 0.0)
            return Result(argv, 0, f"sha256:abc\t{self.label}\n", "", 0.0)
        return Result(argv, 0, "", "", 0.0)


@pytest.fixture
def example_copy(tmp_path, monkeypatch):
    monkeypatch.setenv("COMPOSE_PROJECT_NAME", "cvunit")
    dest = tmp_path / "notes"
    shutil.copytree(EXAMPLE, dest, ignore=shutil.ignore_patterns("__pycache__", ".pytest_cache"))
    return dest


def _state(root: Path) -> LocalState:
    state = LocalState(open_stack(load_config(root)))
    state.app_image = "notes:local"
    return state


def test_image_step_skips_the_build_when_the_label_matches(example_copy):
    state = _state(example_copy)
    cfg = state.target.cfg
    digest = inputs_hash(state.target.context_dir, state.target.dockerfile, cfg.app.build_args)
    engine = ImageEngine(digest)
    io = StepIO("image", engine)
    local_image.image(state, io)
    assert (state.built, state.image_id, state.inputs) == (False, "sha256:abc", digest)
    assert not [c for c in engine.calls if c[:2] == ("docker", "build")]
    assert io.notes == [f"notes:local up to date (inputs {digest[:12]}): no build"]


def test_image_step_builds_with_the_inputs_label(example_copy):
    state = _state(example_copy)
    engine = ImageEngine("old-inputs")
    local_image.image(state, StepIO("image", engine))
    builds = [c for c in engine.calls if c[:2] == ("docker", "build")]
    assert builds == [local_image.build_argv(state, "notes:local", state.inputs or "")]
    assert state.built is True
