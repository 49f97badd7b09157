"""`conveyor ci`'s stages and its refusals before anything runs, without services.

(The job itself runs end to end in tests/e2e/test_ci.py.)
"""

from __future__ import annotations

from pathlib import Path

import pytest

from conveyor.ci_env import CiEnv
from conveyor.ci_pipeline import EXIT_TESTS_FAILED, CiOptions, CiRefused, check_can_run, stage_names
from conveyor.config import load_config
from conveyor.errors import CiRefused as ErrorsCiRefused
from conveyor.errors import TestsFailed

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "notes"
GH = CiEnv(system="github", branch="feature/x", commit="a" * 40, default_branch="main",
           run_url="https://github.com/acme/notes/actions/runs/7", is_ci=True)


def test_exit_codes_come_from_the_error_table() -> None:
    assert CiRefused is ErrorsCiRefused and CiRefused.exit_code == 25
    assert EXIT_TESTS_FAILED == TestsFailed.exit_code == 19


def test_stage_names() -> None:
    assert stage_names(CiOptions()) == ["build", "push", "setup dev", "deploy dev", "test"]
    assert stage_names(CiOptions(promote=True, setup=False)) == \
        ["build", "push", "deploy dev", "test", "promote prod"]


def test_promote_refused_off_the_default_branch(monkeypatch) -> None:
    monkeypatch.delenv("CONVEYOR_DEV_HOST", raising=False)
    cfg = load_config(EXAMPLE)
    with pytest.raises(CiRefused, match=r"--promote is only for the default branch \(main\); "
                                        r"this job runs on branch 'feature/x'"):
        check_can_run(cfg, GH, CiOptions(promote=True))
    unknown = CiEnv(system="git", branch="feature/x", commit=None, default_branch=None)
    with pytest.raises(CiRefused, match=r"default branch \(unknown\)"):
        check_can_run(cfg, unknown, CiOptions(promote=True))
    on_main = CiEnv(system="git", branch="main", commit=None, default_branch="main")
    check_can_run(cfg, on_main, CiOptions(promote=True))
    check_can_run(cfg, GH, CiOptions())
    with pytest.raises(CiRefused, match="has no host"):
        check_can_run(cfg, GH, CiOptions(dev_env="local"))
    assert stage_names(CiOptions(promote=True, setup=False)) == \
        ["build", "push", "deploy dev", "test", "promote prod"]


def test_promote_refused_when_prod_takes_its_images_from_another_environment(tmp_path) -> None:
    on_main = CiEnv(system="git", branch="main", commit=None, default_branch="main")
    with pytest.raises(CiRefused, match=r"environment 'local' has no host: --promote"):
        check_can_run(load_config(EXAMPLE), on_main, CiOptions(promote=True, prod_env="local"))
    text = (EXAMPLE / "conveyor.toml").read_text()
    assert text.count('promote_from = "dev"') == 1
    (tmp_path / "conveyor.toml").write_text(text.replace('promote_from = "dev"',
                                                         'promote_from = "local"'))
    with pytest.raises(CiRefused, match=r"--promote: prod is promoted from local, not from dev"):
        check_can_run(load_config(tmp_path), on_main, CiOptions(promote=True))
