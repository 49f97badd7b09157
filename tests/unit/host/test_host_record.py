"""record.sh: the record, the history line, then the lock released whatever happened."""

import json

LINE = json.dumps({"id": "d1", "result": "ok"})
RECORD = json.dumps({"id": "d1", "steps": [{"name": "lock"}]}, indent=2) + "\n"


def hold(state, lock_id):
    (state / "lock").mkdir(parents=True)
    (state / "lock" / "holder.json").write_text(json.dumps({"id": lock_id}))


def test_writes_the_record_appends_the_history_and_releases_the_lock(docker, tmp_path):
    hold(tmp_path, "d1")
    (tmp_path / "history.jsonl").write_text('{"id": "d0"}\n')

    r = docker.run("record", str(tmp_path), "d1", "d1", input=f"{LINE}\n{RECORD}")

    assert (r.returncode, r.stdout, r.stderr) == (0, "", "")
    assert (tmp_path / "deployments" / "d1.json").read_text() == RECORD
    assert (tmp_path / "history.jsonl").read_text() == f'{{"id": "d0"}}\n{LINE}\n'
    assert not (tmp_path / "lock").exists()
    assert sorted(p.name for p in (tmp_path / "deployments").iterdir()) == ["d1.json"]
    assert docker.calls() == []


def test_without_a_lock_id_the_lock_is_left_alone(docker, tmp_path):
    hold(tmp_path, "d1")

    r = docker.run("record", str(tmp_path), "d2", "", input=f"{LINE}\n{RECORD}")

    assert r.returncode == 0
    assert (tmp_path / "deployments" / "d2.json").read_text() == RECORD
    assert (tmp_path / "history.jsonl").read_text() == LINE + "\n"
    assert (tmp_path / "lock" / "holder.json").exists()


def test_a_lock_held_by_another_id_exits_3_after_writing(docker, tmp_path):
    hold(tmp_path, "d9")

    r = docker.run("record", str(tmp_path), "d1", "d1", input=f"{LINE}\n{RECORD}")

    assert (r.returncode, r.stderr) == (3, "the lock is not held by d1 (any more)\n")
    assert (tmp_path / "deployments" / "d1.json").read_text() == RECORD
    assert (tmp_path / "lock" / "holder.json").exists()


def test_a_failed_write_exits_1_and_still_releases_the_lock(docker, tmp_path):
    hold(tmp_path, "d1")
    (tmp_path / "deployments").write_text("")  # not a directory: nothing can be written

    r = docker.run("record", str(tmp_path), "d1", "d1", input=f"{LINE}\n{RECORD}")

    assert r.returncode == 1
    assert not (tmp_path / "history.jsonl").exists()
    assert not (tmp_path / "lock").exists()


def test_empty_stdin_writes_nothing_and_exits_1(docker, tmp_path):
    hold(tmp_path, "d1")

    r = docker.run("record", str(tmp_path), "d1", "d1", input="")

    assert r.returncode == 1
    assert not (tmp_path / "history.jsonl").exists()
    assert not (tmp_path / "deployments" / "d1.json").exists()
    assert not (tmp_path / "lock").exists()
