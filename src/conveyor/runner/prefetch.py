"""`docker pull` of the job's image, started in the background as the runner starts, before
conveyor's modules are loaded: the pull overlaps the runner's start-up instead of following
it. Standard library only. Pulling changes nothing that serves: the plan's lock and pull
steps run as before (the pull step finds the image there, or joins the pull in flight); a
pull that fails here (a registry that needs the plan's login, a registry down) is the pull
step's to report."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

#: the plans that pull the job's image
PULLED_BY = ("dev", "prod", "rollback", "rehearse")


def image_of(job_text: str) -> str | None:
    """`repository@digest` of the job's image, when its plan pulls one."""
    try:
        job = json.loads(job_text)
        image = job.get("image") or {}
        if job.get("kind") not in PULLED_BY or not image.get("digest"):
            return None
        return f"{image['repository']}@{image['digest']}"
    except (ValueError, AttributeError, KeyError, TypeError):
        return None


def prefetch(job_path: str) -> subprocess.Popen[bytes] | None:
    """Start pulling the job's image (not waited for; it ends with the runner at the latest)."""
    try:
        ref = image_of(Path(job_path).read_text(encoding="utf-8"))
    except OSError:  # no job file: a runner restarted after it died (it recovers)
        return None
    if ref is None or ref.startswith("-"):
        return None
    try:
        return subprocess.Popen(["docker", "pull", "--quiet", ref], stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    except OSError:
        return None
