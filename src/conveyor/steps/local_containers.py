"""The containers step: `compose up --detach --no-build`, skipped when it would change nothing.

Skipped when the containers conveyor started last time (recorded in the stack's state file)
still run, one per service, and the fingerprint of everything `compose up` acts on (the
compose inputs, the files they name, every service's image ID) is the one recorded then.
"""

from __future__ import annotations

import hashlib
import os
import re
import threading
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from conveyor.commands import compose as composecmd
from conveyor.errors import ComposeFailed, ImageUnavailable
from conveyor.plan import StepIO
from conveyor.state.local import LocalState
from conveyor.steps.compose_file import compose_inputs, referenced_files
from conveyor.steps.docker_engine import docker_unavailable
from conveyor.steps.local_common import TESTBED_WAY_OUT, Run, read_json, tail, write_json
from conveyor.steps.local_image import inspect_image, is_pull_failure
from conveyor.targets.local import LocalStack

READS = ("compose", "services", "image_id", "built", "refresh")
WRITES = ("containers", "containers_changed")


def project_containers(stack: LocalStack, run: Run) -> list[composecmd.Container]:
    """Every container of the stack's compose project, in any state."""
    r = run(composecmd.project_containers(stack.project, composecmd.PS_FORMAT), check=False,
            timeout=60)
    if not r.ok:
        raise docker_unavailable(r.stderr)
    return composecmd.parse_ps(r.stdout)


def stack_fingerprint(compose_key: str, texts: Iterable[str], base: Path,
                      image_ids: Mapping[str, str]) -> str:
    """Everything `compose up` acts on: the compose inputs, files they name, the images' IDs."""
    h = hashlib.sha256(f"stack-v1\0{compose_key}\0".encode())
    for p in referenced_files(texts, base):
        try:
            h.update(f"ref {p}\0".encode() + p.read_bytes() + b"\0")
        except OSError:
            h.update(f"ref {p}\0<unreadable>\0".encode())
    for svc in sorted(image_ids):
        h.update(f"image {svc}={image_ids[svc]}\0".encode())
    return h.hexdigest()


def containers_unchanged(containers: Sequence[composecmd.Container], services: Iterable[str],
                         recorded: Mapping[str, str]) -> bool:
    """True when each service has exactly one container, running, the one conveyor recorded."""
    by_service: dict[str, list[composecmd.Container]] = {}
    for c in containers:
        by_service.setdefault(c.service, []).append(c)
    for svc in services:
        found = by_service.get(svc, [])
        if len(found) != 1 or found[0].state != "running" or recorded.get(svc) != found[0].id:
            return False
    return True


def service_image_ids(state: LocalState, run: Run) -> dict[str, str]:
    """Service -> image ID (the app's from the image step; the others inspected in parallel)."""
    ids: dict[str, str] = {}
    threads = []

    def one(svc: str, ref: str) -> None:
        got = inspect_image(run, ref)
        ids[svc] = got[0] if got else "<missing>"

    for svc, ref in state.services.items():
        if svc == state.target.app_service:
            ids[svc] = state.image_id or "<missing>"
        elif ref:
            t = threading.Thread(target=one, args=(svc, ref), daemon=True)
            t.start()
            threads.append(t)
        else:
            ids[svc] = "<build-only>"
    for t in threads:
        t.join()
    return ids


def service_image_error(state: LocalState, output: str) -> ImageUnavailable:
    """Name the service image that cannot be pulled and where the compose file sets it."""
    services = state.services
    m = re.search(r"Pulling (\S+) \(([^)]+)\)", output) or \
        re.search(r"(\S+) Error.*?pull access denied for ([^,\s]+)", output)
    svc = m.group(1) if m else None
    image = m.group(2) if m else None
    if image is None:
        for s, img in services.items():
            if img and img in output:
                svc, image = s, img
                break
    variables = sorted({v for f in state.target.compose_files for v in re.findall(
        r"image:\s*[\"']?\$\{([A-Za-z_][A-Za-z0-9_]*)", Path(f).read_text(errors="replace"))})
    via = f" (the compose file reads it from ${', $'.join(variables)})" if variables else ""
    what = f"the image {image} of compose service {svc}" if image else "an image of the compose file"
    return ImageUnavailable(
        f"cannot pull {what}: {tail(output, 1)}; set the service's image{via} to one this engine "
        f"has or can pull; on a machine without Docker Hub: {TESTBED_WAY_OUT} (sets "
        "BASE_PYTHON_IMAGE / BASE_POSTGRES_IMAGE to offline images)")


def containers(state: LocalState, io: StepIO) -> None:
    stack, compose = state.target, state.need_compose()
    key, texts = compose_inputs(stack.compose_files, os.environ, compose.flavor, stack.project)
    base = Path(stack.compose_files[0]).parent
    state_file = stack.state_file()
    got: dict[str, list[composecmd.Container]] = {}

    def ps() -> None:
        got["containers"] = project_containers(stack, io.run)

    thread = threading.Thread(target=ps, daemon=True)
    thread.start()
    image_ids = service_image_ids(state, io.run)
    thread.join()
    fingerprint = stack_fingerprint(key, texts, base, image_ids)
    recorded = read_json(state_file)
    found = got["containers"]
    if (not state.refresh and not state.built and recorded
            and recorded.get("fingerprint") == fingerprint
            and containers_unchanged(found, state.services, recorded.get("containers") or {})):
        state.containers_changed = []
        state.containers = {c.service: c.id for c in found}
        io.note(f"{len(found)} containers running, unchanged: compose up not needed")
        return
    r = io.run(composecmd.up(compose, stack.project, stack.compose_files), check=False,
               stream=True, timeout=900)
    output = r.stdout + r.stderr
    if not r.ok:
        if is_pull_failure(output):
            raise service_image_error(state, output)
        raise ComposeFailed(f"{compose.display} up failed (exit {r.returncode}):\n"
                            f"{tail(output, 15, indent='  ')}",
                            hint="`conveyor logs` shows the containers' logs")
    changed = composecmd.changed_services(output)
    found = project_containers(stack, io.run)
    if any(i == "<missing>" for i in image_ids.values()):
        image_ids = service_image_ids(state, io.run)
        fingerprint = stack_fingerprint(key, texts, base, image_ids)
    running = {c.service: c.id for c in found if c.state == "running"}
    state.containers, state.containers_changed = running, changed
    if state_file:
        write_json(state_file, {"fingerprint": fingerprint, "containers": running,
                                "project": stack.project, "config": str(stack.cfg.path)})
    io.note(f"started or recreated: {', '.join(changed)}" if changed
            else "containers up to date")
