"""config.loading (and the models it validates): loading, interpolation, secret references,
and one-paragraph errors that name the file and the key."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from conveyor.config import load_config
from conveyor.errors import ConfigError

BASE = """
[app]
name = "shop"
image = "shop"
port = 8000

[environments.local]
[environments.local.database]
kind = "compose"
password = { env = "SHOP_DB_PASSWORD", default = "local" }

[environments.prod]
host = "deploy@10.0.0.5:2222"
known_hosts = "known_hosts"
[environments.prod.database]
kind = "url"
url = { env = "SHOP_PROD_DATABASE_URL" }
"""


def write(tmp_path: Path, text: str) -> Path:
    (tmp_path / "conveyor.toml").write_text(textwrap.dedent(text))
    return tmp_path


def error_of(tmp_path: Path, text: str, env: str | None = None) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        cfg = load_config(write(tmp_path, text))
        if env:
            cfg.environment(env)
    return info.value


def test_valid_config_loads(tmp_path, monkeypatch):
    monkeypatch.setenv("SHOP_PROD_DATABASE_URL", "postgresql://u:pw@db:5432/shop")
    cfg = load_config(write(tmp_path, BASE))
    prod = cfg.environment("prod")
    assert prod.ssh_parts() == ("deploy", "10.0.0.5", 2222)
    assert cfg.database_url("prod") == "postgresql://u:pw@db:5432/shop"
    assert cfg.database_url("local") == "postgresql://app:local@127.0.0.1:5432/app"
    assert cfg.masked()["environments"]["prod"]["database"]["url"] == (
        "postgresql://u:***@db:5432/shop")


def test_missing_key(tmp_path):
    err = error_of(tmp_path, BASE.replace('port = 8000\n', ''))
    assert "key `app.port`" in str(err) and "missing required key" in str(err)
    assert "conveyor.toml" in str(err)


def test_wrong_type(tmp_path):
    err = error_of(tmp_path, BASE.replace("port = 8000", 'port = "eighty"'))
    assert "key `app.port`" in str(err)
    assert "found a string 'eighty', expected an integer" in str(err)


def test_unknown_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("SHOP_PROD_DATABASE_URL", "postgresql://x")
    err = error_of(tmp_path, BASE, env="staging")
    assert "key `environments.staging`" in str(err)
    assert "unknown environment 'staging'" in str(err) and "local, prod" in str(err)


def test_literal_secret_rejected_without_echoing_it(tmp_path):
    text = BASE.replace('url = { env = "SHOP_PROD_DATABASE_URL" }',
                        'url = "postgresql://u:hunter2@db/shop"')
    err = error_of(tmp_path, text, env="prod")
    assert "key `environments.prod.database.url`" in str(err)
    assert "literal string" in str(err) and '{ env = "VAR" }' in str(err)
    assert "hunter2" not in str(err)


def test_bad_host_string(tmp_path):
    err = error_of(tmp_path, BASE.replace("deploy@10.0.0.5:2222", "deploy@@bad host:x"))
    assert "key `environments.prod.host`" in str(err)
    assert "expected user@host[:port]" in str(err) and "'deploy@@bad host:x'" in str(err)


def test_port_out_of_range_in_host(tmp_path):
    err = error_of(tmp_path, BASE.replace("10.0.0.5:2222", "10.0.0.5:99999"))
    assert "key `environments.prod.host`" in str(err)


def test_malformed_toml_has_line_number(tmp_path):
    err = error_of(tmp_path, BASE.replace('image = "shop"', 'image = "shop'))
    assert "not valid TOML" in str(err) and "line 4" in str(err)


def test_unknown_key_is_an_error(tmp_path):
    err = error_of(tmp_path, BASE.replace("port = 8000", "port = 8000\nprot = 1"))
    assert "key `app.prot`" in str(err) and "unknown key" in str(err)


def test_remote_environment_needs_known_hosts(tmp_path):
    err = error_of(tmp_path, BASE.replace('known_hosts = "known_hosts"\n', ""))
    assert "environments.prod" in str(err) and "known_hosts" in str(err)


def test_bad_database_kind(tmp_path):
    err = error_of(tmp_path, BASE.replace('kind = "url"', 'kind = "sqlite"'))
    assert "key `environments.prod.database`" in str(err)
    assert "'sqlite'" in str(err) and "'compose', 'container' or 'url'" in str(err)


def test_unset_variable_in_global_section(tmp_path, monkeypatch):
    monkeypatch.delenv("SHOP_IMAGE_X", raising=False)
    err = error_of(tmp_path, BASE.replace('image = "shop"', 'image = "${SHOP_IMAGE_X}"'))
    assert "key `app.image`" in str(err) and "SHOP_IMAGE_X is not set" in str(err)


def test_unset_variable_in_environment_is_deferred(tmp_path, monkeypatch):
    monkeypatch.delenv("SHOP_PROD_HOST", raising=False)
    cfg = load_config(write(tmp_path, BASE.replace("deploy@10.0.0.5:2222", "${SHOP_PROD_HOST}")))
    cfg.environment("local")  # usable: the local stage does not need prod's variables
    with pytest.raises(ConfigError) as info:
        cfg.environment("prod")
    assert "key `environments.prod.host`" in str(info.value)
    monkeypatch.setenv("SHOP_PROD_HOST", "root@127.0.2.1")
    cfg = load_config(tmp_path)
    assert cfg.environment("prod").ssh_parts() == ("root", "127.0.2.1", 22)


def test_interpolation_default_and_escape(tmp_path, monkeypatch):
    monkeypatch.delenv("SHOP_TAG", raising=False)
    cfg = load_config(write(tmp_path, BASE.replace(
        'image = "shop"', 'image = "shop"\ndockerfile = "shop-${SHOP_TAG:-x}-$$HOME"')))
    assert cfg.app.dockerfile == "shop-x-$HOME"


def test_missing_secret_variable_names_key(tmp_path, monkeypatch):
    monkeypatch.delenv("SHOP_PROD_DATABASE_URL", raising=False)
    cfg = load_config(write(tmp_path, BASE))
    with pytest.raises(ConfigError) as info:
        cfg.database_url("prod")
    assert "key `environments.prod.database.url`" in str(info.value)
    assert "SHOP_PROD_DATABASE_URL" in str(info.value)


def test_secret_from_file(tmp_path):
    (tmp_path / "pw").write_text("filepw\n")
    cfg = load_config(write(tmp_path, BASE.replace(
        'password = { env = "SHOP_DB_PASSWORD", default = "local" }',
        'password = { file = "pw" }')))
    assert cfg.database_url("local") == "postgresql://app:filepw@127.0.0.1:5432/app"


def test_no_config_file(tmp_path):
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path)
    assert "no conveyor.toml" in str(info.value) and "-C DIR" in (info.value.hint or "")


@pytest.mark.parametrize("key", ["status_command", "sql_command", "revert_command"])
def test_a_tool_command_without_migrations_command_is_refused(tmp_path, key):
    err = error_of(tmp_path, BASE + f'\n[migrations]\n{key} = ["alembic", "current"]\n')
    text = str(err)
    assert f"key `migrations.{key}`" in text, text
    assert "`migrations.command` is empty" in text and "built-in engine" in text, text
    assert f"remove `{key}`" in text and "docs/migration-tools.md" in text, text
    assert str(tmp_path / "conveyor.toml") in text or err.file == str(tmp_path / "conveyor.toml")
    # with the tool's own command, the same key loads; an empty list is fine without it
    load_config(write(tmp_path, BASE + '\n[migrations]\ncommand = ["alembic", "upgrade", '
                      f'"head"]\n{key} = ["alembic", "current"]\n'))
    load_config(write(tmp_path, BASE + f'\n[migrations]\n{key} = []\n'))
