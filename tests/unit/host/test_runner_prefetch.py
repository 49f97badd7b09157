"""The runner's prefetch (conveyor.runner.prefetch): as it starts, the runner starts the lock
step's reads (`lock.sh ""`) and the pull of the job's image, with a fake docker; the lock step
then takes those reads once, by exactly its own arguments."""

from __future__ import annotations

import json
import os

import pytest

from conveyor import host
from conveyor.runner import prefetch

READS = ["notes-dev-app", "notes-dev-db", "notes", "notes", "SELECT 1",
         "127.0.0.1:5000/notes@sha256:ab"]


@pytest.fixture
def fake_env(docker, monkeypatch):
    for key, value in docker.env.items():
        if key == "PATH" or key.startswith("FAKE_"):
            monkeypatch.setenv(key, value)
    return docker


def job_file(tmp_path, *, reads=READS, kind="dev"):
    path = tmp_path / "jobs" / "20261202T000000Z-abcd.json"
    path.parent.mkdir(exist_ok=True)
    path.write_text(json.dumps({"kind": kind, "image": {"repository": "127.0.0.1:5000/notes",
                                                        "digest": "sha256:ab"},
                                "extra": {"lock_reads": reads} if reads else {}}))
    return path


def test_the_lock_reads_and_the_pull_start_and_are_taken_once(fake_env, tmp_path):
    fake_env.answer("CONTAINER_INSPECT", out='{"Name": "/notes-dev-app"}\n')
    fake_env.answer("EXEC_PSQL", out="1 20260101 abc\n")
    fake_env.answer("IMAGE_INSPECT", out="{}\n")

    proc = prefetch.prefetch(str(job_file(tmp_path)))
    assert proc is not None
    assert proc.wait(timeout=60) == 0

    directory = host.take_reads("lock", READS)
    try:
        assert directory.startswith("/tmp/conveyor-reads-")
        assert os.path.exists(f"{directory}/reads.done")
        assert os.path.exists(f"{directory}/image.done")
        calls = fake_env.calls()
        assert ["pull", "--quiet", "127.0.0.1:5000/notes@sha256:ab"] in calls
        assert ["container", "inspect", "--format", "{{json .}}", "notes-dev-app",
                "notes-dev-db"] in calls
        assert host.take_reads("lock", READS) == ""  # once
    finally:
        import shutil
        shutil.rmtree(directory, ignore_errors=True)


def test_other_arguments_do_not_get_the_reads(fake_env, tmp_path):
    proc = prefetch.prefetch(str(job_file(tmp_path)))
    assert proc is not None and proc.wait(timeout=60) == 0
    other = [*READS[:5], "127.0.0.1:5000/notes@sha256:cd"]
    assert host.take_reads("lock", other) == ""
    directory = host.take_reads("lock", READS)
    assert directory
    import shutil
    shutil.rmtree(directory, ignore_errors=True)


def test_a_job_without_reads_only_pulls(fake_env, tmp_path):
    proc = prefetch.prefetch(str(job_file(tmp_path, reads=None)))
    assert proc is not None and proc.wait(timeout=60) == 0
    assert fake_env.calls() == [["pull", "--quiet", "127.0.0.1:5000/notes@sha256:ab"]]


def test_no_job_file_starts_nothing(fake_env, tmp_path):
    assert prefetch.prefetch(str(tmp_path / "missing.json")) is None
    assert fake_env.calls() == []
