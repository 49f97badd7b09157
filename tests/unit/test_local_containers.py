"""steps/local_containers.py: when `compose up` can be skipped (the recorded containers and
the fingerprint of what compose reads)."""

from __future__ import annotations

from conveyor.commands import compose as composecmd
from conveyor.steps.compose_file import compose_inputs
from conveyor.steps.local_containers import containers_unchanged, stack_fingerprint


def _c(service, cid, state="running"):
    return composecmd.Container(cid, state, service, "img", f"p_{service}_1", "Up")


def test_containers_unchanged_only_when_all_recorded_and_running():
    recorded = {"app": "a1", "db": "d1"}
    services = ["app", "db"]
    assert containers_unchanged([_c("app", "a1"), _c("db", "d1")], services, recorded)
    assert not containers_unchanged([_c("app", "a2"), _c("db", "d1")], services, recorded)
    assert not containers_unchanged([_c("app", "a1", "exited"), _c("db", "d1")], services,
                                    recorded)
    assert not containers_unchanged([_c("db", "d1")], services, recorded)
    assert not containers_unchanged([_c("app", "a1"), _c("app", "a3"), _c("db", "d1")],
                                    services, recorded)


def test_fingerprint_follows_the_images_and_the_files_compose_reads(tmp_path):
    f = tmp_path / "docker-compose.yml"
    f.write_text("services:\n  app:\n    image: x:${TAG:-1}\n    env_file: app.env\n")
    (tmp_path / "app.env").write_text("A=1\n")
    key, texts = compose_inputs([str(f)], {"TAG": "1"}, "v1", "p")
    ids = {"app": "sha256:a", "db": "sha256:d"}
    fp = stack_fingerprint(key, texts, tmp_path, ids)
    assert stack_fingerprint(key, texts, tmp_path, ids) == fp
    assert stack_fingerprint(key, texts, tmp_path, {**ids, "app": "sha256:b"}) != fp
    (tmp_path / "app.env").write_text("A=2\n")  # an env_file compose reads
    assert stack_fingerprint(key, texts, tmp_path, ids) != fp
