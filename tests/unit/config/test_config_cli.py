"""The CLI around the config: `conveyor config check` renders a config error as one paragraph
(no traceback, no markup), masks secrets; exit codes pass through."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
EXAMPLE = REPO / "examples" / "notes"

BASE = """
[app]
name = "shop"
image = "shop"
port = 8000

[environments.local]
[environments.local.database]
kind = "compose"
password = { env = "SHOP_DB_PASSWORD", default = "local" }
"""


def write(tmp_path: Path, text: str) -> Path:
    (tmp_path / "conveyor.toml").write_text(textwrap.dedent(text))
    return tmp_path


def _cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    import os

    return subprocess.run([sys.executable, "-m", "conveyor.main", *args], capture_output=True,
                          text=True, env={**os.environ, **(env or {})}, cwd=REPO, check=False)


def test_cli_config_error_is_one_paragraph_without_traceback(tmp_path):
    write(tmp_path, BASE.replace("port = 8000", 'port = "eighty"'))
    r = _cli("config", "check", "-C", str(tmp_path))
    assert r.returncode == 2
    assert "Traceback" not in r.stderr
    assert "key `app.port`" in r.stderr


def test_cli_config_check_example_masks_secrets():
    r = _cli("config", "check", "-C", str(EXAMPLE), "--env", "local", "--json",
             env={"NOTES_DB_PASSWORD": "sup3r-s3cret-value"})
    assert r.returncode == 0, r.stderr
    assert "sup3r-s3cret-value" not in r.stdout
    assert "postgresql://notes:***@127.0.0.1:" in r.stdout
    # prod's password is generated on its host at setup: nothing to set here, none to show
    r = _cli("config", "check", "-C", str(EXAMPLE), "--env", "prod", "--json")
    assert r.returncode == 0, r.stderr
    assert "postgresql://notes@notes-prod-db:5432/notes" in r.stdout


def test_cli_has_no_stub_commands():
    # every planned command is implemented: none is listed as a placeholder
    r = _cli("--help")
    assert r.returncode == 0, r.stderr
    assert "not implemented" not in r.stdout


def test_cli_version():
    r = _cli("--version")
    assert r.returncode == 0 and r.stdout.startswith("conveyor ")


def test_cli_error_text_is_not_read_as_markup(tmp_path):
    write(tmp_path, BASE)
    r = _cli("config", "check", "-C", str(tmp_path), "--env", "[red]x:x:[/red]")
    assert r.returncode == 2 and "unknown environment '[red]x:x:[/red]'" in r.stderr


def test_cli_typer_exit_code_passes_through():
    import typer

    from conveyor.cli import app, run

    @app.command("zz-exit-test", hidden=True)
    def _zz() -> None:
        raise typer.Exit(7)

    with pytest.raises(SystemExit) as info:
        run(["zz-exit-test"])
    assert info.value.code == 7


def test_cli_unknown_option_is_a_usage_error_not_a_traceback():
    r = _cli("config", "check", "--bogus")
    assert r.returncode == 2
    assert "No such option: --bogus" in r.stderr and "Traceback" not in r.stderr


# ---------------------------------------------------------------- secrets an environment needs

UNSET = BASE + """
[app.secrets]
API_KEY = { file = "api.key" }

[environments.dev]
host = "deploy@10.0.0.5"
known_hosts = "known_hosts"
[environments.dev.secrets]
SENTRY_DSN = { env = "SHOP_SENTRY_DSN" }
[environments.dev.database]
kind = "container"
password = { env = "SHOP_DEV_DB_PASSWORD" }
"""
_UNSET_VARS = {"SHOP_SENTRY_DSN": "", "SHOP_DEV_DB_PASSWORD": ""}


def _without(*names: str) -> dict:
    import os

    return {k: v for k, v in os.environ.items() if k not in names}


def _cli_clean(*args: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "conveyor.main", *args], capture_output=True,
                          text=True, env=env, cwd=REPO, check=False)


def test_unset_secrets_lists_each_reference(tmp_path, monkeypatch):
    from conveyor.config import load_config

    for k in _UNSET_VARS:
        monkeypatch.delenv(k, raising=False)
    cfg = load_config(write(tmp_path, UNSET))
    unset = cfg.unset_secrets(["dev"])
    assert [(u.key, u.source, u.reason) for u in unset] == [
        ("app.secrets.API_KEY", "file:api.key", "does not exist"),
        ("environments.dev.secrets.SENTRY_DSN", "env:SHOP_SENTRY_DSN", "is not set"),
        ("environments.dev.database.password", "env:SHOP_DEV_DB_PASSWORD", "is not set"),
    ]
    assert cfg.unset_secrets(["local"]) == unset[:1]  # a default counts as set
    (tmp_path / "api.key").write_text("k\n")
    monkeypatch.setenv("SHOP_SENTRY_DSN", "x")
    monkeypatch.setenv("SHOP_DEV_DB_PASSWORD", "pw")
    assert cfg.unset_secrets() == []
    cfg.check_secrets("dev")  # nothing raised


def test_config_check_env_fails_on_an_unset_secret_and_names_it(tmp_path):
    write(tmp_path, UNSET)
    (tmp_path / "api.key").write_text("k\n")
    env = _without(*_UNSET_VARS)
    r = _cli_clean("config", "check", "-C", str(tmp_path), "--env", "dev", env=env)
    assert r.returncode == 2, r.stdout + r.stderr
    assert "is valid" not in r.stdout
    err = " ".join(r.stderr.split())
    assert "key `environments.dev.secrets.SENTRY_DSN`: env:SHOP_SENTRY_DSN is not set" in err
    assert "key `environments.dev.database.password`: env:SHOP_DEV_DB_PASSWORD is not set" in err
    assert "export SHOP_SENTRY_DSN=... SHOP_DEV_DB_PASSWORD=..." in err and "--allow-unset" in err
    # --json: the same exit code, the list in the document
    r = _cli_clean("config", "check", "-C", str(tmp_path), "--env", "dev", "--json", env=env)
    assert r.returncode == 2
    import json

    assert [u["key"] for u in json.loads(r.stdout)["unset_secrets"]] == [
        "environments.dev.secrets.SENTRY_DSN", "environments.dev.database.password"]


def test_config_check_allow_unset_checks_syntax_only_and_still_lists_them(tmp_path):
    write(tmp_path, UNSET)
    env = _without(*_UNSET_VARS)
    r = _cli_clean("config", "check", "-C", str(tmp_path), "--env", "dev", "--allow-unset",
                   env=env)
    assert r.returncode == 0, r.stderr
    out = " ".join(r.stdout.split())
    assert "is valid" in out
    assert "not set: environments.dev.database.password: env:SHOP_DEV_DB_PASSWORD is not set" \
        in out
    assert "not set: app.secrets.API_KEY: file:api.key does not exist" in out


def test_config_check_without_env_lists_unset_secrets_but_passes(tmp_path):
    write(tmp_path, UNSET)
    (tmp_path / "api.key").write_text("k\n")
    r = _cli_clean("config", "check", "-C", str(tmp_path), env=_without(*_UNSET_VARS))
    assert r.returncode == 0, r.stderr
    out = " ".join(r.stdout.split())
    assert "not set: environments.dev.secrets.SENTRY_DSN: env:SHOP_SENTRY_DSN is not set" \
        in out


def test_config_check_env_passes_when_every_secret_is_set(tmp_path):
    write(tmp_path, UNSET)
    (tmp_path / "api.key").write_text("k\n")
    env = _without() | {"SHOP_SENTRY_DSN": "dsn", "SHOP_DEV_DB_PASSWORD": "pw"}
    r = _cli_clean("config", "check", "-C", str(tmp_path), "--env", "dev", env=env)
    assert r.returncode == 0, r.stderr
    out = " ".join(r.stdout.split())
    assert "is valid" in out and "not set" not in out
