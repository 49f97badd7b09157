"""The one secret masker: known secret values and passwords in connection strings become ``***``.

Two mechanisms, used together by :class:`Redactor` and on their own by :func:`mask_secrets`:

* **patterns**, for secrets nobody told us about: the password of a URL
  (``postgresql://user:PASSWORD@host``), and ``password=...`` in a libpq key-value string or a
  URL's query (``host=db password=PASSWORD``, ``postgresql://host/db?password=PASSWORD``);
* **known values** (:class:`Redactor`): every secret the caller registered (e.g. resolved from
  the config), replaced wherever it appears, longest first.

Row data is not a secret of the same kind but stays out of output and records too:
:func:`mask_row_data` hides the values PostgreSQL quotes in its DETAIL lines ("Failing row
contains (...)", "Key (email)=(...) already exists").

Standard library only, and ``re`` is imported on first use: ``conveyor.migrations`` imports this
module on its start-up-critical path, and ships it (as ``conveyor/masking.py``) into containers
that have nothing but the standard library.
"""

from __future__ import annotations

TYPE_CHECKING = False  # not `from typing import ...`: typing costs ~3 ms of start-up
if TYPE_CHECKING:
    import re
    from collections.abc import Iterable
    from typing import Any

MASK = "***"

_PATTERNS: tuple[re.Pattern[str], re.Pattern[str]] | None = None


def _patterns() -> tuple[re.Pattern[str], re.Pattern[str]]:
    global _PATTERNS
    if _PATTERNS is None:
        import re  # compiled on first use: importing ``re`` costs ~8 ms of start-up

        _PATTERNS = (
            re.compile(r"(?P<head>[a-z][a-z0-9+.-]*://[^:/@\s]*:)(?P<pw>[^@\s]*)(?P<tail>@)",
                       re.IGNORECASE),
            # in a URL's query (after ? or &) the value ends at the next & or #; in a libpq
            # key=value string at the next space (or the closing quote)
            re.compile(r"(?P<head>[?&]password=)(?P<pw>[^&#\s]*)"
                       r"|(?P<kvhead>\bpassword\s*=\s*)(?P<kvpw>'(?:[^'\\]|\\.)*'|\S+)",
                       re.IGNORECASE),
        )
    return _PATTERNS


def mask_url_passwords(text: str) -> str:
    """``scheme://user:PASSWORD@`` -> ``scheme://user:***@``."""
    if "://" not in text:
        return text
    url, _ = _patterns()
    return url.sub(lambda m: m["head"] + MASK + m["tail"], text)


def mask_secrets(text: str) -> str:
    """Replace passwords in database URLs and in ``password=`` settings (libpq key-value
    strings, URL queries) with ``***``."""
    if "://" not in text and "=" not in text:
        return text  # neither a URL nor a key=value string: nothing to mask
    _, kv = _patterns()
    return kv.sub(lambda m: (m["head"] or m["kvhead"]) + MASK, mask_url_passwords(text))


_ROW_PATTERNS: list[tuple[re.Pattern[str], str]] | None = None


def mask_row_data(text: str) -> str:
    """Hide row contents in PostgreSQL's messages: ``Failing row contains (1, bob@x.org).``
    -> ``Failing row contains (***).``, ``Key (email)=(bob@x.org) already exists.`` ->
    ``Key (email)=(***) already exists.`` (the column names stay: they are schema, not data)."""
    global _ROW_PATTERNS
    if "row contains" not in text and "Key (" not in text:
        return text
    if _ROW_PATTERNS is None:
        import re

        _ROW_PATTERNS = [
            (re.compile(r"(?P<head>\b(?:Failing row|row) contains \().*?(?P<tail>\)\.?(?:$|\s))",
                        re.DOTALL), r"\g<head>***\g<tail>"),
            (re.compile(r"(?P<head>\bKey \((?:[^()]|\([^()]*\))*\)=\().*?"
                        r"(?P<tail>\) (?:already exists|is not present|is still referenced|"
                        r"conflicts with)|\)\.?(?:$|\s))", re.DOTALL),
             r"\g<head>***\g<tail>"),
        ]
    for pattern, repl in _ROW_PATTERNS:
        text = pattern.sub(repl, text)
    return text


class Redactor:
    """Replaces known secret values (registered with :meth:`add`) and any password inside a
    URL or a ``password=`` setting (:func:`mask_secrets`) with ``***``, in strings and,
    recursively, in dicts, lists and tuples (which come back as lists)."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._secrets: set[str] = set()
        for s in secrets:
            self.add(s)

    def add(self, secret: str | None) -> None:
        """Register a secret value (values shorter than 3 characters are ignored: masking them
        would garble ordinary text)."""
        if secret and len(secret) >= 3:
            self._secrets.add(secret)

    def text(self, value: str) -> str:
        for s in sorted(self._secrets, key=len, reverse=True):
            value = value.replace(s, MASK)
        return mask_secrets(value)

    def __call__(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {k: self(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [self(v) for v in value]
        return value
