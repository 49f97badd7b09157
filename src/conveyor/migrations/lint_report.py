"""What the lint found: :class:`Finding`, :class:`LintReport` (exit code, text, JSON)."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from conveyor.migrations.errors import MigrationError
from conveyor.migrations.lint_rules import SQUAWK_DOCS

#: JSON document format version (bump on incompatible changes)
JSON_FORMAT = 1

SEVERITIES = ("error", "destructive", "warning")
EXIT_CLEAN = 0
EXIT_WARNINGS = 1
EXIT_DESTRUCTIVE = 2
EXIT_LINT_FAILED = 3


class LintError(MigrationError):
    """The lint could not run (squawk missing or failing, bad arguments)."""

    exit_code = EXIT_LINT_FAILED


@dataclass(frozen=True)
class Finding:
    """One problem in one migration."""

    version: str
    migration: str  #: the migration's directory name
    file: str
    line: int  #: 1-based
    column: int | None  #: 1-based, in characters
    rule: str
    severity: str  #: "error" | "destructive" | "warning"
    message: str
    hint: str
    source: str  #: "squawk" | "conveyor"
    statement: str  #: the statement, on one line, shortened

    def to_dict(self) -> dict:
        return {
            "version": self.version,
            "migration": self.migration,
            "file": self.file,
            "line": self.line,
            "column": self.column,
            "rule": self.rule,
            "severity": self.severity,
            "message": self.message,
            "hint": self.hint,
            "source": self.source,
            "statement": self.statement,
            "docs": SQUAWK_DOCS + self.rule if self.source == "squawk" else None,
        }

    def location(self, relative_to: Path | None = None) -> str:
        file = self.file
        if relative_to is not None:
            try:
                file = os.path.relpath(file, relative_to)
                if file.startswith(".." + os.sep):
                    file = self.file
            except ValueError:
                pass
        loc = f"{file}:{self.line}"
        if self.column is not None:
            loc += f":{self.column}"
        return loc

    def render(self, relative_to: Path | None = None) -> str:
        return (f"{self.location(relative_to)}: {self.severity} [{self.rule}] {self.message} "
                f"(migration {self.migration})\n    hint: {self.hint}")


SEVERITY_ORDER = {s: i for i, s in enumerate(SEVERITIES)}


@dataclass
class LintReport:
    findings: list[Finding] = field(default_factory=list)
    #: (version, directory name) of every migration linted, in order
    migrations: list[tuple[str, str]] = field(default_factory=list)
    squawk_version: str | None = None

    def count(self, severity: str) -> int:
        return sum(1 for f in self.findings if f.severity == severity)

    @property
    def has_destructive(self) -> bool:
        return any(f.severity == "destructive" for f in self.findings)

    @property
    def has_errors(self) -> bool:
        return any(f.severity == "error" for f in self.findings)

    @property
    def has_warnings(self) -> bool:
        return any(f.severity == "warning" for f in self.findings)

    def exit_code(self, strict: bool = False) -> int:
        if self.has_destructive or self.has_errors:
            return EXIT_DESTRUCTIVE
        if strict and self.has_warnings:
            return EXIT_WARNINGS
        return EXIT_CLEAN

    def summary(self, strict: bool = False) -> dict:
        return {
            "migrations": len(self.migrations),
            "findings": len(self.findings),
            "error": self.count("error"),
            "destructive": self.count("destructive"),
            "warning": self.count("warning"),
            "strict": strict,
            "exit_code": self.exit_code(strict),
            "squawk_version": self.squawk_version,
        }

    def to_dict(self, strict: bool = False) -> dict:
        return {
            "format": JSON_FORMAT,
            "findings": [f.to_dict() for f in self.findings],
            "summary": self.summary(strict),
        }

    def to_json(self, strict: bool = False, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(strict), indent=indent, ensure_ascii=False)

    def render_text(self, strict: bool = False, relative_to: Path | None = None) -> str:
        lines = [f.render(relative_to) for f in self.findings]
        n = len(self.migrations)
        what = f"{n} migration{'s' if n != 1 else ''}"
        if not self.findings:
            lines.append(f"lint: no findings in {what}.")
        else:
            parts = [f"{self.count(s)} {s}" + ("s" if s == "warning" and self.count(s) != 1 else "")
                     for s in SEVERITIES if self.count(s)]
            verdict = {
                EXIT_DESTRUCTIVE: "blocked (exit 2): destructive or failing statements need review",
                EXIT_WARNINGS: "failed (exit 1, --strict): warnings",
                EXIT_CLEAN: "passed with warnings",
            }[self.exit_code(strict)]
            n_found = len(self.findings)
            lines.append(f"lint: {n_found} finding{'s' if n_found != 1 else ''} in {what} "
                         f"({', '.join(parts)}); {verdict}.")
        return "\n".join(lines)
