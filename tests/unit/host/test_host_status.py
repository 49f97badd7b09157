"""status.sh: the containers, the lock holder and the last history line, as sections."""

import json


def test_prints_every_section(docker, tmp_path):
    docker.answer("CONTAINER_INSPECT", out='{"Name": "/x"}\n')
    (tmp_path / "lock").mkdir()
    (tmp_path / "lock" / "holder.json").write_text('{"id": "d1"}\n')
    (tmp_path / "history.jsonl").write_text('{"id": "d0"}\n{"id": "d1"}\n')

    r = docker.run("status", str(tmp_path), "app", "app-previous", "db")

    assert (r.returncode, r.stderr) == (0, "")
    assert r.stdout == ('::app::\n{"Name": "/x"}\n::previous::\n{"Name": "/x"}\n'
                        '::db::\n{"Name": "/x"}\n::lock::\n{"id": "d1"}\n'
                        '::last::\n{"id": "d1"}\n\n')
    assert docker.calls() == [
        ["container", "inspect", "--format", "{{json .}}", "app"],
        ["container", "inspect", "--format", "{{json .State}}", "app-previous"],
        ["container", "inspect", "--format", "{{json .}}", "db"],
    ]


def test_missing_things_are_null(docker, tmp_path):
    docker.answer("CONTAINER_INSPECT", rc=1)

    r = docker.run("status", str(tmp_path), "app", "app-previous", "")

    assert r.returncode == 0
    assert r.stdout == "::app::\nnull\n::previous::\nnull\n::lock::\nnull\n::last::\nnull\n\n"
    assert len(docker.calls()) == 2  # no database container to ask about


def test_a_lock_without_its_holder_file_is_an_empty_holder(docker, tmp_path):
    docker.answer("CONTAINER_INSPECT", rc=1)
    (tmp_path / "lock").mkdir()

    r = docker.run("status", str(tmp_path), "app", "app-previous", "")

    sections = r.stdout.split("::lock::\n", 1)[1]
    assert sections.startswith("{}\n::last::\n")
    assert json.loads(sections.splitlines()[0]) == {}
