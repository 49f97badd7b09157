"""Issue 15 item 3: `conveyor status` exits non-zero with documented codes when an environment is
unreachable (4), its database is not running (20; 7 locally), its app is not running or
unhealthy (9), or its migrations have blocking problems (8); "unreachable" is said only of a
host that cannot be reached; with several environments each is printed and the worst code
wins."""

from __future__ import annotations

import textwrap

import pytest

from conveyor.cli import remote_view, run
from conveyor.config import load_config
from conveyor.errors import ConfigError, HostKeyError, HostUnreachable
from conveyor.ops.local_status import status_problems as local_problems
from conveyor.remote_status import status_problems
from conveyor.reports.status import worst_code

HEALTHY = {
    "environment": "dev", "host": "root@10.0.0.5:22", "url": "http://10.0.0.5:8080",
    "kind": "remote",
    "app": {"name": "notes-dev-app", "state": "running", "health": "healthy",
            "image": "r/notes@sha256:ab", "revision": "abc", "deployment": "d1", "restarts": 0},
    "db": {"name": "notes-dev-db", "state": "running", "image": "postgres:15"},
    "health": {"url": "http://10.0.0.5:8080/health", "ok": True, "status": 200, "error": None},
    "migrations": {"ok": True, "applied": [], "pending": [], "drift": []},
    "lock": None, "last_deployment": None, "runner": None,
}


def remote(**changes) -> dict:
    d = {k: (dict(v) if isinstance(v, dict) else v) for k, v in HEALTHY.items()}
    for key, value in changes.items():
        d[key] = {**d[key], **value} if isinstance(value, dict) else value
    d["problems"] = status_problems(d)
    d["exit_code"] = worst_code(d["problems"])
    return d


def test_a_healthy_environment_has_no_problem():
    assert remote()["problems"] == [] and remote()["exit_code"] == 0


@pytest.mark.parametrize(("changes", "code", "text"), [
    ({"app": {"state": "missing"}}, 9, "the app container notes-dev-app is missing"),
    ({"app": {"state": "exited"}}, 9, "the app container notes-dev-app is exited"),
    ({"app": {"health": "unhealthy"}}, 9, "unhealthy"),
    ({"health": {"ok": False, "status": 503}}, 9, "GET http://10.0.0.5:8080/health -> 503"),
    ({"db": {"state": "exited"}}, 20, "the database container notes-dev-db is exited"),
    ({"migrations": {"drift": [{"kind": "edited", "version": "1",
                                "message": "create_notes was edited after it was applied"}]}},
     8, "create_notes was edited after it was applied"),
    ({"migrations": {"drift": [{"kind": "missing", "version": "2", "blocking": True,
                                "message": "2 is applied but not in the image"}]}},
     8, "2 is applied but not in the image"),
])
def test_each_problem_has_its_code(changes, code, text):
    d = remote(**changes)
    assert d["exit_code"] == code
    assert any(text in p["text"] for p in d["problems"]), d["problems"]


def test_a_problem_that_does_not_block_run_is_not_failing():
    d = remote(migrations={"drift": [{"kind": "out_of_order", "version": "3", "blocking": False,
                                      "message": "3 is older than the newest applied"}]})
    assert d["exit_code"] == 0


def test_the_worst_code_wins():
    assert worst_code([]) == 0
    assert worst_code([{"code": 8}, {"code": 9}]) == 9
    assert worst_code([{"code": 9}, {"code": 20}]) == 20
    assert worst_code([{"code": 20}, {"code": 4}, {"code": 8}]) == 4  # could not be read
    assert worst_code([{"code": 2}, {"code": 9}]) == 2


def test_local_problems():
    d = {"containers": [{"service": "app", "state": "running", "health": None},
                        {"service": "db", "state": "exited", "health": None}],
         "health": {"url": "http://127.0.0.1:8000/health", "ok": False, "error": "refused"},
         "migrations": {"ok": True, "drift": [{"kind": "edited", "blocking": True,
                                               "message": "m was edited"}]}}
    problems = local_problems(d, "app", "db")
    assert [p["code"] for p in problems] == [7, 9, 8]
    assert worst_code(problems) == 7


# --------------------------------------------------------------------------- the command


@pytest.fixture
def project(tmp_path, monkeypatch):
    (tmp_path / "known_hosts").write_text("")
    (tmp_path / "conveyor.toml").write_text(textwrap.dedent("""
        [app]
        name = "notes"
        image = "notes"
        port = 8000
        [registry]
        address = "127.0.0.1:5000"
        [environments.dev]
        host = "root@10.0.0.5:22"
        known_hosts = "known_hosts"
        [environments.dev.database]
        kind = "container"
        password = { env = "NOTES_DEV_DB_PASSWORD" }
        [environments.prod]
        host = "root@10.0.0.6:22"
        known_hosts = "known_hosts"
        [environments.prod.database]
        kind = "container"
        password = { env = "NOTES_PROD_DB_PASSWORD" }
    """))
    return tmp_path


@pytest.mark.parametrize(("exc", "kind", "code"), [
    (HostUnreachable("cannot reach root@10.0.0.5:22: Connection timed out"), "unreachable", 4),
    (ConfigError("NOTES_DEV_DB_PASSWORD is not set", key="environments.dev.database.password"),
     "configuration", 2),
    (HostKeyError("the host key of 10.0.0.5 changed"), "host key refused", 21),
])
def test_an_error_is_named_by_its_kind_and_keeps_its_code(project, monkeypatch, capsys, exc,
                                                           kind, code):
    import conveyor.remote_status as rs

    def boom(remote, **kw):
        raise exc

    monkeypatch.setattr(rs, "gather_status", boom)
    data = remote_view.remote_status(load_config(project), "dev")
    assert data["error_kind"] == kind and data["exit_code"] == code
    out = capsys.readouterr().out
    assert f"{kind}: " in out
    if kind != "unreachable":
        assert "unreachable" not in out


def test_several_environments_are_each_printed_and_the_worst_code_wins(project, monkeypatch,
                                                                       capsys):
    reports = {"dev": remote(app={"state": "exited"}),
               "prod": {**remote(environment="prod",
                                 migrations={"drift": [{"kind": "edited", "version": "1",
                                                        "message": "m was edited"}]})}}

    def fake(cfg, env_name, **kw):
        return reports[env_name]

    monkeypatch.setattr("conveyor.cli.remote.remote_status", fake)
    with pytest.raises(SystemExit) as exit_:
        run(["status", "dev", "prod", "-C", str(project)])
    assert exit_.value.code == 9
    out = capsys.readouterr().out
    assert "dev: " in out and "prod: " in out
    assert "failing     exit 9: the app container notes-dev-app is exited" in out
    assert "failing     exit 8: m was edited" in out


def test_a_healthy_status_exits_0(project, monkeypatch, capsys):
    monkeypatch.setattr("conveyor.cli.remote.remote_status", lambda cfg, env_name, **kw:
                        remote(environment=env_name))
    with pytest.raises(SystemExit) as exit_:
        run(["status", "dev", "prod", "-C", str(project), "--json"])
    assert exit_.value.code == 0
    assert '"exit_code": 0' in capsys.readouterr().out
