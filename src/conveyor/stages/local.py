"""The local stage: the app and its PostgreSQL on this machine with Docker Compose.

`conveyor up` is a plan of seven steps (see `up_plan`):

1. docker          `docker info` answers (and which Compose is installed: v2 or v1);
2. compose file    the services and their images (`compose config`, cached by its inputs);
3. image           build the app image only when its inputs changed: a hash of the build context
                   (honouring .dockerignore), the Dockerfile and the build args, kept as the image
                   label `conveyor.inputs`;
4. containers      `compose up --detach --no-build`, skipped when the containers conveyor started
                   last time still run and nothing compose reads has changed;
5. postgres        a bounded readiness poll (a real libpq connection and `SELECT 1`);
6. migrations      pending migrations with the built-in engine (or `migrations.command`);
7. health          a bounded poll of the app's health URL.

Everything that talks to Docker goes through a `Transport` and the pure argv builders in
`conveyor.commands`; the pure parts (ignore files, input hashes, fingerprints, error
classification) are plain functions with unit tests.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

from conveyor.commands import compose as composecmd
from conveyor.commands import docker as dockercmd
from conveyor.config import ComposeDatabase, Config, EnvironmentConfig
from conveyor.errors import ConfigError, ConveyorError, DockerUnavailable
from conveyor.pipeline import Plan, Step, StepContext
from conveyor.render import Redactor
from conveyor.transport import LocalTransport, Transport

INPUTS_LABEL = "conveyor.inputs"
APP_LABEL = dockercmd.LABEL
TESTBED_WAY_OUT = 'scripts/testbed up && eval "$(scripts/testbed env)"'
COMPOSE_FILE_NAMES = ("compose.yaml", "compose.yml", "docker-compose.yaml", "docker-compose.yml")
LOG_TAIL = 30
DB_READY_TIMEOUT = 60.0


# --------------------------------------------------------------------------- errors


class BuildFailed(ConveyorError):
    exit_code = 5


class ImageUnavailable(ConveyorError):
    """A base image (Dockerfile FROM) or a service image cannot be pulled."""

    exit_code = 5


class ComposeFailed(ConveyorError):
    exit_code = 6


class DatabaseNotReady(ConveyorError):
    exit_code = 7


class MigrationStepFailed(ConveyorError):
    """A migration failed during `up` (wraps the engine's error, whose text is kept)."""

    exit_code = 8

    def __init__(self, message: str, *, cause: Exception | None = None,
                 hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.cause = cause


class HealthCheckFailed(ConveyorError):
    exit_code = 9


EXIT_CODES = {
    "config error": 2, "no Docker engine / no Compose": 3, "image build or pull": 5,
    "compose up": 6, "database not ready": 7, "migration": 8, "health check": 9,
}


# --------------------------------------------------------------------------- the stack


@dataclass
class LocalStack:
    """Everything the local commands need, resolved once from the config (no I/O here)."""

    cfg: Config
    env_name: str
    env: EnvironmentConfig
    db: ComposeDatabase
    project: str
    compose_files: tuple[str, ...]
    redactor: Redactor
    transport: Transport = field(default_factory=LocalTransport)
    cache_dir: Path | None = None
    compose: composecmd.Compose | None = None
    services: dict[str, str | None] | None = None

    @property
    def project_dir(self) -> Path:
        return self.cfg.root_dir

    @property
    def app_service(self) -> str:
        return self.env.app_service

    @property
    def db_service(self) -> str:
        return self.db.service

    @property
    def app_url(self) -> str:
        return self.env.app_url(self.cfg.app)

    @property
    def health_url(self) -> str:
        return self.app_url + self.cfg.app.health.path

    @property
    def app_image(self) -> str:
        assert self.services is not None, "compose config not resolved yet"
        image = self.services.get(self.app_service)
        assert image, "checked by resolve_services"
        return image

    def database_url(self) -> str:
        return self.cfg.database_url(self.env_name)

    def compose_argv(self, builder: Callable[..., tuple[str, ...]], *args: Any,
                     **kwargs: Any) -> tuple[str, ...]:
        assert self.compose is not None, "compose not detected yet"
        return builder(self.compose, self.project, self.compose_files, *args, **kwargs)

    def state_file(self) -> Path | None:
        if self.cache_dir is None:
            return None
        where = hashlib.sha256(str(self.cfg.path).encode()).hexdigest()[:12]
        return self.cache_dir / "local" / f"{self.project}-{where}.json"


def normalize_project_name(name: str) -> str:
    """What Compose itself does to a project name: lower case, [a-z0-9_-] only."""
    out = re.sub(r"[^a-z0-9_-]", "", name.lower()).lstrip("_-")
    return out or "app"


def default_cache_dir() -> Path:
    if os.environ.get("CONVEYOR_CACHE_DIR"):
        return Path(os.environ["CONVEYOR_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "conveyor"


def open_stack(cfg: Config, env_name: str = "local", *,
               transport: Transport | None = None) -> LocalStack:
    env = cfg.environment(env_name)
    key = f"environments.{env_name}"
    if env.is_remote:
        raise ConfigError(
            f"environment {env_name!r} runs on {env.host}, not on this machine; the local "
            "commands need an environment without `host`",
            file=cfg.file, key=f"{key}.host",
            hint=f"for a remote environment use `conveyor deploy {env_name}`",
        )
    if not isinstance(env.database, ComposeDatabase):
        raise ConfigError(
            f"found kind = {env.database.kind!r}, expected kind = 'compose' for the local stage "
            "(the database is a service of the compose file)",
            file=cfg.file, key=f"{key}.database.kind",
        )
    if env.compose_file:
        files = [cfg.root_dir / env.compose_file]
        if not files[0].is_file():
            raise ConfigError(f"the compose file {files[0]} does not exist", file=cfg.file,
                              key=f"{key}.compose_file")
    else:
        files = [p for p in (cfg.root_dir / n for n in COMPOSE_FILE_NAMES) if p.is_file()][:1]
        if not files:
            raise ConfigError(
                f"no compose file in {cfg.root_dir} (looked for {', '.join(COMPOSE_FILE_NAMES)})",
                file=cfg.file, key=f"{key}.compose_file",
                hint="set compose_file to the file that runs the app and its database",
            )
    project = env.compose_project or normalize_project_name(
        os.environ.get("COMPOSE_PROJECT_NAME") or cfg.app.name)
    redactor = Redactor()
    for ref, secret_key in _secret_refs(cfg, env, key):
        try:
            redactor.add(cfg.secret(ref, secret_key))
        except ConveyorError:
            pass
    return LocalStack(cfg=cfg, env_name=env_name, env=env, db=env.database, project=project,
                      compose_files=tuple(str(f) for f in files), redactor=redactor,
                      transport=transport or LocalTransport(cwd=cfg.root_dir),
                      cache_dir=default_cache_dir())


def _secret_refs(cfg: Config, env: EnvironmentConfig, key: str):
    if env.database.password is not None:
        yield env.database.password, f"{key}.database.password"
    for name, ref in env.secrets.items():
        yield ref, f"{key}.secrets.{name}"
    for name, ref in cfg.app.secrets.items():
        yield ref, f"app.secrets.{name}"


# --------------------------------------------------------------------------- docker engine


def docker_unavailable(stderr: str, docker_host: str | None = None) -> DockerUnavailable:
    """The one-line error for "no Docker engine answers", naming both ways out."""
    where = docker_host or os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"
    text = stderr.strip()
    connect = ("Cannot connect to the Docker daemon", "Is the docker daemon running",
               "connect: no such file or directory", "connection refused", "no such host",
               "error during connect")
    if not text or any(c.lower() in text.lower() for c in connect):
        reason = f"no Docker engine answers at {where}"
    else:
        reason = f"the Docker engine at {where} does not answer `docker info` " \
                 f"({text.splitlines()[-1][:200]})"
    return DockerUnavailable(
        f"{reason}: start your Docker engine, or on a machine without one: {TESTBED_WAY_OUT}")


def check_docker(stack: LocalStack, timeout: float = 20.0) -> str:
    """`docker info`, and Compose detection at the same time. Returns the engine's version."""
    found: dict[str, bool] = {}
    forced = os.environ.get("CONVEYOR_COMPOSE")

    def probe() -> None:
        try:
            found["v2"] = stack.transport.run(composecmd.probe_v2(), check=False,
                                              timeout=timeout).ok
        except ConveyorError:
            found["v2"] = False

    thread = None
    if not forced:
        thread = threading.Thread(target=probe, daemon=True)
        thread.start()
    try:
        r = stack.transport.run(dockercmd.info(), check=False, timeout=timeout)
    except ConveyorError as exc:
        if "command not found" in str(exc):
            raise DockerUnavailable(
                "the docker command is not installed: install Docker, or on a machine without "
                f"an engine: scripts/setup && {TESTBED_WAY_OUT}") from None
        raise docker_unavailable(f"no answer within {timeout:g} s") from None
    if thread is not None:
        thread.join()
    if not r.ok:
        raise docker_unavailable(r.stderr or r.stdout)
    stack.compose = composecmd.choose(found.get("v2", False), shutil.which("docker-compose"),
                                      forced)
    return r.stdout.strip()


# --------------------------------------------------------------------------- compose config

_VAR_REF = re.compile(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)")
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
        names.update(_VAR_REF.findall(text))
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


def resolve_services(stack: LocalStack) -> tuple[dict[str, str | None], bool]:
    """Service -> image from `compose config`, cached by `compose_inputs`. (services, cached)."""
    assert stack.compose is not None
    key, _ = compose_inputs(stack.compose_files, os.environ, stack.compose.flavor, stack.project)
    cache = stack.cache_dir / f"compose-{key}.json" if stack.cache_dir else None
    services = None
    cached = False
    if cache is not None:
        data = _read_json(cache)
        if data and isinstance(data.get("services"), dict):
            services, cached = data["services"], True
    if services is None:
        r = stack.transport.run(stack.compose_argv(composecmd.config), check=False, timeout=120)
        if not r.ok:
            raise ComposeFailed(
                f"{stack.compose.display} cannot read {', '.join(stack.compose_files)}: "
                f"{_tail(r.stderr or r.stdout, 5)}",
                hint="fix the compose file (`docker-compose config` shows the problem)")
        services = composecmd.parse_config_images(r.stdout, stack.compose.flavor)
        if cache is not None:
            _write_json(cache, {"services": services})
    _check_services(stack, services)
    stack.services = services
    return services, cached


def _check_services(stack: LocalStack, services: Mapping[str, str | None]) -> None:
    key = f"environments.{stack.env_name}"
    known = ", ".join(services) or "none"
    if stack.app_service not in services:
        raise ConfigError(
            f"the compose file has no service {stack.app_service!r} (it has: {known})",
            file=stack.cfg.file, key=f"{key}.app_service",
            hint="set app_service to the compose service that runs the app")
    if stack.db_service not in services:
        raise ConfigError(
            f"the compose file has no service {stack.db_service!r} (it has: {known})",
            file=stack.cfg.file, key=f"{key}.database.service")
    if not services[stack.app_service]:
        raise ConfigError(
            f"the compose service {stack.app_service!r} has no `image:`; conveyor builds the app "
            "image itself and tags it with that name",
            file=stack.cfg.file, key=f"{key}.app_service",
            hint=f"add e.g. `image: {stack.cfg.app.image}:local` to the service in "
            f"{stack.compose_files[0]}")


# --------------------------------------------------------------------------- build inputs


@dataclass(frozen=True)
class _Pattern:
    text: str
    regex: re.Pattern[str]
    exclusion: bool


def _pattern_regex(pattern: str) -> re.Pattern[str]:
    """Docker's .dockerignore syntax (moby/patternmatcher): `*`, `?`, `[...]`, `**`, `\\`."""
    out = "^"
    i, n = 0, len(pattern)
    while i < n:
        ch = pattern[i]
        if ch == "*":
            if i + 1 < n and pattern[i + 1] == "*":
                i += 2
                if i < n and pattern[i] == "/":
                    i += 1
                if i >= n:
                    out += ".*"
                else:
                    out += "(?:.*/)?"
                continue
            out += "[^/]*"
        elif ch == "?":
            out += "[^/]"
        elif ch == "[":
            j = pattern.find("]", i + 1)
            if j == -1:
                out += re.escape(ch)
            else:
                body = pattern[i + 1:j]
                if body.startswith(("!", "^")):
                    body = "^" + body[1:]
                out += "[" + body.replace("\\", "\\\\") + "]"
                i = j
        elif ch == "\\" and i + 1 < n:
            i += 1
            out += re.escape(pattern[i])
        else:
            out += re.escape(ch)
        i += 1
    return re.compile(out + "$")


class DockerIgnore:
    """Matches paths (relative, '/'-separated) like Docker's build-context walker."""

    def __init__(self, lines: Iterable[str]) -> None:
        self.patterns: list[_Pattern] = []
        for raw in lines:
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            exclusion = line.startswith("!")
            if exclusion:
                line = line[1:].strip()
            line = os.path.normpath(line).replace(os.sep, "/")
            if len(line) > 1 and line.startswith("/"):
                line = line[1:]
            if line == ".":
                continue
            self.patterns.append(_Pattern(line, _pattern_regex(line), exclusion))

    @classmethod
    def for_context(cls, context: Path) -> "DockerIgnore":
        try:
            return cls((context / ".dockerignore").read_text(errors="replace").splitlines())
        except FileNotFoundError:
            return cls([])

    @property
    def has_exceptions(self) -> bool:
        return any(p.exclusion for p in self.patterns)

    def excluded(self, path: str) -> bool:
        parts = path.split("/")
        parent = parts[:-1]
        matched = False
        for p in self.patterns:
            if p.exclusion != matched:
                continue
            hit = bool(p.regex.match(path))
            # a pattern that matches a parent directory matches everything inside it (moby's
            # MatchesOrParentMatches)
            for i in range(len(parent)):
                if hit:
                    break
                hit = bool(p.regex.match("/".join(parent[:i + 1])))
            if hit:
                matched = not p.exclusion
        return matched

    def prune(self, directory: str) -> bool:
        """Whether an excluded directory can be skipped whole (Docker's own rule: only when no
        exception pattern starts with the directory's path)."""
        if not self.has_exceptions:
            return True
        prefix = directory + "/"
        return not any(p.exclusion and (p.text + "/").startswith(prefix) for p in self.patterns)


def context_files(context: Path, ignore: DockerIgnore) -> list[tuple[str, Path]]:
    """The files Docker would send as the build context, sorted, as (relative path, path)."""
    out: list[tuple[str, Path]] = []
    context = context.resolve()
    for root, dirs, files in os.walk(context, followlinks=False):
        rel_root = os.path.relpath(root, context).replace(os.sep, "/")
        rel_root = "" if rel_root == "." else rel_root + "/"
        keep = []
        for d in sorted(dirs):
            rel = rel_root + d
            if os.path.islink(os.path.join(root, d)):
                if not ignore.excluded(rel):
                    out.append((rel, Path(root, d)))
                continue
            if ignore.excluded(rel) and ignore.prune(rel):
                continue
            keep.append(d)
        dirs[:] = keep
        for f in files:
            rel = rel_root + f
            if not ignore.excluded(rel):
                out.append((rel, Path(root, f)))
    out.sort()
    return out


def inputs_hash(context: Path, dockerfile: Path, build_args: Mapping[str, str]) -> str:
    """sha256 over what a build depends on: the Dockerfile, the build args and every file of the
    context that .dockerignore lets through (path, executable bit, content; symlink targets)."""
    h = hashlib.sha256(b"conveyor-inputs-v1\0")
    h.update(b"dockerfile\0" + dockerfile.read_bytes() + b"\0")
    for k in sorted(build_args):
        h.update(f"arg {k}={build_args[k]}\0".encode())
    for rel, path in context_files(context, DockerIgnore.for_context(context)):
        try:
            st = path.lstat()
        except OSError:
            continue
        if os.path.islink(path):
            h.update(f"link {rel}\0{os.readlink(path)}\0".encode())
            continue
        h.update(f"file {rel}\0{'x' if st.st_mode & 0o111 else '-'}\0".encode())
        with open(path, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
        h.update(b"\0")
    return h.hexdigest()


_ARG_SUB = re.compile(r"\$(?:\{([A-Za-z_][A-Za-z0-9_]*)(?::?-([^}]*))?\}|([A-Za-z_][A-Za-z0-9_]*))")


def base_images(dockerfile_text: str, build_args: Mapping[str, str]) -> list[tuple[str, str | None]]:
    """The images a Dockerfile's FROM lines pull, as (image, build arg that sets it or None);
    stage names (FROM build AS x ... FROM x) and `scratch` are left out."""
    args: dict[str, str] = {}
    stages: set[str] = set()
    out: list[tuple[str, str | None]] = []
    lines = re.sub(r"\\\r?\n", " ", dockerfile_text).splitlines()
    seen_from = False
    for line in lines:
        words = line.strip().split()
        if not words or words[0].startswith("#"):
            continue
        instr = words[0].upper()
        if instr == "ARG" and not seen_from and len(words) > 1:
            name, _, default = words[1].partition("=")
            args[name] = build_args.get(name, default.strip("\"'"))
        elif instr == "FROM":
            seen_from = True
            rest = [w for w in words[1:] if not w.startswith("--")]
            if not rest:
                continue
            ref = rest[0]
            used = _ARG_SUB.search(ref)
            arg_name = (used.group(1) or used.group(3)) if used else None

            def sub(m: re.Match[str]) -> str:
                name = m.group(1) or m.group(3)
                return args.get(name) or (m.group(2) or "")

            image = _ARG_SUB.sub(sub, ref)
            if len(rest) >= 3 and rest[1].upper() == "AS":
                stages.add(rest[2].lower())
            if image.lower() in stages or image == "scratch":
                continue
            out.append((image, arg_name))
    return out


_PULL_FAILURE = re.compile(
    r"pull access denied|manifest unknown|manifest for .* not found|repository does not exist|"
    r"failed to resolve source metadata|registry-1\.docker\.io|no such host|dial tcp|"
    r"TLS handshake timeout|toomanyrequests|i/o timeout|unauthorized: |Error response from daemon: "
    r"(?:Get|Head) ", re.I)


def is_pull_failure(output: str) -> bool:
    return bool(_PULL_FAILURE.search(output))


def base_image_error(cfg: Config, output: str, dockerfile: Path) -> ImageUnavailable:
    """Name the base image that cannot be pulled and the option that sets it."""
    try:
        bases = base_images(dockerfile.read_text(errors="replace"), cfg.app.build_args)
    except OSError:
        bases = []
    image, arg = bases[0] if bases else ("(the Dockerfile's FROM image)", None)
    if arg:
        option = f"`app.build_args.{arg}` in {cfg.file}"
        var = _raw_build_arg_var(cfg, arg)
        if var:
            option += f" (it reads ${var})"
    else:
        option = f"the FROM line of {dockerfile} (make it `ARG BASE_IMAGE` + `FROM ${{BASE_IMAGE}}`)"
    return ImageUnavailable(
        f"cannot pull the base image {image}: {_tail(output, 1)}; point {option} at an image "
        f"this engine has or can pull; on a machine without Docker Hub: {TESTBED_WAY_OUT} "
        "(sets BASE_PYTHON_IMAGE / BASE_POSTGRES_IMAGE to offline images)")


def service_image_error(stack: LocalStack, output: str) -> ImageUnavailable:
    services = stack.services or {}
    m = re.search(r"Pulling (\S+) \(([^)]+)\)", output) or \
        re.search(r"(\S+) Error.*?pull access denied for ([^,\s]+)", output)
    svc = m.group(1) if m else None
    image = m.group(2) if m else None
    if image is None:
        for s, img in services.items():
            if img and img in output:
                svc, image = s, img
                break
    variables = sorted({v for f in stack.compose_files for v in re.findall(
        r"image:\s*[\"']?\$\{([A-Za-z_][A-Za-z0-9_]*)", Path(f).read_text(errors="replace"))})
    via = f" (the compose file reads it from ${', $'.join(variables)})" if variables else ""
    what = f"the image {image} of compose service {svc}" if image else "an image of the compose file"
    return ImageUnavailable(
        f"cannot pull {what}: {_tail(output, 1)}; set the service's image{via} to one this engine "
        f"has or can pull; on a machine without Docker Hub: {TESTBED_WAY_OUT} (sets "
        "BASE_PYTHON_IMAGE / BASE_POSTGRES_IMAGE to offline images)")


def _raw_build_arg_var(cfg: Config, arg: str) -> str | None:
    import tomllib

    try:
        raw = tomllib.loads(cfg.path.read_text())
    except (OSError, tomllib.TOMLDecodeError):
        return None
    value = ((raw.get("app") or {}).get("build_args") or {}).get(arg)
    m = _VAR_REF.search(value) if isinstance(value, str) else None
    return m.group(1) if m else None


# --------------------------------------------------------------------------- fingerprint


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


# --------------------------------------------------------------------------- the plan


@dataclass
class UpOptions:
    refresh: bool = False  # always run `compose up`, even when nothing changed
    db_timeout: float = DB_READY_TIMEOUT


def up_plan(stack: LocalStack, options: UpOptions | None = None) -> Plan:
    """The plan of `conveyor up` (printable with --dry-run before anything runs)."""
    options = options or UpOptions()
    cfg = stack.cfg
    c = stack.compose or composecmd.Compose(("<docker compose|docker-compose>",), "v2")
    files = stack.compose_files
    app_image = "<image of the compose service %s>" % stack.app_service
    ctx_dir = str((cfg.root_dir / cfg.app.context).resolve())
    migrate_desc: list[Any]
    if cfg.migrations.command:
        migrate_desc = [dockercmd.run(app_image, rm=True, network="<network of the db service>",
                                      env_names=["DATABASE_URL"],
                                      command=cfg.migrations.command)]
    else:
        migrate_desc = [f"built-in engine: apply pending migrations of {cfg.migrations_dir} "
                        f"to {_mask(stack.database_url())}"]
    return Plan("up", [
        Step("docker", lambda ctx: _step_docker(stack, ctx),
             describe=[dockercmd.info(), composecmd.probe_v2()]),
        Step("compose file", lambda ctx: _step_compose_file(stack, ctx),
             describe=[composecmd.config(c, stack.project, files)]),
        Step("image", lambda ctx: _step_image(stack, ctx),
             describe=[dockercmd.image_inspect(app_image, "{{.Id}}"),
                       "when the inputs hash differs from the image's conveyor.inputs label:",
                       dockercmd.build(app_image, ctx_dir, str(_dockerfile(cfg)),
                                       cfg.app.build_args,
                                       {INPUTS_LABEL: "<inputs hash>", APP_LABEL: cfg.app.name})]),
        Step("containers", lambda ctx: _step_containers(stack, ctx, options),
             describe=[composecmd.up(c, stack.project, files)]),
        Step("postgres", lambda ctx: _step_postgres(stack, ctx, options),
             describe=[f"connect to {_mask(stack.database_url())} until it answers "
                       f"(at most {options.db_timeout:g} s)"]),
        Step("migrations", lambda ctx: _step_migrations(stack, ctx), describe=migrate_desc),
        Step("health", lambda ctx: _step_health(stack, ctx),
             describe=[f"GET {stack.health_url} until {cfg.app.health.expect_status} "
                       f"(at most {cfg.app.health.timeout:g} s)"]),
    ])


def _dockerfile(cfg: Config) -> Path:
    return (cfg.root_dir / cfg.app.dockerfile).resolve()


def _mask(url: str) -> str:
    return re.sub(r"(://[^:/@]*:)[^@]*@", r"\1***@", url)


def _step_docker(stack: LocalStack, ctx: StepContext) -> None:
    version = check_docker(stack)
    assert stack.compose is not None
    ctx.values["docker_version"] = version
    ctx.values["compose"] = stack.compose.display
    ctx.note(f"engine {version}, {stack.compose.display}")


def _step_compose_file(stack: LocalStack, ctx: StepContext) -> None:
    services, cached = resolve_services(stack)
    ctx.values["app_image"] = stack.app_image
    ctx.note(f"project {stack.project}; services {', '.join(services)}"
             + (" (cached)" if cached else ""))


def _inspect_image(stack: LocalStack, ref: str) -> tuple[str, str] | None:
    r = stack.transport.run(
        dockercmd.image_inspect(ref, '{{.Id}}\t{{index .Config.Labels "%s"}}' % INPUTS_LABEL),
        check=False, timeout=60)
    if not r.ok:
        return None
    image_id, _, label = r.stdout.strip().partition("\t")
    return image_id, label


def _step_image(stack: LocalStack, ctx: StepContext) -> None:
    cfg = stack.cfg
    tag = stack.app_image
    context = (cfg.root_dir / cfg.app.context).resolve()
    dockerfile = _dockerfile(cfg)
    if not dockerfile.is_file():
        raise ConfigError(f"the Dockerfile {dockerfile} does not exist", file=cfg.file,
                          key="app.dockerfile")
    got: dict[str, Any] = {}

    def inspect() -> None:
        got["image"] = _inspect_image(stack, tag)

    thread = threading.Thread(target=inspect, daemon=True)
    thread.start()
    digest = inputs_hash(context, dockerfile, cfg.app.build_args)
    thread.join()
    current = got.get("image")
    ctx.values["inputs"] = digest
    if current is not None and current[1] == digest:
        ctx.values.update(image_id=current[0], built=False)
        ctx.note(f"{tag} up to date (inputs {digest[:12]}): no build")
        return
    reason = "no image yet" if current is None else "inputs changed"
    ctx.log(f"building {tag} ({reason}; inputs {digest[:12]})")
    argv = dockercmd.build(tag, str(context), str(dockerfile), cfg.app.build_args,
                           {INPUTS_LABEL: digest, APP_LABEL: cfg.app.name})
    r = stack.transport.run(argv, check=False, stream=ctx.log, timeout=3600)
    if not r.ok:
        output = r.stdout + r.stderr
        ctx.values["failure_output"] = output
        if is_pull_failure(output):
            raise base_image_error(cfg, output, dockerfile)
        raise BuildFailed(f"docker build of {tag} failed (exit {r.returncode}):\n"
                          f"{_tail(output, 15, indent='  ')}",
                          hint=f"fix the Dockerfile ({dockerfile}) or the build context; "
                          "`conveyor up -v` shows the whole build output")
    after = _inspect_image(stack, tag)
    ctx.values.update(image_id=after[0] if after else None, built=True)
    ctx.note(f"built {tag} ({reason}; inputs {digest[:12]})")


def _service_image_ids(stack: LocalStack, app_image_id: str | None) -> dict[str, str]:
    ids: dict[str, str] = {}
    threads = []
    assert stack.services is not None

    def one(svc: str, ref: str) -> None:
        got = _inspect_image(stack, ref)
        ids[svc] = got[0] if got else "<missing>"

    for svc, ref in stack.services.items():
        if svc == stack.app_service:
            ids[svc] = app_image_id or "<missing>"
        elif ref:
            t = threading.Thread(target=one, args=(svc, ref), daemon=True)
            t.start()
            threads.append(t)
        else:
            ids[svc] = "<build-only>"
    for t in threads:
        t.join()
    return ids


def project_containers(stack: LocalStack) -> list[composecmd.Container]:
    r = stack.transport.run(composecmd.project_containers(stack.project, composecmd.PS_FORMAT),
                            check=False, timeout=60)
    if not r.ok:
        raise docker_unavailable(r.stderr)
    return composecmd.parse_ps(r.stdout)


def _step_containers(stack: LocalStack, ctx: StepContext, options: UpOptions) -> None:
    assert stack.services is not None and stack.compose is not None
    key, texts = compose_inputs(stack.compose_files, os.environ, stack.compose.flavor,
                                stack.project)
    base = Path(stack.compose_files[0]).parent
    state_file = stack.state_file()
    got: dict[str, Any] = {}

    def ps() -> None:
        got["containers"] = project_containers(stack)

    thread = threading.Thread(target=ps, daemon=True)
    thread.start()
    image_ids = _service_image_ids(stack, ctx.values.get("image_id"))
    thread.join()
    fingerprint = stack_fingerprint(key, texts, base, image_ids)
    state = _read_json(state_file) if state_file else None
    containers = got["containers"]
    if (not options.refresh and not ctx.values.get("built") and state
            and state.get("fingerprint") == fingerprint
            and containers_unchanged(containers, stack.services, state.get("containers") or {})):
        ctx.values["containers_changed"] = []
        ctx.values["containers"] = {c.service: c.id for c in containers}
        ctx.note(f"{len(containers)} containers running, unchanged: compose up not needed")
        return
    argv = stack.compose_argv(composecmd.up)
    r = stack.transport.run(argv, check=False, stream=ctx.log, timeout=900)
    output = r.stdout + r.stderr
    if not r.ok:
        ctx.values["failure_output"] = output
        if is_pull_failure(output):
            raise service_image_error(stack, output)
        raise ComposeFailed(f"{stack.compose.display} up failed (exit {r.returncode}):\n"
                            f"{_tail(output, 15, indent='  ')}",
                            hint="`conveyor logs` shows the containers' logs")
    changed = composecmd.changed_services(output)
    containers = project_containers(stack)
    if any(i == "<missing>" for i in image_ids.values()):
        image_ids = _service_image_ids(stack, ctx.values.get("image_id"))
        fingerprint = stack_fingerprint(key, texts, base, image_ids)
    recorded = {c.service: c.id for c in containers if c.state == "running"}
    ctx.values["containers"] = recorded
    ctx.values["containers_changed"] = changed
    if state_file:
        _write_json(state_file, {"fingerprint": fingerprint, "containers": recorded,
                                 "project": stack.project, "config": str(stack.cfg.path)})
    ctx.note(f"started or recreated: {', '.join(changed)}" if changed
             else "containers up to date")


def _with_connect_timeout(url: str, seconds: int) -> str:
    if "connect_timeout=" in url:
        return url
    return url + ("&" if "?" in url else "?") + f"connect_timeout={seconds}"


def wait_for_postgres(url: str, timeout: float, interval: float = 0.2,
                      clock: Callable[[], float] = time.monotonic) -> int:
    """Poll until PostgreSQL accepts a connection and answers `SELECT 1` (bounded by `timeout`).
    Returns the number of attempts. Raises DatabaseNotReady with the last error."""
    from conveyor.migrations import pq

    deadline = clock() + timeout
    attempts = 0
    auth_since: float | None = None
    while True:
        attempts += 1
        try:
            with pq.connect(_with_connect_timeout(url, 3)) as conn:
                conn.query("SELECT 1")
            return attempts
        except (pq.ConnectError, pq.PgError) as exc:
            last = " ".join(str(exc).split())
        now = clock()
        if "password authentication failed" in last:
            auth_since = auth_since if auth_since is not None else now
            if now - auth_since > 5:
                raise DatabaseNotReady(
                    f"PostgreSQL rejects the password: {_mask(last)}",
                    hint="the local database password in conveyor.toml and the one the compose "
                    "file gives the db service (POSTGRES_PASSWORD) must be the same; a volume "
                    "created with another password keeps it (`conveyor down --volumes` resets it)")
        else:
            auth_since = None
        if now >= deadline:
            raise DatabaseNotReady(
                f"PostgreSQL at {_mask(url)} did not accept connections within {timeout:g} s "
                f"({attempts} attempts); last error: {_mask(last)}",
                hint="see the db container's log above; check the database port in conveyor.toml "
                "matches the port the compose file publishes")
        time.sleep(min(interval, max(0.0, deadline - now)))


def _step_postgres(stack: LocalStack, ctx: StepContext, options: UpOptions) -> None:
    attempts = wait_for_postgres(stack.database_url(), options.db_timeout)
    ctx.note(f"accepting connections on {stack.db.host}:{stack.db.port}"
             + (f" after {attempts} attempts" if attempts > 1 else ""))


def _migration_error(exc: Exception) -> MigrationStepFailed:
    return MigrationStepFailed(str(exc), cause=exc,
                               hint="fix the migration, then run `conveyor up` (or "
                               "`conveyor migrate run`) again")


def _step_migrations(stack: LocalStack, ctx: StepContext) -> None:
    from conveyor.migrations import MigrationError, Migrator

    cfg = stack.cfg
    migrator = Migrator(stack.database_url(), cfg.migrations_dir,
                        lock_timeout=cfg.migrations.lock_timeout,
                        on_event=lambda event, **data: ctx.log(f"migrations: {event}"))
    try:
        before = migrator.status()
        for p in before.problems:
            ctx.note(f"warning: {p}")
        if not before.pending:
            ctx.values["migrations_applied"] = []
            ctx.values["migrations_total"] = len(before.applied)
            ctx.note(f"no pending migrations ({len(before.applied)} applied)")
            return
        if cfg.migrations.command:
            _run_migration_command(stack, ctx)
            after = migrator.status()
            done = {a.version for a in before.applied}
            applied = [(a.version, a.migration.name if a.migration else a.name or "")
                       for a in after.applied if a.version not in done]
            if after.pending and set(m.version for m in after.pending) & \
                    set(m.version for m in before.pending):
                still = ", ".join(m.name for m in after.pending)
                raise MigrationStepFailed(
                    f"the migration command {' '.join(cfg.migrations.command)} succeeded but "
                    f"left migrations pending: {still}", hint="check `migrations.command`")
        else:
            result = migrator.run()
            applied = [(s.version, s.name) for s in result.applied]
            after = None
    except MigrationError as exc:
        raise _migration_error(exc) from None
    ctx.values["migrations_applied"] = [n for _, n in applied]
    ctx.values["migrations_total"] = len(before.applied) + len(applied)
    ctx.note(f"applied {len(applied)}: " + ", ".join(ctx.values["migrations_applied"]))


def _run_migration_command(stack: LocalStack, ctx: StepContext) -> None:
    """`migrations.command` in a temporary container of the app image, on the db's network."""
    cfg = stack.cfg
    db_id = (ctx.values.get("containers") or {}).get(stack.db_service)
    network = None
    if db_id:
        r = stack.transport.run(dockercmd.inspect(
            db_id, "{{range $k, $v := .NetworkSettings.Networks}}{{$k}} {{end}}"),
            check=False, timeout=30)
        network = (r.stdout.split() or [None])[0] if r.ok else None
    url = cfg.database_url(stack.env_name, from_host=False)
    argv = dockercmd.run(stack.app_image, rm=True, network=network, env_names=["DATABASE_URL"],
                         labels={APP_LABEL: cfg.app.name}, command=cfg.migrations.command)
    r = stack.transport.run(argv, check=False, stream=ctx.log, env={"DATABASE_URL": url},
                            timeout=3600)
    if not r.ok:
        raise MigrationStepFailed(
            f"the migration command failed (exit {r.returncode}):\n"
            f"{_tail(r.stdout + r.stderr, 20, indent='  ')}",
            hint="fix the migration (or `migrations.command`), then run `conveyor up` again")


def wait_for_http(url: str, *, timeout: float, interval: float, expect: int = 200,
                  clock: Callable[[], float] = time.monotonic) -> tuple[int, int]:
    """Poll GET url until it answers `expect` (bounded by `timeout`): (status, attempts)."""
    import http.client
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    conn_cls = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    deadline = clock() + timeout
    attempts = 0
    last = "no answer"
    while True:
        attempts += 1
        conn = conn_cls(parts.hostname or "127.0.0.1", parts.port, timeout=min(5.0, timeout))
        try:
            conn.request("GET", path, headers={"User-Agent": "conveyor"})
            resp = conn.getresponse()
            body = resp.read(300).decode(errors="replace")
            if resp.status == expect:
                return resp.status, attempts
            last = f"HTTP {resp.status} {' '.join(body.split())[:200]}"
        except (OSError, http.client.HTTPException) as exc:
            last = f"{type(exc).__name__}: {exc}"
        finally:
            conn.close()
        now = clock()
        if now >= deadline:
            raise HealthCheckFailed(
                f"{url} did not answer {expect} within {timeout:g} s ({attempts} attempts); "
                f"last answer: {last}",
                hint="see the app container's log above (`conveyor logs app`); [app.health] "
                "sets the path and the timeout")
        time.sleep(min(interval, max(0.0, deadline - now)))


def _step_health(stack: LocalStack, ctx: StepContext) -> None:
    h = stack.cfg.app.health
    status, attempts = wait_for_http(stack.health_url, timeout=h.timeout, interval=h.interval,
                                     expect=h.expect_status)
    ctx.note(f"GET {stack.cfg.app.health.path} -> {status}"
             + (f" after {attempts} attempts" if attempts > 1 else ""))


#: which container's log explains a failure of each step
FAILURE_SERVICE = {"containers": None, "postgres": "db", "migrations": "db", "health": "app"}


def failure_service(stack: LocalStack, step: str,
                    containers: Sequence[composecmd.Container] = ()) -> str | None:
    which = FAILURE_SERVICE.get(step, "")
    if which == "db":
        return stack.db_service
    if which == "app":
        return stack.app_service
    if which is None:  # compose up: the first service whose container is not running
        for c in containers:
            if c.state != "running":
                return c.service
        return stack.app_service
    return None


def log_tail(stack: LocalStack, service: str, lines: int = LOG_TAIL) -> list[str]:
    """The last lines of a service's container log (stdout and stderr), redacted."""
    import subprocess

    try:
        containers = [c for c in project_containers(stack) if c.service == service]
    except ConveyorError:
        return []
    if not containers:
        return []
    try:
        p = subprocess.run(dockercmd.logs(containers[0].id, tail=lines), stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return []
    text = p.stdout.decode(errors="replace")
    return [stack.redactor(line) for line in text.splitlines()[-lines:]]


def up_summary(stack: LocalStack, values: Mapping[str, Any], steps: Sequence[Any]) -> dict:
    applied = list(values.get("migrations_applied") or [])
    changed = list(values.get("containers_changed") or [])
    built = bool(values.get("built"))
    nothing = not built and not changed and not applied
    return {
        "url": stack.app_url,
        "project": stack.project,
        "image": values.get("app_image"),
        "image_id": values.get("image_id"),
        "built": built,
        "inputs": values.get("inputs"),
        "containers_changed": changed,
        "migrations_applied": applied,
        "migrations_total": values.get("migrations_total"),
        "nothing_changed": nothing,
        "steps": [{"name": s.name, "status": s.status, "duration": round(s.duration, 3)}
                  for s in steps],
    }


# --------------------------------------------------------------------------- down / logs / test


def down(stack: LocalStack, *, volumes: bool, sink: Callable[[str], None]) -> int:
    check_docker(stack)
    resolve_services(stack)
    argv = stack.compose_argv(composecmd.down, volumes=volumes)
    def show(line: str) -> None:
        if not line.rstrip().endswith("..."):  # v1's "Stopping x ... " before "... done"
            sink(stack.redactor(line))

    r = stack.transport.run(argv, check=False, stream=show, timeout=600)
    state = stack.state_file()
    if state is not None:
        try:
            state.unlink()
        except OSError:
            pass
    if not r.ok:
        raise ComposeFailed(f"{stack.compose.display} down failed (exit {r.returncode}):\n"
                            f"{_tail(r.stdout + r.stderr, 10, indent='  ')}")
    return r.returncode


def service_aliases(stack: LocalStack, names: Sequence[str]) -> list[str]:
    """`app` and `db` name the configured services, whatever the compose file calls them."""
    out = []
    for n in names:
        out.append({"app": stack.app_service, "db": stack.db_service}.get(n, n))
    return out


def stream_logs(stack: LocalStack, services: Sequence[str], *, follow: bool, since: str | None,
                tail: int | None, write: Callable[[str], None]) -> int:
    """`compose logs`, every line through the redactor. Returns compose's exit code."""
    import subprocess

    check_docker(stack)
    resolved, _ = resolve_services(stack)
    wanted = service_aliases(stack, services)
    unknown = [s for s in wanted if s not in resolved]
    if unknown:
        raise ConveyorError(f"no service {', '.join(unknown)} in the compose file "
                            f"(services: {', '.join(resolved)})")
    argv = stack.compose_argv(composecmd.logs, wanted, follow=follow, since=since, tail=tail)
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            cwd=stack.project_dir)
    assert proc.stdout is not None
    try:
        for raw in proc.stdout:
            write(stack.redactor(raw.decode(errors="replace").rstrip("\n")))
    except KeyboardInterrupt:
        proc.terminate()
    return proc.wait()


def test_environment(stack: LocalStack) -> dict[str, str]:
    return {"APP_URL": stack.app_url, "DATABASE_URL": stack.database_url()}


def run_tests(stack: LocalStack) -> int:
    """The environment's test_command in the project directory; the exit code passes through."""
    import subprocess

    cmd = stack.env.test_command
    if not cmd:
        raise ConfigError("no test command", file=stack.cfg.file,
                          key=f"environments.{stack.env_name}.test_command",
                          hint='e.g. test_command = ["pytest", "-q", "tests"]')
    env = {**os.environ, **test_environment(stack)}
    try:
        return subprocess.run(cmd, cwd=stack.project_dir, env=env).returncode
    except FileNotFoundError:
        raise ConfigError(f"the test command {cmd[0]!r} is not installed (or not on PATH)",
                          file=stack.cfg.file,
                          key=f"environments.{stack.env_name}.test_command") from None


# --------------------------------------------------------------------------- status


def gather_status(stack: LocalStack) -> dict[str, Any]:
    """Containers and their health, the app's health URL, applied/pending migrations, drift."""
    check_docker(stack)
    resolve_services(stack)
    out: dict[str, Any] = {"environment": stack.env_name, "project": stack.project,
                           "url": stack.app_url, "compose": stack.compose.display}
    containers = project_containers(stack)
    assert stack.services is not None
    rows = []
    for svc, image in stack.services.items():
        mine = [c for c in containers if c.service == svc]
        if not mine:
            rows.append({"service": svc, "state": "absent", "health": None, "image": image,
                         "status": "", "ports": ""})
        for c in mine:
            rows.append({"service": svc, "state": c.state, "health": c.health, "image": c.image,
                         "status": c.status, "ports": c.ports, "id": c.id[:12]})
    out["containers"] = rows
    try:
        status, _ = wait_for_http(stack.health_url, timeout=0.01, interval=0.01,
                                  expect=stack.cfg.app.health.expect_status)
        out["health"] = {"url": stack.health_url, "ok": True, "status": status}
    except HealthCheckFailed as exc:
        out["health"] = {"url": stack.health_url, "ok": False,
                         "error": str(exc).split("last answer: ")[-1]}
    out["migrations"] = migration_status(stack)
    return out


def migration_status(stack: LocalStack) -> dict[str, Any]:
    from conveyor.migrations import MigrationError, Migrator

    try:
        st = Migrator(_with_connect_timeout(stack.database_url(), 3),
                      stack.cfg.migrations_dir).status()
    except MigrationError as exc:
        return {"ok": False, "error": str(exc)}
    return {
        "ok": True,
        "applied": [{"version": a.version, "name": a.migration.name if a.migration else a.name,
                     "state": a.state, "run_on": a.run_on} for a in st.applied],
        "pending": [{"version": m.version, "name": m.name} for m in st.pending],
        "drift": [p.to_dict() for p in st.problems],
    }


# --------------------------------------------------------------------------- helpers


def _tail(text: str, n: int, indent: str = "") -> str:
    lines = [ln for ln in text.strip().splitlines() if ln.strip()]
    return "\n".join(indent + ln for ln in lines[-n:])


def _read_json(path: Path | None) -> dict | None:
    if path is None:
        return None
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _write_json(path: Path, data: dict) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(data, indent=1))
        os.replace(tmp, path)
    except OSError:
        pass  # a cache: losing it only costs time
