"""`conveyor ci`: the feature-branch pipeline as one job, and its reports.

Stages, each a plan of the stage libraries, run in order; a failed stage stops the job (the
later ones are reported as not run):

    build -> push -> setup dev -> deploy dev -> test [-> promote prod]

`setup dev` is idempotent (it creates the network, volume and database container of a
conveyor-managed database only when missing), so the first pipeline on a new VM just works.
`deploy dev` is the dev stage of `conveyor deploy dev` (lock, waiting for another pipeline's
deploy; pull by digest; migrate; replace; health; record; unlock); `test` is its test step,
reported as a stage of its own. `promote prod` needs the default branch: it is the prod stage
(`conveyor.stages.prod.promote_for_ci`, what `conveyor promote dev prod` runs) with the digest
that passed dev in this job.

The report (`CiReport`, its JUnit XML and Markdown renderings, `write_reports`) lives in
`conveyor.ci_report`; its names are re-exported here.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from conveyor.ci_env import CiEnv
from conveyor.ci_report import (
    EXIT_FAILED,
    CiReport,
    FailedTest,
    StageReport,
    junit_xml,
    markdown,
    write_reports,
)
from conveyor.ci_report import read_test_junit as _read_test_junit
from conveyor.ci_report import redact_report as _redact_report
from conveyor.errors import CiRefused, ConveyorError, TestsFailed
from conveyor.render import Redactor

OUTPUT_TAIL = 40

#: the test stage's code when the tests ran and failed (a stage's error keeps its own code)
EXIT_TESTS_FAILED = TestsFailed.exit_code


class CiFailed(ConveyorError):
    """A stage of the job failed; the exit code is the failing stage's (set per instance)."""

    def __init__(self, message: str, *, exit_code: int, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.exit_code = exit_code


@dataclass
class CiOptions:
    promote: bool = False
    dev_env: str = "dev"
    prod_env: str = "prod"
    #: how long to wait for another pipeline's lock on an environment
    wait_timeout: float = 1800.0
    setup: bool = True


# --------------------------------------------------------------------------- running


def stage_names(opts: CiOptions) -> list[str]:
    names = ["build", "push"]
    if opts.setup:
        names.append(f"setup {opts.dev_env}")
    names += [f"deploy {opts.dev_env}", "test"]
    if opts.promote:
        names.append(f"promote {opts.prod_env}")
    return names


def check_can_run(cfg, ci: CiEnv, opts: CiOptions) -> None:
    """Refuse before anything runs: unknown environments, --promote off the default branch."""
    env = cfg.environment(opts.dev_env)
    if not env.is_remote:
        raise CiRefused(f"environment {opts.dev_env!r} has no host: `conveyor ci` deploys to a "
                        "remote environment", hint="pass --env NAME of a remote environment")
    if opts.promote:
        prod = cfg.environment(opts.prod_env)
        if prod.promote_from and prod.promote_from != opts.dev_env:
            raise CiRefused(f"--promote: {opts.prod_env} is promoted from {prod.promote_from}, "
                            f"not from {opts.dev_env} (the environment this job tests)",
                            hint=f"run the job with --env {prod.promote_from}, or change "
                            f"environments.{opts.prod_env}.promote_from")
        if not prod.is_remote:
            raise CiRefused(f"environment {opts.prod_env!r} has no host: --promote deploys to a "
                            "remote environment", hint="pass --prod-env NAME of a remote "
                            "environment")
        if ci.on_default_branch is not True:
            where = f"branch {ci.branch!r}" if ci.branch else "a detached HEAD"
            default = ci.default_branch or "unknown"
            raise CiRefused(
                f"--promote is only for the default branch ({default}); this job runs on {where}",
                hint="feature branches deploy to dev only; set CONVEYOR_DEFAULT_BRANCH if the "
                "default branch was not detected")


def _tail(lines: list[str], n: int = OUTPUT_TAIL) -> list[str]:
    return [ln.rstrip("\n") for ln in lines[-n:]]


def _from_plan(stage: StageReport, result) -> None:
    """Fill a stage from a pipeline.PlanResult."""
    stage.duration = result.duration
    stage.steps = [{"name": s.name, "status": s.status, "duration": s.duration,
                    "error": s.error, "notes": s.notes} for s in result.steps]
    stage.detail = "; ".join(n for s in result.steps for n in s.notes)
    out: list[str] = []
    for s in result.steps:
        out += s.output
    stage.output = _tail(out)
    if result.error is None:
        stage.status = "ok"
    else:
        _fail(stage, result.error)


def _fail(stage: StageReport, exc: BaseException) -> None:
    stage.status = "failed"
    stage.error = str(exc)
    stage.hint = getattr(exc, "hint", None)
    stage.exit_code = getattr(exc, "exit_code", None) or EXIT_FAILED


def _revision(cfg, ci: CiEnv):
    from conveyor import git

    try:
        return git.revision(cfg.root_dir)
    except git.GitError:
        if ci.commit:  # e.g. Cloud Build: the source has no .git, COMMIT_SHA names it
            return git.Revision(ci.commit, False, ci.branch)
        raise


def run_ci(cfg, ci: CiEnv, opts: CiOptions, emit: Callable[[dict[str, Any]], None],
           *, redactor: Redactor | None = None) -> CiReport:
    """Run the job's stages; never raises for a failing stage (see CiReport.exit_code).

    Refusals (`check_can_run`) raise before anything runs.
    """
    check_can_run(cfg, ci, opts)
    report = CiReport(ci=ci, app=cfg.app.name, dev_env=opts.dev_env, prod_env=opts.prod_env,
                      promote=opts.promote, stages=[StageReport(n) for n in stage_names(opts)])
    red = redactor or Redactor()
    state: dict[str, Any] = {}
    stages: list[tuple[str, Callable[[StageReport], None]]] = [
        ("build", lambda st: _build(cfg, ci, report, st, emit, state)),
        ("push", lambda st: _push(cfg, report, st, emit, state)),
    ]
    if opts.setup:
        stages.append((f"setup {opts.dev_env}", lambda st: _setup(report, st, emit, state)))
    stages.append((f"deploy {opts.dev_env}", lambda st: _deploy(cfg, opts, report, st, emit,
                                                                state)))
    if opts.promote:
        stages.append((f"promote {opts.prod_env}",
                       lambda st: _promote(cfg, opts, st, emit, state)))
    try:
        for name, run in stages:
            st = report.stage(name)
            emit({"event": "message", "text": f"── {name}"})
            t0 = time.monotonic()
            try:
                run(st)
            except ConveyorError as exc:  # a stage that broke outside its plan's steps
                _fail(st, exc)
            if not st.duration:
                st.duration = time.monotonic() - t0
            if st.status == "not run":
                st.status = "ok"
            if report.failed_stage is not None:
                break
        return report
    finally:
        remote = state.get("remote")
        if remote is not None:
            remote.close()
            _merge(red, remote)
        report.finished_at = time.time()
        _redact_report(report, red)


def _build(cfg, ci: CiEnv, report: CiReport, st: StageReport, emit, state: dict) -> None:
    from conveyor.plan import execute
    from conveyor.plans.build import BuildState, build_plan

    rev = _revision(cfg, ci)
    report.revision = rev.label
    if rev.dirty:
        report.warnings.append(f"the work tree has uncommitted changes: the image is tagged "
                               f"{rev.tag}")
    plan, ref = build_plan(cfg, revision=rev)
    _from_plan(st, execute(plan, BuildState(), emit, raise_on_failure=False))
    st.detail = ref + (f" ({st.detail})" if st.detail and ref not in st.detail else "")
    state["ref"] = ref


def _push(cfg, report: CiReport, st: StageReport, emit, state: dict) -> None:
    from conveyor.imageref import ImageRef
    from conveyor.plan import execute
    from conveyor.plans.build import BuildState, push_plan
    from conveyor.targets.remote import Remote

    bst = BuildState()
    result = execute(push_plan(cfg, state["ref"]), bst, emit, raise_on_failure=False)
    _from_plan(st, result)
    if not st.ok:
        return
    pushed = bst.pushed
    image = ImageRef(pushed["repository"], pushed["digest"], pushed.get("commit"),
                     pushed.get("tag"))
    report.image = st.detail = image.ref
    state["image"] = image
    state["remote"] = remote = Remote(cfg, report.dev_env)
    report.dev_url = remote.url


def _setup(report: CiReport, st: StageReport, emit, state: dict) -> None:
    from conveyor.plan import execute
    from conveyor.plans.setup import setup_plan, setup_state

    remote = state["remote"]
    _from_plan(st, execute(setup_plan(remote), setup_state(remote), emit,
                           transport=remote.transport, raise_on_failure=False))


def _deploy(cfg, opts: CiOptions, report: CiReport, st: StageReport, emit, state: dict) -> None:
    """The dev deployment; its test step is reported as the stage `test`."""
    from conveyor.plans.dev import deploy_plans
    from conveyor.runner.controller import run_on_host
    from conveyor.runner.job import job_for
    from conveyor.state.deploy import DeployOptions

    remote, image = state["remote"], state["image"]
    test_st = report.stage("test")
    with tempfile.TemporaryDirectory(prefix="conveyor-ci-") as tmp:
        test_junit = Path(tmp) / "tests.xml"
        dopts = DeployOptions(project_dir=cfg.root_dir, wait=True,
                              wait_timeout=opts.wait_timeout, run_tests=True, junit=test_junit)
        dep = deploy_plans(remote, image, dopts)
        report.deployment_id = dep.record.id
        result = run_on_host(dep, job_for("dev", dep, dopts), emit, wait=True,
                             wait_timeout=opts.wait_timeout)
        _deploy_stages(report, st, test_st, result, dep, remote)
        if test_junit.exists():
            _read_test_junit(report, test_junit)
    for fin in dep.state.finalize_results:
        if not fin.ok:
            report.warnings.append(f"{fin.plan}: {fin.error}")


def _promote(cfg, opts: CiOptions, st: StageReport, emit, state: dict) -> None:
    """The prod stage with the digest that passed dev in this job (`choose_image` finds the
    dev deployment just recorded). It fills the stage and raises the failing step's error; an
    error before its plan ran (e.g. the image did not pass) leaves the stage for `_fail`."""
    promote_fn = _promote_function()
    try:
        promote_fn(cfg, opts.prod_env, state["image"], emit=emit, stage=st,
                   source=opts.dev_env, wait_timeout=opts.wait_timeout)
    except ConveyorError as exc:
        if st.status != "failed":
            _fail(st, exc)


def _merge(red: Redactor, remote) -> None:
    for s in getattr(remote.redactor, "_secrets", ()):
        red.add(s)


def _deploy_stages(report: CiReport, st: StageReport, test_st: StageReport, result, dep,
                   remote) -> None:
    rec = dep.record
    report.migrations_applied = list(rec.migrations_applied or [])
    report.tests = rec.tests
    deploy_steps = [s for s in result.steps if s.name != "test"]
    test_steps = [s for s in result.steps if s.name == "test"]
    st.steps = [{"name": s.name, "status": s.status, "duration": s.duration, "error": s.error,
                 "notes": s.notes} for s in deploy_steps]
    st.duration = sum(s.duration for s in deploy_steps)
    out: list[str] = []
    for s in deploy_steps:
        out += s.output
    st.output = _tail(out)
    notes = [f"{s.name}: {'; '.join(s.notes)}" for s in deploy_steps if s.notes]
    st.detail = f"deployment {rec.id}"
    failed_step = next((s for s in deploy_steps if s.status != "ok"), None)
    if result.error is not None and (not test_steps or failed_step is not None):
        _fail(st, result.error)
        if failed_step is not None:
            st.output = _tail(failed_step.output) or st.output
        return
    st.status = "ok"
    if notes:
        st.detail += " — " + "; ".join(n for n in notes if n.startswith(("migrate", "health")))
    # the test step
    if not test_steps:
        test_st.status = "ok"
        test_st.detail = "no test_command configured"
        return
    ts = test_steps[0]
    test_st.duration = ts.duration
    test_st.output = _tail(ts.output)
    tests = rec.tests or {}
    counts = ", ".join(f"{tests[k]} {k}" for k in ("passed", "failed", "errors", "skipped")
                       if tests.get(k))
    test_st.detail = (counts or "") + (f" against {remote.url}" if remote.url else "")
    if result.error is not None:  # the test step itself broke
        _fail(test_st, result.error)
    elif dep.state.tests_failed or not tests.get("ok", True):
        test_st.status = "failed"
        test_st.exit_code = EXIT_TESTS_FAILED
        test_st.error = (f"the tests failed against {remote.url} "
                         f"(exit {tests.get('exit_code')}: {tests.get('command')})")
        test_st.hint = f"`conveyor history {remote.name} {rec.id}` shows the whole run"
    else:
        test_st.status = "ok"


def _promote_function():
    """The prod stage's entry point for promoting a digest that just passed dev."""
    from conveyor.ci_promote import promote_for_ci

    return promote_for_ci



__all__ = ["EXIT_FAILED", "EXIT_TESTS_FAILED", "CiFailed", "CiOptions", "CiRefused", "CiReport",
           "FailedTest", "StageReport", "check_can_run", "junit_xml", "markdown", "run_ci",
           "stage_names", "write_reports"]
