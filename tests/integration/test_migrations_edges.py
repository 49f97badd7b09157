"""The engine's edges of issue 15: each migration's own duration in a batch (11), row data kept
out of messages unless --verbose (14), `migrate status` exiting non-zero on blocking problems
and showing run_on with its zone (5, 10)."""

from __future__ import annotations

import json

import pytest

from conveyor.migrations import Migrator
from conveyor.migrations.cli_args import EXIT_BLOCKED
from tests.integration.test_migrations_common import cli, rows, write_migration

pytestmark = pytest.mark.integration


def test_mig_each_duration_in_a_batch_is_the_migrations_own(pg_url, tmp_path, capsys):
    mdir = tmp_path / "m"
    write_migration(mdir, "1_quick", "CREATE TABLE a (id int);\n")
    write_migration(mdir, "2_slow", "SELECT pg_sleep(0.4);\n")
    write_migration(mdir, "3_quick", "CREATE TABLE b (id int);\n")
    write_migration(mdir, "4_quick", "SELECT 1;\n")
    code, out, err = cli(capsys, "run", "--json", "--database-url", pg_url, "--migration-dir",
                         str(mdir))
    assert code == 0, err
    applied = {s["version"]: s["duration_ms"] for s in json.loads(out)["applied"]}
    assert applied["2"] >= 400
    # the ones after the slow one are not charged with its time (the batch's elapsed time)
    assert applied["1"] < 200 and applied["3"] < 200 and applied["4"] < 200, applied
    stored = dict(rows(pg_url, "SELECT version, duration_ms FROM __conveyor_migrations"))
    assert stored == applied


def test_mig_durations_of_a_single_transaction_redo_and_of_reverts(pg_url, tmp_path):
    mdir = tmp_path / "m"
    write_migration(mdir, "1_slow", "SELECT pg_sleep(0.3);\n", "SELECT pg_sleep(0.3);\n")
    write_migration(mdir, "2_quick", "SELECT 2;\n", "SELECT 2;\n")
    m = Migrator(pg_url, mdir)
    m.run()
    res = m.redo(all=True)
    d = {(s.version, s.direction): s.duration_ms for s in res.steps}
    assert d[("2", "down")] < 200 and d[("1", "down")] >= 300
    assert d[("1", "up")] >= 300 and d[("2", "up")] < 200, d
    assert dict(rows(pg_url, "SELECT version, duration_ms FROM __conveyor_migrations")) == {
        "1": d[("1", "up")], "2": d[("2", "up")]}


@pytest.fixture
def failing_rows(pg_url, tmp_path):
    mdir = tmp_path / "m"
    write_migration(mdir, "1_users", "CREATE TABLE users (id int PRIMARY KEY, email text,"
                                     " age int CHECK (age > 0));\n"
                                     "INSERT INTO users VALUES (1, 'alice@example.org', 30),"
                                     " (2, 'ALICE@example.org', 20);\n")
    return mdir


@pytest.mark.parametrize(("sql", "masked"), [
    ("UPDATE users SET age = -age;\n", "Failing row contains (***)"),
    ("CREATE UNIQUE INDEX users_email ON users (lower(email));\n",
     "Key (lower(email))=(***) is duplicated"),
])
def test_mig_row_data_is_masked_unless_verbose(pg_url, failing_rows, capsys, sql, masked):
    write_migration(failing_rows, "2_bad", sql)
    args = ("--database-url", pg_url, "--migration-dir", str(failing_rows))
    code, out, err = cli(capsys, "run", "--json", *args)
    assert code == 1 and masked in err and "alice" not in err.lower(), err
    error = json.loads(out)["error"]
    assert "alice" not in json.dumps(error).lower() and masked in error["detail"]
    assert error["line"] == 1 and error["file"].endswith("2_bad/up.sql")
    code, out, err = cli(capsys, "run", "-v", *args)
    assert code == 1 and "alice@example.org" in err.lower() and "Traceback" not in err


def test_mig_status_exits_3_on_blocking_problems(pg_url, tmp_path, capsys):
    mdir = tmp_path / "m"
    d = write_migration(mdir, "2024-05-01-120000_a", "CREATE TABLE a (id int);\n")
    args = ("--database-url", pg_url, "--migration-dir", str(mdir))
    assert cli(capsys, "run", *args)[0] == 0
    code, out, _ = cli(capsys, "status", *args)
    assert code == 0
    run_on = rows(pg_url, "SELECT to_char(run_on, 'YYYY-MM-DD HH24:MI:SS')"
                          " FROM __diesel_schema_migrations")[0][0]
    assert f"applied {run_on} UTC" in out  # run_on with its zone
    (d / "up.sql").write_text("CREATE TABLE a (id bigint);\n")  # edited after it was applied
    code, out, err = cli(capsys, "status", *args)
    assert code == EXIT_BLOCKED == 3 and "edited" in out and "will refuse" in err
    code, out, _ = cli(capsys, "status", "--json", *args)
    assert code == 3 and json.loads(out)["run_would_refuse"] is True
    code, _, _ = cli(capsys, "plan", *args)
    assert code == 3
    d.rename(mdir / ".gone")  # now missing on disk
    code, out, _ = cli(capsys, "status", *args)
    assert code == 3 and "missing" in out


#: sessions of this database in pg_sleep (by wait event: a migration batch's text is cut at
#: track_activity_query_size, and a text match also matched this query's own text in a
#: checking session still going away, so the SIGINT could come before the slow migration)
SLEEPING = ("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
            " AND wait_event = 'PgSleep'")


def test_mig_ctrl_c_cancels_the_running_migration(pg_url, tmp_path):
    """SIGINT during a long migration: the query is cancelled on the server (not left running),
    its transaction rolled back, exit 130."""
    import os
    import signal
    import subprocess
    import sys
    import time

    mdir = tmp_path / "m"
    write_migration(mdir, "1_quick", "CREATE TABLE quick (id int);\n")
    write_migration(mdir, "2_slow", "CREATE TABLE slow (id int);\nSELECT pg_sleep(60);\n")
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    # SIGINT as a terminal delivers it, even when this test runs in a background job (which
    # inherits SIGINT ignored, and so would the engine: it then never sees the Ctrl-C)
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)  # not SIG_IGN at exec
    try:
        p = subprocess.Popen([sys.executable, "-m", "conveyor.migrations", "run",
                              "--database-url", pg_url, "--migration-dir", str(mdir)], env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    finally:
        signal.signal(signal.SIGINT, previous if previous is not None else signal.SIG_DFL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not rows(pg_url, SLEEPING)[0][0]:
        time.sleep(0.1)
    t0 = time.monotonic()
    p.send_signal(signal.SIGINT)
    _out, err = p.communicate(timeout=20)
    assert p.returncode == 130, err
    assert time.monotonic() - t0 < 10 and "interrupted" in err
    assert rows(pg_url, SLEEPING)[0][0] == 0
    assert rows(pg_url, "SELECT version FROM __diesel_schema_migrations") == [("1",)]
    assert rows(pg_url, "SELECT to_regclass('slow') IS NULL")[0][0] is True


def test_a_lost_cancel_is_sent_again(pg_url, monkeypatch):
    """Ctrl-C while the server is between two commands of a query: PostgreSQL drops that cancel
    and the query goes on. The first cancel is dropped here on purpose; the engine sends it
    again and the query stops, instead of waiting the whole pg_sleep(60)."""
    import signal
    import threading
    import time

    import psycopg

    from conveyor.migrations import wire

    monkeypatch.setattr(wire, "CANCEL_WAIT", 0.5, raising=False)
    sent: list[str] = []
    real_cancel = psycopg.Connection.cancel_safe

    def cancel_safe(self, timeout=30.0):
        sent.append("lost" if not sent else "sent")
        if len(sent) > 1:
            real_cancel(self, timeout=timeout)

    monkeypatch.setattr(psycopg.Connection, "cancel_safe", cancel_safe)
    # Ctrl-C raises KeyboardInterrupt here even in a background job (SIGINT inherited ignored)
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    request_restore = previous if previous is not None else signal.SIG_DFL

    def interrupt_when_sleeping():
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not rows(pg_url, SLEEPING)[0][0]:
            time.sleep(0.1)
        os.kill(os.getpid(), signal.SIGINT)

    import os

    conn = psycopg.connect(pg_url, autocommit=True)
    try:
        threading.Thread(target=interrupt_when_sleeping, daemon=True).start()
        t0 = time.monotonic()
        with pytest.raises(KeyboardInterrupt):
            wire.simple(conn, "SELECT 1; SELECT pg_sleep(60); SELECT 2;")
        assert time.monotonic() - t0 < 30
        assert sent[:2] == ["lost", "sent"]
        assert rows(pg_url, SLEEPING)[0][0] == 0
        assert wire.execute(conn, "SELECT 42") == [(42,)]  # the connection is usable again
    finally:
        conn.close()
        signal.signal(signal.SIGINT, request_restore)
