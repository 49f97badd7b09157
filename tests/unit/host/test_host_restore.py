"""restore.sh: a backup restored into a new database, dropped again if pg_restore fails."""

DROP = 'DROP DATABASE IF EXISTS "appdb_restoring_ab12"'
CREATE = 'CREATE DATABASE "appdb_restoring_ab12" OWNER "app"'


def run(docker, tmp_path):
    f = tmp_path / "b.dump"
    f.write_text("PGDMP-data")
    return docker.run("restore", str(f), "db", "app", "appdb_restoring_ab12", DROP, CREATE)


CREATE_CALL = ["exec", "db", "psql", "-XAtq", "-v", "ON_ERROR_STOP=1", "-U", "app", "-d",
               "postgres", "-c", DROP, "-c", CREATE]
RESTORE_CALL = ["exec", "-i", "db", "pg_restore", "--exit-on-error", "--single-transaction",
                "--no-password", "-U", "app", "-d", "appdb_restoring_ab12"]


def test_restores_the_file_into_the_new_database(docker, tmp_path):
    docker.answer("EXEC_PG_RESTORE", stdin=tmp_path / "stdin")

    r = run(docker, tmp_path)

    assert r.returncode == 0
    assert docker.calls() == [CREATE_CALL, RESTORE_CALL]
    assert (tmp_path / "stdin.1").read_text() == "PGDMP-data"


def test_a_database_that_cannot_be_created_exits_21(docker, tmp_path):
    docker.answer("EXEC_PSQL", rc=1)

    r = run(docker, tmp_path)

    assert r.returncode == 21
    assert docker.calls() == [CREATE_CALL]


def test_a_failed_pg_restore_drops_the_new_database_and_exits_22(docker, tmp_path):
    docker.answer("EXEC_PG_RESTORE", rc=1)

    r = run(docker, tmp_path)

    assert r.returncode == 22
    assert docker.calls() == [CREATE_CALL, RESTORE_CALL, [
        "exec", "db", "psql", "-XAtq", "-U", "app", "-d", "postgres", "-c", DROP]]
