"""Build inputs of the local stage: .dockerignore matching, the inputs hash, base images, and
the errors that name a way out (no Docker engine, a base image that cannot be pulled)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from conveyor.config import load_config
from conveyor.stages import local as stage

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "notes"


# ------------------------------------------------------------------ .dockerignore


def test_dockerignore_semantics_follow_docker():
    ig = stage.DockerIgnore([
        "# comment", "", "*.log", "!keep.log", "build/", "**/__pycache__", "docs/**/*.md",
        "/tmp", "a?c", "[xy].txt",
    ])
    assert ig.excluded("x.log") and not ig.excluded("keep.log")
    assert not ig.excluded("sub/x.log")  # `*` does not cross directories
    assert ig.excluded("build") and ig.excluded("build/out/bin")  # a directory excludes its files
    assert ig.excluded("pkg/deep/__pycache__/m.pyc")
    assert ig.excluded("docs/a.md") and ig.excluded("docs/x/y/z.md") and not ig.excluded("docs/a.txt")
    assert ig.excluded("tmp") and ig.excluded("abc") and not ig.excluded("abbc")
    assert ig.excluded("x.txt") and not ig.excluded("z.txt")
    assert not ig.excluded("src/main.py")


def test_example_dockerignore_lets_only_the_dockerfile_inputs_through(tmp_path):
    shutil.copytree(EXAMPLE, tmp_path / "notes")
    ctx = tmp_path / "notes"
    (ctx / "app" / "notes" / "__pycache__").mkdir(exist_ok=True)
    (ctx / "app" / "notes" / "__pycache__" / "app.cpython-311.pyc").write_bytes(b"x")
    (ctx / ".venv" / "lib").mkdir(parents=True)
    (ctx / ".venv" / "lib" / "big").write_bytes(b"x")
    files = [rel for rel, _ in stage.context_files(ctx, stage.DockerIgnore.for_context(ctx))]
    assert "requirements.txt" in files
    assert "app/notes/app.py" in files
    assert any(f.startswith("migrations/") and f.endswith("/up.sql") for f in files)
    assert not [f for f in files if f.startswith((".venv", "tests/")) or "__pycache__" in f]
    assert "Dockerfile" not in files and "conveyor.toml" not in files


def test_pruning_keeps_directories_an_exception_reaches_into():
    ig = stage.DockerIgnore(["*", "!app/"])
    assert ig.excluded("node_modules") and ig.prune("node_modules")
    assert not ig.prune("app") and not ig.excluded("app/x.py")


# ------------------------------------------------------------------ inputs hash


def _copy(tmp_path: Path) -> Path:
    dest = tmp_path / "notes"
    shutil.copytree(EXAMPLE, dest, ignore=shutil.ignore_patterns("__pycache__", ".pytest_cache"))
    return dest


def test_inputs_hash_changes_with_the_build_inputs_only(tmp_path):
    ctx = _copy(tmp_path)
    df = ctx / "Dockerfile"
    args = {"BASE_IMAGE": "conveyor-base/python:bookworm"}
    h0 = stage.inputs_hash(ctx, df, args)
    assert stage.inputs_hash(ctx, df, args) == h0

    # outside the context that Docker sends: no change
    (ctx / "tests" / "test_new.py").write_text("def test_x(): pass\n")
    (ctx / "conveyor.toml").write_text((ctx / "conveyor.toml").read_text() + "\n# note\n")
    assert stage.inputs_hash(ctx, df, args) == h0

    # a build arg, the Dockerfile, a new migration, a source file: change
    assert stage.inputs_hash(ctx, df, {"BASE_IMAGE": "python:3.12-slim"}) != h0
    new = ctx / "migrations" / "2030-01-01-000000_more"
    new.mkdir()
    (new / "up.sql").write_text("SELECT 1;\n")
    h1 = stage.inputs_hash(ctx, df, args)
    assert h1 != h0
    (ctx / "app" / "notes" / "app.py").write_text("# edited\n")
    assert stage.inputs_hash(ctx, df, args) != h1
    h2 = stage.inputs_hash(ctx, df, args)
    df.write_text(df.read_text() + "\n# comment\n")
    assert stage.inputs_hash(ctx, df, args) != h2


def test_inputs_hash_sees_the_executable_bit(tmp_path):
    ctx = _copy(tmp_path)
    df = ctx / "Dockerfile"
    h0 = stage.inputs_hash(ctx, df, {})
    os.chmod(ctx / "requirements.txt", 0o755)
    assert stage.inputs_hash(ctx, df, {}) != h0


# ------------------------------------------------------------------ base images


def test_base_images_resolve_build_args_and_skip_stages():
    text = ("ARG BASE_IMAGE=python:3.12-slim\nARG TAG\nFROM ${BASE_IMAGE} AS build\nRUN x\n"
            "FROM build\nFROM --platform=linux/amd64 debian:${TAG:-bookworm}\nFROM scratch\n")
    assert stage.base_images(text, {}) == [("python:3.12-slim", "BASE_IMAGE"),
                                           ("debian:bookworm", "TAG")]
    assert stage.base_images(text, {"BASE_IMAGE": "conveyor-base/python:bookworm"})[0] == (
        "conveyor-base/python:bookworm", "BASE_IMAGE")


LEGACY_PULL_FAILURE = """Sending build context to Docker daemon  2.048kB
Step 1/3 : ARG BASE_IMAGE=python:3.12-slim
Step 2/3 : FROM ${BASE_IMAGE}
Get "https://registry-1.docker.io/v2/": dial tcp: lookup registry-1.docker.io on 10.0.0.53:53: no such host
"""


def test_pull_failure_names_the_base_image_option(monkeypatch):
    monkeypatch.delenv("BASE_PYTHON_IMAGE", raising=False)
    cfg = load_config(EXAMPLE)
    assert stage.is_pull_failure(LEGACY_PULL_FAILURE)
    assert not stage.is_pull_failure("Step 5/19 : RUN pip install\nERROR: syntax error\n")
    err = stage.base_image_error(cfg, LEGACY_PULL_FAILURE, EXAMPLE / "Dockerfile")
    text = str(err)
    assert "python:3.12-slim" in text
    assert "`app.build_args.BASE_IMAGE`" in text and "$BASE_PYTHON_IMAGE" in text
    assert 'scripts/testbed up && eval "$(scripts/testbed env)"' in text
    assert err.exit_code == 5


# ------------------------------------------------------------------ no Docker engine


def test_no_docker_engine_is_one_line_naming_both_ways_out():
    err = stage.docker_unavailable(
        "Cannot connect to the Docker daemon at unix:///var/run/docker.sock. "
        "Is the docker daemon running?\n", docker_host="unix:///var/run/docker.sock")
    text = str(err)
    assert "\n" not in text and err.hint is None
    assert "no Docker engine answers at unix:///var/run/docker.sock" in text
    assert "start your Docker engine" in text
    assert 'scripts/testbed up && eval "$(scripts/testbed env)"' in text
    assert err.exit_code == 3
