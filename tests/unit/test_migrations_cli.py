"""The argparse CLI without a database: usage, configuration and discovery errors (exit 2),
an unreachable database (exit 1) and secrets never printed."""

from __future__ import annotations

import subprocess
import sys

from conveyor.migrations.cli import main


def test_usage_errors_exit_2(capsys):
    assert main(["frobnicate"]) == 2
    assert "invalid choice" in capsys.readouterr().err
    assert main(["revert", "-n", "1", "--all"]) == 2
    assert main([]) == 2


def test_help_exits_0(capsys):
    assert main(["--help"]) == 0
    assert "run" in capsys.readouterr().out
    assert main(["revert", "--help"]) == 0


def test_without_url_or_config_exit_2_with_a_hint(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("DATABASE_URL", raising=False)
    assert main(["status", "-C", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "conveyor.toml" in err and "--database-url" in err and "Traceback" not in err


def test_discovery_error_exit_2_before_connecting(tmp_path, capsys):
    (tmp_path / "2024-01-01-000000_empty").mkdir()
    rc = main(["run", "--database-url", "postgresql://u:pw@127.0.0.1:1/x",
               "--migration-dir", str(tmp_path)])
    assert rc == 2
    assert "is empty" in capsys.readouterr().err


def test_unreachable_database_exit_1_and_password_never_printed(tmp_path, capsys):
    rc = main(["run", "--database-url", "postgresql://app:hunter2@127.0.0.1:1/app",
               "--migration-dir", str(tmp_path), "--json"])
    assert rc == 1
    out, err = capsys.readouterr()
    assert "hunter2" not in out + err
    assert "Cannot connect" in err and "app:***@127.0.0.1:1/app" in err
    assert '"ok": false' in out


def test_python_dash_m_entry_point(tmp_path):
    r = subprocess.run([sys.executable, "-m", "conveyor.migrations", "plan", "--database-url",
                        "postgresql://app:hunter2@127.0.0.1:1/app", "--migration-dir",
                        str(tmp_path)], capture_output=True, text=True, check=False)
    assert r.returncode == 1 and "hunter2" not in r.stdout + r.stderr
    assert "Traceback" not in r.stderr


def test_migrate_help_prints_the_exit_codes():
    for argv in (["migrate", "--help"], ["migrate", "status", "--help"]):
        r = subprocess.run([sys.executable, "-m", "conveyor.main", *argv], capture_output=True,
                           text=True, check=False)
        assert r.returncode == 0, r.stderr
        text = " ".join(r.stdout.split())
        assert "Exit codes: 0 ok; 1 a migration failed" in text
        assert "3 `status` or `plan` lists blocking problems" in text and "130 interrupted" in text
