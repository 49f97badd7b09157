"""The state of a remote plan (deploy dev, deploy prod, rollback, restore, backup, setup).

One dataclass, filled step by step; each field names the step that writes it. Reports (the
record, the outcome after a failure) read these facts as data.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from conveyor.imageref import ImageRef
from conveyor.records import DeploymentRecord
from conveyor.targets.remote import Remote


@dataclass
class DeployOptions:
    """The dev stage's options."""

    project_dir: Path
    wait: bool = False
    wait_timeout: float = 900.0
    run_tests: bool = True
    junit: Path | None = None
    allow_drift: bool = False  # migrate despite drift (an applied migration's file edited)


@dataclass
class ProdOptions:
    """The prod stage's options (also rollback and restore)."""

    project_dir: Path
    allow_destructive: bool = False
    validate: bool = True
    wait: bool = False
    wait_timeout: float = 900.0
    junit: Path | None = None
    migrations: bool = False  # rollback: revert the migrations the target image does not have
    strategy: str | None = None  # prod: `--strategy` for this deploy (None: the environment's)
    max_downtime: float | None = None  # refuse when the rehearsal predicts more (seconds)
    allow_drift: bool = False  # migrate (and rehearse) despite drift


@dataclass
class RevertPlan:
    """What `rollback --migrations` reverts (written by the rollback's plan step)."""

    versions: list[str]  # newest first
    image: str  # the image whose down.sql reverts them
    names: list[str]

    def as_dict(self) -> dict[str, Any]:
        return {"versions": self.versions, "image": self.image, "names": self.names}


@dataclass
class DeployState:
    remote: Remote
    record: DeploymentRecord
    image: ImageRef | None = None
    # lock: the lock's id while held, and the host as it was when the lock was taken
    lock_id: str | None = None
    current: dict[str, Any] | None = None  # `docker inspect` of the serving app container
    db_state: dict[str, Any] | None = None  # `.State` of the database container
    db_applied: list[str] | None = None  # rows of the applied-migrations query (None: unknown)
    image_present_labels: dict[str, str] | None = None  # the image is on the host already
    # pull
    image_labels: dict[str, str] = field(default_factory=dict)
    image_revision: str | None = None
    # plan (prod): the pending migrations of the new image; rollback: what to revert
    pending: list[str] | None = None
    revert: RevertPlan | None = None
    # backup
    backup: dict[str, Any] | None = None
    # rehearse: the pending migrations on a scratch restore of the backup (timings, prediction)
    rehearsal: dict[str, Any] | None = None
    # migrate / revert
    migrate_result: dict[str, Any] | None = None
    migrations_applied: list[str] = field(default_factory=list)
    migrations_reverted: list[str] = field(default_factory=list)
    # app containers
    app_container_id: str = ""  # replace (dev)
    next_id: str = ""  # prepare (prod)
    stopped_old: bool = False  # stop
    fallback: dict[str, Any] | None = None  # stop's undo: the previous version answering again
    restarted: bool = False  # restore's start
    # zero-downtime: each pending migration's class (classify), the proxy's upstream before
    # the switch ("" none; switch)
    migration_classes: dict[str, str] | None = None
    proxy_upstream: str | None = None
    proxy_takeover: bool = False  # no proxy yet and the old container publishes the port
    # tests (dev) and validation (prod)
    tests: dict[str, Any] | None = None
    tests_failed: bool = False
    validation: dict[str, Any] | None = None
    # restore
    restore_source: dict[str, Any] | None = None
    restore_swapped: bool = False
    # after the plan: what serves and what the database holds
    outcome: dict[str, Any] | None = None
    finalize_results: list[Any] = field(default_factory=list)

    @property
    def serving_image(self) -> str | None:
        """The image of the app container the lock step found (what served before)."""
        config = (self.current or {}).get("Config") or {}
        labels = config.get("Labels") or {}
        return labels.get("conveyor.image") or config.get("Image")

    @property
    def serving_deployment(self) -> str | None:
        config = (self.current or {}).get("Config") or {}
        return (config.get("Labels") or {}).get("conveyor.deployment")

    @property
    def serving_revision(self) -> str | None:
        config = (self.current or {}).get("Config") or {}
        return (config.get("Labels") or {}).get("org.opencontainers.image.revision")
