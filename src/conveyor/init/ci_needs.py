"""What a CI job needs from its CI system (variables, secrets), read from conveyor.toml."""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from typing import Any


@dataclass
class CiNeeds:
    """What a CI job needs from the CI system, derived from conveyor.toml."""

    #: (name, default or None): plain settings, e.g. CONVEYOR_DEV_HOST
    variables: list[tuple[str, str | None]]
    #: environment variables that hold secrets (SecretRef env), e.g. NOTES_DEV_DB_PASSWORD
    secrets: list[str]
    #: secrets only the prod job needs
    prod_secrets: list[str]
    prod_variables: list[tuple[str, str | None]]


#: written to files by the CI job (the variables then hold the files' paths)
FILE_SECRETS = ("CONVEYOR_SSH_KEY", "CONVEYOR_KNOWN_HOSTS")
REGISTRY_SECRETS = ("CONVEYOR_REGISTRY_USERNAME", "CONVEYOR_REGISTRY_PASSWORD")
_CONVEYOR_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def ci_needs(config_text: str) -> CiNeeds:
    raw = tomllib.loads(config_text)

    def walk(value: Any, variables: dict, secrets: list, key: str = "") -> None:
        if isinstance(value, dict):
            if "env" in value and isinstance(value["env"], str) and \
                    set(value) <= {"env", "default"} and key != "env":
                if value["env"] not in secrets:
                    secrets.append(value["env"])
                return
            for k, v in value.items():
                walk(v, variables, secrets, k)
        elif isinstance(value, list):
            for v in value:
                walk(v, variables, secrets, key)
        elif isinstance(value, str):
            for m in _CONVEYOR_VAR.finditer(value):
                variables.setdefault(m.group(1), m.group(2))

    def of(section: Any) -> tuple[dict, list]:
        variables: dict = {}
        secrets: list = []
        walk(section, variables, secrets)
        return variables, secrets

    envs = raw.get("environments", {})
    g_vars, g_secrets = of({k: v for k, v in raw.items() if k in ("registry",)})
    d_vars, d_secrets = of(envs.get("dev", {}))
    p_vars, p_secrets = of(envs.get("prod", {}))
    dev_vars = {**g_vars, **d_vars}
    skip = set(FILE_SECRETS) | set(REGISTRY_SECRETS)
    variables = [(k, v) for k, v in dev_vars.items() if k not in skip]
    prod_variables = [(k, v) for k, v in p_vars.items() if k not in skip and k not in dev_vars]
    secrets = [s for s in g_secrets + d_secrets if s not in skip]
    prod_secrets = [s for s in p_secrets if s not in skip and s not in secrets]
    return CiNeeds(variables, list(dict.fromkeys(secrets)), prod_secrets, prod_variables)
