"""`conveyor build` tags the image `<registry>/<image>:<commit12>[-dirty]`, labelled with the
revision; `conveyor push` pushes it and records the registry's digest in `.conveyor/images.json`,
where `conveyor deploy` finds it for the current revision: built once, the digest pinned."""

from __future__ import annotations

import json
import re
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from conveyor import git, host, records
from conveyor.commands import docker
from conveyor.config import Config
from conveyor.errors import ConveyorError
from conveyor.imageref import REVISION_LABEL
from conveyor.plan import Plan, Step, StepIO
from conveyor.steps import migrate_engine as remote_migrate
from conveyor.transport import LocalTransport


@dataclass
class BuildState:
    image_id: str = ""  # build
    pushed: dict[str, Any] = field(default_factory=dict)  # push: the registry's digest

_DIGEST = re.compile(r"digest: (sha256:[0-9a-f]{64})")


def _abs(cfg: Config, p: str) -> str:
    path = Path(p)
    return str(path if path.is_absolute() else (cfg.root_dir / path).resolve())


def build_plan(cfg: Config, *, tag: str | None = None,
               revision: git.Revision | None = None) -> tuple[Plan[BuildState], str]:
    """(plan, image reference built)."""
    rev = revision or git.revision(cfg.root_dir)
    repo = cfg.image_repository()
    ref = f"{repo}:{tag or rev.tag}"
    labels = {REVISION_LABEL: rev.sha, docker.LABEL: cfg.app.name,
              "conveyor.revision": rev.label, "conveyor.dirty": str(rev.dirty).lower()}
    fp = None if cfg.migrations.command else remote_migrate.local_fingerprint(cfg.migrations_dir)
    if fp is not None:
        labels[remote_migrate.FINGERPRINT_LABEL] = fp[0]
    argv = docker.build(ref, _abs(cfg, cfg.app.context), _abs(cfg, cfg.app.dockerfile),
                        build_args=cfg.app.build_args, labels=labels)
    local = LocalTransport(cwd=cfg.root_dir)
    labels_argv = ("--label", f"{docker.LABEL}={cfg.app.name}")

    def verify(io: StepIO) -> None:
        """The label must describe the image's own migrations (a deploy trusts it to skip the
        migration container): they are copied out of the image (never run) and discovered."""
        assert fp is not None
        with tempfile.TemporaryDirectory(prefix="conveyor-build-") as tmp:
            r = local.run(host.argv("copy_out", ref, cfg.migrations.container_dir,
                                    f"{tmp}/m", *labels_argv), check=False, timeout=300)
            found = remote_migrate.local_fingerprint(Path(tmp) / "m") if r.ok else None
        if found is None or found[0] != fp[0]:
            local.run(docker.rmi(ref), check=False)
            raise ConveyorError(
                f"the migrations in the image at {cfg.migrations.container_dir} are not the "
                f"{fp[1]} in {cfg.migrations_dir}: "
                + (f"found {found[1]}" if found is not None else
                   (r.stderr.strip()[-300:] or "cannot list them")),
                hint="copy the migrations directory into the image at migrations.container_dir, "
                "or set migrations.command")
        io.note(f"{fp[1]} migrations, fingerprint checked in the image")

    def action(st: BuildState, io: StepIO) -> None:
        local.run(argv, stream=io.log)
        if fp is not None:
            verify(io)
        image_id = local.run(docker.image_inspect(ref, "{{.Id}}")).stdout.strip()
        records.remember_image(cfg.root_dir, "built", {
            "ref": ref, "repository": repo, "tag": ref.rsplit(":", 1)[1], "image_id": image_id,
            "revision": rev.label, "commit": rev.sha, "dirty": rev.dirty,
            "built_at": records.iso(time.time())})
        st.image_id = image_id
        io.note(f"{ref} ({image_id[:19]})" + ("  [dirty work tree]" if rev.dirty else ""))

    describe: list = [argv]
    if fp is not None:
        describe += [host.shown(host.argv("copy_out", ref, cfg.migrations.container_dir,
                                          "<a temporary directory>", *labels_argv)),
                     (f"  (checks label {remote_migrate.FINGERPRINT_LABEL}={fp[0]}: the "
                     f"image's {fp[1]} migrations)")]
    return Plan("build", [Step("build", action, describe=describe)]), ref


def default_push_ref(cfg: Config) -> str:
    rev = git.revision(cfg.root_dir)
    built = records.find_image(cfg.root_dir, "built", revision=rev.label,
                               repository=cfg.image_repository())
    return built["ref"] if built else f"{cfg.image_repository()}:{rev.tag}"


def push_plan(cfg: Config, ref: str) -> Plan[BuildState]:
    local = LocalTransport(cwd=cfg.root_dir)
    steps: list[Step[BuildState]] = []
    reg = cfg.registry
    if reg is not None and reg.username is not None and reg.password is not None:
        username, password = reg.username, reg.password

        def login(st: BuildState, io: StepIO) -> None:
            user = cfg.secret(username, "registry.username")
            pw = cfg.secret(password, "registry.password")
            local.run(docker.login(reg.address, user), input=pw + "\n")

        steps.append(Step("login", login, describe=[docker.login(reg.address, "<username>"),
                                                    "stdin: the registry password"]))
    argv = docker.push(ref)

    def push(st: BuildState, io: StepIO) -> None:
        labels_json = local.run(docker.image_inspect(ref, "{{json .Config.Labels}}"),
                                check=False)
        if labels_json.returncode != 0:
            raise ConveyorError(f"no local image {ref}",
                                hint="build it first: `conveyor build`")
        labels = json.loads(labels_json.stdout or "null") or {}
        r = local.run(argv, stream=io.log)
        m = _DIGEST.search(r.stdout)
        repo = ref.rsplit(":", 1)[0] if ":" in ref.rsplit("/", 1)[-1] else ref
        digests = json.loads(local.run(docker.image_repo_digests(ref)).stdout or "[]") or []
        digest = m.group(1) if m else None
        if digest is None:
            for d in digests:
                if d.startswith(repo + "@"):
                    digest = d.split("@", 1)[1]
        if digest is None:
            raise ConveyorError(f"pushed {ref}, but found no digest for it",
                                hint="check the registry's answer above")
        entry = {"ref": ref, "repository": repo, "tag": ref[len(repo) + 1:] or None,
                 "digest": digest, "image": f"{repo}@{digest}",
                 "revision": labels.get("conveyor.revision") or labels.get(REVISION_LABEL),
                 "commit": labels.get(REVISION_LABEL), "pushed_at": records.iso(time.time())}
        records.remember_image(cfg.root_dir, "pushed", entry)
        st.pushed = entry
        io.note(str(entry["image"]))

    steps.append(Step("push", push, describe=[argv]))
    return Plan("push", steps)


