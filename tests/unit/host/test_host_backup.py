"""backup.sh: pg_dump, verified before it counts, stored with its metadata; retention."""

import json

PATTERN = "^shop-prod-[0-9]{8}T[0-9]{6}Z-[0-9a-f]{4}[.]dump$"
NAME = "shop-prod-20260105T000000Z-0005"
META = json.dumps({"id": "20260105T000000Z-0005", "reason": "manual"}) + "\n"
TOC = ";\n; Archive created at 2026-01-05\n;\n215; 1259 16386 TABLE public t app\n" \
      "3340; 0 16386 TABLE DATA public t app\n"


def run(docker, d, keep="3", protect=""):
    return docker.run("backup", str(d), NAME, "db", "app", "appdb", keep, PATTERN, protect,
                      input=META)


def test_a_failed_pg_dump_exits_10_and_leaves_no_partial_file(docker, tmp_path):
    d = tmp_path / "backups"
    docker.answer("EXEC_PG_DUMP", out="half a dump", rc=1)

    r = run(docker, d)

    assert (r.returncode, r.stdout, r.stderr) == (10, "", "pg_dump failed\n")
    assert list(d.iterdir()) == []
    assert docker.calls() == [["exec", "db", "pg_dump", "--format=custom", "--no-password",
                               "-U", "app", "-d", "appdb"]]


def test_an_empty_dump_exits_11(docker, tmp_path):
    d = tmp_path / "backups"

    r = run(docker, d)

    assert (r.returncode, r.stderr) == (11, "the dump is empty\n")
    assert list(d.iterdir()) == []


def test_an_unreadable_dump_exits_12(docker, tmp_path):
    d = tmp_path / "backups"
    docker.answer("EXEC_PG_DUMP", out="not a dump")
    docker.answer("EXEC_PG_RESTORE", rc=1)

    r = run(docker, d)

    assert (r.returncode, r.stderr) == (12, "pg_restore --list cannot read the dump\n")
    assert list(d.iterdir()) == []


def test_success_stores_the_dump_and_its_metadata(docker, tmp_path):
    d = tmp_path / "backups"
    docker.answer("EXEC_PG_DUMP", out="PGDMP-data")
    docker.answer("EXEC_PG_RESTORE", out=TOC, stdin=tmp_path / "restore-stdin")

    r = run(docker, d)

    assert (r.returncode, r.stdout, r.stderr) == (0, "::backup:: 10 2\n", "")
    assert sorted(p.name for p in d.iterdir()) == [f"{NAME}.dump", f"{NAME}.json"]
    assert (d / f"{NAME}.dump").read_text() == "PGDMP-data"
    assert (d / f"{NAME}.json").read_text() == META
    assert (tmp_path / "restore-stdin.1").read_text() == "PGDMP-data"  # the dump, verified
    assert docker.calls()[1] == ["exec", "-i", "db", "pg_restore", "--list"]
    assert oct(d.stat().st_mode & 0o777) == "0o700"
    assert oct((d / f"{NAME}.dump").stat().st_mode & 0o777) == "0o600"


def test_retention_keeps_the_newest_and_never_the_protected_one(docker, tmp_path):
    d = tmp_path / "backups"
    d.mkdir()
    older = [f"shop-prod-2026010{i}T000000Z-000{i}" for i in range(1, 5)]
    for name in older:
        (d / f"{name}.dump").write_text("old")
        (d / f"{name}.json").write_text("{}")
    others = ["shop-prod-eu-20260101T000000Z-0001.dump", "notes.txt",
              "shop-prod-20260101T000000Z-0001.dump.partial"]
    for name in others:
        (d / name).write_text("")
    docker.answer("EXEC_PG_DUMP", out="PGDMP-data")
    docker.answer("EXEC_PG_RESTORE", out=TOC)

    r = run(docker, d, keep="2", protect=older[0])

    assert r.returncode == 0
    assert r.stdout.splitlines() == ["::backup:: 10 2",
                                     f"::removed:: {older[2]}.dump",
                                     f"::removed:: {older[1]}.dump"]
    kept = [NAME, older[3], older[0]]
    assert sorted(p.name for p in d.iterdir()) == sorted(
        [f"{n}.{ext}" for n in kept for ext in ("dump", "json")] + others)


def test_metadata_that_cannot_be_written_exits_1(docker, tmp_path):
    d = tmp_path / "backups"
    (d / f"{NAME}.json").mkdir(parents=True)
    docker.answer("EXEC_PG_DUMP", out="PGDMP-data")
    docker.answer("EXEC_PG_RESTORE", out=TOC)

    r = run(docker, d)

    assert r.returncode == 1
    assert not (d / f"{NAME}.dump").exists()
