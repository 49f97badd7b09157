"""The compose file step: the services and their images, from `compose config`.

`compose config` costs a second or two, so its answer is cached under a key made of what it
depends on (`compose_inputs`): the compose files, the `.env` next to them, the variables they
reference and Compose's own variables (values are only hashed).
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from conveyor.commands import compose as composecmd
from conveyor.errors import ComposeFailed, ConfigError
from conveyor.plan import StepIO
from conveyor.state.local import LocalState
from conveyor.steps.local_common import Run, read_json, tail, write_json
from conveyor.targets.local import LocalStack

READS = ("compose",)
WRITES = ("services", "services_cached", "app_image")

VAR_REF = re.compile(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)")
_PATH_TOKEN = re.compile(r"[A-Za-z0-9_./-]+")


def compose_inputs(files: Sequence[str], environ: Mapping[str, str], flavor: str,
                   project: str) -> tuple[str, list[str]]:
    """(key, file texts): what `compose config` depends on: the files, `.env` next to the first
    one, the variables they reference and Compose's own variables. Values are only hashed."""
    h = hashlib.sha256(f"compose-inputs-v1\0{flavor}\0{project}\0".encode())
    texts = []
    names: set[str] = set()
    for f in files:
        data = Path(f).read_bytes()
        h.update(f"file {f}\0".encode() + data + b"\0")
        text = data.decode(errors="replace")
        texts.append(text)
        names.update(VAR_REF.findall(text))
    dotenv = Path(files[0]).parent / ".env"
    if dotenv.is_file():
        h.update(b"dotenv\0" + dotenv.read_bytes() + b"\0")
    names.update(k for k in environ if k.startswith(("COMPOSE_", "DOCKER_")))
    for name in sorted(names):
        h.update(f"var {name}={environ.get(name, '<unset>')}\0".encode())
    return h.hexdigest(), texts


def referenced_files(texts: Iterable[str], base: Path) -> list[Path]:
    """Files named in a compose file (env_file, extends, configs, ...), for the fingerprint."""
    out: list[Path] = []
    for text in texts:
        for token in set(_PATH_TOKEN.findall(text)):
            if "/" not in token and "." not in token:
                continue
            p = base / token
            try:
                if p.is_file() and p not in out:
                    out.append(p)
            except OSError:
                continue
    return sorted(out)


def resolve_services(stack: LocalStack, compose: composecmd.Compose,
                     run: Run) -> tuple[dict[str, str | None], bool]:
    """Service -> image from `compose config`, cached by `compose_inputs`. (services, cached)."""
    key, _ = compose_inputs(stack.compose_files, os.environ, compose.flavor, stack.project)
    cache = stack.cache_dir / f"compose-{key}.json" if stack.cache_dir else None
    services: dict[str, str | None] | None = None
    cached = False
    data = read_json(cache)
    if data and isinstance(data.get("services"), dict):
        services, cached = data["services"], True
    if services is None:
        r = run(composecmd.config(compose, stack.project, stack.compose_files), check=False,
                timeout=120)
        if not r.ok:
            raise ComposeFailed(
                f"{compose.display} cannot read {', '.join(stack.compose_files)}: "
                f"{tail(r.stderr or r.stdout, 5)}",
                hint="fix the compose file (`docker-compose config` shows the problem)")
        services = composecmd.parse_config_images(r.stdout, compose.flavor)
        if cache is not None:
            write_json(cache, {"services": services})
    check_services(stack, services)
    return services, cached


def check_services(stack: LocalStack, services: Mapping[str, str | None]) -> None:
    """The app and db services exist, and the app service names its image."""
    known = ", ".join(services) or "none"
    if stack.app_service not in services:
        raise ConfigError(
            f"the compose file has no service {stack.app_service!r} (it has: {known})",
            file=stack.cfg.file, key=f"{stack.key}.app_service",
            hint="set app_service to the compose service that runs the app")
    if stack.db_service not in services:
        raise ConfigError(
            f"the compose file has no service {stack.db_service!r} (it has: {known})",
            file=stack.cfg.file, key=f"{stack.key}.database.service")
    if not services[stack.app_service]:
        raise ConfigError(
            f"the compose service {stack.app_service!r} has no `image:`; conveyor builds the app "
            "image itself and tags it with that name",
            file=stack.cfg.file, key=f"{stack.key}.app_service",
            hint=f"add e.g. `image: {stack.cfg.app.image}:local` to the service in "
            f"{stack.compose_files[0]}")


def compose_file(state: LocalState, io: StepIO) -> None:
    stack = state.target
    services, cached = resolve_services(stack, state.need_compose(), io.run)
    state.services, state.services_cached = services, cached
    state.app_image = services[stack.app_service]
    io.note(f"project {stack.project}; services {', '.join(services)}"
            + (" (cached)" if cached else ""))
