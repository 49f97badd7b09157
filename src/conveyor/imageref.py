"""An image pinned by digest: what every remote deployment runs."""

from __future__ import annotations

from dataclasses import dataclass

from conveyor.errors import ConveyorError

#: the OCI label that carries the git commit an image was built from
REVISION_LABEL = "org.opencontainers.image.revision"


@dataclass(frozen=True)
class ImageRef:
    """An image pinned by digest (what deploys use), with what is known about it."""

    repository: str
    digest: str
    revision: str | None = None
    tag: str | None = None

    @property
    def ref(self) -> str:
        return f"{self.repository}@{self.digest}"

    @classmethod
    def parse(cls, ref: str, revision: str | None = None) -> ImageRef:
        repo, sep, digest = ref.partition("@")
        if not sep or not digest.startswith("sha256:") or len(digest) != 71:
            raise ConveyorError(f"not an image reference by digest: {ref!r}",
                                hint="expected REPOSITORY@sha256:<64 hex digits>")
        tag = None
        last = repo.rsplit("/", 1)[-1]
        if ":" in last:
            repo, tag = repo.rsplit(":", 1)
        return cls(repo, digest, revision, tag)
