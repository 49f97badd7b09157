"""unlock.sh: the lock is released only by its holder."""

import json


def hold(state, lock_id):
    (state / "lock").mkdir(parents=True)
    (state / "lock" / "holder.json").write_text(json.dumps({"id": lock_id, "who": "ann"}))


def test_the_holder_removes_the_lock(docker, tmp_path):
    hold(tmp_path, "d1")

    r = docker.run("unlock", str(tmp_path), "d1")

    assert (r.returncode, r.stdout) == (0, "")
    assert not (tmp_path / "lock").exists()


def test_another_id_exits_3_and_the_lock_stays(docker, tmp_path):
    hold(tmp_path, "d10")

    r = docker.run("unlock", str(tmp_path), "d1")  # a prefix of the holder's id is not it

    assert (r.returncode, r.stdout) == (3, "the lock is not held by d1 (any more)\n")
    assert json.loads((tmp_path / "lock" / "holder.json").read_text())["id"] == "d10"


def test_no_lock_exits_3(docker, tmp_path):
    r = docker.run("unlock", str(tmp_path), "d1")

    assert r.returncode == 3
    assert not (tmp_path / "lock").exists()
