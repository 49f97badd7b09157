"""examples/ledger without Docker: its conveyor.toml (Alembic as the migration tool, the app's
settings as app.env and per-environment secrets), its compose file (loopback ports, the same
local defaults as conveyor.toml), its settings module (refuses without the app's settings,
never echoes the secret), and its revisions (a linear chain from 0001)."""

from __future__ import annotations

import ast
import importlib.util
import re
import sys
from pathlib import Path

import pytest
import yaml

from conveyor.config import load_config

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "ledger"


def _settings():
    spec = importlib.util.spec_from_file_location("ledger_settings",
                                                  EXAMPLE / "ledger" / "settings.py")
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses look their module up
    spec.loader.exec_module(mod)
    return mod


def test_the_config_runs_alembic_with_the_apps_settings():
    cfg = load_config(EXAMPLE)
    m = cfg.migrations
    assert m.command == ["alembic", "upgrade", "head"]
    assert m.status_command == ["alembic", "current"]
    assert m.revert_command == ["alembic", "downgrade", "-1"]
    assert '"$rev:head" --sql' in m.sql_command[2]
    assert cfg.app.env["LEDGER_CURRENCY"] == "EUR"
    for env in ("local", "dev", "prod"):
        assert "LEDGER_SECRET_KEY" in cfg.environment(env).secrets, env
    assert cfg.environment("dev").secrets["LEDGER_SECRET_KEY"].env == "LEDGER_DEV_SECRET_KEY"
    assert cfg.environment("prod").secrets["LEDGER_SECRET_KEY"].env == "LEDGER_PROD_SECRET_KEY"
    assert cfg.environment("prod").promote_from == "dev"


def test_compose_publishes_on_loopback_with_the_configs_local_defaults():
    compose = yaml.safe_load((EXAMPLE / "docker-compose.yml").read_text())
    for svc in compose["services"].values():
        for port in svc.get("ports", []):
            assert port.startswith("127.0.0.1:"), port
    app_env = compose["services"]["app"]["environment"]
    cfg = load_config(EXAMPLE)
    key = cfg.environment("local").secrets["LEDGER_SECRET_KEY"]
    assert app_env["LEDGER_SECRET_KEY"] == f"${{{key.env}:-{key.default}}}"
    assert app_env["LEDGER_CURRENCY"] == cfg.app.env["LEDGER_CURRENCY"]


def test_settings_refuse_without_the_apps_environment_and_never_echo_the_secret():
    s = _settings()
    with pytest.raises(s.SettingsError) as info:
        s.load({"DATABASE_URL": "postgresql://u:pw@db/ledger"})
    assert "LEDGER_SECRET_KEY, LEDGER_CURRENCY" in str(info.value)
    with pytest.raises(s.SettingsError, match="too short"):
        s.load({"DATABASE_URL": "postgresql://x", "LEDGER_SECRET_KEY": "short",
                "LEDGER_CURRENCY": "EUR"})
    ok = s.load({"DATABASE_URL": "postgresql://u:pw@db:5432/ledger",
                 "LEDGER_SECRET_KEY": "0123456789abcdef-secret", "LEDGER_CURRENCY": "EUR"})
    assert ok.database_url == "postgresql+psycopg://u:pw@db:5432/ledger"
    assert "secret" not in repr(ok) and "pw" not in repr(ok)


def test_revisions_form_one_chain_and_env_py_refuses_without_settings():
    revs = {}
    for f in sorted((EXAMPLE / "alembic" / "versions").glob("*.py")):
        tree = ast.parse(f.read_text())
        values = {t.id: ast.literal_eval(n.value) for n in tree.body
                  if isinstance(n, ast.Assign) for t in n.targets if isinstance(t, ast.Name)
                  and t.id in ("revision", "down_revision")}
        revs[values["revision"]] = values["down_revision"]
    assert revs == {"0001": None}
    env_py = (EXAMPLE / "alembic" / "env.py").read_text()
    assert "SystemExit(3)" in env_py and "transaction_per_migration=True" in env_py
    assert re.search(r"(?m)^script_location = %\(here\)s/alembic$",
                     (EXAMPLE / "alembic.ini").read_text())
    for f in EXAMPLE.rglob("*.py"):
        compile(f.read_text(), str(f), "exec")
