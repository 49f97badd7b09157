"""`conveyor ci --promote`'s prod stage (`conveyor.ci_promote.promote_for_ci`) against the
fake prod host of tests/unit/test_prod_plans.py: the digest that passed dev is promoted without
--force, the CI stage report is filled (steps, durations, output, error, hint, what the database
holds and the commands that go further back), the stage's typed error is raised, secrets never
show."""

from __future__ import annotations

import json

import pytest
from tests.unit import test_prod_plans as pp
from tests.unit.test_prod_plans import (
    DID,
    NEW,
    NEW_DIGEST,
    OLD,
    PASSWORD,
    host_for,
    make_config,
)

from conveyor import ci_promote, promotion
from conveyor.ci_env import CiEnv
from conveyor.ci_pipeline import CiOptions, CiReport, StageReport, _promote, junit_xml, markdown
from conveyor.config import load_config
from conveyor.errors import NotPromotable, ValidationFailed
from conveyor.imageref import ImageRef
from conveyor.plans import prod
from conveyor.plans.deployment import run_deployment
from conveyor.targets.remote import Remote

# the fake host and the environment of test_prod_plans (pytest fixtures)
app_server = pp.app_server
env_secrets = pp.env_secrets

PROMOTE_STEPS = ["lock", "pull", "plan", "backup", "prepare", "stop", "migrate", "start",
                 "health", "validate"]


@pytest.fixture
def setup(tmp_path, monkeypatch, app_server):
    """(cfg, host, app, events): prod's transport is the fake host; dev passed NEW in d2."""
    port, app = app_server
    host = host_for(app)
    monkeypatch.setattr(promotion, "Remote", lambda cfg, env: Remote(
        cfg, env, transport_factory=lambda r: host))
    monkeypatch.setattr(promotion, "passed_images", lambda cfg, source, limit=1000: [
        {"id": "d1", "image": OLD, "result": "ok"},
        {"id": "d2", "image": NEW, "result": "ok", "revision": "newrev"}])
    monkeypatch.setattr(prod, "new_id", lambda: DID)
    # the runner's stand-in: the same plan executed here, against the fake host (the runner
    # itself is tested on the real test bed: tests/e2e, tests/faults)
    monkeypatch.setattr(ci_promote, "run_on_host",
                        lambda dep, job, emit, **kw: run_deployment(dep, emit))

    def make(validate_ok: bool = True):
        cfg = make_config(tmp_path, port, validate_ok=validate_ok)
        return cfg, host, app

    make.host, make.app = host, app
    return make


def test_the_digest_that_passed_dev_is_promoted_and_the_stage_filled(setup):
    cfg, host, app = setup()
    events: list[dict] = []
    stage = StageReport("promote prod")
    image = ImageRef("127.0.0.1:5000/notes", NEW_DIGEST, "c0ffee" * 6 + "abcd", "c0ffee")
    dep = ci_promote.promote_for_ci(cfg, "prod", image, emit=events.append, stage=stage,
                              source="dev")
    assert app.serving == "new"
    assert dep.record.kind == "promote" and dep.record.result == "ok"
    assert dep.record.details["provenance"]["source_deployment"] == "d2"
    assert dep.record.details["provenance"]["forced"] is False
    assert stage.status == "ok" and stage.error is None and stage.exit_code is None
    assert [s["name"] for s in stage.steps] == PROMOTE_STEPS
    assert all(s["status"] == "ok" and s["duration"] >= 0 for s in stage.steps)
    assert stage.duration == pytest.approx(sum(s["duration"] for s in stage.steps))
    assert stage.detail.startswith(f"deployment {DID} (passed dev in deployment d2): "
                                   "http://127.0.0.1:")
    assert "migrate: applied 1: 2026-02-01-000001_add_color" in stage.detail
    # the migrations copied out of the promoted image, the engine in conveyor's runner image
    calls = {pp.kind(a): a for a, _ in host.calls}
    assert calls["copy-out"] == pp.copy_out_argv(NEW, f"{pp.RUN_DIR}/migrations")
    assert calls["migrate"] == pp.engine_run_argv("migrate", f"{pp.RUN_DIR}/migrations")
    assert not any(PASSWORD in x for argv, _ in host.calls for x in argv)
    assert "validating" in stage.output
    assert events[0]["text"].startswith(f"promote {NEW} (passed dev in deployment d2) to prod")


def test_a_failing_validation_fills_the_stage_and_raises_its_typed_error(setup, tmp_path,
                                                                         monkeypatch):
    setup(validate_ok=False)
    _host, app = setup.host, setup.app
    # the validation prints the prod database password (a leak the report must not repeat)
    text = (tmp_path / "conveyor.toml").read_text()
    text = text.replace("print('validating')",
                        "import os; print('validating', os.environ.get('LEAK', ''))")
    (tmp_path / "conveyor.toml").write_text(text)
    monkeypatch.setenv("LEAK", PASSWORD)
    cfg = load_config(tmp_path)
    events: list[dict] = []
    stage = StageReport("promote prod")
    image = ImageRef("127.0.0.1:5000/notes", NEW_DIGEST)
    with pytest.raises(ValidationFailed) as exc:
        ci_promote.promote_for_ci(cfg, "prod", image, emit=events.append, stage=stage)
    assert exc.value.exit_code == 10
    assert app.serving == "old"
    assert stage.status == "failed" and stage.exit_code == 10
    statuses = {s["name"]: s["status"] for s in stage.steps}
    assert statuses["validate"] == "failed" and statuses["stop"] == "undone"
    assert stage.error.startswith("the validation of prod failed")
    assert "The previous version is serving again" in stage.error
    assert "stay applied: 2026-02-01-000001_add_color" in stage.error
    assert "To go further back:" in stage.error
    assert f"  conveyor restore prod {DID}" in stage.error
    assert "previous version is started again" in stage.hint
    assert any("validating" in line for line in stage.output)
    everything = json.dumps([stage.error, stage.hint, stage.detail, stage.output, stage.steps,
                             events], default=str)
    assert PASSWORD not in everything


def test_an_image_that_did_not_pass_dev_is_refused_before_anything_runs(setup, monkeypatch):
    cfg, host, _app = setup()
    monkeypatch.setattr(promotion, "passed_images", lambda cfg, source, limit=1000: [
        {"id": "d1", "image": OLD, "result": "ok"}])
    stage = StageReport("promote prod")
    with pytest.raises(NotPromotable):
        ci_promote.promote_for_ci(cfg, "prod", ImageRef.parse(NEW), emit=lambda e: None,
                            stage=stage)
    assert host.calls == [] and stage.status == "not run"


# --------------------------------------------------------------------------- in the CI report


def _report(stage_names: list[str]) -> CiReport:
    ci = CiEnv(system="local", branch="main", commit="a" * 40, default_branch="main")
    return CiReport(ci=ci, app="notes", dev_env="dev", prod_env="prod", promote=True,
                    stages=[StageReport(n) for n in stage_names], revision="a" * 40)


def test_the_ci_stage_keeps_what_promote_for_ci_filled_and_reports_it(setup, monkeypatch):
    cfg, _host, _app = setup(validate_ok=False)
    report = _report(["build", "push", "deploy dev", "test", "promote prod"])
    for s in report.stages[:-1]:
        s.status, s.duration = "ok", 1.0
    st = report.stage("promote prod")
    _promote(cfg, CiOptions(promote=True), st, lambda e: None,
             {"image": ImageRef.parse(NEW)})
    assert st.status == "failed" and st.exit_code == 10
    assert report.failed_stage is st and report.exit_code == 10
    assert "To go further back:" in st.error  # not replaced by the bare exception text
    md = markdown(report)
    assert "failed at stage **promote prod**" in md
    assert "Step: `prepare` (undone), `stop` (undone), `start` (undone), `validate` (failed)" \
        in md
    assert "| promote prod | ❌ failed |" in md and "(passed dev in deployment d2)" in md
    assert "The previous version is serving again" in md
    xml = junit_xml(report).decode()
    assert 'name="promote prod: validate"' in xml and 'name="promote prod: lock"' in xml


def test_a_refusal_before_the_plan_fails_the_stage_with_its_exit_code(setup, monkeypatch):
    cfg, _host, _app = setup()
    monkeypatch.setattr(promotion, "passed_images", lambda cfg, source, limit=1000: [])
    st = StageReport("promote prod")
    _promote(cfg, CiOptions(promote=True), st, lambda e: None, {"image": ImageRef.parse(NEW)})
    assert st.status == "failed" and st.exit_code == 11
    assert "has not passed dev" in st.error and st.steps == []
