"""The image a deployment pins, found from what the user typed or what `conveyor push`
recorded for the current revision (`.conveyor/images.json`)."""

from __future__ import annotations

import json

from conveyor import git, records
from conveyor.commands import docker
from conveyor.config import Config
from conveyor.errors import ConveyorError
from conveyor.imageref import REVISION_LABEL, ImageRef
from conveyor.transport import LocalTransport


def resolve_image(cfg: Config, image: str | None) -> ImageRef:
    """The image a deployment pins: `--image` (by digest, or a tag resolved to its digest), or
    the digest `conveyor push` recorded for the current revision."""
    repo = cfg.image_repository()
    if image and "@sha256:" in image:
        return ImageRef.parse(image)
    if image:
        ref = image if ("/" in image or ":" in image) else f"{repo}:{image}"
        r = LocalTransport().run(docker.image_inspect(ref, "{{json .}}"), check=False)
        if r.returncode == 0:
            info = json.loads(r.stdout)
            name = ref.rsplit(":", 1)[0] if ":" in ref.rsplit("/", 1)[-1] else ref
            labels = (info.get("Config") or {}).get("Labels") or {}
            for d in info.get("RepoDigests") or []:
                if d.startswith(name + "@"):
                    return ImageRef.parse(d, revision=labels.get(REVISION_LABEL))
        raise ConveyorError(
            f"cannot tell the digest of {ref}: it was not pushed from this machine",
            hint="pass the image by digest: --image REPOSITORY@sha256:...")
    rev = git.revision(cfg.root_dir)
    pushed = records.find_image(cfg.root_dir, "pushed", revision=rev.label, repository=repo)
    if pushed is None:
        raise ConveyorError(
            f"no image of revision {rev.tag} has been pushed from {cfg.root_dir}",
            hint="`conveyor build && conveyor push` first, or pass --image REF")
    return ImageRef(pushed["repository"], pushed["digest"], pushed.get("commit"),
                    pushed.get("tag"))
