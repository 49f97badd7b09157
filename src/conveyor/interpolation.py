"""`${VAR}` / `${VAR:-default}` interpolation of conveyor.toml's string values from the
process environment (`$$` is a literal `$`). Only the standard library: read before pydantic
is imported (see `conveyor.transport.prewarm`)."""

from __future__ import annotations

import os
import re
from typing import Any

from conveyor.errors import ConfigError, echo

VAR = re.compile(r"\$(\$|\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\})")
# what `$` may start: `$$`, a reference, or (an error) a `${` that is no reference
_DOLLAR = re.compile(r"\$(?:\$|\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}|(\{))")


def unset_vars(value: Any) -> list[str]:
    """The variables `value` references without a default that are not set now."""
    found: list[str] = []
    if isinstance(value, dict):
        for v in value.values():
            found += unset_vars(v)
    elif isinstance(value, list):
        for v in value:
            found += unset_vars(v)
    elif isinstance(value, str):
        for m in VAR.finditer(value):
            if m.group(1) != "$" and m.group(3) is None and m.group(2) not in os.environ:
                found.append(m.group(2))
    return found


def interpolate(value: Any, key: str, file: str) -> Any:
    """`value` with every `${VAR}` replaced; an unset variable is an error naming `key`."""
    if isinstance(value, dict):
        return {k: interpolate(v, f"{key}.{k}" if key else k, file) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, f"{key}[{i}]", file) for i, v in enumerate(value)]
    if not isinstance(value, str) or "$" not in value:
        return value
    for m in _DOLLAR.finditer(value):
        if m.group(3) is not None:
            rest = value[m.end():]
            if "}" not in rest:
                problem = f"a `${{` at character {m.start() + 1} is never closed"
            else:
                problem = (f"{echo(value[m.start():m.end() + rest.index('}') + 1], 60)} is not "
                           "a variable reference")
            raise ConfigError(
                f"{problem} (in {echo(value)})", file=file, key=key,
                hint="write ${NAME} or ${NAME:-default} (NAME: letters, digits and _), or $$ "
                "for a literal $",
            )

    def sub(m: re.Match[str]) -> str:
        if m.group(1) == "$":
            return "$"
        name, default = m.group(2), m.group(3)
        if name in os.environ:
            return os.environ[name]
        if default is not None:
            return default
        raise ConfigError(
            f"uses ${{{name}}}, but environment variable {name} is not set",
            file=file, key=key,
            hint=f"export {name}=..., or write ${{{name}:-default}} to give a default",
        )

    return VAR.sub(sub, value)
