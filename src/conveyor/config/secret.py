"""The base of every config model, and secrets by reference.

Secrets are never literal: a key that holds a secret takes `{ env = "VAR" }` or
`{ file = "path" }` and is only read when needed (`SecretRef.resolve`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from conveyor.config.values import EnvVarName, NonEmpty, OneLine
from conveyor.errors import ConfigError


class Model(BaseModel):
    """A table of conveyor.toml: unknown keys are errors, values are frozen."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class SecretRef(Model):
    """A reference to a secret: an environment variable or a file, never the value itself."""

    env: EnvVarName | None = None
    file: NonEmpty | None = None
    default: OneLine | None = Field(
        default=None,
        description="Fallback for an unset variable; meant for local development only.",
    )

    @model_validator(mode="after")
    def _one_source(self) -> SecretRef:
        if (self.env is None) == (self.file is None):
            raise ValueError("a secret reference needs exactly one of `env` or `file`")
        if self.file is not None and self.default is not None:
            raise ValueError("`default` is only allowed with `env`")
        return self

    def describe(self) -> str:
        if self.env is not None:
            state = "set" if self.env in os.environ else ("default" if self.default is not None
                                                          else "NOT SET")
            return f"env:{self.env} ({state})"
        return f"file:{self.file}"

    @property
    def source(self) -> str:
        """What the reference names: `env:VAR` or `file:PATH` (never a value)."""
        return f"env:{self.env}" if self.env is not None else f"file:{self.file}"

    def path(self, root: Path) -> Path:
        """The file of a `file` reference, `~` expanded, relative to `root`."""
        path = Path(os.path.expanduser(self.file or ""))
        return path if path.is_absolute() else root / path

    def unset_reason(self, root: Path) -> str | None:
        """Why the secret cannot be resolved now (None when it can): its variable is not set
        (and it has no default), or its file cannot be read."""
        if self.env is not None:
            if self.env in os.environ or self.default is not None:
                return None
            return "is not set"
        if os.access(self.path(root), os.R_OK) and self.path(root).is_file():
            return None
        return "cannot be read" if self.path(root).exists() else "does not exist"

    def resolve(self, root: Path, key: str, config_file: str | None = None) -> str:
        if self.env is not None:
            value = os.environ.get(self.env)
            if value is None:
                if self.default is not None:
                    return self.default
                raise ConfigError(
                    f"the secret references environment variable {self.env}, which is not set",
                    file=config_file, key=key,
                    hint=f"export {self.env}=... (in CI: from the CI's secret store)",
                )
            return value
        path = self.path(root)
        try:
            return path.read_text().strip()
        except OSError as exc:
            raise ConfigError(
                f"the secret references file {path}, which cannot be read ({exc.strerror})",
                file=config_file, key=key,
            ) from None


def reject_literal_secret(value: Any) -> Any:
    """A `mode="before"` validator of a secret key: a plain string is refused, unechoed."""
    if isinstance(value, str):
        raise ValueError(  # noqa: TRY004 - pydantic reports ValueError as a validation error
            "LITERAL_SECRET: found a literal string; a secret must be a reference: "
            '{ env = "VAR" } or { file = "path" }'
        )
    return value


def reject_literal_secrets(value: Any) -> Any:
    """The same for a table of secrets (name -> reference)."""
    if isinstance(value, dict):
        return {k: reject_literal_secret(x) for k, x in value.items()}
    return value


SecretField = Annotated[SecretRef, Field(description="secret reference")]
