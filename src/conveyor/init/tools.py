"""`conveyor init`: the project's migration tool (Alembic, Django, Rails, Prisma, Diesel) and
its health route (a route in the code with a common health path)."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from conveyor.init.facts import Facts


@dataclass(frozen=True)
class Tool:
    name: str
    marker: str  # what was found
    command: list[str]
    status_command: list[str] = field(default_factory=list)
    sql_command: list[str] = field(default_factory=list)
    revert_command: list[str] = field(default_factory=list)


#: the SQL of the pending revisions only (`alembic upgrade head --sql` alone prints the whole
#: history, whose old revisions the lint would judge again); the whole history when empty
ALEMBIC_SQL = ["sh", "-c", ("rev=$(alembic current 2>/dev/null | cut -d' ' -f1 | head -n1); "
                            "if [ -n \"$rev\" ]; then exec alembic upgrade \"$rev:head\" --sql; "
                            "else exec alembic upgrade head --sql; fi")]
ALEMBIC = Tool("Alembic", "alembic.ini", ["alembic", "upgrade", "head"], ["alembic", "current"],
               ALEMBIC_SQL, ["alembic", "downgrade", "-1"])
DJANGO = Tool("Django", "manage.py", ["python", "manage.py", "migrate", "--noinput"],
              ["python", "manage.py", "showmigrations", "--plan"])
RAILS = Tool("Rails", "bin/rails", ["bin/rails", "db:migrate"], ["bin/rails", "db:migrate:status"],
             [], ["bin/rails", "db:rollback"])
PRISMA = Tool("Prisma", "schema.prisma", ["npx", "prisma", "migrate", "deploy"],
              ["npx", "prisma", "migrate", "status"])


def _is_django(p: Path) -> bool:
    try:
        return "django" in p.read_text(errors="replace").lower()
    except OSError:
        return False


def find_tool(facts: Facts) -> Tool | None:
    """The project's own migration tool, or None (Diesel layout: conveyor's engine)."""
    root = facts.root
    if (root / "alembic.ini").is_file():
        return ALEMBIC
    if (root / "manage.py").is_file() and _is_django(root / "manage.py"):
        return DJANGO
    if (root / "bin" / "rails").is_file():
        return RAILS
    for rel in ("prisma/schema.prisma", "schema.prisma"):
        if (root / rel).is_file():
            return Tool(PRISMA.name, rel, PRISMA.command, PRISMA.status_command)
    return None


#: health paths in the order they are preferred when several are routes of the app
HEALTH_PATHS = ("/health", "/healthz", "/api/health", "/_health", "/health/live", "/livez",
                "/readyz", "/up", "/ping", "/status")
_ROUTE = re.compile(r"""["'`](/(?:api/)?(?:_?health[a-z/]*|healthz|livez|readyz|up|ping|status))"""
                    r"""/?["'`]""")
_CODE = (".py", ".rs", ".go", ".js", ".ts", ".mjs", ".rb", ".java", ".kt", ".ex", ".php")
_SKIP = {"node_modules", ".venv", "venv", "target", ".git", "dist", "build", "vendor",
         "__pycache__", "tests", "test", "spec"}
MAX_FILES = 2000


def find_health_route(facts: Facts) -> None:
    """A route with a common health path in the app's code (e.g. `@app.get("/healthz")`,
    Rails' `get "up"`), when the Dockerfile's HEALTHCHECK did not name one."""
    if facts.health_path is not None:
        return
    found: dict[str, str] = {}
    seen = 0
    for dirpath, dirnames, filenames in os.walk(facts.root):
        dirnames[:] = sorted(d for d in dirnames if d not in _SKIP and not d.startswith("."))
        for fn in sorted(filenames):
            if not fn.endswith(_CODE):
                continue
            seen += 1
            if seen > MAX_FILES:
                break
            path = Path(dirpath) / fn
            try:
                text = path.read_text(errors="replace")
            except OSError:
                continue
            for m in _ROUTE.finditer(text):
                found.setdefault(m.group(1), str(path.relative_to(facts.root)))
            if fn == "routes.rb" and re.search(r"""get\s+["']up["']""", text):
                found.setdefault("/up", str(path.relative_to(facts.root)))
    for p in HEALTH_PATHS:
        if p in found:
            facts.health_path, facts.health_source = p, f"a route in {found[p]}"
            return
    if found:
        p = min(found)
        facts.health_path, facts.health_source = p, f"a route in {found[p]}"
        return
    facts.notes.append("no health route found in the code (looked for /health, /healthz, "
                       "/up, ...); [app.health] path = \"/health\" is a guess")
