"""The value types of conveyor.toml that pydantic's own types accept too loosely (a bad value
is shown in their messages by `conveyor.errors.echo`: at most ~200 characters).

pydantic's lax mode turns `true` into 1 and accepts `inf` as a timeout; interpolated values
(`port = "${PORT:-8000}"`) arrive as strings, so a strict int would refuse them. These types
refuse a boolean where a number is meant, and an infinite or NaN number of seconds, while still
taking a numeric string.
"""

from __future__ import annotations

import ipaddress
import math
import re
from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import AfterValidator, BeforeValidator, Field

from conveyor.errors import echo

# an environment variable's name, as POSIX shells and docker's env files take it
ENV_VAR = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
HOSTNAME = re.compile(rf"^{_LABEL}(?:\.{_LABEL})*\.?$")
# docker's repository path: lowercase components separated by `/` (no registry, no tag)
IMAGE_REPOSITORY = re.compile(r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
                              r"(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$")
# a registry: host[:port] with an optional namespace path (`ghcr.io/team`)
REGISTRY = re.compile(rf"^(?:{_LABEL}(?:\.{_LABEL})*|\[[0-9A-Fa-f:]+\])(?::[0-9]{{1,5}})?"
                      r"(?:/[a-z0-9._-]+)*/?$")


def _no_bool(v: Any) -> Any:
    if isinstance(v, bool):
        raise ValueError(  # noqa: TRY004 - pydantic reports ValueError as a validation error
            f"found a boolean {str(v).lower()}, expected a number")
    return v


def _finite_seconds(v: float) -> float:
    if not math.isfinite(v) or v <= 0:
        raise ValueError(f"found {v}, expected a finite number of seconds greater than 0")
    return v


def _not_empty(v: str) -> str:
    if not v.strip():
        raise ValueError(f"found {echo(v)}, expected a non-empty string")
    return v


def _env_var(v: str) -> str:
    if not ENV_VAR.match(v):
        raise ValueError(f"found {echo(v)}, expected an environment variable name "
                         "(letters, digits and _, not starting with a digit)")
    return v


def _one_line(v: str) -> str:
    if "\n" in v or "\r" in v or "\0" in v:
        raise ValueError(f"found {echo(v)}, a value with a line break (or NUL), which an env "
                         "file cannot hold; expected one line")
    return v


def _address(v: str) -> str:
    try:
        ipaddress.ip_address(v)
    except ValueError:
        if not (HOSTNAME.match(v) and len(v) <= 253) or v.replace(".", "").isdigit():
            raise ValueError(f"found {echo(v)}, expected an IP address or a host name "
                             "(e.g. 10.0.0.5 or app.example.com)") from None
    return v


def _http_url(v: str) -> str:
    try:
        parts = urlsplit(v)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        parts = None
    if (parts is None or parts.scheme not in ("http", "https") or not parts.hostname
            or any(c.isspace() for c in v)):
        raise ValueError(f"found {echo(v)}, expected an http:// or https:// URL "
                         "(e.g. http://10.0.0.5:8080)")
    return v


def _image(v: str) -> str:
    if not IMAGE_REPOSITORY.match(v):
        raise ValueError(f"found {echo(v)}, expected an image repository without registry or "
                         "tag: lowercase letters, digits, `.`, `_`, `-`, and `/` between parts "
                         "(e.g. notes or team/notes)")
    return v


def _registry(v: str) -> str:
    if not REGISTRY.match(v):
        raise ValueError(f"found {echo(v)}, expected a registry address host[:port][/path] "
                         "without a scheme (e.g. registry.example.com or 127.0.0.1:5000)")
    return v


Int = Annotated[int, BeforeValidator(_no_bool)]
Port = Annotated[int, BeforeValidator(_no_bool), Field(ge=1, le=65535)]
Seconds = Annotated[float, BeforeValidator(_no_bool), AfterValidator(_finite_seconds)]
NonEmpty = Annotated[str, AfterValidator(_not_empty)]
EnvVarName = Annotated[str, AfterValidator(_env_var)]
OneLine = Annotated[str, AfterValidator(_one_line)]
Address = Annotated[str, AfterValidator(_address)]
HttpUrl = Annotated[str, AfterValidator(_http_url)]
ImageRepository = Annotated[str, AfterValidator(_not_empty), AfterValidator(_image)]
RegistryAddress = Annotated[str, AfterValidator(_not_empty), AfterValidator(_registry)]
# the environment of a container: variable names -> one-line values
EnvTable = dict[EnvVarName, OneLine]


def database_url_problem(url: str) -> str | None:
    """Why a resolved database URL is not a PostgreSQL URL (None when it is one). The URL is a
    secret: the text names its scheme at most, never the value."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        return "is not a valid URL (bad host or port)"
    if not parts.scheme or "://" not in url:
        return "is not a URL; expected postgresql://user:password@host:5432/name"
    if parts.scheme not in ("postgresql", "postgres"):
        return (f"is a {echo(parts.scheme, 40)} URL; expected a PostgreSQL URL "
                "(postgresql://user:password@host:5432/name)")
    if any(c.isspace() for c in url):
        return "contains whitespace; expected postgresql://user:password@host:5432/name"
    return None
