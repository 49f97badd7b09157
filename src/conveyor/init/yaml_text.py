"""Reading a compose file's text: YAML (PyYAML's safe loader) and compose interpolation."""

from __future__ import annotations

import re
from typing import Any


class YamlSubsetError(ValueError):
    pass


def _stringify(value: Any) -> Any:
    """Scalars as strings (compose values are read as text: ports, versions, booleans)."""
    if isinstance(value, dict):
        return {str(k): _stringify(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_stringify(v) for v in value]
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def parse_yaml_subset(text: str) -> Any:
    """Parse a compose file with PyYAML (safe loader); scalars become strings."""
    import yaml

    try:
        return _stringify(yaml.safe_load(text))
    except yaml.YAMLError as exc:
        raise YamlSubsetError(str(exc)) from None


# --------------------------------------------------------------------------- interpolation

_COMPOSE_VAR = re.compile(
    r"\$(?:(\$)|\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}|([A-Za-z_][A-Za-z0-9_]*))")


def resolve_defaults(value: str) -> str:
    """A compose value with each `${VAR:-default}` replaced by its default ('' without one).

    The process environment is ignored on purpose: what `init` writes must not depend on what
    happens to be exported on the machine that runs it.
    """
    def sub(m: re.Match[str]) -> str:
        if m.group(1):
            return "$"
        if m.group(3) and m.group(3).endswith("-"):
            return m.group(4)
        return ""

    return _COMPOSE_VAR.sub(sub, value)


def to_conveyor_interpolation(value: str) -> str:
    """Compose interpolation -> conveyor.toml's (`${VAR}`, `${VAR:-default}`, `$$`).

    A variable without a default becomes `${VAR:-}` (compose too reads an unset one as empty),
    so that a global section of conveyor.toml still loads where it is not set.
    """
    def sub(m: re.Match[str]) -> str:
        if m.group(1):
            return "$$"
        name = m.group(2) or m.group(5)
        if m.group(3) and m.group(3).endswith("-"):
            return f"${{{name}:-{m.group(4)}}}"
        return f"${{{name}:-}}"

    return _COMPOSE_VAR.sub(sub, value)


def compose_variables(value: str) -> list[tuple[str, str | None]]:
    """The variables a compose value uses, each with its default (None when it has none)."""
    out = []
    for m in _COMPOSE_VAR.finditer(value):
        if m.group(1):
            continue
        name = m.group(2) or m.group(5)
        default = m.group(4) if m.group(3) and m.group(3).endswith("-") else None
        out.append((name, default))
    return out
