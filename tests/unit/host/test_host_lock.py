"""lock.sh: the deploy lock (an atomic mkdir) and what the deployment reads in the same trip."""

import json
import stat

HOLDER = json.dumps({"id": "d1", "who": "ann", "what": "deploy dev"}) + "\n"
APPLIED_SQL = "SELECT version FROM applied"


def lock_args(state, db="db", user="u", image="img@sha256:ab"):
    return (str(state), "app", db, user, "appdb" if user else "", APPLIED_SQL if user else "",
            image)


def test_taken_writes_the_holder_from_stdin_and_prints_the_sections(docker, tmp_path):
    state = tmp_path / "state"
    docker.answer("CONTAINER_INSPECT", out='{"Name": "/app"}\n{"Name": "/db"}\n')
    docker.answer("EXEC_PSQL", out="1 20260101 abc\n2 20260102 def\n")
    docker.answer("IMAGE_INSPECT", out='{"org.opencontainers.image.revision": "r1"}\n')

    r = docker.run("lock", *lock_args(state), input=HOLDER)

    assert (r.returncode, r.stderr) == (0, "")
    assert r.stdout == ("::containers::\n"
                        '{"Name": "/app"}\n{"Name": "/db"}\n'
                        "::applied::\n"
                        "1 20260101 abc\n2 20260102 def\n"
                        "::image::\n"
                        '{"org.opencontainers.image.revision": "r1"}\n')
    assert (state / "lock" / "holder.json").read_text() == HOLDER
    assert (state / "deployments").is_dir()
    assert stat.S_IMODE((state / "lock").stat().st_mode) == 0o700
    assert stat.S_IMODE((state / "lock" / "holder.json").stat().st_mode) == 0o600
    assert sorted(docker.calls()) == [  # run at once: in any order
        ["container", "inspect", "--format", "{{json .}}", "app", "db"],
        ["exec", "db", "psql", "-XAtq", "-v", "ON_ERROR_STOP=1", "-U", "u", "-d", "appdb",
         "-c", APPLIED_SQL],
        ["image", "inspect", "--format", "{{json .Config.Labels}}", "img@sha256:ab"],
    ]
    assert sorted(p.name for p in (state / "lock").iterdir()) == ["holder.json"]


def test_the_reads_run_at_once(docker, tmp_path):
    """The three reads overlap: each call waits (bounded) until all three have started."""
    slow = tmp_path / "slow"
    (slow / "started").mkdir(parents=True)
    real = docker.root / "bin" / "docker"
    (slow / "docker").write_text(
        "#!/bin/sh\n"
        f"d={slow}\n"
        'touch "$d/started/$$"; i=0\n'
        'while [ "$(ls "$d/started" | wc -l)" -lt 3 ] && [ $i -lt 100 ]; do\n'
        "  /bin/sleep 0.1; i=$((i + 1))\n"
        "done\n"
        '[ $i -lt 100 ] && echo together >> "$d/seen" || echo alone >> "$d/seen"\n'
        f'exec {real} "$@"\n')
    (slow / "docker").chmod(0o755)
    docker.env["PATH"] = f"{slow}:{docker.env['PATH']}"
    docker.answer("EXEC_PSQL", out="1 20260101 abc\n")

    r = docker.run("lock", *lock_args(tmp_path / "state"), input=HOLDER)

    assert r.returncode == 0 and "::applied::\n1 20260101 abc\n" in r.stdout
    assert (slow / "seen").read_text().split() == ["together"] * 3


def test_without_a_database_query_or_image_only_the_containers_are_read(docker, tmp_path):
    docker.answer("CONTAINER_INSPECT", out='{"Name": "/app"}\n')

    r = docker.run("lock", *lock_args(tmp_path / "state", db="", user="", image=""),
                   input=HOLDER)

    assert (r.returncode, r.stdout) == (0, '::containers::\n{"Name": "/app"}\n')
    assert docker.calls() == [["container", "inspect", "--format", "{{json .}}", "app"]]


def test_failed_reads_are_marked_and_the_lock_is_still_taken(docker, tmp_path):
    state = tmp_path / "state"
    docker.answer("CONTAINER_INSPECT", rc=1)
    docker.answer("EXEC_PSQL", out="", rc=2)
    docker.answer("IMAGE_INSPECT", rc=1)

    r = docker.run("lock", *lock_args(state), input=HOLDER)

    assert r.returncode == 0
    assert r.stdout == "::containers::\n::applied::\n::unknown::\n::image::\n::missing::\n"
    assert (state / "lock" / "holder.json").read_text() == HOLDER


def test_taken_twice_exits_75_and_prints_the_holder(docker, tmp_path):
    state = tmp_path / "state"
    assert docker.run("lock", *lock_args(state), input=HOLDER).returncode == 0
    calls = len(docker.calls())

    other = json.dumps({"id": "d2", "who": "bob"}) + "\n"
    r = docker.run("lock", *lock_args(state), input=other)

    assert (r.returncode, r.stdout) == (75, HOLDER)
    assert (state / "lock" / "holder.json").read_text() == HOLDER
    assert len(docker.calls()) == calls  # nothing is read under someone else's lock


def test_held_without_a_holder_file_prints_an_empty_holder(docker, tmp_path):
    state = tmp_path / "state"
    (state / "lock").mkdir(parents=True)

    r = docker.run("lock", *lock_args(state), input=HOLDER)

    assert (r.returncode, r.stdout) == (75, "{}\n")
    assert not (state / "lock" / "holder.json").exists()


def test_a_state_dir_that_cannot_be_created_exits_1(docker, tmp_path):
    (tmp_path / "file").write_text("")

    r = docker.run("lock", *lock_args(tmp_path / "file" / "state"), input=HOLDER)

    assert r.returncode == 1
    assert docker.calls() == []


# --------------------------------------------------------------------------- reads made first
# (the runner starts `lock.sh "" ... DIR PULL` as it starts; its lock step's lock.sh uses DIR)


def test_reads_only_writes_the_reads_into_the_directory_and_takes_no_lock(docker, tmp_path):
    docker.answer("CONTAINER_INSPECT", out='{"Name": "/app"}\n')
    docker.answer("EXEC_PSQL", out="1 20260101 abc\n")
    docker.answer("IMAGE_INSPECT", out='{"r": "1"}\n')
    pre = tmp_path / "pre"

    r = docker.run("lock", "", *lock_args(tmp_path / "state")[1:], str(pre), "img@sha256:ab")

    assert (r.returncode, r.stdout, r.stderr) == (0, "", "")
    assert not (tmp_path / "state").exists()
    assert (pre / "containers").read_text() == '{"Name": "/app"}\n'
    assert (pre / "applied").read_text() == "1 20260101 abc\n"
    assert (pre / "image").read_text() == '{"r": "1"}\n'
    assert (pre / "reads.done").exists() and (pre / "image.done").exists()
    assert stat.S_IMODE(pre.stat().st_mode) == 0o700
    calls = docker.calls()
    assert calls.index(["pull", "--quiet", "img@sha256:ab"]) < calls.index(
        ["image", "inspect", "--format", "{{json .Config.Labels}}", "img@sha256:ab"])


def prefetched(tmp_path, *, reads: bool = True, image: bool = True):
    pre = tmp_path / "pre"
    pre.mkdir()
    (pre / "containers").write_text('{"Name": "/app", "from": "pre"}\n')
    (pre / "applied").write_text("9 20260109 pre\n")
    (pre / "image").write_text('{"from": "pre"}\n')
    if reads:
        (pre / "reads.done").touch()
    if image:
        (pre / "image.done").touch()
    return pre


def test_the_lock_uses_reads_made_first_and_removes_them(docker, tmp_path):
    state = tmp_path / "state"
    pre = prefetched(tmp_path)

    r = docker.run("lock", *lock_args(state), str(pre), input=HOLDER)

    assert r.returncode == 0
    assert r.stdout == ('::containers::\n{"Name": "/app", "from": "pre"}\n'
                        "::applied::\n9 20260109 pre\n::image::\n{\"from\": \"pre\"}\n")
    assert docker.calls() == []  # nothing read again
    assert (state / "lock" / "holder.json").read_text() == HOLDER
    assert not pre.exists()


def test_an_image_read_not_done_yet_is_made_by_the_lock(docker, tmp_path):
    docker.answer("IMAGE_INSPECT", out='{"from": "lock"}\n')
    pre = prefetched(tmp_path, image=False)

    r = docker.run("lock", *lock_args(tmp_path / "state"), str(pre), input=HOLDER)

    assert r.returncode == 0
    assert "::applied::\n9 20260109 pre\n" in r.stdout
    assert r.stdout.endswith('::image::\n{"from": "lock"}\n')
    assert docker.calls() == [
        ["image", "inspect", "--format", "{{json .Config.Labels}}", "img@sha256:ab"]]


def test_reads_not_done_in_time_are_made_by_the_lock(docker, tmp_path):
    docker.answer("CONTAINER_INSPECT", out='{"Name": "/app"}\n')
    docker.answer("EXEC_PSQL", out="1 20260101 abc\n")
    docker.answer("IMAGE_INSPECT", out='{"from": "lock"}\n')
    pre = prefetched(tmp_path, reads=False, image=False)

    r = docker.run("lock", *lock_args(tmp_path / "state"), str(pre), input=HOLDER)

    assert r.returncode == 0
    assert r.stdout == ('::containers::\n{"Name": "/app"}\n::applied::\n1 20260101 abc\n'
                        '::image::\n{"from": "lock"}\n')
    assert docker.sleeps() == ["0.02"] * 100  # waited 2 s (a fake sleep here), bounded
    assert len(docker.calls()) == 3
