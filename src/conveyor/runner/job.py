"""The job a controller hands to a runner: which plan, for which environment and image, with
which options, the configuration already validated and the secrets already resolved (the host
has no access to the controller's environment variables or secret files)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from conveyor.config import Config, EnvironmentConfig, RootConfig, UrlDatabase
from conveyor.imageref import ImageRef
from conveyor.plans.deployment import Deployment
from conveyor.state.deploy import DeployOptions, ProdOptions
from conveyor.steps.lock import lock_args
from conveyor.steps.tests import Verdicts
from conveyor.targets.remote import Remote

KINDS = ("dev", "prod", "rollback", "restore", "rehearse")


@dataclass
class Job:
    id: str  # the deployment id
    kind: str  # one of KINDS
    env: str
    root: dict[str, Any]  # the file's global tables (RootConfig, without environments)
    environment: dict[str, Any]  # the environment, interpolated and validated
    options: dict[str, Any]
    image: dict[str, Any] | None = None  # ImageRef fields
    extra: dict[str, Any] = field(default_factory=dict)  # provenance, rollback info, backup id
    actor: str = ""
    secrets: dict[str, str] = field(default_factory=dict)  # key path -> value; never journaled

    def to_json(self) -> str:
        return json.dumps(asdict(self), default=str)

    @classmethod
    def from_json(cls, text: str) -> Job:
        return cls(**json.loads(text))

    def redacted(self) -> Job:
        """The job without its secrets (what the run directory keeps for a recovery)."""
        return Job(**{**asdict(self), "secrets": {}})

    def config(self, path: Path) -> Config:
        root = RootConfig.model_validate({**self.root, "environments": {self.env: {}}})
        env = EnvironmentConfig.model_validate(self.environment)
        return Config.from_resolved(path, root, {self.env: env}, self.secrets)

    def image_ref(self) -> ImageRef | None:
        return ImageRef(**self.image) if self.image else None


def resolve_secrets(cfg: Config, env_name: str) -> dict[str, str]:
    """Every secret the environment's plans may use, resolved here (the controller)."""
    env = cfg.environment(env_name)
    out: dict[str, str] = {}
    reg = cfg.registry
    if reg is not None and reg.username is not None and reg.password is not None:
        out["registry.username"] = cfg.secret(reg.username, "registry.username")
        out["registry.password"] = cfg.secret(reg.password, "registry.password")
    for k, ref in cfg.app.secrets.items():
        out[f"app.secrets.{k}"] = cfg.secret(ref, f"app.secrets.{k}")
    for k, ref in env.secrets.items():
        key = f"environments.{env_name}.secrets.{k}"
        out[key] = cfg.secret(ref, key)
    db = env.database
    key = f"environments.{env_name}.database"
    if isinstance(db, UrlDatabase):
        out[key + ".url"] = cfg.secret(db.url, key + ".url")
    elif db.password is not None:
        out[key + ".password"] = cfg.secret(db.password, key + ".password")
    return out


def _options(opts: DeployOptions | ProdOptions) -> dict[str, Any]:
    return {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(opts).items()}


def job_for(kind: str, dep: Deployment, opts: DeployOptions | ProdOptions,
            **extra: Any) -> Job:
    """The job that makes a runner execute `dep` (planned here) on the host."""
    remote = dep.remote
    cfg = remote.cfg
    root = {"app": cfg.app.model_dump(mode="json"),
            "migrations": cfg.migrations.model_dump(mode="json"),
            "registry": cfg.registry.model_dump(mode="json") if cfg.registry else None}
    image = dep.state.image
    what = {"rollback": f"rollback {remote.name} to {image.ref if image else ''}",
            "restore": f"restore {remote.name} from {extra.get('backup_id')}"}.get(
        kind, f"{dep.record.kind} {remote.name} {image.ref if image else ''}")
    # what the lock step reads (lock.sh's $2 to $7): the runner starts those reads as it starts
    extra = {"what": what, "lock_reads": list(lock_args(remote, image)[1:]), **extra}
    return Job(id=dep.record.id, kind=kind, env=remote.name, root=root,
               environment=remote.env.model_dump(mode="json"), options=_options(opts),
               image=asdict(image) if image else None, extra=extra, actor=dep.record.who,
               secrets=resolve_secrets(cfg, remote.name))


def _path(v: Any) -> Path | None:
    return Path(v) if v else None


def build(job: Job, remote: Remote, verdicts: Verdicts | None) -> Deployment:
    """The same plan the controller built, rebuilt on the host from the job."""
    from conveyor.plans.dev import deploy_plans
    from conveyor.plans.prod import prod_plans
    from conveyor.plans.restore import restore_plans
    from conveyor.plans.rollback import rollback_plans

    if job.kind not in KINDS:
        raise ValueError(f"unknown job kind {job.kind!r}")
    o = job.options
    image = job.image_ref()
    if job.kind == "dev":
        assert image is not None
        dopts = DeployOptions(project_dir=Path(o["project_dir"]), wait=o["wait"],
                              wait_timeout=o["wait_timeout"], run_tests=o["run_tests"],
                              junit=_path(o.get("junit")),
                              allow_drift=bool(o.get("allow_drift")))
        return deploy_plans(remote, image, dopts, deployment_id=job.id, verdicts=verdicts)
    popts = ProdOptions(project_dir=Path(o["project_dir"]),
                        allow_destructive=o["allow_destructive"], validate=o["validate"],
                        wait=o["wait"], wait_timeout=o["wait_timeout"],
                        junit=_path(o.get("junit")), migrations=o["migrations"],
                        strategy=o.get("strategy"))
    popts.max_downtime = o.get("max_downtime")
    popts.allow_drift = bool(o.get("allow_drift"))
    if job.kind == "prod":
        assert image is not None
        if remote.env.strategy == "zero-downtime":
            from conveyor.plans.zero_downtime import plans_for
            return plans_for(remote, image, popts, strategy=popts.strategy,
                             provenance=job.extra.get("provenance"),
                             kind=job.extra.get("record_kind", "promote"),
                             deployment_id=job.id, verdicts=verdicts)
        return prod_plans(remote, image, popts, provenance=job.extra.get("provenance"),
                          kind=job.extra.get("record_kind", "promote"), deployment_id=job.id,
                          verdicts=verdicts)
    if job.kind == "rollback":
        assert image is not None
        return rollback_plans(remote, image, popts, info=job.extra.get("info"),
                              deployment_id=job.id, verdicts=verdicts)
    if job.kind == "rehearse":
        from conveyor.plans.rehearse import rehearse_plans

        assert image is not None
        return rehearse_plans(remote, image, popts, provenance=job.extra.get("provenance"),
                              deployment_id=job.id)
    if job.kind == "restore":
        return restore_plans(remote, job.extra["backup_id"], popts, deployment_id=job.id)
    raise ValueError(f"unknown job kind {job.kind!r}")
