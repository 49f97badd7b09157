"""`conveyor deploy ENV --allow-drift`: the option the drift error names really exists; it
reaches the engine on the host (the driver's header), the rehearsal, the job a runner rebuilds
the plan from, the step's output (a WARNING line) and the deployment record; without it a
drift refusal names it (and not the engine CLI's own option wording)."""

from __future__ import annotations

import json

import pytest
from tests.unit.plans import test_dev_plan as dev
from tests.unit.plans.test_dev_plan import DID, DIGEST, healthy_host, is_, make_config
from typer.testing import CliRunner

from conveyor.cli.app import app as cli_app
from conveyor.imageref import ImageRef
from conveyor.plans.deployment import run_deployment
from conveyor.plans.dev import deploy_plans
from conveyor.runner.job import Job, build, job_for
from conveyor.state.deploy import DeployOptions
from conveyor.steps import migrate_engine
from conveyor.steps.migrate import ALLOW_DRIFT_WARNING
from conveyor.targets.remote import Remote

env_secrets = dev.env_secrets  # the dev plan's fixtures
health_server = dev.health_server

DRIFT = {"ok": False, "error": "DriftError",
         "message": "Refusing to run: the database and the migration directory have drifted: "
         "1_init: checksum differs. Restore the original files (e.g. from git), or re-run with "
         "--allow-drift if the difference is intended.", "problems": ["1_init: checksum differs"]}


def _plan(tmp_path, port, host, allow_drift: bool):
    cfg = make_config(tmp_path, port)
    remote = Remote(cfg, "dev", transport_factory=lambda r: host)
    image = ImageRef("127.0.0.1:5000/notes", DIGEST, "newrev-local")
    opts = DeployOptions(project_dir=tmp_path, allow_drift=allow_drift)
    return remote, opts, deploy_plans(remote, image, opts, deployment_id=DID)


def _header(host) -> dict:
    stdin = next(i for a, i in host.calls if is_("migrate")(a))
    return json.loads(stdin.decode().splitlines()[0])


def test_engine_stdin_carries_allow_drift_only_when_given():
    plain = json.loads(migrate_engine.engine_stdin("run", "postgresql://x", lock_timeout=1,
                                                   applied_by="a"))
    assert "allow_drift" not in plain
    allowed = json.loads(migrate_engine.engine_stdin("run", "postgresql://x", lock_timeout=1,
                                                     applied_by="a", allow_drift=True))
    assert allowed["allow_drift"] is True


def test_allow_drift_reaches_the_engine_is_loud_and_recorded(tmp_path, env_secrets,
                                                            health_server):
    port, _ = health_server
    host = healthy_host()
    _, _, dep = _plan(tmp_path, port, host, allow_drift=True)
    result = run_deployment(dep, lambda e: None)
    assert result.ok, result.error
    assert _header(host)["allow_drift"] is True
    migrate = next(s for s in dep.record.steps if s["name"] == "migrate")
    assert ALLOW_DRIFT_WARNING in migrate["output"] and "--allow-drift" in migrate["notes"]
    assert dep.record.as_dict()["options"]["allow_drift"] is True
    assert any("--allow-drift" in str(c) for c in dep.describe()[2]["commands"]), dep.describe()


def test_without_it_nothing_is_allowed_and_the_refusal_names_the_option(tmp_path, env_secrets,
                                                                      health_server):
    port, _ = health_server
    host = healthy_host()
    host.rules.insert(0, (is_("migrate"), lambda a, i: (
        1, "note: drift\n" + migrate_engine.RESULT_MARK + json.dumps(DRIFT) + "\n", "")))
    _, _, dep = _plan(tmp_path, port, host, allow_drift=False)
    result = run_deployment(dep, lambda e: None)
    assert not result.ok
    assert "allow_drift" not in _header(host)
    assert "allow_drift" not in dep.record.as_dict()["options"]
    err = result.error
    assert "migration refused on dev" in str(err) and "1_init: checksum differs" in str(err)
    assert "re-run with --allow-drift" not in str(err)
    assert "`conveyor deploy dev --allow-drift`" in err.hint, err.hint
    assert "(loud, recorded). The app was not touched: the previous version keeps serving" \
        in err.hint, err.hint


def test_the_job_keeps_allow_drift_for_the_runner_on_the_host(tmp_path, env_secrets,
                                                              health_server):
    port, _ = health_server
    host = healthy_host()
    remote, opts, dep = _plan(tmp_path, port, host, allow_drift=True)
    job = Job.from_json(job_for("dev", dep, opts).to_json())
    assert job.options["allow_drift"] is True
    rebuilt = build(job, remote, None)
    assert rebuilt.record.options["allow_drift"] is True


def test_deploy_has_the_option():
    out = CliRunner().invoke(cli_app, ["deploy", "--help"], env={"COLUMNS": "200"}).output
    assert "--allow-drift" in out and "recorded" in out


def test_prod_records_it_and_the_rehearsal_and_migrate_step_get_it(tmp_path, monkeypatch):
    import tests.unit.test_prod_plans as tp
    from tests.unit.test_rehearse import DID as RDID
    from tests.unit.test_rehearse import NEW_DIGEST, Host

    from conveyor.plan import StepIO
    from conveyor.plans.prod import prod_plans
    from conveyor.state.deploy import ProdOptions

    for name, value in (("NOTES_DEV_DB_PASSWORD", "pw-dev-123"),
                        ("NOTES_PROD_DB_PASSWORD", tp.PASSWORD)):
        monkeypatch.setenv(name, value)
    cfg = tp.make_config(tmp_path, 8000, rehearse="always")
    fake = Host()
    remote = Remote(cfg, "prod", transport_factory=lambda r: fake)
    image = ImageRef("127.0.0.1:5000/notes", NEW_DIGEST, "newrev")
    opts = ProdOptions(project_dir=tmp_path, allow_drift=True)
    dep = prod_plans(remote, image, opts, deployment_id=RDID)
    assert dep.record.options["allow_drift"] is True
    names = [s.name for s in dep.main.steps]
    assert "--allow-drift" in " ".join(map(str, dep.describe()[names.index("migrate")]["commands"]))
    st = dep.state
    st.pending = ["2026-02-01-000001_title_unique"]
    st.backup = {"id": "b1", "file": "/srv/backups/notes-prod-b1.dump", "size": 2048,
                 "rows": {"public.notes": 2, "public.tags": 0}}
    rehearse = dep.main.steps[names.index("rehearse")]
    rehearse.action(st, StepIO("rehearse", fake))
    stdin = next(i for a, i in fake.calls if fake.kind(a) == "engine")
    assert json.loads(stdin.decode().splitlines()[0])["allow_drift"] is True
    job = Job.from_json(job_for("prod", dep, opts).to_json())
    assert build(job, remote, None).record.options["allow_drift"] is True


@pytest.mark.parametrize("recreate", [False, True])
def test_zero_downtime_records_it_and_its_migrate_step_gets_it(tmp_path, recreate):
    from tests.unit.test_zero_downtime_plan import DID as ZDID
    from tests.unit.test_zero_downtime_plan import IMAGE as ZIMAGE
    from tests.unit.test_zero_downtime_plan import remote as zd_remote

    from conveyor.plans.zero_downtime import zero_downtime_plans
    from conveyor.state.deploy import ProdOptions

    opts = ProdOptions(project_dir=tmp_path, allow_drift=True)
    dep = zero_downtime_plans(zd_remote(tmp_path), ZIMAGE, opts, deployment_id=ZDID,
                              recreate=recreate)
    assert dep.record.options["allow_drift"] is True
    names = [s.name for s in dep.main.steps]
    assert "--allow-drift" in " ".join(map(str, dep.describe()[names.index("migrate")]["commands"]))
    plain = zero_downtime_plans(zd_remote(tmp_path), ZIMAGE, ProdOptions(project_dir=tmp_path),
                                deployment_id=ZDID, recreate=recreate)
    assert "allow_drift" not in plain.record.options
