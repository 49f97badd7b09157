"""The dev stage (`conveyor deploy dev`), as the seed lists it: lock the environment, pull the
image by digest, migrate the dev database in a temporary container of the new image, replace
the app container, wait for its health, run the tests against it; always: record and unlock."""

from __future__ import annotations

import time

from conveyor.imageref import ImageRef
from conveyor.plan import Plan
from conveyor.plans.deployment import Deployment
from conveyor.records import DeploymentRecord, actor, new_id
from conveyor.state.deploy import DeployOptions, DeployState
from conveyor.steps.app import replace_step
from conveyor.steps.health import health_step
from conveyor.steps.image import login_step, pull_step
from conveyor.steps.lock import lock_info, lock_step
from conveyor.steps.migrate import migrate_step
from conveyor.steps.record import record_step
from conveyor.steps.tests import Verdicts, tests_step
from conveyor.targets.remote import Remote


def acquire_steps(remote: Remote, image: ImageRef, lock: dict, *, wait: bool,
                  wait_timeout: float) -> list:
    """The opening of every deployment plan: take the host lock, log in to the registry when
    credentials are configured, pull the image by digest (before anything stops)."""
    steps = [lock_step(remote, lock, wait=wait, wait_timeout=wait_timeout, image=image,
                       set_up=True)]
    login = login_step(remote)
    if login:
        steps.append(login)
    steps.append(pull_step(remote, image))
    return steps


def deploy_plans(remote: Remote, image: ImageRef, opts: DeployOptions, *,
                 deployment_id: str | None = None, kind: str = "deploy",
                 verdicts: Verdicts | None = None) -> Deployment:
    did = deployment_id or new_id()
    record = DeploymentRecord(id=did, app=remote.app.name, env=remote.name, kind=kind,
                              who=actor(), started_at=time.time(), image=image.ref,
                              revision=image.revision, url=remote.url,
                              options={"wait": opts.wait, "tests": opts.run_tests,
                                       **({"allow_drift": True} if opts.allow_drift else {})})
    lock = lock_info(did, image, f"{kind} {remote.name} {image.ref}")
    steps = acquire_steps(remote, image, lock, wait=opts.wait, wait_timeout=opts.wait_timeout)
    steps += [
        migrate_step(remote, image, did, allow_drift=opts.allow_drift),
        replace_step(remote, image, did),
        health_step(remote),
    ]
    if opts.run_tests and remote.env.test_command:
        steps.append(tests_step(remote, opts.project_dir, junit=opts.junit, deployment_id=did,
                                image=image, verdicts=verdicts))
    state = DeployState(remote, record, image)
    return Deployment(remote, state, Plan(f"{kind} {remote.name}", steps),
                      Plan(f"{kind} {remote.name}: finalize", [record_step(remote)]))
