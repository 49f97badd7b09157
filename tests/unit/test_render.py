"""render.Renderer: how a finished step reads (issue 15, item 8: a failed test step showed
`✓ test … FAILED`)."""

from __future__ import annotations

import io

from conveyor.render import Renderer


def shown(event: dict) -> str:
    out = io.StringIO()
    Renderer(stream=out)(event)
    return out.getvalue()


def test_a_step_that_finished_shows_a_check_mark_and_its_notes():
    text = shown({"event": "step_finished", "step": "pull", "duration": 1.234,
                  "notes": ["already present", "digest sha256:ab"]})
    assert text == "✓ pull 1.23s  already present; digest sha256:ab\n"


def test_a_step_whose_notes_say_failed_shows_a_failure_mark():
    text = shown({"event": "step_finished", "step": "test", "duration": 3.0,
                  "notes": ["FAILED (exit 1; 3 passed, 1 failed)"]})
    assert text == "✗ test 3.00s  FAILED (exit 1; 3 passed, 1 failed)\n"
    assert "✓" not in text


def test_notes_are_not_read_as_markup():
    text = shown({"event": "step_finished", "step": "rollback", "duration": 0.5,
                  "notes": ["pull, stop, [revert], start"]})
    assert text == "✓ rollback 0.50s  pull, stop, [revert], start\n"


def test_no_notes():
    assert shown({"event": "step_finished", "step": "lock", "duration": 0.01}) == \
        "✓ lock 0.01s\n"
