"""pydantic's validation errors as one ConfigError that names the file, each key path, what was
found and what was expected."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from conveyor.errors import ConfigError


def kind_of(v: Any) -> str:
    """How a TOML value is named in messages: "a string", "a table", ..."""
    return {str: "a string", int: "an integer", float: "a number", bool: "a boolean",
            list: "an array", dict: "a table"}.get(type(v), type(v).__name__)


_EXPECTED = {
    "int_parsing": "an integer", "int_type": "an integer", "float_parsing": "a number",
    "float_type": "a number", "string_type": "a string", "bool_type": "true or false",
    "bool_parsing": "true or false", "list_type": "an array", "dict_type": "a table",
    "model_type": "a table", "model_attributes_type": "a table",
}


def validation_error(exc: ValidationError, file: str,
                     prefix: tuple[str, ...] = ()) -> ConfigError:
    """One ConfigError for all of pydantic's findings, each naming its key path."""
    msgs = []
    first_key = None
    for err in exc.errors():
        loc: list[str] = []
        parts = [str(p) for p in (*prefix, *err["loc"])]
        for i, part in enumerate(parts):
            # pydantic inserts the union tag (database.url.port) or a validator's name
            if (i and parts[i - 1] == "database" and part in ("compose", "container", "url")) \
                    or part.startswith("function-"):
                continue
            loc.append(part)
        key = ".".join(loc)
        first_key = first_key or key
        typ = err["type"]
        found = err.get("input")
        if typ == "missing":
            text = "missing required key"
        elif typ == "extra_forbidden":
            text = "unknown key; check its spelling (see docs/config.md for the keys of this table)"
        elif typ == "union_tag_invalid" or typ == "union_tag_not_found":
            text = (f"found kind = {found.get('kind')!r}" if isinstance(found, dict) else
                    f"found {kind_of(found)}") + ", expected kind = 'compose', 'container' or 'url'"
        elif typ in _EXPECTED:
            text = f"found {kind_of(found)} {found!r}, expected {_EXPECTED[typ]}"
        else:
            msg = err["msg"].removeprefix("Value error, ")
            for tag in ("LITERAL_SECRET: ", "HOST: ", "KNOWN_HOSTS: "):
                msg = msg.replace(tag, "")
            text = msg if "found" in msg else f"{msg} (found {found!r})"
            if isinstance(found, (dict, list)):
                text = msg
        msgs.append(f"key `{key}`: {text}" if key else text)
    message = "; ".join(msgs)
    return ConfigError(message, file=file, hint="see docs/config.md for every key")
