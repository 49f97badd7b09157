"""What the runner starts in the background as it starts, before conveyor's modules are
loaded, so that it overlaps the runner's start-up instead of following it: the lock step's
reads (`lock.sh ""`: the app and database containers, the applied migrations; then the pull
of the job's image and its labels), else just the `docker pull`. Standard library only.

Nothing here changes what serves, and it runs under the runner's own lock (its container's
name). The plan's steps run as before: the lock step takes the reads when they are done
(`conveyor.host.take_reads`, keyed by exactly its own arguments) and reads again itself
otherwise; the pull step finds the image there, or joins the pull in flight. A pull that fails
here (a registry that needs the plan's login, a registry down) is the pull step's to report.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from conveyor import host

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


def reads_of(job_text: str) -> list[str] | None:
    """The lock step's reads (lock.sh's $2 to $7) the job names, if any."""
    try:
        reads = (json.loads(job_text).get("extra") or {}).get("lock_reads")
    except (ValueError, AttributeError):
        return None
    if isinstance(reads, list) and len(reads) == 6 and all(isinstance(a, str) for a in reads):
        return reads
    return None


def prefetch(job_path: str) -> subprocess.Popen[bytes] | None:
    """Start the job's reads and pull (not waited for; they end with the runner at the
    latest)."""
    try:
        text = Path(job_path).read_text(encoding="utf-8")
    except OSError:  # no job file: a runner restarted after it died (it recovers)
        return None
    ref = image_of(text)
    if ref is not None and ref.startswith("-"):
        ref = None
    reads = reads_of(text)
    try:
        if reads is not None and (reads[5] or ref is None):  # lock.sh pulls before its image read
            directory = f"/tmp/conveyor-reads-{os.getpid()}-{Path(job_path).stem}"
            os.mkdir(directory, 0o700)
            proc = subprocess.Popen(host.argv("lock", "", *reads, directory, ref or ""),
                                    stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL)
            host.reads_started("lock", reads, directory)
            return proc
        if ref is None:
            return None
        return subprocess.Popen(["docker", "pull", "--quiet", ref], stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    except OSError:
        return None
