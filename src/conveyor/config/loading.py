"""Finding and loading conveyor.toml: parse (tomllib), interpolate, validate."""

from __future__ import annotations

import tomllib
from pathlib import Path

from pydantic import ValidationError

from conveyor.config.project import Config, RootConfig
from conveyor.config.validation import kind_of, validation_error
from conveyor.errors import ConfigError
from conveyor.interpolation import interpolate, unset_vars

CONFIG_FILE = "conveyor.toml"


def find_config(project_dir: Path | str | None = None) -> Path:
    """`conveyor.toml` in `project_dir` (or `project_dir` itself when it is a file)."""
    base = Path(project_dir or ".").expanduser()
    if base.is_file():
        return base
    path = base / CONFIG_FILE
    if not path.exists():
        raise ConfigError(
            f"no {CONFIG_FILE} in {base.resolve()}",
            hint="run in the application's root directory, pass -C DIR, or create one with "
            "`conveyor init`",
        )
    return path


def load_config(project_dir: Path | str | None = None) -> Config:
    """Parse, interpolate and validate the project's conveyor.toml (see the package doc)."""
    path = find_config(project_dir)
    file = str(path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"not valid TOML: {exc}", file=file,
                          hint="fix the syntax at the line and column shown") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read the file: {exc}", file=file) from None

    envs = raw.get("environments", {})
    glob = {k: v for k, v in raw.items() if k != "environments"}
    glob = interpolate(glob, "", file)
    if not isinstance(envs, dict):
        raise ConfigError(f"found {kind_of(envs)}, expected a table of environments",
                          file=file, key="environments")
    for name, section in envs.items():
        if not isinstance(section, dict):
            raise ConfigError(f"found {kind_of(section)}, expected a table",
                              file=file, key=f"environments.{name}")
    try:
        root = RootConfig.model_validate(glob | {"environments": envs})
    except ValidationError as exc:
        raise validation_error(exc, file) from None
    config = Config(path.resolve(), root, envs)
    # validate every environment whose variables are all set now: typos surface early
    for name in envs:
        if not unset_vars(envs[name]):
            config.environment(name)
    return config
