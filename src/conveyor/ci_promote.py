"""`conveyor ci --promote`: the prod stage run for the CI job, with the digest that passed dev
earlier in the job, reported as a stage of the job."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from conveyor.config import Config
from conveyor.imageref import ImageRef
from conveyor.plan import PlanResult
from conveyor.plans.deployment import Deployment
from conveyor.promotion import Promotion, plan_promotion
from conveyor.runner.controller import run_on_host
from conveyor.runner.job import job_for
from conveyor.state.deploy import ProdOptions
from conveyor.steps.report import outcome_text

CI_OUTPUT_TAIL = 40


def promote_for_ci(cfg: Config, env_name: str, image: ImageRef, *, emit: Callable[[dict], None],
                   stage: Any, source: str | None = None,
                   wait_timeout: float = 1800.0) -> Deployment:
    """`conveyor ci --promote`: promote to `env_name` exactly the digest that passed `source`
    (default: the environment's `promote_from`) earlier in this job; never forced, destructive
    migrations are refused.

    Fills `stage` (a `conveyor.ci_pipeline.StageReport`: status, steps with their durations,
    the output's tail, error + hint, and after a failure what serves, what the database holds
    and the commands that go further back). On failure raises the failing step's error (its
    exit code: 6 migration, 7 health, 10 validation, 11 not promotable, 12 lint, ...); errors
    before the plan runs (the image did not pass, a config error) are raised unfilled.
    """
    opts = ProdOptions(project_dir=cfg.root_dir, wait=True, wait_timeout=wait_timeout)
    promo = plan_promotion(cfg, env_name, image, opts, source=source)
    remote, dep = promo.remote, promo.dep
    red = remote.redactor

    def redacted(event: dict) -> None:  # the prod secrets join the redactor as steps need them
        emit(red(event))

    redacted({"event": "message", "text": f"{promo.kind} {promo.image.ref} ({promo.origin}) to "
              f"{remote.name} ({remote.host}), deployment {dep.record.id}"})
    try:
        result = run_on_host(dep, job_for("prod", dep, opts, provenance=promo.provenance,
                                          record_kind=promo.kind),
                             redacted, wait=True, wait_timeout=wait_timeout)
    finally:
        remote.close()
    _fill_ci_stage(stage, promo, result)
    for fin in dep.state.finalize_results:
        if not fin.ok:  # e.g. the record or the unlock failed: the job must say so
            redacted({"event": "message", "text": f"warning: {fin.plan}: {fin.error}"})
    if result.error is not None:
        raise result.error
    return dep


def _fill_ci_stage(stage: Any, promo: Promotion, result: PlanResult) -> None:
    dep, remote = promo.dep, promo.remote
    red = remote.redactor

    def tail(lines: list[str]) -> list[str]:
        return [ln.rstrip("\n") for ln in lines[-CI_OUTPUT_TAIL:]]

    stage.steps = [{"name": s.name, "status": s.status, "duration": s.duration,
                    "error": s.error, "notes": s.notes} for s in result.steps]
    stage.duration = sum(s.duration for s in result.steps)
    output: list[str] = []
    for s in result.steps:
        output += s.output
    notes = [f"{s.name}: {'; '.join(s.notes)}" for s in result.steps
             if s.notes and s.name in ("plan", "migrate", "validate")]
    stage.detail = (f"deployment {dep.record.id} ({promo.origin}): {remote.url}"
                    + (" — " + "; ".join(notes) if notes else ""))
    failed = next((s for s in result.steps if s.status == "failed"), None)
    if result.error is None:
        stage.status = "ok"
        stage.output = tail(output)
    else:
        exc = result.error
        state = outcome_text(dep.state)
        stage.status = "failed"
        stage.error = "\n".join([str(exc), "", *state]) if state else str(exc)
        stage.hint = getattr(exc, "hint", None)
        stage.exit_code = getattr(exc, "exit_code", None) or 1
        stage.output = tail(failed.output if failed is not None and failed.output else output)
    for fin in dep.state.finalize_results:
        if not fin.ok:
            stage.output.append(f"warning: {fin.plan}: {fin.error}")
    stage.detail = red(stage.detail)
    stage.error = red(stage.error) if stage.error else stage.error
    stage.hint = red(stage.hint) if stage.hint else stage.hint
    stage.output = red(stage.output)
    stage.steps = red(stage.steps)


