"""Which image a promoted environment (prod) takes: exactly a digest that passed the environment
it is promoted from (from that host's history), or, with --force, another one, loudly."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from conveyor.config import Config
from conveyor.errors import ConfigError, ConveyorError, NotPromotable
from conveyor.imageref import ImageRef
from conveyor.plans.deployment import Deployment
from conveyor.plans.zero_downtime import plans_for
from conveyor.state.deploy import ProdOptions
from conveyor.steps.record import read_history
from conveyor.targets.remote import Remote


def passed_images(cfg: Config, source: str, limit: int = 1000) -> list[dict[str, Any]]:
    """The successful deployments of `source` (from its host's history), oldest first."""
    src = Remote(cfg, source)
    try:
        entries = read_history(src, limit)
    finally:
        src.close()
    return [e for e in entries if e.get("result") == "ok" and e.get("image")
            and e.get("kind", "deploy") in ("deploy", "promote")]


def choose_image(cfg: Config, env_name: str, image: str | None, *, force: bool = False,
                 source: str | None = None) -> tuple[ImageRef, dict[str, Any]]:
    """The image to deploy to a promoted environment and where it comes from.

    Default: the newest image a successful deployment of `promote_from` recorded. `--image`:
    allowed when that digest passed `promote_from` too; otherwise only with `force`."""
    from conveyor.images import resolve_image

    env = cfg.environment(env_name)
    source = source or env.promote_from
    if image is None:
        if not source:
            raise ConfigError(f"environment {env_name!r} has no `promote_from`: there is no "
                              "environment whose tested images it takes",
                              file=cfg.file, key=f"environments.{env_name}.promote_from",
                              hint="set promote_from = \"dev\", or pass --image REF --force")
        newest = passed_images(cfg, source)
        if not newest:
            raise NotPromotable(
                f"no successful deployment of {source} is recorded on its host: nothing has "
                f"passed {source} yet",
                hint=f"deploy to {source} first (`conveyor deploy {source}`)")
        e = newest[-1]
        ref = ImageRef.parse(e["image"], revision=e.get("revision"))
        return ref, {"source": source, "source_deployment": e["id"],
                     "source_at": e.get("started_at"), "forced": False}
    ref = resolve_image(cfg, image)
    passed: list[dict[str, Any]] = []
    error = None
    if source:
        try:
            passed = passed_images(cfg, source)
        except ConveyorError as exc:
            if not force:
                raise
            error = str(exc)
    match = [e for e in passed if e["image"].split("@", 1)[-1] == ref.digest]
    if match:
        e = match[-1]
        return ref, {"source": source, "source_deployment": e["id"],
                     "source_at": e.get("started_at"), "forced": False}
    if not force:
        where = source or "any environment"
        raise NotPromotable(
            f"{ref.ref} has not passed {where}: no successful deployment of this digest is "
            f"recorded{f' on {source}' if source else ''}",
            hint=(f"deploy it to {source} first; to put it in {env_name} anyway, add --force "
                  "(the record says so)") if source else "add --force (the record says so)")
    return ref, {"source": source, "source_deployment": None, "forced": True,
                 "warning": f"FORCED: {ref.ref} did not pass {source or 'any environment'}"
                 + (f" ({error})" if error else "")}


@dataclass
class Promotion:
    """A planned promotion: the target environment, the image chosen for it and where that
    image comes from, and the deployment (`plans_for`: the environment's strategy) that puts it
    there."""

    remote: Remote
    image: ImageRef
    provenance: dict[str, Any]
    kind: str  # "promote"; "deploy" when --force put in an image that did not pass `source`
    source: str | None
    dep: Deployment

    @property
    def forced(self) -> bool:
        return bool(self.provenance.get("forced"))

    @property
    def origin(self) -> str:
        p = self.provenance
        if p.get("source_deployment"):
            return f"passed {p['source']} in deployment {p['source_deployment']}"
        return "forced"

    @property
    def warning(self) -> str | None:
        if not self.forced:
            return None
        return (f"WARNING: {self.image.ref} has NOT passed {self.source or 'any environment'}; "
                f"deploying it to {self.remote.name} because of --force (the record says so)")


def plan_promotion(cfg: Config, env_name: str, image: str | ImageRef | None, opts: ProdOptions,
                   *, force: bool = False, source: str | None = None) -> Promotion:
    """`conveyor deploy ENV` / `conveyor promote SOURCE ENV` / `conveyor ci --promote`, planned:
    the image (`choose_image`: one that passed `source`, default the environment's
    `promote_from`; anything else only with `force`) and the prod plans for it. Nothing runs."""
    remote = Remote(cfg, env_name)
    src = source or remote.env.promote_from
    try:
        wanted = image.ref if isinstance(image, ImageRef) else image
        img, provenance = choose_image(cfg, env_name, wanted, force=force, source=src)
    except BaseException:
        remote.close()
        raise
    if isinstance(image, ImageRef) and img.digest == image.digest:
        # what the caller knows about the image it just pushed (its revision, its tag)
        img = ImageRef(img.repository, img.digest, img.revision or image.revision,
                       img.tag or image.tag)
    kind = "deploy" if provenance.get("forced") else "promote"
    dep = plans_for(remote, img, opts, strategy=opts.strategy, provenance=provenance, kind=kind)
    return Promotion(remote, img, provenance, kind, src, dep)


