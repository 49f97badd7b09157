"""The error table: one class per kind of failure, unique exit codes, documented in
`conveyor --help` and docs/exit-codes.md, and no error class with an exit code outside it."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

from typer.testing import CliRunner

from conveyor import errors
from conveyor.cli import app

ROOT = Path(__file__).resolve().parents[2]


def _classes() -> list[type[errors.ConveyorError]]:
    return [c for _, c in inspect.getmembers(errors, inspect.isclass)
            if issubclass(c, errors.ConveyorError)]


def test_every_error_class_has_its_own_code():
    codes = {}
    for cls in _classes():
        assert "exit_code" in vars(cls), f"{cls.__name__} inherits its exit code"
        assert cls.exit_code not in codes, (
            f"{cls.__name__} and {codes.get(cls.exit_code)} share exit code {cls.exit_code}")
        codes[cls.exit_code] = cls.__name__
    assert set(codes) == set(errors.EXIT_CODES) - {0}
    assert {name for name, _ in errors.EXIT_CODES.values() if name} == set(codes.values())


def test_codes_are_documented_in_help_and_docs():
    doc = (ROOT / "docs" / "exit-codes.md").read_text()
    result = CliRunner().invoke(app, ["--help"], terminal_width=200)
    assert result.exit_code == 0
    help_text = " ".join(result.output.split())
    for code, (name, text) in errors.EXIT_CODES.items():
        assert f"| {code} |" in doc and text in doc, f"exit code {code} missing in the docs"
        assert f"{code} {' '.join(text.split())[:40]}" in help_text, (
            f"exit code {code} missing in conveyor --help")


def test_no_error_class_with_an_exit_code_outside_the_table():
    """An error class elsewhere in src/ that sets exit_code would be a second table. (The
    migration engine is a library with its own small CLI, `conveyor migrate`, whose 0/1/2/130
    are documented in docs/exit-codes.md; its errors are not ConveyorErrors.)"""
    offenders = []
    src = ROOT / "src" / "conveyor"
    for path in src.rglob("*.py"):
        if path == src / "errors.py" or (src / "migrations") in path.parents:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef):
                for stmt in node.body:
                    if isinstance(stmt, ast.Assign) and any(
                            isinstance(t, ast.Name) and t.id == "exit_code" for t in stmt.targets):
                        offenders.append(f"{path.relative_to(ROOT)}:{node.name}")
    assert offenders == []
