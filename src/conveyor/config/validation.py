"""pydantic's validation errors as one ConfigError that names the file, each key path, what was
found and what was expected."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from conveyor.config.values import echo
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
        is_key = bool(parts) and parts[-1] == "[key]"
        if is_key:  # a table's key (a variable name): the key path is the table's
            parts = parts[:-2]
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
        elif typ == "union_tag_not_found" or (
                typ == "union_tag_invalid" and isinstance(found, dict) and "kind" not in found):
            text = "missing key `kind`; expected kind = 'compose', 'container' or 'url'"
        elif typ == "union_tag_invalid":
            text = (f"found kind = {echo(found.get('kind'))}" if isinstance(found, dict) else
                    f"found {kind_of(found)}") + ", expected kind = 'compose', 'container' or 'url'"
        elif typ in _EXPECTED:
            text = f"found {kind_of(found)} {echo(found)}, expected {_EXPECTED[typ]}"
        else:
            msg = err["msg"].removeprefix("Value error, ")
            for tag in ("LITERAL_SECRET: ", "HOST: ", "KNOWN_HOSTS: "):
                msg = msg.replace(tag, "")
            if "found" in msg or found is None or isinstance(found, (dict, list)):
                text = msg
            else:
                text = f"{msg} (found {echo(found)})"
        if is_key:
            text = (text.replace("found ", "found the name ", 1) if "found " in text
                    else f"the name {echo(found)}: {text}")
        msgs.append(f"key `{key}`: {text}" if key else text)
    message = "; ".join(msgs)
    return ConfigError(message, file=file, hint="see docs/config.md for every key")
