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
    r = _cli("config", "check", "-C", str(EXAMPLE), "--env", "prod", "--json",
             env={"NOTES_PROD_DB_PASSWORD": "sup3r-s3cret-value"})
    assert r.returncode == 0, r.stderr
    assert "sup3r-s3cret-value" not in r.stdout
    assert "postgresql://notes:***@notes-prod-db:5432/notes" in r.stdout


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
