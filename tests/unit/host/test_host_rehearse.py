"""rehearse.sh: a scratch restore of a backup in ONE `docker exec` of the database's container
(free disk first, row counts after), always dropped on failure; and backup.sh's row counts of
the dump (its 9th argument).

The restore's inner script really runs here (with `sh`), against fake `psql`, `pg_restore` and
`df` that record their calls and stdin; the fake `docker exec` runs what it is given."""

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from conveyor import host

CREATE = 'CREATE DATABASE "app_rehearse_x" OWNER "app" TEMPLATE template0'
END = "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = 'x'"
DROP = 'DROP DATABASE IF EXISTS "app_rehearse_x"'
COUNTS = ("SELECT count(*), 'public.notes' FROM ONLY public.notes;\n"
          "SELECT count(*), 'public.tags' FROM ONLY public.tags;\n")
DF = "Filesystem 1024-blocks Used Available Capacity Mounted on\n/dev/x 100 1 {} 1% /d\n"

# docker: `exec [-i] CONTAINER PROG ARGS...` runs PROG ARGS here (the fakes first on PATH)
FAKE_DOCKER = r"""#!/bin/sh
{ printf docker; for a in "$@"; do printf '\037%s' "$a"; done; printf '\036'; } >> "$FAKE_LOG"
[ "$1" = exec ] || exit 99
shift; while [ "${1#-}" != "$1" ]; do shift; done
shift
exec "$@"
"""
# psql, pg_restore, df: the n-th call prints $FAKE_<PROG>_OUT_<n> (else _OUT), saves its stdin
# to <log>.<prog>.<n>, exits with the n-th of $FAKE_<PROG>_RC ("0 1": the last one from then on)
FAKE_TOOL = r"""#!/bin/sh
prog=${0##*/}
{ printf '%s' "$prog"; for a in "$@"; do printf '\037%s' "$a"; done; printf '\036'; } \
  >> "$FAKE_LOG"
key=$(printf '%s' "$prog" | tr 'a-z_' 'A-Z_')
n=$(( $(cat "$FAKE_LOG.$key" 2>/dev/null || echo 0) + 1 ))
echo "$n" > "$FAKE_LOG.$key"
cat > "$FAKE_LOG.$prog.$n"
eval "out=\${FAKE_${key}_OUT_$n-\${FAKE_${key}_OUT-}}; codes=\${FAKE_${key}_RC-0}"
printf '%s' "$out"
i=1; rc=0
for c in $codes; do if [ "$i" -le "$n" ]; then rc=$c; fi; i=$((i + 1)); done
exit "$rc"
"""


class Db:
    """The database's container, faked: its tools' calls and what they read on stdin."""

    def __init__(self, root: Path) -> None:
        self.root, self.log = root, root / "calls.log"
        bin_dir = root / "bin"
        bin_dir.mkdir()
        for name, text in (("docker", FAKE_DOCKER), ("psql", FAKE_TOOL),
                           ("pg_restore", FAKE_TOOL), ("df", FAKE_TOOL)):
            (bin_dir / name).write_text(text)
            (bin_dir / name).chmod(0o755)
        self.env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
                    "FAKE_LOG": str(self.log), "FAKE_PSQL_OUT_1": "/var/lib/postgresql/data\n",
                    "FAKE_DF_OUT": DF.format(999999)}

    def set(self, **env: str) -> None:
        self.env.update({f"FAKE_{k}": v for k, v in env.items()})

    def calls(self) -> list[list[str]]:
        if not self.log.exists():
            return []
        return [c.split("\x1f") for c in self.log.read_text().split("\x1e")[:-1]]

    def stdin(self, prog: str, n: int) -> bytes:
        return (self.root / f"calls.log.{prog}.{n}").read_bytes()

    def run(self, *args: str, input: bytes | str = b"") -> subprocess.CompletedProcess[str]:
        data = input.encode() if isinstance(input, str) else input
        r = subprocess.run(host.argv("rehearse", *args), input=data, capture_output=True,
                           check=False, env=self.env, cwd=self.root, timeout=30)
        return subprocess.CompletedProcess(r.args, r.returncode, r.stdout.decode(),
                                           r.stderr.decode())

    def restore(self, dump: Path) -> subprocess.CompletedProcess[str]:
        return self.run("restore", "db", "app", "app_rehearse_x", str(dump), CREATE, END, DROP,
                        input=COUNTS)


@pytest.fixture
def db(tmp_path: Path) -> Db:
    return Db(tmp_path)


def dump_file(tmp_path: Path, data: bytes = b"P" * 2048) -> Path:
    f = tmp_path / "b.dump"
    f.write_bytes(data)
    return f


def psql(*args: str, db: str = "postgres") -> list[str]:
    return ["psql", "-XAtq", "-v", "ON_ERROR_STOP=1", "-U", "app", "-d", db, *args]


DROP_CALL = psql("-c", END, "-c", DROP)


def test_a_restore_is_one_docker_exec_that_restores_the_dump_and_counts_its_rows(db, tmp_path):
    # every byte of the dump reaches pg_restore, even lines that look like the framing
    data = b"PGDMP\x00\x01\n::conveyor-dump::\nSELECT 1;\n" + bytes(range(256)) * 40
    dump = dump_file(tmp_path, data)
    db.set(PSQL_OUT_3="7|public.notes\n0|public.tags\n")

    r = db.restore(dump)

    assert r.returncode == 0, r.stderr
    needed = (2 * len(data) + 1023) // 1024  # kB, rounded up
    assert r.stdout.splitlines() == [f"::space:: 999999 {needed}", "::restored::",
                                     "7|public.notes", "0|public.tags"]
    calls = db.calls()
    assert [c[0] for c in calls] == ["docker", "psql", "df", "psql", "pg_restore", "psql"]
    assert calls[0][:5] == ["docker", "exec", "-i", "db", "sh"]  # the ONE round trip
    assert calls[1] == psql("-c", "SHOW data_directory")
    assert calls[2] == ["df", "-Pk", "/var/lib/postgresql/data"]
    assert calls[3] == psql("-c", CREATE)
    assert calls[4] == ["pg_restore", "--exit-on-error", "--single-transaction",
                        "--no-password", "-U", "app", "-d", "app_rehearse_x"]
    assert calls[5] == psql("-f", "-", db="app_rehearse_x")
    assert db.stdin("pg_restore", 1) == data
    assert db.stdin("psql", 3).decode() == COUNTS + "\n"  # the SQL, before the marker
    assert DROP_CALL not in calls  # kept for the migrations; the step drops it afterwards


def test_not_enough_free_disk_exits_30_before_anything_is_created(db, tmp_path):
    db.set(DF_OUT=DF.format(3))

    r = db.restore(dump_file(tmp_path))

    assert r.returncode == 30
    assert r.stdout == "::space:: 3 4\n"  # 2 x 2048 bytes = 4 kB needed
    assert "3 kB free in /var/lib/postgresql/data, 4 kB needed (twice the size of the dump)" \
        in r.stderr
    assert [c[0] for c in db.calls()] == ["docker", "psql", "df"]  # no CREATE, no pg_restore


def test_unreadable_free_disk_exits_31(db, tmp_path):
    db.set(DF_OUT="df: cannot read\n")
    r = db.restore(dump_file(tmp_path))
    assert r.returncode == 31 and "cannot read the free disk" in r.stderr
    assert [c[0] for c in db.calls()] == ["docker", "psql", "df"]


def test_a_failed_create_exits_32(db, tmp_path):
    db.set(PSQL_RC="0 1")
    r = db.restore(dump_file(tmp_path))
    assert r.returncode == 32
    assert "pg_restore" not in [c[0] for c in db.calls()]


def test_a_failed_pg_restore_drops_the_scratch_database_and_exits_33(db, tmp_path):
    db.set(PG_RESTORE_RC="1")

    r = db.restore(dump_file(tmp_path))

    assert r.returncode == 33
    assert db.calls()[-1] == DROP_CALL
    assert "::restored::" not in r.stdout


def test_a_failed_count_drops_the_scratch_database_and_exits_34(db, tmp_path):
    db.set(PSQL_RC="0 0 1 0")  # data_directory, create, COUNT fails, drop

    r = db.restore(dump_file(tmp_path))

    assert r.returncode == 34
    assert db.calls()[-1] == DROP_CALL


def test_sql_cut_short_before_the_dump_creates_nothing(db, tmp_path):
    db.restore(dump_file(tmp_path))
    inner = db.calls()[0][6]  # docker exec -i db sh -c INNER NAME ARGS...
    db.log.unlink()
    r = subprocess.run(["sh", "-c", inner, "inner", "app", "app_rehearse_x", CREATE, END, DROP,
                        "4"], input=COUNTS.encode(), capture_output=True, env=db.env,
                       check=False, timeout=30)
    assert r.returncode == 31 and b"without the dump" in r.stderr
    assert db.calls() == []


def test_the_inner_script_is_shellcheck_clean(db, tmp_path):
    exe = shutil.which("shellcheck")
    if exe is None:
        pytest.fail("shellcheck is not installed (apt-get install shellcheck)", pytrace=False)
    db.restore(dump_file(tmp_path))
    script = tmp_path / "inner.sh"
    script.write_text("# shellcheck shell=sh\n" + db.calls()[0][6] + "\n")
    r = subprocess.run([exe, "-s", "sh", str(script)], capture_output=True, text=True,
                       check=False, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr


def test_a_missing_dump_exits_31_and_drop_mode_drops(db, tmp_path):
    r = db.restore(tmp_path / "nope.dump")
    assert r.returncode == 31 and db.calls() == []

    r = db.run("drop", "db", "app", "app_rehearse_x", "", "", END, DROP)
    assert (r.returncode, r.stdout) == (0, "::dropped::\n")
    assert db.calls() == [["docker", "exec", "db", *DROP_CALL], DROP_CALL]


def test_a_failed_drop_exits_35(db, tmp_path):
    db.set(PSQL_RC="1")
    r = db.run("drop", "db", "app", "app_rehearse_x", "", "", END, DROP)
    assert r.returncode == 35


# --------------------------------------------------------------------------- backup.sh rows

PATTERN = "^shop-prod-[0-9]{8}T[0-9]{6}Z-[0-9a-f]{4}[.]dump$"
NAME = "shop-prod-20260105T000000Z-0005"
META = json.dumps({"id": "20260105T000000Z-0005", "reason": "manual"}) + "\n"
# one answer for both pg_restore calls: the --list TOC and the --data-only COPY blocks
RESTORE_OUT = (";\n215; 1259 16386 TABLE public t app\n"
               "COPY public.notes (id, title) FROM stdin;\nx\ty\nx\tz\n\\.\n"
               'COPY public."We""ird" (a) FROM stdin;\n\\.\n'
               "COPY public.big  FROM stdin;\na\nb\nc\n\\.\n")


def test_backup_with_rows_counts_the_dump_and_keeps_them_in_the_metadata(docker, tmp_path):
    d = tmp_path / "backups"
    docker.answer("EXEC_PG_DUMP", out="PGDMP-data")
    docker.answer("EXEC_PG_RESTORE", out=RESTORE_OUT)

    r = docker.run("backup", str(d), NAME, "db", "app", "appdb", "3", PATTERN, "", "rows",
                   input=META)

    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == ["::backup:: 10 1", "::rows:: 2 public.notes",
                                     '::rows:: 0 public."We""ird"', "::rows:: 3 public.big"]
    meta = json.loads((d / f"{NAME}.json").read_text())
    assert meta == {**json.loads(META),
                    "rows": {"public.notes": 2, 'public."We""ird"': 0, "public.big": 3}}
    assert docker.calls()[2] == ["exec", "-i", "db", "pg_restore", "--data-only", "--file=-"]
    assert (d / f"{NAME}.dump").read_text() == "PGDMP-data"


def test_backup_with_rows_whose_data_cannot_be_read_exits_13(docker, tmp_path):
    d = tmp_path / "backups"
    docker.answer("EXEC_PG_DUMP", out="PGDMP-data")
    docker.answer("EXEC_PG_RESTORE", out=RESTORE_OUT, rc="0 1")

    r = docker.run("backup", str(d), NAME, "db", "app", "appdb", "3", PATTERN, "", "rows",
                   input=META)

    assert (r.returncode, r.stderr) == (13, "pg_restore cannot read the dump's data\n")
    assert list(d.iterdir()) == []
