"""steps/local_migrate.py: what the local migrate step runs (the built-in engine, or
`migrations.command` in a temporary container of the app image)."""

from __future__ import annotations

import shutil
from pathlib import Path

from conveyor.config import load_config
from conveyor.state.local import LocalState
from conveyor.steps.local_migrate import command_argv, describe
from conveyor.targets.local import open_stack

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "notes"


def _state(root: Path) -> LocalState:
    return LocalState(open_stack(load_config(root)))


def test_built_in_engine_is_described_without_the_password(monkeypatch):
    monkeypatch.setenv("NOTES_DB_PASSWORD", "s3cret-pw")
    monkeypatch.setenv("NOTES_DB_PORT", "18002")
    cfg_dir = load_config(EXAMPLE).migrations_dir
    assert describe(_state(EXAMPLE)) == [
        (f"built-in engine: apply pending migrations of {cfg_dir} to "
        "postgresql://notes:***@127.0.0.1:18002/notes")]


def test_migrations_command_runs_in_a_temporary_container(tmp_path):
    root = tmp_path / "notes"
    shutil.copytree(EXAMPLE, root, ignore=shutil.ignore_patterns("__pycache__", ".pytest_cache"))
    toml = root / "conveyor.toml"
    text = toml.read_text()
    assert "\ncommand = []" in text
    toml.write_text(text.replace("\ncommand = []", '\ncommand = ["app", "migrate"]', 1))
    state = _state(root)
    assert command_argv(state, "notes:local", "cvunit_default") == (
        "docker", "run", "--rm", "--name", f"{state.target.project}-migrate",
        "--network", "cvunit_default", "--env", "LOG_LEVEL", "--env", "DATABASE_URL",
        "--label", "conveyor.app=notes", "notes:local", "app", "migrate")
    assert describe(state)[0] == command_argv(state, "<image of the compose service app>",
                                              "<network of the db service>")
    assert "at every `up`" in describe(state)[1]


def test_drift_at_up_names_an_option_that_exists():
    from conveyor.migrations.errors import DriftError
    from conveyor.steps.local_migrate import migration_error

    err = migration_error(DriftError(["2_add was edited after it was applied"]))
    assert "re-run with --allow-drift" not in str(err)
    assert "`conveyor migrate run --allow-drift`" in (err.hint or "")
