"""status.sh: in one round trip, the containers (one `docker container inspect`), the lock
holder, the last history line, the runner's journal, the applied migrations (psql, run beside
the rest) and the migration files of the app container's image (cached by image ID)."""

import base64
import gzip
import io
import json
import tarfile

APP = '/app|sha256:img1||{"Name": "/app", "Image": "sha256:img1"}'
RUNNER = '/app-runner|sha256:run|d7|{"Name": "/app-runner"}'
QUERY = ("notes", "notes", "SELECT 1")


def sections(stdout):
    out, key = {}, None
    for line in stdout.splitlines():
        if line.startswith("::"):
            name, _, word = line.partition(" ")
            key = name.strip(":")
            out[key] = {"word": word, "lines": []}
        elif key and line:
            out[key]["lines"].append(line)
    return out


def b64(lines):
    return base64.b64decode("".join(lines)).decode()


def a_tar(tmp_path):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        data = b"CREATE TABLE t (id int);\n"
        info = tarfile.TarInfo("./20260101_init/up.sql")
        info.size = len(data)
        tf.addfile(info, io.BytesIO(data))
    path = tmp_path / "cp.tar"
    path.write_bytes(buf.getvalue())
    return path


def serialized(docker, tmp_path):
    """psql runs beside the other docker calls: the fake's call log is appended one call at a
    time (flock), else two calls' words could interleave."""
    bin_dir = tmp_path / "serial-bin"
    if bin_dir.exists():
        return
    bin_dir.mkdir()
    fake = tmp_path / "bin" / "docker"
    (bin_dir / "docker").write_text(f'#!/bin/sh\nexec flock "{tmp_path}/docker.lock" '
                                    f'"{fake}" "$@"\n')
    (bin_dir / "docker").chmod(0o755)
    docker.env["PATH"] = f"{bin_dir}:{docker.env['PATH']}"


def run(docker, tmp_path, *, db="db", runner="app-runner", proxy="", query=QUERY,
        files="/app/migrations"):
    serialized(docker, tmp_path)
    tmp = tmp_path / "tmp"
    tmp.mkdir(exist_ok=True)
    docker.env["TMPDIR"] = str(tmp)
    state = tmp_path / "state"
    state.mkdir(exist_ok=True)
    r = docker.run("status", str(state), "app", "app-previous", db, runner, proxy, *query,
                   files, "--label", "conveyor.role=inspect")
    assert list(tmp.iterdir()) == []  # the temporary directory is gone
    return r


def test_prints_every_section_in_one_inspect(docker, tmp_path):
    docker.answer("CONTAINER_INSPECT", out=f"{APP}\n{RUNNER}\n", rc=1)  # a missing one: rc 1
    docker.answer("EXEC_PSQL", out="1|a|x\n")
    docker.answer("CREATE", out="cid1\n")
    docker.answer("CP", out_file=a_tar(tmp_path))
    state = tmp_path / "state"
    (state / "lock").mkdir(parents=True)
    (state / "lock" / "holder.json").write_text('{"id": "d1"}\n')
    (state / "history.jsonl").write_text('{"id": "d0"}\n{"id": "d1"}\n')
    (state / "runs" / "d7").mkdir(parents=True)
    (state / "runs" / "d7" / "journal.jsonl").write_text('{"event": "a"}\n{"event": "b"}\n')

    r = run(docker, tmp_path)

    assert (r.returncode, r.stderr) == (0, "")
    s = sections(r.stdout)
    assert [json.loads(line)["Name"] for line in s["containers"]["lines"]] == [
        "/app", "/app-runner"]
    assert s["lock"]["lines"] == ['{"id": "d1"}']
    assert s["last"]["lines"] == ['{"id": "d1"}']
    assert s["journal"]["lines"] == ['{"event": "b"}']
    assert (s["applied"]["word"], b64(s["applied"]["lines"])) == ("0", "1|a|x\n")
    assert b64(s["applied-err"]["lines"]) == ""
    assert s["files"]["word"] == "0"
    assert gzip.decompress(base64.b64decode("".join(s["files"]["lines"]))) == (
        tmp_path / "cp.tar").read_bytes()
    calls = docker.calls()  # psql runs in the background: the order is not fixed
    inspect = next(c for c in calls if c[:2] == ["container", "inspect"])
    assert inspect[-4:] == ["app", "app-previous", "db", "app-runner"]  # no proxy: not asked
    assert ["exec", "db", "psql", "-XAtq", "-v", "ON_ERROR_STOP=1", "-U", "notes", "-d", "notes",
            "-c", "SELECT 1"] in calls
    assert ["create", "--label", "conveyor.role=inspect", "sha256:img1", "true"] in calls
    assert ["cp", "cid1:/app/migrations/.", "-"] in calls
    assert ["rm", "-f", "cid1"] in calls
    assert len(calls) == 5


def test_the_image_files_are_read_from_the_cache_the_second_time(docker, tmp_path):
    docker.answer("CONTAINER_INSPECT", out=f"{APP}\n")
    docker.answer("CREATE", out="cid1\n")
    docker.answer("CP", out_file=a_tar(tmp_path))
    first = sections(run(docker, tmp_path).stdout)["files"]
    cache = tmp_path / "state" / "status" / "image-files"
    assert cache.read_text().splitlines()[0] == "sha256:img1 /app/migrations"
    n = len(docker.calls())

    second = sections(run(docker, tmp_path).stdout)["files"]

    assert second == first
    assert sorted(c[0] for c in docker.calls()[n:]) == ["container", "exec"]  # no create, cp
    # another directory (or image) is read again
    third = run(docker, tmp_path, files="/srv/migrations")
    assert ["cp", "cid1:/srv/migrations/.", "-"] in docker.calls()
    assert sections(third.stdout)["files"]["word"] == "0"
    assert cache.read_text().splitlines()[0] == "sha256:img1 /srv/migrations"


def test_a_failed_copy_says_so_and_caches_nothing(docker, tmp_path):
    docker.answer("CONTAINER_INSPECT", out=f"{APP}\n")
    docker.answer("CREATE", out="cid1\n")
    docker.answer("CP", rc=1)
    docker.answer("EXEC_PSQL", rc=1)

    s = sections(run(docker, tmp_path).stdout)

    assert s["files"]["word"] == "1" and s["files"]["lines"][:1] == []
    assert s["applied"]["word"] == "1"
    assert ["rm", "-f", "cid1"] in docker.calls()
    assert not (tmp_path / "state" / "status" / "image-files").exists()


def test_missing_things_are_null_and_nothing_else_is_asked(docker, tmp_path):
    docker.answer("CONTAINER_INSPECT", rc=1)

    r = run(docker, tmp_path, db="", runner="", query=("", "", ""))

    assert r.returncode == 0
    assert r.stdout == ("::containers::\n::lock::\nnull\n::last::\nnull\n::journal::\nnull\n\n")
    assert docker.calls() == [["container", "inspect", "--format",
                               ('{{.Name}}|{{.Image}}|{{index .Config.Labels '
                               '"conveyor.deployment"}}|{{json .}}'), "app", "app-previous"]]


def test_a_lock_without_its_holder_file_is_an_empty_holder(docker, tmp_path):
    docker.answer("CONTAINER_INSPECT", rc=1)
    (tmp_path / "state" / "lock").mkdir(parents=True)

    r = run(docker, tmp_path, db="")

    assert sections(r.stdout)["lock"]["lines"] == ["{}"]
