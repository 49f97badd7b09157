"""The outcome of a failed zero-downtime deploy (no stop step: the migrations ran while the old
version served) says that the old version kept serving AND what the migrations did, instead of
"the database was not changed"."""

from __future__ import annotations

from types import SimpleNamespace

from conveyor.plan import PlanResult, StepResult
from conveyor.state.deploy import DeployState
from conveyor.steps.report import outcome

REMOTE = SimpleNamespace(name="prod", url="http://127.0.0.1:8080", app_container="notes-prod",
                         failed_container="notes-prod-failed", host="127.0.0.3")
CURRENT = {"Config": {"Image": "reg/notes@sha256:old",
                      "Labels": {"conveyor.deployment": "d-old"}}}
ZD = ["lock", "pull", "classify", "plan", "backup", "migrate", "start", "health", "switch",
      "validate"]


def result(names: list[str], failed: str) -> PlanResult:
    steps = [StepResult(n, "failed" if n == failed else "ok", 0.1) for n in names]
    return PlanResult("promote", False, steps, 1.0, RuntimeError("boom"))


def state(**kw) -> DeployState:
    st = DeployState(remote=REMOTE, record=SimpleNamespace(), lock_id="L",  # type: ignore[arg-type]
                     current=CURRENT, backup={"id": "b1", "file": "b1.dump"})
    for k, v in kw.items():
        setattr(st, k, v)
    return st


def test_a_never_healthy_version_after_expand_migrations_names_what_stays_applied():
    names = ZD[:ZD.index("health") + 1]
    out = outcome(REMOTE, state(migrations_applied=["20260301_add_col"]),  # type: ignore[arg-type]
                  result(names, "health"))
    lines = " ".join(out["lines"])
    assert "Nothing was stopped: the previous version kept serving throughout." in lines
    assert "the database was not changed" not in lines
    assert "stay applied: 20260301_add_col" in lines
    assert "kept (stopped) as notes-prod-failed" in lines
    assert any(c.startswith("conveyor rollback prod --to d-old --migrations") for c in out["commands"])
    assert any(c.startswith("conveyor restore prod b1") for c in out["commands"])


def test_a_failed_validation_after_the_switch_says_the_proxy_went_back():
    out = outcome(REMOTE, state(), result(ZD, "validate"))  # type: ignore[arg-type]
    assert out["lines"][0] == ("Nothing was stopped: the previous version kept serving "
                               "throughout (the proxy was switched back to it).")
    assert "This deployment changed no migrations" in " ".join(out["lines"])


def test_a_zero_downtime_first_deploy_that_fails_says_nothing_serves():
    names = ZD[:ZD.index("health") + 1]
    out = outcome(REMOTE, state(current=None), result(names, "health"))  # type: ignore[arg-type]
    assert out["lines"][0] == ("There was no previous version (first deployment): nothing "
                               "serves http://127.0.0.1:8080.")
    assert not any("kept serving" in line for line in out["lines"])
