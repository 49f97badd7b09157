"""The zero-downtime classify step when the project's own tool migrates (`migrations.command`):
the SQL `sql_command` prints (in a temporary container of the new image, with the app's
environment) is classified as one migration; a contract change stops the deploy unless
--strategy recreate; without `sql_command` the deploy is refused (conveyor cannot tell), or,
with --strategy recreate, goes on unclassified. The rollback guard counts the tool's contract
SQL of a successful deployment."""

from __future__ import annotations

import pytest
from tests.unit.plans import test_dev_plan as dev
from tests.unit.test_foreign_remote import _plan_state, _remote

from conveyor.imageref import ImageRef
from conveyor.plan import StepIO
from conveyor.steps.classify import TOOL_SQL, ContractRefused, classify_step, contracts_since

env_secrets = dev.env_secrets  # the dev plan's fixtures
health_server = dev.health_server

IMAGE = ImageRef("127.0.0.1:5000/notes", "sha256:" + "ab" * 32, None)
SQL_COMMAND = ["alembic", "upgrade", "0001:head", "--sql"]
EXPAND_SQL = "BEGIN;\nALTER TABLE notes ADD COLUMN memo text;\nCOMMIT;\n"
CONTRACT_SQL = "BEGIN;\nALTER TABLE notes DROP COLUMN title;\nCOMMIT;\n"


def _run(tmp_path, port, sql: str | None, *, allow_contract=False, rc=0):
    host = dev.healthy_host()
    if sql is not None:
        host.rules.insert(0, (lambda a: "--sql" in a, lambda a, i: (rc, sql, "INFO log\n")))
    mig = {"sql_command": SQL_COMMAND} if sql is not None else {}
    remote = _remote(tmp_path, port, host, **mig)
    step = classify_step(remote, IMAGE, allow_contract=allow_contract)
    st, io = _plan_state(remote), StepIO("classify", transport=host)
    step.action(st, io)
    return step, st, io, host


def test_the_tools_sql_is_classified_in_the_new_image(tmp_path, env_secrets, health_server):
    port, _ = health_server
    step, st, io, host = _run(tmp_path, port, EXPAND_SQL)
    argv, stdin = next((a, i) for a, i in host.calls if "--sql" in a)
    assert IMAGE.ref in argv and b"API_TOKEN=tok-123456" in stdin  # the app's environment
    assert st.migration_classes == {TOOL_SQL: "expand"}
    assert io.notes == ["1 expand, 0 contract"]
    assert any("alembic upgrade 0001:head --sql" in d for d in step.describe)


def test_a_contract_change_of_the_tool_stops_the_deploy(tmp_path, env_secrets, health_server):
    port, _ = health_server
    with pytest.raises(ContractRefused) as info:
        _run(tmp_path, port, CONTRACT_SQL)
    assert "DROP COLUMN" in str(info.value) and "--strategy recreate" in info.value.hint
    _, st, io, _ = _run(tmp_path, port, CONTRACT_SQL, allow_contract=True)
    assert st.migration_classes == {TOOL_SQL: "contract"}
    assert "(allowed: --strategy recreate)" in io.notes[0]


def test_without_sql_command_conveyor_cannot_tell_and_says_so(tmp_path, env_secrets,
                                                            health_server):
    port, _ = health_server
    with pytest.raises(ContractRefused) as info:
        _run(tmp_path, port, None)
    assert "migrations.sql_command is not set" in str(info.value)
    assert "the old version keeps serving" in info.value.hint
    _, st, io, host = _run(tmp_path, port, None, allow_contract=True)
    assert host.calls == [] and st.migration_classes == {}
    assert "not classified" in io.notes[0]


def test_a_failing_sql_command_names_itself(tmp_path, env_secrets, health_server):
    port, _ = health_server
    with pytest.raises(Exception) as info:
        _run(tmp_path, port, "boom\n", rc=2)
    assert "the SQL command `alembic upgrade 0001:head --sql` failed on dev (exit 2)" \
        in str(info.value)


def test_the_rollback_guard_counts_the_tools_contract_sql():
    entries = [{"id": "d1", "image": "img1", "result": "ok", "migrations_applied": []},
               {"id": "d2", "image": "img2", "result": "ok", "migrations_applied": [],
                "details": {"migration_classes": {TOOL_SQL: "contract"}}},
               {"id": "d3", "image": "img3", "result": "failed", "migrations_applied": [],
                "details": {"migration_classes": {TOOL_SQL: "contract"}}}]
    assert contracts_since(entries, "img1", None) == [("d2", TOOL_SQL)]
    assert contracts_since(entries, "img2", None) == []
