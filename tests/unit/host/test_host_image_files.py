"""image_files.sh: a directory of an image, copied out of a created (never started) container."""

import base64
import gzip
import io
import tarfile


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


def run(docker, tmp_path):
    tmp = tmp_path / "tmp"
    tmp.mkdir(exist_ok=True)
    docker.env["TMPDIR"] = str(tmp)
    return docker.run("image_files", "img@sha256:ab", "/app/migrations",
                      "--label", "conveyor.app=shop", "--label", "conveyor.role=inspect")


def test_prints_the_directory_as_base64_of_a_gzipped_tar_and_removes_the_container(
        docker, tmp_path):
    tar = a_tar(tmp_path)
    docker.answer("CREATE", out="cid123\n")
    docker.answer("CP", out_file=tar)

    r = run(docker, tmp_path)

    assert (r.returncode, r.stderr) == (0, "")
    data = gzip.decompress(base64.b64decode(r.stdout))
    assert data == tar.read_bytes()
    with tarfile.open(fileobj=io.BytesIO(data)) as tf:
        assert tf.getnames() == ["./20260101_init/up.sql"]
    assert docker.calls() == [
        ["create", "--label", "conveyor.app=shop", "--label", "conveyor.role=inspect",
         "img@sha256:ab", "true"],
        ["cp", "cid123:/app/migrations/.", "-"],
        ["rm", "-f", "cid123"],
    ]
    assert list((tmp_path / "tmp").iterdir()) == []  # the temporary tar is gone


def test_a_failed_copy_passes_its_exit_code_on_and_still_removes_the_container(
        docker, tmp_path):
    docker.answer("CREATE", out="cid123\n")
    docker.answer("CP", out="partial", rc=2)

    r = run(docker, tmp_path)

    assert (r.returncode, r.stdout) == (2, "")
    assert docker.calls()[-1] == ["rm", "-f", "cid123"]
    assert list((tmp_path / "tmp").iterdir()) == []


def test_a_container_that_cannot_be_created_exits_1(docker, tmp_path):
    docker.answer("CREATE", rc=125)

    r = run(docker, tmp_path)

    assert (r.returncode, r.stdout) == (1, "")
    assert [c[0] for c in docker.calls()] == ["create"]
    assert list((tmp_path / "tmp").iterdir()) == []
