"""The run's journal: flushed lines, the saved state, and what attach streams."""

from __future__ import annotations

from pathlib import Path

from conveyor.records import DeploymentRecord
from conveyor.runner import journal as jr
from conveyor.runner.attach import _finished, _Lines
from conveyor.runner.recover import _main_events, _step_results
from conveyor.state.deploy import DeployState, RevertPlan


def _state() -> DeployState:
    rec = DeploymentRecord(id="d1", app="notes", env="dev", kind="deploy", who="a",
                           started_at=0.0, image="x")
    return DeployState(remote=None, record=rec)  # type: ignore[arg-type]


def test_snapshot_round_trips_the_facts_and_leaves_out_the_objects():
    st = _state()
    st.lock_id, st.stopped_old = "d1", True
    st.current = {"Config": {"Labels": {"conveyor.image": "img@sha256:1"}}}
    st.revert = RevertPlan(["2", "1"], "img@sha256:0", ["b", "a"])
    snap = jr.snapshot(st)
    assert "remote" not in snap and "record" not in snap and "finalize_results" not in snap
    other = _state()
    jr.restore(other, snap)
    assert other.lock_id == "d1" and other.stopped_old is True
    assert other.revert == RevertPlan(["2", "1"], "img@sha256:0", ["b", "a"])
    assert other.serving_image == "img@sha256:1"


def test_journal_lines_are_written_whole_and_read_back(tmp_path: Path):
    j = jr.Journal(tmp_path / "runs" / "d1" / jr.JOURNAL)
    j.write({"event": "step_started", "step": "lock"})
    j.write({"event": "run_finished", "result": "ok"})
    j.close()
    events = jr.read(tmp_path / "runs" / "d1" / jr.JOURNAL)
    assert [e["event"] for e in events] == ["step_started", "run_finished"]
    assert jr.finished(events) == {"event": "run_finished", "result": "ok"}


def test_attach_streams_only_complete_lines_each_once(tmp_path: Path):
    path = tmp_path / jr.JOURNAL
    lines = _Lines(path)
    assert lines.new() == []  # no journal yet
    path.write_text('{"event": "step_started"}\n{"event": "run_fin')
    assert lines.new() == ['{"event": "step_started"}']
    assert lines.new() == []  # the cut line waits for its end
    with path.open("a") as f:
        f.write('ished", "ok": true}\n')
    new = lines.new()
    assert new == ['{"event": "run_finished", "ok": true}'] and _finished(new[-1])
    assert lines.count == 2


def test_recovery_reads_how_far_the_main_plan_got():
    events = [
        {"event": "plan_started", "plan": "deploy dev"},
        {"event": "step_started", "step": "lock"},
        {"event": "step_finished", "step": "lock", "duration": 0.5, "notes": ["locked"]},
        {"event": "step_started", "step": "migrate"},
        {"event": "output", "step": "migrate", "line": "applying 1 ..."},
    ]
    started, done = _main_events(events, "deploy dev")
    assert started == ["lock", "migrate"] and done is None
    results = _step_results(events, started)
    assert [(r.name, r.status) for r in results] == [("lock", "ok"), ("migrate", "interrupted")]
    assert results[1].output == ["applying 1 ..."]
    finished = [*events, {"event": "plan_finished", "plan": "deploy dev", "ok": False},
                {"event": "plan_started", "plan": "deploy dev: finalize"},
                {"event": "step_started", "step": "record"}]
    started, done = _main_events(finished, "deploy dev")
    assert started == ["lock", "migrate"] and done == {"event": "plan_finished",
                                                       "plan": "deploy dev", "ok": False}
