"""Two `conveyor migrate run` processes started at the same moment on a fresh database: both
exit 0 and every migration is applied once (the advisory lock is taken before the tables are
even created). Real processes, released together by a barrier on their stdin."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from conveyor.migrations.discovery import discover
from tests.integration.test_migrations_common import CORPUS, rows, write_migration

pytestmark = pytest.mark.integration

# `python -m conveyor.migrations ARGS`: imports the engine, says "ready" on stderr, then waits for
# one byte on stdin (the barrier)
_CHILD = (
    "import runpy, sys\n"
    "import conveyor.migrations.cli, conveyor.migrations.engine\n"
    "sys.stderr.write('ready\\n'); sys.stderr.flush()\n"
    "sys.stdin.buffer.read(1)\n"
    "sys.argv = ['conveyor.migrations'] + sys.argv[1:]\n"
    "runpy.run_module('conveyor.migrations', run_name='__main__', alter_sys=True)\n"
)


def start_together(*argvs: list[str], stagger: float = 0.0) -> list[subprocess.CompletedProcess]:
    env = dict(os.environ)
    env.pop("DATABASE_URL", None)
    procs = [subprocess.Popen([sys.executable, "-c", _CHILD, *argv], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
             for argv in argvs]
    for p in procs:  # both interpreters started and are blocked on the barrier
        assert p.stderr.readline() == "ready\n"
    for p in procs:  # release them back to back (or `stagger` seconds apart)
        p.stdin.write("x")
        p.stdin.flush()
        time.sleep(stagger)
    for p in procs:
        p.stdin.close()
        p.stdin = None  # communicate() must not touch it again
    out = []
    for p in procs:
        stdout, stderr = p.communicate(timeout=120)
        out.append(subprocess.CompletedProcess(p.args, p.returncode, stdout, stderr))
    return out


@pytest.mark.parametrize("round_", range(5))
def test_mig_two_runners_at_once_both_succeed_and_apply_once(pg_server, tmp_path, round_):
    url = pg_server.createdb(f"t_mig_concurrent_{round_}")
    args = ["run", "--database-url", url, "--migration-dir", str(CORPUS)]
    a, b = start_together(args, args)
    assert a.returncode == 0, a.stderr
    assert b.returncode == 0, b.stderr
    n = len(discover(CORPUS))
    applied = [r.stdout.count("Applied ") for r in (a, b)]
    assert sorted(applied) == [0, n], (a.stdout, b.stdout)
    assert any("Nothing to do" in r.stdout for r in (a, b))
    assert rows(url, "SELECT count(*), count(DISTINCT version) FROM __diesel_schema_migrations") \
        == [(n, n)]
    assert rows(url, "SELECT count(*) FROM __conveyor_migrations")[0][0] == n


def test_mig_second_runner_waits_for_a_slow_first(pg_url, tmp_path):
    mdir = tmp_path / "m"
    write_migration(mdir, "1_slow", "CREATE TABLE counter (n int);\nSELECT pg_sleep(1.5);\n"
                                    "INSERT INTO counter VALUES (1);\n")
    write_migration(mdir, "2_more", "INSERT INTO counter VALUES (2);\n")
    args = ["run", "--database-url", pg_url, "--migration-dir", str(mdir)]
    t0 = time.monotonic()
    a, b = start_together(args, args)
    assert (a.returncode, b.returncode) == (0, 0), (a.stderr, b.stderr)
    assert time.monotonic() - t0 >= 1.5
    assert rows(pg_url, "SELECT n FROM counter ORDER BY n") == [(1,), (2,)]
    assert sorted(r.stdout.count("Applied ") for r in (a, b)) == [0, 2]


def test_mig_second_runner_gives_up_after_lock_timeout_naming_the_holder(pg_url, tmp_path):
    mdir = tmp_path / "m"
    write_migration(mdir, "1_slow", "SELECT pg_sleep(4);\n")
    slow = ["run", "--database-url", pg_url, "--migration-dir", str(mdir)]
    impatient = slow + ["--lock-timeout", "1"]
    ok, timed_out = start_together(slow, impatient, stagger=1.0)
    assert ok.returncode == 0 and "Applied 1_slow" in ok.stdout
    assert timed_out.returncode == 1
    err = timed_out.stderr
    assert "Timed out after 1 s waiting for the migration lock" in err
    assert "pg_advisory_lock(7165066986957401970)" in err
    assert "application 'conveyor migrate'" in err and "pid " in err
    assert rows(pg_url, "SELECT count(*) FROM __diesel_schema_migrations")[0][0] == 1
