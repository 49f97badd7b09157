"""A project's own migration tool at `conveyor up` (steps/local_migrate.py with
`migrations.command`): it runs at every `up` whatever conveyor's engine would say (no Diesel
directory needed), with the app's environment by name, and fails clearly (the command, its exit
code, its last lines); past `migrations.timeout` its container is removed."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from conveyor.config import load_config
from conveyor.errors import ConveyorError, MigrationStepFailed
from conveyor.plan import StepIO
from conveyor.state.local import LocalState
from conveyor.steps.local_migrate import migrations
from conveyor.targets.local import open_stack
from conveyor.transport import Result, Transport

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "notes"
SECRET = "s3cret-key-for-the-app"


class FakeDocker(Transport):
    """Records argv and the environment given to the docker client; answers from `answer`."""

    name = "local"

    def __init__(self, answer=None) -> None:
        self.calls: list[tuple[tuple[str, ...], dict | None]] = []
        self.answer = answer or (lambda argv: (0, "", ""))

    def run(self, argv, *, input=None, timeout=None, check=True, stream=None, env=None):
        argv = tuple(argv)
        self.calls.append((argv, env))
        if argv[:2] == ("docker", "inspect"):
            return Result(argv, 0, "notes_default \n", "", 0.0)
        rc, out, err = self.answer(argv)
        if rc == "timeout":
            raise ConveyorError(f"timed out after {timeout:g} s: {' '.join(argv)}")
        if stream:
            for line in (out + err).splitlines():
                stream(line)
        return Result(argv, rc, out, err, 0.0)


@pytest.fixture
def project(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("NOTES_DB_PASSWORD", "pw-local")
    monkeypatch.setenv("NOTES_SECRET_KEY", SECRET)
    root = tmp_path / "notes"
    shutil.copytree(EXAMPLE, root, ignore=shutil.ignore_patterns("__pycache__", ".pytest_cache"))
    shutil.rmtree(root / "migrations")  # an Alembic project has no Diesel directory
    toml = root / "conveyor.toml"
    text = toml.read_text().replace(
        "\ncommand = []", '\ncommand = ["alembic", "upgrade", "head"]\ntimeout = 5', 1)
    text = text.replace("[app.env]\n",
                        '[app.secrets]\nSECRET_KEY = { env = "NOTES_SECRET_KEY" }\n\n[app.env]\n',
                        1)
    toml.write_text(text)
    return root


def _run(root: Path, fake: FakeDocker) -> tuple[LocalState, StepIO]:
    state = LocalState(open_stack(load_config(root)))
    state.app_image = "notes:local"
    state.containers = {"db": "dbid"}
    io = StepIO("migrations", transport=fake)
    migrations(state, io)
    return state, io


def _tool_call(fake: FakeDocker):
    return next((a, e) for a, e in fake.calls if a[:2] == ("docker", "run"))


def test_the_command_runs_at_every_up_without_a_diesel_directory(project):
    fake = FakeDocker(lambda a: (0, "INFO  Running upgrade  -> 0001, init\n", ""))
    state, io = _run(project, fake)
    argv, env = _tool_call(fake)
    assert argv[-3:] == ("alembic", "upgrade", "head")
    assert ("--network", "notes_default") == argv[argv.index("--network"):][:2]
    # the app's settings and secrets by name: their values only in the client's environment
    for name in ("LOG_LEVEL", "SECRET_KEY", "DATABASE_URL"):
        assert argv[argv.index(name) - 1] == "--env", name
    assert SECRET not in " ".join(argv) and "pw-local" not in " ".join(argv)
    assert env["SECRET_KEY"] == SECRET and env["LOG_LEVEL"] == "info"
    assert env["DATABASE_URL"].startswith("postgresql://notes:pw-local@db:5432/")
    assert state.migrations_applied == [] and state.migrations_total is None
    assert io.notes == [("ran `alembic upgrade head` (the tool decides what is pending): "
                        "INFO  Running upgrade  -> 0001, init")]
    _run(project, fake)  # and again: the tool decides, conveyor does not skip it
    assert sum(1 for a, _ in fake.calls if a[:2] == ("docker", "run")) == 2


def test_a_command_not_in_the_image_names_it_and_its_exit_code(project):
    err = ('docker: Error response from daemon: failed to create task: exec: "alembic": '
           "executable file not found in $PATH\n")
    fake = FakeDocker(lambda a: (127, "", err))
    with pytest.raises(MigrationStepFailed) as exc:
        _run(project, fake)
    text = str(exc.value)
    assert "`alembic upgrade head`" in text
    assert "exit 127: the command is not in the image" in text
    assert 'exec: "alembic": executable file not found' in text


def test_a_failing_command_quotes_its_last_lines(project):
    out = "".join(f"line {i}\n" for i in range(40)) + "sqlalchemy.exc.ProgrammingError: boom\n"
    fake = FakeDocker(lambda a: (1, out, ""))
    with pytest.raises(MigrationStepFailed) as exc:
        _run(project, fake)
    text = str(exc.value)
    assert "(exit 1)" in text and "ProgrammingError: boom" in text
    assert "line 39" in text and "line 5\n" not in text  # the last 20 lines only


def test_a_hanging_command_is_stopped_and_its_container_removed(project):
    fake = FakeDocker(lambda a: ("timeout", "", "") if a[:2] == ("docker", "run") else (0, "", ""))
    with pytest.raises(MigrationStepFailed) as exc:
        _run(project, fake)
    assert "within migrations.timeout (5 s)" in str(exc.value)
    project = open_stack(load_config(project)).project
    assert fake.calls[-1][0] == ("docker", "rm", "--force", f"{project}-migrate")


def test_local_status_shows_the_tools_status_or_says_what_it_cannot_tell(project):
    from conveyor.steps.local_migrate import tool_status

    stack = open_stack(load_config(project))
    fake = FakeDocker(lambda a: (0, "0001 (head)\n", ""))
    m = tool_status(stack, fake.run, "notes:local", "dbid")
    assert fake.calls == [] and m["ok"] is False and m["applied"] == []
    assert "conveyor cannot tell which migrations are applied" in m["error"]
    toml = project / "conveyor.toml"
    toml.write_text(toml.read_text().replace(
        "\ntimeout = 5", '\ntimeout = 5\nstatus_command = ["alembic", "current"]', 1))
    stack = open_stack(load_config(project))
    m = tool_status(stack, fake.run, "notes:local", "dbid")
    argv, env = _tool_call(fake)
    assert argv[-2:] == ("alembic", "current") and env["SECRET_KEY"] == SECRET
    assert m["tool"]["output"] == ["0001 (head)"]
    assert "its status: `alembic current`\n0001 (head)" in m["error"]
