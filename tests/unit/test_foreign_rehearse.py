"""The rehearsal with a project's own migration tool (`migrations.command`): the tool runs on
the scratch restore with the app's environment (app.env, app.secrets, the environment's env and
secrets), exactly as in the migrate step, only DATABASE_URL points at the scratch database.
(An Alembic env.py that reads the app's settings refused to run without them.)"""

from __future__ import annotations

from tests.unit.test_prod_plans import (
    DID,
    NEW_DIGEST,
    PASSWORD,
    env_secrets,  # noqa: F401 - autouse: the config's secrets
    make_config,
)
from tests.unit.test_rehearse import Host

from conveyor.config import load_config
from conveyor.imageref import ImageRef
from conveyor.plan import StepIO
from conveyor.records import DeploymentRecord
from conveyor.state.deploy import DeployState, ProdOptions
from conveyor.steps import rehearse as rh
from conveyor.targets.remote import Remote

TOOL = """
[app.env]
LEDGER_CURRENCY = "EUR"
[migrations]
command = ["alembic", "upgrade", "head"]
[environments.prod.env]
APP_ENV = "prod"
[environments.prod.secrets]
LEDGER_SECRET_KEY = { env = "LEDGER_PROD_SECRET_KEY" }
"""


class ToolHost(Host):
    def kind(self, argv: tuple[str, ...]) -> str:
        return "tool" if "alembic" in argv else super().kind(argv)


def test_the_rehearsal_gives_the_tool_the_apps_environment_on_the_scratch_db(tmp_path,
                                                                            monkeypatch):
    monkeypatch.setenv("LEDGER_PROD_SECRET_KEY", "sekrit-0123456789abcdef")
    make_config(tmp_path, 8000, rehearse="always")
    toml = tmp_path / "conveyor.toml"
    toml.write_text(toml.read_text() + TOOL)
    cfg = load_config(tmp_path)
    fake = ToolHost()
    fake.answers["tool"] = (0, "INFO  [alembic] Running upgrade 0001 -> 0002\n")
    remote = Remote(cfg, "prod", transport_factory=lambda r: fake)
    image = ImageRef("127.0.0.1:5000/notes", NEW_DIGEST, "newrev")
    record = DeploymentRecord(id=DID, app="notes", env="prod", kind="promote", who="a",
                              started_at=0.0, image=image.ref)
    record.details = {}  # type: ignore[attr-defined]
    st = DeployState(remote, record, image)
    st.pending = None  # the tool decides
    st.backup = {"id": "b1", "file": "/srv/backups/notes-prod-b1.dump", "size": 2048,
                 "rows": {"public.notes": 2, "public.tags": 0}}
    step = rh.rehearse_step(remote, image, DID, ProdOptions(project_dir=tmp_path))
    step.action(st, StepIO("rehearse", fake))

    argv, stdin = next((a, i) for a, i in fake.calls if fake.kind(a) == "tool")
    assert argv[-3:] == ("alembic", "upgrade", "head")
    lines = stdin.decode().splitlines()
    url = lines[0]
    assert url.startswith("DATABASE_URL=postgresql://notes:") and "@notes-prod-db:5432/" in url
    assert not url.endswith("/notes"), f"the tool ran on prod's own database: {url}"
    assert "rehearse" in url.rsplit("/", 1)[1], url
    assert "LEDGER_CURRENCY=EUR" in lines and "APP_ENV=prod" in lines
    assert "LEDGER_SECRET_KEY=sekrit-0123456789abcdef" in lines
    # the values only in the env file on stdin, never in an argv
    for a, _ in fake.calls:
        assert not any("sekrit" in x or PASSWORD in x for x in a), a
    assert st.rehearsal and st.rehearsal["migrations"][0]["name"] == "migrations.command"
