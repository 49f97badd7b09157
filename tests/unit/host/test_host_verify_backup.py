"""verify_backup.sh: a backup is restorable: not empty, and pg_restore --list reads it."""

TOC = ";\n215; 1259 16386 TABLE public t app\n3340; 0 16386 TABLE DATA public t app\n"


def test_a_readable_backup_prints_its_size_and_objects(docker, tmp_path):
    f = tmp_path / "b.dump"
    f.write_text("PGDMP-data")
    docker.answer("EXEC_PG_RESTORE", out=TOC, stdin=tmp_path / "stdin")

    r = docker.run("verify_backup", str(f), "db")

    assert (r.returncode, r.stdout) == (0, "::backup:: 10 2\n")
    assert docker.calls() == [["exec", "-i", "db", "pg_restore", "--list"]]
    assert (tmp_path / "stdin.1").read_text() == "PGDMP-data"


def test_a_missing_or_empty_file_exits_20(docker, tmp_path):
    (tmp_path / "empty.dump").write_text("")
    for f in (tmp_path / "missing.dump", tmp_path / "empty.dump"):
        r = docker.run("verify_backup", str(f), "db")
        assert (r.returncode, r.stderr) == (20, f"no backup file {f} (or it is empty)\n")
    assert docker.calls() == []


def test_an_unreadable_file_exits_21(docker, tmp_path):
    f = tmp_path / "b.dump"
    f.write_text("garbage")
    docker.answer("EXEC_PG_RESTORE", rc=1)

    r = docker.run("verify_backup", str(f), "db")

    assert (r.returncode, r.stdout) == (21, "")
