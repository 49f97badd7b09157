"""swap.sh: end the other sessions, rename in one transaction; bounded retries."""

TERMINATE = "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname IN ('a', 'b')"
SWAP = 'BEGIN; ALTER DATABASE "a" RENAME TO "c"; ALTER DATABASE "b" RENAME TO "a"; COMMIT;'
TERMINATE_CALL = ["exec", "db", "psql", "-XAtq", "-U", "app", "-d", "postgres", "-c", TERMINATE]
SWAP_CALL = ["exec", "db", "psql", "-XAtq", "-v", "ON_ERROR_STOP=1", "-U", "app", "-d",
             "postgres", "-c", SWAP]


def run(docker):
    return docker.run("swap", "db", "app", TERMINATE, SWAP)


def test_swaps_at_the_first_attempt(docker):
    r = run(docker)

    assert (r.returncode, r.stdout, r.stderr) == (0, "", "")
    assert docker.calls() == [TERMINATE_CALL, SWAP_CALL]
    assert docker.sleeps() == []


def test_retries_until_the_rename_succeeds(docker):
    docker.answer("EXEC_PSQL", rc="0 1 0 1 0 0")  # terminate, swap, terminate, swap, ...

    r = run(docker)

    assert r.returncode == 0
    assert docker.calls() == [TERMINATE_CALL, SWAP_CALL] * 3
    assert docker.sleeps() == ["0.25", "0.25"]


def test_gives_up_after_20_attempts_with_exit_23(docker):
    docker.answer("EXEC_PSQL", out="ERROR:  database \"a\" is being accessed by other users\n",
                  rc=1)

    r = run(docker)

    assert r.returncode == 23
    assert r.stderr == "ERROR:  database \"a\" is being accessed by other users\n"
    assert docker.calls() == [TERMINATE_CALL, SWAP_CALL] * 20
    assert docker.sleeps() == ["0.25"] * 19
