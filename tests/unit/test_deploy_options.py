"""`conveyor deploy ENV` passes the prod-stage options (`--max-downtime`, `--strategy`, `--force`)
on to the promotion of an environment with `promote_from`, and refuses them, before anything
runs, for an environment without one."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from conveyor.cli import prod, run

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "notes"


@pytest.fixture
def project(tmp_path: Path) -> Path:
    shutil.copy(EXAMPLE / "conveyor.toml", tmp_path / "conveyor.toml")
    return tmp_path


def test_max_downtime_reaches_the_promotion_of_prod(project, monkeypatch):
    seen: dict = {}
    monkeypatch.setattr(prod, "deploy_promoted",
                        lambda ctx, env, project_dir, **kw: seen.update(env=env, **kw))
    with pytest.raises(SystemExit) as exc:
        run(["deploy", "prod", "-C", str(project), "--max-downtime", "2.5",
             "--strategy", "recreate"])
    assert exc.value.code == 0
    assert seen["env"] == "prod" and seen["max_downtime"] == 2.5
    assert seen["strategy"] == "recreate"


def test_prod_stage_options_are_refused_for_an_environment_without_promote_from(
        project, monkeypatch, capsys):
    monkeypatch.setattr(prod, "deploy_promoted", lambda *a, **kw: pytest.fail("promoted"))
    with pytest.raises(SystemExit) as exc:
        run(["deploy", "dev", "-C", str(project), "--max-downtime", "5"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "--max-downtime" in err and "dev has no `promote_from`" in err
