"""The runner's job: what the controller hands over (config validated, secrets resolved) and
what the runner rebuilds from it, without the controller's environment."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tests.unit.plans.test_dev_plan import make_config

from conveyor.imageref import ImageRef
from conveyor.plans.dev import deploy_plans
from conveyor.runner.job import Job, build, job_for, resolve_secrets
from conveyor.state.deploy import DeployOptions
from conveyor.targets.remote import Remote

IMAGE = ImageRef("127.0.0.1:5000/notes", "sha256:" + "ab" * 32, "rev1")


@pytest.fixture
def dev(tmp_path, monkeypatch):
    monkeypatch.setenv("NOTES_DEV_DB_PASSWORD", "s3cret-db")
    monkeypatch.setenv("NOTES_API_TOKEN", "t0ken-xyz")
    cfg = make_config(tmp_path, 8080)
    remote = Remote(cfg, "dev", transport_factory=lambda r: None)  # type: ignore[arg-type]
    opts = DeployOptions(project_dir=tmp_path, junit=tmp_path / "junit.xml")
    return remote, deploy_plans(remote, IMAGE, opts, deployment_id="20260101T000000Z-ab12"), opts


def test_resolve_secrets_names_every_key_the_plans_use(dev):
    remote, _, _ = dev
    assert resolve_secrets(remote.cfg, "dev") == {
        "app.secrets.API_TOKEN": "t0ken-xyz",
        "environments.dev.database.password": "s3cret-db"}


def test_the_job_round_trips_and_the_host_needs_no_environment(dev, monkeypatch, tmp_path):
    _remote, dep, opts = dev
    job = Job.from_json(job_for("dev", dep, opts).to_json())
    assert job.id == "20260101T000000Z-ab12" and job.kind == "dev" and job.env == "dev"
    assert job.extra["what"] == f"deploy dev {IMAGE.ref}"
    assert job.image == {"repository": IMAGE.repository, "digest": IMAGE.digest,
                         "revision": "rev1", "tag": None}
    # on the host: no variables, no secret files; the job's values are what it uses
    monkeypatch.delenv("NOTES_DEV_DB_PASSWORD")
    monkeypatch.delenv("NOTES_API_TOKEN")
    cfg = job.config(Path("/srv/conveyor/jobs/x.json"))
    assert cfg.database_url("dev", from_host=False) == (
        "postgresql://notes:s3cret-db@notes-dev-db:5432/notes")
    rebuilt = build(job, Remote(cfg, "dev", transport_factory=lambda r: None), None)  # type: ignore[arg-type]
    assert [s.name for s in rebuilt.main.steps] == [s.name for s in dep.main.steps]
    assert rebuilt.main.describe() == dep.main.describe()
    assert rebuilt.record.id == dep.record.id


def test_the_redacted_job_keeps_no_secret(dev):
    _, dep, opts = dev
    job = job_for("dev", dep, opts)
    text = job.redacted().to_json()
    assert "s3cret-db" not in text and "t0ken-xyz" not in text
    assert json.loads(text)["secrets"] == {}
    assert "s3cret-db" in job.to_json()  # only the job file itself (0600, read once) has them


def test_unknown_kind_is_refused(dev):
    remote, dep, opts = dev
    job = job_for("dev", dep, opts)
    job.kind = "nonsense"
    with pytest.raises(ValueError, match="unknown job kind"):
        build(job, remote, None)
