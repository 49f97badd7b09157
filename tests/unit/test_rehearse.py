"""The rehearse step against a fake host: when it runs and why it is skipped, what it runs
(restore, counts, the engine on the scratch database, always the drop), what a data problem
reports (the migration, the statement, row data masked), the predicted downtime and
--max-downtime, the undo a recovery runs, and the on-demand plan."""

from __future__ import annotations

import json

import pytest
from tests.unit.test_prod_plans import (
    DID,
    NEW_DIGEST,
    PASSWORD,
    env_secrets,  # noqa: F401 - autouse: the config's secrets
    make_config,
)

from conveyor import host as hs
from conveyor.errors import BackupFailed, ConveyorError, MigrationStepFailed
from conveyor.imageref import ImageRef
from conveyor.plan import StepIO
from conveyor.plans.prod import prod_plans
from conveyor.plans.rehearse import rehearse_plans, report_lines
from conveyor.records import DeploymentRecord
from conveyor.runner.job import Job, build, job_for
from conveyor.state.deploy import DeployState, ProdOptions
from conveyor.steps import migrate_engine as engine
from conveyor.steps import rehearse as rh
from conveyor.steps import rehearse_driver as rd
from conveyor.targets.remote import Remote
from conveyor.transport import Result, Transport

UNIQUE = "2026-02-01-000001_title_unique"
FAILED = {"ok": False, "error": "MigrationFailed", "version": "20260201000001", "name": UNIQUE,
          "file": f"/migrations/{UNIQUE}/up.sql", "line": 1,
          "message": 'could not create unique index "notes_title_key"',
          "detail": "Key (title)=(***) is duplicated.",
          "statement": "CREATE UNIQUE INDEX notes_title_key ON notes (title)"}


def driver_end(locks: dict | None = None, dropped: bool = True) -> str:
    """The rehearsal driver's last lines: the locks per migration, the drop."""
    locks = {UNIQUE: {"lock_wait_ms": 50, "lock_waits": {"notes": 50},
                      "locks": {"notes": ["ShareLock"]}}} if locks is None else locks
    return (rd.LOCKS_MARK + json.dumps({"migrations": locks, "error": None}) + "\n"
            + (rd.DROPPED_MARK + "\n" if dropped else
               rd.DROP_FAILED_MARK + "permission denied to drop database\n"))


class Host(Transport):
    name = "fake"

    def __init__(self) -> None:
        self.calls: list[tuple[tuple[str, ...], object]] = []
        self.answers: dict[str, tuple[int, str]] = {
            "size": (0, "1000\n"), "history": (0, ""), "drop": (0, "::dropped::\n"),
            "restore": (0, "::space:: 999 4\n::restored::\n2|public.notes\n0|public.tags\n"),
            "engine": (0, f"applying {UNIQUE} ...\napplied {UNIQUE} (3 ms)\n" + engine.RESULT_MARK
                       + json.dumps({"ok": True, "applied": [{"name": UNIQUE,
                                                              "duration_ms": 3.0}]}) + "\n"
                       + driver_end())}

    def kind(self, argv: tuple[str, ...]) -> str:
        text = " ".join(argv)
        if argv[:3] == ("sh", "-c", hs.script("rehearse")):
            return argv[4]  # restore | drop
        if "pg_database_size" in text:
            return "size"
        if argv[:1] == ("tail",):
            return "history"
        if "conveyor.steps.rehearse_driver" in text or "conveyor.steps.migrate_driver" in text:
            return "engine"
        if argv[:3] == ("sh", "-c", hs.script("copy_out")):
            return "copy-out"
        if "pg_terminate_backend" in text or "\\watch" in str(argv) or "PGAPPNAME" in text:
            return "sampler"
        return text[:40]

    def run(self, argv, *, input=None, timeout=None, check=True, stream=None, env=None):
        argv = tuple(str(a) for a in argv)
        k = self.kind(argv)
        self.calls.append((argv, input))
        rc, out = self.answers.get(k, (0, ""))
        if stream:
            for line in out.splitlines():
                stream(line)
        return Result(argv, rc, out, "", 0.0, host=self.name)

    def names(self) -> list[str]:
        return [n for n in (self.kind(a) for a, _ in self.calls) if n != "sampler"]


@pytest.fixture
def setup(tmp_path, monkeypatch):
    def make(rehearse: str = "auto", **opts):
        cfg = make_config(tmp_path, 8000, rehearse=rehearse)
        fake = Host()
        remote = Remote(cfg, "prod", transport_factory=lambda r: fake)
        image = ImageRef("127.0.0.1:5000/notes", NEW_DIGEST, "newrev")
        record = DeploymentRecord(id=DID, app="notes", env="prod", kind="promote", who="a",
                                  started_at=0.0, image=image.ref)
        record.details = {}  # type: ignore[attr-defined]
        st = DeployState(remote, record, image)
        st.pending = [UNIQUE]
        st.backup = {"id": "b1", "file": "/srv/backups/notes-prod-b1.dump", "size": 2048,
                     "rows": {"public.notes": 2, "public.tags": 0}}
        step = rh.rehearse_step(remote, image, DID, ProdOptions(project_dir=tmp_path, **opts))
        return fake, st, step, StepIO("rehearse", fake)
    return make


def test_names_and_sql():
    assert rh.scratch_url("postgresql://u:p%40w@db:5432/notes", "notes_rehearse_x") == \
        "postgresql://u:p%40w@db:5432/notes_rehearse_x"
    assert rh.count_sql({"public.a": 2, 'public."We""ird"': 1}) == (
        "SELECT count(*), 'public.\"We\"\"ird\"' FROM ONLY public.\"We\"\"ird\";\n"
        "SELECT count(*), 'public.a' FROM ONLY public.a;\n")


def test_a_passing_rehearsal_records_timings_and_the_prediction_and_drops(setup):
    fake, st, step, io = setup()
    fake.answers["history"] = (0, json.dumps({"id": "d0", "result": "ok", "steps": [
        {"name": "stop", "duration": 0.5}, {"name": "start", "duration": 0.25},
        {"name": "health", "duration": 1.0}]}) + "\n")
    step.action(st, io)
    # two round trips of the rehearsal's own: the restore, the driver (which drops the scratch);
    # the migrations are copied out of the image while the restore runs
    names = fake.names()
    assert names[0] == "size" and sorted(names[1:3]) == ["copy-out", "restore"]
    assert names[3:] == ["engine", "history"]
    restore_argv, counts = next((a, i) for a, i in fake.calls if fake.kind(a) == "restore")
    scratch = f"notes_rehearse_{DID.lower().replace('-', '_')}"
    assert restore_argv[3:] == ("conveyor-rehearse", "restore", "notes-prod-db", "notes",
                                scratch, "/srv/backups/notes-prod-b1.dump",
                                f'CREATE DATABASE "{scratch}" OWNER "notes" TEMPLATE template0',
                                restore_argv[-2], f'DROP DATABASE IF EXISTS "{scratch}"')
    assert counts == rh.count_sql({"public.notes": 2, "public.tags": 0})
    engine_in = next(i for a, i in fake.calls if fake.kind(a) == "engine")
    header = json.loads(engine_in)
    assert header["database_url"].endswith(f"@notes-prod-db:5432/{scratch}")
    assert (header["scratch"], header["maintenance_db"]) == (scratch, "postgres")
    assert header["command"] == "run" and header["migration_dir"] == "/migrations"
    assert PASSWORD not in " ".join(" ".join(a) for a, _ in fake.calls)  # never in argv
    engine_argv = next(a for a, _ in fake.calls if fake.kind(a) == "engine")
    assert f"notes-prod-rehearse-{DID.lower()}" in engine_argv
    assert "conveyor.role=rehearse" in engine_argv
    assert engine_argv[-2:] == ("-m", "conveyor.steps.rehearse_driver")
    assert f"dropped the scratch database {scratch}" in io.output
    info = st.rehearsal
    assert info is not None and info["rehearsed"] and info["rows"] == 2 and info["tables"] == 2
    assert info["migrations"][0]["name"] == UNIQUE and info["migrations"][0]["ok"]
    assert info["migrations"][0]["duration_ms"] == 3.0
    assert info["migrations"][0]["lock_wait_ms"] == 50  # the driver's sampler
    assert info["migrations"][0]["locks"] == {"notes": ["ShareLock"]}
    assert "stop/start/health 1.75 s of deployment d0" in info["basis"]
    assert info["predicted_downtime"] >= 1.75
    assert st.record.details["rehearsal"] is info
    assert "predicted downtime" in io.notes[0]
    assert any("predicted downtime" in line for line in report_lines(info))
    step.undo(st, io)  # it ended: nothing left to drop
    assert fake.names()[-1] == "history"


def test_a_data_problem_names_the_migration_statement_and_masks_rows(setup):
    fake, st, step, io = setup()
    fake.answers["engine"] = (1, f"applying {UNIQUE} ...\n" + engine.RESULT_MARK
                              + json.dumps(FAILED) + "\n" + driver_end())
    with pytest.raises(MigrationStepFailed) as exc:
        step.action(st, io)
    text = str(exc.value)
    assert UNIQUE in text and "could not create unique index" in text
    assert "Statement: CREATE UNIQUE INDEX notes_title_key ON notes (title)" in text
    assert "Key (title)=(***) is duplicated" in text
    assert "nothing on prod was stopped" in exc.value.hint
    assert fake.names()[-1] == "engine"  # the driver dropped the scratch database
    assert st.rehearsal is not None and st.rehearsal["migrations"][0]["ok"] is False


def test_the_step_drops_the_scratch_database_when_the_driver_did_not(setup):
    for end in (driver_end(dropped=False), ""):  # it could not, or it died before
        fake, st, step, io = setup()
        fake.answers["engine"] = (0 if end else 137, f"applying {UNIQUE} ...\n" + end)
        try:
            step.action(st, io)
        except MigrationStepFailed:
            assert not end
        assert fake.names()[-1] == "drop" or fake.names()[-2:] == ["drop", "history"]
        if end:
            assert any("could not drop" in line and "permission denied" in line
                       for line in io.output)


def test_a_failed_copy_out_beside_the_restore_fails_the_step_and_drops(setup):
    fake, st, step, io = setup()
    fake.answers["copy-out"] = (1, "no /app/migrations in the image")
    with pytest.raises(MigrationStepFailed, match="cannot copy the migrations out"):
        step.action(st, io)
    assert "engine" not in fake.names() and fake.names()[-1] == "drop"


def test_row_data_is_masked_even_when_the_engine_did_not(setup):
    fake, st, step, io = setup()
    fake.answers["engine"] = (1, engine.RESULT_MARK + json.dumps(
        {**FAILED, "detail": "Key (title)=(secret row) is duplicated."}) + "\n")
    with pytest.raises(MigrationStepFailed) as exc:
        step.action(st, io)
    assert "secret row" not in str(exc.value)


def test_counts_that_differ_from_the_dump_fail_as_a_backup_problem(setup):
    fake, st, step, io = setup()
    fake.answers["restore"] = (0, "::space:: 999 4\n::restored::\n1|public.notes\n")
    with pytest.raises(BackupFailed, match=r"public.notes: 1 rows restored, 2 in the dump; "
                                           r"public.tags: missing rows restored"):
        step.action(st, io)
    assert "engine" not in fake.names() and fake.names()[-1] == "drop"


def test_not_enough_disk_is_a_clear_error(setup):
    fake, st, step, io = setup()
    fake.answers["restore"] = (30, "::space:: 3 4\n")
    with pytest.raises(ConveyorError, match="not enough free disk"):
        step.action(st, io)
    assert fake.names()[-1] == "drop"


def test_skips_say_why(setup):
    fake, st, step, io = setup()
    fake.answers["size"] = (0, str(6 * 1024**3) + "\n")
    step.action(st, io)
    assert "above rehearse_max_size 5.0 GB" in io.notes[0] and fake.names() == ["size"]
    fake, st, step, io = setup()
    st.pending = []
    step.action(st, io)
    assert io.notes[0].startswith("skipped: nothing pending") and st.rehearsal is not None
    assert "predicted_downtime" in st.rehearsal  # stop/start/health only
    fake, st, step, io = setup("always")
    fake.answers["size"] = (0, str(6 * 1024**3) + "\n")
    step.action(st, io)
    assert "size" not in fake.names() and st.rehearsal["rehearsed"]


def test_max_downtime_refuses_a_longer_prediction_and_a_missing_one(setup):
    fake, st, step, io = setup(max_downtime=1)
    fake.answers["history"] = (0, json.dumps({"id": "d0", "result": "ok", "steps": [
        {"name": n, "duration": 1.0} for n in ("stop", "start", "health")]}) + "\n")
    with pytest.raises(ConveyorError, match="more than --max-downtime 1 s"):
        step.action(st, io)
    assert any(line.startswith("dropped the scratch database") for line in io.output)
    fake, st, step, io = setup(max_downtime=5)
    fake.answers["size"] = (0, str(6 * 1024**3) + "\n")
    with pytest.raises(ConveyorError, match="cannot be checked: the rehearsal was skipped"):
        step.action(st, io)


def test_the_undo_of_an_interrupted_rehearsal_removes_its_container_and_database(setup):
    fake, st, step, io = setup()
    step.undo(st, io)  # as a recovery runs it: the state as the step began
    names = [" ".join(a) for a, _ in fake.calls]
    assert names[0] == f"docker rm --force notes-prod-rehearse-{DID.lower()}"
    assert fake.names()[-1] == "drop"


def test_plans_put_the_rehearsal_between_backup_and_prepare(tmp_path):
    cfg = make_config(tmp_path, 8000, rehearse="auto")
    remote = Remote(cfg, "prod", transport_factory=lambda r: Host())
    image = ImageRef("127.0.0.1:5000/notes", NEW_DIGEST, "newrev")
    opts = ProdOptions(project_dir=tmp_path, max_downtime=30)
    dep = prod_plans(remote, image, opts, deployment_id=DID)
    names = [s.name for s in dep.main.steps]
    assert names[names.index("backup"):names.index("prepare") + 1] == [
        "backup", "rehearse", "prepare"]
    assert "--max-downtime 30 s" in " ".join(dep.describe()[names.index("rehearse")]["commands"])
    on_demand = rehearse_plans(remote, image, opts, deployment_id=DID)
    assert [s.name for s in on_demand.main.steps] == ["lock", "pull", "plan", "backup",
                                                      "rehearse"]
    assert [s.name for s in on_demand.finalize.steps] == ["record"]
    job = Job.from_json(job_for("rehearse", on_demand, opts).to_json())
    rebuilt = build(job, remote, None)
    assert rebuilt.record.kind == "rehearse" and rebuilt.main.name == "rehearse prod"
    assert job.options["max_downtime"] == 30
