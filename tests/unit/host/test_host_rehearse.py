"""rehearse.sh: a scratch restore of a backup (free disk first, row counts after), always
dropped on failure; and backup.sh's row counts of the dump (its 9th argument)."""

import json

CREATE = 'CREATE DATABASE "app_rehearse_x" OWNER "app" TEMPLATE template0'
END = "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = 'x'"
DROP = 'DROP DATABASE IF EXISTS "app_rehearse_x"'
COUNTS = "SELECT count(*), 'public.notes' FROM ONLY public.notes;\n"


def restore(docker, dump):
    return docker.run("rehearse", "restore", "db", "app", "app_rehearse_x", str(dump), CREATE,
                      END, DROP, input=COUNTS)


def dump_file(tmp_path, size=2048):
    f = tmp_path / "b.dump"
    f.write_bytes(b"P" * size)
    return f


DROP_CALL = ["exec", "db", "psql", "-XAtq", "-v", "ON_ERROR_STOP=1", "-U", "app", "-d",
             "postgres", "-c", END, "-c", DROP]


def test_not_enough_free_disk_exits_30_before_anything_is_created(docker, tmp_path):
    docker.answer("EXEC_PSQL", out="/var/lib/postgresql/data")
    docker.answer("EXEC_DF", out="Filesystem 1024-blocks Used Available Capacity Mounted\n"
                                 "/dev/x 100 97 3 97% /var/lib/postgresql/data\n")

    r = restore(docker, dump_file(tmp_path))

    assert r.returncode == 30
    assert r.stdout == "::space:: 3 4\n"  # 2 x 2048 bytes = 4 kB needed
    assert "3 kB free in /var/lib/postgresql/data, 4 kB needed (twice the dump's size)" \
        in r.stderr
    calls = docker.calls()
    assert calls[1] == ["exec", "db", "df", "-Pk", "/var/lib/postgresql/data"]
    assert len(calls) == 2  # no CREATE DATABASE, no pg_restore


def test_a_restore_counts_its_rows_with_the_sql_on_stdin(docker, tmp_path):
    docker.answer("EXEC_PSQL", out="7|public.notes\n", stdin=tmp_path / "psql-in")
    docker.answer("EXEC_DF", out="h\n/dev/x 1 1 999999 1% /d\n")
    docker.answer("EXEC_PG_RESTORE", stdin=tmp_path / "restore-in")
    dump = dump_file(tmp_path)

    r = restore(docker, dump)

    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == "::space:: 999999 4" and "::restored::" in lines
    assert lines[-1] == "7|public.notes"
    calls = docker.calls()
    assert calls[2] == ["exec", "db", "psql", "-XAtq", "-v", "ON_ERROR_STOP=1", "-U", "app",
                        "-d", "postgres", "-c", CREATE]
    assert calls[3] == ["exec", "-i", "db", "pg_restore", "--exit-on-error",
                        "--single-transaction", "--no-password", "-U", "app", "-d",
                        "app_rehearse_x"]
    assert calls[4] == ["exec", "-i", "db", "psql", "-XAtq", "-v", "ON_ERROR_STOP=1", "-U",
                        "app", "-d", "app_rehearse_x", "-f", "-"]
    assert (tmp_path / "restore-in.1").read_bytes() == dump.read_bytes()
    assert (tmp_path / "psql-in.3").read_text() == COUNTS
    assert DROP_CALL not in calls  # kept for the migrations; the step drops it afterwards


def test_a_failed_pg_restore_drops_the_scratch_database_and_exits_33(docker, tmp_path):
    docker.answer("EXEC_DF", out="h\n/dev/x 1 1 999999 1% /d\n")
    docker.answer("EXEC_PG_RESTORE", rc=1)

    r = restore(docker, dump_file(tmp_path))

    assert r.returncode == 33
    assert docker.calls()[-1] == DROP_CALL


def test_a_failed_count_drops_the_scratch_database_and_exits_34(docker, tmp_path):
    docker.answer("EXEC_DF", out="h\n/dev/x 1 1 999999 1% /d\n")
    docker.answer("EXEC_PSQL", rc="0 0 1 0")  # data_directory, create, COUNT fails, drop

    r = restore(docker, dump_file(tmp_path))

    assert r.returncode == 34
    assert docker.calls()[-1] == DROP_CALL


def test_a_missing_dump_exits_31_and_drop_mode_drops(docker, tmp_path):
    r = restore(docker, tmp_path / "nope.dump")
    assert r.returncode == 31 and docker.calls() == []

    r = docker.run("rehearse", "drop", "db", "app", "app_rehearse_x", "", "", END, DROP)
    assert (r.returncode, r.stdout) == (0, "::dropped::\n")
    assert docker.calls() == [DROP_CALL]


def test_a_failed_drop_exits_35(docker, tmp_path):
    docker.answer("EXEC_PSQL", rc=1)
    r = docker.run("rehearse", "drop", "db", "app", "app_rehearse_x", "", "", END, DROP)
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
