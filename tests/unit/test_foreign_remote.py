"""A project's own migration tool on dev (steps/migrate.py with `migrations.command`,
steps/foreign_remote.py): the temporary container of the new image gets the app's environment
(app.env, app.secrets, the environment's env and secrets) and DATABASE_URL in the 0600 env file,
never in an argv; failures name the command, its exit code and its last lines; past
`migrations.timeout` the container and the env file are removed."""

from __future__ import annotations

from tests.unit.plans import test_dev_plan as dev
from tests.unit.plans.test_dev_plan import PASSWORD, healthy_host, make_config, plan_for

from conveyor.errors import ConveyorError
from conveyor.plans.deployment import run_deployment
from conveyor.steps.foreign import Outcome
from conveyor.steps.foreign_remote import backup_hint
from conveyor.targets.remote import Remote

env_secrets = dev.env_secrets  # the dev plan's fixtures
health_server = dev.health_server

ENV_PATH = "/srv/conveyor/notes/dev/migrate-20260101T000000Z-abcd.env"
CONTAINER = "notes-dev-migrate-20260101t000000z-abcd"
ALEMBIC = ["alembic", "upgrade", "head"]


def _is_tool(argv) -> bool:
    return "alembic" in argv


def test_the_tool_gets_the_apps_environment_in_the_env_file_only(tmp_path, env_secrets,
                                                                  health_server):
    port, _ = health_server
    host = healthy_host()
    host.rules.insert(0, (_is_tool, lambda a, i: (0, "Running upgrade -> 0002\n", "")))
    _, dep = plan_for(tmp_path, port, host, migrations_command=ALEMBIC)
    result = run_deployment(dep, lambda e: None)
    assert result.ok, result.error
    argv, stdin = next((a, i) for a, i in host.calls if _is_tool(a))
    assert argv[-3:] == tuple(ALEMBIC) and argv[argv.index("--env-file") + 1] == ENV_PATH
    lines = stdin.decode().splitlines()
    assert lines[0] == f"DATABASE_URL=postgresql://notes:{PASSWORD}@notes-dev-db:5432/notes"
    assert "API_TOKEN=tok-123456" in lines  # app.secrets reach the tool like they reach the app
    for a, _ in host.calls:
        assert not any(PASSWORD in x or "tok-123456" in x for x in a), a
    migrate = next(s for s in dep.record.steps if s["name"] == "migrate")
    assert migrate["notes"] == [("ran `alembic upgrade head` (the tool decides what is pending): "
                                "Running upgrade -> 0002")]


def test_a_command_not_in_the_image_fails_dev_clearly(tmp_path, env_secrets, health_server):
    port, _ = health_server
    host = healthy_host()
    host.rules.insert(0, (_is_tool, lambda a, i: (
        127, "", 'exec: "alembic": executable file not found in $PATH\n')))
    _, dep = plan_for(tmp_path, port, host, migrations_command=ALEMBIC)
    result = run_deployment(dep, lambda e: None)
    assert not result.ok
    text = str(result.error)
    assert "`alembic upgrade head` failed on dev (exit 127: the command is not in the image" \
        in text and "executable file not found" in text
    assert "replace" not in [s["name"] for s in dep.record.steps if s.get("status") == "ok"]


def test_a_hanging_command_is_stopped_and_leaves_nothing_on_the_host(tmp_path, env_secrets,
                                                                     health_server):
    port, _ = health_server
    host = healthy_host()

    def hang(argv, inp):
        raise ConveyorError("timed out after 3600 s: sh -c ...")

    host.rules.insert(0, (_is_tool, hang))
    _, dep = plan_for(tmp_path, port, host, migrations_command=ALEMBIC)
    result = run_deployment(dep, lambda e: None)
    assert not result.ok
    assert "did not finish on dev within migrations.timeout (3600 s)" in str(result.error)
    after = [a for a, _ in host.calls]
    i = next(n for n, a in enumerate(after) if _is_tool(a))
    assert after[i + 1] == ("docker", "rm", "--force", CONTAINER)
    assert after[i + 2] == ("rm", "-f", ENV_PATH)


def test_a_prod_failure_names_the_pre_deploy_backup(tmp_path, env_secrets, health_server):
    port, _ = health_server
    remote = Remote(make_config(tmp_path, port, migrations_command=ALEMBIC), "dev")
    hint = backup_hint(remote, "the previous version is started again",
                       {"id": "20260101T000000Z-abcd", "file": "/b/notes-dev-x.dump"})
    assert "the pre-deploy backup /b/notes-dev-x.dump is the way back" in hint
    assert "`conveyor restore dev 20260101T000000Z-abcd`" in hint
    assert Outcome(None, []).returncode is None


def _remote(tmp_path, port, host, **mig) -> Remote:
    cfg = make_config(tmp_path, port, migrations_command=ALEMBIC)
    cfg.migrations = cfg.migrations.model_copy(update=mig)
    return Remote(cfg, "dev", transport_factory=lambda r: host)


def test_status_says_the_tool_manages_the_migrations(tmp_path, env_secrets, health_server):
    from conveyor.remote_status import migration_status

    port, _ = health_server
    host = healthy_host()
    m = migration_status(_remote(tmp_path, port, host), "img@sha256:x")
    assert host.calls == []  # nothing runs without a status_command
    assert m["ok"] is False and m["applied"] == [] and m["drift"] == []
    assert "the project's migration tool manages the migrations (`alembic upgrade head`)" \
        in m["error"] and "conveyor cannot tell which migrations are applied" in m["error"]


def test_status_shows_the_tools_status_output(tmp_path, env_secrets, health_server):
    from conveyor.remote_status import migration_status

    port, _ = health_server
    host = healthy_host()
    host.rules.insert(0, (lambda a: "current" in a, lambda a, i: (0, "0002 (head)\n", "")))
    m = migration_status(_remote(tmp_path, port, host, status_command=["alembic", "current"]),
                         "img@sha256:x")
    argv, stdin = host.calls[0]
    assert argv[-2:] == ("alembic", "current") and "img@sha256:x" in argv
    assert b"API_TOKEN=tok-123456" in stdin
    assert m["tool"]["output"] == ["0002 (head)"] and "0002 (head)" in m["error"]


# --------------------------------------------------------------------------- prod's plan step

def _plan_state(remote: Remote):
    from conveyor.records import DeploymentRecord
    from conveyor.state.deploy import DeployState

    rec = DeploymentRecord(id="20260101T000000Z-abcd", app="notes", env="dev", kind="deploy",
                           who="alice", started_at=0.0, image="img@sha256:x")
    return DeployState(remote=remote, record=rec)


def _pending(tmp_path, port, host, allow_destructive=False, **mig):
    from conveyor.imageref import ImageRef
    from conveyor.plan import StepIO
    from conveyor.state.deploy import ProdOptions
    from conveyor.steps.pending import pending_step

    remote = _remote(tmp_path, port, host, **mig)
    step = pending_step(remote, ImageRef("127.0.0.1:5000/notes", "sha256:" + "ab" * 32, None),
                        ProdOptions(project_dir=tmp_path, allow_destructive=allow_destructive))
    st, io = _plan_state(remote), StepIO("plan", transport=host)
    step.action(st, io)
    return step, st, io


SQL = ("BEGIN;\n-- Running upgrade 0001 -> 0002\nALTER TABLE notes ADD COLUMN title text;\n"
       "UPDATE alembic_version SET version_num='0002';\nCOMMIT;\n")


def test_the_prod_plan_shows_the_command_and_the_tools_status(tmp_path, env_secrets,
                                                              health_server):
    port, _ = health_server
    host = healthy_host()
    host.rules.insert(0, (lambda a: "current" in a, lambda a, i: (0, "0001\n", "")))
    step, st, io = _pending(tmp_path, port, host, status_command=["alembic", "current"])
    assert any("alembic current" in d for d in step.describe)
    assert "`alembic upgrade head` runs after the backup" in io.output[0]
    assert "  | 0001" in io.output
    assert io.notes == [("`alembic upgrade head` after the backup; status: 0001; lint: not run "
                        "(no sql_command)")]
    assert st.pending is None  # not "nothing pending": the tool decides


def test_the_plans_status_note_is_the_tools_stdout_not_its_log_lines(tmp_path, env_secrets,
                                                                    health_server):
    port, _ = health_server
    for stdout, note in (("0001\n", "status: 0001;"),
                         ("", "status: (nothing on its standard output);")):
        host = healthy_host()
        host.rules.insert(0, (lambda a: "current" in a, lambda a, i, out=stdout: (
            0, out, "INFO  [alembic.runtime.migration] Will assume transactional DDL.\n")))
        _, _, io = _pending(tmp_path, port, host, status_command=["alembic", "current"])
        assert note in io.notes[0], io.notes
        assert any("Will assume transactional DDL" in ln for ln in io.output), io.output


def test_the_prod_plan_without_status_command_says_what_it_cannot_tell(tmp_path, env_secrets,
                                                                       health_server):
    port, _ = health_server
    host = healthy_host()
    _, _, io = _pending(tmp_path, port, host)
    assert host.calls == []
    assert any("conveyor cannot tell which migrations are applied" in ln for ln in io.output)


def test_the_tools_sql_is_linted_and_a_destructive_one_stops_the_deploy(tmp_path, env_secrets,
                                                                         health_server):
    import pytest

    from conveyor.errors import LintBlocked

    port, _ = health_server
    host = healthy_host()
    host.rules.insert(0, (lambda a: "--sql" in a, lambda a, i: (0, SQL, "INFO  [alembic] x\n")))
    sql_cmd = ["alembic", "upgrade", "head", "--sql"]
    _, _, io = _pending(tmp_path, port, host, sql_command=sql_cmd)
    assert "lint of the tool's SQL: " in io.notes[0], io.output
    assert "destructive" not in io.notes[0]
    assert "    | INFO  [alembic] x" not in io.output  # stderr is not SQL
    host.rules.insert(0, (lambda a: "--sql" in a, lambda a, i: (
        0, SQL.replace("ADD COLUMN title text", "DROP COLUMN body"), "")))
    with pytest.raises(LintBlocked) as exc:
        _pending(tmp_path, port, host, sql_command=sql_cmd)
    assert "ban-drop-column" in str(exc.value) and "nothing was stopped" in exc.value.hint
    _, _, io = _pending(tmp_path, port, host, allow_destructive=True, sql_command=sql_cmd)
    assert "allowed by --allow-destructive" in io.notes[0]


def test_rollback_with_migrations_needs_a_revert_command(tmp_path, env_secrets, health_server):
    import pytest

    from conveyor.plan import StepIO
    from conveyor.state.deploy import ProdOptions
    from conveyor.steps.foreign_plan import foreign_rollback_plan

    port, _ = health_server
    remote = _remote(tmp_path, port, healthy_host())
    st = _plan_state(remote)
    with pytest.raises(ConveyorError, match="needs migrations.revert_command"):
        foreign_rollback_plan(remote, ProdOptions(project_dir=tmp_path, migrations=True), st,
                              StepIO("plan"))
    io = StepIO("plan")
    foreign_rollback_plan(remote, ProdOptions(project_dir=tmp_path), st, io)
    assert st.revert is None and "stay applied" in io.notes[0]
