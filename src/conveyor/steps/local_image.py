"""The image step: build the app image only when its inputs changed.

The inputs hash (`steps.build_inputs.inputs_hash`) is compared with the label `conveyor.inputs`
of the image the compose file names; equal: no build. A build that fails because a base image
cannot be pulled names the image and the option that sets it (ImageUnavailable).
"""

from __future__ import annotations

import re
import threading
import tomllib
from collections.abc import Mapping
from pathlib import Path

from conveyor.commands import docker as dockercmd
from conveyor.config import Config
from conveyor.errors import BuildFailed, ConfigError, ImageUnavailable
from conveyor.plan import StepIO
from conveyor.state.local import LocalState
from conveyor.steps.build_inputs import inputs_hash
from conveyor.steps.compose_file import VAR_REF
from conveyor.steps.local_common import TESTBED_WAY_OUT, Run, tail

INPUTS_LABEL = "conveyor.inputs"
APP_LABEL = dockercmd.LABEL
READS = ("app_image",)
WRITES = ("inputs", "image_id", "built")

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
    r"(?:Get|Head) ", re.IGNORECASE)


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
        f"cannot pull the base image {image}: {tail(output, 1)}; point {option} at an image "
        f"this engine has or can pull; on a machine without Docker Hub: {TESTBED_WAY_OUT} "
        "(sets BASE_PYTHON_IMAGE / BASE_POSTGRES_IMAGE to offline images)")


def _raw_build_arg_var(cfg: Config, arg: str) -> str | None:
    try:
        raw = tomllib.loads(cfg.path.read_text())
    except (OSError, tomllib.TOMLDecodeError):
        return None
    value = ((raw.get("app") or {}).get("build_args") or {}).get(arg)
    m = VAR_REF.search(value) if isinstance(value, str) else None
    return m.group(1) if m else None


def inspect_image(run: Run, ref: str) -> tuple[str, str] | None:
    """(image id, its conveyor.inputs label), or None when the engine has no such image."""
    fmt = '{{.Id}}\t{{index .Config.Labels "' + INPUTS_LABEL + '"}}'
    r = run(dockercmd.image_inspect(ref, fmt), check=False, timeout=60)
    if not r.ok:
        return None
    image_id, _, label = r.stdout.strip().partition("\t")
    return image_id, label


def build_argv(state: LocalState, tag: str, inputs: str) -> tuple[str, ...]:
    cfg = state.target.cfg
    return dockercmd.build(tag, str(state.target.context_dir), str(state.target.dockerfile),
                           cfg.app.build_args, {INPUTS_LABEL: inputs, APP_LABEL: cfg.app.name})


def image(state: LocalState, io: StepIO) -> None:
    cfg = state.target.cfg
    tag = state.need_app_image()
    dockerfile = state.target.dockerfile
    if not dockerfile.is_file():
        raise ConfigError(f"the Dockerfile {dockerfile} does not exist", file=cfg.file,
                          key="app.dockerfile")
    got: dict[str, tuple[str, str] | None] = {}

    def inspect() -> None:
        got["image"] = inspect_image(io.run, tag)

    thread = threading.Thread(target=inspect, daemon=True)
    thread.start()
    digest = inputs_hash(state.target.context_dir, dockerfile, cfg.app.build_args)
    thread.join()
    current = got.get("image")
    state.inputs = digest
    if current is not None and current[1] == digest:
        state.image_id, state.built = current[0], False
        io.note(f"{tag} up to date (inputs {digest[:12]}): no build")
        return
    reason = "no image yet" if current is None else "inputs changed"
    io.log(f"building {tag} ({reason}; inputs {digest[:12]})")
    r = io.run(build_argv(state, tag, digest), check=False, stream=True, timeout=3600)
    if not r.ok:
        output = r.stdout + r.stderr
        if is_pull_failure(output):
            raise base_image_error(cfg, output, dockerfile)
        raise BuildFailed(f"docker build of {tag} failed (exit {r.returncode}):\n"
                          f"{tail(output, 15, indent='  ')}",
                          hint=f"fix the Dockerfile ({dockerfile}) or the build context; "
                          "`conveyor up -v` shows the whole build output")
    after = inspect_image(io.run, tag)
    state.image_id, state.built = (after[0] if after else None), True
    io.note(f"built {tag} ({reason}; inputs {digest[:12]})")
