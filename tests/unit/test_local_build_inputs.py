"""steps/build_inputs.py: .dockerignore matching like Docker's, the files of the build context,
the inputs hash of the app image."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from conveyor.steps.build_inputs import DockerIgnore, context_files, inputs_hash

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "notes"


# ------------------------------------------------------------------ .dockerignore


def test_dockerignore_semantics_follow_docker():
    ig = DockerIgnore([
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
    files = [rel for rel, _ in context_files(ctx, DockerIgnore.for_context(ctx))]
    assert "requirements.txt" in files
    assert "app/notes/app.py" in files
    assert any(f.startswith("migrations/") and f.endswith("/up.sql") for f in files)
    assert not [f for f in files if f.startswith((".venv", "tests/")) or "__pycache__" in f]
    assert "Dockerfile" not in files and "conveyor.toml" not in files


def test_pruning_keeps_directories_an_exception_reaches_into():
    ig = DockerIgnore(["*", "!app/"])
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
    h0 = inputs_hash(ctx, df, args)
    assert inputs_hash(ctx, df, args) == h0

    # outside the context that Docker sends: no change
    (ctx / "tests" / "test_new.py").write_text("def test_x(): pass\n")
    (ctx / "conveyor.toml").write_text((ctx / "conveyor.toml").read_text() + "\n# note\n")
    assert inputs_hash(ctx, df, args) == h0

    # a build arg, the Dockerfile, a new migration, a source file: change
    assert inputs_hash(ctx, df, {"BASE_IMAGE": "python:3.12-slim"}) != h0
    new = ctx / "migrations" / "2030-01-01-000000_more"
    new.mkdir()
    (new / "up.sql").write_text("SELECT 1;\n")
    h1 = inputs_hash(ctx, df, args)
    assert h1 != h0
    (ctx / "app" / "notes" / "app.py").write_text("# edited\n")
    assert inputs_hash(ctx, df, args) != h1
    h2 = inputs_hash(ctx, df, args)
    df.write_text(df.read_text() + "\n# comment\n")
    assert inputs_hash(ctx, df, args) != h2


def test_inputs_hash_sees_the_executable_bit(tmp_path):
    ctx = _copy(tmp_path)
    df = ctx / "Dockerfile"
    h0 = inputs_hash(ctx, df, {})
    os.chmod(ctx / "requirements.txt", 0o755)
    assert inputs_hash(ctx, df, {}) != h0
