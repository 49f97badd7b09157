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


def test_fast_path_parses_like_argparse():
    """`run`/`status`/`plan` are parsed without argparse when they can be; the result must be
    what argparse gives, and anything unusual must go to argparse."""
    from conveyor.migrations.cli_args import fast_parse as _fast_parse
    from conveyor.migrations.cli_args import parser as _parser

    def both(command, argv):
        fast = _fast_parse(command, argv)
        slow = vars(_parser(command).parse_args(argv))
        return (vars(fast) if fast is not None else None), slow

    for argv in (
        [],
        ["--database-url", "postgresql://u:p@h/d", "--migration-dir", "m dir"],
        ["--database-url=postgresql://u:p@h/d", "--migration-dir=m", "--json", "-v"],
        ["-C", "proj", "--env", "prod", "--lock-timeout", "2.5", "--allow-drift"],
        ["--project-dir", "p", "--verbose", "--lock-timeout=1e1", "--database-url="],
        ["--env", "a", "--env", "b"],  # the last one wins, as with argparse
    ):
        for command in ("run", "status", "plan"):
            fast, slow = both(command, argv)
            assert fast == slow, (command, argv)
    for argv in (
        ["--data", "x"],  # abbreviation: argparse's business
        ["-h"], ["--help"], ["--json=yes"], ["-Cproj"], ["-C=proj"], ["-vC", "p"],
        ["--database-url"], ["--database-url", "-x"], ["--lock-timeout", "soon"],
        ["--lock-timeout", "-1"], ["extra"], ["--", "x"],
    ):
        assert _fast_parse("run", argv) is None, argv
    assert _fast_parse("revert", []) is None and _fast_parse("generate", ["x"]) is None


def test_migrate_run_start_up_imports_stay_lean(tmp_path):
    """The start-up-critical path of `conveyor migrate run`, up to connecting, imports neither
    argparse (nor the re/gettext/shutil it pulls in) nor typing, hashlib or pathlib."""
    (tmp_path / "2024-01-01-000000_a").mkdir()
    (tmp_path / "2024-01-01-000000_a" / "up.sql").write_text("SELECT 1;\n")
    code = (
        "import sys\n"
        "from conveyor.main import main\n"
        "from conveyor.migrations import pq\n"
        "def connect(conninfo):\n"
        "    loaded = [m for m in ('argparse', 're', 'typing', 'hashlib', 'pathlib', 'psycopg',\n"
        "                          'gettext', 'shutil', 'enum') if m in sys.modules]\n"
        "    print('loaded:', *loaded)\n"
        "    raise SystemExit(0)\n"
        "pq.connect = connect\n"
        "main(['migrate', 'run', '--database-url', 'postgresql://u:pw@127.0.0.1:1/x',\n"
        f"      '--migration-dir', {str(tmp_path)!r}])\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["loaded:"], r.stdout
